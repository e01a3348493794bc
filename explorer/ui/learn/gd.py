"""Walkthrough 3: gradient descent on a 2-D quadratic, and the loaded model's own 2/λ_max when it is known."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching
from explorer.errors import ExplorerError
from explorer.figures import learn as figures
from explorer.spectra.curvature import stability_threshold
from explorer.ui import curvature_cache
from explorer.ui.cache import cached_model
from explorer.ui.learn.walkthrough import PAGE, Prose, layout, link
from explorer.ui.session import selection
from explorer.ui.state import Float

ID = "gd"
L1 = Float("l1", 4.0, 0.1, 10.0, key="gd_l1")
L2 = Float("l2", 0.5, 0.1, 10.0, key="gd_l2")
DEFAULT_ETA = 0.3  # or the optimal step, when that is smaller


def _eta_setting(steps: teaching.StepRange):
    """The step size: its range depends on the curvatures (0 to 1.25 · 2/λ_max)."""
    return Float("eta", min(DEFAULT_ETA, steps.eta_opt), steps.resolution, steps.high, key="gd_eta")


def _controls() -> tuple[float, float, float]:
    """The curvature sliders, the step slider and its two buttons; returns (l1, l2, eta)."""
    c1, c2 = st.columns(2)
    with c1:
        l1 = PAGE.slider(L1, "Curvature λ₁", step=0.1)
    with c2:
        l2 = PAGE.slider(L2, "Curvature λ₂", step=0.1)
    steps = teaching.gd_step_range(l1, l2)
    eta_setting = _eta_setting(steps)
    eta = PAGE.slider(eta_setting, "Step size η", step=steps.resolution, format="%.4f")
    # The buttons set η through the page state before the next run draws the slider (a callback).
    buttons = (("Optimal step", steps.eta_opt, "opt"), ("Just past 2/λ_max", steps.past, "past"))
    for column, (label, value, key) in zip(st.columns(2), buttons, strict=True):
        column.button(
            label, on_click=PAGE.set, args=(eta_setting, value), key=f"learn_gd_{key}", width="stretch"
        )
    return l1, l2, eta


def render(prose: Prose) -> None:
    with layout(prose):
        l1, l2, eta = _controls()

    res = teaching.gradient_descent(l1, l2, eta)
    cols = st.columns(5)
    cols[0].metric("κ = λ_max/λ_min", f"{res.condition:.3g}")
    cols[1].metric("2/λ_max", f"{res.eta_max:.4g}", help="Any larger step diverges.")
    cols[2].metric("optimal η*", f"{res.eta_opt:.4g}", help="2/(λ_max + λ_min): balances both directions.")
    cols[3].metric(
        "rate at your η", f"{res.rate:.4g}", help="max |1 − ηλᵢ|: the error is multiplied by this per step."
    )
    cols[4].metric("best rate", f"{res.rate_opt:.4g}", help="(κ − 1)/(κ + 1), reached at η*.")
    if res.diverges:
        st.warning(
            f"η = {eta:.4g} > 2/λ_max = {res.eta_max:.4g}: along the steep axis |1 − ηλ_max| = "
            f"{abs(res.factors[0]):.3g} > 1, so gradient descent diverges.",
            icon=":material/trending_up:",
        )
    c1, c2 = st.columns([1, 1])
    with c1:
        st.plotly_chart(figures.make_gd_contour_figure(res), width="stretch", key="learn_gd_contour")
    with c2:
        st.plotly_chart(figures.make_gd_decay_figure(res), width="stretch", key="learn_gd_decay")
        st.plotly_chart(figures.make_gd_rate_figure(res), width="stretch", key="learn_gd_rate")
    real_curvature(res.eigvals[0], res.eta_max)
    link(
        ["weights"],
        "The same ratio κ = σ₁/σ_min measures how unevenly each weight matrix of the loaded model stretches",
    )


def handout_figures(seed: int) -> list:
    """The default view (curvatures 4 and 0.5, η = 0.3): the path over the contours and the decay per
    eigen-direction. The same for every seed (the exercises state their own curvatures)."""
    steps = teaching.gd_step_range(L1.default, L2.default)
    res = teaching.gradient_descent(L1.default, L2.default, _eta_setting(steps).default)
    return [figures.make_gd_contour_figure(res), figures.make_gd_decay_figure(res)]


def real_curvature(quadratic_lam_max: float, quadratic_eta_max: float) -> None:
    """The loaded model's whole-model λ_max next to the quadratic's when the Curvature page (any session, or
    an earlier process through its disk cache) has computed it; a link there otherwise. Never computes it:
    a whole-model Hessian takes tens of seconds to minutes."""
    sel = selection()
    try:
        lam = curvature_cache.known_lambda_max(sel.model_key, sel.text, sel.max_tokens)
        loaded = cached_model(sel.model_key)
    except ExplorerError:
        lam = None
    if lam is None:
        link(
            ["curvature"],
            "The real loss of the loaded model has a Hessian too: compute its λ_max",
            query_params={"block": "all"},
        )
        return
    loss = (
        "next-token cross-entropy on the sidebar text"
        if loaded.causal
        else "contrastive loss on shipped pairs"
    )
    st.markdown(f"**The real thing.** The Hessian of {loaded.id}'s {loss}, over every parameter:")
    cols = st.columns(4)
    cols[0].metric("λ_max (model)", f"{lam:.4g}", help="Top eigenvalue of the loss Hessian, whole model.")
    cols[1].metric(
        "2/λ_max (model)",
        f"{stability_threshold(lam):.4g}",
        help="The largest stable gradient-descent step for the model's loss near its weights.",
    )
    cols[2].metric("λ_max (this quadratic)", f"{quadratic_lam_max:.4g}")
    cols[3].metric("2/λ_max (this quadratic)", f"{quadratic_eta_max:.4g}")
    link(["curvature"], "Its whole spectrum, layer by layer", query_params={"block": "all"})


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Gradient descent"
PARAMS = (L1.param, L2.param, "eta")
MODEL_LINK = {}  # always: it shows the model's λ_max when the Curvature page has computed it
PREREQUISITES = ("matrix2x2",)
exercises = teaching.gd_exercises
