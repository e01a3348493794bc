"""Report section of a checkpoint series (``report --checkpoints DIR``): weight metrics against the step.

metrics.json gains:
    "series": {"folder": str, "metrics": ["alpha", "alpha_hat", "stable_rank", "spectral_norm"],
               "steps": [{"step": int, "checkpoint": name, "from_cache": bool,
                          "matrices": [{"name", "layer", "kind", "alpha", "alpha_hat", "stable_rank",
                                        "spectral_norm"}, ...]}, ...]   (increasing step; one row per matrix;
                                        layer null outside the blocks; alpha null without a power-law fit;
                                        units as the "weights" section's: alpha of the ESD of W^T W / N,
                                        alpha_hat = alpha log10 sigma_1^2, stable rank sum sigma_i^2 / sigma_1^2,
                                        spectral norm sigma_1)
               "failed": {checkpoint name: why it was left out}}
"""

from __future__ import annotations

import html

import numpy as np

from explorer.analysis.checkpoint_series import SERIES_METRICS, CheckpointSeries
from explorer.analysis.weights import METRICS
from explorer.figures.checkpoint_series import make_series_figure
from explorer.report.html_table import card_table
from explorer.report.section import ReportSection


def series_section(series: CheckpointSeries) -> ReportSection:
    """The series' four metrics per step, layer and kind, the failed checkpoints by name, and one line chart per
    metric (median over the layers of each kind against the step)."""
    steps = []
    for s, (step, name) in enumerate(zip(series.steps, series.checkpoints, strict=True)):
        matrices = []
        for i, matrix in enumerate(series.names):
            row = {"name": matrix, "layer": None if series.layers[i] < 0 else int(series.layers[i])}
            row["kind"] = series.kinds[i]
            row.update({metric: float(series.metric(metric)[s, i]) for metric in SERIES_METRICS})
            matrices.append(row)
        steps.append(
            {
                "step": int(step),
                "checkpoint": name,
                "from_cache": bool(series.from_cache[s]),
                "matrices": matrices,
            }
        )
    data = {
        "folder": str(series.folder),
        "metrics": list(SERIES_METRICS),
        "steps": steps,
        "failed": dict(series.failed),
    }
    figures = [
        (f"{METRICS[metric][0]} against the training step", make_series_figure(series, metric))
        for metric in SERIES_METRICS
    ]
    text = (
        f"<p>{len(series.steps)} checkpoints (steps {int(series.steps[0])} to {int(series.steps[-1])}) of "
        f"{html.escape(str(series.folder))}, {len(series.names)} weight matrices each, read from the "
        "safetensors files without loading the model. Each line is the median over the layers of one matrix "
        f"kind; every matrix's values are in metrics.json. Median α at the last step: "
        f"{_median(series.alpha[-1]):.3g}.</p>"
    )
    if series.failed:
        text += "<p>Left out:</p>" + card_table(("checkpoint", "why"), series.failed.items())
    return ReportSection("Checkpoint series: weight spectra against the step", "series", data, figures, text)


def _median(values: np.ndarray) -> float:
    """The median of the finite values (NaN when there are none)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")
