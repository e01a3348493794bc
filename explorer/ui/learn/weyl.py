"""Walkthrough: bounding eigenvalues without computing them (Gershgorin discs) and singular values under a
perturbation (Weyl); then Weyl's bound on the loaded model's weights with E the error of int8 and 4-bit
quantization (quantizing float64 copies: the model is never touched)."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching_matrices as tm
from explorer.analysis.matrices import ATTENTION_KINDS, MLP_KINDS
from explorer.figures import learn_matrices as figures
from explorer.figures.learn import format_complex
from explorer.ui.learn.matrices_cache import weight_kinds, weyl_on_weights
from explorer.ui.learn.walkthrough import PAGE, Prose, layer_picker, link, small_first
from explorer.ui.session import require_model, selection
from explorer.ui.state import Float, Subset

COUPLING = Float("wy_s", 1.0, 0.0, 3.0, key="wy_s")
LOG_EPS = Float("wy_eps", -1.0, -4.0, 0.5, key="wy_eps")
MATRIX_KINDS = [*ATTENTION_KINDS, *MLP_KINDS]
KIND_LABELS = {
    "attn_q": "W_Q",
    "attn_k": "W_K",
    "attn_v": "W_V",
    "attn_o": "W_O",
    "mlp_gate": "MLP gate",
    "mlp_up": "MLP up",
    "mlp_down": "MLP down",
}
CHOSEN = Subset("wy_kinds", ("attn_q", "attn_o", "mlp_down"), MATRIX_KINDS, key="wy_kinds")


def _small(coupling: float, log_eps: float) -> None:
    A = tm.gershgorin_matrix(coupling)
    g = tm.gershgorin_picture(A)
    low, high = g.real_bounds
    st.markdown(
        f"A = diag({', '.join(f'{c:g}' for c in tm.GERSHGORIN_DIAGONAL)}) + {coupling:g} · N. Without computing "
        f"anything but row sums, every eigenvalue has real part in [{low:.3g}, {high:.3g}]; the eigenvalues "
        f"(computed) are {', '.join(format_complex(z) for z in g.eigvals)}, "
        + ("all inside the discs." if g.inside.all() else f"{int((~g.inside).sum())} outside (impossible).")
    )
    E = tm.small_perturbation(A.shape, 10**log_eps)
    check = tm.weyl_check(A, E, name="A")
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.make_gershgorin_figure(g), width="stretch", key="learn_wy_discs")
    with c2:
        st.plotly_chart(figures.make_weyl_shift_figure(check), width="stretch", key="learn_wy_shift")
        st.caption(
            f"A fixed random E scaled to ‖E‖₂ = {check.e_norm:.3g}: the singular values move by at most "
            f"{check.max_shift:.3g} ({100 * check.ratio:.0f} % of the bound)."
        )


def _model() -> None:
    loaded = require_model()
    st.markdown(f"#### On {loaded.id}")
    layer = layer_picker("wy", loaded.card.n_layers)
    sel = selection()
    present = weight_kinds(sel.model_key, layer)
    st.markdown("Matrices of this block")
    chosen = PAGE.checkboxes(
        CHOSEN, lambda k: KIND_LABELS.get(k, k) + ("" if k in present else " (none here)")
    )
    kinds = tuple(k for k in chosen if k in present)
    if not kinds:
        st.info("Tick at least one matrix this block has.", icon=":material/info:")
        return
    with st.spinner("Quantizing copies and computing singular values…"):
        checks = weyl_on_weights(sel.model_key, layer, kinds)
    holds = sum(c.holds for c in checks)
    worst = max(checks, key=lambda c: c.ratio)
    schemes = ", ".join(s.name for s in tm.WEYL_SCHEMES)
    st.markdown(
        f"E = dequant(quant(W)) − W for {schemes} (int8 per output row; 4 bits symmetric in groups of 32). "
        f"Weyl's bound max |Δσᵢ| ≤ ‖E‖₂ holds for **{holds} of {len(checks)}** (matrix, quantization) pairs; the closest to it is "
        f"{worst.name} with {worst.scheme}, at **{100 * worst.ratio:.1f} %** of the bound "
        f"(max |Δσᵢ| = {worst.max_shift:.3g}, ‖E‖₂ = {worst.e_norm:.3g})."
    )
    rows = ["| matrix | shape | scheme | ‖E‖₂ | max \\|Δσᵢ\\| | ratio |", "|---|---|---|---|---|---|"]
    rows += [
        f"| {c.name} | {c.shape[0]}×{c.shape[1]} | {c.scheme} | {c.e_norm:.4g} | {c.max_shift:.4g} | {c.ratio:.3f} |"
        for c in checks
    ]
    st.markdown("\n".join(rows))
    st.plotly_chart(figures.make_weyl_model_figure(checks), width="stretch", key="learn_wy_model")
    for note in loaded.notes:
        if "quantiz" in note.lower():
            st.caption(note)


def _controls() -> tuple[float, float]:
    return (
        PAGE.slider(COUPLING, "Coupling s (off-diagonal size)", step=0.05),
        PAGE.slider(LOG_EPS, "log₁₀ ‖E‖₂ (perturbation for Weyl)", step=0.1),
    )


def render(prose: Prose) -> None:
    small_first(prose, _controls, _small, _model)
    link(["gershgorin"], "Gershgorin discs of every attention head")
    link(["compression"], "What quantization does to the loaded model's quality, measured")


def handout_figures(seed: int) -> list:
    """The default small matrix's discs and Weyl shifts (the same for every seed)."""
    A = tm.gershgorin_matrix(COUPLING.default)
    E = tm.small_perturbation(A.shape, 10**LOG_EPS.default)
    return [
        figures.make_gershgorin_figure(tm.gershgorin_picture(A)),
        figures.make_weyl_shift_figure(tm.weyl_check(A, E, name="A")),
    ]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Gershgorin & Weyl"
PARAMS = (COUPLING.param, LOG_EPS.param, "layer", CHOSEN.param)
MODEL_LINK = {}
PREREQUISITES = ("svd",)
exercises = tm.weyl_exercises
