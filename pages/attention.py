"""Attention spectra: a metric over every layer and head; click a head for its attention, eigenvalues, singular
values, symmetric part, Laplacian and a temperature what-if."""

import streamlit as st

from explorer.analysis.attention import COLLAPSED_STABLE_RANK, GRID_METRICS, SINK_MASS
from explorer.figures.attention import (
    auto_log_color,
    display_block,
    head_title,
    make_attention_grid_figure,
    make_eigenvalue_plane_figure,
    make_spectrum_figure,
    make_symmetric_laplacian_figure,
)
from explorer.ui import attention_compare, compare_view
from explorer.ui.attention_cache import (
    apply_grid_click,
    attention_head_picker,
    cached_attention_grid,
    cached_head_spectrum,
    heat_color_help,
    require_head_inputs,
)
from explorer.ui.attention_view import (
    ATTENTION_INTRO,
    PARAMS,
    POOL,
    POOL_LABELS,
    HeadHeatmap,
    apply_box_select,
    card_value,
    heatmap_section,
    pooling_help,
    spectrum_note,
)
from explorer.ui.navigation import page_file
from explorer.ui.state import Choice, Float, PageState, link_with

GRID_KEY = "attention_grid"
EIGENVECTORS_PAGE = page_file("pages/eigenvectors.py")
LENS_PAGE = page_file("pages/logit_lens.py")
DAMPING = 0.85
PAGE = PageState("attention")
METRIC = Choice("metric", "lambda2_abs", GRID_METRICS)
TAU = Float("tau", 1.0, 0.1, 5.0)
HEAT_COLORS = {"auto": "Auto", "linear": "Linear", "log": "Log"}
HEAT_COLOR = Choice("heat", "auto", HEAT_COLORS, key="heat_color")

loaded, cap, sel, n_layers, n_heads, n_tokens = require_head_inputs(
    "Attention spectra", ATTENTION_INTRO, single_token="attention is the 1 x 1 matrix [1]."
)

if cap.causal:
    st.info(
        f"**{loaded.card.id} is causal:** each token attends only to itself and earlier tokens, so every "
        "attention matrix is **lower-triangular** and its **eigenvalues are exactly its diagonal entries** "
        "a_ii (how much token i attends to itself; λ = 1 always comes from the first token). The complex plane "
        "therefore says little here: the singular values, the symmetric part and the Laplacian carry the "
        "structure, so they come first.",
        icon=":material/change_history:",
    )

with st.spinner(f"Summarising {n_layers * n_heads} heads of {n_tokens} tokens…"):
    grid = cached_attention_grid(sel.model_key, sel.text_key)

apply_grid_click(PAGE, GRID_KEY, n_layers, n_heads)

controls, picker = st.columns([2, 3])
with controls:
    metric = PAGE.bind(METRIC)
    PAGE.selectbox(
        METRIC,
        "Grid metric",
        format_func=lambda name: GRID_METRICS[name].label,
        help=GRID_METRICS[metric].help,
    )
with picker:
    layer, head = attention_head_picker(PAGE, n_layers, n_heads)

info = GRID_METRICS[metric]
st.plotly_chart(
    make_attention_grid_figure(
        grid, metric, label=info.label, selected=(layer, head), low_is_notable=info.low_is_notable
    ),
    width="stretch",
    key=GRID_KEY,
    on_select="rerun",
    selection_mode="points",
)
st.caption(info.help)
if grid.note:
    st.info(grid.note, icon=":material/straighten:")

n_collapsed, n_sink = int(grid.collapsed.sum()), int(grid.sink.sum())
st.markdown(
    f"**Flags:** {n_collapsed} of {n_layers * n_heads} heads look **collapsed** (×: stable rank < "
    f"{COLLAPSED_STABLE_RANK:g}, every query reads nearly the same mixture) · {n_sink} are **attention sinks** "
    f"(○: at least {SINK_MASS:.0%} of the attention goes to the first token)."
)
if n_collapsed or n_sink:
    with st.expander("Which heads are flagged"):
        for name, mask in (("Collapsed", grid.collapsed), ("Sinks", grid.sink)):
            names = [f"L{i}·H{j}" for i, j in grid.heads_where(mask)]
            st.markdown(f"**{name}** ({len(names)}): " + (", ".join(names) if names else "none"))


@st.fragment
def head_views(layer: int, head: int) -> None:
    """The selected head's views; moving the temperature slider reruns only this part."""
    apply_box_select(PAGE, n_tokens)  # before the zoom's range inputs are drawn
    st.subheader(f"Layer {layer} · head {head}")
    tau_col, color_col, pool_col = st.columns([3, 2, 2])
    tau = PAGE.slider(
        TAU,
        "Temperature τ (what-if)",
        where=tau_col,
        step=0.05,
        help="A_τ = row-softmax(log A / τ): exactly what the head would do with its scores divided by τ. "
        "τ < 1 sharpens, τ > 1 flattens towards uniform; τ = 1 is the captured head.",
    )
    # The same rule the figure applies on its own: the text's size and whether the head is causal.
    triangular = bool(grid.triangular[layer, head])
    auto_log = auto_log_color(n_tokens, triangular)
    heat_color = PAGE.segmented_control(
        HEAT_COLOR,
        "Heatmap colour",
        where=color_col,
        format_func=lambda c: f"Auto ({'log' if auto_log else 'linear'})" if c == "auto" else HEAT_COLORS[c],
        help=heat_color_help(),
    )
    log_color = auto_log if heat_color == "auto" else heat_color == "log"
    pooled = display_block(n_tokens) > 1
    if pooled:
        pooling = PAGE.segmented_control(
            POOL,
            "Heatmap blocks show",
            where=pool_col,
            format_func=POOL_LABELS.get,
            help=pooling_help(),
        )
    else:
        pooling = PAGE.bind(POOL, link=False)
    with st.spinner("Computing the full spectrum of this head…"):
        spectrum = cached_head_spectrum(sel.model_key, sel.text_key, layer, head, float(tau), DAMPING)

    cols = st.columns(6)
    cards = (("|λ₂|", "lambda2_abs", ".3f"), ("Spectral gap", "spectral_gap", ".3f"), ("Entropy", "entropy", ".2f"),
             ("Effective rank", "effective_rank", ".1f"), ("Stable rank", "stable_rank", ".2f"),
             ("Sink mass", "sink_mass", ".2f"))  # fmt: skip
    for col, (label, name, fmt) in zip(cols, cards, strict=True):
        col.metric(label, card_value(getattr(spectrum, name), fmt), help=GRID_METRICS[name].help)
    if spectrum.note:
        st.caption(spectrum_note(spectrum))
    if spectrum.collapsed:
        st.warning(
            f"This head looks **collapsed**: stable rank {spectrum.stable_rank:.2f} (< {COLLAPSED_STABLE_RANK:g}), "
            "so nearly every query reads the same mixture of keys and the head passes on almost one vector.",
            icon=":material/compress:",
        )
    if spectrum.sink:
        st.warning(
            f"This head is an **attention sink**: on average {spectrum.sink_mass:.0%} of each query's attention "
            "goes to the first token (a common way for a head to do 'nothing').",
            icon=":material/vertical_align_bottom:",
        )
    plane = make_eigenvalue_plane_figure(
        spectrum.eigvals,
        title=head_title(spectrum, "diagonal = eigenvalues" if spectrum.triangular else "eigenvalues"),
        triangular=spectrum.triangular,
    )
    spectra = make_spectrum_figure(
        spectrum.eigvals, spectrum.singular_values, title=head_title(spectrum, "sorted spectra")
    )
    sym_lap = make_symmetric_laplacian_figure(
        spectrum.sym_eigvals,
        spectrum.laplacian_eigvals,
        title=head_title(spectrum, "symmetric part and Laplacian"),
    )
    lap_caption = (
        "Laplacian L = D − A with d_jj = (Σ_u a_uj)/(T − j), the attention key j receives per query that can see "
        "it (LapEigvals, 2025: its top eigenvalues are features for hallucination detection). "
        + (
            "L is lower-triangular here, so its eigenvalues are d_jj − a_jj."
            if spectrum.triangular
            else "For a bidirectional head L is a general matrix; its eigenvalues come from a full solver."
        )
    )

    def heatmaps() -> None:
        heat = HeadHeatmap(
            sel,
            cap,
            layer,
            head,
            tau=float(tau),
            pooling=pooling,
            log_color=log_color,
            triangular=triangular,
            title=head_title(spectrum, "attention weights"),
        )
        heatmap_section(PAGE, heat)

    if spectrum.triangular:
        st.plotly_chart(spectra, width="stretch", key="attention_spectra")
        st.caption(
            "Left: for a triangular head these are the sorted |a_ii|. Right: singular values, which do see "
            "the off-diagonal structure (effective rank, collapse)."
        )
        st.plotly_chart(sym_lap, width="stretch", key="attention_sym_lap")
        st.caption(lap_caption)
        heatmaps()
        left, _ = st.columns([2, 3])
        left.plotly_chart(plane, width="stretch", key="attention_plane")
        left.caption("Every point is a diagonal entry a_ii (a triangular matrix's eigenvalues), all real.")
    else:
        heatmaps()
        left, _ = st.columns([2, 3])
        left.plotly_chart(plane, width="stretch", key="attention_plane")
        left.caption(
            "λ₁ = 1 (Perron root); complex eigenvalues come in conjugate pairs. Hover for index and |λ|."
        )
        st.plotly_chart(spectra, width="stretch", key="attention_spectra")
        st.plotly_chart(sym_lap, width="stretch", key="attention_sym_lap")
        st.caption(lap_caption)
    if EIGENVECTORS_PAGE is not None:
        st.page_link(
            EIGENVECTORS_PAGE,
            label=f"Eigenvectors and stationary distribution of layer {layer} · head {head}",
            icon=":material/stacked_line_chart:",
            query_params=link_with(layer=layer, head=head),
        )
    if LENS_PAGE is not None and loaded.causal:
        # The lens's own settings (metric, k) are not this page's: leave this page's out of the link.
        own = ("metric", "head", "tau", "heat", *PARAMS)
        st.page_link(
            LENS_PAGE,
            label=f"Logit lens at layer {layer}: what the model is about to predict after this block",
            icon=":material/visibility:",
            query_params={k: v for k, v in link_with(layer=layer).items() if k not in own},
        )


head_views(layer, head)

st.subheader("Compare with a variant")
vs = compare_view.compare_control(PAGE)
if vs:
    attention_compare.draw(PAGE, sel, loaded, cap, grid, vs)
