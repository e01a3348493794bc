"""Report section: the default compression sweep (MLP matrices, three methods, shipped calibration set).

metrics.json gains ``"compression": [{"method", "groups", "params_total", "params_kept", "perplexity" or
"embedding_cosine", "kl" (causal), "latency_ms", ...}]``, one row per sweep point; report.html gains the
Pareto chart.
"""

from __future__ import annotations

import html

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import METHOD_LABELS, METHODS
from explorer.errors import ExplorerError
from explorer.figures.compression import make_pareto_figure
from explorer.models import Capture, LoadedModel
from explorer.report.section import ReportSection


def compression_section(loaded: LoadedModel, cap: Capture) -> ReportSection:
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    if not kinds:
        kinds = comp.available_kinds(loaded.model)[:1]
    try:
        evalset = comp.make_eval_set(loaded, cap.text, cap.n_tokens)
    except ExplorerError as err:  # e.g. one token: no perplexity to measure
        data = {"compression": [], "compression_error": str(err)}
        return ReportSection("Compression what-if", None, data, [], f"<p>{html.escape(str(err))}</p>")
    ref = comp.reference(loaded, evalset)
    chunks = comp.calibration_chunks(loaded, comp.shipped_calibration_text())
    stats, n_tokens = comp.collect_activation_stats(loaded, chunks, kinds)
    facts = {m: comp.factorize_model(loaded, m, kinds, stats, n_tokens) for m in METHODS}
    stats.clear()
    points = comp.sweep(loaded, facts, evalset, ref)
    records = comp.sweep_records(points, kinds)
    fig = make_pareto_figure(
        points, original=ref.quality, break_even=comp.break_even_by_kind(facts[METHODS[0]])
    )
    quality = "perplexity" if loaded.causal else "embedding_cosine"
    rows = "".join(
        f"<tr><td>{html.escape(METHOD_LABELS[r['method']])}</td><td>{r['share_of_break_even']:.0%}</td>"
        f"<td>{r['mean_rank']:.0f}</td><td>{r['params_kept'] / r['params_total']:.1%}</td>"
        f"<td>{r[quality]:.4g}</td><td>{r['latency_ms']:.0f}</td></tr>"
        for r in records
    )
    base = ref.quality.headline
    text = (
        f"<p>Groups {html.escape(', '.join(kinds))} replaced by rank-k factors at 25/50/75/100 % of each "
        f"matrix's break-even rank mn/(m+n); activation-aware methods calibrated on the shipped calibration set "
        f"({n_tokens} tokens); quality measured on the report's text ({evalset.n_tokens} tokens). "
        f"Original {quality.replace('_', ' ')}: {base:.4g}.</p>"
        f"<table class='card'><tr><th>method</th><th>rank / break-even</th><th>mean rank</th>"
        f"<th>parameters kept</th><th>{quality.replace('_', ' ')}</th><th>latency (ms)</th></tr>{rows}</table>"
    )
    return ReportSection(
        "Compression what-if",
        None,
        {"compression": records},
        [("Parameters kept against quality", fig)],
        text,
    )
