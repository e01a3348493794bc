"""Figures of a checkpoint series (``explorer.analysis.checkpoint_series``): a weight metric against the step."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from explorer.analysis.checkpoint_series import CheckpointSeries
from explorer.analysis.weights import METRICS
from explorer.labels import weight_kind_label


def make_series_figure(series: CheckpointSeries, metric: str) -> go.Figure:
    """One of ``SERIES_METRICS`` against the training step: one line per matrix kind of the blocks, each point
    the median over the layers at that step (matrices outside the blocks are in metrics.json, not here)."""
    label = METRICS[metric][0]
    kinds = series.kinds_in_blocks
    colors = sample_colorscale("Turbo", list(np.linspace(0.05, 0.95, max(len(kinds), 1))))
    steps = [int(s) for s in series.steps]
    traces = [
        go.Scatter(
            x=steps,
            y=series.median_over_layers(metric, kind),
            mode="lines+markers",
            name=weight_kind_label(kind),
            line=dict(color=color, width=1.5),
            customdata=list(series.checkpoints),
            hovertemplate="step %{x} · %{customdata}<br>median " + label + " = %{y:.4g}<extra></extra>",
        )
        for kind, color in zip(kinds, colors, strict=False)
    ]
    fig = go.Figure(traces)
    fig.update_layout(
        title=f"{label}: median over the layers against the step",
        height=420,
        legend=dict(orientation="h", y=-0.22),
        margin=dict(l=60, r=20, t=60, b=60),
    )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text=f"median {label}")
    return fig
