"""Figures for the eigenvector page: the top-k vectors of one head over its tokens, and its stationary
distribution (which tokens the head keeps returning to)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

if TYPE_CHECKING:
    from explorer.analysis.attention import HeadEigenvectors

VALUE_SYMBOL = {"right": "λ", "symmetric": "μ", "singular": "σ"}
KIND_TITLES = {
    "right": "right eigenvectors of A",
    "symmetric": "eigenvectors of the symmetric part (A + Aᵀ)/2",
    "singular": "left singular vectors of A",
}


def format_value(z: complex) -> str:
    """A compact eigenvalue: real when the imaginary part is negligible, else a ± bi."""
    z = complex(z)
    if abs(z.imag) <= 1e-10 * max(1.0, abs(z)):
        return f"{z.real:.3f}"
    sign = "+" if z.imag >= 0 else "−"
    return f"{z.real:.3f}{sign}{abs(z.imag):.3f}i"


def vector_labels(result: HeadEigenvectors) -> list[str]:
    """Row labels such as ``v1 · λ=0.981`` (``v3 · λ=0.41+0.12i`` for a complex pair)."""
    symbol = VALUE_SYMBOL.get(result.kind, "λ")
    return [f"v{i + 1} · {symbol}={format_value(z)}" for i, z in enumerate(result.values)]


def make_eigenvector_heatmap_figure(
    result: HeadEigenvectors, labels: list[str], *, mode: str = "signed", title: str | None = None
) -> go.Figure:
    """Heatmap of the top-k vectors (rows) over the tokens (columns).

    Args:
        result: HeadEigenvectors (vectors (k, token), unit norm, phase fixed so the largest entry is real > 0).
        labels: list of length ``token``, unique axis labels.
        mode: "signed" colours the real part on a diverging scale centred at 0 (exact for real vectors; for a
            complex vector it is the part in phase with its largest entry); "magnitude" colours |v_i|.
            The hover always shows the entry, its magnitude and its phase.
    """
    if mode not in ("signed", "magnitude"):
        raise ValueError("mode must be 'signed' or 'magnitude'")
    V = np.asarray(result.vectors, dtype=complex)
    rows = vector_labels(result)
    if mode == "signed":
        z = V.real
        bound = max(float(np.abs(z).max()), 1e-12)
        color = dict(colorscale="RdBu", zmid=0, zmin=-bound, zmax=bound, colorbar=dict(title="Re v"))
    else:
        z = np.abs(V)
        color = dict(
            colorscale="Viridis", zmin=0, zmax=max(float(z.max()), 1e-12), colorbar=dict(title="|v|")
        )
    custom = np.stack([V.real, V.imag, np.abs(V), np.degrees(np.angle(V))], axis=-1)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=rows,
            customdata=custom,
            hovertemplate=(
                "%{y}<br>token %{x}<br>entry %{customdata[0]:.4f} %{customdata[1]:+.4f}i<br>"
                "magnitude %{customdata[2]:.4f} · phase %{customdata[3]:.0f}°<extra></extra>"
            ),
            **color,
        )
    )
    kind = KIND_TITLES.get(result.kind, result.kind)
    tau = "" if result.tau == 1 else f" · τ = {result.tau:g}"
    fig.update_layout(
        title=title or f"Layer {result.layer} · head {result.head}{tau}: top {len(rows)} {kind}",
        xaxis_title="token (position:text)",
        yaxis_title="vector (by |value|)",
        height=max(260, 90 + 34 * len(rows)),
        margin=dict(l=150, r=20, t=50, b=80),
    )
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def make_stationary_figure(
    stationary: np.ndarray, labels: list[str], *, damping: float, title: str | None = None, top: int = 5
) -> go.Figure:
    """Bar chart of the PageRank stationary distribution over the tokens; the ``top`` largest are highlighted
    and a dashed line marks the uniform level 1/T.

    Args:
        stationary: (token,) non-negative, sums to 1.
    """
    pi = np.asarray(stationary, dtype=float)
    n = pi.size
    highlight = np.zeros(n, dtype=bool)
    highlight[np.argsort(-pi, kind="stable")[: min(top, n)]] = True
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=pi,
            marker=dict(color=np.where(highlight, "#e8590c", "#4c6ef5")),
            hovertemplate="%{x}<br>π = %{y:.4f}<extra></extra>",
            name="π",
        )
    )
    fig.add_hline(y=1 / n, line=dict(color="#868e96", dash="dash"), annotation_text="uniform 1/T")
    fig.update_layout(
        title=title
        or f"Stationary distribution π (PageRank, damping {damping:g}): where repeated attention ends up",
        xaxis_title="token (position:text)",
        yaxis_title="stationary probability π",
        height=360,
        margin=dict(l=50, r=20, t=50, b=80),
        showlegend=False,
    )
    fig.update_xaxes(type="category", tickangle=-60)
    return fig


def top_tokens_table(result: HeadEigenvectors, labels: list[str]) -> list[dict]:
    """One row per vector: its label and the tokens where it is largest in magnitude, with their entries
    (signed real part; magnitude and phase for complex entries)."""
    rows = []
    for i, name in enumerate(vector_labels(result)):
        entries = []
        for pos in result.top_tokens[i]:
            v = complex(result.vectors[i, pos])
            value = (
                f"{v.real:+.2f}" if abs(v.imag) <= 1e-12 else f"|{abs(v):.2f}|∠{np.degrees(np.angle(v)):.0f}°"
            )
            entries.append(f"{labels[pos]} ({value})")
        rows.append({"vector": name, "top tokens (entry)": " · ".join(entries)})
    return rows
