"""UI support for the attention and eigenvector pages: cached analyses, and the head they share.

The caches are keyed by plain values: the model and text choices (Selection.model_key, Selection.text_key) and
the page settings. Results are small frozen dataclasses of numpy arrays, so st.cache_data (a copy per caller) is
safe; the model and capture come from ui.cache."""

from __future__ import annotations

from typing import NamedTuple

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
    LOG_AUTO_SHARE,
    auto_log_color,
)
from explorer.models.capture import Capture
from explorer.models.choice import ModelChoice, TextChoice
from explorer.models.loading import LoadedModel
from explorer.ui.cache import cached_capture, cached_model, capture_spec
from explorer.ui.session import require_capture, selection
from explorer.ui.sidebar import Selection
from explorer.ui.state import PageState, head_picker, head_settings, new_chart_selection

# The page's intro, under its title.
EIGENVECTORS_INTRO = (
    "Where in the text each spectral direction of a head lives: the top vectors over the tokens, and the "
    "stationary distribution π of the head read as a random walk (follow attention from token to token; π is "
    "where you end up most often)."
)


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


class HeadPageInputs(NamedTuple):
    """What the attention and eigenvector pages start from: the model, the capture of the sidebar text, the
    sidebar selection and the capture's layer, head and token counts."""

    loaded: LoadedModel
    cap: Capture
    sel: Selection
    n_layers: int
    n_heads: int
    n_tokens: int


def require_head_inputs(title: str, intro: str, *, single_token: str) -> HeadPageInputs:
    """The page's title and intro, then require_capture (stops the page on bad input or a single token, saying
    ``single_token``) and the rest of HeadPageInputs."""
    st.title(title)
    st.caption(intro)
    loaded, cap = require_capture(single_token=single_token)
    n_layers, n_heads = cap.attentions.shape[:2]
    return HeadPageInputs(loaded, cap, selection(), n_layers, n_heads, cap.n_tokens)


# The selected head is shared by the attention and eigenvector pages: in a session, each opens on the head last
# picked on either.
SELECTED_HEAD = "selected_head"


def attention_head_picker(page: PageState, n_layers: int, n_heads: int) -> tuple[int, int]:
    """The layer and head number inputs of the attention and eigenvector pages (link params layer, head)."""
    return head_picker(page, n_layers, n_heads, shared=SELECTED_HEAD, widget="number")


def _grid_cell(selection: dict) -> tuple[int, int]:
    """(layer, head) of the grid's first selected point."""
    point = selection["points"][0]
    return int(round(float(point["y"]))), int(round(float(point["x"])))


def apply_grid_click(page: PageState, chart_key: str, n_layers: int, n_heads: int) -> None:
    """Select the head of a newly clicked grid cell (x = head, y = layer in the grid figure).

    Reads the chart's selection state at the top of the rerun the click caused; a selection that was already
    applied is ignored, so a later change of the number inputs is not undone by the stale selection.
    """
    clicked = new_chart_selection(chart_key, _grid_cell)
    if clicked is None:
        return
    if 0 <= clicked[0] < n_layers and 0 <= clicked[1] < n_heads:
        layer, head = head_settings(n_layers, n_heads, shared=SELECTED_HEAD)
        page.set(layer, clicked[0])
        page.set(head, clicked[1])
