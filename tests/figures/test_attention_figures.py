"""Attention and eigenvector figures: the data in the traces and the labels on the axes."""

import numpy as np
import plotly.graph_objects as go
import pytest
from scipy.special import softmax

from explorer.analysis import attention as an
from explorer.figures import attention as fa
from explorer.figures import eigenvectors as fe

N_LAYERS, N_HEADS, N = 3, 4, 10
LABELS = [f"{i}:tok{i}" for i in range(N)]


@pytest.fixture(scope="module")
def attentions():
    rng = np.random.default_rng(0)
    logits = 2 * rng.standard_normal((N_LAYERS, N_HEADS, N, N))
    logits[0, 0] = -10.0  # head (0, 0): everything on token 0, a collapsed attention sink
    logits[0, 0, :, 0] = 10.0
    return softmax(logits, axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def grid(attentions):
    return an.attention_grid(attentions, causal=False)


@pytest.fixture(scope="module")
def spectrum(attentions):
    return an.head_spectrum(attentions, 1, 2, causal=False)


def test_grid_figure_data_selection_and_flags(grid):
    fig = fa.make_attention_grid_figure(grid, "entropy", label="row entropy", selected=(2, 1))
    assert isinstance(fig, go.Figure)
    heatmap = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), grid.entropy)
    cells = fig.data[1]  # the clickable points: one per head, x = head, y = layer
    assert len(cells.x) == N_LAYERS * N_HEADS
    custom = np.asarray(cells.customdata)
    for x, y, row in zip(cells.x, cells.y, custom, strict=True):
        assert (row[0], row[1]) == (y, x)
        assert row[2] == grid.entropy[y, x]  # exact: a copy of the grid's value
    names = [trace.name for trace in fig.data]
    assert any("sink" in name for name in names) and any("collapsed" in name for name in names)
    flagged = next(trace for trace in fig.data if "collapsed" in trace.name)
    assert (0, 0) in set(zip(flagged.y, flagged.x, strict=True))
    rect = fig.layout.shapes[0]
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (0.5, 1.5, 1.5, 2.5)
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    assert fig.layout.clickmode == "event+select"


def test_grid_figure_rejects_unknown_metric(grid):
    with pytest.raises(KeyError):
        fa.make_attention_grid_figure(grid, "nonsense", label="x")


def test_attention_heatmap_linear_and_log(spectrum):
    fig = fa.make_attention_heatmap_figure(spectrum.attention, LABELS, title="t")
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), spectrum.attention)
    assert list(fig.data[0].x) == LABELS and list(fig.data[0].y) == LABELS
    assert "key" in fig.layout.xaxis.title.text and "query" in fig.layout.yaxis.title.text
    log = fa.make_attention_heatmap_figure(spectrum.attention, LABELS, title="t", log_color=True)
    # exact: the same log10(max(a, 1e-6)) of the same array
    np.testing.assert_array_equal(np.asarray(log.data[0].z), np.log10(np.maximum(spectrum.attention, 1e-6)))
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.asarray(log.data[0].customdata), spectrum.attention)


def test_eigenvalue_plane(spectrum):
    fig = fa.make_eigenvalue_plane_figure(spectrum.eigvals, title="t")
    circle, points = fig.data
    np.testing.assert_allclose(np.hypot(circle.x, circle.y), 1.0, atol=1e-12)  # cos, sin to an ulp: ~2 eps
    # exact: the trace holds the eigenvalues' real and imaginary parts
    np.testing.assert_array_equal(points.x, spectrum.eigvals.real)
    np.testing.assert_array_equal(points.y, spectrum.eigvals.imag)
    custom = np.asarray(points.customdata)
    np.testing.assert_array_equal(custom[:, 0], np.arange(1, N + 1))
    np.testing.assert_array_equal(custom[:, 1], np.abs(spectrum.eigvals))  # exact: the same np.abs
    assert "|λ|" in points.hovertemplate
    assert fig.layout.xaxis.title.text == "Re λ" and fig.layout.yaxis.scaleanchor == "x"


def test_spectrum_figure_side_by_side(spectrum):
    fig = fa.make_spectrum_figure(spectrum.eigvals, spectrum.singular_values, title="t")
    moduli, sigma = fig.data
    np.testing.assert_array_equal(moduli.customdata, np.abs(spectrum.eigvals))  # exact: the same np.abs
    # exact: the same floor
    np.testing.assert_array_equal(moduli.y, np.maximum(np.abs(spectrum.eigvals), fa.LOG_FLOOR))
    # exact: the trace holds this array
    np.testing.assert_array_equal(sigma.customdata, spectrum.singular_values)
    assert moduli.xaxis == "x" and sigma.xaxis == "x2"
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    linear = fa.make_spectrum_figure(spectrum.eigvals, spectrum.singular_values, title="t", log_y=False)
    # exact: the trace holds this array
    np.testing.assert_array_equal(linear.data[1].y, spectrum.singular_values)


def test_symmetric_laplacian_figure(spectrum):
    fig = fa.make_symmetric_laplacian_figure(spectrum.sym_eigvals, spectrum.laplacian_eigvals, title="t")
    np.testing.assert_array_equal(fig.data[0].y, spectrum.sym_eigvals)  # exact: the trace holds this array
    # exact: the trace holds this array
    np.testing.assert_array_equal(fig.data[1].y, spectrum.laplacian_eigvals.real)
    # exact: the trace holds this array
    np.testing.assert_array_equal(fig.data[1].customdata, spectrum.laplacian_eigvals.imag)
    assert "Laplacian" in fig.layout.annotations[1].text


def test_head_title_mentions_temperature(attentions):
    hot = an.head_spectrum(attentions, 0, 1, causal=False, tau=2.0)
    assert fa.head_title(hot, "x") == "Layer 0 · head 1 · τ = 2: x"


@pytest.mark.parametrize("kind", ["right", "symmetric", "singular"])
def test_eigenvector_heatmap_signed_and_magnitude(attentions, kind):
    result = an.head_eigenvectors(attentions, 2, 3, kind=kind, k=4)
    fig = fe.make_eigenvector_heatmap_figure(result, LABELS, mode="signed")
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), result.vectors.real)
    assert fig.data[0].zmid == 0
    assert list(fig.data[0].y) == fe.vector_labels(result)
    assert list(fig.data[0].x) == LABELS
    mag = fe.make_eigenvector_heatmap_figure(result, LABELS, mode="magnitude")
    np.testing.assert_array_equal(np.asarray(mag.data[0].z), np.abs(result.vectors))  # exact: the same np.abs
    custom = np.asarray(mag.data[0].customdata)
    # exact: the same np.degrees(np.angle)
    np.testing.assert_array_equal(custom[..., 3], np.degrees(np.angle(result.vectors)))
    with pytest.raises(ValueError):
        fe.make_eigenvector_heatmap_figure(result, LABELS, mode="rainbow")


def test_vector_labels_format_complex_pairs():
    assert fe.format_value(0.5) == "0.500"
    assert fe.format_value(0.25 - 0.125j) == "0.250−0.125i"


def test_stationary_figure(attentions):
    result = an.head_eigenvectors(attentions, 1, 1, kind="symmetric", k=2)
    fig = fe.make_stationary_figure(result.stationary, LABELS, damping=0.85, top=3)
    bar = fig.data[0]
    np.testing.assert_array_equal(bar.y, result.stationary)  # exact: the trace holds this array
    colors = np.asarray(bar.marker.color)
    top = np.argsort(-result.stationary)[:3]
    assert set(np.flatnonzero(colors == colors[top[0]])) == set(top)
    assert fig.layout.shapes[0].y0 == 1 / N  # exact: the uniform level 1 / n, computed the same way
    assert "π" in fig.layout.yaxis.title.text


def test_top_tokens_table(attentions):
    result = an.head_eigenvectors(attentions, 1, 1, kind="singular", k=3, n_top=2)
    rows = fe.top_tokens_table(result, LABELS)
    assert len(rows) == 3
    for row, positions in zip(rows, result.top_tokens, strict=True):
        first, second = row["top tokens (entry)"].split(" · ")
        assert first.startswith(LABELS[positions[0]]) and second.startswith(LABELS[positions[1]])
