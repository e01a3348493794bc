"""The whole trade-off on one chart: the model's bytes against measured quality, every way of shrinking it as
its own series (low rank three ways, uniform and allocated; int8; 4-bit by group size; combinations; healed),
with the original model, the budget line and the current setting."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from explorer.analysis.quality import headline_metric

if TYPE_CHECKING:  # typing only: figures never need torch at run time
    from explorer.analysis.compression import Point, Quality

MB = 1e6


def _value(q: Quality) -> float:
    """The headline metric as plotted (nan when not finite)."""
    return headline_metric(q.causal).plotted(q)


def make_tradeoff_figure(
    points: list[Point],
    *,
    original: Quality,
    original_bytes: int,
    budget_line: tuple[float, str] | None = None,
    current: Point | None = None,
    measured_on: str = "the held-out passage",
) -> go.Figure:
    """x: the whole model's storage (MB); y: perplexity (log, causal LMs) or mean embedding cosine (encoders).

    Points of one series are joined in order of bytes. A point on the weights' own storage grid (SmolLM2's
    Q4_1) is drawn hollow and labelled: its zero cost is how the model was shipped, not a finding.
    """
    causal = original.causal
    fig = go.Figure()
    series: dict[str, list[Point]] = {}
    for p in points:
        series.setdefault(p.series, []).append(p)
    # Each series its own colour, set here rather than left to a theme: Streamlit's theme colours the app's chart,
    # but the exported decision (plotly's own defaults) would outline every marker in the same dark grey.
    palette = plotly.colors.qualitative.Plotly
    for i, (name, members) in enumerate(series.items()):
        members = sorted(members, key=lambda p: p.bytes_model)
        color = palette[i % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=[p.bytes_model / MB for p in members],
                y=[_value(p.quality) for p in members],
                mode="lines+markers" if len(members) > 1 else "markers",
                name=name,
                text=[p.setting for p in members],
                line=dict(color=color),
                marker=dict(
                    size=9,
                    color=color,
                    symbol=["circle-open" if p.on_own_grid else "circle" for p in members],
                    line=dict(width=2, color=color),
                ),
                hovertemplate="%{text}<br>%{x:.1f} MB<br>%{y:.4g}<extra>" + name + "</extra>",
            )
        )
    own = [p for p in points if p.on_own_grid]
    for p in own:
        fig.add_annotation(
            x=p.bytes_model / MB,
            y=np.log10(_value(p.quality)) if causal else _value(p.quality),
            text="the model's own 4-bit grid (Q4_1): no cost by construction",
            showarrow=True,
            arrowhead=2,
            ax=60,
            ay=-40,
            font=dict(size=11),
        )
    fig.add_trace(
        go.Scatter(
            x=[original_bytes / MB],
            y=[_value(original)],
            mode="markers",
            name="original (fp16)",
            marker=dict(size=12, symbol="diamond", color="#212529"),
            hovertemplate="original model<br>%{x:.1f} MB<br>%{y:.4g}<extra></extra>",
        )
    )
    if current is not None:
        fig.add_trace(
            go.Scatter(
                x=[current.bytes_model / MB],
                y=[_value(current.quality)],
                mode="markers",
                name=f"current setting ({current.setting})",
                marker=dict(size=18, symbol="star", color="#f59f00", line=dict(width=1, color="#212529")),
                hovertemplate="current setting<br>%{x:.1f} MB<br>%{y:.4g}<extra></extra>",
            )
        )
    if budget_line is not None:
        value, label = budget_line
        fig.add_hline(y=value, line=dict(color="#c92a2a", dash="dot"), annotation_text=label)
    quality = (
        f"perplexity on {measured_on} (log scale, lower is better)"
        if causal
        else "mean cosine to the original embeddings (higher is better)"
    )
    if causal:  # broken settings reach perplexities of 1e20 and more: show up to 1000x the original
        values = [_value(p.quality) for p in points] + [_value(original)]
        finite = [v for v in values if np.isfinite(v) and v > 0]
        if finite:
            top = min(max(finite), 1000 * _value(original))
            fig.update_yaxes(range=[np.log10(min(finite) / 1.5), np.log10(top * 1.5)])
            if max(finite) > top * 1.5:
                fig.add_annotation(
                    text="points above 1000× the original perplexity are off the chart",
                    xref="paper", yref="paper", x=0.0, y=1.0, showarrow=False, font=dict(size=11),
                    xanchor="left", yanchor="bottom",
                )  # fmt: skip
    fig.update_layout(
        title="Model size against quality: low rank, fewer bits, and both",
        xaxis_title="storage of the whole model (MB; weights left alone at fp16)",
        yaxis_title=quality,
        yaxis_type="log" if causal else "linear",
        legend=dict(orientation="v"),
        height=560,
        margin=dict(t=60, r=20),
    )
    return fig
