"""Figures about the tokens themselves."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def make_surprisal_figure(labels: list[str], token_losses: np.ndarray) -> go.Figure:
    """Bar chart of next-token surprisal.

    Args:
        labels: list of length ``token``, unique axis labels.
        token_losses: ndarray of shape (token - 1,), nats; entry t is the loss of predicting token t+1.
    """
    losses = np.asarray(token_losses, dtype=float)
    targets = labels[1 : 1 + len(losses)]
    fig = go.Figure(
        go.Bar(
            x=targets,
            y=losses,
            marker=dict(color=losses, colorscale="Viridis", colorbar=dict(title="nats")),
            hovertemplate="%{x}<br>surprisal %{y:.2f} nats<br>p = %{customdata:.3f}<extra></extra>",
            customdata=np.exp(-losses),
        )
    )
    fig.update_layout(
        title="How surprised the model is by each token (next-token loss)",
        xaxis_title="token (position:text)",
        yaxis_title="surprisal −log p (nats)",
        margin=dict(l=40, r=20, t=50, b=80),
        height=360,
    )
    fig.update_xaxes(tickangle=-60, type="category")
    return fig


# Appended to the label of a token the model generated (a continuation of the text), on every axis that shows it.
GENERATED_MARK = " ✦"


def mark_generated(labels: list[str], generated: np.ndarray | None) -> list[str]:
    """``labels`` with GENERATED_MARK after each generated token's label.

    Args:
        labels: list of length ``token``. generated: ndarray of shape (token,), bool, or None (nothing marked).
    """
    if generated is None:
        return list(labels)
    flags = np.asarray(generated, dtype=bool)
    if flags.shape != (len(labels),):
        raise ValueError(f"generated has shape {flags.shape}; expected ({len(labels)},)")
    return [f"{label}{GENERATED_MARK}" if flag else label for label, flag in zip(labels, flags, strict=True)]
