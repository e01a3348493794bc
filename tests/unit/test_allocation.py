"""Greedy rank allocation against an exhaustive search over every rank tuple (an independent optimum), the
budget it promises, and uniform ranks at the same budget."""

import itertools

import numpy as np
import pytest

from explorer.spectra.allocation import greedy_allocation, largest_factored_rank
from tests.tolerances import sum_rtol

SHAPES = [(12, 10), (9, 14), (16, 6), (7, 7)]


def _options(gain, shape, min_rank=1):
    """Every (parameters, error) choice of one matrix, written out directly: ranks below break-even, dense."""
    m, n = shape
    out = [
        (k * (m + n), float(np.sum(gain[k:])), k, False)
        for k in range(min_rank, min(m, n) + 1)
        if k * (m + n) < m * n
    ]
    return out + [(m * n, 0.0, min(m, n), True)]


def _brute_force(gains, shapes, budget):
    best = None
    for choice in itertools.product(*(_options(g, s) for g, s in zip(gains, shapes, strict=True))):
        cost = sum(c[0] for c in choice)
        if cost <= budget:
            error = sum(c[1] for c in choice)
            if best is None or error < best:
                best = error
    return best


def _gains(rng, shapes, monotone):
    out = []
    for m, n in shapes:
        g = rng.exponential(1.0, min(m, n)) * rng.uniform(0.1, 10)
        out.append(np.sort(g)[::-1] if monotone else g)
    return out


def _check_budget(alloc, shapes, budget):
    m_n = np.array([m + n for m, n in shapes])
    assert alloc.params <= budget
    used = sum(
        m * n if d else k * (m + n) for (m, n), k, d in zip(shapes, alloc.ranks, alloc.dense, strict=True)
    )
    assert used == alloc.params
    # What is left is smaller than one rank step of every matrix that is not dense (its next step costs less).
    if not alloc.dense.all():
        assert budget - alloc.params < m_n[~alloc.dense].min()


@pytest.mark.parametrize("monotone", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_optimal_up_to_the_gap_against_exhaustive_search(seed, monotone):
    rng = np.random.default_rng(seed)
    shapes = SHAPES[: 3 + seed % 2]
    gains = _gains(rng, shapes, monotone)
    lo = sum(m + n for m, n in shapes)
    hi = sum(m * n for m, n in shapes)
    for budget in np.linspace(lo, hi + 5, 9).astype(int):
        alloc = greedy_allocation(gains, shapes, int(budget))
        _check_budget(alloc, shapes, int(budget))
        best = _brute_force(gains, shapes, int(budget))
        errors = [
            float(np.sum(g[k:])) if not d else 0.0
            for g, k, d in zip(gains, alloc.ranks, alloc.dense, strict=True)
        ]
        # The error is recomputed from the ranks (not read from the allocation) and compared with the optimum;
        # 1e-12 relative: sums of at most 16 float64 terms of size <= 1e2.
        tol = 1e-12 * sum(float(g.sum()) for g in gains)
        assert alloc.error == pytest.approx(sum(errors), abs=tol)
        assert best - tol <= alloc.error <= best + alloc.gap + tol


@pytest.mark.parametrize("seed", range(8))
def test_greedy_at_uniform_budget_never_worse_than_uniform_beyond_the_gap(seed):
    rng = np.random.default_rng(100 + seed)
    shapes = [(int(rng.integers(8, 60)), int(rng.integers(8, 60))) for _ in range(6)]
    gains = _gains(rng, shapes, monotone=True)
    for share in (0.3, 0.6, 0.9):
        uniform = [max(int(np.floor(share * m * n / (m + n))), 1) for m, n in shapes]
        budget = sum(k * (m + n) for k, (m, n) in zip(uniform, shapes, strict=True))
        uniform_error = sum(float(np.sum(g[k:])) for g, k in zip(gains, uniform, strict=True))
        alloc = greedy_allocation(gains, shapes, budget)
        _check_budget(alloc, shapes, budget)
        # The errors are sums of <= 60 float64 gains: relative rounding c n eps ~ 1e-13 < 1e-12.
        assert alloc.error <= uniform_error + alloc.gap + 1e-12 * uniform_error


def test_without_a_dense_step_in_reach_the_gap_is_one_component():
    # Decreasing gains and a budget far below any dense step: every hull segment is one component.
    rng = np.random.default_rng(7)
    shapes = [(200, 180), (150, 220), (300, 100)]
    gains = _gains(rng, shapes, monotone=True)
    budget = sum(10 * (m + n) for m, n in shapes) + 123
    alloc = greedy_allocation(gains, shapes, budget)
    _check_budget(alloc, shapes, budget)
    assert 0 < alloc.gap <= max(float(g.max()) for g in gains)
    # a difference of two float64 cumulative sums of <= 300 terms: 1e-12 relative to the sum.
    tol = 1e-12 * sum(float(g.sum()) for g in gains)
    assert min(abs(alloc.gap - g[k]) for g, k in zip(gains, alloc.ranks, strict=True)) <= tol


def test_equal_matrices_get_equal_ranks_and_dense_when_the_budget_pays():
    shapes = [(20, 20)] * 3
    gains = [0.8 ** np.arange(20)] * 3
    alloc = greedy_allocation(gains, shapes, 3 * 4 * 40)
    # The same 3 x 16 positive gains, summed in another order: c n eps.
    assert list(alloc.ranks) == [4, 4, 4] and alloc.error == pytest.approx(
        3 * float(np.sum(gains[0][4:])), rel=sum_rtol(3 * 20)
    )
    full = greedy_allocation(gains, shapes, 3 * 400)
    assert full.dense.all() and full.error == 0 and full.params == 1200


def test_a_matrix_with_larger_gains_gets_more_rank():
    shapes = [(30, 30), (30, 30)]
    gains = [0.7 ** np.arange(30), 5 * 0.9 ** np.arange(30)]
    alloc = greedy_allocation(gains, shapes, 2 * 5 * 60)
    assert alloc.ranks[1] > alloc.ranks[0] and alloc.ranks.sum() == 10


def test_budget_below_the_minimum_is_refused():
    with pytest.raises(ValueError):
        greedy_allocation([np.ones(5)], [(5, 5)], 9)


def test_largest_factored_rank():
    for m, n in [(12, 10), (10, 10), (1536, 576), (3, 1)]:
        k = largest_factored_rank((m, n))
        assert k * (m + n) < m * n <= (k + 1) * (m + n)
