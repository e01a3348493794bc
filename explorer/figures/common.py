"""Pieces shared by several figures."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def circle_trace(
    radius: float = 1.0,
    *,
    name: str = "unit circle",
    color: str = "#adb5bd",
    dash: str = "dot",
    points: int = 181,
) -> go.Scatter:
    """The circle |z| = radius in the complex plane (x = Re, y = Im), drawn for scale and never hovered."""
    theta = np.linspace(0.0, 2.0 * np.pi, points)
    return go.Scatter(
        x=radius * np.cos(theta),
        y=radius * np.sin(theta),
        mode="lines",
        line=dict(color=color, width=1, dash=dash),
        hoverinfo="skip",
        name=name,
    )


def equal_axes(fig: go.Figure, half: float) -> None:
    """Both axes span [-half, half] with zero lines and one unit the same length on each, so circles stay round."""
    fig.update_xaxes(range=[-half, half], zeroline=True, constrain="domain")
    fig.update_yaxes(range=[-half, half], zeroline=True, scaleanchor="x", scaleratio=1, constrain="domain")
