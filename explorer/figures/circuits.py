"""Figures of QK/OV circuits: copying scores of every head, one head's OV eigenvalues in the complex plane,
and its QK and OV singular values. Input: ``explorer.analysis.circuits.CircuitSpectra``."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.circuits import CircuitSpectra
from explorer.figures.common import axes_layout, circle_trace, complex_points
from explorer.figures.weights import log_axis

_MARGIN = (60, 20, 60, 50)  # left, right, top, bottom (px)


def make_copying_heatmap_figure(circuits: CircuitSpectra) -> go.Figure:
    """Layer x head heatmap of the OV copying score (diverging: red copies, blue suppresses)."""
    L, H = circuits.copying_score.shape
    kv = circuits.kv_head
    custom = np.broadcast_to(kv[None, :], (L, H))
    hover = "layer %{y} · head %{x}<br>copying score %{z:.3f}"
    if circuits.grouped:
        hover += "<br>shares K/V head %{customdata}"
    fig = go.Figure(
        go.Heatmap(
            z=circuits.copying_score,
            x=list(range(H)),
            y=list(range(L)),
            customdata=custom,
            zmin=-1,
            zmax=1,
            colorscale="RdBu_r",
            colorbar=dict(title="copying<br>score"),
            hovertemplate=hover + "<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    title = "OV copying score Σ Re λ / Σ |λ| of every head"
    axes_layout(fig, title, "head", "layer", height=max(320, 20 * L + 140), margin=_MARGIN)
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def make_ov_eigenvalue_figure(circuits: CircuitSpectra, layer: int, head: int) -> go.Figure:
    """One head's OV eigenvalues in the complex plane, with the circle of radius max |lambda| for scale."""
    lam = circuits.ov_eigvals[layer, head]
    radius = float(np.abs(lam).max()) if lam.size else 1.0
    fig = go.Figure()
    fig.add_trace(circle_trace(radius, name=f"|λ| = {radius:.3g} (largest)", points=200))
    marker = dict(size=8, color=np.where(lam.real >= 0, "#c92a2a", "#1971c2"), line=dict(width=0.5))
    number = np.arange(1, lam.size + 1)  # λ1 = largest |λ|
    fig.add_trace(
        complex_points(
            lam, name="eigenvalues of W_O W_V", marker=marker, label="λ%{customdata[1]}", extra=number
        )
    )
    fig.add_hline(y=0, line=dict(color="#495057", width=1))
    fig.add_vline(x=0, line=dict(color="#495057", width=1))
    score = float(circuits.copying_score[layer, head])
    title = f"OV eigenvalues, layer {layer} head {head} (copying score {score:+.3f})"
    axes_layout(fig, title, "Re λ", "Im λ", height=460, margin=_MARGIN, legend_y=-0.18)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def make_circuit_singular_values_figure(circuits: CircuitSpectra, layer: int, head: int) -> go.Figure:
    """Singular values of W_QK and W_OV of one head (the d_head nonzero ones), log scale."""
    fig = go.Figure()
    for values, name, color in (
        (circuits.qk_sigma[layer, head], "W_QK = W_Q W_Kᵀ", "#7048e8"),
        (circuits.ov_sigma[layer, head], "W_OV = W_V W_O", "#e8590c"),
    ):
        k = np.arange(1, values.size + 1)
        fig.add_trace(
            go.Scatter(
                x=k,
                y=np.where(values > 0, values, np.nan),
                mode="lines+markers",
                name=name,
                line=dict(color=color),
                marker=dict(size=4),
                hovertemplate=name + "<br>i = %{x}<br>σ = %{y:.4g}<extra></extra>",
            )
        )
    title = f"Singular values of the QK and OV circuits, layer {layer} head {head}"
    x_title, y_title = "index i (largest first, at most d_head)", "singular value σᵢ (log scale)"
    axes_layout(fig, title, x_title, y_title, height=420, margin=_MARGIN, legend_y=-0.2)
    values = np.concatenate([circuits.qk_sigma[layer, head], circuits.ov_sigma[layer, head]])
    fig.update_yaxes(**log_axis(values))
    return fig
