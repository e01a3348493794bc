"""Figures of the compression what-if: the Pareto chart (parameters kept vs measured quality) and the
per-matrix error profile. Inputs are the result dataclasses of explorer.analysis.compression."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.analysis.quality import metrics_for
from explorer.labels import LOWRANK_METHOD_LABELS as METHOD_LABELS
from explorer.labels import weight_kind_label

if TYPE_CHECKING:  # typing only: figures never need torch at run time
    from explorer.analysis.compression import MatrixRow, Outcome, Point, Quality, RankComparison

METHOD_COLORS = {"svd": "#e8590c", "asvd": "#1c7ed6", "svdllm": "#2f9e44"}


def quality_axis(causal: bool, measured_on: str = "the text") -> str:
    """The title of the quality axis, which plots the headline metric (log scale for a ratio metric)."""
    if causal:
        return f"perplexity on {measured_on} (log scale, lower is better)"
    return "mean cosine to the original embeddings (higher is better)"


def make_pareto_figure(
    points: list[Point],
    *,
    original: Quality,
    current: Outcome | None = None,
    break_even: dict | None = None,
    budget_line: tuple[float, str] | None = None,
    measured_on: str = "the text",
) -> go.Figure:
    """Parameters kept (% of the model) against measured quality, one line per method and allocation
    (allocated ranks dashed).

    Args:
        points: sweep points (each method at a few shares of its break-even rank).
        original: the uncompressed model's quality (a dashed horizontal line).
        current: the page's current setting, marked with a star.
        break_even: kind -> ((m, n), break-even rank mn/(m+n), max rank), noted beside the 100 % line.
        budget_line: (quality value, label): the budget's limit on the plotted quality, a dotted line.
        measured_on: what the quality was measured on, for the axis title.
    """
    metric, second = metrics_for(original.causal)  # plotted; in the hover
    y_title = quality_axis(original.causal, measured_on)
    fig = go.Figure()
    for method, allocation in [(m, a) for a in ("uniform", "greedy") for m in METHOD_LABELS]:
        pts = sorted(
            (p for p in points if p.method == method and getattr(p, "allocation", "uniform") == allocation),
            key=lambda p: p.share_kept,
        )
        if not pts:
            continue
        label = METHOD_LABELS[method] + (", ranks allocated" if allocation == "greedy" else "")
        extra = [second.with_unit(p.quality) for p in pts]
        fig.add_trace(
            go.Scatter(
                x=[100 * p.share_kept for p in pts],
                y=[metric.plotted(p.quality) for p in pts],
                mode="lines+markers",
                name=label,
                line=dict(
                    color=METHOD_COLORS[method], width=2, dash="dash" if allocation == "greedy" else None
                ),
                marker=dict(size=9),
                customdata=np.array(
                    [
                        [
                            100 * p.share,
                            p.mean_rank,
                            p.params_model_after / 1e6,
                            p.quality.latency_ms,
                            e,
                        ]
                        for p, e in zip(pts, extra, strict=True)
                    ],
                    dtype=object,
                ),
                hovertemplate=(
                    f"<b>{label}</b><br>ranks at %{{customdata[0]:.0f}} % of break-even "
                    "(mean rank %{customdata[1]:.0f})<br>%{x:.1f} % of parameters kept "
                    "(%{customdata[2]:.1f} M)<br>quality %{y:.4g}<br>%{customdata[4]}"
                    "<br>latency %{customdata[3]:.0f} ms<extra></extra>"
                ),
            )
        )
    # The original model as a dashed line (a trace, not an hline annotation: annotations on a log axis take
    # log10 coordinates, which would stretch the axis).
    base = metric.plotted(original)
    xs = [100 * p.share_kept for p in points] + [100.0]
    if current is not None:
        xs.append(100 * current.share_kept)
    fig.add_trace(
        go.Scatter(
            x=[min(xs), 100.0],
            y=[base, base],
            mode="lines",
            name=f"original model ({base:.4g})",
            line=dict(color="#495057", dash="dash", width=1.5),
            hovertemplate=f"original model: {base:.4g}<extra></extra>",
        )
    )
    if budget_line is not None:
        limit, label = budget_line
        fig.add_trace(
            go.Scatter(
                x=[min(xs), 100.0],
                y=[limit, limit],
                mode="lines",
                name=label,
                line=dict(color="#c92a2a", dash="dot", width=1.5),
                hovertemplate=f"{label}: {limit:.4g}<extra></extra>",
            )
        )
    fig.add_vline(x=100, line=dict(color="#868e96", dash="dot", width=1))
    if break_even:
        lines = [
            f"{weight_kind_label(kind)} {m}×{n}: k* = {k_star:.0f}"
            for kind, ((m, n), k_star, _r) in break_even.items()
        ]
        fig.add_annotation(  # outside the plotting area, right of it: never over the data
            x=1.01,
            xref="paper",
            y=1,
            yref="paper",
            xanchor="left",
            yanchor="top",
            align="left",
            showarrow=False,
            text="<b>break-even rank</b><br>k* = mn/(m+n), the dotted<br>line at 100 %: nothing saved<br>"
            + "<br>".join(lines[:8]),
            font=dict(size=11, color="#495057"),
            bgcolor="rgba(255,255,255,0.8)",
        )
    if current is not None:
        fig.add_trace(
            go.Scatter(
                x=[100 * current.share_kept],
                y=[metric.plotted(current.after)],
                mode="markers",
                name=f"current setting ({METHOD_LABELS.get(current.method, current.method)})",
                marker=dict(
                    symbol="star",
                    size=18,
                    color=METHOD_COLORS.get(current.method, "#000"),
                    line=dict(color="black", width=1),
                ),
                hovertemplate="<b>current setting</b><br>%{x:.1f} % of parameters kept<br>quality %{y:.4g}"
                "<extra></extra>",
            )
        )
    fig.update_layout(
        title="Parameters kept against measured quality",
        xaxis_title="parameters kept (% of the whole model)",
        yaxis_title=y_title,
        legend=dict(x=1.01, xanchor="left", y=0.5 if break_even else 1, yanchor="top", font=dict(size=11)),
        margin=dict(l=60, r=20, t=60, b=50),
        height=480,
    )
    if metric.compare == "ratio":
        fig.update_yaxes(type="log")
    return fig


def make_matrix_error_figure(rows: list[MatrixRow] | tuple[MatrixRow, ...], *, method: str) -> go.Figure:
    """Relative errors per matrix at the chosen ranks, by layer: this method's weight error, the Eckart-Young
    floor, and the output error on the calibration inputs (when there is one). One panel-free chart, one
    marker symbol per kind."""
    fig = go.Figure()
    kinds = list(dict.fromkeys(r.kind for r in rows))
    symbols = ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon"]
    series = [
        ("eckart_young_error", "Eckart-Young floor ||W−W_k||/||W|| (best possible)", "#adb5bd"),
        ("weight_error", f"{METHOD_LABELS.get(method, method)}: ||W−W_k||/||W||", "#e8590c"),
        (
            "output_error",
            f"{METHOD_LABELS.get(method, method)}: ||(W−W_k)X||/||WX|| on calibration",
            "#2f9e44",
        ),
    ]
    for attr, label, color in series:
        for i, kind in enumerate(kinds):
            sel = [r for r in rows if r.kind == kind and getattr(r, attr) is not None]
            if not sel:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[-1 if r.layer is None else r.layer for r in sel],
                    y=[getattr(r, attr) for r in sel],
                    mode="markers",
                    name=f"{label} · {weight_kind_label(kind)}",
                    legendgroup=attr,
                    marker=dict(color=color, symbol=symbols[i % len(symbols)], size=8, opacity=0.85),
                    customdata=[[r.name, r.rank, r.break_even] for r in sel],
                    hovertemplate="%{customdata[0]}<br>rank %{customdata[1]} (break-even %{customdata[2]:.0f})"
                    "<br>relative error %{y:.3f}<extra></extra>",
                )
            )
    fig.update_layout(
        title="Relative error of each compressed matrix",
        xaxis_title="layer (−1: embeddings)",
        yaxis_title="relative Frobenius error",
        yaxis=dict(rangemode="tozero"),
        legend=dict(font=dict(size=10)),
        margin=dict(l=60, r=20, t=50, b=40),
        height=420,
    )
    return fig


def make_rank_allocation_figure(comparison: RankComparison) -> go.Figure:
    """Ranks kept by layer (x) and kind (y), as a share of each matrix's break-even rank: the same share for
    every matrix (top) against the greedy allocation of the same parameter count (bottom). A matrix the greedy
    leaves dense is drawn at 1 and labelled "dense"."""
    c = comparison
    kinds = list(dict.fromkeys(c.kinds))
    layers = sorted(set(int(x) for x in c.layers))
    col = {layer: j for j, layer in enumerate(layers)}
    row = {kind: i for i, kind in enumerate(kinds)}
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            f"Same share for every matrix ({c.params_uniform / 1e6:.2f} M factor parameters)",
            f"Allocated by least calibration output error ({c.params_greedy / 1e6:.2f} M)",
        ),
    )
    for r, (ranks, dense_possible) in enumerate(((c.uniform, False), (c.greedy, True)), start=1):
        z = np.full((len(kinds), len(layers)), np.nan)
        text = np.full((len(kinds), len(layers)), "", dtype=object)
        for kind, layer, k, be in zip(c.kinds, c.layers, ranks, c.break_even, strict=True):
            dense = dense_possible and k == 0
            z[row[kind], col[int(layer)]] = 1.0 if dense else k / be
            text[row[kind], col[int(layer)]] = "dense" if dense else str(int(k))
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[str(layer) if layer >= 0 else "emb" for layer in layers],
                y=[weight_kind_label(k) for k in kinds],
                text=text,
                # Ranks written in the cells only while they stay legible; the hover always has them.
                texttemplate="%{text}" if len(layers) <= 16 else None,
                textfont=dict(size=9),
                zmin=0,
                zmax=1,
                colorscale="Viridis",
                showscale=r == 1,
                colorbar=dict(title="rank / break-even", len=0.9),
                hovertemplate="layer %{x}, %{y}<br>rank %{text}<br>%{z:.0%} of break-even rank<extra></extra>",
                name="uniform" if r == 1 else "greedy",
            ),
            row=r,
            col=1,
        )
    fig.update_xaxes(title_text="layer", type="category", row=2, col=1)
    fig.update_layout(
        title=f"Ranks kept by layer and kind at {c.share:.0%} of the parameters",
        height=200 + 60 * 2 * len(kinds),
        margin=dict(l=100, r=20, t=80, b=40),
    )
    return fig
