"""Cached wrappers for the PCA & directions page, keyed by plain values (model and text choices, settings).

Word vectors (up to ~30 MB for SmolLM2's 31 layers) are shared read-only through st.cache_resource; the
small analysis results go through st.cache_data (each caller gets its own copy).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import wordlists
from explorer.analysis import directions as dirs
from explorer.analysis import word_vectors
from explorer.models.choice import ModelChoice, TextChoice
from explorer.spectra import projections, semantic
from explorer.ui.cache import cached_capture, cached_model


def _hidden(model_key: ModelChoice, text_key: TextChoice) -> np.ndarray:
    return cached_capture(model_key, text_key).hidden_states


@st.cache_data(max_entries=32, show_spinner=False)
def cached_hidden_pca(
    model_key: ModelChoice, text_key: TextChoice, layer: int, n_components: int, skip_first: bool
) -> projections.PCAResult:
    return projections.hidden_state_pca(
        _hidden(model_key, text_key), layer, n_components=n_components, skip_first=skip_first
    )


@st.cache_data(max_entries=8, show_spinner=False)
def cached_layerwise_pca(
    model_key: ModelChoice, text_key: TextChoice, skip_first: bool
) -> projections.LayerwisePCA:
    return projections.layerwise_pca(_hidden(model_key, text_key), n_components=2, skip_first=skip_first)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_umap(
    model_key: ModelChoice,
    text_key: TextChoice,
    layer: int,
    n_neighbors: int,
    min_dist: float,
    n_components: int,
    skip_first: bool,
) -> projections.UMAPResult:
    return projections.hidden_state_umap(
        _hidden(model_key, text_key),
        layer,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        n_components=n_components,
        skip_first=skip_first,
    )


@st.cache_resource(max_entries=12, show_spinner=False)
def cached_word_vectors(
    model_key: ModelChoice, words: tuple[str, ...], method: str, template: str
) -> word_vectors.WordVectors:
    vectors = word_vectors.embed_words(cached_model(model_key), list(words), method=method, template=template)
    vectors.vectors.setflags(write=False)  # shared by every session
    return vectors


@st.cache_data(max_entries=16, show_spinner=False)
def cached_embedding_pca(model_key: ModelChoice, words: tuple[str, ...], n_components: int, unit: bool):
    """(PCAResult, known words, unknown words) for the input-embedding rows of ``words``."""
    vectors = cached_word_vectors(model_key, words, "static", word_vectors.DEFAULT_TEMPLATE)
    rows = semantic.unit_rows(vectors.vectors[0]) if unit else vectors.vectors[0]
    return projections.pca(rows, n_components), vectors.words, vectors.unknown


def _vectors_for(
    model_key: ModelChoice, pairs, targets, method: str, template: str
) -> word_vectors.WordVectors:
    """Pair and target words, then the control vocabulary (cached on its own: it is the same every time)."""
    own = tuple(dict.fromkeys([w for p in pairs for w in p] + list(targets)))
    template = (
        template if method == "contextual" else word_vectors.DEFAULT_TEMPLATE
    )  # only contextual reads it
    vocab = tuple(wordlists.control_vocabulary())
    a = cached_word_vectors(model_key, own, method, template)
    b = cached_word_vectors(model_key, vocab, method, template)
    return word_vectors.merge_word_vectors(a, b)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_directions(
    model_key: ModelChoice,
    pairs: tuple[tuple[str, str], ...],
    targets: tuple[str, ...],
    method: str,
    layer: int | None,
    template: str,
) -> dirs.DirectionAnalysis:
    """Direction, control, bias and debias from the chosen embedding (static: no forward pass at all)."""
    dirs.check_direction_inputs(pairs, targets)
    if method == "contextual":
        template = word_vectors.check_template(template)
    chosen = _vectors_for(model_key, pairs, targets, method, template)
    return dirs.combine_directions(list(pairs), list(targets), chosen, layer=layer)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_layer_profile(
    model_key: ModelChoice, pairs: tuple[tuple[str, str], ...], targets: tuple[str, ...], template: str
) -> dirs.LayerProfile:
    """The share at every layer (contextual states of the pairs and the control vocabulary)."""
    dirs.check_direction_inputs(pairs, targets)
    contextual = _vectors_for(model_key, pairs, targets, "contextual", word_vectors.check_template(template))
    return dirs.layer_profile(list(pairs), list(targets), contextual)
