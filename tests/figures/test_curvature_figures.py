"""The curvature figures on hand-made results (no model): every trace's numbers against the result's, the
signed log axis, the density's bulk, negative mass and outliers against a density whose answers are known."""

import math

import numpy as np
import pytest

from explorer.analysis.curvature import LAYER_PARTS, CurvatureGrid, TopEigen, TrainingRun
from explorer.figures import curvature as F
from explorer.spectra.curvature import SpectralDensity, TraceEstimate
from tests.tolerances import sum_rtol


def _eigen(k=3, steps=6):
    lam = np.array([50.0, 7.0, 2.5])[:k]
    history = np.outer(1 - 0.5 ** np.arange(1, steps + 1), lam)
    residuals = np.outer(0.5 ** np.arange(1, steps + 1), lam)
    groups = ("embeddings", "layer 0 attention", "layer 0 mlp", "layer 1 mlp")
    mass = np.array([[0.7, 0.1, 0.2], [0.1, 0.3, 0.2], [0.15, 0.3, 0.3], [0.05, 0.3, 0.3]])[:, :k]
    return TopEigen(lam, residuals[-1], history, residuals, steps, True, groups, mass)


def _density():
    """One probe's quadrature: nodes -1, 0, 0.1, 0.2, 50 with weights 0.1, 0.3, 0.3, 0.25, 0.05, broadened by
    sigma = 0.05 onto a grid (the curve the figure draws)."""
    nodes = np.array([[-1.0, 0.0, 0.1, 0.2, 50.0]])
    weights = np.array([[0.1, 0.3, 0.3, 0.25, 0.05]])
    sigma = 0.05
    grid = np.linspace(-1.25, 50.25, 20001)
    density = (np.exp(-0.5 * ((grid[:, None] - nodes[0]) / sigma) ** 2) @ weights[0]) / (
        sigma * np.sqrt(2 * np.pi)
    )
    return SpectralDensity(nodes, weights, grid, density, 1.0, sigma, np.zeros(3), np.zeros(3))


def test_symlog_is_odd_monotone_and_linear_near_zero():
    x = np.array([-1e4, -1.0, -1e-6, 0.0, 1e-6, 1.0, 1e4])
    y = F.symlog(x, 1e-3)
    np.testing.assert_array_equal(y, -F.symlog(-x, 1e-3))
    assert np.all(np.diff(y) > 0)
    # log10(1 + t) = t / ln 10 + O(t^2): at t = 1e-3 the relative error is t / 2 = 5e-4.
    assert F.symlog(1e-6, 1e-3) == pytest.approx(1e-3 / np.log(10), rel=1e-3)
    assert F.symlog(1e4, 1e-3) == pytest.approx(7.0, abs=1e-6)  # log10(1 + 1e7) = 7 + 4.3e-8


def test_symlog_ticks_label_the_values_at_their_positions():
    positions, labels = F.symlog_ticks(-0.5, 2e5, 0.02)
    values = [float(t.replace("−", "-")) for t in labels]
    # Ticks are round numbers printed in full, so the parsed values are the ticks; their positions are
    # sign(v) log10(1 + |v| / c), written out here: one log10 of a number >= 1, a few ulps.
    values = np.array(values)
    np.testing.assert_allclose(positions, np.sign(values) * np.log10(1 + np.abs(values) / 0.02), rtol=1e-14)
    assert 0.0 in values and min(values) >= -0.5 and max(values) <= 2e5 and -0.1 in values
    assert not any(0 < abs(v) < 0.02 for v in values)  # none inside the linear part, where they would crowd 0
    assert "1e5" in labels and "−0.1" in labels


def test_top_eigen_figure_shows_the_eigenvalues_with_residual_error_bars():
    eigen = _eigen()
    trace = F.make_top_eigen_figure(eigen).data[0]
    np.testing.assert_array_equal(trace.y, eigen.eigenvalues)
    np.testing.assert_array_equal(trace.error_y.array, eigen.residual_norms)
    np.testing.assert_array_equal(trace.x, [1, 2, 3])


def test_convergence_figure_has_every_ritz_value_and_residual_per_product():
    eigen = _eigen()
    fig = F.make_convergence_figure(eigen)
    ritz = [t for t in fig.data if t.name.startswith("θ")]
    res = [t for t in fig.data if t.name.startswith("‖r")]
    assert len(ritz) == len(res) == 3
    for i in range(3):
        np.testing.assert_array_equal(ritz[i].y, eigen.history_ritz[:, i])
        np.testing.assert_array_equal(res[i].y, eigen.history_residuals[:, i])
        np.testing.assert_array_equal(ritz[i].x, np.arange(1, 7))
    assert fig.layout.yaxis2.type == "log"
    assert "6 products, converged" in fig.layout.title.text


def test_common_prefix_stops_at_a_dot():
    names = ["encoder.layer.3.intermediate.dense.weight", "encoder.layer.3.output.dense.bias"]
    assert F.common_prefix(names) == "encoder.layer.3."
    assert F.common_prefix(["layer 0 attention", "layer 0 mlp"]) == ""
    assert F.common_prefix(["a.b.c", "a.b.c"]) == "a.b."


def test_group_mass_figure_labels_parameters_by_what_differs():
    eigen = _eigen()
    names = ("model.layers.2.mlp.up_proj.weight", "model.layers.2.mlp.down_proj.weight", "model.layers.2.mlp.gate",
             "model.layers.2.mlp.x")  # fmt: skip
    fig = F.make_group_mass_figure(TopEigen(*[getattr(eigen, f) for f in ("eigenvalues", "residual_norms",
        "history_ritz", "history_residuals", "n_matvec", "converged")], names, eigen.group_mass))  # fmt: skip
    assert list(fig.data[0].x) == ["up_proj.weight", "down_proj.weight", "gate", "x"]
    assert fig.layout.xaxis.title.text == "model.layers.2.mlp.…"


def test_group_mass_figure_bars_are_the_shares_and_keep_the_heaviest_groups():
    eigen = _eigen()
    fig = F.make_group_mass_figure(eigen)
    assert [t.visible for t in fig.data] == [True, "legendonly", "legendonly"]
    for i, t in enumerate(fig.data):
        assert list(t.x) == list(eigen.groups)
        np.testing.assert_array_equal(t.y, eigen.group_mass[:, i])
    trimmed = F.make_group_mass_figure(eigen, max_groups=2)
    # The two groups with most of the top eigenvector's mass, in model order.
    assert list(trimmed.data[0].x) == ["embeddings", "layer 0 mlp"]
    np.testing.assert_array_equal(trimmed.data[0].y, [0.7, 0.15])


@pytest.mark.parametrize("offset", [0.0, 40.0])
def test_running_trace_matches_numpy_on_every_prefix(offset):
    samples = np.array([3.0, 5.0, 4.0, 10.0, -2.0])
    trace = TraceEstimate(offset + samples.mean(), samples.std(ddof=1) / np.sqrt(5), samples, 5, "hutchinson")
    estimate, stderr = F.running_trace(trace)
    # Means and variances of at most 5 numbers, in another summation order: c n eps relative (the variance's
    # sum is one-sign; the offset only shifts numbers of the same magnitude).
    rtol = sum_rtol(5)
    for n in range(1, 6):
        assert estimate[n - 1] == pytest.approx(offset + samples[:n].mean(), rel=rtol)
        if n > 1:
            assert stderr[n - 1] == pytest.approx(samples[:n].std(ddof=1) / np.sqrt(n), rel=rtol)
    assert np.isnan(stderr[0])
    assert stderr[-1] == pytest.approx(trace.stderr, rel=rtol)
    fig = F.make_trace_figure(trace)
    line = next(t for t in fig.data if t.name == "running estimate")
    # Running means of at most 5 probes: cumulative sums in either order agree to ~5 eps, far inside 1e-7.
    np.testing.assert_allclose(line.y, estimate)
    assert line.y[-1] == pytest.approx(trace.trace, rel=rtol)
    points = next(t for t in fig.data if t.name == "one probe")
    np.testing.assert_allclose(points.y, offset + samples)  # one addition each: exact or 1 ulp
    assert f"± {trace.stderr:.2g} (5 probes" in fig.layout.title.text


def test_density_regions_read_the_quadrature():
    regions = F.density_regions(_density(), top_eigenvalues=[50.0, 0.2, 0.15])
    # Cumulative weights in node order: 0.1, 0.4, 0.7, 0.95, 1: the 5 % quantile is -1, the 95 % one 0.2.
    assert regions.bulk == (-1.0, 0.2)
    # Only -1 lies below -sigma (0 does not): a sum of few non-negative weights, c n eps relative.
    assert regions.negative_mass == pytest.approx(0.1, rel=sum_rtol(5))
    np.testing.assert_array_equal(regions.outliers, [50.0])


def test_density_regions_pool_the_probes_equally():
    one = _density()
    two = SpectralDensity(np.vstack([one.nodes, -one.nodes]), np.vstack([one.weights, one.weights]), one.grid,
                          one.density, 1.0, one.sigma, np.zeros(3), np.zeros(3))  # fmt: skip
    # Below -sigma: 0.1 at -1 in the first probe; 0.3 at -0.1, 0.25 at -0.2 and 0.05 at -50 in the mirrored
    # one (its node at -0.0 is not). Each probe's weights sum to 1, so the pooled share is the mean.
    assert F.density_regions(two).negative_mass == pytest.approx(
        (0.1 + 0.05 + 0.25 + 0.3) / 2, rel=sum_rtol(10)
    )


def test_density_figure_plots_the_density_on_the_signed_log_axis_and_marks_regions():
    density = _density()
    fig = F.make_density_figure(density, top_eigenvalues=[50.0, 0.2])
    line = fig.data[0]
    # Linear within the broadening sigma (the resolution), here larger than 1e-4 of the largest eigenvalue.
    scale = max(density.sigma, F.symlog_scale(np.concatenate([density.grid, [50.0, 0.2]])))
    assert scale == density.sigma
    # The figure draws symlog of the grid and the grid itself: the same computations on the same arrays.
    np.testing.assert_array_equal(line.x, F.symlog(density.grid, scale))
    np.testing.assert_array_equal(line.customdata, density.grid)
    shown = density.density >= F.DENSITY_FLOOR * density.density.max()
    np.testing.assert_array_equal(np.asarray(line.y)[shown], density.density[shown])  # drawn as computed
    assert np.all(np.asarray(line.y)[~shown] == F.DENSITY_FLOOR * density.density.max())
    assert fig.layout.yaxis.type == "log"
    texts = [a.text for a in fig.layout.annotations]
    assert "bulk (90%)" in texts and "below −σ: 10.0%" in texts
    assert texts.count("λ1") == 1 and "λ2" not in texts  # 0.2 is the bulk's edge, not an outlier
    bulk = next(shape for shape in fig.layout.shapes if shape.fillcolor == "rgba(47,158,68,0.15)")
    # The bulk's edges from the quadrature are -1 and 0.2 up to the Lanczos nodes' rounding (~eps * 50).
    assert (bulk.x0, bulk.x1) == pytest.approx(tuple(F.symlog([-1.0, 0.2], scale)))


def test_density_regions_tell_the_broadening_from_the_ritz_values():
    """Nodes at and above 0 have no negative Ritz value, yet the drawn curve has area below 0: the Gaussian
    mixture's mass there is sum_j w_j Phi(-theta_j / sigma) (normal CDF, by math.erf)."""
    density = _density()
    regions = F.density_regions(density)
    assert (regions.negative_ritz, regions.n_ritz) == (1, 5)  # only -1 is below 0
    assert regions.negative_weight == pytest.approx(0.1, rel=sum_rtol(5))
    nodes, weights = density.nodes[0], density.weights[0]
    phi = np.array([0.5 * (1 + math.erf(-t / density.sigma / math.sqrt(2))) for t in nodes])
    # The trapezoid on a grid of step h = 2.6e-3 = sigma / 20 errs by ~h^2 / 12 * max|f''| per unit area
    # (2e-3 relative of the mass near 0); the tails beyond +-5 sigma of the grid's ends are ~3e-7.
    assert regions.curve_below_zero == pytest.approx(float(weights @ phi), abs=2e-3)
    assert regions.curve_below_zero > regions.negative_weight + 0.1  # the node at 0 spills half its 0.3
    shifted = SpectralDensity(density.nodes + 2.0, density.weights, density.grid + 2.0, density.density, 1.0,
                              density.sigma, np.zeros(3), np.zeros(3))  # fmt: skip
    # Every node at 1 or above and the grid from 0.75: nothing below 0, drawn or resolved.
    assert F.density_regions(shifted).negative_ritz == 0 and F.curve_area_below_zero(shifted) == 0.0
    fig = F.make_density_figure(density)
    note = next(a.text for a in fig.layout.annotations if a.name == "broadening")
    assert note.startswith(
        f"Broadening σ = {density.sigma:.2g} puts {regions.curve_below_zero:.1%} of the curve"
    )
    assert note.endswith("Ritz values: 1 of 5 below 0 (10.0% of the weight), 10.0% below −σ")
    assert F.share_text(0.0) == "0%" and F.share_text(4e-4) == "<0.1%" and F.share_text(5e-4) == "0.1%"


def _grid(n_layers=3):
    lam = np.arange(1.0, 1 + 2 * n_layers).reshape(n_layers, 2) ** 2
    lam[-1, 1] = np.nan  # not computed yet
    trace = -lam / 2
    return CurvatureGrid(np.arange(n_layers), LAYER_PARTS, lam, trace, np.ones_like(lam),
                         np.full(lam.shape, 100), 3.2, "hessian")  # fmt: skip


def test_grid_figure_has_every_cell_value_and_leaves_missing_cells_blank():
    grid = _grid()
    fig = F.make_grid_figure(grid)
    lam, tr = fig.data
    np.testing.assert_array_equal(lam.customdata, grid.lambda_max)
    np.testing.assert_array_equal(tr.customdata, grid.trace)
    finite = np.isfinite(grid.lambda_max)
    scale = F.symlog_scale(grid.lambda_max[finite])
    # symlog of the same finite cells, drawn as computed.
    np.testing.assert_array_equal(
        np.asarray(lam.z, dtype=float)[finite], F.symlog(grid.lambda_max[finite], scale)
    )
    assert np.isnan(np.asarray(lam.z, dtype=float)[~finite]).all()
    assert np.asarray(lam.text)[~finite].tolist() == ["…"]
    assert list(lam.x) == ["attention", "MLP"] and list(lam.y) == ["layer 0", "layer 1", "layer 2"]
    assert "5 of 6 blocks" in fig.layout.title.text


def _run(optimizer="gd"):
    return TrainingRun(np.array([3.0, 2.5, 2.2]), np.array([10.0, 12.0, 15.0]), 0.1, 20.0, optimizer,
                       "layer:0:mlp", ("0.mlp.up", "0.mlp.down"), np.array([5.0, 6.0]), np.array([4.0, 6.5]),
                       np.array([3.0, np.nan]), np.array([2.5, 4.0]), np.full(3, 1e-3),
                       np.ones(3, dtype=bool))  # fmt: skip


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_training_figure_shows_loss_lambda_and_the_two_over_eta_line(optimizer):
    run = _run(optimizer)
    fig = F.make_training_figure(run)
    loss, start, lam, line = fig.data
    np.testing.assert_array_equal(loss.y, run.loss)
    assert list(start.y) == [3.0, 3.0] and "loss at the start (3)" in start.name
    np.testing.assert_array_equal(lam.y, run.lambda_max)
    np.testing.assert_array_equal(loss.x, [0, 1, 2])
    assert list(line.y) == [20.0, 20.0] and "2/η = 20" in line.name
    assert ("reference" in line.name) == (optimizer == "adam")


def test_training_spectra_figure_before_and_after():
    run = _run()
    fig = F.make_training_spectra_figure(run)
    before_sr, after_sr, before_a, after_a = fig.data
    np.testing.assert_array_equal(before_sr.y, run.stable_rank_before)
    np.testing.assert_array_equal(after_sr.y, run.stable_rank_after)
    np.testing.assert_array_equal(before_a.y, run.alpha_before)
    np.testing.assert_array_equal(after_a.y, run.alpha_after)
    assert list(before_sr.x) == list(run.matrices)
