"""Figures of the weight pages: the data they draw is the data they were given, axes are labelled."""

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from explorer.analysis.circuits import circuit_spectra
from explorer.analysis.weights import METRICS, compute_weight_spectra
from explorer.figures.circuits import (
    make_circuit_singular_values_figure,
    make_copying_heatmap_figure,
    make_ov_eigenvalue_figure,
)
from explorer.figures.common import CELL_HOVER, axes_layout, complex_points, diverging_heatmap, square_cells
from explorer.figures.gershgorin import make_gershgorin_figure
from explorer.figures.weights import (
    OUTSIDE,
    kind_label,
    make_esd_figure,
    make_layer_scree_figure,
    make_scree_figure,
    make_weight_heatmap_figure,
)
from explorer.spectra.gershgorin import analyse_gershgorin
from tests.tolerances import sum_rtol


@pytest.fixture(scope="module")
def spectra(load):
    return compute_weight_spectra(load("tiny-llama").model)


@pytest.fixture(scope="module")
def circuits(load):
    card = load("tiny-llama").card
    return circuit_spectra(load("tiny-llama").model, card.n_layers, card.n_heads, card.n_kv_heads)


@pytest.mark.parametrize("metric", list(METRICS))
def test_heatmap_cells_hold_each_matrix_value(spectra, metric):
    fig = make_weight_heatmap_figure(spectra, metric, log_color=False)
    heat = fig.data[0]
    z = np.array(heat.z, dtype=float)
    rows, cols = list(heat.y), list(heat.x)
    assert rows == ["0", "1", OUTSIDE]
    values = spectra.metric(metric)
    for i in range(len(spectra)):
        r = rows.index(str(spectra.layers[i]) if spectra.layers[i] >= 0 else OUTSIDE)
        c = cols.index(kind_label(spectra.kinds[i]))
        np.testing.assert_array_equal(z[r, c], values[i])  # exact: a copy (NaN equals NaN)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_heatmap_log_colour(spectra):
    fig = make_weight_heatmap_figure(spectra, "condition_number")
    z = np.array(fig.data[0].z, dtype=float)
    raw = np.array(fig.data[0].customdata[..., 0], dtype=float)
    finite = np.isfinite(raw)
    # exact: the same log10 of the same values
    np.testing.assert_array_equal(z[finite], np.log10(raw[finite]))
    assert "log" in fig.data[0].colorbar.title.text


def test_scree_figure(spectra):
    i = spectra.find("mlp_down", 1)
    fig = make_scree_figure(spectra, i)
    sigma, energy = fig.data[0], fig.data[1]
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.array(sigma.y), spectra.sigma[i][spectra.sigma[i] > 0])
    S2 = spectra.sigma[i] ** 2
    # exact: the same cumulative share
    np.testing.assert_array_equal(np.array(energy.y), np.cumsum(S2) / S2.sum())
    lines = sorted(shape.x0 for shape in fig.layout.shapes)
    expected = sorted([spectra.k90[i], spectra.k99[i], spectra.break_even_rank(i)])
    np.testing.assert_array_equal(lines, expected)  # exact: the same ranks
    assert fig.layout.yaxis.type == "log"
    assert "σ" in fig.layout.yaxis.title.text and "energy" in fig.layout.yaxis2.title.text


def test_esd_figure_histogram_and_fit(spectra):
    i = spectra.find("embed", None)
    fig = make_esd_figure(spectra, i, bins=30)
    hist = fig.data[0]
    x, y = np.array(hist.x, dtype=float), np.array(hist.y, dtype=float)
    # The step outline: pairs of points per bin; density * width summed over bins is 1.
    left, right, dens = x[0::2], x[1::2], y[0::2]
    # count / (N width) * width summed over the bins: c n eps from the sum, an ulp or two per term.
    assert np.nansum(dens * (right - left)) == pytest.approx(1.0, rel=2 * sum_rtol(len(dens)))
    names = [trace.name for trace in fig.data]
    assert any(name.startswith("power law α") for name in names)
    assert any("Marchenko" in name for name in names)
    assert any(shape.x0 == spectra.mp_edge[i] for shape in fig.layout.shapes)  # the same float, drawn
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_layer_scree_one_curve_per_layer(spectra):
    fig = make_layer_scree_figure(spectra, "attn_q")
    curves = [trace for trace in fig.data if trace.mode == "lines"]
    assert [trace.name for trace in curves] == ["layer 0", "layer 1"]
    assert fig.data[-1].marker.colorbar.title.text == "layer"
    for trace, i in zip(curves, spectra.of_kind("attn_q"), strict=True):
        # exact: the same division
        np.testing.assert_array_equal(np.array(trace.y, dtype=float), spectra.sigma[i] / spectra.sigma[i][0])
    raw = make_layer_scree_figure(spectra, "attn_q", normalise=False)
    np.testing.assert_array_equal(  # exact: the trace holds this array
        np.array(raw.data[0].y, dtype=float), spectra.sigma[spectra.of_kind("attn_q")[0]]
    )


def test_copying_heatmap(circuits):
    fig = make_copying_heatmap_figure(circuits)
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.array(fig.data[0].z, dtype=float), circuits.copying_score)
    assert fig.data[0].zmin == -1 and fig.data[0].zmax == 1
    assert "K/V" in fig.data[0].hovertemplate  # tiny-llama uses grouped-query attention


def test_ov_eigenvalue_and_singular_value_figures(circuits):
    fig = make_ov_eigenvalue_figure(circuits, 1, 2)
    points = fig.data[1]
    lam = circuits.ov_eigvals[1, 2]
    np.testing.assert_array_equal(np.array(points.x), lam.real)  # exact: the trace holds this array
    np.testing.assert_array_equal(np.array(points.y), lam.imag)  # exact: the trace holds this array
    assert fig.layout.yaxis.scaleanchor == "x"
    sv = make_circuit_singular_values_figure(circuits, 1, 2)
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.array(sv.data[0].y, dtype=float), circuits.qk_sigma[1, 2])
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.array(sv.data[1].y, dtype=float), circuits.ov_sigma[1, 2])


@pytest.mark.parametrize("columns", [False, True])
def test_gershgorin_figure(columns):
    A = np.array([[0.0, 0.3, 0.0], [0.2, 0.5, 0.0], [0.0, 0.1, 10.0]])
    result = analyse_gershgorin(A)
    fig = make_gershgorin_figure(result, columns=columns, labels=["a", "b", "c"])
    groups = result.groups(columns)
    disc_traces = [t for t in fig.data if t.fill == "toself"]
    assert len(disc_traces) == len(groups)
    centres = next(t for t in fig.data if "centres" in t.name)
    np.testing.assert_array_equal(np.array(centres.x), np.diag(A))  # exact: the diagonal
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.array(centres.customdata)[:, 0], result.discs(columns).radii)
    assert list(centres.text) == ["a", "b", "c"]
    eig = next(t for t in fig.data if t.name == "eigenvalues λ")
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.array(eig.x) + 1j * np.array(eig.y), result.eigvals)
    # Each drawn circle has the disc's radius around its centre.
    first = disc_traces[0]
    xs = np.array([v for v in first.x if v is not None], dtype=float)
    ys = np.array([v for v in first.y if v is not None], dtype=float)
    discs = result.discs(columns)
    g0 = groups[0]
    dist = np.abs((xs + 1j * ys)[:, None] - discs.centers[g0][None, :]) - discs.radii[g0][None, :]
    # Each point is c + r (cos t, sin t): at distance r from c to a few eps (|c| + r) ~ 1e-15 here.
    assert np.abs(dist).min(axis=1).max() < 1e-9
    assert fig.layout.yaxis.scaleanchor == "x"


def test_shared_figure_pieces_draw_what_they_are_given():
    z = np.array([1 + 2j, -0.5 - 0.25j, 3.0 + 0j])
    trace = complex_points(
        z, name="z", marker=dict(size=4), extra=np.array([7, 8, 9]), extra_hover="<br>k %{customdata[1]}"
    )
    np.testing.assert_array_equal(np.array(trace.x), z.real)  # exact: the trace holds this array
    np.testing.assert_array_equal(np.array(trace.y), z.imag)  # exact: the trace holds this array
    custom = np.array(trace.customdata, dtype=float)
    # |z| = hypot(Re z, Im z): correctly rounded to within an ulp either way.
    np.testing.assert_allclose(custom[:, 0], np.hypot(z.real, z.imag), rtol=4 * np.finfo(float).eps)
    np.testing.assert_array_equal(custom[:, 1], [7, 8, 9])
    assert trace.hovertemplate.startswith("λ = %{x:.4g} %{y:+.4g}i<br>|λ| = %{customdata[0]:.4g}<br>k ")
    assert np.array(complex_points(z, name="z", marker={}).customdata).shape == (3, 1)

    fig = go.Figure()
    axes_layout(fig, "title", "x", "y", height=300, margin=(1, 2, 3, 4), legend_y=-0.2, log_y=True)
    layout = fig.layout
    assert (layout.title.text, layout.xaxis.title.text, layout.yaxis.title.text) == ("title", "x", "y")
    assert (layout.margin.l, layout.margin.r, layout.margin.t, layout.margin.b) == (1, 2, 3, 4)
    assert (layout.legend.orientation, layout.legend.y, layout.height) == ("h", -0.2, 300)
    assert (layout.yaxis.type, layout.yaxis.exponentformat) == ("log", "power")

    heat = diverging_heatmap(np.eye(2), 2.5, colorbar_title="v", showscale=False)
    assert (heat.zmin, heat.zmax, heat.showscale, heat.hovertemplate) == (-2.5, 2.5, False, CELL_HOVER)
    grid = make_subplots(rows=1, cols=2)
    square_cells(grid, 2)
    assert (grid.layout.yaxis2.scaleanchor, grid.layout.yaxis2.autorange) == ("x2", "reversed")
    assert grid.layout.yaxis.scaleanchor is None  # the other panel is left alone
