"""Walkthrough: recurrent dynamics h_{t+1} = W h_t, on a small matrix or a head's OV core."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching
from explorer.analysis import teaching_models as tm
from explorer.analysis.exercises import Exercise, instance_rng
from explorer.figures import learn_models as figures
from explorer.ui.learn.models_cache import RECURRENT_STEPS, recurrent_on_head
from explorer.ui.learn.walkthrough import PAGE, Prose, head_pickers, layout, link, source_switch
from explorer.ui.session import require_model, selection
from explorer.ui.state import Choice, Float, Int

ID = "recurrent"
SOURCE = source_switch("rc", "Small W", "A head's OV core", model_value="head")
SIZE = Int("rc_n", 4, 2, 10, key="rc_n")
RHO = Float("rc_rho", 0.9, 0.5, 1.2, key="rc_rho")
COUPLING = Float("rc_s", 0.0, 0.0, 3.0, key="rc_s")
SCALES = {"raw": "C as it is", "scaled": "C / ρ(C)"}
SCALE = Choice("rc_scale", "raw", SCALES, key="rc_scale")
VERDICTS = {
    "explodes": "ρ > 1: ‖hₜ‖ eventually grows like ρᵗ (exploding).",
    "vanishes": "ρ < 1: ‖hₜ‖ eventually shrinks like ρᵗ (vanishing).",
    "neither": "ρ = 1: the norms neither explode nor vanish geometrically.",
}
CHOICES = (
    "h_t → 0 (vanishes)",
    "‖h_t‖ → ∞ for almost every start (explodes)",
    "it depends on the coupling s",
)


def exercises(seed: int) -> tuple[Exercise, ...]:
    """The spectral radius of a triangular 2x2 W, and what happens to h_t in the long run."""
    rng = instance_rng(seed, ID, "radius")
    a = float(rng.choice([-1.2, -0.9, -0.6, 0.5, 0.8, 1.1, 1.3]))
    b = float(rng.choice([-0.7, -0.4, 0.3, 0.6, 0.95]))
    s = float(rng.choice([2.0, 4.0, 8.0]))
    rho = max(abs(a), abs(b))
    W = f"W = [[{a:g}, {s:g}], [0, {b:g}]]"
    return (
        Exercise(
            id="radius",
            question=f"{W}. What is its spectral radius ρ(W)?",
            answer=rho,
            tolerance=0.01,
            hint="W is triangular: its eigenvalues are on the diagonal. The coupling does not enter.",
            solution=f"The eigenvalues of a triangular matrix are its diagonal entries, {a:g} and {b:g}, so "
            f"ρ = max(|{a:g}|, |{b:g}|) = **{rho:g}**, whatever the coupling {s:g}.",
        ),
        Exercise(
            id="fate",
            question=f"{W}, h_(t+1) = W h_t from a random h₀. What happens as t → ∞?",
            answer=0 if rho < 1 else 1,
            choices=CHOICES,
            hint="The coupling can make ‖hₜ‖ grow for a while, but Gelfand: ‖Wᵗ‖^(1/t) → ρ(W).",
            solution=f"ρ(W) = {rho:g} {'<' if rho < 1 else '>'} 1, so ‖Wᵗ‖ ≈ C ρᵗ for large t: h_t "
            + ("**vanishes**, even if a large coupling makes it grow first." if rho < 1 else "**explodes**."),
        ),
    )


def render(prose: Prose) -> None:
    with layout(prose):
        source = SOURCE.pick("Matrix")
        if source == "example":
            n = PAGE.slider(SIZE, "Size n")
            rho = PAGE.slider(RHO, "Spectral radius ρ", step=0.01)
            s = PAGE.slider(COUPLING, "Coupling (non-normal part)", step=0.05)
            st.caption(
                "W = Q T Qᵀ as in the non-normal walkthrough: eigenvalues ρ, …, 0.6ρ; the coupling above T's diagonal."
            )
            rp = tm.recurrent_powers(teaching.nonnormal_matrix(n, rho, s), RECURRENT_STEPS)
            title = "W"
        else:
            loaded = require_model()
            layer, head = head_pickers("rc", loaded.card.n_layers, loaded.card.n_heads)
            scale = PAGE.segmented_control(SCALE, "Iterate", format_func=SCALES.get)
            rp = recurrent_on_head(selection().model_key, layer, head, scale == "scaled")
            title = f"OV core of L{layer} H{head}"
            st.caption(
                "C = W_O W_V (d_head × d_head) carries all of the head's OV dynamics: (W_V W_O)ᵗ = W_V Cᵗ⁻¹ W_O. "
                "Dividing by ρ(C) removes the exponential trend, so what is left is the non-normal part."
            )  # fmt: skip
    cols = st.columns(4)
    cols[0].metric("ρ(W)", f"{rp.rho:.4g}")
    cols[1].metric("‖W‖₂", f"{rp.sigma_max:.4g}", help="One step can grow a vector by up to this.")
    cols[2].metric("peak ‖Wᵗ‖₂", f"{rp.norms.max():.4g}", help=f"at t = {rp.peak_t}")
    cols[3].metric("non-normality", f"{rp.normal_gap:.3g}", help="‖WWᵀ − WᵀW‖_F / ‖W‖_F²; 0 for a normal W.")
    st.markdown(VERDICTS[rp.verdict])
    if rp.rho < 1 and rp.norms.max() > 1 + 1e-9:
        st.warning(
            f"ρ < 1, yet ‖Wᵗ‖ reaches {rp.norms.max():.3g} at t = {rp.peak_t}: the eigenvalues say 'vanishing', "
            "the first steps say 'exploding'. That is non-normality.",
            icon=":material/trending_up:",
        )
    c1, c2 = st.columns([3, 2])
    with c1:
        st.plotly_chart(figures.make_recurrent_figure(rp, title), width="stretch", key="learn_rc_powers")
    with c2:
        st.plotly_chart(figures.make_recurrent_eigs_figure(rp), width="stretch", key="learn_rc_eigs")
    link(
        ["learn"],
        "Why non-normal W misleads: the walkthrough on non-normal growth",
        {"walkthrough": "nonnormal"},
    )
    link(["circuits"], "OV eigenvalues and copying scores of every head")


def handout_figures(seed: int) -> list:
    """A non-normal W with rho < 1 (coupling 2): growth first, decay later (the handout has no model)."""
    rp = tm.recurrent_powers(teaching.nonnormal_matrix(SIZE.default, RHO.default, 2.0), RECURRENT_STEPS)
    return [figures.make_recurrent_figure(rp, "W"), figures.make_recurrent_eigs_figure(rp)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Recurrent dynamics"
PARAMS = (SOURCE.param, SIZE.param, RHO.param, COUPLING.param, SCALE.param, "layer", "head")
MODEL_LINK = SOURCE.model_link
PREREQUISITES = ("nonnormal",)
