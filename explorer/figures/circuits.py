"""Figures of QK/OV circuits: copying scores of every head, one head's OV eigenvalues in the complex plane,
and its QK and OV singular values (input: ``explorer.analysis.circuits.CircuitSpectra``); and of a comparison of
model A with a variant B (``CircuitComparison``): the layer x head grid of a change, one head's eigenvalues and
singular values of A and B on one chart each."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.circuits import CIRCUIT_DELTAS, PAIRED, CircuitComparison, CircuitSpectra
from explorer.figures.cells import cell_markers
from explorer.figures.common import axes_layout, circle_trace, complex_points
from explorer.figures.compare import A_LINE, B_LINE
from explorer.figures.weights import log_axis

_MARGIN = (60, 20, 60, 50)  # left, right, top, bottom (px)


def _head_grid_figure(
    z: np.ndarray,
    kv_head: np.ndarray,
    *,
    title: str,
    label: str,
    colorbar: str,
    lim: float,
    hover_format: str = ".3f",
    signed: bool = True,
) -> go.Figure:
    """Layer x head heatmap of ``z`` (layer, head), white at 0: red-blue over [-lim, lim] (red: positive), or for
    a quantity that is never negative (``signed=False``) white to red over [0, lim], the positive half of the same
    scale. Hovered with the value and, with grouped-query attention, the key/value head each query head reads."""
    L, H = z.shape
    custom = np.broadcast_to(kv_head[None, :], (L, H))
    hover = f"layer %{{y}} · head %{{x}}<br>{label} %{{z:{hover_format}}}"
    if np.unique(kv_head).size < H:
        hover += "<br>shares K/V head %{customdata}"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(H)),
            y=list(range(L)),
            customdata=custom,
            zmin=-lim if signed else 0.0,
            zmax=lim,
            colorscale="RdBu_r" if signed else "Reds",
            colorbar=dict(title=colorbar),
            hovertemplate=hover + "<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    axes_layout(fig, title, "head", "layer", height=max(320, 20 * L + 140), margin=_MARGIN)
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def make_copying_heatmap_figure(circuits: CircuitSpectra) -> go.Figure:
    """Layer x head heatmap of the OV copying score (diverging: red copies, blue suppresses)."""
    return _head_grid_figure(
        circuits.copying_score,
        circuits.kv_head,
        title="OV copying score Σ Re λ / Σ |λ| of every head",
        label="copying score",
        colorbar="copying<br>score",
        lim=1.0,
    )


def delta_label(metric: str) -> str:
    """The name of a comparison quantity (a key of CIRCUIT_DELTAS): "Δ" before a paired metric (B − A)."""
    return f"Δ {CIRCUIT_DELTAS[metric]}" if metric in PAIRED else CIRCUIT_DELTAS[metric]


def make_circuit_delta_heatmap_figure(comparison: CircuitComparison, metric: str) -> go.Figure:
    """Layer x head grid of one comparison quantity (a key of CIRCUIT_DELTAS), white at 0 ("no change"): B − A of a
    paired metric on a red-blue scale symmetric about 0, or the relative change of a circuit (never negative)
    from white to red. A click on a cell selects that head (an invisible marker per cell, explorer.figures.cells,
    carries the click and the hover)."""
    z = comparison.delta(metric)
    finite = np.abs(z[np.isfinite(z)])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    label = delta_label(metric)
    title = f"{label} of every head" + ("" if metric not in PAIRED else " (B − A)")
    colorbar = "B − A" if metric in PAIRED else "relative<br>change"
    signed = metric in PAIRED
    fig = _head_grid_figure(z, comparison.a.kv_head, title=title, label=label, colorbar=colorbar, lim=lim,
                            hover_format=".4g", signed=signed)  # fmt: skip
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector=dict(type="heatmap"))
    layers, heads = np.indices(z.shape)
    same = np.where(comparison.same, "same weights in A and B", "weights differ")
    fig.add_trace(
        cell_markers(
            heads.ravel(),
            layers.ravel(),
            size=14,
            customdata=np.stack([layers.ravel(), heads.ravel(), z.ravel()], axis=1),
            text=same.ravel(),
            hovertemplate=(
                f"layer %{{customdata[0]:d}} · head %{{customdata[1]:d}}<br>{label} %{{customdata[2]:.4g}}"
                "<br>%{text}<extra></extra>"
            ),
            name="heads",
        )
    )
    return fig


def _eigenvalue_plane(points: list[go.Scatter], radius: float, title: str) -> go.Figure:
    """OV eigenvalues ``points`` in the complex plane, after the circle |λ| = radius for scale; equal units."""
    fig = go.Figure([circle_trace(radius, name=f"|λ| = {radius:.3g} (largest)", points=200), *points])
    fig.add_hline(y=0, line=dict(color="#495057", width=1))
    fig.add_vline(x=0, line=dict(color="#495057", width=1))
    axes_layout(fig, title, "Re λ", "Im λ", height=460, margin=_MARGIN, legend_y=-0.18)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def _eigenvalue_points(lam: np.ndarray, name: str, marker: dict) -> go.Scatter:
    """One head's OV eigenvalues (sorted by modulus), hovered as λ1 (largest |λ|), λ2, ..."""
    number = np.arange(1, lam.size + 1)
    return complex_points(lam, name=name, marker=marker, label="λ%{customdata[1]}", extra=number)


def _radius(*eigvals: np.ndarray) -> float:
    lam = np.concatenate(eigvals)
    return float(np.abs(lam).max()) if lam.size else 1.0


def make_ov_eigenvalue_figure(circuits: CircuitSpectra, layer: int, head: int) -> go.Figure:
    """One head's OV eigenvalues in the complex plane, with the circle of radius max |lambda| for scale."""
    lam = circuits.ov_eigvals[layer, head]
    marker = dict(size=8, color=np.where(lam.real >= 0, "#c92a2a", "#1971c2"), line=dict(width=0.5))
    points = [_eigenvalue_points(lam, "eigenvalues of W_O W_V", marker)]
    score = float(circuits.copying_score[layer, head])
    return _eigenvalue_plane(
        points, _radius(lam), f"OV eigenvalues, layer {layer} head {head} (copying score {score:+.3f})"
    )


def make_ov_eigenvalue_pair_figure(comparison: CircuitComparison, layer: int, head: int) -> go.Figure:
    """One head's OV eigenvalues in A (blue circles) and B (red crosses) on one plane."""
    lams = [c.ov_eigvals[layer, head] for c in (comparison.a, comparison.b)]
    points = [
        _eigenvalue_points(lams[0], "A (loaded)", dict(size=9, color=A_LINE["color"], symbol="circle-open")),
        _eigenvalue_points(lams[1], "B (variant)", dict(size=7, color=B_LINE["color"], symbol="x-thin-open")),
    ]
    return _eigenvalue_plane(
        points, _radius(*lams), f"OV eigenvalues, layer {layer} head {head}: A ○ and B ×"
    )


def _sigma_trace(values: np.ndarray, name: str, color: str, dash: str = "solid") -> go.Scatter:
    """Singular values σ_1 >= σ_2 >= ... of a circuit against their index (zeros left out of the log axis)."""
    return go.Scatter(
        x=np.arange(1, values.size + 1),
        y=np.where(values > 0, values, np.nan),
        mode="lines+markers",
        name=name,
        line=dict(color=color, dash=dash),
        marker=dict(size=4),
        hovertemplate=name + "<br>i = %{x}<br>σ = %{y:.4g}<extra></extra>",
    )


def _sigma_figure(traces: list[go.Scatter], title: str, values: np.ndarray) -> go.Figure:
    fig = go.Figure(traces)
    x_title, y_title = "index i (largest first, at most d_head)", "singular value σᵢ (log scale)"
    axes_layout(fig, title, x_title, y_title, height=420, margin=_MARGIN, legend_y=-0.2)
    fig.update_yaxes(**log_axis(values))
    return fig


_CIRCUITS = (("qk_sigma", "W_QK = W_Q W_Kᵀ", "#7048e8"), ("ov_sigma", "W_OV = W_V W_O", "#e8590c"))


def make_circuit_singular_values_figure(circuits: CircuitSpectra, layer: int, head: int) -> go.Figure:
    """Singular values of W_QK and W_OV of one head (the d_head nonzero ones), log scale."""
    sigmas = [getattr(circuits, field)[layer, head] for field, _, _ in _CIRCUITS]
    traces = [_sigma_trace(v, name, color) for v, (_, name, color) in zip(sigmas, _CIRCUITS, strict=True)]
    title = f"Singular values of the QK and OV circuits, layer {layer} head {head}"
    return _sigma_figure(traces, title, np.concatenate(sigmas))


def make_circuit_singular_values_pair_figure(
    comparison: CircuitComparison, layer: int, head: int
) -> go.Figure:
    """Singular values of W_QK and W_OV of one head in A (solid) and B (dotted), log scale."""
    traces, values = [], []
    for who, circuits, dash in (("A", comparison.a, "solid"), ("B", comparison.b, "dot")):
        for field, name, color in _CIRCUITS:
            sigma = getattr(circuits, field)[layer, head]
            traces.append(_sigma_trace(sigma, f"{who}: {name}", color, dash))
            values.append(sigma)
    title = f"Singular values of the QK and OV circuits, layer {layer} head {head}: A and B"
    return _sigma_figure(traces, title, np.concatenate(values))
