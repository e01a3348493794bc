"""Walkthrough: the characteristic polynomial, diagonalisation A = V Λ V⁻¹, powers and defective matrices; then
a head of the loaded model (its attention matrix or its OV core) and the condition number of its V."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching_matrices as tm
from explorer.figures import learn_matrices as figures
from explorer.figures.learn import format_complex
from explorer.ui.learn.matrices_cache import POWER_STEPS, head_diagonalisation
from explorer.ui.learn.walkthrough import (
    PAGE,
    Prose,
    causal_note,
    head_pickers,
    link,
    small_first,
)
from explorer.ui.session import require_capture, selection
from explorer.ui.state import Choice, Float, Int

DELTA = Float("cp_delta", 0.3, 0.0, 1.0, key="cp_delta")
POWER = Int("cp_k", 5, 1, POWER_STEPS, key="cp_k")
MATRICES = {"attention": "Attention A", "ov": "OV core W_O W_V"}
MATRIX = Choice("cp_matrix", "attention", MATRICES, key="cp_matrix")


def _latex_matrix(M: np.ndarray) -> str:
    rows = [" & ".join(f"{x:.4g}" for x in row) for row in np.real_if_close(M)]
    return r"\begin{pmatrix}" + r" \\ ".join(rows) + r"\end{pmatrix}"


def _poly_latex(coeffs: np.ndarray) -> str:
    terms = []
    n = len(coeffs) - 1
    for i, c in enumerate(np.real(coeffs)):
        power = n - i
        if abs(c) < 1e-12:
            continue
        mag = abs(c)
        body = ("" if abs(mag - 1) < 1e-12 and power else f"{mag:.4g}") + (
            "" if power == 0 else ("\\lambda" if power == 1 else f"\\lambda^{power}")
        )
        terms.append(("-" if c < 0 else "+") + " " + body)
    text = " ".join(terms)
    return text[2:] if text.startswith("+ ") else text


def _small(delta: float, k: int) -> None:
    res = tm.diagonalise(tm.charpoly_matrix(delta), POWER_STEPS)
    A = res.matrix
    st.latex(r"A = " + _latex_matrix(A) + r",\qquad \det(\lambda I - A) = " + _poly_latex(res.charpoly))
    rows = ["| eigenvalue | algebraic | geometric = n − rank(A − λI) |", "|---|---|---|"]
    rows += [f"| {format_complex(m.eigval)} | {m.algebraic} | {m.geometric} |" for m in res.multiplicities]
    st.markdown("\n".join(rows))
    cols = st.columns(3)
    cols[0].metric("κ(V)", f"{res.kappa_V:.3g}", help="cond₂ of the unit-column eigenvector matrix")
    cols[1].metric(f"error of VΛ^{k}V⁻¹", f"{res.powers[k - 1]:.2g}", help="relative to A^k (Frobenius)")
    cols[2].metric("defective", "yes" if res.defective else "no")
    if res.defective:
        st.warning(
            "δ = 0: λ = 2 is a double root with a single eigenvector line. V's two columns for it are (nearly) "
            f"parallel, κ(V) = {res.kappa_V:.3g}, and A = VΛV⁻¹ does not exist; A^k grows like k·2^(k−1) "
            "(Jordan block), not 2^k.",
            icon=":material/warning:",
        )
    Ak = np.linalg.matrix_power(A, k)
    try:
        approx = _latex_matrix((res.V * res.eigvals**k) @ np.linalg.inv(res.V))
    except np.linalg.LinAlgError:  # V exactly singular: the formula has nothing to show
        approx = r"\text{(V is singular)}"
    st.latex(rf"A^{{{k}}} = {_latex_matrix(Ak)},\qquad V\Lambda^{{{k}}}V^{{-1}} = {approx}")
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.make_charpoly_curve_figure(res), width="stretch", key="learn_cp_poly")
    with c2:
        st.plotly_chart(
            figures.make_power_error_figure(res, title="Aᵏ through V Λᵏ V⁻¹: relative error"),
            width="stretch",
            key="learn_cp_powers",
        )


def _model() -> None:
    loaded, cap = require_capture()
    st.markdown(f"#### On {loaded.id}")
    c1, c2 = st.columns([1, 2])
    with c1:
        matrix = PAGE.segmented_control(MATRIX, "Matrix", format_func=MATRICES.get)
    with c2:
        layer, head = head_pickers("cp", loaded.card.n_layers, loaded.card.n_heads)
    sel = selection()
    with st.spinner("Diagonalising…"):
        res = head_diagonalisation(sel.model_key, sel.text_key, layer, head, matrix)
    n = res.matrix.shape[0]
    what = (
        f"the attention matrix of layer {layer}, head {head} ({n}×{n}, one row per token)"
        if matrix == "attention"
        else f"the OV core W_O W_V of layer {layer}, head {head} ({n}×{n}, d_head = {n})"
    )
    st.markdown(
        f"A is {what}. Its eigenvector matrix has κ(V) = **{res.kappa_V:.3g}**, so V Λᵏ V⁻¹ reproduces "
        f"Aᵏ to a relative error of **{res.powers[0]:.2g}** at k = 1 and **{res.powers[-1]:.2g}** at "
        f"k = {len(res.powers)} (compare κ(V) · eps = {res.kappa_V * tm.EPS64:.2g}, the dashed line: the digits V loses)."
    )
    if matrix == "attention" and cap.causal:
        causal_note(loaded.id)
        st.caption(
            "Many diagonal entries are close to each other, so eigenvalues nearly repeat and their eigenvectors "
            "nearly coincide: κ(V) is huge, and V Λᵏ V⁻¹ is a poor way to compute Aᵏ. The Schur form (walkthrough "
            "'Non-normal growth') is the stable route."
        )
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(
            figures.make_eigenvalues_figure(res.eigvals, title="Eigenvalues"),
            width="stretch",
            key="learn_cp_model_eigs",
        )
    with c2:
        st.plotly_chart(
            figures.make_power_error_figure(res, title="Aᵏ through V Λᵏ V⁻¹ on the model"),
            width="stretch",
            key="learn_cp_model_powers",
        )


def _controls() -> tuple[float, int]:
    delta = PAGE.slider(DELTA, "δ: gap between the two eigenvalues near 2", step=0.01)
    k = PAGE.slider(POWER, "Power k")
    st.caption("A = P T P⁻¹ with T upper triangular, diagonal 2, 2 + δ, 0.5, and P a fixed integer matrix.")
    return delta, k


def render(prose: Prose) -> None:
    small_first(prose, _controls, _small, _model)
    link(["eigenvectors", "attention"], "Eigenvalues and eigenvectors of every head")
    link(["circuits"], "The OV circuit's eigenvalues for every head")


def handout_figures(seed: int) -> list:
    """The small matrix at the default δ: its characteristic polynomial and the error of VΛᵏV⁻¹ (the same for
    every seed; the exercises carry the student's numbers)."""
    res = tm.diagonalise(tm.charpoly_matrix(DELTA.default), POWER_STEPS)
    return [
        figures.make_charpoly_curve_figure(res),
        figures.make_power_error_figure(res, title="Aᵏ through V Λᵏ V⁻¹: relative error"),
    ]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Characteristic polynomial & diagonalisation"
PARAMS = (DELTA.param, POWER.param, MATRIX.param, "layer", "head")
MODEL_LINK = {}
PREREQUISITES = ("matrix2x2",)
exercises = tm.charpoly_exercises
