"""Figures of WeightWatcher's metric set: the per-layer chart draws the values it was given, and the ESD chart
draws the shuffled matrix's histogram, trap edge and traps from the randomized result."""

import numpy as np
import pytest
import torch

from explorer.analysis.weights import (
    WW_METRICS,
    compute_randomized_spectra,
    compute_weight_spectra,
    ww_metric,
)
from explorer.figures.weights import kind_label, make_esd_figure, make_ww_layer_figure


@pytest.fixture(scope="module")
def pair(load):
    model = load("tiny-llama").model
    spectra = compute_weight_spectra(model)
    return spectra, compute_randomized_spectra(model, spectra)


@pytest.mark.parametrize("metric", list(WW_METRICS))
def test_layer_chart_draws_each_kind_against_the_layer(pair, metric):
    spectra, randomized = pair
    fig = make_ww_layer_figure(spectra, metric, randomized)
    values = ww_metric(spectra, randomized, metric)
    in_blocks = {spectra.kinds[i] for i in np.flatnonzero(spectra.layers >= 0)}
    assert {t.name for t in fig.data} == {kind_label(k) for k in in_blocks}
    for trace in fig.data:
        idx = [
            i
            for i in range(len(spectra))
            if kind_label(spectra.kinds[i]) == trace.name and spectra.layers[i] >= 0
        ]
        np.testing.assert_array_equal(np.asarray(trace.x), spectra.layers[idx])
        np.testing.assert_array_equal(np.asarray(trace.y, dtype=float), values[idx])
    assert fig.layout.title.text.startswith(WW_METRICS[metric][0])
    assert fig.layout.xaxis.title.text == "layer"


def test_randomized_metric_without_the_comparison_says_so(pair):
    spectra, _ = pair
    fig = make_ww_layer_figure(spectra, "n_traps")
    assert fig.layout.title.text.endswith("(not computed yet)")
    assert all(np.isnan(np.asarray(t.y, dtype=float)).all() for t in fig.data)


def test_esd_figure_draws_the_shuffled_histogram_and_the_traps():
    """A matrix with one huge entry: shuffling moves it but cannot spread it, so the shuffled ESD keeps a trap."""
    W = np.random.default_rng(0).standard_normal((60, 90)) * 0.1
    W[3, 7] = 8.0
    layer = torch.nn.Linear(90, 60, bias=False)
    layer.weight.data = torch.tensor(W, dtype=torch.float32)
    model = torch.nn.Sequential(layer)
    spectra = compute_weight_spectra(model)
    randomized = compute_randomized_spectra(model, spectra)
    assert randomized.n_traps[0] >= 1
    fig = make_esd_figure(spectra, 0, randomized=randomized)
    shuffled = next(t for t in fig.data if t.name == "ESD of W shuffled")
    counts = np.asarray(shuffled.customdata, dtype=float)[::2, 2]
    assert counts.sum() == np.count_nonzero(randomized.esd(0) > 0)
    traps = next(t for t in fig.data if t.name.startswith("correlation traps"))
    np.testing.assert_array_equal(np.asarray(traps.x), randomized.traps(0))
    assert any(shape.x0 == randomized.trap_edge[0] for shape in fig.layout.shapes)
    # Without the randomized result the figure is what it was: no shuffled trace, no trap edge.
    plain = make_esd_figure(spectra, 0)
    assert all(t.name != "ESD of W shuffled" for t in plain.data)
    assert all(shape.x0 != randomized.trap_edge[0] for shape in plain.layout.shapes)
