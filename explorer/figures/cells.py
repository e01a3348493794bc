"""The clickable layer of a heatmap: plotly cannot select a heatmap's cells, but it can select scatter points,
so an invisible square marker sits on every cell. A click (Streamlit's ``on_select``) then names the cell, and
the marker carries the cell's hover text (the heatmap itself sets ``hoverinfo="skip"``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go


def cell_markers(
    x: Sequence | np.ndarray,
    y: Sequence | np.ndarray,
    *,
    size: int,
    customdata: np.ndarray,
    text: Sequence[str] | np.ndarray,
    hovertemplate: str,
    name: str,
) -> go.Scatter:
    """Invisible square markers of ``size`` px at the cells (x[i], y[i]), i over every cell, each with its row of
    ``customdata`` (cell, field) and its ``text`` for ``hovertemplate``. Selected and unselected points keep
    full opacity, so a click does not dim the other markers (they are transparent anyway, but their hover is
    not). Out of the legend."""
    return go.Scatter(
        x=x,
        y=y,
        mode="markers",
        marker=dict(symbol="square", size=size, color="rgba(0,0,0,0)"),
        selected=dict(marker=dict(opacity=1)),
        unselected=dict(marker=dict(opacity=1)),
        customdata=customdata,
        text=text,
        hovertemplate=hovertemplate,
        showlegend=False,
        name=name,
    )
