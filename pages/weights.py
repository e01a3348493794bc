"""Weight spectra: singular values and heavy-tail statistics of every weight matrix of the model."""

import streamlit as st

from explorer.analysis.weights import METRICS, WW_METRICS, ww_rows
from explorer.figures.weights import (
    kind_label,
    make_esd_figure,
    make_layer_scree_figure,
    make_scree_figure,
    make_weight_heatmap_figure,
    make_ww_layer_figure,
    matrix_label,
)
from explorer.ui import compare_view
from explorer.ui.session import require_model, selection
from explorer.ui.state import LAYER_HELP, Choice, Flag, Int, PageState, drop_from_link
from explorer.ui.weights_cache import randomized_in_background, weight_spectra_with_progress, ww_sentence

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
RANDOMIZE = Flag("randomize", False)  # off: a first visit stays one pass over the weights
WW_METRIC = Choice("ww_metric", "alpha_hat", WW_METRICS)

randomize = PAGE.toggle(
    RANDOMIZE,
    "Randomized comparison: every matrix with its entries shuffled",
    help="WeightWatcher's randomize=True: doubles the first visit's work (in the background, kept on disk). "
    "Adds rand_distance, correlation traps and the shuffled ESD.",
)
randomized = randomized_in_background(loaded, spectra) if randomize else None


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
    ww_cols = st.columns(5)
    alpha_hat = spectra.metric("alpha_hat")[index]
    ww_cols[0].metric(
        "α̂ = α·log₁₀λ_max",
        "n/a" if alpha_hat != alpha_hat else f"{alpha_hat:.2f}",
        help=METRICS["alpha_hat"][1],
    )
    ww_cols[1].metric("log₁₀‖W‖_F²", f"{spectra.metric('log_norm')[index]:.3f}", help=METRICS["log_norm"][1])
    ww_cols[2].metric(
        "log₁₀λ_max",
        f"{spectra.metric('log_spectral_norm')[index]:.3f}",
        help=METRICS["log_spectral_norm"][1],
    )
    if randomized is not None:
        ww_cols[3].metric(
            "rand_distance", f"{randomized.rand_distance[index]:.3f}", help=WW_METRICS["rand_distance"][1]
        )
        ww_cols[4].metric(
            "correlation traps", f"{randomized.n_traps[index]:.0f}", help=WW_METRICS["n_traps"][1]
        )
    a, b = st.columns(2)
    with a:
        st.plotly_chart(make_scree_figure(spectra, index), width="stretch", key="weights_scree")
    with b:
        st.plotly_chart(
            make_esd_figure(spectra, index, randomized=randomized), width="stretch", key="weights_esd"
        )
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
    if randomized is not None:
        traps = randomized.traps(index)
        listed = ", ".join(f"{v:.4g}" for v in traps[:10]) + (" …" if traps.size > 10 else "")
        st.caption(
            f"Shuffled (seed {randomized.seed}): the purple ESD is this matrix with its {m * n:,} entries "
            f"permuted, which keeps every value and destroys every correlation. Its largest eigenvalue is "
            f"{randomized.esd(index)[0]:.4g} against the trap edge {randomized.trap_edge[index]:.4g} (λ₊ plus 4 "
            "Tracy-Widom widths); "
            + (
                f"{traps.size} correlation trap(s) at λ = {listed}: a few outsized entries, not learned structure."
                if traps.size
                else "no correlation trap."
            )
            + f" rand_distance {randomized.rand_distance[index]:.3f}: the Jensen-Shannon distance between the "
            "two sorted spectra."
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


@st.fragment
def weightwatcher_section() -> None:
    st.subheader("WeightWatcher's metric set per layer")
    metric = PAGE.selectbox(WW_METRIC, "Metric", format_func=lambda m: WW_METRICS[m][0])
    st.plotly_chart(make_ww_layer_figure(spectra, metric, randomized), width="stretch", key="weights_ww")
    st.caption(ww_sentence(spectra, randomized, metric))
    st.caption(
        "WeightWatcher's units: λ are eigenvalues of WᵀW (not divided by N as in the ESD above), so "
        "log₁₀λ_max = 2 log₁₀σ₁ and α̂ = α·log₁₀σ₁². Matrices outside the blocks are in the table below."
    )
    rows = ww_rows(spectra, randomized)
    table = [
        {
            **row,
            "shape": "×".join(str(v) for v in row["shape"]),
            "traps": ", ".join(f"{v:.4g}" for v in row["traps"]) if row["traps"] else "",
        }
        for row in rows
    ]
    st.dataframe(table, width="stretch", hide_index=True, key="weights_ww_table")


st.subheader("Compare with a variant")
vs = compare_view.compare_control(PAGE)
if vs is not None:
    compare_view.draw(PAGE, sel, loaded, spectra, vs)

heatmap_section()
matrix_section()
weightwatcher_section()
across_layers_section()

with st.expander("All matrices as a table", expanded=False):
    table = [{**row, "shape": "×".join(str(v) for v in row["shape"])} for row in spectra.rows()]
    st.dataframe(table, width="stretch", hide_index=True, key="weights_table")
