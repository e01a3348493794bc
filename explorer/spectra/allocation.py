"""Rank allocation across many matrices for one global parameter budget (a separable knapsack).

Matrix i, of shape (m_i, n_i), is either factored at rank k (k(m_i + n_i) parameters, k from ``min_rank`` up
to the largest k with k(m_i + n_i) < m_i n_i, i.e. below the break-even rank) or left dense (m_i n_i
parameters, no error). Keeping component j removes ``gains[i][j]`` from the error, so the error at rank k is
sum_{j >= k} gains[i][j] (0-based). For SVD-LLM the gains are the whitened sigma~_j^2 (the calibration output
error up to the ridge); any orthonormal left basis U also gives the exact calibration output error per
component, ||u_j^T W X^T||^2 (see explorer.analysis.lowrank).

Minimising the total error under sum of parameters <= budget: each matrix's (parameters, gain removed) points
are replaced by their upper concave hull, whose segments have decreasing gain per parameter; segments of all
matrices are taken in decreasing gain per parameter until one does not fit (the Lagrangian/LP relaxation's
solution), matrices whose next segment did not fit are then filled component by component while they fit.
Theorem (LP relaxation of a separable concave problem): the relaxation's optimum is the greedy prefix plus a
fraction of the first segment that did not fit, so the greedy's error exceeds the best integer allocation's by
at most that segment's gain (``gap``). With decreasing gains and no dense step every segment is one component:
the gap is one component. After the fill, what is left of the budget is smaller than the next step of every
matrix not left dense, each at most one rank step m_i + n_i.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Allocation:
    """The allocation of a parameter budget over matrices.

    ranks: ndarray of shape (matrix,), int: components kept (all of them, min(m, n), where the matrix is left
        dense). dense: ndarray of shape (matrix,), bool: left dense (m n parameters, no error).
    params: parameters used (sum of k(m + n), or m n where dense); budget: the budget given.
    error: total error left, sum over matrices of the gains of the dropped components (units of the gains).
    gap: gain of the first hull segment that did not fit (0 when none): error - gap <= the least error any
        allocation within the budget reaches.
    """

    ranks: np.ndarray
    dense: np.ndarray
    params: int
    budget: int
    error: float
    gap: float


def largest_factored_rank(shape: tuple[int, int]) -> int:
    """The largest k with k(m + n) < m n: beyond it the factors hold at least as many numbers as W."""
    m, n = shape
    return max((m * n - 1) // (m + n), 0)


def _points(gain: np.ndarray, shape: tuple[int, int], min_rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(cost, removed) of every option of one matrix, cheapest first: ranks min_rank .. K, then dense."""
    m, n = shape
    top = min(largest_factored_rank(shape), len(gain))
    ranks = np.arange(min_rank, top + 1)
    removed = np.concatenate([[0.0], np.cumsum(gain)])
    cost = np.append(ranks * (m + n), m * n).astype(np.int64)
    return cost, np.append(removed[ranks], removed[-1])


def _upper_hull(cost: np.ndarray, removed: np.ndarray) -> list[int]:
    """Indices of the upper concave hull of the points (monotone chain), starting at point 0."""
    hull: list[int] = [0]
    for i in range(1, len(cost)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or below the chord a -> i: drop it (cross product)
            if (removed[b] - removed[a]) * (cost[i] - cost[a]) <= (removed[i] - removed[a]) * (
                cost[b] - cost[a]
            ):
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def greedy_allocation(
    gains: Sequence[np.ndarray], shapes: Sequence[tuple[int, int]], budget: int, min_rank: int = 1
) -> Allocation:
    """Allocate ``budget`` parameters over the matrices (see the module docstring).

    gains: per matrix an ndarray of shape (r_i,), >= 0, the error each component removes, in the matrix's
    order (r_i <= min(m_i, n_i)). shapes: per matrix (m_i, n_i). Every matrix keeps at least ``min_rank``.
    Raises ValueError when the budget cannot pay for ``min_rank`` components of every matrix.
    """
    if len(gains) != len(shapes):
        raise ValueError("One gain sequence per shape is needed.")
    points = []
    for gain, shape in zip(gains, shapes, strict=True):
        g = np.maximum(np.asarray(gain, dtype=np.float64), 0.0)
        points.append(_points(g, (int(shape[0]), int(shape[1])), min_rank))
    base = int(sum(cost[0] for cost, _ in points))
    if base > budget:
        raise ValueError(
            f"A budget of {budget} parameters cannot keep {min_rank} component(s) of every matrix."
        )
    hulls = [_upper_hull(cost, removed) for cost, removed in points]
    at = [0] * len(points)  # index into each matrix's points of its current choice
    left = int(budget) - base
    heap: list[tuple[float, int, int]] = []  # (-gain per parameter, matrix, hull position of the segment end)

    def push(i: int, pos: int) -> None:
        if pos < len(hulls[i]):
            cost, removed = points[i]
            a, b = hulls[i][pos - 1], hulls[i][pos]
            step = int(cost[b] - cost[a])
            slope = np.inf if step <= 0 else (removed[b] - removed[a]) / step
            heapq.heappush(heap, (-slope, i, pos))

    for i in range(len(points)):
        push(i, 1)
    gap = 0.0
    stalled: list[int] = []  # matrices whose next hull segment did not fit, in the order that happened
    while heap:
        _, i, pos = heapq.heappop(heap)
        cost, removed = points[i]
        a, b = hulls[i][pos - 1], hulls[i][pos]
        step = int(cost[b] - cost[a])
        if step <= left:
            left -= step
            at[i] = b
            push(i, pos + 1)
        else:
            if not stalled:
                gap = float(removed[b] - removed[a])
            stalled.append(i)
    for i in stalled:  # fill: the next options one at a time, while they fit
        cost, _ = points[i]
        while at[i] + 1 < len(cost) and int(cost[at[i] + 1] - cost[at[i]]) <= left:
            left -= int(cost[at[i] + 1] - cost[at[i]])
            at[i] += 1
    ranks, dense, error = [], [], 0.0
    for (cost, removed), j, shape in zip(points, at, shapes, strict=True):
        is_dense = j == len(cost) - 1
        dense.append(is_dense)
        ranks.append(min(int(shape[0]), int(shape[1])) if is_dense else min_rank + j)
        error += float(removed[-1] - removed[j])
    return Allocation(
        ranks=np.array(ranks, dtype=np.int64),
        dense=np.array(dense, dtype=bool),
        params=int(budget) - left,
        budget=int(budget),
        error=error,
        gap=gap,
    )
