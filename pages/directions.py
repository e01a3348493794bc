"""PCA & directions: hidden-state geometry layer by layer, the embedding matrix, and semantic directions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import wordlists
from explorer.analysis import word_vectors
from explorer.errors import ExplorerError
from explorer.figures import directions as figs
from explorer.ui.directions_cache import (
    cached_directions,
    cached_embedding_pca,
    cached_hidden_pca,
    cached_layer_profile,
    cached_layerwise_pca,
    cached_umap,
)
from explorer.ui.session import require_capture, selection
from explorer.ui.state import Choice, Flag, Float, Int, PageState, Text
from explorer.ui.verdicts import direction_verdict

VIEWS = {
    "tokens": "Hidden states of the text",
    "embedding": "Embedding matrix",
    "directions": "Semantic directions",
}
PROJECTIONS = {"pca": "PCA", "umap": "UMAP", "animate": "PCA, animated through layers"}
COLOURS = {"position": "position", "token": "token"}
DEFAULT_EMBEDDING_WORDS = "\n".join(wordlists.load_wordlist("embedding_words"))
STATE_HELP = (
    "Hidden state l is what the residual stream holds after l transformer blocks: 0 is the embedding output, "
    "l the output of block l − 1 (blocks, the layers of the other pages, count from 0)."
)


def _words_to_link(text: str) -> str:
    return ",".join(wordlists.parse_words(text))


def _pairs_to_link(text: str) -> str:
    return wordlists.pairs_to_param(wordlists.parse_pairs(text)[0])


PAGE = PageState("directions")
VIEW = Choice("view", "tokens", VIEWS)
PROJECTION = Choice("proj", "pca", PROJECTIONS, key="projection")
DIMS = Choice("dims", 2, (2, 3))
COLOUR = Choice("color", "position", COLOURS)
NEIGHBORS = Int("nn", 15, 2, 100, key="neighbors")
MIN_DIST = Float("md", 0.1, 0.0, 0.99, key="min_dist")
EMBEDDING_WORDS = Text(
    "ewords",
    DEFAULT_EMBEDDING_WORDS,
    from_link=wordlists.words_from_param,
    to_link=_words_to_link,
    key="embedding_words",
)
EMBEDDING_DIMS = Choice("dims", 2, (2, 3), key="embedding_dims")
EMBEDDING_UNIT = Flag("eunit", True, key="embedding_unit")
PRESET = Choice("preset", wordlists.DEFAULT_PRESET, wordlists.PRESETS)
TEMPLATE = Text("template", word_vectors.DEFAULT_TEMPLATE, from_link=lambda raw: raw or None)


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

# Hidden-state indices run 0..L (the old links called them `layer`; the alias keeps them opening the same view).
STATE = Int("state", n_layers // 2, 0, n_layers, aliases=("layer",))
WORD_STATE = Int("dstate", n_layers // 2, 0, n_layers, aliases=("dlayer",), key="word_state")
SKIP_FIRST = Flag("skip0", loaded.causal, key="skip_first")

view = PAGE.radio(VIEW, "View", format_func=VIEWS.get, horizontal=True, label_visibility="collapsed")


# -------------------------------------------------------------------------------------------------------------
# Hidden states of the text


@st.fragment
def hidden_state_view() -> None:
    cols = st.columns([3, 1.3, 1.7, 1.6])
    projection = PAGE.radio(
        PROJECTION, "Projection", where=cols[0], format_func=PROJECTIONS.get, horizontal=True
    )
    dims = PAGE.radio(
        DIMS,
        "Axes",
        where=cols[1],
        format_func=lambda d: f"{d}-D",
        horizontal=True,
        disabled=projection == "animate",
    )
    color_by = PAGE.radio(COLOUR, "Colour by", where=cols[2], horizontal=True)
    skip_first = PAGE.checkbox(
        SKIP_FIRST,
        "Leave out token 0",
        where=cols[3],
        help="In causal models the first token's hidden state often has a huge norm (SmolLM2: over 100 times "
        "the others in its middle layers; it serves as an attention sink) and takes the first principal "
        "component on its own. Leaving it out shows the geometry of the rest.",
    )
    layer = PAGE.slider(
        STATE,
        "Hidden state (0 = embedding output, l = after block l − 1)",
        disabled=projection == "animate",
        help=STATE_HELP,
    )
    # UMAP's settings keep their values in the other projections, out of the link.
    PAGE.bind(NEIGHBORS, link=projection == "umap")
    PAGE.bind(MIN_DIST, link=projection == "umap")
    if loaded.causal:
        st.caption(
            "Causal model: each token's hidden state depends only on itself and the tokens before it, so early "
            "positions carry little context."
        )
    labels = cap.labels()
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
            ratio = result.explained_variance_ratio
            right.caption(
                f"{len(result.points)} tokens · the first two components hold {100 * ratio[:2].sum():.1f} % of "
                f"the variance; {int((ratio.cumsum() < 0.9).sum()) + 1} components reach 90 %."
            )
        elif projection == "umap":
            n_neighbors = PAGE.slider(
                NEIGHBORS,
                "UMAP n_neighbors",
                help="Size of the neighbourhood UMAP preserves; kept below the number of tokens.",
            )
            min_dist = PAGE.slider(MIN_DIST, "UMAP min_dist", step=0.01)
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


# -------------------------------------------------------------------------------------------------------------
# Embedding matrix


@st.fragment
def embedding_view() -> None:
    left, right = st.columns([1, 3])
    with left:
        text = PAGE.text_area(
            EMBEDDING_WORDS,
            "Words (one a line)",
            height=360,
            help="Each word's vector is its input-embedding row (averaged over its sub-tokens).",
        )
        dims = PAGE.radio(EMBEDDING_DIMS, "Axes", format_func=lambda d: f"{d}-D", horizontal=True)
        unit = PAGE.checkbox(
            EMBEDDING_UNIT,
            "Unit-length rows",
            help="Scale every row to length 1 before PCA, so directions count and not lengths: otherwise a few "
            "long rows (often rare or very frequent tokens) take the first components.",
        )
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


def _text_settings(preset: str) -> tuple[Text, Text]:
    """The word-pair and target-word boxes, whose defaults are the preset's lists."""
    pairs = Text(
        "pairs",
        wordlists.preset_pairs_text(preset),
        from_link=wordlists.pairs_from_param,
        to_link=_pairs_to_link,
    )
    targets = Text(
        "words",
        wordlists.preset_targets_text(preset),
        from_link=wordlists.words_from_param,
        to_link=_words_to_link,
        key="targets",
    )
    return pairs, targets


def _load_preset() -> None:
    # The picker's callback runs before the script: fill both boxes with the chosen preset's lists.
    preset = PAGE.bind(PRESET)
    pairs, targets = _text_settings(preset)
    PAGE.set(pairs, pairs.default)
    PAGE.set(targets, targets.default)


@st.fragment
def directions_view() -> None:
    methods = [m for m in word_vectors.METHODS if not (m == "sentence" and loaded.causal)]
    preset = PAGE.bind(PRESET)
    pairs_setting, targets_setting = _text_settings(preset)

    cols = st.columns([2, 3])
    PAGE.selectbox(
        PRESET,
        "Preset",
        where=cols[0],
        format_func=wordlists.PRESETS.get,
        on_change=_load_preset,
        help="Loads its word pairs and target words into the boxes below (you can edit them).",
    )
    method = PAGE.radio(
        Choice("method", word_vectors.DEFAULT_METHOD, methods),
        "Embed each word by",
        where=cols[1],
        format_func=word_vectors.METHOD_LABELS.get,
        horizontal=True,
    )
    tcols = st.columns([2, 3])
    layer = PAGE.slider(
        WORD_STATE,
        "Hidden state for contextual vectors",
        where=tcols[0],
        disabled=method != "contextual",
        help=STATE_HELP + " Used by the contextual method; the curve below shows every hidden state.",
    )
    template = PAGE.text_input(
        TEMPLATE,
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
    verdict = direction_verdict(result)
    m = st.columns(4)
    m[0].metric(
        "Share of PC1",
        f"{100 * verdict.share:.1f} %",
        help="How one-dimensional the concept is: variance of the pair differences along the direction, "
        "over their total variance.",
    )
    m[1].metric(
        f"Random pairs ({control.shares.size} draws)",
        f"{100 * verdict.control_mean:.1f} ± {100 * verdict.control_std:.1f} %",
        help=f"The same number of pairs ({control.n_pairs}) drawn at random from a shipped vocabulary of "
        f"neutral words (seed {control.seed}); mean ± standard deviation.",
    )
    m[2].metric(
        "Ratio to random",
        "–" if verdict.ratio is None else f"{verdict.ratio:.1f}×",
        help=f"The real share is {verdict.z:.1f} standard deviations above the random-pair mean.",
    )
    m[3].metric("Pairs used", len(result.pairs))
    where = f", hidden state {result.layer}" if result.layer is not None else ""
    st.caption(f"The concept is {verdict.sentence} ({word_vectors.METHOD_LABELS[method].lower()}{where}).")

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
