"""The compression figures on hand-made results (no model): traces, axes, markers and notes."""

import math

import numpy as np

from explorer.analysis.compression import MatrixRow, Outcome, Point, Quality, RankComparison
from explorer.figures.compression import (
    make_matrix_error_figure,
    make_pareto_figure,
    make_rank_allocation_figure,
)

TOTAL = 1_000_000


def _quality(causal, value, kl=0.1):
    if causal:
        return Quality(True, value, kl, None, None, 12.0, 64)
    return Quality(False, None, None, value, 0.9, 12.0, 64)


def _point(method, share, kept, quality):
    return Point.low_rank(method, share, quality, mean_rank=100 * share, params_model_before=TOTAL,
                          params_model_after=kept)  # fmt: skip


def _points(causal):
    points = []
    for method, worst in (("svd", 900.0 if causal else 0.5), ("asvd", 60.0 if causal else 0.9)):
        for share in (0.25, 0.5, 0.75, 1.0):
            kept = TOTAL - int((1 - share) * 400_000)
            value = worst / (1 + 4 * share) if causal else 1 - (1 - worst) * (1 - share)
            points.append(_point(method, share, kept, _quality(causal, value)))
    return points


def _outcome(causal):
    rows = tuple(
        MatrixRow(f"layers.{i}.mlp.up", "mlp_up", i, (64, 32), 10, 21.3, 2048, 960, 0.3, 0.35, 0.2)
        for i in range(3)
    ) + (MatrixRow("embed", "embed", None, (100, 32), 10, 24.2, 3200, 1320, 0.4, 0.4, None),)
    return Outcome(
        "asvd",
        ("mlp_up", "embed"),
        TOTAL,
        800_000,
        200_000,
        0,
        _quality(causal, 20.0 if causal else 1.0, 0.0),
        _quality(causal, 35.0 if causal else 0.97),
        rows,
    )


def test_pareto_causal_has_a_line_per_method_log_axis_star_and_break_even():
    points = _points(True)
    fig = make_pareto_figure(
        points,
        original=_quality(True, 20.0, 0.0),
        current=_outcome(True),
        break_even={"mlp_up": ((64, 32), 21.33, 32)},
    )
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["Plain SVD", "ASVD (activation-aware)"]
    for trace in lines:
        assert list(trace.x) == sorted(trace.x)  # drawn left to right
        assert max(trace.x) == 100.0  # the break-even point keeps every parameter
    svd = lines[0]
    expected = [p.quality.perplexity for p in sorted(points[:4], key=lambda p: p.share_kept)]
    assert list(svd.y) == expected
    star = [t for t in fig.data if t.marker.symbol == "star"]
    assert len(star) == 1 and star[0].x[0] == 80.0 and star[0].y[0] == 35.0
    assert fig.layout.yaxis.type == "log"
    assert "parameters kept" in fig.layout.xaxis.title.text and "perplexity" in fig.layout.yaxis.title.text
    shapes = fig.layout.shapes
    assert any(s.x0 == 100 and s.x1 == 100 for s in shapes)  # break-even line
    original = next(t for t in fig.data if t.name.startswith("original model"))
    assert list(original.y) == [20.0, 20.0] and original.x[1] == 100  # the original model's line
    assert not [a for a in fig.layout.annotations if a.yref != "paper"]  # nothing in log10 coordinates
    assert any("k* = 21" in (a.text or "") for a in fig.layout.annotations)


def test_pareto_encoder_plots_cosine_on_a_linear_axis():
    fig = make_pareto_figure(_points(False), original=_quality(False, 1.0))
    assert fig.layout.yaxis.type != "log"
    assert "cosine" in fig.layout.yaxis.title.text
    assert all(0 < y <= 1 for t in fig.data for y in t.y)
    assert "Spearman" in str(fig.data[0].customdata[0][4])


def test_pareto_shows_nan_for_a_broken_model_not_an_error():
    points = _points(True)
    broken = Quality(True, float("nan"), float("nan"), None, None, 1.0, 64)
    points[0] = _point("svd", 0.25, 900_000, broken)
    fig = make_pareto_figure(points, original=_quality(True, 20.0))
    assert any(math.isnan(y) for y in fig.data[0].y)


def test_matrix_error_figure_series_and_layers():
    outcome = _outcome(True)
    fig = make_matrix_error_figure(outcome.rows, method="asvd")
    names = [t.name for t in fig.data]
    assert any(n.startswith("Eckart-Young") and "MLP up" in n for n in names)
    weight = next(
        t for t in fig.data if "||W−W_k||/||W||" in t.name and "MLP up" in t.name and "ASVD" in t.name
    )
    assert list(weight.x) == [0, 1, 2] and list(weight.y) == [0.35] * 3
    embed = [t for t in fig.data if "token embedding" in t.name]
    assert all(list(t.x) == [-1] for t in embed)
    # No calibration for the embedding row: no output-error marker for it.
    assert not any("calibration" in t.name and "token embedding" in t.name for t in fig.data)
    assert fig.layout.yaxis.title.text == "relative Frobenius error"


def test_pareto_draws_the_budget_limit_as_a_line():
    fig = make_pareto_figure(_points(True), original=_quality(True, 20.0), budget_line=(22.0, "budget limit"))
    line = next(t for t in fig.data if t.name == "budget limit")
    assert list(line.y) == [22.0, 22.0] and line.x[1] == 100.0


def _comparison():
    # Two kinds over two layers; the greedy leaves one matrix dense (rank 0 in the comparison).
    return RankComparison(
        names=("l0.up", "l0.down", "l1.up", "l1.down"),
        kinds=("mlp_up", "mlp_down", "mlp_up", "mlp_down"),
        layers=np.array([0, 0, 1, 1]),
        uniform=np.array([10, 10, 10, 10]),
        greedy=np.array([4, 16, 0, 12]),
        break_even=np.array([20.0, 20.0, 20.0, 20.0]),
        share=0.5,
        params_uniform=4000,
        params_greedy=3990,
    )


def test_rank_allocation_figure_cells_are_rank_over_break_even():
    fig = make_rank_allocation_figure(_comparison())
    uniform, greedy = fig.data
    assert list(uniform.y) == ["MLP up", "MLP down"] and list(uniform.x) == ["0", "1"]
    np.testing.assert_array_equal(np.asarray(uniform.z), [[0.5, 0.5], [0.5, 0.5]])  # exact: 10/20
    np.testing.assert_array_equal(np.asarray(greedy.z), [[0.2, 1.0], [0.8, 0.6]])  # exact quotients of ints
    assert greedy.text[0][1] == "dense" and greedy.text[1][0] == "16"
    assert "50%" in fig.layout.title.text


def test_pareto_axis_names_what_quality_was_measured_on():
    fig = make_pareto_figure(_points(True), original=_quality(True, 20.0), measured_on="the held-out passage")
    assert fig.layout.yaxis.title.text.startswith("perplexity on the held-out passage")
