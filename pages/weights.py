"""Weight spectra: singular values and heavy-tail statistics of every weight matrix of the model."""

import streamlit as st

from explorer.analysis.weights import METRICS
from explorer.figures.weights import (
    kind_label,
    make_esd_figure,
    make_layer_scree_figure,
    make_scree_figure,
    make_weight_heatmap_figure,
    matrix_label,
)
from explorer.ui.session import require_model, selection
from explorer.ui.state import LAYER_HELP, Choice, Flag, Int, PageState, drop_from_link
from explorer.ui.weights_cache import weight_spectra_with_progress

st.title("Weight spectra")
st.markdown(
    "The singular values σᵢ of every 2-D weight (attention Q/K/V/O, MLP, embeddings), oriented (out, in). "
    "They say how many directions a matrix really uses (**ranks**), how much it can stretch a vector "
    "(**spectral norm**), and, through the eigenvalues of WᵀW/N, whether training left a **heavy tail** "
    "(power-law exponent α, fitted as Clauset, Shalizi & Newman do; WeightWatcher's convention) beyond the "
    "**Marchenko-Pastur** bulk of a random matrix of the same shape."
)

loaded = require_model()
sel = selection()
spectra = weight_spectra_with_progress(sel.model_key, loaded)

how = (
    f"read from the disk cache (first computed in {spectra.seconds:.1f} s)"
    if spectra.from_cache
    else f"computed in {spectra.seconds:.1f} s on {spectra.device} and saved to the disk cache"
)
st.caption(
    f"{len(spectra)} matrices of `{loaded.id}`, {how}. Singular values from "
    + (
        "the float64 Gram matrix's eigenvalues"
        if spectra.method == "gram"
        else "float32 torch.linalg.svdvals"
    )
    + "; tied weights (an LM head that is the embedding) appear once."
)
if (quant := loaded.anatomy.quantization) is not None:
    st.info(
        f"These weights are de-quantized from {quant.bits}-bit ({quant.scheme}): quantization noise lifts the "
        "smallest singular values and blurs the bulk of the ESD; the large singular values and the tail are "
        "faithful.",
        icon=":material/info:",
    )

PAGE = PageState("weights")
kinds = spectra.kinds_present
METRIC = Choice("metric", "alpha", METRICS)
KIND = Choice("kind", "attn_q", kinds)
NORMALISE = Flag("normalise", True)


@st.fragment
def heatmap_section() -> None:
    st.subheader("Every matrix at a glance")
    metric = PAGE.selectbox(
        METRIC,
        "Metric",
        format_func=lambda m: METRICS[m][0],
        help="Hover a cell for the matrix and the exact value.",
    )
    st.plotly_chart(make_weight_heatmap_figure(spectra, metric), width="stretch", key="weights_heatmap")
    st.caption(METRICS[metric][1])


def _layers_of(kind: str) -> list[int | None]:
    layers = sorted({int(spectra.layers[i]) for i in spectra.of_kind(kind)})
    return [None if layer < 0 else layer for layer in layers]


@st.fragment
def matrix_section() -> None:
    st.subheader("One matrix: scree plot and spectral density")
    left, right = st.columns(2)
    kind = PAGE.selectbox(KIND, "Matrix type", where=left, format_func=kind_label)
    layers = _layers_of(kind)
    if layers == [None]:
        layer = None
        drop_from_link("layer")
        right.markdown("&nbsp;")
        right.caption("This matrix belongs to no block.")
    else:
        numbers = [layer for layer in layers if layer is not None]
        layer = PAGE.select_slider(
            Int("layer", numbers[0], numbers[0], numbers[-1]), "Layer", numbers, where=right, help=LAYER_HELP
        )
    index = spectra.find(kind, layer)
    if index is None:
        st.warning(f"Layer {layer} has no {kind_label(kind)} matrix; pick another layer.")
        return
    st.markdown(f"**{matrix_label(spectra, index)}** · `{spectra.names[index]}`")
    cols = st.columns(6)
    cols[0].metric("σ₁ (spectral norm)", f"{spectra.spectral_norm[index]:.3g}")
    cols[1].metric("stable rank", f"{spectra.stable_rank[index]:.1f}", help=METRICS["stable_rank"][1])
    cols[2].metric(
        "effective rank", f"{spectra.effective_rank[index]:.1f}", help=METRICS["effective_rank"][1]
    )
    cols[3].metric(
        "k₉₀ / k₉₉",
        f"{spectra.k90[index]:.0f} / {spectra.k99[index]:.0f}",
        help="Fewest singular values holding 90% / 99% of the energy Σσ².",
    )
    cols[4].metric(
        "condition number", f"{spectra.condition_number[index]:.3g}", help=METRICS["condition_number"][1]
    )
    alpha = spectra.alpha[index]
    cols[5].metric(
        "power-law α",
        "n/a" if alpha != alpha else f"{alpha:.2f}",
        help=f"Fitted on the top {spectra.alpha_n_tail[index]:.0f} eigenvalues (x_min = "
        f"{spectra.alpha_xmin[index]:.3g}); KS distance D = {spectra.alpha_ks[index]:.3f}.",
    )
    a, b = st.columns(2)
    with a:
        st.plotly_chart(make_scree_figure(spectra, index), width="stretch", key="weights_scree")
    with b:
        st.plotly_chart(make_esd_figure(spectra, index), width="stretch", key="weights_esd")
    m, n = (int(v) for v in spectra.shapes[index])
    st.caption(
        f"Break-even rank mn/(m+n) = {spectra.break_even_rank(index):.1f}: a rank-k factorisation stores "
        f"k·(m+n) numbers instead of m·n = {m * n:,}, a saving only below that rank. "
        f"{spectra.n_spikes[index]:.0f} of {min(m, n)} eigenvalues of WᵀW/N lie above the Marchenko-Pastur "
        f"edge λ₊ = {spectra.mp_edge[index]:.3g} of a random matrix with the same shape and mean squared "
        "entry. In WeightWatcher's reading, α between 2 and 6 marks a well-trained layer (smaller α: more "
        "correlated, heavier tail); the fit is only as good as its KS distance D. x_min minimises the exact KS "
        "distance over tails of at least 10 eigenvalues; WeightWatcher's one-sided distance can pick a shorter "
        "tail and a different α on a few matrices."
    )


@st.fragment
def across_layers_section() -> None:
    st.subheader("One matrix type across layers")
    layered = [k for k in kinds if _layers_of(k) != [None]]
    if not layered:
        st.info("This model has no per-layer matrices.")
        return
    left, right = st.columns([2, 1])
    kind = PAGE.selectbox(
        Choice("compare", "mlp_down", layered), "Matrix type", where=left, format_func=kind_label
    )
    normalise = PAGE.toggle(
        NORMALISE, "Divide by σ₁", where=right, help="Compare shapes of the spectra whatever their scale."
    )
    st.plotly_chart(
        make_layer_scree_figure(spectra, kind, normalise=normalise), width="stretch", key="weights_layers"
    )


heatmap_section()
matrix_section()
across_layers_section()

with st.expander("All matrices as a table", expanded=False):
    table = [{**row, "shape": "×".join(str(v) for v in row["shape"])} for row in spectra.rows()]
    st.dataframe(table, width="stretch", hide_index=True, key="weights_table")
