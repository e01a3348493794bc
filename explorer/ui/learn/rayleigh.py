"""Walkthrough: the Rayleigh quotient over the unit sphere, Courant-Fischer's min-max, Cauchy interlacing; then
interlacing checked on the covariance of the loaded model's hidden states with one coordinate dropped."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching_matrices as tm
from explorer.figures import learn_matrices as figures
from explorer.models import Capture, LoadedModel
from explorer.ui.learn.matrices_cache import hidden_interlacing
from explorer.ui.learn.walkthrough import PAGE, Prose, layer_picker, link, on_model, small_first
from explorer.ui.session import selection
from explorer.ui.state import Float, Int

TOO_SHORT = "The text is a single token: a covariance needs at least two. Add some words in the sidebar."
EIGS = tuple(
    Float(f"ry_l{i}", default, -3.0, 3.0, key=f"ry_l{i}")
    for i, default in zip((1, 2, 3), (2.5, 1.0, -1.5), strict=True)
)
DROP = Int("ry_drop", 0, 0, 2, key="ry_drop")
SHOWN = 12  # the model's interlacing figure shows the top SHOWN eigenvalues


def _small(values: list[float], dropped: int) -> None:
    S = tm.symmetric_with_eigvals(values)
    sphere = tm.rayleigh_sphere(S)
    lam = sphere.eigvals
    rows = r" \\ ".join(" & ".join(f"{x:.3f}" for x in row) for row in S)
    st.latex(
        rf"S = \begin{{pmatrix}} {rows} \end{{pmatrix}},\quad \lambda = {lam[0]:.4g},\ {lam[1]:.4g},\ {lam[2]:.4g}"
    )
    st.markdown(
        f"Over the unit sphere r(x) ranges over [λ₃, λ₁] = [{lam[2]:.4g}, {lam[0]:.4g}] (on the map: "
        f"{sphere.values.min():.4g} to {sphere.values.max():.4g}, a grid's view). Its maximum is at ±v₁, its minimum "
        "at ±v₃, and ±v₂ is a saddle."
    )
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.make_rayleigh_sphere_figure(sphere), width="stretch", key="learn_ry_sphere")
    with c2:
        mm = tm.min_max_curve(S)
        st.plotly_chart(figures.make_minmax_figure(mm), width="stretch", key="learn_ry_minmax")
        st.caption(
            f"min over u of the blue curve = {mm.upper.min():.6g} and max of the orange = {mm.lower.max():.6g}: "
            f"both λ₂ = {lam[1]:.6g}."
        )
    inter = tm.interlacing(S, dropped)
    mu = inter.sub_eigvals
    st.markdown(
        f"Dropping row and column {dropped} leaves a 2×2 with eigenvalues μ = {mu[0]:.4g}, {mu[1]:.4g}: "
        f"{lam[0]:.4g} ≥ {mu[0]:.4g} ≥ {lam[1]:.4g} ≥ {mu[1]:.4g} ≥ {lam[2]:.4g}"
        + (" holds." if inter.holds else f" fails {inter.violations} time(s).")
    )
    st.plotly_chart(figures.make_interlacing_figure(inter), width="stretch", key="learn_ry_interlace")


@on_model(2, TOO_SHORT)
def _model(loaded: LoadedModel, cap: Capture) -> None:
    d = loaded.card.d_model
    c1, c2 = st.columns(2)
    layer = layer_picker("ry", loaded.card.n_layers, "Hidden state after block", where=c1)
    dim = PAGE.number_input(
        Int("ry_dim", 0, 0, d - 1, key="ry_dim"), f"Coordinate to drop (0–{d - 1})", where=c2, step=1
    )
    sel = selection()
    with st.spinner("Eigenvalues of the covariance and of its principal submatrix…"):
        res = hidden_interlacing(sel.model_key, sel.text_key, layer, int(dim))
    n = len(res.eigvals)
    st.markdown(
        f"C is the {n}×{n} covariance of the hidden states after block {layer}; C without row and column {dim} "
        f"is {n - 1}×{n - 1}. Of the {2 * (n - 1)} inequalities λᵢ ≥ μᵢ ≥ λᵢ₊₁, **{2 * (n - 1) - res.violations}** "
        f"hold to rounding ({res.tol:.2g})"
        + (": all of them, as the theorem says." if res.holds else f"; {res.violations} fail.")
        + f" Top: λ₁ = {res.eigvals[0]:.5g} ≥ μ₁ = {res.sub_eigvals[0]:.5g} ≥ λ₂ = {res.eigvals[1]:.5g}."
    )
    st.plotly_chart(figures.make_interlacing_figure(res, top=SHOWN), width="stretch", key="learn_ry_model")
    st.caption(f"The top {min(SHOWN, n - 1)} of each; every band [λᵢ₊₁, λᵢ] holds exactly one μᵢ.")


def _controls() -> tuple[list[float], int]:
    values = [PAGE.slider(s, f"λ{i + 1} (sorted on the page)", step=0.05) for i, s in enumerate(EIGS)]
    dropped = PAGE.slider(DROP, "Drop row and column")
    st.caption("S = Q diag(λ) Qᵀ with Q a fixed random rotation.")
    return values, int(dropped)


def render(prose: Prose) -> None:
    small_first(prose, _controls, _small, _model)
    link(["directions"], "The top principal directions of the hidden states (the top of this spectrum)")


def handout_figures(seed: int) -> list:
    """The default S's Rayleigh map, min-max curves and interlacing (the same for every seed)."""
    S = tm.symmetric_with_eigvals([s.default for s in EIGS])
    return [
        figures.make_rayleigh_sphere_figure(tm.rayleigh_sphere(S)),
        figures.make_minmax_figure(tm.min_max_curve(S)),
        figures.make_interlacing_figure(tm.interlacing(S, DROP.default)),
    ]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Rayleigh quotient & interlacing"
PARAMS = (*(s.param for s in EIGS), DROP.param, "layer", "ry_dim")
MODEL_LINK = {}
PREREQUISITES = ("psd",)
exercises = tm.rayleigh_exercises
