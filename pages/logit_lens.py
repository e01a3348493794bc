"""Logit lens: the residual stream after every block read through the final norm and the unembedding, so each
layer's next-token guess can be compared with the model's final prediction. Causal LMs only."""

import streamlit as st

from explorer.analysis.logit_lens import NoLensError, final_norm_and_unembedding
from explorer.figures.logit_lens import (
    LENS_METRICS,
    make_lens_heatmap_figure,
    make_position_trajectory_figure,
    make_top_k_figure,
)
from explorer.ui import compare_view, lens_compare
from explorer.ui.lens_cache import TOP_K, apply_lens_click, lens_spec, lens_summary, watch_lens
from explorer.ui.navigation import page_file
from explorer.ui.session import require_capture, require_model, selection
from explorer.ui.state import LAYER_HELP, Choice, Int, PageState, link_with

CHART_KEY = "lens_heatmap"
ATTENTION_PAGE = page_file("pages/attention.py")
PAGE = PageState("lens")
METRIC = Choice("metric", "rank", LENS_METRICS)

st.title("Logit lens")
st.caption(
    "Each block adds to the residual stream; reading it after block l through the model's own final norm and "
    "unembedding gives that layer's next-token guess. The heatmap shows, for every layer and position, how far "
    "the token the model finally predicts is from that guess: its rank, its probability, or the KL divergence "
    "from the final distribution. Click a cell (or set the layer and position sliders) for its top tokens."
)

loaded = require_model()
try:
    final_norm_and_unembedding(loaded)
except NoLensError as err:
    st.info(str(err), icon=":material/visibility_off:")
    st.stop()
loaded, cap = require_capture()
sel = selection()
n_layers, n_tokens = loaded.card.n_layers, cap.n_tokens
LAYER = Int("layer", n_layers - 1, 0, n_layers - 1, counts=True)
POS = Int("pos", n_tokens - 1, 0, n_tokens - 1, counts=True)
K = Int("k", 5, 1, TOP_K)

view = watch_lens(lens_spec(sel.model_key, sel.text_key, sel.prompt_ids, loaded, cap))
if view is None:
    st.stop()
lens = view.lens


apply_lens_click(PAGE, CHART_KEY, LAYER, POS, n_layers, n_tokens)
metric = PAGE.segmented_control(METRIC, "Heatmap shows", format_func=lambda m: LENS_METRICS[m])
mid, right = st.columns([3, 2])
layer = int(PAGE.slider(LAYER, "Layer", where=mid, help=LAYER_HELP))
k = int(PAGE.slider(K, "Top-k tokens", where=right))
pos = int(
    PAGE.slider(
        POS,
        "Position",
        help="The lens at a position predicts the token after it (positions count from 0).",
    )
)

st.plotly_chart(
    make_lens_heatmap_figure(
        lens, metric, view.labels, view.top1_texts(), view.texts(lens.final_ids), selected=(layer, pos)
    ),
    width="stretch",
    key=CHART_KEY,
    on_select="rerun",
    selection_mode="points",
)
st.caption(lens_summary(lens))

label = view.labels[pos]
left, right = st.columns([3, 2])
left.plotly_chart(
    make_top_k_figure(lens, layer, pos, view.texts(lens.top_ids[layer, pos, :k]), label, k=k),
    width="stretch",
    key="lens_top_k",
)
final_text = view.vocab_texts[int(lens.final_ids[pos])]
left.caption(
    f"At layer {layer}, the model's final prediction {final_text!r} has rank {int(lens.final_rank[layer, pos]):,} "
    f"and probability {float(lens.final_prob[layer, pos]):.3g}; KL(final ‖ layer) = "
    f"{float(lens.kl[layer, pos]):.3g} nats."
)
right.plotly_chart(make_position_trajectory_figure(lens, pos, label), width="stretch", key="lens_trajectory")

if ATTENTION_PAGE is not None:
    st.page_link(
        ATTENTION_PAGE,
        label=f"Attention heads of layer {layer}: row {pos} of each head's heatmap is what position {pos} reads",
        icon=":material/grid_on:",
        # This page's own settings stay here: the attention page has a `metric` of its own, and no position.
        query_params={
            name: value
            for name, value in link_with(layer=layer).items()
            if name not in (METRIC.param, K.param, POS.param)
        },
    )

st.subheader("Compare with a variant")
vs = compare_view.compare_control(PAGE)
if vs:
    lens_compare.draw(sel, loaded, cap, vs)
