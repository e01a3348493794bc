"""Figures for the attention page: the layer x head grid, one head's attention, and its spectra."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.figures.common import circle_trace, equal_axes

if TYPE_CHECKING:
    from explorer.analysis.attention import AttentionGrid, HeadSpectrum

# Values below this are drawn at it on logarithmic axes (exact zeros have no logarithm).
LOG_FLOOR = 1e-12
GRID_CLICK_HINT = "Click a cell to select that head."


def make_attention_grid_figure(
    grid: AttentionGrid,
    metric: str,
    *,
    label: str,
    selected: tuple[int, int] | None = None,
    low_is_notable: bool = False,
) -> go.Figure:
    """Heatmap of one metric over layers (rows, layer 0 on top) and heads (columns).

    An invisible scatter point sits on every cell (heatmaps cannot be selected in plotly, scatter points can), so
    a click selects that head; it also carries the hover text. Collapsed heads are marked with x, attention sinks
    with a ring; the selected head is outlined.

    Args:
        grid: AttentionGrid; ``metric`` names one of its (layer, head) arrays; ``label`` is the colorbar title.
    """
    values = np.asarray(grid.metric(metric), dtype=float)
    n_layers, n_heads = values.shape
    layers, heads = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    collapsed, sink = np.asarray(grid.collapsed), np.asarray(grid.sink)
    notes = np.where(
        collapsed & sink, "collapsed, sink", np.where(collapsed, "collapsed", np.where(sink, "sink", ""))
    )
    custom = np.stack(
        [
            layers.ravel(),
            heads.ravel(),
            values.ravel(),
            np.asarray(grid.lambda2_abs).ravel(),
            np.asarray(grid.entropy).ravel(),
            np.asarray(grid.stable_rank).ravel(),
            np.asarray(grid.sink_mass).ravel(),
        ],
        axis=-1,
    )
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=values,
            x=np.arange(n_heads),
            y=np.arange(n_layers),
            colorscale="Viridis",
            reversescale=low_is_notable,
            colorbar=dict(title=dict(text=label, side="right")),
            hoverinfo="skip",
            name=label,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=heads.ravel(),
            y=layers.ravel(),
            mode="markers",
            marker=dict(symbol="square", size=14, color="rgba(0,0,0,0)"),
            selected=dict(marker=dict(opacity=1)),
            unselected=dict(marker=dict(opacity=1)),
            customdata=custom,
            text=notes.ravel(),
            hovertemplate=(
                "layer %{customdata[0]:d}, head %{customdata[1]:d}<br>"
                f"{label}: %{{customdata[2]:.4g}}<br>"
                "|λ₂| %{customdata[3]:.3f} · entropy %{customdata[4]:.2f}<br>"
                "stable rank %{customdata[5]:.2f} · sink mass %{customdata[6]:.2f}"
                "<br>%{text}<extra></extra>"
            ),
            showlegend=False,
            name="heads",
        )
    )
    # White marks with a dark outline read on every colour of the scale (and in the legend).
    for mask, symbol, size, name in (
        (sink, "circle", 11, "attention sink (≥ half on token 0)"),
        (collapsed, "x", 8, "collapsed (rank ≈ 1)"),
    ):
        if mask.any():
            fig.add_trace(
                go.Scatter(
                    x=heads[mask],
                    y=layers[mask],
                    mode="markers",
                    marker=dict(symbol=symbol, size=size, color="white", line=dict(width=1, color="#212529")),
                    hoverinfo="skip",
                    name=name,
                )
            )
    if selected is not None:
        layer, head = selected
        fig.add_shape(
            type="rect",
            x0=head - 0.5,
            x1=head + 0.5,
            y0=layer - 0.5,
            y1=layer + 0.5,
            line=dict(color="#ff4b4b", width=3),
        )
    fig.update_layout(
        title=f"{label} of every head ({GRID_CLICK_HINT.lower()})",
        xaxis_title="head",
        yaxis_title="layer",
        height=max(280, min(900, 60 + 24 * n_layers)),
        margin=dict(l=50, r=20, t=50, b=40),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right", bgcolor="rgba(0,0,0,0)"),
        clickmode="event+select",
        dragmode=False,
        plot_bgcolor="white",
    )
    fig.update_xaxes(tickmode="linear", dtick=1 if n_heads <= 16 else 2, range=[-0.5, n_heads - 0.5])
    fig.update_yaxes(
        range=[n_layers - 0.5, -0.5], tickmode="linear", dtick=1 if n_layers <= 16 else 2, showgrid=False
    )
    return fig


def make_attention_heatmap_figure(
    attention: np.ndarray,
    labels: list[str],
    *,
    title: str,
    log_color: bool = False,
) -> go.Figure:
    """Attention matrix of one head: queries down (row i reads from the keys along it), keys across.

    Args:
        attention: (query, key) row-stochastic.
        labels: list of length ``token``, unique axis labels.
        log_color: colour by log10(a) (floored at 1e-6), so weak attention is visible next to a sink.
    """
    A = np.asarray(attention, dtype=float)
    z = np.log10(np.maximum(A, 1e-6)) if log_color else A
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            customdata=A,
            colorscale="Blues" if not log_color else "Viridis",
            zmin=-6 if log_color else 0,
            zmax=0 if log_color else max(float(A.max()), 1e-12),
            colorbar=dict(title="log₁₀ a" if log_color else "attention"),
            hovertemplate="query %{y}<br>key %{x}<br>attention %{customdata:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="key (attended to)",
        yaxis_title="query (attending)",
        height=560,
        margin=dict(l=60, r=20, t=50, b=60),
    )
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def make_eigenvalue_plane_figure(eigvals: np.ndarray, *, title: str, triangular: bool = False) -> go.Figure:
    """Eigenvalues in the complex plane with the unit circle (every eigenvalue of a row-stochastic matrix lies in
    the closed unit disc). Hover shows the index (by modulus) and the modulus.

    Args:
        eigvals: (token,) complex, sorted by modulus descending.
        triangular: the head is lower-triangular (eigenvalues = diagonal entries): said in the hover text.
    """
    lam = np.asarray(eigvals, dtype=complex)
    fig = go.Figure()
    fig.add_trace(circle_trace(points=361))
    what = "diagonal entry a_ii" if triangular else "eigenvalue"
    fig.add_trace(
        go.Scatter(
            x=lam.real,
            y=lam.imag,
            mode="markers",
            marker=dict(
                size=7,
                color=np.abs(lam),
                colorscale="Plasma",
                cmin=0,
                cmax=1,
                colorbar=dict(title="|λ|"),
                line=dict(width=0.5, color="#343a40"),
            ),
            customdata=np.stack([np.arange(1, lam.size + 1), np.abs(lam)], axis=-1),
            hovertemplate=(
                f"λ%{{customdata[0]:d}} ({what})<br>"
                "%{x:.4f} %{y:+.4f}i<br>|λ| = %{customdata[1]:.4f}<extra></extra>"
            ),
            name="eigenvalues",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="Re λ",
        yaxis_title="Im λ",
        height=460,
        margin=dict(l=50, r=20, t=50, b=40),
        showlegend=False,
    )
    equal_axes(fig, 1.1)
    return fig


def _log_floor(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(values, dtype=float), LOG_FLOOR)


def make_spectrum_figure(
    eigvals: np.ndarray, singular_values: np.ndarray, *, title: str, log_y: bool = True
) -> go.Figure:
    """Sorted |λ| (left) and singular values (right) against their index, side by side.

    Args:
        eigvals: (token,) complex, sorted by modulus descending. singular_values: (token,) descending.
        log_y: logarithmic y axes (values below LOG_FLOOR are drawn at it).
    """
    moduli = np.abs(np.asarray(eigvals, dtype=complex))
    sigma = np.asarray(singular_values, dtype=float)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("eigenvalue moduli |λᵢ|", "singular values σᵢ"),
        horizontal_spacing=0.1,
    )
    for col, values, name, color in ((1, moduli, "|λ|", "#3b5bdb"), (2, sigma, "σ", "#e8590c")):
        shown = _log_floor(values) if log_y else values
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, values.size + 1),
                y=shown,
                customdata=values,
                mode="lines+markers",
                marker=dict(size=4, color=color),
                line=dict(color=color, width=1.5),
                name=name,
                hovertemplate=f"i = %{{x}}<br>{name} = %{{customdata:.4g}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="index i (sorted, descending)", row=1, col=col)
        fig.update_yaxes(
            title_text=name + (" (log scale)" if log_y else ""),
            type="log" if log_y else "linear",
            exponentformat="power",
            row=1,
            col=col,
        )
    fig.update_layout(title=title, height=380, margin=dict(l=50, r=20, t=80, b=40), showlegend=False)
    return fig


def make_symmetric_laplacian_figure(
    sym_eigvals: np.ndarray, laplacian_eigvals: np.ndarray, *, title: str
) -> go.Figure:
    """Eigenvalues of the symmetric part (A + Aᵀ)/2 (left; real) and of the attention Laplacian L = D − A (right;
    real part, imaginary part in the hover for bidirectional heads), each sorted descending.
    """
    sym = np.asarray(sym_eigvals, dtype=float)
    lap = np.asarray(laplacian_eigvals, dtype=complex)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("symmetric part (A + Aᵀ)/2", "Laplacian L = D − A (LapEigvals)"),
        horizontal_spacing=0.1,
    )
    fig.add_trace(
        go.Scatter(
            x=np.arange(1, sym.size + 1),
            y=sym,
            mode="lines+markers",
            marker=dict(size=4, color="#2b8a3e"),
            line=dict(color="#2b8a3e", width=1.5),
            name="S",
            hovertemplate="i = %{x}<br>eigenvalue %{y:.4g}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=np.arange(1, lap.size + 1),
            y=lap.real,
            customdata=lap.imag,
            mode="lines+markers",
            marker=dict(size=4, color="#862e9c"),
            line=dict(color="#862e9c", width=1.5),
            name="L",
            hovertemplate="i = %{x}<br>Re %{y:.4g}<br>Im %{customdata:.3g}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="index i (sorted, descending)")
    fig.update_yaxes(title_text="eigenvalue of S", row=1, col=1)
    fig.update_yaxes(title_text="Re eigenvalue of L", row=1, col=2)
    fig.update_layout(title=title, height=380, margin=dict(l=50, r=20, t=80, b=40), showlegend=False)
    return fig


def head_title(spectrum: HeadSpectrum, what: str) -> str:
    """A figure title naming the head and the temperature, e.g. "Layer 2 · head 5 · τ = 0.5: eigenvalues"."""
    tau = "" if spectrum.tau == 1 else f" · τ = {spectrum.tau:g}"
    return f"Layer {spectrum.layer} · head {spectrum.head}{tau}: {what}"
