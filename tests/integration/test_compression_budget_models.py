"""The report's ``compression_budget`` is the compression page's answer: for the same passage (the shipped
held-out passage at the page's token cap), the same groups (the MLP matrices) and the same budget (the
default: +10 % perplexity, or embedding cosine at least 0.99), both of its answers (across every method; low
rank alone) name the same settings, with the same measured quality, as the page's tasks and
``quantize.decide`` give. On both embedded models."""

from __future__ import annotations

import pytest

from explorer import tasks
from explorer.analysis import compression as comp
from explorer.analysis import quantize as qz
from explorer.analysis.quality import Budget, headline_metric
from explorer.models import capture
from explorer.models.choice import ModelChoice
from explorer.report.compression import compression_section
from explorer.ui import compression_cache as cc
from explorer.ui import quantization_cache as qc
from explorer.ui.cache import cached_model
from tests.conftest import EMBEDDED_IDS

pytestmark = pytest.mark.slow

# Both sides run the same arithmetic on the same tokens and weights (the same forward pass, the same factors:
# the page's are the report's cut to the ranks that save parameters, bit-identical); what may differ is the
# summation order a threaded BLAS picks between two calls, a few float32 rounding steps on a value of order 1.
SAME_COMPUTATION = 1e-5


def _same_quality(report_row: dict, point: comp.Point) -> None:
    metric = headline_metric(point.quality.causal)
    assert report_row[metric.field] == pytest.approx(metric.value(point.quality), rel=SAME_COMPUTATION)


@pytest.mark.parametrize("model_id", EMBEDDED_IDS)
def test_the_reports_budget_is_the_pages_answer(cache_home, model_id):
    key = ModelChoice(model_id, device="cpu", allow_external=False)  # as ui.sidebar.Selection builds it
    loaded = cached_model(key)
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))

    # The report, on the page's passage and token cap.
    cap = capture(loaded, comp.heldout_text(), cc.BUDGET_TOKENS)
    report = compression_section(loaded, cap).data["compression_budget"]

    # The page: its original, sweep and fewer-bits tasks run to the end, and its decision function.
    original = tasks.run(*cc.original_task(key))
    sweep = tasks.run(*cc.sweep_task(key, kinds, cc.Calibration(), cc.BUDGET_METHODS))
    fewer_bits = tasks.run(*qc.comparison_task(key, kinds, cc.Calibration()))
    budget = Budget.default(loaded.causal)
    page = qz.decide(sweep, fewer_bits, original, budget, cc.BUDGET_METHODS)

    assert report["description"] == budget.describe() and report["limit"] == budget.limit
    assert report["original"] == pytest.approx(
        headline_metric(loaded.causal).value(original), rel=SAME_COMPUTATION
    )
    # Across every method: the same setting (or the same "nothing fits" and closest).
    for name, point in (("overall", page.overall), ("overall_closest", page.overall_closest)):
        if point is None:
            assert report[name] is None, name
            continue
        assert (report[name]["series"], report[name]["setting"], report[name]["bytes"]) == (
            point.series,
            point.setting,
            point.bytes_model,
        ), name
        _same_quality(report[name], point)
    # Low rank alone: the same method, allocation and share.
    best = None if page.lowrank is None else page.lowrank.best
    closest = None if page.lowrank_closest is None else page.lowrank_closest.closest
    for name, point in (("best", best), ("closest", closest)):
        if point is None:
            assert report[name] is None, name
            continue
        row = report[name]
        assert (row["method"], row["allocation"], row["share_of_break_even"], row["params_kept"]) == (
            point.method,
            point.allocation,
            point.share,
            point.params_model_after,
        ), name
        _same_quality(row, point)
