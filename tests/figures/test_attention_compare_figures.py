"""The attention page's compare figures: B − A of a head (whole, and pooled past DISPLAY_MAX_CELLS tokens: the
pooled difference is the difference of the pooled heads, each row summing to 0), white at 0."""

from __future__ import annotations

import numpy as np

from explorer.analysis.attention_selection import pool_blocks
from explorer.figures.attention import DISPLAY_MAX_CELLS, display_block, make_attention_difference_figure
from tests.tolerances import sum_rtol


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(n), size=n)


def test_difference_of_a_short_head_is_b_minus_a():
    a, b = _rows(5, 0), _rows(5, 1)
    fig = make_attention_difference_figure(a, b, [f"{i}:t" for i in range(5)], title="t")
    heat = fig.data[0]
    assert np.array_equal(np.asarray(heat.z), b - a)
    assert heat.zmin == -heat.zmax == -np.abs(b - a).max()  # symmetric about 0: white is "no change"


def test_pooled_difference_is_the_difference_of_the_pooled_heads():
    n = DISPLAY_MAX_CELLS + 40  # blocks of 2 tokens, the last one short
    a, b = _rows(n, 2), _rows(n, 3)
    fig = make_attention_difference_figure(a, b, [f"{i}:t" for i in range(n)], title="t")
    z = np.asarray(fig.data[0].z)
    block = display_block(n)
    expected = pool_blocks(b, block, "mass") - pool_blocks(a, block, "mass")
    # Sums of at most block * n terms of either sign, each below 1 in size, per cell.
    assert np.allclose(z, expected, rtol=0, atol=2 * sum_rtol(block * n))
    assert np.allclose(z.sum(axis=1), 0.0, rtol=0, atol=2 * sum_rtol(block * n) * n)


def test_no_change_draws_zeros():
    a = _rows(4, 4)
    fig = make_attention_difference_figure(a, a.copy(), [f"{i}:t" for i in range(4)], title="t")
    assert np.all(np.asarray(fig.data[0].z) == 0.0)
