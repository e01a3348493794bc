"""The attention page's heatmaps at any length: the pooled overview, a zoomed window (range inputs or a box
selection on the overview, kept in the link) and the summed attention of several tokens.

Maths in explorer/analysis/attention_selection.py; figures in explorer/figures/attention.py. The caches read the
capture through ``cap.attentions[layer, head]`` and its windows only, and return small results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from explorer.analysis.attention import FULL_DECOMPOSITION_MAX_TOKENS
from explorer.analysis.attention_selection import (
    POOLINGS,
    HeatView,
    box_window,
    format_positions,
    parse_positions,
    pooled_view,
    summed_over_keys,
    summed_over_queries,
)
from explorer.figures.attention import (
    DISPLAY_MAX_CELLS,
    LABEL_FIT,
    display_block,
    log_color_ticks,
    make_attention_view_figure,
    make_summed_attention_figure,
)
from explorer.models.capture import Capture
from explorer.models.choice import ModelChoice, TextChoice
from explorer.ui.cache import cached_capture
from explorer.ui.session import token_labels
from explorer.ui.sidebar import Selection
from explorer.ui.state import Choice, Int, PageState, Setting, Text, new_chart_selection

OVERVIEW_KEY = "attention_heatmap"
ZOOM_KEY = "attention_zoom"
POOL = Choice("pool", "mass", POOLINGS)
POOL_LABELS = {"mass": "Attention mass", "mean": "Mean weight", "max": "Largest weight"}
POSITIONS_HINT = "e.g. 10-20, 35"
QUERY_TOKENS = Text("queries", "", key="query_tokens")
KEY_TOKENS = Text("keys", "", key="key_tokens")
# The link params of this part of the page (left out of links to pages that do not use them).
PARAMS = ("pool", "q_from", "q_to", "k_from", "k_to", "queries", "keys")


# The page's intro, under its title.
ATTENTION_INTRO = (
    "Every attention head is a row-stochastic matrix A (each query's weights over the keys sum to 1). Its "
    "eigenvalues lie in the unit disc with λ₁ = 1; |λ₂| says how slowly repeated attention mixes, the singular "
    "values how many independent mixtures the head forms. Pick a metric, click a head."
)


# ------------------------------------------------------------------------------------------------- caches


@st.cache_data(max_entries=16, show_spinner=False)
def cached_view(
    model_key: ModelChoice,
    text_key: TextChoice,
    layer: int,
    head: int,
    tau: float,
    how: str,
    queries: tuple[int, int] | None = None,
    keys: tuple[int, int] | None = None,
) -> HeatView:
    """A window of A_tau (the whole head by default), pooled in display_block of its longer side."""
    attentions = cached_capture(model_key, text_key).attentions
    T = attentions.shape[-1]
    q, k = queries or (0, T), keys or (0, T)
    block = display_block(max(q[1] - q[0], k[1] - k[0]))
    return pooled_view(attentions, layer, head, block, how, queries=q, keys=k, tau=tau)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_summed(
    model_key: ModelChoice,
    text_key: TextChoice,
    layer: int,
    head: int,
    tau: float,
    over: str,
    positions: tuple[int, ...],
) -> np.ndarray:
    """(T,) summed rows (over="queries") or columns (over="keys") of A_tau at ``positions``."""
    attentions = cached_capture(model_key, text_key).attentions
    summed = summed_over_queries if over == "queries" else summed_over_keys
    return summed(attentions, layer, head, positions, tau=tau)


# -------------------------------------------------------------------------------------------- the texts


def pooling_help() -> str:
    """The help text of the pooling control."""
    return (
        f"Past {DISPLAY_MAX_CELLS} tokens a side the heatmap is drawn in blocks of tokens (the numbers on the "
        "page still come from the whole matrix; zoom in for every weight). Attention mass: what a query of the "
        "block sends to the key block, averaged over the block's queries, so each row still sums to 1. Mean "
        "weight: the block's average cell. Largest weight: the strongest single weight in the block."
    )


def view_caption(view: HeatView, *, log_color: bool, triangular: bool) -> str:
    """What a heatmap draws: its colour scale and, when pooled, its blocks and how they are pooled."""
    what = (
        "attention"
        if view.block == 1
        else {"mass": "block mass", "mean": "block mean"}.get(view.how, "largest weight")
    )
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
    if view.block > 1:
        rows, cols = view.values.shape
        n_q, n_k = view.queries[1] - view.queries[0], view.keys[1] - view.keys[0]
        parts.append(
            f"Drawn in blocks of {view.block} tokens: {rows} × {cols} cells for the {n_q} × {n_k} weights, "
            f"each the {POOLINGS[view.how]}. The numbers above use the whole matrix."
        )
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------- zoom


def zoom_settings(n_tokens: int) -> tuple[Setting, Setting, Setting, Setting]:
    """The zoom window's link params: q_from, q_to, k_from, k_to (token positions, inclusive; default: all)."""
    last = n_tokens - 1
    return (
        Int("q_from", 0, 0, last),
        Int("q_to", last, 0, last),
        Int("k_from", 0, 0, last),
        Int("k_to", last, 0, last),
    )


def _box_window(selection: dict, n_tokens: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The half-open (queries, keys) window of the overview's first selected box."""
    box = selection["box"][0]
    return box_window([float(v) for v in box["x"]], [float(v) for v in box["y"]], n_tokens)


def apply_box_select(page: PageState, n_tokens: int) -> None:
    """Set the zoom window from a new box selection on the overview (x = keys, y = queries, in token
    positions). Read at the top of the rerun the selection caused, once: a later change of the range inputs is
    not undone by the stale selection (as apply_grid_click does for the grid)."""
    window = new_chart_selection(OVERVIEW_KEY, lambda selection: _box_window(selection, n_tokens))
    if window is None:
        return
    (q0, q1), (k0, k1) = window
    for setting, value in zip(zoom_settings(n_tokens), (q0, q1 - 1, k0, k1 - 1), strict=True):
        page.set(setting, value)


def forget_on_new_text(page: PageState, text_key, n_tokens: int) -> None:
    """Back to the whole matrix and no token selection when the text (or its length limit) changed since they
    were set: they name positions of the old text. The "to" inputs' default is the last token, so without this
    a longer text would open zoomed on the old one's length. A link opened with both a text and a zoom keeps it
    (no text was seen before in this session)."""
    seen = f"{page.name}_zoom_text"
    if st.session_state.get(seen, text_key) != text_key:
        for setting in (*zoom_settings(n_tokens), QUERY_TOKENS, KEY_TOKENS):
            page.set(setting, setting.default)
    st.session_state[seen] = text_key


def zoom_window(page: PageState, n_tokens: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The range inputs (query from..to, key from..to) and a "Whole matrix" button; returns the half-open
    window, or None after a warning naming the bad range (a start after its end)."""
    settings = zoom_settings(n_tokens)
    columns = st.columns([2, 2, 2, 2, 2])
    if columns[4].button("Whole matrix", key=f"{page.name}_zoom_reset", help="Zoom out to every token."):
        for setting in settings:
            page.set(setting, setting.default)
    labels = ("Queries from", "Queries to", "Keys from", "Keys to")
    values = [
        int(
            page.number_input(s, label, where=col, step=1, help="Token position, counted from 0 (inclusive).")
        )
        for s, label, col in zip(settings, labels, columns, strict=False)
    ]
    (q0, q1, k0, k1) = values
    bad = [(name, a, b) for name, a, b in (("Queries", q0, q1), ("Keys", k0, k1)) if a > b]
    if bad:
        st.warning(
            " ".join(
                f"{name} from {a} is after {name.lower()} to {b}: set a start at or before its end."
                for name, a, b in bad
            )
            + " Showing no zoom until then.",
            icon=":material/crop_free:",
        )
        return None
    return (q0, q1 + 1), (k0, k1 + 1)


@dataclass(frozen=True)
class HeadHeatmap:
    """What the heatmap section draws: head (layer, head) of the sidebar selection's capture at temperature tau,
    pooled by ``pooling`` where pooled, in log or linear colour; ``title`` e.g. "Layer 2 · head 1: attention
    weights"."""

    sel: Selection
    cap: Capture
    layer: int
    head: int
    tau: float
    pooling: str
    log_color: bool
    triangular: bool
    title: str

    @property
    def head_name(self) -> str:
        """The title's part before its colon, e.g. "Layer 2 · head 1"."""
        return self.title.split(":")[0]

    def view(self, queries: tuple[int, int] | None = None, keys: tuple[int, int] | None = None) -> HeatView:
        """The cached pooled view of a window (the whole head by default)."""
        s = self.sel
        return cached_view(
            s.model_key, s.text_key, self.layer, self.head, self.tau, self.pooling, queries, keys
        )


def draw_zoom(heat: HeadHeatmap, window) -> None:
    """The zoomed window at full resolution (pooled only when a side is longer than DISPLAY_MAX_CELLS)."""
    queries, keys = window
    view = heat.view(queries, keys)
    fig = make_attention_view_figure(
        view,
        token_labels(heat.cap, heat.sel),
        title=f"{heat.head_name}: zoom, queries {queries[0]}–{queries[1] - 1} × keys {keys[0]}–{keys[1] - 1}",
        log_color=heat.log_color,
    )
    st.plotly_chart(fig, width="stretch", key=ZOOM_KEY)
    longest = max(queries[1] - queries[0], keys[1] - keys[0])
    words = (
        "token text on the axes"
        if longest <= LABEL_FIT
        else f"positions on the axes (text from {LABEL_FIT} tokens a side down)"
    )
    caption = view_caption(view, log_color=heat.log_color, triangular=heat.triangular)
    st.caption(caption + f" {words.capitalize()}.")


# ------------------------------------------------------------------------------------- several tokens


def token_selection(page: PageState, n_tokens: int) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """Two text inputs, query tokens and key tokens (link params queries, keys); each parsed to positions, or
    None when empty or bad (a bad one gets a warning naming the part that is wrong)."""
    left, right = st.columns(2)
    out = []
    for setting, label, where in (
        (QUERY_TOKENS, "Query tokens (their rows summed)", left),
        (KEY_TOKENS, "Key tokens (their columns summed)", right),
    ):
        text = page.text_input(setting, label, where=where, placeholder=POSITIONS_HINT)
        if not text.strip():
            out.append(None)
            continue
        try:
            out.append(parse_positions(text, n_tokens))
        except ValueError as error:
            where.warning(f"{label.split(' (')[0]}: {error}.", icon=":material/edit_note:")
            out.append(None)
    return out[0], out[1]


def draw_summed(heat: HeadHeatmap, over: str, positions) -> None:
    """The summed attention of the selected queries over every key (over="queries"), or the attention every
    query gives the selected keys (over="keys"), with a caption saying what was summed."""
    sel, cap = heat.sel, heat.cap
    sums = cached_summed(sel.model_key, sel.text_key, heat.layer, heat.head, heat.tau, over, tuple(positions))
    what = "summed attention" if over == "queries" else "attention received"
    count, text = len(positions), format_positions(positions)
    fig = make_summed_attention_figure(
        sums,
        token_labels(cap, sel),
        positions,
        over=over,
        title=f"{heat.head_name}: {what}: {'from' if over == 'queries' else 'to'} {over} {text}",
    )
    st.plotly_chart(fig, width="stretch", key=f"attention_summed_{over}")
    if over == "queries":
        note = (
            f"Bar j = Σᵢ aᵢⱼ over the {count} selected queries i ({text}): the attention they send to key j, "
            f"summed (rows of A added). The bars add up to {sums.sum():.4f} = {count} (each row sums to 1)."
        )
        if cap.causal:
            note += f" Causal: keys after the last selected query, {max(positions)}, receive nothing."
    else:
        note = (
            f"Point i = Σⱼ aᵢⱼ over the {count} selected keys j ({text}): the share of query i's attention "
            "that goes to them (columns of A added), between 0 and 1."
        )
        if cap.causal:
            note += f" Causal: queries before the first selected key, {min(positions)}, cannot see it (0)."
    st.caption(note)


# ------------------------------------------------------------------------------------------- the section


def heatmap_section(page: PageState, heat: HeadHeatmap) -> None:
    """The attention heatmaps of ``heat``: range inputs, the pooled overview (box-select to zoom) beside the
    zoomed window, and the summed attention of selected query or key tokens.

    Call apply_box_select first, at the top of the run, before any of the page's widgets."""
    sel, cap, n_tokens = heat.sel, heat.cap, heat.cap.n_tokens
    forget_on_new_text(page, sel.text_key, n_tokens)
    st.markdown(
        "**Zoom:** drag a box on the overview, or type the ranges (token positions, inclusive); the link keeps "
        "them."
    )
    window = zoom_window(page, n_tokens)
    zoomed = window is not None and window != ((0, n_tokens), (0, n_tokens))
    with st.spinner("Pooling the heatmap…"):
        overview = heat.view()
    over_col, zoom_col = st.columns(2) if zoomed else (st.container(), None)
    over_col.plotly_chart(
        make_attention_view_figure(
            overview,
            token_labels(cap, sel),
            title=heat.title,
            log_color=heat.log_color,
            selectable=True,
            outline=window if zoomed else None,
        ),
        width="stretch",
        key=OVERVIEW_KEY,
        on_select="rerun",
        selection_mode="box",
    )
    over_col.caption(view_caption(overview, log_color=heat.log_color, triangular=heat.triangular))
    if zoomed:
        with zoom_col:
            draw_zoom(heat, window)
    st.markdown(
        f"**Several tokens at once:** positions or ranges ({POSITIONS_HINT}); rows summed for queries, "
        "columns for keys."
    )
    queries, keys = token_selection(page, n_tokens)
    if queries is not None:
        draw_summed(heat, "queries", queries)
    if keys is not None:
        draw_summed(heat, "keys", keys)


def card_value(value: float, fmt: str) -> str:
    """A head's metric card: the value, or what to say where the metric is not offered at this length (NaN:
    past FULL_DECOMPOSITION_MAX_TOKENS the whole-decomposition metrics are not computed)."""
    return "not at this length" if not np.isfinite(value) else format(value, fmt)


def spectrum_note(spectrum) -> str:
    """How the selected head's spectra were computed, with each Krylov spectrum's largest residual (which bounds
    its values' error: Weyl for the singular values and the symmetric part, a backward error for eigenvalues)."""
    parts = [spectrum.note]
    for name, residual in (spectrum.residuals or {}).items():
        if len(residual):
            parts.append(f"{name}: largest residual {float(np.max(residual)):.1e}.")
    return " ".join(parts)


def vectors_note(result) -> str | None:
    """Where a HeadEigenvectors came from a Krylov method (past FULL_DECOMPOSITION_MAX_TOKENS): how, and the
    largest residual ||M v - lambda v|| over its vectors (M the head, its symmetric part, or for singular vectors
    the pair's residual); None for a whole decomposition."""
    if result.residuals is None or not len(result.residuals):
        return None
    return (
        f"Past {FULL_DECOMPOSITION_MAX_TOKENS} tokens these {len(result.residuals)} vectors come from ARPACK (a "
        "Krylov method for the top of the spectrum), not a whole decomposition: the largest residual "
        f"‖M v − λ v‖ among them is {float(np.max(result.residuals)):.1e} (0 would be exact)."
    )
