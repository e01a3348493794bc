"""Compare mode of the attention page: model A (loaded) against a variant B named by ``vs=`` in the link
(explorer.analysis.variants; the same box and the same built variant as the weights and circuits pages).

Below the single-model view: the layer x head grid of one per-head change (the mean total-variation distance
between A's and B's attention rows, or B − A of a grid metric), a sentence on which head changed most, and one
head's A | B: its numbers and its two heatmaps side by side. B's capture of the same tokens and the comparison run
as a task (explorer/tasks.py: an AttentionComparisonSpec keyed by B's VariantSpec and the text choice), watched
here with progress; the page only calls ``draw``."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis.attention import GRID_METRICS, AttentionGrid
from explorer.analysis.attention_compare import (
    ATTENTION_DELTAS,
    COMPARE_MAX_TOKENS,
    AttentionComparison,
    AttentionComparisonSpec,
    compare_model_attention,
)
from explorer.figures.attention import (
    attention_delta_label,
    auto_log_color,
    display_block,
    make_attention_delta_figure,
    make_attention_difference_figure,
    make_attention_heatmap_figure,
)
from explorer.models import Capture, LoadedModel
from explorer.ui import head_compare
from explorer.ui.state import Choice, PageState

VS_ATTN = Choice("vs_attn", "tv", tuple(ATTENTION_DELTAS))
GRID_KEY = "attention_vs_grid"
TASK = head_compare.CompareTask(
    AttentionComparisonSpec,
    "B on the text, and every head against A's",
    "Comparing the attention of A and B failed. Reload the page to retry",
    "attention_vs_task",
)
METRIC_NAMES = {name: metric.label for name, metric in GRID_METRICS.items()}  # the head table's rows


def draw(page: PageState, sel, loaded: LoadedModel, cap: Capture, grid_a: AttentionGrid, key: str) -> None:
    """The compare section for B = ``key`` (canonical): everything below the "Compare with" box."""
    if cap.n_tokens > COMPARE_MAX_TOKENS:
        st.info(
            f"Compare mode reads texts of at most {COMPARE_MAX_TOKENS:,} tokens (every head's whole spectrum, "
            f"and B's attention kept for its heatmaps); this one has {cap.n_tokens:,}. Lower the token limit in "
            "the sidebar or shorten the text.",
            icon=":material/straighten:",
        )
        return
    comparison = head_compare.compared(
        sel,
        loaded,
        key,
        TASK,
        lambda variant, progress: compare_model_attention(
            cap, grid_a, variant.loaded(loaded), sel.text_key.max_tokens, progress
        ),
    )
    if comparison is None:
        return
    if comparison.unchanged:
        st.info(
            "No change: every head of B attends exactly as A's on this text (bitwise equal attention), so every "
            "difference below is 0.",
            icon=":material/info:",
        )
    metric = _grid_section(page, comparison)
    _head_section(page, cap, comparison, metric)


def _grid_section(page: PageState, comparison: AttentionComparison) -> str:
    return head_compare.grid_section(
        page,
        VS_ATTN,
        label=attention_delta_label,
        help="Mean TV distance: (1/T) Σᵢ ½ Σⱼ |aᵢⱼ − bᵢⱼ|, how much of each query's attention moved (0: none, "
        "1: to other keys entirely). Or B − A of a grid metric.",
        figure=lambda metric: make_attention_delta_figure(comparison, metric),
        sentence=lambda metric: head_compare.change_sentence(
            comparison,
            metric,
            ATTENTION_DELTAS[metric],
            paired=metric != "tv",
            differ="attend differently in B",
        ),
        key=GRID_KEY,
    )


def _head_section(page: PageState, cap: Capture, comparison: AttentionComparison, metric: str) -> None:
    st.subheader("One head: A and B")
    L, H = comparison.a.n_layers, comparison.a.n_heads
    layer, head = head_compare.compare_head_picker(
        page, GRID_KEY, L, H, comparison.most_changed(metric) or (0, 0)
    )
    st.dataframe(
        head_compare.head_rows(comparison, layer, head, METRIC_NAMES, "metric"),
        hide_index=True,
        width="stretch",
        key="attention_vs_table",
    )
    same = " It attends exactly as in A." if comparison.same[layer, head] else ""
    st.caption(
        f"Layer {layer} head {head}: mean TV distance of its rows {comparison.tv[layer, head]:.3g}.{same}"
    )
    n = cap.n_tokens
    # One colour rule for both (the page's automatic one, from A's head), so equal colours are equal weights.
    log_color = auto_log_color(n, bool(comparison.a.triangular[layer, head]))
    labels = cap.labels()
    heads = [
        np.asarray(attentions[layer, head])
        for attentions in (cap.attentions, comparison.capture_b.attentions)
    ]
    for col, who, matrix in zip(st.columns(2), "AB", heads, strict=True):
        fig = make_attention_heatmap_figure(
            matrix, labels, title=f"{who}: layer {layer} · head {head}", log_color=log_color
        )
        col.plotly_chart(fig, width="stretch", key=f"attention_vs_heat_{who.lower()}")
    left, _ = st.columns(2)
    difference = make_attention_difference_figure(*heads, labels, title=f"B − A: layer {layer} · head {head}")
    left.plotly_chart(difference, width="stretch", key="attention_vs_diff")
    block = display_block(n)
    pooled = f" Drawn in blocks of {block} tokens (attention mass per block)." if block > 1 else ""
    st.caption(
        f"A's attention on the left, B's on the right, in {'log' if log_color else 'linear'} colour on one "
        f"scale; below, B − A (red: B attends more, blue: less; each row of it sums to 0).{pooled}"
    )
