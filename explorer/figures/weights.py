"""Figures of weight spectra: the model-wide metric heatmap, a matrix's scree plot and ESD (with the shuffled
matrix's ESD over it), one matrix type across layers, and WeightWatcher's metrics per layer. Input:
``explorer.analysis.weights.WeightSpectra`` and, for the randomized comparison, ``RandomizedSpectra``."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from explorer.analysis.weights import (
    LOG_METRICS,
    METRICS,
    WW_METRICS,
    RandomizedSpectra,
    WeightSpectra,
    ww_metric,
)
from explorer.labels import weight_kind_label as kind_label
from explorer.spectra.heavy_tail import mp_density

OUTSIDE = "outside blocks"


def matrix_label(spectra: WeightSpectra, i: int) -> str:
    """Short readable name: ``L3 attention W_Q (576×576)`` or ``token embedding (49152×576)``."""
    m, n = (int(v) for v in spectra.shapes[i])
    layer = int(spectra.layers[i])
    where = f"L{layer} " if layer >= 0 else ""
    label = kind_label(spectra.kinds[i])
    if spectra.kinds[i] == "other":
        label = spectra.names[i].rsplit(".", 1)[-1] if "." in spectra.names[i] else spectra.names[i]
    return f"{where}{label} ({m}×{n})"


def _short_name(name: str) -> str:
    parts = name.replace(":", ".").split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 else name


def _robust_range(values: np.ndarray) -> tuple[float, float, bool]:
    """Colour range that keeps a few outliers from washing out the rest: [q1 - 3 IQR, q3 + 3 IQR] clipped
    to the data. Returns (low, high, clipped)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0, False
    lo, hi = float(finite.min()), float(finite.max())
    q1, q3 = np.percentile(finite, [25, 75])
    low, high = max(lo, q1 - 3 * (q3 - q1)), min(hi, q3 + 3 * (q3 - q1))
    if high <= low:
        return lo, hi, False
    return low, high, (low > lo or high < hi)


def make_weight_heatmap_figure(
    spectra: WeightSpectra,
    metric: str,
    *,
    log_color: bool | None = None,
    values: np.ndarray | None = None,
    label: str | None = None,
    diverging: bool = False,
) -> go.Figure:
    """Layer x matrix-type heatmap of one metric: a row per block, plus a row "outside blocks" whose
    columns are the embeddings, the LM head and any other matrix (one column each).

    Args:
        spectra: the model's weight spectra.
        metric: a key of ``analysis.weights.METRICS``.
        log_color: colour by log10 of the value (default: for norms and condition numbers).
        values, label: (matrix,) values to draw instead of the metric's, and their name (a comparison's
            differences, in ``spectra``'s matrix order).
        diverging: a red-blue scale symmetric about 0 (for differences; never log-coloured).
    Colours are clipped to a robust range (outliers show at the end of the scale; hover shows the value).
    """
    label = METRICS[metric][0] if label is None else label
    values = spectra.metric(metric) if values is None else np.asarray(values, dtype=np.float64)
    log_color = (metric in LOG_METRICS if log_color is None else log_color) and not diverging
    columns: list[tuple[str, str]] = []  # (key, axis label)
    cell: dict[int, tuple[int, int]] = {}
    rows = [str(layer) for layer in range(spectra.n_layers)]
    in_blocks = [
        k
        for k in spectra.kinds_present
        if any(spectra.kinds[i] == k for i in np.flatnonzero(spectra.layers >= 0))
    ]
    columns += [(k, kind_label(k)) for k in in_blocks]
    outside = [i for i in range(len(spectra)) if spectra.layers[i] < 0]
    if outside:
        rows.append(OUTSIDE)
    for i in outside:
        kind = spectra.kinds[i]
        same_kind = sum(spectra.kinds[j] == kind for j in outside)
        text = kind_label(kind) if kind != "other" and same_kind == 1 else _short_name(spectra.names[i])
        columns.append((f"outside:{spectra.names[i]}", text))
        cell[i] = (len(rows) - 1, len(columns) - 1)
    keys = [key for key, _ in columns]
    for i in range(len(spectra)):
        if spectra.layers[i] >= 0:
            cell[i] = (int(spectra.layers[i]), keys.index(spectra.kinds[i]))
    z = np.full((len(rows), len(columns)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for i, (r, c) in cell.items():
        if np.isnan(z[r, c]):  # the first, should a block hold two matrices of one kind
            z[r, c] = values[i]
            text[r, c] = f"{spectra.names[i]}<br>{matrix_label(spectra, i)}"
    shown = np.where(z > 0, np.log10(np.where(z > 0, z, 1.0)), np.nan) if log_color else z
    low, high, clipped = _robust_range(shown)
    if diverging:  # symmetric about 0, so white means "no change"
        high = max(abs(low), abs(high)) or 1.0
        low = -high
    title = ("log₁₀ " if log_color else "") + label + ("<br>(clipped)" if clipped else "")
    fig = go.Figure(
        go.Heatmap(
            z=shown,
            x=[name for _, name in columns],
            y=rows,
            zmin=low,
            zmax=high,
            customdata=np.dstack([z, text]),
            colorscale="RdBu" if diverging else "Viridis",
            reversescale=diverging,
            colorbar=dict(title=title),
            hovertemplate="layer %{y} · %{x}<br>%{customdata[1]}<br>"
            + label
            + " = %{customdata[0]:.4g}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title=f"{label} of every weight matrix",
        xaxis_title="matrix type",
        yaxis_title="layer",
        height=max(440, 22 * len(rows) + 200),
        margin=dict(l=60, r=20, t=50, b=60),
    )
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(type="category", side="bottom", tickangle=-30)
    return fig


def log_axis(values: np.ndarray) -> dict:
    """Log-axis settings: decade ticks written as powers of ten once the data spans two decades or more."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size and np.log10(positive.max() / positive.min()) >= 2:
        return dict(type="log", dtick=1, exponentformat="power")
    return dict(type="log", dtick="D2", exponentformat="power")  # 1, 2, 5 within a decade


def _line(x, y, name: str, line: dict, hover: str | None = None, **trace) -> go.Scatter:
    """A named line trace; ``hover``: its hover template (None: Plotly's default). Other settings pass through."""
    return go.Scatter(x=x, y=y, mode="lines", name=name, line=line, hovertemplate=hover, **trace)


def make_scree_figure(spectra: WeightSpectra, index: int) -> go.Figure:
    """Scree plot of one matrix: sigma_i on a log axis, cumulative energy on a second axis, k_90 and k_99
    marked, and the break-even rank mn/(m+n) of a rank-k factorisation."""
    S = spectra.sigma[index]
    k = np.arange(1, S.size + 1)
    energy = np.cumsum(S**2) / max(float((S**2).sum()), np.finfo(float).tiny)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    positive = S > 0
    sigma_hover = "i = %{x}<br>σ = %{y:.4g}<extra></extra>"
    sigma = _line(k[positive], S[positive], "σᵢ", dict(color="#3b5bdb", width=2), sigma_hover)
    fig.add_trace(sigma, secondary_y=False)
    energy_line = dict(color="#e8590c", width=2, dash="dot")
    energy_hover = "k = %{x}<br>%{y:.2%} of Σσ²<extra></extra>"
    fig.add_trace(_line(k, energy, "cumulative energy Σσ²", energy_line, energy_hover), secondary_y=True)
    marks = [
        (float(spectra.k90[index]), "k₉₀", "#2b8a3e", "dash"),
        (float(spectra.k99[index]), "k₉₉", "#2b8a3e", "dashdot"),
        (spectra.break_even_rank(index), "break-even mn/(m+n)", "#c92a2a", "solid"),
    ]
    for x, name, color, dash in marks:
        fig.add_vline(x=x, line=dict(color=color, dash=dash, width=1.5))
        label = f"{name} = {x:.0f}" if name.startswith("k") else f"{name} = {x:.1f}"
        # A legend entry for the vertical line (shapes have none).
        fig.add_trace(_line([x], [None], label, dict(color=color, dash=dash), hoverinfo="skip"))
    fig.update_yaxes(title_text="singular value σᵢ (log scale)", secondary_y=False, **log_axis(S))
    fig.update_yaxes(
        title_text="cumulative energy",
        range=[0, 1.02],
        dtick=0.2,
        tickformat=".0%",
        showgrid=False,
        secondary_y=True,
    )
    fig.update_xaxes(title_text="index i (largest first)", range=[0, S.size + 1])
    fig.update_layout(
        title=f"Scree plot: {matrix_label(spectra, index)}",
        height=420,
        legend=dict(orientation="h", y=-0.2),
        margin=dict(l=60, r=60, t=60, b=60),
        hovermode="x unified",
    )
    return fig


def make_esd_figure(
    spectra: WeightSpectra, index: int, *, bins: int = 60, randomized: RandomizedSpectra | None = None
) -> go.Figure:
    """Log-log histogram (density) of the ESD of W^T W / N with the fitted power law from x_min, the
    Marchenko-Pastur density of a random matrix of the same shape and element variance, and its edge.

    randomized: when given, the ESD of W with its entries shuffled is drawn over the real one on the same bins
    (extended to its range), with the trap edge (lambda_+ plus the Tracy-Widom margin) and each trap marked."""
    lam = spectra.esd(index)
    lam = lam[lam > 0]
    shuffled = None
    if randomized is not None:
        shuffled = randomized.esd(index)
        shuffled = shuffled[shuffled > 0]
    shape = tuple(int(v) for v in spectra.shapes[index])
    fig = go.Figure()
    if lam.size == 0:
        fig.update_layout(title="ESD: the matrix is zero")
        return fig
    lo, hi = float(lam.min()), float(lam.max())
    if shuffled is not None and shuffled.size:
        lo, hi = min(lo, float(shuffled.min())), max(hi, float(shuffled.max()))
    edges = np.geomspace(lo, hi * (1 + 1e-9), bins + 1) if hi > lo else np.array([lo * 0.9, hi * 1.1])
    counts, edges = np.histogram(lam, bins=edges)
    density = counts / (lam.size * np.diff(edges))
    # A step outline (bars misbehave on log axes); empty bins break the line instead of dropping to 0.
    x = np.repeat(edges, 2)[1:-1]
    y = np.repeat(np.where(counts > 0, density, np.nan), 2)
    hover = np.repeat(np.stack([edges[:-1], edges[1:], counts], axis=1), 2, axis=0)
    bin_hover = (
        "λ in [%{customdata[0]:.3g}, %{customdata[1]:.3g}]<br>%{customdata[2]} eigenvalues"
        "<br>density %{y:.3g}<extra></extra>"
    )
    blue = dict(color="#3b5bdb", width=2)
    fig.add_trace(_line(x, y, "ESD histogram", blue, bin_hover, fill="none", customdata=hover))
    if shuffled is not None and shuffled.size:
        r_counts, _ = np.histogram(shuffled, bins=edges)
        r_density = r_counts / (shuffled.size * np.diff(edges))
        r_y = np.repeat(np.where(r_counts > 0, r_density, np.nan), 2)
        r_hover = np.repeat(np.stack([edges[:-1], edges[1:], r_counts], axis=1), 2, axis=0)
        purple = dict(color="#ae3ec9", width=2.5)
        fig.add_trace(
            _line(
                x,
                r_y,
                "ESD of W shuffled",
                purple,
                bin_hover.replace("eigenvalues", "shuffled eigenvalues"),
                customdata=r_hover,
            )
        )
        trap_edge = float(randomized.trap_edge[index])
        fig.add_vline(x=trap_edge, line=dict(color="#9c36b5", dash="dash", width=1))
        fig.add_annotation(
            x=np.log10(trap_edge), y=0.86, yref="paper", text="trap edge", showarrow=False, xanchor="left"
        )
        traps = randomized.traps(index)
        if traps.size:
            fig.add_trace(
                go.Scatter(
                    x=traps,
                    y=np.full(traps.size, float(np.nanmin(np.where(counts > 0, density, np.nan)))),
                    mode="markers",
                    name=f"correlation traps ({traps.size})",
                    marker=dict(color="#9c36b5", symbol="x", size=11),
                    hovertemplate="trap λ = %{x:.4g}<extra></extra>",
                )
            )
    var = float(spectra.element_variance[index])
    edge = float(spectra.mp_edge[index])
    grid = np.geomspace(lo, max(hi, edge) * 1.01, 400)
    mp = mp_density(grid, shape, var)
    mp_name = "Marchenko-Pastur (random, same shape and variance)"
    mp_hover = "λ = %{x:.3g}<br>MP density %{y:.3g}<extra></extra>"
    fig.add_trace(_line(grid[mp > 0], mp[mp > 0], mp_name, dict(color="#868e96", width=2), mp_hover))
    alpha, xmin = float(spectra.alpha[index]), float(spectra.alpha_xmin[index])
    if np.isfinite(alpha) and np.isfinite(xmin):
        tail_share = float(spectra.alpha_n_tail[index]) / lam.size
        x = np.geomspace(xmin, hi, 100)
        y = tail_share * (alpha - 1) / xmin * (x / xmin) ** (-alpha)
        fit_name = f"power law α = {alpha:.2f} (KS D = {float(spectra.alpha_ks[index]):.3f})"
        fit_hover = "λ = %{x:.3g}<br>fit density %{y:.3g}<extra></extra>"
        fig.add_trace(_line(x, y, fit_name, dict(color="#e8590c", width=3), fit_hover))
        fig.add_vline(x=xmin, line=dict(color="#e8590c", dash="dot", width=1))
        fig.add_annotation(
            x=np.log10(xmin), y=1, yref="paper", text="x_min", showarrow=False, yanchor="bottom"
        )
    fig.add_vline(x=edge, line=dict(color="#212529", dash="dash", width=1.5))
    fig.add_annotation(
        x=np.log10(edge), y=0.93, yref="paper", text="MP edge λ₊", showarrow=False, xanchor="left"
    )
    fig.update_xaxes(title_text="eigenvalue λ of WᵀW / N (log scale)", **log_axis(lam))
    fig.update_yaxes(title_text="density (log scale)", **log_axis(density[counts > 0]))
    fig.update_layout(
        title=f"Empirical spectral density: {matrix_label(spectra, index)}",
        height=420,
        legend=dict(orientation="h", y=-0.22),
        margin=dict(l=60, r=20, t=60, b=60),
    )
    return fig


def make_layer_scree_figure(spectra: WeightSpectra, kind: str, *, normalise: bool = True) -> go.Figure:
    """Scree curves of every matrix of one type, one line per layer, coloured by depth (colour bar: layer).

    normalise: divide each curve by its sigma_1, so shapes compare across layers whatever their scale."""
    idx = spectra.of_kind(kind)
    fig = go.Figure()
    layers = [int(spectra.layers[i]) for i in idx]
    top = max(max(layers, default=0), 1)
    for i, layer in zip(idx, layers, strict=True):
        S = spectra.sigma[i]
        y = S / S[0] if normalise and S.size and S[0] > 0 else S
        name = f"layer {layer}" if layer >= 0 else spectra.names[i]
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, S.size + 1),
                y=np.where(y > 0, y, np.nan),
                mode="lines",
                name=name,
                showlegend=False,
                line=dict(color=sample_colorscale("Viridis", [max(layer, 0) / top])[0], width=1.5),
                hovertemplate=name
                + "<br>i = %{x}<br>"
                + ("σ/σ₁" if normalise else "σ")
                + " = %{y:.4g}<extra></extra>",
            )
        )
    curves = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data]) if fig.data else np.ones(1)
    # An invisible trace carries the colour bar that says which colour is which layer.
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            showlegend=False,
            hoverinfo="skip",
            marker=dict(
                color=[0],
                cmin=0,
                cmax=top,
                colorscale="Viridis",
                showscale=True,
                colorbar=dict(title="layer"),
            ),
        )
    )
    fig.update_xaxes(title_text="index i (largest first)")
    fig.update_yaxes(title_text=("σᵢ / σ₁" if normalise else "σᵢ") + " (log scale)", **log_axis(curves))
    fig.update_layout(
        title=f"{kind_label(kind)} across layers" + (" (each curve divided by its σ₁)" if normalise else ""),
        height=440,
        margin=dict(l=60, r=20, t=60, b=50),
    )
    return fig


def make_ww_layer_figure(
    spectra: WeightSpectra, metric: str, randomized: RandomizedSpectra | None = None
) -> go.Figure:
    """One of WeightWatcher's metrics (a key of ``analysis.weights.WW_METRICS``) against the layer, one line per
    matrix type of the blocks (matrices outside the blocks are in the table, not here). Randomized metrics
    without ``randomized`` give an empty chart that says so."""
    label = WW_METRICS[metric][0]
    values = ww_metric(spectra, randomized, metric)
    fig = go.Figure()
    in_blocks = np.flatnonzero(spectra.layers >= 0)
    kinds = [k for k in spectra.kinds_present if any(spectra.kinds[i] == k for i in in_blocks)]
    colors = sample_colorscale("Turbo", list(np.linspace(0.05, 0.95, max(len(kinds), 1))))
    for kind, color in zip(kinds, colors, strict=False):
        idx = [i for i in spectra.of_kind(kind) if spectra.layers[i] >= 0]
        fig.add_trace(
            go.Scatter(
                x=[int(spectra.layers[i]) for i in idx],
                y=values[idx],
                mode="lines+markers",
                name=kind_label(kind),
                line=dict(color=color, width=1.5),
                marker=dict(size=6),
                customdata=[spectra.names[i] for i in idx],
                hovertemplate="layer %{x} · %{customdata}<br>" + label + " = %{y:.4g}<extra></extra>",
            )
        )
    title = f"{label} per layer"
    if not np.isfinite(values).any():
        title += " (not computed yet)" if randomized is None else " (no value)"
    fig.update_layout(
        title=title,
        height=420,
        legend=dict(orientation="h", y=-0.22),
        margin=dict(l=60, r=20, t=60, b=60),
        hovermode="closest",
    )
    fig.update_xaxes(title_text="layer", dtick=max(1, spectra.n_layers // 15))
    fig.update_yaxes(title_text=label)
    return fig
