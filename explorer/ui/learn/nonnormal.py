"""Walkthrough 5: transient growth of a non-normal matrix, and its Schur form."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching
from explorer.figures import learn as figures
from explorer.ui.learn.walkthrough import PAGE, Prose, layout, link
from explorer.ui.state import Float, Int

ID = "nonnormal"
SIZE = Int("n", 6, 2, 12, key="nn_n")
RHO = Float("rho", 0.95, 0.5, 1.1, key="nn_rho")
COUPLING = Float("s", 1.0, 0.0, 3.0, key="nn_s")
STEPS = 60  # powers J^t shown, t = 0..STEPS


def render(prose: Prose) -> None:
    with layout(prose):
        n = PAGE.slider(SIZE, "Size n")
        rho = PAGE.slider(RHO, "Spectral radius ρ", step=0.01)
        s = PAGE.slider(COUPLING, "Coupling (superdiagonal of T)", step=0.05)
        st.caption(
            "J = Q T Qᵀ: T has diagonal ρ, …, 0.6ρ (distinct, so J is diagonalizable) and the coupling just "
            "above it; Q is a fixed random rotation so J looks dense."
        )
    res = teaching.transient_growth(teaching.nonnormal_matrix(n, rho, s), steps=STEPS)
    cols = st.columns(4)
    cols[0].metric("ρ(J)", f"{res.rho:.4g}")
    cols[1].metric("‖J‖₂", f"{res.norms[1]:.4g}", help="Growth in one step can be as large as this.")
    cols[2].metric(
        "κ(V)", f"{res.kappa_V:.3g}", help="Condition number of the (unit-column) eigenvector matrix."
    )
    cols[3].metric("peak ‖J^t‖", f"{res.peak_norm:.3g}", help=f"at t = {res.peak_t}")
    st.plotly_chart(figures.make_transient_figure(res), width="stretch", key="learn_transient")
    st.plotly_chart(figures.make_schur_figure(res), width="stretch", key="learn_schur")
    link(
        ["gershgorin", "attention"],
        "Attention matrices are strongly non-normal (causal ones triangular); see bounds on their eigenvalues",
    )


def handout_figures(seed: int) -> list:
    """The default view (n = 6, ρ = 0.95, coupling 1): ‖J^t‖ between its bounds, and the Schur form. The same
    for every seed (the exercises state their own matrix)."""
    res = teaching.transient_growth(
        teaching.nonnormal_matrix(SIZE.default, RHO.default, COUPLING.default), steps=STEPS
    )
    return [figures.make_transient_figure(res), figures.make_schur_figure(res)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Non-normal growth"
PARAMS = (SIZE.param, RHO.param, COUPLING.param)
PREREQUISITES = ("matrix2x2", "power")
exercises = teaching.nonnormal_exercises
