"""Attention of model A against a variant B on the same tokens (explorer.analysis.variants names and builds B).

B is run on the text exactly as A's capture was (explorer.analysis.attention_long.capture_with_grid, the same
token limit, so the same token ids), and every head is compared: B − A of each grid metric of
explorer.analysis.attention (|λ₂|, spectral gap, entropy, ranks, sink mass) and the mean total-variation distance
between A's and B's attention rows,

    TV(layer, head) = (1 / T) Σ_i ½ Σ_j |a_ij − b_ij|   in [0, 1]

(½ Σ_j |a_ij − b_ij| is the total-variation distance of two probability rows: 0 when query i attends alike in A
and B, 1 when they share no key). Arrays are (layer, head) float64. A head whose attention is bitwise equal in A
and B (``same``) has every delta exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from explorer import tasks
from explorer.analysis.attention import (
    FULL_DECOMPOSITION_MAX_TOKENS,
    GRID_METRICS,
    AttentionGrid,
    attention_grid,
)
from explorer.analysis.attention_long import capture_with_grid
from explorer.analysis.head_changes import HeadChanges
from explorer.errors import InputError
from explorer.models import Capture, LoadedModel
from explorer.models.choice import TextChoice

# Compare mode reads texts up to this many tokens: every grid metric is then offered (whole decompositions) and
# B's capture, kept with the result for its heatmaps, stays within a few hundred MB.
COMPARE_MAX_TOKENS = FULL_DECOMPOSITION_MAX_TOKENS
# What the compare grid can show: the mean total-variation distance, or B − A of a grid metric.
ATTENTION_DELTAS: dict[str, str] = {
    "tv": "mean TV distance of the rows",
    **{name: metric.label for name, metric in GRID_METRICS.items()},
}


def total_variation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean over queries of the total-variation distance ½ Σ_j |a_ij − b_ij| between two attention stacks.

    a, b: (..., query, key) row-stochastic (float32 or float64). Returns (...) float64 in [0, 1] (up to the
    rounding of rows that sum to 1 within float32)."""
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return 0.5 * diff.sum(axis=-1).mean(axis=-1)


def attention_changes(
    attentions_a, attentions_b, progress: tasks.Progress | None = None
) -> dict[str, np.ndarray]:
    """Per head, A against B, one layer at a time (ndarrays or a capture's LazyAttentions, same shape):
    ``tv`` (layer, head) float64, the mean TV distance, and ``same`` (layer, head) bool, bitwise equal."""
    if tuple(attentions_a.shape) != tuple(attentions_b.shape):
        raise ValueError(f"A's attention is {tuple(attentions_a.shape)}, B's {tuple(attentions_b.shape)}.")
    n_layers, n_heads = attentions_a.shape[:2]
    tv = np.zeros((n_layers, n_heads))
    same = np.zeros((n_layers, n_heads), dtype=bool)
    for layer in range(n_layers):
        a, b = np.asarray(attentions_a[layer]), np.asarray(attentions_b[layer])
        same[layer] = (a == b).reshape(n_heads, -1).all(axis=-1)
        tv[layer] = total_variation(a, b)
        if progress is not None:
            progress((layer + 1) / n_layers, f"A against B: layer {layer + 1} of {n_layers}")
    return {"tv": tv, "same": same}


@dataclass(frozen=True)
class AttentionComparison(HeadChanges):
    """The heads of A and of B on the same tokens. a, b: their AttentionGrids (same shape; b is a itself when
    no head changed). tv: (layer, head) mean TV distance. same: (layer, head) bool, attention bitwise equal.
    capture_b: B's capture of the text (its attentions draw B's heatmaps). ``unchanged`` and ``most_changed``
    as every per-head comparison (HeadChanges)."""

    a: AttentionGrid
    b: AttentionGrid
    tv: np.ndarray
    same: np.ndarray
    capture_b: Capture

    def values(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(A's, B's) (layer, head) values of a grid metric."""
        return self.a.metric(metric), self.b.metric(metric)

    def delta(self, metric: str) -> np.ndarray:
        """(layer, head) float64: ``tv``, or B − A of a grid metric (exactly 0 where the head is the same; NaN
        where the metric is not offered)."""
        if metric == "tv":
            return self.tv
        a, b = self.values(metric)
        return np.where(self.same, 0.0, b - a)


def compare_attention(a: AttentionGrid, b: AttentionGrid, changes: dict[str, np.ndarray], capture_b: Capture):
    """A's and B's grids side by side with the changes of ``attention_changes``."""
    shape = a.lambda2_abs.shape
    if b.lambda2_abs.shape != shape or a.n_tokens != b.n_tokens:
        raise ValueError("A and B must have the same layers, heads and tokens.")
    tv, same = (np.asarray(changes[k]) for k in ("tv", "same"))
    if tv.shape != shape or same.shape != shape:
        raise ValueError(f"The changes must be (layer, head) = {shape} arrays.")
    for array in (tv, same):
        array.setflags(write=False)
    return AttentionComparison(a, b, tv, same, capture_b)


def compare_model_attention(
    cap_a: Capture,
    grid_a: AttentionGrid,
    loaded_b: LoadedModel,
    max_tokens: int | None,
    progress: tasks.Progress | None = None,
) -> AttentionComparison:
    """Run B (``loaded_b``, e.g. ``Variant.loaded(A)``) on A's capture's text with the same token limit and
    compare every head with A's (``cap_a``, ``grid_a``). B's grid is computed only when some head changed.

    Raises InputError past COMPARE_MAX_TOKENS tokens (shorten the text or lower the token limit)."""
    if cap_a.n_tokens > COMPARE_MAX_TOKENS:
        raise InputError(
            f"Compare mode reads texts of at most {COMPARE_MAX_TOKENS:,} tokens; this one has "
            f"{cap_a.n_tokens:,}. Lower the token limit in the sidebar or shorten the text."
        )
    cap_b, grid_b = capture_with_grid(
        loaded_b, cap_a.text, max_tokens, progress=tasks.forward(progress, 0.0, 0.4)
    )
    if not np.array_equal(cap_b.token_ids, cap_a.token_ids):
        raise InputError("B tokenizes the text differently from A: compare models that share a tokenizer.")
    changes = attention_changes(cap_a.attentions, cap_b.attentions, tasks.forward(progress, 0.4, 0.6))
    if changes["same"].all():
        grid_b = grid_a
    elif grid_b is None:
        tasks.forward(progress, 0.6, 1.0)(0.0, "Attention grid of B")
        grid_b = attention_grid(cap_b.attentions, causal=cap_b.causal, device=loaded_b.device)
    if progress is not None:
        progress(1.0, "Compared")
    return compare_attention(grid_a, grid_b, changes, cap_b)


@dataclass(frozen=True)
class AttentionComparisonSpec(tasks.Spec):
    """The task comparing A's attention with the variant ``variant``'s (a variants.VariantSpec: A's weights'
    fingerprint, B's key, the text a LoRA key trains on, the device) on the text ``text_key`` (text and token
    limit)."""

    KIND: ClassVar[str] = "attention-compare"
    RESULT: ClassVar[object] = AttentionComparison
    MAX_FINISHED: ClassVar[int] = 2  # each holds B's capture (up to a few hundred MB of attention)
    variant: tasks.Spec
    text_key: TextChoice

    @property
    def label(self) -> str:
        return f"attention of A and {self.variant.label}"
