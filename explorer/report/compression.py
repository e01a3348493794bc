"""Report section: the default compression sweep (MLP matrices, three methods, shipped calibration set) and
the budget answer.

metrics.json gains

- ``"compression"``: one row per sweep point, ``{"method", "allocation" ("uniform": every matrix at the same
  share of its break-even rank; "greedy": the same parameter count allocated by the least calibration output
  error), "groups", "share_of_break_even", "mean_rank", "params_total", "params_kept", "group_params_total",
  "group_params_kept", "bytes", "calib_output_error", "perplexity" and "kl" (causal) or "embedding_cosine" and
  "similarity_spearman" (encoder), "latency_ms"}``. ``bytes`` is the whole model's storage at fp16 (2 bytes per
  parameter left alone, factors A_k and B_k of each compressed matrix at fp16 too: ``compression.model_bytes``);
  ``calib_output_error`` is sum ||(W - W_k) X^T||^2 / sum ||W X^T||^2 over the compressed matrices on the
  calibration activations X. The sweep is the page's budget sweep (``compression.budget_sweep``): the three
  methods at 95, 90, 80, 70, 50 and 25 % of break-even rank, each with uniform and with allocated ranks.
- ``"compression_budget"``: the budget (``"budget"``: "perplexity_increase" with ``"limit"`` 0.1 for a causal
  LM, +10 % perplexity over the original on the report's text; "embedding_cosine" with ``"limit"`` 0.99 for an
  encoder) and its two answers, as the app's compression page gives them (the same points, from
  ``compression.budget_sweep`` and ``quantize.fewer_bits_points``, and the same ``quantize.decide``): ``"best"`` / ``"closest"``: low rank alone, the
  sweep row with the fewest parameters within the budget (null if none) and the row of the smallest quality loss
  (what to show when nothing fits); ``"overall"`` / ``"overall_closest"``: across every method (low rank, int8,
  4-bit by group with or without an offset, top directions + 4-bit residual, SVD-LLM factors in int8:
  ``quantize.fewer_bits_points``, the page's set), ``{"series", "setting", "bytes", <quality keys>}``.

The list also holds the quantization rows (``explorer/report/quantization.py`` describes them); they carry no
``"allocation"``. report.html gains the Pareto chart and the tables. Factors come from the disk store when an earlier run (or the
app) computed them for the same weights, calibration and groups.
"""

from __future__ import annotations

import html

from explorer.analysis import compression as comp
from explorer.analysis import quantize as qz
from explorer.analysis.lowrank import METHOD_LABELS, METHODS
from explorer.analysis.quality import Budget, headline_metric
from explorer.errors import ExplorerError
from explorer.figures.compression import make_pareto_figure
from explorer.models import Capture, LoadedModel
from explorer.report.quantization import quality_record, quantization_records
from explorer.report.section import ReportSection


def budget_summary(
    points: list[comp.Point],
    records: list[dict],
    fewer_bits: list[comp.Point],
    original: comp.Quality,
) -> dict:
    """metrics.json's ``compression_budget`` (see the module docstring)."""
    budget = Budget.default(original.causal)
    decision = qz.decide(points, fewer_bits, original, budget, comp.BUDGET_METHODS)
    row = {id(p): r for p, r in zip(points, records, strict=True)}
    best = None if decision.lowrank is None else decision.lowrank.best
    closest = None if decision.lowrank_closest is None else decision.lowrank_closest.closest
    return {
        # "perplexity_increase" (a ratio metric's limit is a relative increase) or "embedding_cosine"
        "budget": budget.metric.field + ("_increase" if budget.metric.compare == "ratio" else ""),
        "limit": budget.limit,
        "description": budget.describe(),
        "original": original.headline,
        "best": None if best is None else row[id(best)],
        "closest": None if closest is None else row[id(closest)],
        "overall": _point_record(decision.overall),
        "overall_closest": _point_record(decision.overall_closest),
    }


def _point_record(point: comp.Point | None) -> dict | None:
    if point is None:
        return None
    return {
        "series": point.series,
        "setting": point.setting,
        "bytes": point.bytes_model,
        **quality_record(point.quality),
    }


def compression_section(loaded: LoadedModel, cap: Capture) -> ReportSection:
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    if not kinds:
        kinds = comp.available_kinds(loaded.model)[:1]
    try:
        evalset = comp.make_eval_set(loaded, cap.text, cap.n_tokens)
    except ExplorerError as err:  # e.g. one token: no perplexity to measure
        data = {"compression": [], "compression_error": str(err), "compression_budget": None}
        return ReportSection("Compression what-if", None, data, [], f"<p>{html.escape(str(err))}</p>")
    ref = comp.reference(loaded, evalset)
    facts = comp.shipped_factorizations(loaded, kinds)
    n_tokens = facts[METHODS[0]].calibration_tokens
    points = comp.budget_sweep(
        loaded, comp.BUDGET_METHODS, lambda method, _progress: facts[method], evalset, ref
    )
    records = comp.sweep_records(points, kinds)
    fewer_bits = qz.fewer_bits_points(loaded, kinds, evalset, ref, lambda: facts["svdllm"])
    budget = budget_summary(points, records, fewer_bits, ref.quality)
    quantized = quantization_records(loaded, kinds, facts["svdllm"], evalset, ref)
    fig = make_pareto_figure(
        points, original=ref.quality, break_even=comp.break_even_by_kind(facts[METHODS[0]])
    )
    metric = headline_metric(loaded.causal)
    quality, noun = metric.field, metric.noun
    rows = "".join(
        f"<tr><td>{html.escape(METHOD_LABELS[r['method']])}</td><td>{html.escape(r['allocation'])}</td>"
        f"<td>{r['group_params_kept'] / r['group_params_total']:.0%}</td>"
        f"<td>{r['mean_rank']:.0f}</td><td>{r['params_kept'] / r['params_total']:.1%}</td>"
        f"<td>{r['bytes'] / 1e6:.0f}</td>"
        f"<td>{'' if r['calib_output_error'] is None else format(r['calib_output_error'], '.3g')}</td>"
        f"<td>{r[quality]:.4g}</td><td>{r['latency_ms']:.0f}</td></tr>"
        for r in records
    )
    base = ref.quality.headline
    best = budget["best"]
    if best is not None:
        answer = (
            f"Smallest setting within the budget ({html.escape(budget['description'])}): "
            f"{html.escape(METHOD_LABELS[best['method']])}, {best['allocation']} ranks, keeping "
            f"{best['group_params_kept'] / best['group_params_total']:.0%} of the compressed groups' parameters "
            f"({best['params_kept'] / best['params_total']:.1%} of the model, {best['bytes'] / 1e6:.0f} MB at fp16); "
            f"{noun} {best[quality]:.4g}."
        )
    else:
        closest = budget["closest"]
        answer = (
            f"No setting of this sweep stays within the budget ({html.escape(budget['description'])}); the "
            f"closest is {html.escape(METHOD_LABELS[closest['method']])} ({closest['allocation']} ranks) "
            f"keeping {closest['group_params_kept'] / closest['group_params_total']:.0%} of the groups' "
            f"parameters: {noun} {closest[quality]:.4g}."
        )
    overall = budget["overall"] or budget["overall_closest"]
    if overall is not None:
        fits = budget["overall"] is not None
        answer = (
            f"Across every method, {'the smallest model within the budget' if fits else 'nothing fits; the closest'}"
            f": {html.escape(overall['setting'])} ({html.escape(overall['series'])}), {overall['bytes'] / 1e6:.0f} MB"
            f", {noun} {overall[quality]:.4g}. Low rank alone: " + answer
        )
    text = (
        f"<p><b>{answer}</b></p>"
        f"<p>Groups {html.escape(', '.join(kinds))} replaced by rank-k factors keeping "
        f"{', '.join(f'{s:.0%}' for s in comp.KEPT_SHARES)} of their parameters (uniform: every matrix at that "
        f"share of its break-even rank mn/(m+n); allocated: the same parameter count spent where it lowers the "
        f"calibration output error most); activation-aware methods calibrated on the shipped calibration set "
        f"({n_tokens} tokens); quality measured on the report's text ({evalset.n_tokens} tokens). "
        f"Original {noun}: {base:.4g}.</p>"
        f"<table class='card'><tr><th>method</th><th>ranks</th><th>group parameters kept</th><th>mean rank</th>"
        f"<th>model parameters kept</th><th>MB (fp16)</th><th>calibration output error</th>"
        f"<th>{noun}</th><th>latency (ms)</th></tr>{rows}</table>"
        f"<p>Fewer bits on the same groups, and combinations (bytes of the whole model, the rest at fp16):</p>"
        f"<table class='card'><tr><th>method</th><th>MB</th><th>groups' MB (fp16 MB)</th>"
        f"<th>relative weight error</th><th>{noun}</th></tr>"
        + "".join(
            f"<tr><td>{html.escape(r['method'])}</td><td>{r['bytes'] / 1e6:.1f}</td>"
            f"<td>{r['group_bytes'] / 1e6:.1f} ({r['group_bytes_fp16'] / 1e6:.1f})</td>"
            f"<td>{'' if r.get('weight_error') is None else format(r['weight_error'], '.3g')}</td>"
            f"<td>{r[quality]:.4g}</td></tr>"
            for r in quantized
        )
        + "</table>"
    )
    return ReportSection(
        "Compression what-if",
        None,
        {"compression": records + quantized, "compression_budget": budget},
        [("Parameters kept against quality", fig)],
        text,
    )
