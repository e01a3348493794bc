"""One head's attention at any length: a pooled overview, an exact window, and summed rows or columns.

Every function reads the capture's attention only as ``attentions[layer, head]`` (one head's (T, T) matrix) or
``attentions[layer, head, i:j, k:l]`` (a window), never the whole (layer, head, T, T) array: a long capture may
hold or recompute one layer at a time. At temperature tau != 1 a window reads whole rows, because A_tau =
row-softmax(log A / tau) normalises over all of a row's keys.

Token positions are 0-based; a range ``(start, stop)`` is half-open like a Python slice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from explorer.spectra import attention_spectra as spec

POOLINGS: dict[str, str] = {
    "mass": "attention mass (block sum ÷ queries in the block)",
    "mean": "mean weight in the block (block sum ÷ its cells)",
    "max": "largest weight in the block",
}
# Rows of a head converted to float64 at a time when pooling a whole head: 512 x 8,192 x 8 bytes = 32 MiB.
POOL_CHUNK_ROWS = 512
# A selection of at most this many runs of consecutive tokens is read as that many windows; more, as one head.
WINDOW_RUNS = 8


def pool_blocks(matrix: np.ndarray, block: int, how: str = "mass") -> np.ndarray:
    """A (rows, cols) matrix pooled over blocks of ``block`` consecutive rows and columns; the last block of
    each side may be shorter (ragged).

    Returns (ceil(rows / block), ceil(cols / block)) float64. ``how="mass"``: P_IJ = (sum of a_ij over i in I,
    j in J) / |I|, the attention a query of block I sends to block J on average (rows of a pooled
    row-stochastic matrix still sum to 1); ``"mean"``: the sum / (|I| |J|), the mean weight of the block's cells;
    ``"max"``: the largest a_ij in the block.
    """
    if how not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}, not {how!r}")
    if int(block) < 1:
        raise ValueError(f"block must be a positive number of tokens, not {block!r}")
    A = np.asarray(matrix)
    rows, cols = A.shape
    row_starts, col_starts = np.arange(0, rows, block), np.arange(0, cols, block)
    if how == "max":
        # reduceat over [start_I, start_{I+1}) with the last block running to the end: ragged for free.
        return np.maximum.reduceat(np.maximum.reduceat(A, row_starts, axis=0), col_starts, axis=1).astype(
            np.float64
        )
    sums = np.add.reduceat(np.add.reduceat(A, row_starts, axis=0, dtype=np.float64), col_starts, axis=1)
    row_sizes = np.minimum(block, rows - row_starts)
    if how == "mass":
        return sums / row_sizes[:, None]
    col_sizes = np.minimum(block, cols - col_starts)
    return sums / (row_sizes[:, None] * col_sizes[None, :])


@dataclass(frozen=True)
class HeatView:
    """A window of one head's attention, pooled in square blocks (block = 1: every weight).

    Attributes:
        values: (query block, key block) float64; block (I, J) covers queries I*block + queries[0] .. and keys
            likewise, the last block of each side possibly shorter.
        block: tokens per block side. how: a key of POOLINGS (irrelevant when block = 1).
        queries, keys: (start, stop) token ranges of the window, half-open.
        n_tokens: T, the text's length. tau: the temperature the weights are at.
    """

    values: np.ndarray
    block: int
    how: str
    queries: tuple[int, int]
    keys: tuple[int, int]
    n_tokens: int
    tau: float = 1.0

    @property
    def whole(self) -> bool:
        """The window is the whole (T, T) matrix."""
        return self.queries == (0, self.n_tokens) and self.keys == (0, self.n_tokens)


def check_window(queries: tuple[int, int], keys: tuple[int, int], n_tokens: int) -> None:
    """Raise ValueError naming the bad value when a window is not inside a T-token head."""
    for name, (start, stop) in (("query", queries), ("key", keys)):
        if not (0 <= start < stop <= n_tokens):
            raise ValueError(
                f"{name} range {start}..{stop - 1} is not inside the text's tokens 0..{n_tokens - 1}"
            )


def _temperature_rows(rows: np.ndarray, tau: float) -> np.ndarray:
    """A_tau of whole rows (r, T): the same spectra.temperature the page's spectrum uses, in float64; at
    tau = 1 the rows as they are (callers sum them in float64 without a float64 copy)."""
    if tau == 1:
        return np.asarray(rows)
    return spec.temperature(torch.from_numpy(np.asarray(rows, dtype=np.float64)), float(tau)).numpy()


def head_window(
    attentions, layer: int, head: int, queries: tuple[int, int], keys: tuple[int, int], *, tau: float = 1.0
) -> np.ndarray:
    """A_tau[q0:q1, k0:k1] of head (layer, head), float64: an exact slice (tau = 1 reads only the window)."""
    T = attentions.shape[-1]
    check_window(queries, keys, T)
    (q0, q1), (k0, k1) = queries, keys
    if tau == 1:
        return np.asarray(attentions[layer, head, q0:q1, k0:k1], dtype=np.float64)
    return _temperature_rows(attentions[layer, head, q0:q1, 0:T], tau)[:, k0:k1]


def pooled_view(
    attentions,
    layer: int,
    head: int,
    block: int,
    how: str,
    *,
    queries: tuple[int, int] | None = None,
    keys: tuple[int, int] | None = None,
    tau: float = 1.0,
) -> HeatView:
    """The window (queries x keys; the whole head by default) of A_tau pooled in blocks of ``block`` tokens.

    The whole head is read once as attentions[layer, head] and pooled POOL_CHUNK_ROWS rows (a multiple of the
    block) at a time, so at most that many float64 rows exist at once besides the float32 head.
    """
    T = attentions.shape[-1]
    queries = (0, T) if queries is None else (int(queries[0]), int(queries[1]))
    keys = (0, T) if keys is None else (int(keys[0]), int(keys[1]))
    check_window(queries, keys, T)
    if how not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}, not {how!r}")
    (q0, q1), (k0, k1) = queries, keys
    if queries == (0, T) and keys == (0, T) and T > POOL_CHUNK_ROWS:
        A = attentions[layer, head]
        step = max(block, POOL_CHUNK_ROWS // block * block)
        parts = [
            pool_blocks(_temperature_rows(A[i : min(i + step, T)], tau), block, how)
            for i in range(0, T, step)
        ]
        values = np.concatenate(parts, axis=0)
    else:
        values = pool_blocks(head_window(attentions, layer, head, queries, keys, tau=tau), block, how)
    return HeatView(values, int(block), how, (q0, q1), (k0, k1), int(T), float(tau))


def box_window(xs, ys, n_tokens: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The (queries, keys) half-open window of a box drawn on a heatmap whose axes are token positions (x: keys,
    y: queries; cell i spans i - 0.5 .. i + 0.5): the tokens whose centres the box covers, or the token nearest
    its middle when it covers none. Raises ValueError for a box that is not two finite numbers a side."""

    def side(values) -> tuple[int, int]:
        low, high = (float(v) for v in sorted(values))
        if len(values) != 2 or not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"a box side needs two finite positions, not {values!r}")
        start, stop = max(0, math.ceil(low)), min(n_tokens, math.floor(high) + 1)
        if start >= stop:
            middle = min(max(round((low + high) / 2), 0), n_tokens - 1)
            return middle, middle + 1
        return start, stop

    return side(list(ys)), side(list(xs))


# --------------------------------------------------------------------------------- several tokens at once

_RANGE = re.compile(r"^(\d+)\s*(?:-|–|\.\.)\s*(\d+)$")


def parse_positions(text: str, n_tokens: int) -> tuple[int, ...]:
    """Token positions from a reader's text such as "10-20, 35" (ranges inclusive; "–" and ".." work too),
    sorted and without repeats. Raises ValueError with a message naming the bad part and what to write."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise ValueError("no tokens given: write positions or ranges, e.g. 10-20, 35")
    last = n_tokens - 1
    chosen: set[int] = set()
    for part in parts:
        match = _RANGE.match(part)
        if match:
            start, end = int(match[1]), int(match[2])
            if start > end:
                raise ValueError(f"'{part}': the start {start} is after the end {end}; write {end}-{start}")
        elif part.isdigit():
            start = end = int(part)
        else:
            raise ValueError(
                f"'{part}' is not a token position or a range: write whole numbers 0..{last}, e.g. 10-20, 35"
            )
        if end > last:
            raise ValueError(f"'{part}' goes beyond the last token, {last} (positions count from 0)")
        chosen.update(range(start, end + 1))
    return tuple(sorted(chosen))


def runs(positions) -> list[tuple[int, int]]:
    """Sorted positions as half-open runs of consecutive tokens: (3, 4, 5, 9) -> [(3, 6), (9, 10)]."""
    out: list[tuple[int, int]] = []
    for p in sorted(set(int(p) for p in positions)):
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out


def format_positions(positions) -> str:
    """Positions as the shortest text parse_positions reads back: "10-20, 35"."""
    return ", ".join(str(a) if b == a + 1 else f"{a}-{b - 1}" for a, b in runs(positions))


def _windows_or_head(attentions, layer: int, head: int, spans: list[tuple[int, int]]):
    """A function (start, stop, axis) -> the rows (axis 0) or columns (axis 1) start:stop of the head: read as
    windows for up to WINDOW_RUNS runs, else from the head read once (a long capture may recompute a layer for
    each read, so a scattered selection must not cost one read per run)."""
    T = attentions.shape[-1]
    whole = attentions[layer, head] if len(spans) > WINDOW_RUNS else None

    def read(start: int, stop: int, axis: int) -> np.ndarray:
        if whole is not None:
            return whole[start:stop] if axis == 0 else whole[:, start:stop]
        if axis == 0:
            return attentions[layer, head, start:stop, 0:T]
        return attentions[layer, head, 0:T, start:stop]

    return read


def summed_over_queries(attentions, layer: int, head: int, positions, *, tau: float = 1.0) -> np.ndarray:
    """Sum of the selected queries' rows of A_tau: (T,) float64, entry j = sum over i in Q of a_ij, what the
    selection reads from key j. Its total is |Q| (each row sums to 1). Reads only the selected rows (a
    selection of more than WINDOW_RUNS runs: the head once)."""
    T = attentions.shape[-1]
    spans = runs(positions)
    for start, stop in spans:
        check_window((start, stop), (0, T), T)
    read = _windows_or_head(attentions, layer, head, spans)
    total = np.zeros(T)
    for start, stop in spans:
        total += _temperature_rows(read(start, stop, 0), tau).sum(axis=0, dtype=np.float64)
    return total


def summed_over_keys(attentions, layer: int, head: int, positions, *, tau: float = 1.0) -> np.ndarray:
    """Sum of the selected keys' columns of A_tau: (T,) float64, entry i = sum over j in K of a_ij, the share
    of query i's attention that goes to the selection. At tau = 1 reads only the selected columns (more than
    WINDOW_RUNS runs: the head once); otherwise
    the whole head, a chunk of rows at a time (each row's temperature needs all of its keys)."""
    T = attentions.shape[-1]
    spans = runs(positions)
    for start, stop in spans:
        check_window((0, T), (start, stop), T)
    total = np.zeros(T)
    if tau == 1:
        read = _windows_or_head(attentions, layer, head, spans)
        for start, stop in spans:
            total += np.asarray(read(start, stop, 1)).sum(axis=1, dtype=np.float64)
        return total
    A = attentions[layer, head]
    index = np.asarray(sorted(set(int(p) for p in positions)))
    for i in range(0, T, POOL_CHUNK_ROWS):
        rows = _temperature_rows(A[i : i + POOL_CHUNK_ROWS], tau)
        total[i : i + POOL_CHUNK_ROWS] = rows[:, index].sum(axis=1, dtype=np.float64)
    return total
