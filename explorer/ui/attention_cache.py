"""UI support for the attention and eigenvector pages: cached analyses, and the head they share.

The caches are keyed by plain values: the model and text choices (Selection.model_key, Selection.text_key) and
the page settings. Results are small frozen dataclasses of numpy arrays, so st.cache_data (a copy per caller) is
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
from explorer.models.choice import ModelChoice, TextChoice
from explorer.ui.cache import cached_capture, cached_model
from explorer.ui.state import PageState, head_picker, head_settings


@st.cache_data(max_entries=8, show_spinner=False)
def cached_attention_grid(model_key: ModelChoice, text_key: TextChoice) -> AttentionGrid:
    """Per-head summaries of every layer and head (the grid)."""
    loaded = cached_model(model_key)
    cap = cached_capture(model_key, text_key)
    return attention_grid(cap.attentions, causal=cap.causal, device=loaded.device)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_head_spectrum(
    model_key: ModelChoice, text_key: TextChoice, layer: int, head: int, tau: float, damping: float
) -> HeadSpectrum:
    """Full spectrum of one head at temperature tau."""
    loaded = cached_model(model_key)
    cap = cached_capture(model_key, text_key)
    return head_spectrum(
        cap.attentions, layer, head, causal=cap.causal, tau=tau, damping=damping, device=loaded.device
    )


@st.cache_data(max_entries=32, show_spinner=False)
def cached_head_eigenvectors(
    model_key: ModelChoice,
    text_key: TextChoice,
    layer: int,
    head: int,
    kind: str,
    k: int,
    tau: float,
    damping: float,
) -> HeadEigenvectors:
    """Top-k vectors of one head (right eigenvectors, symmetric part or left singular vectors)."""
    loaded = cached_model(model_key)
    cap = cached_capture(model_key, text_key)
    return head_eigenvectors(
        cap.attentions, layer, head, kind=kind, k=k, tau=tau, damping=damping, device=loaded.device
    )


# The selected head is shared by the attention and eigenvector pages: in a session, each opens on the head last
# picked on either.
SELECTED_HEAD = "selected_head"


def attention_head_picker(page: PageState, n_layers: int, n_heads: int) -> tuple[int, int]:
    """The layer and head number inputs of the attention and eigenvector pages (link params layer, head)."""
    return head_picker(page, n_layers, n_heads, shared=SELECTED_HEAD, widget="number")


def apply_grid_click(page: PageState, chart_key: str, n_layers: int, n_heads: int) -> None:
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
        layer, head = head_settings(n_layers, n_heads, shared=SELECTED_HEAD)
        page.set(layer, clicked[0])
        page.set(head, clicked[1])
