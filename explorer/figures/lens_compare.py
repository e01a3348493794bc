"""Figure of the logit lens of model A against a variant B (``explorer.analysis.lens_compare.LensComparison``):
per layer, the mean KL(A ‖ B) of the lens distributions and the share of positions whose top-1 tokens agree."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.analysis.lens_compare import LensComparison


def make_lens_compare_figure(comparison: LensComparison) -> go.Figure:
    """Two panels over the layers (x, block index): mean KL(A ‖ B) in nats (top), top-1 agreement in % (bottom).
    A layer where A and B read alike sits at KL 0 and 100 %."""
    layers = np.arange(comparison.kl.shape[0])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.add_trace(
        go.Scatter(x=layers, y=comparison.mean_kl, mode="lines+markers", name="mean KL(A ‖ B)",
                   hovertemplate="layer %{x}: %{y:.4g} nats<extra></extra>"),
        row=1, col=1,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=layers, y=100 * comparison.top1_agreement, mode="lines+markers", name="same top-1 token",
                   line=dict(color="#d62728"), hovertemplate="layer %{x}: %{y:.1f} %<extra></extra>"),
        row=2, col=1,
    )  # fmt: skip
    fig.update_yaxes(title_text="KL (nats)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="top-1 agreement (%)", range=[0, 101], row=2, col=1)
    fig.update_xaxes(title_text="layer (block)", row=2, col=1)
    fig.update_layout(
        title="The lens of A and B, layer by layer", height=480, margin=dict(l=60, r=20, t=50, b=50),
        legend=dict(orientation="h", y=1.08),
    )  # fmt: skip
    return fig
