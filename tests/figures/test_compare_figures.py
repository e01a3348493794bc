"""Figures of a comparison draw the analysis' numbers (explorer.figures.compare)."""

from __future__ import annotations

import numpy as np

from explorer.analysis.compare import compare_metric, delta_spectrum
from explorer.analysis.weights import compute_weight_spectra
from explorer.figures.compare import make_delta_figure, make_delta_heatmap_figure, make_spectra_pair_figure
from explorer.models.tiny import build_tiny_model


def test_compare_figures_draw_the_numbers():
    model = build_tiny_model("llama")
    A = compute_weight_spectra(model)
    shifted = A.alpha + np.arange(len(A))
    comparison = compare_metric(A.alpha, shifted, "alpha")
    heat = make_delta_heatmap_figure(A, comparison)
    z = np.asarray(heat.data[0].z, dtype=float)
    np.testing.assert_array_equal(
        np.sort(z[np.isfinite(z)]), np.sort(comparison.delta[np.isfinite(comparison.delta)])
    )
    assert heat.data[0].zmin == -heat.data[0].zmax  # white is "no change"
    pair = make_spectra_pair_figure(A, A, 0)
    np.testing.assert_array_equal(pair.data[0].y, A.sigma[0])
    rng = np.random.default_rng(0)
    W = rng.standard_normal((12, 10))
    d = delta_spectrum(W, W + np.outer(rng.standard_normal(12), rng.standard_normal(10)))
    fig = make_delta_figure(d, "ΔW")
    np.testing.assert_array_equal(fig.data[2].y, d.energy_share)
    np.testing.assert_array_equal(fig.data[3].y, np.arange(1, 11) ** 2 / 120)
