"""PCA & directions: hidden-state geometry layer by layer, the embedding matrix, and semantic directions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer.analysis import directions as dirs
from explorer.errors import ExplorerError
from explorer.figures import directions as figs
from explorer.ui import params
from explorer.ui.directions_cache import (
    cached_directions,
    cached_embedding_pca,
    cached_hidden_pca,
    cached_layer_profile,
    cached_layerwise_pca,
    cached_umap,
)
from explorer.ui.session import require_capture, selection

VIEWS = {
    "tokens": "Hidden states of the text",
    "embedding": "Embedding matrix",
    "directions": "Semantic directions",
}
PROJECTIONS = {"pca": "PCA", "umap": "UMAP", "animate": "PCA, animated through layers"}
COLOURS = {"position": "position", "token": "token"}
DEFAULT_EMBEDDING_WORDS = "\n".join(dirs.load_wordlist("embedding_words"))


def _seed(key: str, value) -> None:
    """Give a widget its starting value (from the link) unless the session already has one."""
    if key not in st.session_state:
        st.session_state[key] = value


st.title("PCA & semantic directions")
st.markdown(
    "Where concepts live in the hidden states. **Hidden states**: each token's vector after a layer, projected "
    "by PCA or UMAP, layer by layer. **Embedding matrix**: the input-embedding rows of a word list. "
    "**Semantic directions**: the first principal component of word-pair differences (he − she, king − queen, "
    "...), how much of their variance it explains against random pairs, and where other words fall on it."
)

loaded, cap = require_capture()
sel = selection()
n_layers = loaded.card.n_layers

_seed("directions_view", params.get_choice("view", "tokens", VIEWS))
view = st.radio(
    "View",
    list(VIEWS),
    key="directions_view",
    format_func=VIEWS.get,
    horizontal=True,
    label_visibility="collapsed",
)
params.set_params(view=None if view == "tokens" else view)


# -------------------------------------------------------------------------------------------------------------
# Hidden states of the text


@st.fragment
def hidden_state_view() -> None:
    default_layer = n_layers // 2
    _seed("directions_layer", params.get_int("layer", default_layer, 0, n_layers))
    _seed("directions_projection", params.get_choice("proj", "pca", PROJECTIONS))
    _seed("directions_dims", int(params.get_choice("dims", "2", ["2", "3"])))
    _seed("directions_color", params.get_choice("color", "position", COLOURS))
    _seed(
        "directions_skip_first", params.get_choice("skip0", "1" if loaded.causal else "0", ["0", "1"]) == "1"
    )
    _seed("directions_neighbors", params.get_int("nn", 15, 2, 100))
    _seed("directions_min_dist", params.get_float("md", 0.1, 0.0, 0.99))

    cols = st.columns([3, 1.3, 1.7, 1.6])
    projection = cols[0].radio(
        "Projection",
        list(PROJECTIONS),
        key="directions_projection",
        format_func=PROJECTIONS.get,
        horizontal=True,
    )
    dims = cols[1].radio(
        "Axes",
        [2, 3],
        key="directions_dims",
        format_func=lambda d: f"{d}-D",
        horizontal=True,
        disabled=projection == "animate",
    )
    color_by = cols[2].radio("Colour by", list(COLOURS), key="directions_color", horizontal=True)
    skip_first = cols[3].checkbox(
        "Leave out token 0",
        key="directions_skip_first",
        help="In causal models the first token's hidden state often has a huge norm (SmolLM2: over 100 times "
        "the others in its middle layers; it serves as an attention sink) and takes the first principal "
        "component on its own. Leaving it out shows the geometry of the rest.",
    )
    layer = st.slider(
        "Layer (0 = embedding output)",
        0,
        n_layers,
        key="directions_layer",
        disabled=projection == "animate",
        help="Hidden state after this many transformer blocks.",
    )
    if loaded.causal:
        st.caption(
            "Causal model: each token's hidden state depends only on itself and the tokens before it, so early "
            "positions carry little context."
        )
    labels = cap.labels()
    args = (sel.model_key, sel.text, sel.max_tokens)
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
            ratio = result.explained_variance_ratio
            right.caption(
                f"{len(result.points)} tokens · the first two components hold {100 * ratio[:2].sum():.1f} % of "
                f"the variance; {int((ratio.cumsum() < 0.9).sum()) + 1} components reach 90 %."
            )
        elif projection == "umap":
            n_neighbors = st.slider(
                "UMAP n_neighbors",
                2,
                100,
                key="directions_neighbors",
                help="Size of the neighbourhood UMAP preserves; kept below the number of tokens.",
            )
            min_dist = st.slider("UMAP min_dist", 0.0, 0.99, step=0.01, key="directions_min_dist")
            params.set_params(
                nn=None if n_neighbors == 15 else n_neighbors, md=None if min_dist == 0.1 else min_dist
            )
            with st.spinner("Running UMAP (the first run loads umap-learn, about ten seconds)…"):
                result = cached_umap(*args, layer, n_neighbors, min_dist, dims, skip_first)
            for message in result.messages:
                st.info(message, icon=":material/info:")
            st.plotly_chart(
                figs.make_umap_figure(
                    result.coords,
                    labels,
                    result.points,
                    layer=layer,
                    n_neighbors=result.n_neighbors,
                    color_by=color_by,
                ),
                width="stretch",
                key="directions_umap",
            )
            st.caption(
                "UMAP keeps neighbourhoods, not distances: its axes have no units, and the seed is fixed."
            )
        else:
            with st.spinner("Computing PCA at every layer…"):
                result = cached_layerwise_pca(*args, skip_first)
            st.plotly_chart(
                figs.make_layer_animation_figure(result, labels, color_by=color_by),
                width="stretch",
                key="directions_animation",
            )
            st.caption(
                "Press play or drag the slider under the chart. Each layer has its own principal components; "
                "their signs are matched to the previous layer so the picture moves smoothly."
            )
    except ExplorerError as err:
        st.warning(str(err), icon=":material/warning:")
    params.set_params(
        layer=None if layer == default_layer else layer,
        proj=None if projection == "pca" else projection,
        dims=None if dims == 2 else dims,
        color=None if color_by == "position" else color_by,
        skip0=None if skip_first == loaded.causal else int(skip_first),
    )


# -------------------------------------------------------------------------------------------------------------
# Embedding matrix


@st.fragment
def embedding_view() -> None:
    _seed(
        "directions_embedding_words",
        dirs.words_from_param(st.query_params.get("ewords")) or DEFAULT_EMBEDDING_WORDS,
    )
    _seed("directions_embedding_dims", int(params.get_choice("dims", "2", ["2", "3"])))
    _seed("directions_embedding_unit", params.get_choice("eunit", "1", ["0", "1"]) == "1")
    left, right = st.columns([1, 3])
    with left:
        text = st.text_area(
            "Words (one a line)",
            key="directions_embedding_words",
            height=360,
            help="Each word's vector is its input-embedding row (averaged over its sub-tokens).",
        )
        dims = st.radio(
            "Axes", [2, 3], key="directions_embedding_dims", format_func=lambda d: f"{d}-D", horizontal=True
        )
        unit = st.checkbox(
            "Unit-length rows",
            key="directions_embedding_unit",
            help="Scale every row to length 1 before PCA, so directions count and not lengths: otherwise a few "
            "long rows (often rare or very frequent tokens) take the first components.",
        )
    words = dirs.parse_words(text)
    params.set_params(
        ewords=None if text.strip() == DEFAULT_EMBEDDING_WORDS else ",".join(words),
        dims=None if dims == 2 else dims,
        eunit=None if unit else 0,
    )
    with right:
        try:
            with st.spinner("Embedding the words…"):
                result, known, unknown = cached_embedding_pca(sel.model_key, tuple(words), dims, unit)
        except ExplorerError as err:
            st.warning(str(err), icon=":material/warning:")
            return
        if unknown:
            st.warning("Unknown to the tokenizer, left out: " + ", ".join(unknown), icon=":material/warning:")
        st.plotly_chart(
            figs.make_pca_scatter_figure(
                result,
                list(known),
                dims=dims,
                color_by="none",
                show_text=True,
                title=f"{len(known)} words in the input-embedding space: first {dims} principal components",
            ),
            width="stretch",
            key="directions_embedding_scatter",
        )
        st.plotly_chart(figs.make_scree_figure(result), width="stretch", key="directions_embedding_scree")


# -------------------------------------------------------------------------------------------------------------
# Semantic directions


def _load_preset() -> None:
    preset = st.session_state.directions_preset
    st.session_state.directions_pairs = dirs.preset_pairs_text(preset)
    st.session_state.directions_targets = dirs.preset_targets_text(preset)


@st.fragment
def directions_view() -> None:
    methods = [m for m in dirs.METHODS if not (m == "sentence" and loaded.causal)]
    preset = params.get_choice("preset", dirs.DEFAULT_PRESET, dirs.PRESETS)
    _seed("directions_preset", preset)
    _seed(
        "directions_pairs",
        dirs.pairs_from_param(st.query_params.get("pairs")) or dirs.preset_pairs_text(preset),
    )
    _seed(
        "directions_targets",
        dirs.words_from_param(st.query_params.get("words")) or dirs.preset_targets_text(preset),
    )
    _seed("directions_method", params.get_choice("method", dirs.DEFAULT_METHOD, methods))
    _seed("directions_word_layer", params.get_int("dlayer", n_layers // 2, 0, n_layers))
    _seed("directions_template", st.query_params.get("template") or dirs.DEFAULT_TEMPLATE)

    cols = st.columns([2, 3])
    cols[0].selectbox(
        "Preset",
        list(dirs.PRESETS),
        key="directions_preset",
        format_func=dirs.PRESETS.get,
        on_change=_load_preset,
        help="Loads its word pairs and target words into the boxes below (you can edit them).",
    )
    method = cols[1].radio(
        "Embed each word by",
        methods,
        key="directions_method",
        format_func=dirs.METHOD_LABELS.get,
        horizontal=True,
    )
    tcols = st.columns([2, 3])
    layer = tcols[0].slider(
        "Layer for contextual states",
        0,
        n_layers,
        key="directions_word_layer",
        disabled=method != "contextual",
        help="0 = embedding output. Used by the contextual method; the layer curve below shows every layer.",
    )
    template = tcols[1].text_input(
        "Template sentence ({} = the word)",
        key="directions_template",
        help="Contextual states are read at the word's tokens inside this sentence (also for the layer curve).",
    )
    left, right = st.columns(2)
    pairs_text = left.text_area(
        "Word pairs (one a line: first second)",
        key="directions_pairs",
        height=220,
        help="e.g. 'he she'. Positive bias scores lean towards the first words.",
    )
    targets_text = right.text_area("Words to score (one a line)", key="directions_targets", height=220)

    pairs, bad = dirs.parse_pairs(pairs_text)
    targets = dirs.parse_words(targets_text)
    preset_now = st.session_state.directions_preset
    params.set_params(
        preset=None if preset_now == dirs.DEFAULT_PRESET else preset_now,
        pairs=None
        if pairs_text.strip() == dirs.preset_pairs_text(preset_now)
        else dirs.pairs_to_param(pairs),
        words=None if targets_text.strip() == dirs.preset_targets_text(preset_now) else ",".join(targets),
        method=None if method == dirs.DEFAULT_METHOD else method,
        dlayer=None if layer == n_layers // 2 else layer,
        template=None if template.strip() == dirs.DEFAULT_TEMPLATE else template,
    )
    if bad:
        st.warning(
            "Not read as pairs (write two words a line, e.g. 'king queen'): " + "; ".join(bad[:8]),
            icon=":material/warning:",
        )
    try:
        with st.spinner("Embedding the words and the control vocabulary…"):
            result = cached_directions(
                sel.model_key,
                tuple(pairs),
                tuple(targets),
                method,
                layer if method == "contextual" else None,
                template,
            )
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        return
    for message in result.messages:
        st.warning(message, icon=":material/warning:")

    control = result.control
    share, mean, std = result.direction.explained, float(control.mean), float(control.std)
    z = (share - mean) / std if std > 0 else float("inf")
    m = st.columns(4)
    m[0].metric(
        "Share of PC1",
        f"{100 * share:.1f} %",
        help="How one-dimensional the concept is: variance of the pair differences along the direction, "
        "over their total variance.",
    )
    m[1].metric(
        f"Random pairs ({control.shares.size} draws)",
        f"{100 * mean:.1f} ± {100 * std:.1f} %",
        help=f"The same number of pairs ({control.n_pairs}) drawn at random from a shipped vocabulary of "
        f"neutral words (seed {control.seed}); mean ± standard deviation.",
    )
    m[2].metric(
        "Ratio to random",
        f"{share / mean:.1f}×" if mean > 0 else "–",
        help=f"The real share is {z:.1f} standard deviations above the random-pair mean.",
    )
    m[3].metric("Pairs used", len(result.pairs))
    verdict = (
        f"clearly one-dimensional here: {z:.0f} standard deviations above random pairs"
        if z > 3
        else "not clearly above random pairs: these pairs share no single direction here"
    )
    where = f", layer {result.layer}" if result.layer is not None else ""
    st.caption(f"The concept is {verdict} ({dirs.METHOD_LABELS[method].lower()}{where}).")

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
            chosen = result.layer if method == "contextual" else None
            st.plotly_chart(
                figs.make_direction_by_layer_figure(profile, chosen_layer=chosen),
                width="stretch",
                key="directions_by_layer",
            )
    if result.debias is not None:
        c4.plotly_chart(
            figs.make_debias_figure(result.debias, first=a, second=b),
            width="stretch",
            key="directions_debias",
        )
        c4.caption(
            "Lean = mean over pairs of cos(word, first word) − cos(word, second word). After removing the "
            "direction each word's projection on it is zero (hover shows it, ~1e-17) and the lean all but "
            "vanishes: what remains is the part of the pairs' differences off the direction."
        )
    with st.expander("How words were tokenized"):
        st.markdown(
            "Static and contextual vectors average the word's sub-tokens. Each word is tokenized as it appears "
            "mid-sentence, with a leading space (byte-level BPE such as SmolLM2's turns ' nurse' into one token "
            "`Ġnurse` but 'nurse' into `n` + `urse`); WordPiece (MiniLM) ignores the space and marks pieces with "
            "`##`. Special tokens ([CLS], [SEP]) never enter static vectors; contextual vectors read the word's "
            "own tokens from the full template sentence; the sentence embedding averages all tokens, "
            "[CLS] and [SEP] included, as the model does."
        )
        st.dataframe(
            pd.DataFrame(
                [{"word": w, "sub-tokens": " · ".join(p), "count": len(p)} for w, p in result.pieces.items()]
            ),
            hide_index=True,
            width="stretch",
        )


if view == "tokens":
    hidden_state_view()
elif view == "embedding":
    embedding_view()
else:
    directions_view()
