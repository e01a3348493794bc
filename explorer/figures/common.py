"""Pieces shared by several figures."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

CELL_HOVER = "row %{y}, col %{x}: %{z:.4g}<extra></extra>"  # a matrix heatmap's hover: row, column, value


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


def axes_layout(
    fig: go.Figure,
    title: str,
    x_title: str,
    y_title: str,
    *,
    height: int,
    margin: tuple[int, int, int, int],
    legend_y: float | None = None,
    log_y: bool = False,
    **layout,
) -> None:
    """Title, axis titles, height (px) and margins (left, right, top, bottom; px) of a one-panel figure.

    legend_y: a horizontal legend at this height (fraction of the plot area; negative: below the x axis).
    log_y: a log y axis, its ticks written as powers of ten. Further layout settings pass through.
    """
    if legend_y is not None:
        layout["legend"] = dict(orientation="h", y=legend_y)
    if log_y:
        layout.update(yaxis_type="log", yaxis_exponentformat="power")
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        margin=dict(zip("lrtb", margin, strict=True)),
        **layout,
    )


def square_cells(fig: go.Figure, col: int) -> None:
    """The heatmap in column ``col`` (1-based) of a one-row subplot grid: square cells, row 0 at the top."""
    fig.update_yaxes(
        autorange="reversed", scaleanchor=f"x{'' if col == 1 else col}", constrain="domain", row=1, col=col
    )
    fig.update_xaxes(constrain="domain", row=1, col=col)


def diverging_heatmap(
    z: np.ndarray, lim: float, *, colorbar_title: str, showscale: bool = True
) -> go.Heatmap:
    """Matrix entries z (row, column) on a red-blue scale symmetric about 0 over [-lim, lim] (red: positive),
    hovered as row, column and value."""
    return go.Heatmap(
        z=z,
        zmin=-lim,
        zmax=lim,
        colorscale="RdBu",
        reversescale=True,
        showscale=showscale,
        colorbar=dict(title=colorbar_title),
        hovertemplate=CELL_HOVER,
    )


def complex_points(
    z: np.ndarray,
    *,
    name: str,
    marker: dict,
    label: str = "λ",
    extra: np.ndarray | None = None,
    extra_hover: str = "",
) -> go.Scatter:
    """Complex numbers z (shape (n,)) as markers at (Re z, Im z), hovered as ``label = a ± bi`` and |z|.

    extra: a second value per point, customdata[1] in ``label`` and ``extra_hover`` (customdata[0] is |z|).
    """
    z = np.asarray(z)
    columns = [np.abs(z)] if extra is None else [np.abs(z), extra]
    return go.Scatter(
        x=z.real,
        y=z.imag,
        mode="markers",
        name=name,
        marker=marker,
        customdata=np.stack(columns, axis=1),
        hovertemplate=f"{label} = %{{x:.4g}} %{{y:+.4g}}i<br>|λ| = %{{customdata[0]:.4g}}{extra_hover}<extra></extra>",
    )


def unit_modulus_marker(z: np.ndarray, *, colorscale: str, size: int, line: dict, **marker) -> dict:
    """Markers coloured by |z| on the fixed scale [0, 1]: an attention matrix's eigenvalues lie in the unit disc
    (spectral radius 1), so one colour means one modulus across heads and temperatures."""
    return dict(size=size, color=np.abs(z), colorscale=colorscale, cmin=0, cmax=1, line=line, **marker)
