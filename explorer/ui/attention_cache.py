"""UI support for the attention and eigenvector pages: cached analyses, and the head selection and settings
bound to st.query_params.

The caches are keyed by plain values: the model key tuple (Selection.model_key), the text, max tokens and the
page settings. Results are small frozen dataclasses of numpy arrays, so st.cache_data (a copy per caller) is
safe; the model and capture come from ui.cache."""

from __future__ import annotations

import streamlit as st

from explorer.analysis.attention import (
    AttentionGrid,
    HeadEigenvectors,
    HeadSpectrum,
    attention_grid,
    head_eigenvectors,
    head_spectrum,
)
from explorer.ui import params
from explorer.ui.cache import cached_capture, cached_model


@st.cache_data(max_entries=8, show_spinner=False)
def cached_attention_grid(model_key: tuple, text: str, max_tokens: int) -> AttentionGrid:
    """Per-head summaries of every layer and head (the grid)."""
    loaded = cached_model(*model_key)
    cap = cached_capture(model_key, text, max_tokens)
    return attention_grid(cap.attentions, causal=cap.causal, device=loaded.device)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_head_spectrum(
    model_key: tuple, text: str, max_tokens: int, layer: int, head: int, tau: float, damping: float
) -> HeadSpectrum:
    """Full spectrum of one head at temperature tau."""
    loaded = cached_model(*model_key)
    cap = cached_capture(model_key, text, max_tokens)
    return head_spectrum(
        cap.attentions, layer, head, causal=cap.causal, tau=tau, damping=damping, device=loaded.device
    )


@st.cache_data(max_entries=32, show_spinner=False)
def cached_head_eigenvectors(
    model_key: tuple,
    text: str,
    max_tokens: int,
    layer: int,
    head: int,
    kind: str,
    k: int,
    tau: float,
    damping: float,
) -> HeadEigenvectors:
    """Top-k vectors of one head (right eigenvectors, symmetric part or left singular vectors)."""
    loaded = cached_model(*model_key)
    cap = cached_capture(model_key, text, max_tokens)
    return head_eigenvectors(
        cap.attentions, layer, head, kind=kind, k=k, tau=tau, damping=damping, device=loaded.device
    )


# ---------------------------------------------------------------------------------------------------------
# The selected head, shared by the attention and eigenvector pages: st.query_params (`layer`, `head`, 0-based)
# is the source of truth, so a link reopens the same head; session state remembers it across page switches
# (navigation clears query params).

SELECTED_HEAD = "attention_selected_head"


def selected_head(n_layers: int, n_heads: int) -> tuple[int, int]:
    """(layer, head) from the query params, else the last one selected in this session, clamped to the model."""
    last_layer, last_head = st.session_state.get(SELECTED_HEAD, (0, 0))
    layer = params.get_int("layer", min(last_layer, n_layers - 1), 0, n_layers - 1)
    head = params.get_int("head", min(last_head, n_heads - 1), 0, n_heads - 1)
    return layer, head


def set_selected_head(layer: int, head: int) -> None:
    st.session_state[SELECTED_HEAD] = (int(layer), int(head))
    params.set_params(layer=int(layer), head=int(head))


def apply_grid_click(chart_key: str, n_layers: int, n_heads: int) -> None:
    """Select the head of a newly clicked grid cell (x = head, y = layer in the grid figure).

    Reads the chart's selection state at the top of the rerun the click caused; a selection that was already
    applied is ignored, so a later change of the number inputs is not undone by the stale selection.
    """
    state = st.session_state.get(chart_key)
    try:
        point = state["selection"]["points"][0]
        clicked = (int(round(float(point["y"]))), int(round(float(point["x"]))))
    except (TypeError, KeyError, IndexError, ValueError):
        # No selection (never clicked, or cleared): the next click on any cell counts, even the last one.
        st.session_state.pop(f"{chart_key}_applied", None)
        return
    if st.session_state.get(f"{chart_key}_applied") == clicked:
        return
    st.session_state[f"{chart_key}_applied"] = clicked
    if 0 <= clicked[0] < n_layers and 0 <= clicked[1] < n_heads:
        set_selected_head(*clicked)


def head_picker(prefix: str, n_layers: int, n_heads: int) -> tuple[int, int]:
    """Layer and head number inputs (keys ``<prefix>_layer``, ``<prefix>_head``) bound to the query params."""
    layer, head = selected_head(n_layers, n_heads)
    for key, value in ((f"{prefix}_layer", layer), (f"{prefix}_head", head)):
        if st.session_state.get(key) != value:
            st.session_state[key] = value

    def changed() -> None:
        set_selected_head(st.session_state[f"{prefix}_layer"], st.session_state[f"{prefix}_head"])

    left, right = st.columns(2)
    left.number_input(
        "Layer",
        0,
        n_layers - 1,
        step=1,
        key=f"{prefix}_layer",
        on_change=changed,
        help="0-based layer index.",
    )
    right.number_input(
        "Head", 0, n_heads - 1, step=1, key=f"{prefix}_head", on_change=changed, help="0-based head index."
    )
    set_selected_head(layer, head)
    return layer, head


def _seed_and_correct(key: str, param: str, value):
    """Seed widget ``key`` with ``value``; a link whose ``param`` held nonsense (or a value out of range) is
    rewritten to the value shown, so a shared link never disagrees with the page."""
    if st.session_state.get(key) != value:
        st.session_state[key] = value
    raw = st.query_params.get(param)
    if raw is not None and raw != str(value):
        params.set_params(**{param: value})
    return value


def bound_choice(key: str, param: str, default: str, choices) -> str:
    """Seed widget ``key`` from query param ``param`` (nonsense falls back to ``default``); returns the value.
    Pair it with ``on_change=remember(key, param)`` on the widget."""
    value = params.get_choice(param, default, list(choices))
    return _seed_and_correct(key, param, value)


def bound_float(key: str, param: str, default: float, low: float, high: float) -> float:
    value = params.get_float(param, default, low, high)
    return _seed_and_correct(key, param, value)


def bound_int(key: str, param: str, default: int, low: int, high: int) -> int:
    value = params.get_int(param, default, low, high)
    return _seed_and_correct(key, param, value)


def remember(key: str, param: str):
    """An on_change callback writing widget ``key``'s value to query param ``param``."""

    def callback() -> None:
        params.set_params(**{param: st.session_state[key]})

    return callback
