"""Walkthrough: eigenvalue condition numbers and perturbation (a non-normal 4×4 and a cloud of perturbed
eigenvalues); then a head of the loaded model, its eigenvalues in float32 against float64 and the theorem."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching_matrices as tm
from explorer.figures import learn_matrices as figures
from explorer.figures.learn import format_complex
from explorer.models import Capture, LoadedModel
from explorer.ui.learn.matrices_cache import head_precision
from explorer.ui.learn.walkthrough import (
    PAGE,
    Prose,
    causal_note,
    head_pickers,
    link,
    on_model,
    small_first,
)
from explorer.ui.session import selection
from explorer.ui.state import Flag, Float

TOO_SHORT = "The text is a single token: its attention is the 1×1 matrix (1). Add some words in the sidebar."
COUPLING = Float("cd_s", 1.0, 0.0, 3.0, key="cd_s")
LOG_EPS = Float("cd_eps", -3.0, -8.0, -1.0, key="cd_eps")
ROTATE = Flag("cd_rotate", True, key="cd_rotate")
SAMPLES = 200


def _small(coupling: float, log_eps: float) -> None:
    A = tm.nonnormal_example(coupling)
    cloud = tm.perturbation_cloud(A, 10**log_eps, SAMPLES)
    rows = ["| λ | κ(λ) | κ·ε | largest \\|Δλ\\| seen | seen / (κ·ε) |", "|---|---|---|---|---|"]
    rows += [
        f"| {format_complex(lam)} | {k:.4g} | {k * cloud.eps:.3g} | {m:.3g} | {r:.2f} |"
        for lam, k, m, r in zip(cloud.eigvals, cloud.kappa, cloud.max_shift, cloud.ratio, strict=True)
    ]
    st.markdown("\n".join(rows))
    st.caption(
        f"{SAMPLES} random E with ‖E‖₂ = ε = {cloud.eps:.1e}. To first order |Δλ| ≤ κ(λ)·ε; the ratio stays at or "
        "below about 1 while κ·ε is small next to the gaps between eigenvalues."
    )
    st.plotly_chart(figures.make_perturbation_figure(cloud), width="stretch", key="learn_cd_cloud")


@on_model(2, TOO_SHORT)
def _model(loaded: LoadedModel, cap: Capture) -> None:
    layer, head = head_pickers("cd", loaded.card.n_layers, loaded.card.n_heads)
    rotate = (
        bool(PAGE.toggle(ROTATE, "Hide the triangle: analyse Q A Qᵀ (same eigenvalues)"))
        if cap.causal
        else False
    )
    if not cap.causal:
        PAGE.bind(ROTATE, link=False)
    sel = selection()
    with st.spinner("Eigenvalues in float32 and float64…"):
        res = head_precision(sel.model_key, sel.text_key, layer, head, rotate)
    n = len(res.reference)
    if cap.causal:
        causal_note(loaded.id)
    reference = "A's diagonal (exact)" if res.exact else "float64's eigenvalues (the reference)"
    st.markdown(
        f"{'Q A Qᵀ' if res.rotated else 'A'} is {n}×{n}; κ(λ) runs from {np.min(res.kappa):.3g} to "
        f"{np.max(res.kappa):.3g}. Against {reference}: float32 is off by up to **{res.err32.max():.3g}**"
        + (f", float64 by up to **{res.err64.max():.3g}**" if res.exact else "")
        + f". First-order theory allows κ(λ)·n·eps·‖A‖₂ (times {tm.SAFETY:g} for LAPACK's constant): "
        f"**{res.within32} of {n}** float32 eigenvalues"
        + (f" and **{res.within64} of {n}** float64 ones" if res.exact else "")
        + " are within it."
    )
    if cap.causal and not res.rotated:
        st.caption(
            "LAPACK balances A first, which permutes a triangular matrix into triangular form: it reads the "
            "diagonal exactly in any precision. Hide the triangle (toggle) to see what conditioning does."
        )
    st.plotly_chart(figures.make_precision_figure(res), width="stretch", key="learn_cd_model")


def _controls() -> tuple[float, float]:
    coupling = PAGE.slider(COUPLING, "Coupling (above the diagonal of T)", step=0.05)
    log_eps = PAGE.slider(LOG_EPS, "log₁₀ ε (size of the perturbation)", step=0.5)
    st.caption("A = Q T Qᵀ: T upper triangular with diagonal 1, 0.75, 0.5, 0.25; Q a fixed rotation.")
    return coupling, log_eps


def render(prose: Prose) -> None:
    small_first(prose, _controls, _small, _model)
    link(["attention"], "Eigenvalues of every head (float64 geev, as this walkthrough recommends)")


def handout_figures(seed: int) -> list:
    """The default non-normal 4×4's perturbation cloud (the same for every seed)."""
    cloud = tm.perturbation_cloud(tm.nonnormal_example(COUPLING.default), 10**LOG_EPS.default, SAMPLES)
    return [figures.make_perturbation_figure(cloud)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Conditioning & perturbation"
PARAMS = (COUPLING.param, LOG_EPS.param, ROTATE.param, "layer", "head")
MODEL_LINK = {}
PREREQUISITES = ("nonnormal", "charpoly")
exercises = tm.conditioning_exercises
