"""Figures of the PCA & directions page: built from synthetic results, checked on fig.data / fig.layout."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis import directions as dirs
from explorer.analysis import word_vectors
from explorer.figures import directions as figs
from explorer.spectra import projections
from tests.tolerances import sum_rtol

LABELS = [f"{i}:{t}" for i, t in enumerate(["the", "cat", "sat", "on", "the", "mat", ".", "the"])]


@pytest.fixture(scope="module")
def hidden():
    return np.random.default_rng(0).normal(size=(3, len(LABELS), 16))


def _analysis(n_layers=4, seed=0):
    pairs = [("he", "she"), ("man", "woman"), ("king", "queen")]
    targets = ["nurse", "engineer", "pilot"]
    words = dirs.direction_words(pairs, targets)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n_layers, len(words), 16))
    pieces = tuple((w,) for w in words)
    chosen = word_vectors.WordVectors(tuple(words), vectors[:1], pieces, (), "static")
    contextual = word_vectors.WordVectors(
        tuple(words), vectors, pieces, (), "contextual", word_vectors.DEFAULT_TEMPLATE
    )
    return dirs.combine_directions(pairs, targets, chosen), dirs.layer_profile(pairs, targets, contextual)


def test_pca_scatter_2d_and_3d(hidden):
    result = projections.hidden_state_pca(hidden, 1, n_components=3)
    fig = figs.make_pca_scatter_figure(result, LABELS, dims=2)
    assert len(fig.data) == 1 and len(fig.data[0].x) == len(LABELS)
    np.testing.assert_array_equal(fig.data[0].x, result.coords[:, 0])  # exact: the trace holds this array
    assert list(fig.data[0].hovertext) == LABELS
    assert fig.data[0].mode == "markers+text" and fig.data[0].text[1] == "cat"  # short: labels written
    many = projections.pca(np.random.default_rng(1).normal(size=(50, 8)), 2)
    assert figs.make_pca_scatter_figure(many, [f"{i}:t" for i in range(50)]).data[0].mode == "markers"
    assert "PC1" in fig.layout.xaxis.title.text and "%" in fig.layout.xaxis.title.text
    assert "after block 0" in fig.layout.title.text  # hidden state 1: the output of block 0
    fig3 = figs.make_pca_scatter_figure(result, LABELS, dims=3)
    assert fig3.data[0].type == "scatter3d"
    np.testing.assert_array_equal(fig3.data[0].z, result.coords[:, 2])  # exact: the trace holds this array
    assert "PC3" in fig3.layout.scene.zaxis.title.text


def test_colour_by_position_or_token(hidden):
    result = projections.hidden_state_pca(hidden, 0, n_components=2, skip_first=True)
    by_pos = figs.make_pca_scatter_figure(result, LABELS, color_by="position")
    marker = by_pos.data[0].marker
    assert list(marker.color) == list(range(1, len(LABELS)))  # token 0 left out
    by_tok = figs.make_pca_scatter_figure(result, LABELS, color_by="token")
    colours = list(by_tok.data[0].marker.color)
    texts = [LABELS[i].split(":")[1] for i in result.points]
    for i in range(len(texts)):
        for j in range(len(texts)):
            assert (colours[i] == colours[j]) == (texts[i] == texts[j])


def test_scree_bars_and_cumulative(hidden):
    result = projections.hidden_state_pca(hidden, 2)
    fig = figs.make_scree_figure(result)
    bars, line = fig.data
    # exact: the same 100 * ratio
    np.testing.assert_array_equal(bars.y, 100 * result.explained_variance_ratio)
    np.testing.assert_array_equal(line.y, np.cumsum(bars.y))  # exact: the same cumulative sum
    # All components shown for this small set; ratios of one total sum to 1 within c n eps.
    assert line.y[-1] == pytest.approx(100, rel=2 * sum_rtol(len(line.y)))
    assert "%" in fig.layout.yaxis.title.text


def test_layer_animation_has_a_frame_per_layer(hidden):
    result = projections.layerwise_pca(hidden)
    fig = figs.make_layer_animation_figure(result, LABELS)
    assert len(fig.frames) == hidden.shape[0]
    # exact: the trace holds this array
    np.testing.assert_array_equal(fig.frames[2].data[0].y, result.coords[2, :, 1])
    assert len(fig.layout.sliders[0].steps) == hidden.shape[0]
    assert fig.layout.updatemenus[0].buttons[0].method == "animate"


def test_umap_figure_axes_have_no_units():
    coords = np.random.default_rng(1).normal(size=(len(LABELS), 2))
    fig = figs.make_umap_figure(
        coords, LABELS, list(range(len(LABELS))), layer=0, n_neighbors=5, color_by="token"
    )
    assert "UMAP 1" in fig.layout.xaxis.title.text and "n_neighbors = 5" in fig.layout.title.text
    assert "embedding output" in fig.layout.title.text


def test_bias_figure_is_sorted_and_coloured_by_side():
    analysis, _ = _analysis()
    fig = figs.make_bias_figure(analysis)
    bar = fig.data[0]
    assert list(bar.x) == sorted(analysis.bias)
    assert sorted(bar.y) == sorted(analysis.targets)
    for value, colour in zip(bar.x, bar.marker.color, strict=True):
        assert colour == (figs._FIRST if value >= 0 else figs._SECOND)
    assert "he side" in fig.layout.xaxis.title.text and "she side" in fig.layout.xaxis.title.text


def test_debias_figure_before_and_after():
    analysis, _ = _analysis()
    fig = figs.make_debias_figure(analysis.debias, first="he", second="she")
    before, after = fig.data
    order = np.argsort(analysis.debias.gap_before)
    # exact: the trace holds this array
    np.testing.assert_array_equal(before.x, analysis.debias.gap_before[order])
    # exact: the trace holds this array
    np.testing.assert_array_equal(after.x, analysis.debias.gap_after[order])
    # Projections on the removed direction: rounding of length-d dot products of unit vectors.
    np.testing.assert_allclose(after.customdata, 0, atol=2 * sum_rtol(analysis.direction.vector.size))


def test_direction_scree_against_control():
    analysis, _ = _analysis()
    fig = figs.make_direction_scree_figure(analysis)
    real, control = fig.data
    assert real.y[0] == 100 * analysis.direction.explained  # exact: the same product
    assert control.y[0] == 100 * analysis.control.mean  # exact: the same product
    assert control.error_y.array[0] == 100 * analysis.control.std  # exact: the same product


def test_direction_by_layer_line_and_band():
    _, profile = _analysis(n_layers=5)
    fig = figs.make_direction_by_layer_figure(profile, chosen_layer=2)
    band, mean, share = fig.data
    np.testing.assert_array_equal(share.y, 100 * profile.shares)  # exact: the same 100 * shares
    np.testing.assert_array_equal(mean.y, 100 * profile.control.mean)  # exact: the same 100 * mean
    assert len(band.x) == 2 * 5 and band.fill == "toself"
    assert any(shape.x0 == 2 for shape in fig.layout.shapes)
    assert "hidden state" in fig.layout.xaxis.title.text
