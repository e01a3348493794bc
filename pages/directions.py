"""PCA & directions: hidden-state geometry layer by layer, the embedding matrix, and semantic directions.
Thin: settings, what each view computes and the words beside the figures in explorer.ui.directions_view,
cached results in explorer.ui.directions_cache, figures in explorer.figures.directions."""

from __future__ import annotations

import streamlit as st

from explorer import wordlists
from explorer.analysis.word_vectors import METHOD_LABELS
from explorer.errors import ExplorerError
from explorer.figures import directions as figs
from explorer.ui import directions_view as dv
from explorer.ui.directions_cache import (
    cached_embedding_pca,
    cached_hidden_pca,
    cached_layer_profile,
    cached_layerwise_pca,
    cached_umap,
)
from explorer.ui.session import require_capture, selection, token_labels

PAGE = dv.PAGE

st.title("PCA & semantic directions")
st.markdown(dv.INTRO)

loaded, cap = require_capture()
sel = selection()
settings = dv.model_settings(loaded.card.n_layers, loaded.causal)

view = PAGE.radio(dv.VIEW, "View", format_func=dv.VIEWS.get, horizontal=True, label_visibility="collapsed")


# -------------------------------------------------------------------------------------------------------------
# Hidden states of the text


@st.fragment
def hidden_state_view() -> None:
    cols = st.columns([3, 1.3, 1.7, 1.6])
    projection = PAGE.radio(
        dv.PROJECTION, "Projection", where=cols[0], format_func=dv.PROJECTIONS.get, horizontal=True
    )
    dims = PAGE.radio(
        dv.DIMS,
        "Axes",
        where=cols[1],
        format_func=lambda d: f"{d}-D",
        horizontal=True,
        disabled=projection == "animate",
    )
    color_by = PAGE.radio(dv.COLOUR, "Colour by", where=cols[2], horizontal=True)
    skip_first = PAGE.checkbox(
        settings.skip_first, "Leave out token 0", where=cols[3], help=dv.SKIP_FIRST_HELP
    )
    layer = PAGE.slider(
        settings.state,
        "Hidden state (0 = embedding output, l = after block l − 1)",
        disabled=projection == "animate",
        help=dv.STATE_HELP,
    )
    # UMAP's settings keep their values in the other projections, out of the link.
    PAGE.bind(dv.NEIGHBORS, link=projection == "umap")
    PAGE.bind(dv.MIN_DIST, link=projection == "umap")
    if loaded.causal:
        st.caption(dv.CAUSAL_NOTE)
    labels = token_labels(cap, sel)
    args = (sel.model_key, sel.text_key)
    try:
        if projection == "pca":
            with st.spinner("Computing PCA…"):
                result = cached_hidden_pca(*args, layer, dims, skip_first)
            left, right = st.columns([3, 2])
            left.plotly_chart(
                figs.make_pca_scatter_figure(result, labels, dims=dims, color_by=color_by),
                width="stretch",
                key="directions_scatter",
            )
            right.plotly_chart(figs.make_scree_figure(result), width="stretch", key="directions_scree")
            right.caption(dv.pca_caption(result))
        elif projection == "umap":
            n_neighbors = PAGE.slider(
                dv.NEIGHBORS,
                "UMAP n_neighbors",
                help="Size of the neighbourhood UMAP preserves; kept below the number of tokens.",
            )
            min_dist = PAGE.slider(dv.MIN_DIST, "UMAP min_dist", step=0.01)
            with st.spinner("Running UMAP (the first run loads umap-learn, about ten seconds)…"):
                result = cached_umap(*args, layer, n_neighbors, min_dist, dims, skip_first)
            for message in result.messages:
                st.info(message, icon=":material/info:")
            figure = figs.make_umap_figure(
                result.coords,
                labels,
                result.points,
                layer=layer,
                n_neighbors=result.n_neighbors,
                color_by=color_by,
            )
            st.plotly_chart(figure, width="stretch", key="directions_umap")
            st.caption(dv.UMAP_NOTE)
        else:
            with st.spinner("Computing PCA at every layer…"):
                result = cached_layerwise_pca(*args, skip_first)
            st.plotly_chart(
                figs.make_layer_animation_figure(result, labels, color_by=color_by),
                width="stretch",
                key="directions_animation",
            )
            st.caption(dv.ANIMATION_NOTE)
    except ExplorerError as err:
        st.warning(str(err), icon=":material/warning:")


# -------------------------------------------------------------------------------------------------------------
# Embedding matrix


@st.fragment
def embedding_view() -> None:
    left, right = st.columns([1, 3])
    with left:
        text = PAGE.text_area(
            dv.EMBEDDING_WORDS,
            "Words (one a line)",
            height=360,
            help="Each word's vector is its input-embedding row (averaged over its sub-tokens).",
        )
        dims = PAGE.radio(dv.EMBEDDING_DIMS, "Axes", format_func=lambda d: f"{d}-D", horizontal=True)
        unit = PAGE.checkbox(dv.EMBEDDING_UNIT, "Unit-length rows", help=dv.UNIT_HELP)
    words = wordlists.parse_words(text)
    with right:
        try:
            with st.spinner("Embedding the words…"):
                result, known, unknown = cached_embedding_pca(sel.model_key, tuple(words), dims, unit)
        except ExplorerError as err:
            st.warning(str(err), icon=":material/warning:")
            return
        if unknown:
            st.warning("Unknown to the tokenizer, left out: " + ", ".join(unknown), icon=":material/warning:")
        figure = figs.make_pca_scatter_figure(
            result,
            list(known),
            dims=dims,
            color_by="none",
            show_text=True,
            title=dv.embedding_title(len(known), dims),
        )
        st.plotly_chart(figure, width="stretch", key="directions_embedding_scatter")
        st.plotly_chart(figs.make_scree_figure(result), width="stretch", key="directions_embedding_scree")


# -------------------------------------------------------------------------------------------------------------
# Semantic directions


@st.fragment
def directions_view() -> None:
    pairs_setting, targets_setting = dv.text_settings(PAGE.bind(dv.PRESET))
    cols = st.columns([2, 3])
    PAGE.selectbox(
        dv.PRESET,
        "Preset",
        where=cols[0],
        format_func=wordlists.PRESETS.get,
        on_change=dv.load_preset,
        help="Loads its word pairs and target words into the boxes below (you can edit them).",
    )
    method = PAGE.radio(
        settings.method,
        "Embed each word by",
        where=cols[1],
        format_func=METHOD_LABELS.get,
        horizontal=True,
    )
    tcols = st.columns([2, 3])
    word_state = PAGE.slider(
        settings.word_state,
        "Hidden state for contextual vectors",
        where=tcols[0],
        disabled=method != "contextual",
        help=dv.STATE_HELP + " Used by the contextual method; the curve below shows every hidden state.",
    )
    template = PAGE.text_input(
        dv.TEMPLATE,
        "Template sentence ({} = the word)",
        where=tcols[1],
        help="Contextual states are read at the word's tokens inside this sentence (also for the layer curve).",
    )
    left, right = st.columns(2)
    pairs_text = PAGE.text_area(
        pairs_setting,
        "Word pairs (one a line: first second)",
        where=left,
        height=220,
        help="e.g. 'he she'. Positive bias scores lean towards the first words.",
    )
    targets_text = PAGE.text_area(targets_setting, "Words to score (one a line)", where=right, height=220)

    pairs, bad = wordlists.parse_pairs(pairs_text)
    targets = wordlists.parse_words(targets_text)
    if bad:
        st.warning(dv.bad_pairs_message(bad), icon=":material/warning:")
    try:
        with st.spinner("Embedding the words and the control vocabulary…"):
            result = dv.directions(sel.model_key, pairs, targets, method, word_state, template)
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        return
    for message in result.messages:
        st.warning(message, icon=":material/warning:")

    for col, metric in zip(st.columns(4), dv.direction_metrics(result), strict=True):
        col.metric(metric.label, metric.value, help=metric.help)
    st.caption(dv.direction_caption(result))

    a, b = result.pairs[0]
    c1, c2 = st.columns(2)
    c1.plotly_chart(figs.make_direction_scree_figure(result), width="stretch", key="directions_pair_scree")
    if result.targets:
        c2.plotly_chart(figs.make_bias_figure(result), width="stretch", key="directions_bias")
    c3, c4 = st.columns(2)
    with c3:
        try:
            with st.spinner(
                "Reading every word at every layer (the first time per model takes a few seconds)…"
            ):
                profile = cached_layer_profile(sel.model_key, tuple(pairs), tuple(targets), template)
        except ExplorerError as err:
            st.warning(str(err), icon=":material/warning:")
        else:
            figure = figs.make_direction_by_layer_figure(profile, chosen_layer=dv.chosen_state(result))
            st.plotly_chart(figure, width="stretch", key="directions_by_layer")
    if result.debias is not None:
        figure = figs.make_debias_figure(result.debias, first=a, second=b)
        c4.plotly_chart(figure, width="stretch", key="directions_debias")
        c4.caption(dv.DEBIAS_NOTE)
    with st.expander("How words were tokenized"):
        st.markdown(dv.TOKENIZATION_NOTE)
        st.dataframe(dv.tokenization_table(result), hide_index=True, width="stretch")


if view == "tokens":
    hidden_state_view()
elif view == "embedding":
    embedding_view()
else:
    directions_view()
