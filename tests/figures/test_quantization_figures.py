"""The bytes/quality chart draws each point where its numbers say, one trace per series, joined by bytes."""

import numpy as np

from explorer.analysis.compression import Point, Quality
from explorer.figures.quantization import make_tradeoff_figure


def _q(ppl: float) -> Quality:
    return Quality(True, ppl, 0.1, None, None, 1.0, 50)


def test_every_point_is_drawn_in_its_series_sorted_by_bytes():
    points = [
        Point("int8", "int8", 150_000_000, _q(11.0)),
        Point("SVD-LLM (whitened)", "svdllm 50 %", 200_000_000, _q(30.0)),
        Point("SVD-LLM (whitened)", "svdllm 90 %", 250_000_000, _q(12.0)),
        Point("4-bit + offset, groups of 32", "int4-g32-asym", 90_000_000, _q(10.5), on_own_grid=True),
    ]
    fig = make_tradeoff_figure(
        points, original=_q(10.5), original_bytes=269_000_000, budget_line=(11.55, "+10 %"), current=points[1]
    )
    traces = {t.name: t for t in fig.data}
    svdllm = traces["SVD-LLM (whitened)"]
    np.testing.assert_array_equal(svdllm.x, [200.0, 250.0])  # MB, exact: integers divided by 1e6
    np.testing.assert_array_equal(svdllm.y, [30.0, 12.0])
    assert list(svdllm.text) == ["svdllm 50 %", "svdllm 90 %"]
    own = traces["4-bit + offset, groups of 32"]
    assert list(own.marker.symbol) == ["circle-open"]
    assert any("own 4-bit grid" in a.text for a in fig.layout.annotations)
    assert traces["original (fp16)"].x[0] == 269.0
    assert traces["current setting (svdllm 50 %)"].y[0] == 30.0
    assert fig.layout.yaxis.type == "log"
    assert any(s.y0 == 11.55 for s in fig.layout.shapes)


def test_encoder_axis_is_the_cosine():
    q = Quality(False, None, None, 0.97, 0.95, 1.0, 20)
    fig = make_tradeoff_figure(
        [Point("int8", "int8", 40_000_000, q)],
        original=Quality(False, None, None, 1.0, 1.0, 1.0, 20),
        original_bytes=45_000_000,
    )
    assert fig.layout.yaxis.type == "linear"
    assert fig.data[0].y[0] == 0.97
    assert not fig.layout.annotations  # no own-grid point, no annotation


def test_broken_settings_do_not_stretch_the_axis():
    points = [
        Point("int8", "int8", 150_000_000, _q(11.0)),
        Point("svd", "svd 25 %", 90_000_000, _q(1e25)),
    ]
    fig = make_tradeoff_figure(points, original=_q(10.0), original_bytes=269_000_000)
    low, high = fig.layout.yaxis.range
    assert low == np.log10(10.0 / 1.5) and high == np.log10(1000 * 10.0 * 1.5)  # up to 1000x the original
    assert any("off the chart" in a.text for a in fig.layout.annotations)
    assert fig.data[1].y[0] == 1e25  # still in the data (hover, download), just outside the range


def test_each_series_carries_its_own_colour_without_a_theme():
    """The exported decision draws the figure with plotly's defaults (no Streamlit theme): every series must name
    its colour, marker outline included, and no two series share one."""
    points = [
        Point("int8", "int8", 150_000_000, _q(11.0)),
        Point("4-bit, groups of 32", "int4-g32", 90_000_000, _q(12.0)),
        Point("SVD-LLM (whitened)", "svdllm 90 %", 250_000_000, _q(12.0)),
    ]
    fig = make_tradeoff_figure(points, original=_q(10.5), original_bytes=269_000_000)
    series = [t for t in fig.data if t.name in {p.series for p in points}]
    colours = [t.marker.color for t in series]
    assert len(series) == 3 and None not in colours and len(set(colours)) == 3
    assert all(t.marker.line.color == t.marker.color == t.line.color for t in series)
