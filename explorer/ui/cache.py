"""Cached wrappers around loading and capture, shared by every browser session.

Models: st.cache_resource (one copy per process; never mutate it). Captures: st.cache_resource too, because
their arrays are large (hundreds of MB at 512 tokens on SmolLM2) and read-only, so sharing beats pickling.
Both are keyed by the frozen choices of explorer.models.choice (the sidebar's Selection builds them).
"""

from __future__ import annotations

import streamlit as st

import explorer.analysis.export  # noqa: F401 (registers the reader of exported compression decisions with load_model)
from explorer.analysis.weights import model_fingerprint
from explorer.models import Capture, LoadedModel, capture
from explorer.models.choice import ModelChoice, TextChoice


@st.cache_resource(max_entries=3, show_spinner=False)
def cached_model(model_key: ModelChoice) -> LoadedModel:
    return model_key.load()


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_fingerprint(model_key: ModelChoice) -> str:
    """The loaded weights' fingerprint (explorer.analysis.weights.model_fingerprint): what disk caches are keyed
    by, so a changed weight is a cache miss."""
    return model_fingerprint(cached_model(model_key).model)


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_capture(model_key: ModelChoice, text_key: TextChoice) -> Capture:
    return capture(cached_model(model_key), text_key.text, text_key.max_tokens)
