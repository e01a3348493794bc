"""Logit lens figures: the traces carry the lens's numbers (checked against the arrays they come from)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.logit_lens import LogitLens
from explorer.figures.logit_lens import (
    LENS_METRICS,
    heat_values,
    make_lens_heatmap_figure,
    make_position_trajectory_figure,
    make_top_k_figure,
)
from explorer.figures.tokens import GENERATED_MARK, mark_generated

N_LAYERS, N_TOKENS, K, VOCAB = 4, 7, 3, 50


def _lens(generated: int = 0) -> LogitLens:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(N_LAYERS, N_TOKENS, VOCAB))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    order = np.argsort(-probs, axis=-1)[..., :K]
    final_ids = probs[-1].argmax(-1)
    final_prob = probs[:, np.arange(N_TOKENS), final_ids]
    rank = 1 + (probs > final_prob[..., None]).sum(-1)
    kl = (probs[-1] * (np.log(probs[-1]) - np.log(probs))).sum(-1)
    mask = np.zeros(N_TOKENS, dtype=bool)
    if generated:
        mask[-generated:] = True
    return LogitLens(
        np.arange(N_TOKENS),
        order,
        np.take_along_axis(probs, order, -1).astype(np.float32),
        final_ids,
        rank,
        final_prob.astype(np.float32),
        kl.astype(np.float32),
        mask,
    )


def _inputs(lens):
    labels = mark_generated([f"{i}:t{i}" for i in range(N_TOKENS)], lens.generated)
    top1 = np.array([[f"v{i}" for i in row] for row in lens.top_ids[:, :, 0]], dtype=object)
    finals = [f"v{i}" for i in lens.final_ids]
    return labels, top1, finals


@pytest.mark.parametrize("metric", list(LENS_METRICS))
def test_heatmap_values_and_cells(metric):
    lens = _lens()
    fig = make_lens_heatmap_figure(lens, metric, *_inputs(lens), selected=(2, 5))
    heat, cells, selected = fig.data
    expected = {"rank": np.log10(lens.final_rank), "prob": lens.final_prob, "kl": lens.kl}[metric]
    np.testing.assert_array_equal(np.asarray(heat.z), np.asarray(expected, dtype=float))
    custom = np.asarray(cells.customdata)
    assert custom.shape == (N_LAYERS * N_TOKENS, 5)
    np.testing.assert_array_equal(custom[:, 2].reshape(N_LAYERS, N_TOKENS), lens.final_rank)
    np.testing.assert_allclose(custom[:, 4].reshape(N_LAYERS, N_TOKENS), lens.kl)
    # A cell's marker sits where the heatmap draws it: its label and its layer.
    labels = _inputs(lens)[0]
    assert list(cells.x[:N_TOKENS]) == labels and list(cells.y[:N_TOKENS]) == [0] * N_TOKENS
    assert selected.x == (labels[5],) and selected.y == (2,)


def test_rank_colour_is_log_with_rank_ticks():
    lens = _lens()
    fig = make_lens_heatmap_figure(lens, "rank", *_inputs(lens))
    heat = fig.data[0]
    assert heat.zmin == 0 and heat.zmax == np.ceil(np.log10(lens.final_rank.max()))
    assert heat.colorbar.ticktext[0] == "1" and heat.colorbar.ticktext[1] == "10"


def test_generated_positions_are_marked_and_shaded():
    lens = _lens(generated=2)
    labels, top1, finals = _inputs(lens)
    assert [label.endswith(GENERATED_MARK) for label in labels] == [False] * 5 + [True] * 2
    fig = make_lens_heatmap_figure(lens, "kl", labels, top1, finals)
    (shape,) = fig.layout.shapes
    assert shape.x0 == labels[5] and shape.x1 == labels[6]


def test_heat_values_rejects_unknown_metric():
    with pytest.raises(ValueError, match="rank"):
        heat_values(_lens(), "nonsense")


def test_top_k_bars_are_the_cell_probabilities():
    lens = _lens()
    texts = ["a", "b"]
    fig = make_top_k_figure(lens, 1, 3, texts, "3:t3", k=2)
    (bars,) = fig.data
    np.testing.assert_allclose(bars.x, lens.top_probs[1, 3, :2])
    assert list(bars.customdata) == list(lens.top_ids[1, 3, :2])
    assert bars.y == ("1. 'a'", "2. 'b'")
    # The model's final prediction is the orange bar wherever it appears in the top k.
    final = lens.final_ids[3]
    assert [c == "#e8590c" for c in bars.marker.color] == [int(i) == final for i in lens.top_ids[1, 3, :2]]


def test_trajectory_is_the_column():
    lens = _lens()
    fig = make_position_trajectory_figure(lens, 4, "4:t4")
    prob, rank = fig.data
    np.testing.assert_allclose(prob.y, lens.final_prob[:, 4])
    np.testing.assert_array_equal(rank.y, lens.final_rank[:, 4])
