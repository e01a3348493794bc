"""Attention of A against a variant B (explorer.analysis.attention_compare): exact zeros for B = A, the mean TV
distance against numpy, a planted W_Q change found in its own head only, and a hand-computed case."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from explorer.analysis import variants as V
from explorer.analysis.attention import attention_grid
from explorer.analysis.attention_compare import (
    ATTENTION_DELTAS,
    COMPARE_MAX_TOKENS,
    attention_changes,
    compare_model_attention,
    total_variation,
)
from explorer.analysis.weights import weight_matrices
from explorer.errors import InputError
from explorer.models.capture import capture
from tests.conftest import SAMPLE_TEXT, get_model
from tests.tolerances import sum_rtol

PLANT_LAYER, PLANT_HEAD = 1, 2


def _a(model: str):
    loaded = get_model(model)
    cap = capture(loaded, SAMPLE_TEXT)
    return loaded, cap, attention_grid(cap.attentions, causal=cap.causal)


def _numpy_tv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The definition, written out: per head, (1/T) sum_i 1/2 sum_j |a_ij - b_ij|, in float64."""
    L, H, T, _ = a.shape
    out = np.zeros((L, H))
    for layer in range(L):
        for head in range(H):
            rows = [0.5 * sum(abs(float(x) - float(y)) for x, y in zip(ra, rb, strict=True))
                    for ra, rb in zip(a[layer, head], b[layer, head], strict=True)]  # fmt: skip
            out[layer, head] = sum(rows) / T
    return out


def test_hand_computed_two_by_two():
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.5, 0.5], [0.25, 0.75]])
    # Row 0: 1/2 (0.5 + 0.5) = 0.5; row 1: 1/2 (0.25 + 0.25) = 0.25; mean 0.375 (every step exact in binary).
    assert total_variation(a, b) == 0.375
    assert total_variation(a, a) == 0.0
    # Disjoint rows are as far apart as two distributions can be.
    assert total_variation(np.eye(2), np.eye(2)[::-1]) == 1.0


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-bert"])
def test_b_equal_to_a_gives_exact_zeros(model):
    loaded, cap, grid = _a(model)
    same = dataclasses.replace(loaded, model=V.with_weights_replaced(loaded, {}))  # a copy computing as A
    comparison = compare_model_attention(cap, grid, same, None)
    assert comparison.unchanged and comparison.most_changed("tv") is None
    for metric in ATTENTION_DELTAS:
        delta = comparison.delta(metric)
        assert np.all(delta[np.isfinite(delta)] == 0.0), metric
    assert comparison.b is grid


def test_planted_query_change_moves_its_head_and_later_layers_only():
    loaded, cap, grid = _a("tiny-llama")
    card = loaded.card
    name = f"model.layers.{PLANT_LAYER}.self_attn.q_proj"
    W = dict((m.name, m.weight) for m in weight_matrices(loaded.model))[name].detach().clone()
    rows = slice(PLANT_HEAD * card.d_head, (PLANT_HEAD + 1) * card.d_head)
    W[rows] *= 3.0  # sharper scores in one head: its attention changes, no other head's inputs do
    b_loaded = dataclasses.replace(loaded, model=V.with_weights_replaced(loaded, {name: W}))
    comparison = compare_model_attention(cap, grid, b_loaded, None)
    changed = np.zeros((card.n_layers, card.n_heads), dtype=bool)
    changed[PLANT_LAYER, PLANT_HEAD] = True
    assert np.array_equal(~comparison.same, changed)
    assert np.all(comparison.tv[~changed] == 0.0)
    assert comparison.most_changed("tv") == (PLANT_LAYER, PLANT_HEAD)
    for metric in ATTENTION_DELTAS:
        assert np.all(comparison.delta(metric)[~changed] == 0.0), metric
    # The TV against numpy's, on the same two captures (float64 sums of T terms in [0, 1] each, then a mean).
    b = np.asarray(comparison.capture_b.attentions)
    reference = _numpy_tv(np.asarray(cap.attentions), b)
    T = cap.n_tokens
    assert np.all(np.abs(comparison.tv - reference) <= 2 * sum_rtol(T * T) * np.maximum(reference, 1e-300))
    assert 0.0 < comparison.tv[PLANT_LAYER, PLANT_HEAD] <= 1.0
    # The metric deltas are B's grid minus A's.
    grid_b = attention_grid(b, causal=True)
    entropy = grid_b.entropy[PLANT_LAYER, PLANT_HEAD] - grid.entropy[PLANT_LAYER, PLANT_HEAD]
    assert comparison.delta("entropy")[PLANT_LAYER, PLANT_HEAD] == entropy


def test_a_change_before_a_layer_reaches_every_later_head():
    """Scaling layer 0's W_Q changes layer 0's heads, and through the residual stream every head after it."""
    loaded, cap, grid = _a("tiny-llama")
    name = "model.layers.0.self_attn.q_proj"
    W = dict((m.name, m.weight) for m in weight_matrices(loaded.model))[name].detach() * 2.0
    b_loaded = dataclasses.replace(loaded, model=V.with_weights_replaced(loaded, {name: W}))
    comparison = compare_model_attention(cap, grid, b_loaded, None)
    assert not comparison.same.any()
    assert np.all((comparison.tv > 0) & (comparison.tv <= 1.0))
    reference = _numpy_tv(np.asarray(cap.attentions), np.asarray(comparison.capture_b.attentions))
    T = cap.n_tokens
    assert np.all(np.abs(comparison.tv - reference) <= 2 * sum_rtol(T * T) * reference)


def test_tv_is_a_distance_in_zero_one_on_random_rows():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(7) * 0.3, size=(3, 2, 7)).astype(np.float32)
    b = rng.dirichlet(np.ones(7) * 0.3, size=(3, 2, 7)).astype(np.float32)
    out = attention_changes(a, b)
    tv = out["tv"]
    row_error = sum_rtol(7, dtype=np.float32)  # each float32 row sums to 1 within this
    assert np.all((tv >= 0) & (tv <= 1 + row_error))
    assert np.array_equal(tv, total_variation(b, a))  # symmetric
    assert not out["same"].any()
    assert np.allclose(tv, _numpy_tv(a, b), rtol=sum_rtol(49), atol=0)


def test_too_long_a_text_says_what_to_do():
    loaded, cap, grid = _a("tiny-llama")
    long = dataclasses.replace(cap, tokens=["x"] * (COMPARE_MAX_TOKENS + 1))
    with pytest.raises(InputError, match="token limit"):
        compare_model_attention(long, grid, loaded, None)


def test_shapes_must_match():
    with pytest.raises(ValueError):
        attention_changes(np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 4, 4)))
