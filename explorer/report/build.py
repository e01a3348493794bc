"""Headless report: the same analyses as the app, written as metrics.json and a standalone report.html.

Each capability contributes a section (JSON under its key, figures for the HTML). The HTML embeds
plotly.js once, so it opens offline.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import plotly.io as pio
from plotly.offline import get_plotlyjs

from explorer.figures.tokens import make_surprisal_figure
from explorer.models import Capture, LoadedModel
from explorer.report.attention import attention_section
from explorer.report.compression import compression_section
from explorer.report.curvature import curvature_section
from explorer.report.directions import directions_section
from explorer.report.logit_lens import logit_lens_section
from explorer.report.section import ReportSection
from explorer.report.weights import weights_section


def model_section(loaded: LoadedModel, cap: Capture) -> ReportSection:
    card = loaded.card
    model = {
        k: getattr(card, k)
        for k in ("id", "architecture", "n_layers", "n_heads", "n_kv_heads", "d_model", "n_params", "causal")
    }
    data = {
        "model": model,
        "tokens": list(cap.tokens),
        "device": loaded.device,
        "dtype": loaded.dtype,
        "n_tokens_original": cap.n_tokens_original,
        "truncated": cap.truncated,
    }
    if cap.loss is not None:
        data["loss"] = cap.loss
        data["perplexity"] = cap.perplexity
    figures = []
    if cap.token_losses is not None and cap.token_losses.size:
        figures.append(("Next-token surprisal", make_surprisal_figure(cap.labels(), cap.token_losses)))
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in model.items()
    )
    text = (
        f"<table class='card'>{rows}</table><p class='tokens'>"
        + " ".join(f"<span>{html.escape(t)}</span>" for t in cap.token_texts)
        + "</p>"
    )
    return ReportSection("Model and tokens", None, data, figures, text)


def default_sections(
    curvature_grid: bool = False, generated: np.ndarray | None = None
) -> list[Callable[[LoadedModel, Capture], ReportSection]]:
    """Every capability's section, in report order.

    ``curvature_grid`` adds lambda_max and trace of every layer's attention and MLP to the curvature section.
    ``generated``: shape (token,), bool, the tokens of the capture the model wrote (``--generate``)."""

    def logit_lens(loaded: LoadedModel, cap: Capture) -> ReportSection:
        return logit_lens_section(loaded, cap, generated=generated)

    def curvature(loaded: LoadedModel, cap: Capture) -> ReportSection:
        return curvature_section(loaded, cap, grid=curvature_grid)

    return [
        model_section,
        attention_section,
        logit_lens,
        weights_section,
        directions_section,
        compression_section,
        curvature,
    ]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#1c2541}
h1{color:#3b5bdb} table.card th{text-align:left;padding-right:1em} .tokens span{background:#e7ecfb;
margin:2px;padding:1px 4px;border-radius:3px;display:inline-block;font-family:monospace;white-space:pre}
"""


def write_report(
    loaded: LoadedModel,
    cap: Capture,
    out_dir: str | Path,
    sections: list[Callable[[LoadedModel, Capture], ReportSection]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/metrics.json`` and ``out_dir/report.html``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict = {}
    parts = [f"<h1>eigen-explorer report: {html.escape(loaded.id)}</h1>"]
    for build in sections or default_sections():
        if progress is not None:
            progress(build.__name__.removesuffix("_section"))
        section = build(loaded, cap)
        if section.key is None:
            metrics.update(section.data)
        else:
            metrics[section.key] = section.data
        parts.append(f"<h2>{html.escape(section.title)}</h2>{section.text}")
        for title, fig in section.figures:
            parts.append(f"<h3>{html.escape(title)}</h3>")
            parts.append(pio.to_html(fig, include_plotlyjs=False, full_html=False))
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(_jsonable(metrics), indent=2, allow_nan=False), encoding="utf-8")
    report_path = out / "report.html"
    report_path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>eigen-explorer report</title>"
        f"<style>{_STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        + "\n".join(parts)
        + "</body></html>",
        encoding="utf-8",
    )
    return metrics_path, report_path
