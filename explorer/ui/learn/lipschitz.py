"""Walkthrough: spectral normalisation and Lipschitz bounds, on a random stack or the loaded model's blocks."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching_models as tm
from explorer.analysis.exercises import Exercise, instance_rng
from explorer.figures import learn_models as figures
from explorer.ui.learn.models_cache import lipschitz_of_model
from explorer.ui.learn.walkthrough import PAGE, Prose, link, source_switch
from explorer.ui.session import require_model, selection
from explorer.ui.state import Choice, Flag, Float, Int

ID = "lipschitz"
SOURCE = source_switch("lz", "Random stack", "Blocks of the loaded model")
DEPTH = Int("lz_depth", 8, 1, 30, key="lz_depth")
SCALE = Float("lz_scale", 1.0, 0.2, 2.0, key="lz_scale")
ACTS = {"none": "none (linear)", "relu": "ReLU", "tanh": "tanh"}
ACT = Choice("lz_act", "relu", ACTS, key="lz_act")
NORMALIZE = Flag("lz_sn", False, key="lz_sn")
WIDTH = 16


def exercises(seed: int) -> tuple[Exercise, ...]:
    """The product bound of two maps, and whether it can be loose."""
    rng = instance_rng(seed, ID, "bound")
    a1, a2 = (float(x) for x in rng.choice([0.5, 1.5, 2.0, 3.0, 4.0], size=2, replace=False))
    b1, b2 = (float(x) for x in rng.choice([0.5, 1.0, 2.5, 3.0, 5.0], size=2, replace=False))
    theta = int(rng.choice([20, 45, 70]))
    bound = max(a1, a2) * max(b1, b2)
    return (
        Exercise(
            id="bound",
            question=f"A = R({theta}°)·diag({a1:g}, {a2:g}) and B = diag({b1:g}, {b2:g})·R(−{theta}°), with R a "
            "rotation, and f(x) = B·relu(A x). What is the product bound on f's Lipschitz constant, "
            "σ_max(B)·1·σ_max(A)?",
            answer=bound,
            tolerance=0.01,
            hint="A rotation does not change singular values: σ_max of R·diag(d) is max |d|.",
            solution=f"σ_max(A) = max({a1:g}, {a2:g}) = {max(a1, a2):g}, σ_max(B) = {max(b1, b2):g}, ReLU is "
            f"1-Lipschitz: the bound is **{bound:g}**.",
        ),
        Exercise(
            id="tight",
            question="For two matrices, can ‖BA‖₂ be strictly smaller than σ_max(B)·σ_max(A)?",
            answer=0,
            choices=(
                "Yes: when A's top output direction is not B's top input direction",
                "No: ‖BA‖₂ = ‖B‖₂‖A‖₂ always",
                "Only if A or B is singular",
            ),
            hint="Try A = diag(1, 0) and B = diag(0, 1).",
            solution="Yes. ‖BA‖₂ ≤ ‖B‖₂‖A‖₂ is equality only when A's top left singular vector is B's top right "
            "one. A = diag(1, 0), B = diag(0, 1): the bound is 1, BA = 0. Over a deep stack these gaps "
            "multiply, which is why the product bound is often very loose.",
        ),
    )


def _example(controls) -> None:
    depth = PAGE.slider(DEPTH, "Depth L", where=controls)
    scale = PAGE.slider(SCALE, "Weight scale", where=controls, step=0.05, help="Entries N(0, scale²/width).")
    act = PAGE.segmented_control(ACT, "Activation", where=controls, format_func=ACTS.get)
    normalize = PAGE.toggle(NORMALIZE, "Spectral normalisation: divide each W by its σ_max", where=controls)
    ls = tm.lipschitz_stack(tm.random_stack(depth, WIDTH, scale, normalize=normalize), act)
    cols = st.columns(4)
    cols[0].metric("bound ∏σ_max", f"{ls.bound[-1]:.3g}")
    cols[1].metric("‖W_L⋯W_1‖₂", f"{ls.linear_norm[-1]:.3g}", help="Exact for the stack without activations.")
    cols[2].metric("largest measured", f"{ls.amplification[-1].max():.3g}",
                   help="Over 64 random nearby pairs of inputs.")  # fmt: skip
    slack = ls.bound[-1] / max(ls.amplification[-1].max(), 1e-300)
    cols[3].metric("bound / measured", f"{slack:.3g}")
    slack0 = ls.bound[0] / max(ls.amplification[0].max(), 1e-300)
    holds = bool(np.all(ls.amplification <= ls.bound[:, None] * (1 + 1e-12)))
    st.caption(
        f"{depth} random {WIDTH}×{WIDTH} layers. The bound "
        + ("holds: measured ≤ bound at every depth" if holds else "is exceeded (a rounding error)")
        + f". It is {slack0:.3g} times the largest measured amplification after one layer and {slack:.3g} "
        f"times after {depth}: each layer's top direction rarely lines up with the next one's."
    )
    st.plotly_chart(figures.make_lipschitz_stack_figure(ls), width="stretch", key="learn_lz_stack")


def _model() -> None:
    loaded = require_model()
    ml = lipschitz_of_model(selection().model_key)
    worst = np.nanargmax(ml.sigma)
    layer, j = np.unravel_index(worst, ml.sigma.shape)
    cols = st.columns(3)
    cols[0].metric("largest σ_max", f"{np.nanmax(ml.sigma):.3g}",
                   help=f"{figures.KIND_LABELS[ml.kinds[j]]} of layer {layer}")  # fmt: skip
    cols[1].metric("bound over all blocks", f"10^{ml.log10_bound[-1]:.1f}")
    cols[2].metric("layers", f"{len(ml.path)}")
    st.caption(
        f"Each block of {loaded.id} counted as x ↦ x + W_O W_V x + W_down act(W_up x): residual, value-output path "
        "and MLP, with the attention weights, LayerNorm and gating left out (LayerNorm divides by a norm that "
        "can be small, and attention is not globally Lipschitz, so a real bound is worse). Even this "
        "optimistic bound grows geometrically with depth."
    )
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.make_model_sigma_figure(ml), width="stretch", key="learn_lz_sigma")
    with c2:
        st.plotly_chart(figures.make_model_bound_figure(ml), width="stretch", key="learn_lz_bound")


def render(prose: Prose) -> None:
    SOURCE.beside_intro(prose, "Stack", _example, lambda _right: _model())
    link(["weights"], "σ_max, stable rank and heavy tails of every weight matrix")


def handout_figures(seed: int) -> list:
    """The random stack at its default settings (the handout has no model)."""
    mats = tm.random_stack(DEPTH.default, WIDTH, SCALE.default)
    return [figures.make_lipschitz_stack_figure(tm.lipschitz_stack(mats, ACT.default))]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Lipschitz bounds & spectral normalisation"
PARAMS = (SOURCE.param, DEPTH.param, SCALE.param, ACT.param, NORMALIZE.param)
MODEL_LINK = SOURCE.model_link
PREREQUISITES = ("svd",)
