"""Headless report: the same analyses as the app, written as metrics.json and a standalone report.html.

Each capability contributes a section (JSON under its key, figures for the HTML). The HTML embeds
plotly.js once, so it opens offline. ``SECTION_NAMES`` names them (``report --sections``); the weights section
alone (``CHECKPOINT_SECTIONS``) can also be read from a safetensors folder without loading the model
(``write_checkpoint_report``); a folder of checkpoints gives the series section alone (``write_series_report``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import plotly.io as pio
from plotly.offline import get_plotlyjs

from explorer.analysis.checkpoint_series import CheckpointSeries
from explorer.errors import InputError
from explorer.figures.tokens import make_surprisal_figure
from explorer.models import Capture, LoadedModel
from explorer.models.checkpoint import Checkpoint
from explorer.report.attention import attention_section
from explorer.report.compare import compare_section
from explorer.report.compression import compression_section
from explorer.report.curvature import curvature_section
from explorer.report.directions import directions_section
from explorer.report.logit_lens import logit_lens_section
from explorer.report.section import ReportSection
from explorer.report.series import series_section
from explorer.report.weights import checkpoint_weights_section, weights_section


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


# Every section's name (``--sections``), in report order.
SECTION_NAMES = (
    "model", "attention", "logit_lens", "weights", "directions", "compression", "curvature", "compare"
)  # fmt: skip
# Sections that need no loaded model: on a safetensors folder they read the checkpoint files instead.
CHECKPOINT_SECTIONS = ("weights",)
# Sections that run only when asked with their own option (``--compare KEY``).
OPTIONAL_SECTIONS = ("compare",)


def parse_sections(text: str | None, compare: bool = False) -> tuple[str, ...]:
    """``--sections`` ("weights,attention") -> the named sections in report order; None: every section.
    ``compare``: a variant to compare with was given (``--compare KEY``): the compare section is then added
    (to every section, or to the named ones); without it, compare is left out of every section and naming
    it is an error. InputError naming the valid ones for an unknown or empty name."""
    if text is None:
        return tuple(n for n in SECTION_NAMES if compare or n not in OPTIONAL_SECTIONS)
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in SECTION_NAMES]
    if unknown or not names:
        what = ", ".join(f"'{name}'" for name in unknown) if any(unknown) else "an empty name"
        raise InputError(
            f"Unknown report section {what}. Choose from {', '.join(SECTION_NAMES)}, comma-separated "
            "(e.g. --sections weights,attention)."
        )
    if "compare" in names and not compare:
        raise InputError(
            "The compare section compares the model with a variant of it: give --compare KEY, e.g. "
            "--compare int4-g32 (keys: int8, int4-g32, rank:0.8:svdllm, lora:r8:s50, dir:/path/to/model)."
        )
    if compare:
        names.append("compare")
    return tuple(name for name in SECTION_NAMES if name in names)


def needs_model(names: Sequence[str]) -> bool:
    """Whether sections ``names`` need the loaded model (any besides those read from checkpoint files)."""
    return any(name not in CHECKPOINT_SECTIONS for name in names)


def default_sections(
    curvature_grid: bool = False,
    generated: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    compare: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Callable[[LoadedModel, Capture], ReportSection]]:
    """The sections ``names`` (default: every one, SECTION_NAMES; compare only with ``compare``), in report
    order.

    ``curvature_grid`` adds lambda_max and trace of every layer's attention and MLP to the curvature section.
    ``generated``: shape (token,), bool, the tokens of the capture the model wrote (``--generate``).
    ``compare``: the variant key of the compare section (explorer.analysis.variants); ``log``: where that
    section writes its progress lines."""

    def logit_lens(loaded: LoadedModel, cap: Capture) -> ReportSection:
        return logit_lens_section(loaded, cap, generated=generated)

    def curvature(loaded: LoadedModel, cap: Capture) -> ReportSection:
        return curvature_section(loaded, cap, grid=curvature_grid)

    def compare_(loaded: LoadedModel, cap: Capture) -> ReportSection:
        return compare_section(loaded, cap, compare, log=log)

    compare_.__name__ = "compare"  # the progress line's name ("computing compare...")
    builders = {
        "model": model_section,
        "attention": attention_section,
        "logit_lens": logit_lens,
        "weights": weights_section,
        "directions": directions_section,
        "compression": compression_section,
        "curvature": curvature,
        "compare": compare_,
    }
    chosen = parse_sections(None if names is None else ",".join(names), compare=compare is not None)
    return [builders[name] for name in chosen]


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
.wide{overflow-x:auto} .wide td{white-space:nowrap}
"""


def write_report(
    loaded: LoadedModel,
    cap: Capture,
    out_dir: str | Path,
    sections: list[Callable[[LoadedModel, Capture], ReportSection]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/metrics.json`` and ``out_dir/report.html``; return their paths."""

    def built():
        for build in sections or default_sections():
            if progress is not None:
                progress(build.__name__.removesuffix("_section"))
            yield build(loaded, cap)

    return _write(out_dir, loaded.id, built())


def write_checkpoint_report(
    checkpoint: Checkpoint,
    out_dir: str | Path,
    *,
    model_id: str | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """The report of the sections that need no model (CHECKPOINT_SECTIONS), read from ``checkpoint``'s files
    without loading it: ``report --sections weights`` on a safetensors folder. ``model_id``: the title's name
    (default: the folder). Same files as ``write_report``."""

    def built():
        if progress is not None:
            progress("weights (from the checkpoint files)")
        yield checkpoint_weights_section(checkpoint, device=device)

    return _write(out_dir, model_id or str(checkpoint.folder), built())


def write_series_report(series: CheckpointSeries, out_dir: str | Path) -> tuple[Path, Path]:
    """The report of a checkpoint series (``report --checkpoints DIR``): its "series" section only, computed
    from the checkpoint files (no model is loaded). Same files as ``write_report``."""
    return _write(out_dir, f"checkpoint series {series.folder}", [series_section(series)])


def _write(out_dir: str | Path, model_id: str, sections: Iterable[ReportSection]) -> tuple[Path, Path]:
    """Write the sections' JSON to ``out_dir/metrics.json`` and their text and figures to report.html."""
    out = Path(out_dir)
    metrics: dict = {}
    parts = [f"<h1>eigen-explorer report: {html.escape(model_id)}</h1>"]
    for section in sections:
        if section.key is None:
            metrics.update(section.data)
        else:
            metrics[section.key] = section.data
        parts.append(f"<h2>{html.escape(section.title)}</h2>{section.text}")
        for title, fig in section.figures:
            parts.append(f"<h3>{html.escape(title)}</h3>")
            parts.append(pio.to_html(fig, include_plotlyjs=False, full_html=False))
    out.mkdir(parents=True, exist_ok=True)  # only now: a section that fails leaves nothing written
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
