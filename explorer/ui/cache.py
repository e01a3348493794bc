"""Cached wrappers around loading and capture, shared by every browser session.

Models: st.cache_resource (one copy per process; never mutate it). Captures: st.cache_resource too, because
their arrays are large (hundreds of MB at 512 tokens on SmolLM2) and read-only, so sharing beats pickling.
"""

from __future__ import annotations

import streamlit as st

from explorer.models import Capture, LoadedModel, capture, load_model


@st.cache_resource(max_entries=3, show_spinner=False)
def cached_model(
    model_id: str, device: str, dtype: str, trust_remote_code: bool, allow_pickle: bool, allow_external: bool
) -> LoadedModel:
    return load_model(
        model_id,
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        allow_external=allow_external,
    )


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_capture(model_key: tuple, text: str, max_tokens: int) -> Capture:
    return capture(cached_model(*model_key), text, max_tokens)
