"""Figures of a comparison of model A with a variant B (explorer.analysis.compare): the layer x kind grid of a
metric's differences, one matrix's two spectra, and Delta W's spectrum with its energy share in W_A's top-r
subspace."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.analysis.compare import DeltaSpectrum, MatrixComparison
from explorer.analysis.weights import METRICS, WeightSpectra
from explorer.figures.common import axes_layout
from explorer.figures.weights import log_axis, make_weight_heatmap_figure, matrix_label

A_LINE = dict(color="#1f77b4", width=2)
B_LINE = dict(color="#d62728", width=2, dash="dot")


def make_delta_heatmap_figure(spectra_a: WeightSpectra, comparison: MatrixComparison) -> go.Figure:
    """The layer x kind grid of ``comparison.delta`` = metric(B) - metric(A), red-blue about 0."""
    label = f"Δ {METRICS[comparison.metric][0]} (B − A)"
    return make_weight_heatmap_figure(
        spectra_a, comparison.metric, values=comparison.delta, label=label, diverging=True
    )


def make_spectra_pair_figure(spectra_a: WeightSpectra, spectra_b: WeightSpectra, index: int) -> go.Figure:
    """Matrix ``index``'s singular values in A and in B (scree, log y when they span two decades)."""
    sa, sb = spectra_a.sigma[index], spectra_b.sigma[index]
    k = np.arange(1, sa.size + 1)
    fig = go.Figure(
        [
            go.Scatter(x=k, y=sa, name="A (loaded)", mode="lines", line=A_LINE),
            go.Scatter(x=k, y=sb, name="B (variant)", mode="lines", line=B_LINE),
        ]
    )
    axes_layout(
        fig,
        f"σᵢ of {matrix_label(spectra_a, index)}: A and B",
        "index i",
        "singular value σᵢ",
        height=380,
        margin=(60, 20, 50, 50),
        legend_y=-0.2,
    )
    fig.update_yaxes(**log_axis(np.concatenate([sa, sb])))
    return fig


def make_delta_figure(delta: DeltaSpectrum, title: str) -> go.Figure:
    """Left: Delta W's singular values (log y) with the float32 rounding floor. Right: the share of ||dW||_F²
    in W_A's top-r singular subspace for r = 1..R, against r²/(mn), what a random update would hold there."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("singular values of ΔW = W_B − W_A", "share of ‖ΔW‖_F² in W_A's top-r subspace"),
    )
    k = np.arange(1, delta.sigma.size + 1)
    shown = np.where(delta.sigma > 0, delta.sigma, np.nan)
    fig.add_trace(go.Scatter(x=k, y=shown, name="σᵢ(ΔW)", mode="lines", line=B_LINE), row=1, col=1)
    fig.add_trace(
        go.Scatter(
            x=[1, k[-1]],
            y=[delta.noise, delta.noise],
            name="float32 rounding floor",
            mode="lines",
            line=dict(color="gray", dash="dash"),
        ),
        row=1,
        col=1,
    )
    r = np.arange(1, delta.energy_share.size + 1)
    m, n = delta.shape
    fig.add_trace(
        go.Scatter(x=r, y=delta.energy_share, name="ΔW's share", mode="lines+markers", line=A_LINE),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(
            x=r,
            y=r**2 / (m * n),
            name="random update: r²/(mn)",
            mode="lines",
            line=dict(color="gray", dash="dot"),
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(type="log", exponentformat="power", title_text="σᵢ", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="share", row=1, col=2)
    fig.update_xaxes(title_text="index i", row=1, col=1)
    fig.update_xaxes(title_text="r", row=1, col=2)
    fig.update_layout(
        title=title, height=400, margin=dict(l=60, r=20, t=80, b=70), legend=dict(orientation="h", y=-0.25)
    )
    return fig
