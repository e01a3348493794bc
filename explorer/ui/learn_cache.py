"""Cached analyses of the Learn page's walkthroughs on the loaded model, keyed by plain values (the model and
text choices, layer, head, kind). Results are small numpy arrays or dataclasses: st.cache_data."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching
from explorer.models.choice import ModelChoice, TextChoice
from explorer.ui.cache import cached_capture, cached_model

POWER_MAX_STEPS = 200
LANCZOS_MAX_STEPS = 40
TEMPERATURE_MAX_TOKENS = 96


def _head(model_key: ModelChoice, text_key: TextChoice, layer: int, head: int) -> np.ndarray:
    return cached_capture(model_key, text_key).attentions[layer, head]


@st.cache_data(max_entries=16, show_spinner=False)
def power_on_head(model_key: ModelChoice, text_key: TextChoice, layer: int, head: int, symmetric: bool):
    A = _head(model_key, text_key, layer, head).astype(np.float64)
    M = teaching.symmetric_part(A) if symmetric else A.T  # A^T: the random walk along attention
    return teaching.power_iteration(M, POWER_MAX_STEPS)


@st.cache_data(max_entries=16, show_spinner=False)
def lanczos_on_head(model_key: ModelChoice, text_key: TextChoice, layer: int, head: int):
    S = teaching.symmetric_part(_head(model_key, text_key, layer, head))
    return teaching.lanczos(S, LANCZOS_MAX_STEPS)


@st.cache_data(max_entries=16, show_spinner=False)
def temperature_on_head(model_key: ModelChoice, text_key: TextChoice, layer: int, head: int, causal: bool):
    A = _head(model_key, text_key, layer, head)
    return teaching.temperature_sweep(A, causal=causal, max_tokens=TEMPERATURE_MAX_TOKENS)


@st.cache_data(max_entries=8, show_spinner=False)
def weight_svd(model_key: ModelChoice, layer: int, kind: str):
    name, W = teaching.pick_weight(cached_model(model_key).model, layer, kind)
    return name, teaching.svd_factors(W)
