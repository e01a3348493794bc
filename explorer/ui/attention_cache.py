"""UI support for the attention and eigenvector pages: cached analyses, and the head they share.

The caches are keyed by plain values: the model and text choices (Selection.model_key, Selection.text_key) and
the page settings. Results are small frozen dataclasses of numpy arrays, so st.cache_data (a copy per caller) is
safe; the model and capture come from ui.cache."""

from __future__ import annotations

import streamlit as st

from explorer.analysis.attention import (
    FULL_DECOMPOSITION_MAX_TOKENS,
    AttentionGrid,
    HeadEigenvectors,
    HeadSpectrum,
    attention_grid,
    head_eigenvectors,
    head_spectrum,
)
from explorer.figures.attention import (
    DISPLAY_MAX_CELLS,
    LOG_AUTO_SHARE,
    POOLINGS,
    auto_log_color,
    display_block,
    log_color_ticks,
)
from explorer.models.choice import ModelChoice, TextChoice
from explorer.ui.cache import cached_capture, cached_model, capture_spec
from explorer.ui.state import PageState, head_picker, head_settings


@st.cache_data(max_entries=8, show_spinner=False)
def cached_attention_grid(model_key: ModelChoice, text_key: TextChoice) -> AttentionGrid:
    """Per-head summaries of every layer and head (the grid; a long capture's was reduced during its pass, see
    AttentionGrid.not_offered and note for what is not offered at that length)."""
    loaded = cached_model(model_key)
    cap = cached_capture(model_key, text_key)
    return attention_grid(cap.attentions, causal=cap.causal, device=loaded.device)


def _long(model_key: ModelChoice, text_key: TextChoice) -> bool:
    """The text is past the full-decomposition length: results hold (T, T) arrays too large to copy per caller."""
    return capture_spec(model_key, text_key).n_tokens > FULL_DECOMPOSITION_MAX_TOKENS


def _head_spectrum(model_key, text_key, layer, head, tau, damping) -> HeadSpectrum:
    loaded = cached_model(model_key)
    cap = cached_capture(model_key, text_key)
    return head_spectrum(
        cap.attentions, layer, head, causal=cap.causal, tau=tau, damping=damping, device=loaded.device
    )


_head_spectrum_copied = st.cache_data(max_entries=32, show_spinner=False)(_head_spectrum)
# Past the full length one result holds a (T, T) head (268 MB at 8,192 tokens): shared, never copied, few kept.
_head_spectrum_shared = st.cache_resource(max_entries=4, show_spinner=False)(_head_spectrum)


def cached_head_spectrum(
    model_key: ModelChoice, text_key: TextChoice, layer: int, head: int, tau: float, damping: float
) -> HeadSpectrum:
    """Full spectrum of one head at temperature tau (past the full-decomposition length: the top of each
    spectrum by Krylov methods, with residuals; shared read-only between sessions, not copied)."""
    cached = _head_spectrum_shared if _long(model_key, text_key) else _head_spectrum_copied
    return cached(model_key, text_key, layer, head, tau, damping)


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
    """Top-k vectors of one head (right eigenvectors, symmetric part or left singular vectors; by ARPACK with
    residuals past the full-decomposition length). Small: (k, T) vectors and a (T,) distribution."""
    loaded = cached_model(model_key)
    cap = cached_capture(model_key, text_key)
    return head_eigenvectors(
        cap.attentions, layer, head, kind=kind, k=k, tau=tau, damping=damping, device=loaded.device
    )


def first_log_length(triangular: bool) -> int:
    """The fewest tokens at which the heatmap's automatic colour is log (auto_log_color's threshold)."""
    return next(n for n in range(1, 10_000) if auto_log_color(n, triangular))


def heat_color_help() -> str:
    """The help text of the heatmap's colour control, with the automatic rule's numbers."""
    return (
        "Log colours the heatmap by log₁₀ of the attention, so weak weights show next to a strong one. Auto "
        f"picks log once a query that spreads its attention evenly (1/k on each of its k keys) would sit in the "
        f"bottom {LOG_AUTO_SHARE:.0%} of a linear scale: from {first_log_length(False)} tokens, or "
        f"{first_log_length(True)} for a causal head."
    )


def pooling_help() -> str:
    """The help text of the heatmap's pooling control."""
    return (
        f"Past {DISPLAY_MAX_CELLS} tokens the heatmap is drawn in blocks of tokens (the numbers on the page "
        "still come from the whole matrix). Attention mass: what a query of the block sends to the key block, "
        "averaged over the block's queries, so each row still sums to 1. Largest weight: the strongest single "
        "weight in the block."
    )


def heatmap_caption(n_tokens: int, *, log_color: bool, pooling: str, triangular: bool) -> str:
    """What the heatmap draws: its colour scale and, past DISPLAY_MAX_CELLS tokens, its blocks (the same
    display_block the figure uses)."""
    block = display_block(n_tokens)
    what = "attention" if block == 1 else ("block mass" if pooling == "mass" else "largest weight")
    if log_color:
        blank = (
            "masked future keys, or weights that underflowed" if triangular else "weights that underflowed"
        )
        parts = [
            f"Colour: log₁₀ of the {what}, from {log_color_ticks()[1][0]} (darkest, and anything smaller) to 1; "
            f"blank cells are exactly 0 ({blank})."
        ]
    else:
        parts = [f"Colour: the {what} on a linear scale from 0 to its largest value."]
    if block > 1:
        cells = -(-n_tokens // block)
        parts.append(
            f"Drawn in blocks of {block} tokens: {cells} × {cells} cells for the {n_tokens} × {n_tokens} weights, "
            f"each the {POOLINGS[pooling]}. The numbers above use the whole matrix."
        )
    return " ".join(parts)


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
