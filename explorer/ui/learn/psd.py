"""Walkthrough: the spectral theorem and positive (semi)definite matrices; a quadratic form as an ellipse, then the
covariance of the loaded model's hidden states (positive semidefinite, with many eigenvalues exactly 0)."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching_matrices as tm
from explorer.figures import learn_matrices as figures
from explorer.models import Capture, LoadedModel
from explorer.ui.learn.matrices_cache import hidden_covariance
from explorer.ui.learn.walkthrough import PAGE, Prose, layer_picker, link, on_model, small_first
from explorer.ui.session import selection
from explorer.ui.state import Float

ENTRIES = {
    "a": Float("psd_a", 2.0, -3.0, 3.0, key="psd_a"),
    "b": Float("psd_b", 0.8, -3.0, 3.0, key="psd_b"),
    "c": Float("psd_c", 1.0, -3.0, 3.0, key="psd_c"),
}

TOO_SHORT = "The text is a single token: a covariance needs at least two. Add some words in the sidebar."

KIND_TEXT = {
    "positive definite": "both eigenvalues > 0: xᵀSx > 0 for every x ≠ 0, and q(x) = 1 is an ellipse",
    "positive semidefinite": "one eigenvalue is 0: q vanishes along its eigenvector, and q(x) = 1 is two lines",
    "indefinite": "eigenvalues of both signs: q(x) = 1 is a hyperbola",
    "negative definite": "both eigenvalues < 0: q(x) = 1 has no points",
    "negative semidefinite": "eigenvalues ≤ 0: q(x) = 1 has no points",
    "zero": "S = 0",
}


def _controls() -> tuple[tm.QuadraticForm]:
    a = PAGE.slider(ENTRIES["a"], "a (top left)", step=0.05)
    b = PAGE.slider(ENTRIES["b"], "b (off the diagonal, both places)", step=0.05)
    c = PAGE.slider(ENTRIES["c"], "c (bottom right)", step=0.05)
    return (tm.quadratic_form(a, b, c),)


def _show_small(form: tm.QuadraticForm) -> None:
    (a, b), (_, c) = form.matrix
    st.latex(
        rf"S = \begin{{pmatrix}} {a:.4g} & {b:.4g} \\ {b:.4g} & {c:.4g} \end{{pmatrix}} = Q \Lambda Q^\top,\quad "
        rf"\lambda_1 = {form.eigvals[0]:.4g},\ \lambda_2 = {form.eigvals[1]:.4g}"
    )
    st.markdown(f"S is **{form.kind}**: {KIND_TEXT[form.kind]}.")
    cols = st.columns(3)
    for col, i in zip(cols[:2], range(2), strict=True):
        half = form.half_axes[i]
        col.metric(
            f"half-axis along v{i + 1}", f"{half:.4g}" if half < float("inf") else "∞", help=f"1/√λ{i + 1}"
        )
    cols[2].metric("det S = λ₁λ₂", f"{form.eigvals[0] * form.eigvals[1]:.4g}")
    st.plotly_chart(figures.make_quadratic_form_figure(form), width="stretch", key="learn_psd_form")


@on_model(2, TOO_SHORT, icon=":material/warning:")
def _model(loaded: LoadedModel, cap: Capture) -> None:
    layer = layer_picker("psd", loaded.card.n_layers, "Hidden state after block")
    sel = selection()
    with st.spinner("Eigenvalues of the covariance…"):
        res = hidden_covariance(sel.model_key, sel.text_key, layer)
    st.markdown(
        f"X holds the {res.n_tokens} tokens' hidden states after block {layer} ({res.n_tokens}×{res.d_model}). "
        f"C = XcᵀXc/(n − 1) (Xc: X minus its mean token) is symmetric and positive semidefinite: its smallest eigenvalue is "
        f"**{res.min_eigval:.3g}**, within rounding ({res.zero_tol:.2g}) of 0 or above. Centred, n tokens span at "
        f"most n − 1 = {res.rank_bound} directions, so at least {res.d_model - res.rank_bound} of the "
        f"{res.d_model} eigenvalues must be 0: **{res.n_zero}** are (|λ| ≤ {res.zero_tol:.2g}), "
        f"**{res.n_nonzero}** are not. The {res.n_tokens}×{res.n_tokens} Gram matrix XcXcᵀ/(n − 1) has the same "
        "nonzero eigenvalues."
    )
    cols = st.columns(4)
    cols[0].metric("λ_max", f"{res.cov_eigvals[0]:.4g}")
    cols[1].metric("λ_min", f"{res.min_eigval:.3g}")
    cols[2].metric("eigenvalues ≈ 0", f"{res.n_zero} of {res.d_model}")
    cols[3].metric("most nonzero", f"{res.rank_bound}", help="min(n − 1, d_model)")
    st.plotly_chart(figures.make_covariance_spectrum_figure(res), width="stretch", key="learn_psd_model")


def render(prose: Prose) -> None:
    small_first(prose, _controls, _show_small, _model)
    link(["directions"], "The principal directions of the hidden states, on the real text")


def handout_figures(seed: int) -> list:
    """The quadratic form of the default S (the same for every seed; the exercises carry the student's numbers)."""
    return [figures.make_quadratic_form_figure(tm.quadratic_form(*(s.default for s in ENTRIES.values())))]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Spectral theorem & positive definite"
PARAMS = (*(s.param for s in ENTRIES.values()), "layer")
MODEL_LINK = {}
PREREQUISITES = ("charpoly",)
exercises = tm.psd_exercises
