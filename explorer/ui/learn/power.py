"""Walkthrough 2: power iteration and Lanczos, on a symmetric example or a head of the loaded model."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching
from explorer.figures import learn as figures
from explorer.ui.learn.walkthrough import PAGE, Prose, causal_note, head_pickers, layout, link
from explorer.ui.learn_cache import (
    LANCZOS_MAX_STEPS,
    POWER_MAX_STEPS,
    lanczos_on_head,
    power_on_head,
)
from explorer.ui.session import require_capture, selection, token_labels
from explorer.ui.state import Choice, Float, Int

ID = "power"
MATRICES = {"example": "Example", "head": "Head Aᵀ", "head_sym": "Head (A+Aᵀ)/2"}
MATRIX = Choice("matrix", "example", MATRICES, key="power_matrix")
RATIO = Float("ratio", 0.8, 0.05, 0.99, key="power_ratio")
STEP = Int("step", 25, 0, POWER_MAX_STEPS, key="power_step")
EXAMPLE_SIZE = 40  # the symmetric example is EXAMPLE_SIZE x EXAMPLE_SIZE
MIN_TOKENS = 3  # Lanczos on a head needs at least this many tokens


def _runs(source: str, ratio: float, layer: int, head: int):
    """(PowerIteration, LanczosRun) on the example (source "example") or on the loaded model's head."""
    if source == "example":
        S = teaching.example_symmetric(EXAMPLE_SIZE, ratio)
        return teaching.power_iteration(S, POWER_MAX_STEPS), teaching.lanczos(S, LANCZOS_MAX_STEPS)
    sel = selection()
    with st.spinner("Running power iteration and Lanczos on the head…"):
        key = (sel.model_key, sel.text_key, layer, head)
        return power_on_head(*key, source == "head_sym"), lanczos_on_head(*key)


def _power_section(power, step: int, labels) -> None:
    cols = st.columns(4)
    cols[0].metric("λ₁", figures.format_complex(power.lambda1))
    cols[1].metric("|λ₂|", f"{abs(power.lambda2):.4g}")
    cols[2].metric(
        "rate |λ₂/λ₁|",
        f"{power.rate:.4g}",
        help="Error shrink factor per step (squared for r_k when A is symmetric).",
    )
    cols[3].metric(
        f"r_{step}", f"{power.rayleigh[step]:.8g}", help="Rayleigh quotient x_kᵀ A x_k after k steps."
    )
    if power.rate > 1 - 1e-9:
        st.warning(
            "|λ₂| = |λ₁| here: there is no single dominant eigenvalue, so power iteration need not converge.",
            icon=":material/warning:",
        )
    if not power.symmetric:
        st.caption(
            "Aᵀ is not symmetric: the dashed lines show the slope |λ₂/λ₁|^k only (the constant depends on how "
            "far from orthogonal the eigenvectors are), and r_k converges at |λ₂/λ₁|^k, not its square."
        )
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(
            figures.make_power_convergence_figure(power, step=step), width="stretch", key="learn_power_errors"
        )
    with c2:
        st.plotly_chart(
            figures.make_power_vector_figure(power, step=step, labels=labels),
            width="stretch",
            key="learn_power_vector",
        )


def _lanczos_section(run, on_head: bool) -> None:
    st.markdown("#### Lanczos")
    if on_head:
        st.caption(
            "Lanczos needs a symmetric matrix, so it runs on the head's symmetric part S = (A + Aᵀ)/2."
        )
    lsteps = PAGE.slider(
        Int("lsteps", min(10, run.steps), 1, run.steps, key="power_lsteps"), "Lanczos steps m"
    )
    st.plotly_chart(figures.make_lanczos_figure(run, steps=lsteps), width="stretch", key="learn_lanczos")
    top = run.largest_ritz(lsteps)
    st.caption(
        f"After {lsteps} steps the largest Ritz value is {top:.10g}; scipy's eigsh (ARPACK) gives "
        f"{run.eigsh_largest[-1]:.10g} and the full eigh {run.eigvals[-1]:.10g} (difference "
        f"{abs(top - run.eigvals[-1]):.2g}). Lanczos here reorthogonalizes against every previous vector: plain "
        "Lanczos loses orthogonality in floating point and shows ghost copies of converged eigenvalues."
    )


def render(prose: Prose) -> None:
    with layout(prose):
        source = PAGE.segmented_control(MATRIX, "Matrix", format_func=MATRICES.get)
        labels = cap = model_id = None
        ratio, layer, head = RATIO.default, 0, 0
        if source == "example":
            ratio = PAGE.slider(
                RATIO,
                "|λ₂ / λ₁|",
                step=0.01,
                help=f"{EXAMPLE_SIZE}×{EXAMPLE_SIZE}, eigenvalues 1, ratio, rest smaller.",
            )
        else:
            loaded, cap = require_capture()
            model_id = loaded.id
            if cap.n_tokens < MIN_TOKENS:
                st.warning(
                    f"The text has {cap.n_tokens} token(s); Lanczos needs at least {MIN_TOKENS}. Type a longer "
                    "text in the sidebar. Showing the symmetric example meanwhile.",
                    icon=":material/warning:",
                )
                source = "example"
            else:
                layer, head = head_pickers("power", loaded.card.n_layers, loaded.card.n_heads)
                labels = token_labels(cap)
        step = PAGE.slider(STEP, "Power-iteration step k")

    power, run = _runs(source, ratio, layer, head)
    if source == "head" and cap.causal:
        causal_note(model_id)
        st.caption(
            "So here |λ₂| is the largest self-attention weight after the first token's, and the walk ends "
            "entirely on the first token: attention only ever flows to earlier tokens."
        )
    _power_section(power, step, labels)
    _lanczos_section(run, on_head=source != "example")
    link(["attention"], "|λ₂| and the spectral gap of every head of the loaded model")
    link(["eigenvectors"], "The stationary distribution and eigenvectors of a head over its tokens")


def handout_figures(seed: int) -> list:
    """The default view: power iteration's errors on the symmetric example (|λ₂/λ₁| = 0.8) against the bounds,
    and Lanczos' Ritz values. The same for every seed (the exercises state their own ratio)."""
    S = teaching.example_symmetric(EXAMPLE_SIZE, RATIO.default)
    power = teaching.power_iteration(S, POWER_MAX_STEPS)
    run = teaching.lanczos(S, LANCZOS_MAX_STEPS)
    return [
        figures.make_power_convergence_figure(power, step=STEP.default),
        figures.make_lanczos_figure(run, steps=min(10, run.steps)),
    ]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Power iteration & Lanczos"
PARAMS = ("matrix", "ratio", "layer", "head", "step", "lsteps")
MODEL_LINK = {"matrix": "head"}
PREREQUISITES = ("matrix2x2",)
exercises = teaching.power_exercises
