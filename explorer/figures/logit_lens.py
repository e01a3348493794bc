"""Figures of the logit lens (explorer/analysis/logit_lens.py): a layer x position heatmap and a cell's top-k."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.logit_lens import LogitLens
from explorer.figures.cells import cell_markers

# What the heatmap can show: (title, colorbar title).
LENS_METRICS = {
    "rank": "Rank of the final prediction (log colour)",
    "prob": "Probability of the final prediction",
    "kl": "KL(final ‖ layer), nats",
}
# Columns at which a category axis stops labelling every token (plotly then thins the ticks itself).
ALL_TICKS_UP_TO = 64


def heat_values(lens: LogitLens, metric: str) -> np.ndarray:
    """The colour values of ``metric``: ndarray of shape (layer, token), float64. Rank is drawn as log10(rank)
    (rank 1 = 0), so ranks 1, 10, 100, ... are equally spaced; probability in 0-1; KL in nats."""
    if metric == "rank":
        return np.log10(np.asarray(lens.final_rank, dtype=float))
    if metric == "prob":
        return np.asarray(lens.final_prob, dtype=float)
    if metric == "kl":
        return np.asarray(lens.kl, dtype=float)
    raise ValueError(f"Unknown lens metric '{metric}'; choose one of {', '.join(LENS_METRICS)}.")


def make_lens_heatmap_figure(
    lens: LogitLens,
    metric: str,
    labels: list[str],
    top1_texts: np.ndarray,
    final_texts: list[str],
    *,
    selected: tuple[int, int] | None = None,
) -> go.Figure:
    """Heatmap of ``metric`` over layers (rows, layer 0 at the bottom) and positions (columns).

    An invisible marker sits on every cell (heatmaps cannot be selected in plotly, markers can) so a click
    selects that (layer, position); it carries the hover. SVG markers, not WebGL: Streamlit's point selection
    did not receive clicks on a WebGL trace in Chromium. Generated positions are shaded and their labels end
    with the generated-token mark (the caller's ``labels`` carry it).

    Args:
        lens: the LogitLens. metric: a key of LENS_METRICS.
        labels: list of length ``token``, unique axis labels ("position:text").
        top1_texts: ndarray of shape (layer, token), str: the lens's top-1 token as text.
        final_texts: list of length ``token``: the model's final prediction at each position as text.
        selected: (layer, position) to outline.
    """
    z = heat_values(lens, metric)
    n_layers, n_tokens = z.shape
    layers, positions = np.meshgrid(np.arange(n_layers), np.arange(n_tokens), indexing="ij")
    if metric == "rank":
        top = max(1.0, float(np.ceil(z.max())))
        ticks = np.arange(0, top + 1)
        colorbar = dict(
            title=dict(text="rank", side="right"), tickvals=ticks, ticktext=[f"{10**t:,.0f}" for t in ticks]
        )
        zrange = dict(zmin=0.0, zmax=top)
        scale, reverse = "Viridis", True  # rank 1 (found) bright, far ranks dark
    elif metric == "prob":
        colorbar, zrange, scale, reverse = (
            dict(title=dict(text="p", side="right")),
            dict(zmin=0, zmax=1),
            "Viridis",
            False,
        )
    else:
        colorbar = dict(title=dict(text="nats", side="right"))
        zrange, scale, reverse = dict(zmin=0.0), "Viridis", True
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=list(labels),
            y=np.arange(n_layers),
            colorscale=scale,
            reversescale=reverse,
            colorbar=colorbar,
            hoverinfo="skip",
            name=LENS_METRICS[metric],
            **zrange,
        )
    )
    custom = np.stack(
        [
            layers.ravel(),
            positions.ravel(),
            np.asarray(lens.final_rank).ravel(),
            np.asarray(lens.final_prob, dtype=float).ravel(),
            np.asarray(lens.kl, dtype=float).ravel(),
        ],
        axis=-1,
    )
    hover_text = [
        f"{labels[t]}<br>lens top-1: {top1_texts[layer, t]!r} · final: {final_texts[t]!r}"
        for layer, t in zip(layers.ravel(), positions.ravel(), strict=True)
    ]
    fig.add_trace(
        cell_markers(
            [labels[t] for t in positions.ravel()],
            layers.ravel(),
            size=8,
            customdata=custom,
            text=hover_text,
            hovertemplate=(
                "layer %{customdata[0]:d}, position %{customdata[1]:d}<br>%{text}<br>"
                "rank of final %{customdata[2]:,d} · p %{customdata[3]:.3g} · KL %{customdata[4]:.3g} nats"
                "<extra></extra>"
            ),
            name="cells",
        )
    )
    generated = np.nonzero(np.asarray(lens.generated))[0]
    if generated.size:
        fig.add_vrect(
            x0=labels[int(generated[0])],
            x1=labels[int(generated[-1])],
            fillcolor="rgba(255,255,255,0.12)",
            line=dict(color="#f59f00", width=2, dash="dot"),
            annotation_text="generated",
            annotation_position="top left",
        )
    if selected is not None:
        layer, pos = selected
        if 0 <= layer < n_layers and 0 <= pos < n_tokens:
            fig.add_trace(
                go.Scatter(
                    x=[labels[pos]],
                    y=[layer],
                    mode="markers",
                    marker=dict(symbol="square-open", size=14, color="#e03131", line=dict(width=2)),
                    hoverinfo="skip",
                    showlegend=False,
                    name="selected",
                )
            )
    fig.update_layout(
        title=LENS_METRICS[metric],
        xaxis_title="position:token (the lens predicts the token after it)",
        yaxis_title="layer (block)",
        margin=dict(l=60, r=20, t=50, b=110),
        height=max(380, 16 * n_layers + 200),
        clickmode="event+select",
        dragmode=False,  # a drag would zoom and swallow the click; the modebar still offers zoom
    )
    fig.update_xaxes(
        type="category", tickangle=-60, showticklabels=True, nticks=min(n_tokens, ALL_TICKS_UP_TO)
    )
    fig.update_yaxes(range=[-0.5, n_layers - 0.5], dtick=1 if n_layers <= 32 else None)
    return fig


def make_top_k_figure(
    lens: LogitLens, layer: int, position: int, token_texts: list[str], label: str, *, k: int | None = None
) -> go.Figure:
    """Horizontal bars of the lens's top-k next tokens at (``layer``, ``position``), most likely on top.

    Args:
        token_texts: list of length k: the top ids of that cell as text.
        label: the position's axis label (for the title).
        k: how many of the lens's top tokens to show (default: all it kept).
    """
    k = lens.k if k is None else max(1, min(int(k), lens.k))
    probs = np.asarray(lens.top_probs[layer, position, :k], dtype=float)
    ids = np.asarray(lens.top_ids[layer, position, :k])
    final = int(lens.final_ids[position])
    names = [f"{i + 1}. {text!r}" for i, text in enumerate(token_texts)]
    colors = ["#e8590c" if int(t) == final else "#4c6ef5" for t in ids]
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=names,
            orientation="h",
            marker=dict(color=colors),
            customdata=ids,
            hovertemplate="%{y}<br>token id %{customdata}<br>p = %{x:.4f}<extra></extra>",
            text=[f"{p:.3f}" for p in probs],
            textposition="auto",
        )
    )
    fig.update_layout(
        title=f"Layer {layer} at {label}: top {len(probs)} next tokens (orange: the model's final prediction)",
        xaxis_title="probability through the lens",
        margin=dict(l=140, r=20, t=50, b=40),
        height=120 + 28 * len(probs),
    )
    fig.update_xaxes(range=[0, max(1e-9, float(probs.max())) * 1.1])
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def make_position_trajectory_figure(lens: LogitLens, position: int, label: str) -> go.Figure:
    """The final prediction at ``position`` through the layers: its lens probability (left axis) and rank (right
    axis, log), layer by layer."""
    layers = np.arange(lens.n_layers)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=layers,
            y=np.asarray(lens.final_prob[:, position], dtype=float),
            mode="lines+markers",
            name="probability",
            hovertemplate="layer %{x}: p = %{y:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=layers,
            y=np.asarray(lens.final_rank[:, position]),
            mode="lines+markers",
            name="rank",
            yaxis="y2",
            line=dict(dash="dot"),
            hovertemplate="layer %{x}: rank %{y:,d}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"The final prediction at {label}, layer by layer",
        xaxis_title="layer (block)",
        yaxis=dict(title="probability", range=[0, 1.02]),
        # Log axis: range in decades, reversed so rank 1 is at the top; a tick per decade.
        yaxis2=dict(
            title="rank",
            type="log",
            overlaying="y",
            side="right",
            range=[np.log10(max(2, int(np.max(lens.final_rank[:, position])))) + 0.1, -0.1],
            dtick=1,
            tickformat=",d",
        ),
        margin=dict(l=60, r=60, t=50, b=40),
        height=320,
        legend=dict(orientation="h", y=-0.25),
    )
    return fig
