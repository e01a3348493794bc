"""Cached model work of the matrix-theory walkthroughs (charpoly, psd, rayleigh, pca, weyl, conditioning), keyed by
plain values (the model and text choices, layer, head, settings) like explorer/ui/learn_cache.py. Results are
small dataclasses of numpy arrays: st.cache_data. The cached model and capture are only read: every array is a
float64 copy."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from explorer.analysis import teaching_matrices as tm
from explorer.analysis.matrices import head_weights, weight_matrices
from explorer.models.choice import ModelChoice, TextChoice
from explorer.ui.cache import cached_capture, cached_model

POWER_STEPS = 20  # A^k checked for k = 1..POWER_STEPS
PCA_COMPONENTS = 10


def _hidden(model_key: ModelChoice, text_key: TextChoice, layer: int) -> np.ndarray:
    """The hidden state after block ``layer`` (token, d_model), float64 copy."""
    return cached_capture(model_key, text_key).hidden_states[layer + 1].astype(np.float64)


@st.cache_data(max_entries=16, show_spinner=False)
def head_diagonalisation(model_key: ModelChoice, text_key: TextChoice, layer: int, head: int, matrix: str):
    """tm.Diagonalisation of a head's attention A ("attention") or its OV core W_O W_V ("ov")."""
    if matrix == "ov":
        loaded = cached_model(model_key)
        card = loaded.card
        hw = head_weights(loaded.model, layer, card.n_heads, card.n_kv_heads)
        M = tm.ov_core(hw.W_V[head].numpy(), hw.W_O[head].numpy())
    else:
        M = cached_capture(model_key, text_key).attentions[layer, head].astype(np.float64)
    return tm.diagonalise(M, POWER_STEPS, with_multiplicities=False)


@st.cache_data(max_entries=16, show_spinner=False)
def hidden_covariance(model_key: ModelChoice, text_key: TextChoice, layer: int):
    return tm.hidden_covariance(_hidden(model_key, text_key, layer))


@st.cache_data(max_entries=16, show_spinner=False)
def hidden_interlacing(model_key: ModelChoice, text_key: TextChoice, layer: int, dropped: int):
    return tm.interlacing(tm.covariance(_hidden(model_key, text_key, layer)), dropped)


@st.cache_data(max_entries=16, show_spinner=False)
def hidden_pca(model_key: ModelChoice, text_key: TextChoice, layer: int):
    return tm.pca_three_ways(_hidden(model_key, text_key, layer), PCA_COMPONENTS)


def weight_kinds(model_key: ModelChoice, layer: int) -> list[str]:
    """The kinds of 2-D weights block ``layer`` has (attn_q, ..., mlp_down), in module order."""
    return [m.kind for m in weight_matrices(cached_model(model_key).model) if m.layer == layer]


@st.cache_data(max_entries=16, show_spinner=False)
def weyl_on_weights(model_key: ModelChoice, layer: int, kinds: tuple[str, ...]) -> list:
    """tm.WeylCheck for each chosen kind of block ``layer`` and each scheme of tm.WEYL_SCHEMES, quantizing
    float64 copies (the model is never touched)."""
    out = []
    for m in weight_matrices(cached_model(model_key).model):
        if m.layer == layer and m.kind in kinds:
            W = m.weight.detach().to("cpu", torch.float64).numpy().copy()
            sigma = np.linalg.svd(W, compute_uv=False)
            out += [tm.weyl_quantized(W, scheme, name=m.name, sigma=sigma) for scheme in tm.WEYL_SCHEMES]
    return out


@st.cache_data(max_entries=16, show_spinner=False)
def head_precision(model_key: ModelChoice, text_key: TextChoice, layer: int, head: int, rotate: bool):
    cap = cached_capture(model_key, text_key)
    return tm.precision_check(cap.attentions[layer, head], causal=cap.causal, rotate=rotate)
