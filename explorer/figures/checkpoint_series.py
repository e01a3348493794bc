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
    _step_axis(fig, steps)
    fig.update_yaxes(title_text=f"median {label}")
    return fig


# Up to this many checkpoints every step gets its own tick; more would crowd the axis.
_MAX_STEP_TICKS = 12


def _step_axis(fig: go.Figure, steps: list[int]) -> None:
    """An x axis of training steps: integer ticks only (Plotly's own would put 0.2, 0.4, ... between two steps),
    every checkpoint's step when there are few."""
    ticks = dict(tickmode="array", tickvals=steps) if len(steps) <= _MAX_STEP_TICKS else dict(tickformat="d")
    fig.update_xaxes(title_text="training step", **ticks)


def kind_in_blocks(series: CheckpointSeries, kind: str) -> list[int]:
    """Indices (into ``series.names``) of the blocks' matrices of ``kind``, by layer."""
    idx = [
        i
        for i, (k, lay) in enumerate(zip(series.kinds, series.layers, strict=True))
        if k == kind and lay >= 0
    ]
    return sorted(idx, key=lambda i: int(series.layers[i]))


def make_series_heatmap(series: CheckpointSeries, metric: str, kind: str) -> go.Figure:
    """Step x layer heatmap of one of ``SERIES_METRICS`` for the blocks' matrices of ``kind``: a column per
    step (the checkpoints, evenly spaced and labelled by step), a row per layer; hover names the matrix."""
    label = METRICS[metric][0]
    idx = kind_in_blocks(series, kind)
    z = series.metric(metric)[:, idx].T  # (layer, step)
    names = np.array([[series.names[i]] * len(series.steps) for i in idx], dtype=object)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(int(s)) for s in series.steps],
            y=[str(int(series.layers[i])) for i in idx],
            colorscale="Viridis",
            colorbar=dict(title=label),
            customdata=names,
            hovertemplate="step %{x} · layer %{y}<br>%{customdata}<br>"
            + label
            + " = %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{label} of every {weight_kind_label(kind)} matrix against the step",
        height=max(300, 60 + 22 * len(idx)),
        margin=dict(l=60, r=20, t=60, b=50),
    )
    fig.update_xaxes(title_text="training step", type="category")
    fig.update_yaxes(title_text="layer", type="category")
    return fig


def make_series_loss_figure(steps: np.ndarray, loss: np.ndarray) -> go.Figure:
    """The loss (nats) recorded at each checkpoint of a series (steps (n,), loss (n,)) against the step."""
    fig = go.Figure(
        go.Scatter(
            x=[int(s) for s in steps],
            y=np.asarray(loss, dtype=np.float64),
            mode="lines+markers",
            name="loss",
            hovertemplate="step %{x}<br>loss %{y:.6g} nats<extra></extra>",
        )
    )
    fig.update_layout(title="Loss against the step", height=320, margin=dict(l=60, r=20, t=60, b=50))
    _step_axis(fig, [int(s) for s in steps])
    fig.update_yaxes(title_text="loss (nats)")
    return fig
