"""Gershgorin discs with the true eigenvalues on top. Input: ``explorer.spectra.gershgorin.GershgorinResult``."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from explorer.figures.common import axes_layout, complex_points

_CIRCLE = np.exp(1j * np.linspace(0, 2 * np.pi, 65))
# Beyond this many groups the rest share one colour (one trace each would make the legend useless).
MAX_GROUP_TRACES = 12
_MARGIN = (60, 20, 60, 50)  # left, right, top, bottom (px)


def make_gershgorin_figure(
    result,
    *,
    columns: bool = False,
    labels: list[str] | None = None,
    title: str | None = None,
    mark_one: bool = False,
) -> go.Figure:
    """Discs (one colour per connected group), their centres (hover: row, centre, radius) and the
    eigenvalues (hover: value, inside or not). Axes at equal scale so discs look round.

    Args:
        result: GershgorinResult of an (n, n) matrix.
        columns: draw the column discs (those of A^T) instead of the row discs.
        labels: list of length n naming rows (e.g. tokens); default ``row i``.
        mark_one: draw the line Re z = 1 (for attention: every row disc reaches 1, the Perron root).
    """
    discs = result.discs(columns)
    groups = result.groups(columns)
    counts = result.group_counts(columns)
    word = "column" if columns else "row"
    n = len(discs)
    labels = labels if labels is not None and len(labels) == n else [f"{word} {i}" for i in range(n)]
    palette = qualitative.Plotly
    fig = go.Figure()
    shown = list(enumerate(groups))
    extra = shown[MAX_GROUP_TRACES:]
    for g_index, members in shown[:MAX_GROUP_TRACES]:
        _add_disc_trace(
            fig,
            discs,
            members,
            palette[g_index % len(palette)],
            f"group {g_index + 1}: {members.size} disc{'s' * (int(members.size) != 1)}, "
            f"{int(counts[g_index])} eigenvalue{'s' * (int(counts[g_index]) != 1)}",
        )
    if extra:
        members = np.concatenate([m for _, m in extra])
        _add_disc_trace(fig, discs, members, "#868e96", f"{len(extra)} more groups")
    group_of = np.empty(n, dtype=int)
    for g_index, members in enumerate(groups):
        group_of[members] = g_index + 1
    fig.add_trace(
        go.Scatter(
            x=discs.centers.real,
            y=discs.centers.imag,
            mode="markers",
            name=f"{word} disc centres a_ii",
            marker=dict(size=5, color="#343a40", symbol="circle-open"),
            customdata=np.stack([discs.radii, group_of, np.abs(discs.centers)], axis=1),
            text=labels,
            hovertemplate="%{text}<br>centre %{x:.4g} %{y:+.4g}i<br>radius %{customdata[0]:.4g}"
            "<br>group %{customdata[1]}<extra></extra>",
        )
    )
    inside = result.inside_cols if columns else result.inside_rows
    lam = result.eigvals
    marker = dict(
        size=9, symbol="x", color=np.where(inside, "#c92a2a", "#f08c00"), line=dict(width=1, color="white")
    )
    fig.add_trace(
        complex_points(
            lam,
            name="eigenvalues λ",
            marker=marker,
            extra=inside.astype(int),
            extra_hover="<br>inside the union: %{customdata[1]}",
        )
    )
    if mark_one:
        fig.add_vline(x=1, line=dict(color="#2b8a3e", dash="dot", width=1.5))
        fig.add_annotation(x=1, y=1, yref="paper", text="Re z = 1", showarrow=False, xanchor="left")
    title = title or f"Gershgorin {word} discs and the eigenvalues ({n}×{n} matrix)"
    axes_layout(fig, title, "real part", "imaginary part", height=560, margin=_MARGIN, legend_y=-0.15)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(scaleanchor="x", scaleratio=1, zeroline=True)
    fig.update_xaxes(zeroline=True)
    return fig


def _add_disc_trace(fig: go.Figure, discs, members: np.ndarray, color: str, name: str) -> None:
    """All discs of one group as one filled trace (circles separated by gaps)."""
    xs, ys = [], []
    for i in members:
        ring = discs.centers[i] + discs.radii[i] * _CIRCLE
        xs.extend([*ring.real, None])
        ys.extend([*ring.imag, None])
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            fill="toself",
            name=name,
            line=dict(color=color, width=1),
            fillcolor=_translucent(color, 0.12),
            hoverinfo="skip",
        )
    )


def _translucent(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"
