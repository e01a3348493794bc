"""Figures of the Curvature page: top eigenvalues and their convergence, the stochastic trace, the spectral
density on a signed log axis, where the top eigenvector lives, the layer x {attention, MLP} grid and the
training what-if. Inputs are the result dataclasses of explorer.analysis.curvature and
explorer.spectra.curvature; nothing here needs torch or a model.

Signed log axis: x' = sign(x) log10(1 + |x| / c) with a linear scale c, so negative eigenvalues (saddle
directions) and the bulk near zero stay visible next to outliers orders of magnitude larger; ticks are
labelled with the eigenvalues themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:  # typing only: figures never need torch at run time
    from explorer.analysis.curvature import CurvatureGrid, TopEigen, TrainingRun
    from explorer.spectra.curvature import SpectralDensity, TraceEstimate

PART_LABELS = {"attention": "attention", "mlp": "MLP"}
EIGEN_COLORS = ("#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#c2255c", "#5c940d")
# The bulk is the central BULK_MASS of the density; eigenvalues above its upper edge are outliers.
BULK_MASS = 0.9
UNIT = "nats / unit²"


# ------------------------------------------------------------------------------------ signed log axis


def symlog(x, scale: float) -> np.ndarray:
    """sign(x) log10(1 + |x| / scale): linear near 0, logarithmic beyond ``scale``, odd in x."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log10(1.0 + np.abs(x) / scale)


def symlog_scale(values) -> float:
    """A linear scale for ``values``: 1e-4 of their largest magnitude (the bulk of a Hessian spectrum sits
    orders of magnitude below its outliers), never 0."""
    top = float(np.nanmax(np.abs(np.asarray(values, dtype=np.float64)))) if np.size(values) else 0.0
    return 1e-4 * top if top > 0 else 1.0


def symlog_ticks(low: float, high: float, scale: float) -> tuple[list[float], list[str]]:
    """Tick positions (in symlog units) and labels (the values) at 0 and signed powers of ten in [low, high]."""
    top = max(abs(low), abs(high), scale)
    # Powers of ten from the linear scale up: below it the axis is linear and they would crowd 0.
    exponents = range(int(np.ceil(np.log10(scale))), int(np.ceil(np.log10(top))) + 1)
    ticks = {0.0: "0"}
    for e in exponents:
        for sign in (1, -1):
            if low <= sign * 10.0**e <= high:
                ticks[sign * 10.0**e] = ("−" if sign < 0 else "") + (
                    f"{10.0**e:g}" if -3 <= e <= 3 else f"1e{e}"
                )
    values = sorted(ticks)
    while len(values) > 9:  # crowded: every other power (0 stays)
        values = [v for i, v in enumerate(values) if v == 0.0 or i % 2 == 0]
    return [float(symlog(v, scale)) for v in values], [ticks[v] for v in values]


# ------------------------------------------------------------------------------------ top eigenvalues


def make_top_eigen_figure(eigen: TopEigen) -> go.Figure:
    """The top-k Ritz values (descending) with their residual norms as error bars: for a symmetric operator
    an eigenvalue lies within ||r_i|| of each Ritz value theta_i."""
    k = len(eigen.eigenvalues)
    fig = go.Figure(
        go.Scatter(
            x=np.arange(1, k + 1),
            y=eigen.eigenvalues,
            error_y=dict(type="data", array=eigen.residual_norms, visible=True),
            mode="markers",
            marker=dict(size=11, color=[EIGEN_COLORS[i % len(EIGEN_COLORS)] for i in range(k)]),
            name="λ_i",
            customdata=eigen.residual_norms,
            hovertemplate="λ_%{x} = %{y:.6g}<br>residual ‖Hy − θy‖ = %{customdata:.2g}<extra></extra>",
        )
    )
    fig.update_layout(
        title=dict(text=f"Top {k} eigenvalues (error bars: residual norms)"),
        xaxis=dict(title="i", tickmode="linear", dtick=1),
        yaxis_title=f"λ_i ({UNIT})",
        height=340,
        showlegend=False,
        margin=dict(t=50, b=40),
    )
    return fig


def make_convergence_figure(eigen: TopEigen) -> go.Figure:
    """Lanczos convergence: the wanted Ritz values (top) and their residual norms (bottom, log scale)
    after every Hessian-vector product."""
    steps, k = eigen.history_ritz.shape
    x = np.arange(1, steps + 1)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for i in range(k):
        color = EIGEN_COLORS[i % len(EIGEN_COLORS)]
        fig.add_trace(
            go.Scatter(x=x, y=eigen.history_ritz[:, i], mode="lines", name=f"θ_{i + 1}", line=dict(color=color),
                       legendgroup=str(i)),
            row=1, col=1,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=x, y=eigen.history_residuals[:, i], mode="lines", name=f"‖r_{i + 1}‖",
                       line=dict(color=color, dash="dot"), legendgroup=str(i), showlegend=False),
            row=2, col=1,
        )  # fmt: skip
    fig.update_yaxes(title_text=f"Ritz value ({UNIT})", row=1, col=1)
    fig.update_yaxes(title_text="residual norm", type="log", row=2, col=1)
    fig.update_xaxes(title_text="Hessian-vector products", row=2, col=1)
    fig.update_layout(
        title=dict(text=f"Convergence: {eigen.n_matvec} products, "
                        f"{'converged' if eigen.converged else 'not converged (raise the budget)'}"),
        height=460,
        margin=dict(t=50, b=40),
    )  # fmt: skip
    return fig


def common_prefix(names) -> str:
    """The longest prefix ending in "." shared by every name ("encoder.layer.3." for one layer's
    parameters), so bars can be labelled by what differs."""
    names = list(names)
    if not names:
        return ""
    first = names[0]
    end = 0
    for i, char in enumerate(first):
        if any(len(n) <= i or n[i] != char for n in names[1:]):
            break
        if char == ".":
            end = i + 1
    return first[:end]


def make_group_mass_figure(eigen: TopEigen, max_groups: int = 40) -> go.Figure:
    """Where each top eigenvector lives: the share of its squared norm in each parameter group (model
    order; with more than ``max_groups`` groups, the groups holding most of the top eigenvector's mass)."""
    groups = list(eigen.groups)
    keep = np.arange(len(groups))
    if len(groups) > max_groups:
        keep = np.sort(np.argsort(eigen.group_mass[:, 0])[::-1][:max_groups])
    prefix = common_prefix(groups) if len(groups) > 1 else ""
    fig = go.Figure()
    for i in range(eigen.group_mass.shape[1]):
        fig.add_trace(
            go.Bar(
                x=[groups[g][len(prefix) :] for g in keep],
                y=eigen.group_mass[keep, i],
                name=f"eigenvector {i + 1} (λ = {eigen.eigenvalues[i]:.4g})",
                marker_color=EIGEN_COLORS[i % len(EIGEN_COLORS)],
                visible=True if i == 0 else "legendonly",
                hovertemplate="%{x}: %{y:.1%}<extra></extra>",
            )
        )
    shown = "" if len(keep) == len(groups) else f" ({len(keep)} of {len(groups)} groups, most mass first)"
    fig.update_layout(
        title=dict(text=f"Where the top eigenvector lives: share of its squared norm per group{shown}"),
        xaxis_title=f"{prefix}…" if prefix else None,
        yaxis=dict(title="share of ‖v‖²", tickformat=".0%", range=[0, 1.02]),
        barmode="group",
        height=420,
        margin=dict(t=80, b=40),
        legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
    )
    return fig


# --------------------------------------------------------------------------------------------- trace


def running_trace(trace: TraceEstimate) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, standard error) after each probe of the random part: ndarray (count,) each (the first
    standard error is NaN). For Hutch++ the exact deflated part, trace - mean(samples), is added."""
    samples = np.asarray(trace.samples, dtype=np.float64)
    count = np.arange(1, samples.size + 1)
    offset = trace.trace - samples.mean()
    mean = np.cumsum(samples) / count
    sq = np.cumsum(samples**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(count > 1, (sq - count * mean**2) / np.maximum(count - 1, 1), np.nan)
    stderr = np.sqrt(np.clip(var, 0.0, None)) / np.sqrt(count)
    stderr[0] = np.nan
    return offset + mean, stderr


def make_trace_figure(trace: TraceEstimate) -> go.Figure:
    """The trace estimate as probes accumulate, with a ±2 standard-error band, and the per-probe samples."""
    estimate, stderr = running_trace(trace)
    x = np.arange(1, estimate.size + 1)
    offset = trace.trace - float(np.mean(trace.samples))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=np.concatenate([x[1:], x[1:][::-1]]),
                   y=np.concatenate([(estimate + 2 * stderr)[1:], (estimate - 2 * stderr)[1:][::-1]]),
                   fill="toself", fillcolor="rgba(28,126,214,0.15)", line=dict(width=0),
                   name="± 2 standard errors", hoverinfo="skip")
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=x, y=offset + np.asarray(trace.samples), mode="markers", name="one probe",
                   marker=dict(color="#adb5bd", size=6))
    )  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=estimate, mode="lines+markers", name="running estimate",
                             line=dict(color="#1c7ed6")))  # fmt: skip
    method = "Hutch++" if trace.method == "hutch++" else "Hutchinson"
    fig.update_layout(
        title=dict(text=f"Trace by {method}: {trace.trace:.5g} ± {trace.stderr:.2g} "
                        f"({trace.samples.size} probes, {trace.n_matvec} products)"),
        xaxis_title="probes of the random part",
        yaxis_title=f"tr(H) estimate ({UNIT})",
        height=360,
        margin=dict(t=50, b=40),
    )  # fmt: skip
    return fig


# ------------------------------------------------------------------------------------------- density


@dataclass(frozen=True)
class DensityRegions:
    """Reading of an SLQ spectral density from its quadrature (nodes and weights), not from the broadened
    curve, whose Gaussians smear every eigenvalue by sigma. bulk: (low, high), the central BULK_MASS of the
    quadrature's mass (eigenvalue units). negative_mass: the quadrature's mass below -sigma, eigenvalues
    resolved as negative (saddle directions). outliers: ndarray of the given top eigenvalues above the bulk.

    What the broadening does below zero, told apart from what the quadrature says: negative_ritz and
    n_ritz: how many of the Ritz values (nodes, every probe) are below 0, of how many; negative_weight: their
    share of the weight; curve_below_zero: the share of the drawn curve's area below 0 (trapezoid on its
    grid), which a Gaussian of width sigma puts there even from nodes at or above 0."""

    bulk: tuple[float, float]
    negative_mass: float
    outliers: np.ndarray
    negative_ritz: int
    n_ritz: int
    negative_weight: float
    curve_below_zero: float


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value whose cumulative weight reaches q (weights summing to 1)."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][min(np.searchsorted(cumulative, q - 1e-12), values.size - 1)])


def density_regions(density: SpectralDensity, top_eigenvalues=()) -> DensityRegions:
    """Bulk interval, resolved negative mass and outliers of an SLQ density: every probe's nodes with their
    weights tau^2, pooled (each probe's weights sum to 1, so each probe counts once)."""
    nodes, weights = (
        np.asarray(density.nodes, dtype=np.float64),
        np.asarray(density.weights, dtype=np.float64),
    )
    ok = np.isfinite(nodes)
    values, mass = nodes[ok], weights[ok] / weights[ok].sum()
    tail = (1 - BULK_MASS) / 2
    low, high = _weighted_quantile(values, mass, tail), _weighted_quantile(values, mass, 1 - tail)
    negative = float(mass[values < -density.sigma].sum())
    top = np.asarray(top_eigenvalues, dtype=np.float64)
    below = values < 0
    return DensityRegions((low, high), negative, top[top > high], int(below.sum()), int(values.size),
                          float(mass[below].sum()), curve_area_below_zero(density))  # fmt: skip


def curve_area_below_zero(density: SpectralDensity) -> float:
    """The share of the broadened curve's area (trapezoid on its grid, the curve integrating to 1) at
    eigenvalues below 0, with the grid cell that straddles 0 cut at 0 by linear interpolation."""
    grid, dens = np.asarray(density.grid, dtype=np.float64), np.asarray(density.density, dtype=np.float64)
    if grid[0] >= 0:
        return 0.0
    if grid[-1] <= 0:
        return 1.0
    i = int(np.searchsorted(grid, 0.0))  # grid[i - 1] < 0 <= grid[i]
    at_zero = dens[i - 1] + (dens[i] - dens[i - 1]) * (0.0 - grid[i - 1]) / (grid[i] - grid[i - 1])
    area = np.trapezoid(np.append(dens[:i], at_zero), np.append(grid[:i], 0.0))
    return float(area / np.trapezoid(dens, grid))


def share_text(share: float) -> str:
    """A share as the page prints it: "0%" only when it is exactly 0, "<0.1%" when it would print as 0.0%."""
    if share == 0:
        return "0%"
    return "<0.1%" if share < 5e-4 else f"{share:.1%}"


def broadening_note(density: SpectralDensity, regions: DensityRegions) -> str:
    """Two short lines for the density chart: how much of the curve the broadening puts below 0, against
    how many Ritz values are negative and their weight."""
    return (
        f"Broadening σ = {density.sigma:.2g} puts {regions.curve_below_zero:.1%} of the curve below 0;<br>"
        f"Ritz values: {regions.negative_ritz} of {regions.n_ritz} below 0 ({share_text(regions.negative_weight)} "
        f"of the weight), {share_text(regions.negative_mass)} below −σ"
    )


# Values below this share of the peak are drawn at it (a log axis cannot show the Gaussians' far tails).
DENSITY_FLOOR = 1e-5


def make_density_figure(density: SpectralDensity, top_eigenvalues=()) -> go.Figure:
    """SLQ spectral density on a signed log eigenvalue axis, linear within the broadening sigma (the
    resolution), density on a log axis; the bulk shaded, the resolved negative side (saddle directions)
    tinted, and the top eigenvalues above the bulk marked as outliers."""
    grid, dens = np.asarray(density.grid), np.asarray(density.density)
    top = np.asarray(top_eigenvalues, dtype=np.float64)
    regions = density_regions(density, top)
    scale = max(density.sigma, symlog_scale(np.concatenate([grid, top])))
    x = symlog(grid, scale)
    floor = float(dens.max()) * DENSITY_FLOOR
    fig = go.Figure(
        go.Scatter(
            x=x, y=np.maximum(dens, floor), mode="lines", name="density", line=dict(color="#1c7ed6"),
            customdata=grid, hovertemplate="λ = %{customdata:.4g}<br>density %{y:.3g}<extra></extra>",
        )
    )  # fmt: skip
    lo = float(min(grid.min(), top.min() if top.size else grid.min()))
    hi = float(max(grid.max(), top.max() if top.size else grid.max()))
    fig.add_vrect(x0=float(symlog(regions.bulk[0], scale)), x1=float(symlog(regions.bulk[1], scale)),
                  fillcolor="rgba(47,158,68,0.15)", line_width=0, annotation_text=f"bulk ({BULK_MASS:.0%})",
                  annotation_position="top left")  # fmt: skip
    if regions.negative_mass >= 1e-3:  # what "0.1%" would show; less is not worth a region
        fig.add_vrect(x0=float(symlog(lo, scale)), x1=float(symlog(-density.sigma, scale)),
                      fillcolor="rgba(232,89,12,0.10)", line_width=0,
                      annotation_text=f"below −σ: {regions.negative_mass:.1%}",
                      annotation_position="bottom left")  # fmt: skip
    for i, value in enumerate(regions.outliers):
        fig.add_vline(
            x=float(symlog(value, scale)),
            line=dict(color="#c92a2a", dash="dash", width=1),
            annotation_text=f"λ{i + 1}",
            annotation_position="top" if i % 2 == 0 else "bottom",
        )  # fmt: skip (close lines alternate)
    if regions.curve_below_zero >= 1e-3 or regions.negative_ritz:
        fig.add_annotation(text=broadening_note(density, regions), xref="paper", yref="paper", x=0, y=-0.19,
                           xanchor="left", yanchor="top", align="left", showarrow=False,
                           font=dict(size=11, color="#868e96"),
                           name="broadening")  # fmt: skip
    tickvals, ticktext = symlog_ticks(lo, hi, scale)
    fig.update_layout(
        title=dict(text="Spectral density (SLQ), signed log axis"),
        xaxis=dict(title=f"eigenvalue λ ({UNIT}); linear within ±{scale:.2g}", tickvals=tickvals,
                   ticktext=ticktext),
        yaxis=dict(title="density per unit λ (log scale)", type="log", dtick=1),
        height=450,
        showlegend=False,
        margin=dict(t=60, b=100),
    )  # fmt: skip
    return fig


# --------------------------------------------------------------------------------------------- grid


def make_grid_figure(grid: CurvatureGrid) -> go.Figure:
    """λ_max (left) and trace (right) of every layer's attention and MLP as heatmaps, layer 0 at the top;
    colour on the signed log scale, the values in the cells and the hover. NaN cells are not computed yet."""
    parts = [PART_LABELS.get(p, p) for p in grid.parts]
    rows = [f"layer {int(layer)}" for layer in grid.layers]
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("λ_max", "trace (Hutchinson)"), horizontal_spacing=0.12
    )
    for col, (values, name) in enumerate(((grid.lambda_max, "λ_max"), (grid.trace, "trace")), start=1):
        finite = values[np.isfinite(values)]
        scale = symlog_scale(finite) if finite.size else 1.0
        text = np.where(np.isfinite(values), np.vectorize(lambda v: f"{v:.3g}")(values), "…")
        fig.add_trace(
            go.Heatmap(
                z=symlog(values, scale), x=parts, y=rows, customdata=values, text=text, texttemplate="%{text}",
                colorscale="Viridis", showscale=False, name=name, hoverongaps=False,
                hovertemplate="%{y} %{x}<br>" + name + " = %{customdata:.5g}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    done = int(np.isfinite(grid.lambda_max).sum())
    total = grid.lambda_max.size
    fig.update_layout(
        title=dict(text=f"Every layer's attention and MLP: λ_max and trace ({done} of {total} blocks)"),
        height=max(320, 60 + 22 * len(rows)),
        margin=dict(t=80, b=30),
    )
    return fig


# --------------------------------------------------------------------------------------- training


def make_training_figure(run: TrainingRun) -> go.Figure:
    """Loss (top, with its starting level dotted) and the trained block's λ_max (bottom) at every step,
    against the 2/η line."""
    steps = np.arange(run.loss.size)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1)
    fig.add_trace(go.Scatter(x=steps, y=run.loss, mode="lines+markers", name="loss (nats)",
                             line=dict(color="#1c7ed6")), row=1, col=1)  # fmt: skip
    # The start's level: a loss above it is a spike (what tells a catapult from a plain descent).
    fig.add_trace(go.Scatter(x=[steps[0], steps[-1]], y=[run.loss[0], run.loss[0]], mode="lines",
                             name=f"loss at the start ({run.loss[0]:.4g})", line=dict(color="#adb5bd", dash="dot")),
                  row=1, col=1)  # fmt: skip
    fig.add_trace(go.Scatter(x=steps, y=run.lambda_max, mode="lines+markers", name="λ_max",
                             line=dict(color="#e8590c")), row=2, col=1)  # fmt: skip
    reference = "GD's stability limit" if run.optimizer == "gd" else "for reference (Adam)"
    fig.add_trace(
        go.Scatter(x=[steps[0], steps[-1]], y=[run.threshold, run.threshold], mode="lines",
                   name=f"2/η = {run.threshold:.4g} ({reference})", line=dict(color="#c92a2a", dash="dash")),
        row=2, col=1,
    )  # fmt: skip
    fig.update_yaxes(title_text="loss (nats)", row=1, col=1)
    fig.update_yaxes(title_text=f"λ_max ({UNIT})", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1, tickmode="linear", dtick=max(1, steps.size // 10))
    name = "Gradient descent" if run.optimizer == "gd" else "Adam"
    fig.update_layout(
        title=dict(text=f"{name}, η = {run.eta:.3g}: loss and λ_max per step"),
        height=460,
        margin=dict(t=50, b=40),
        legend=dict(orientation="h", y=-0.18),
    )
    return fig


def make_training_spectra_figure(run: TrainingRun) -> go.Figure:
    """Stable rank (left) and heavy-tail α (right) of each trained matrix, before and after."""
    names = list(run.matrices)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("stable rank ‖W‖²_F / ‖W‖²₂", "power-law α (ESD tail)")
    )
    for col, (before, after) in enumerate(
        ((run.stable_rank_before, run.stable_rank_after), (run.alpha_before, run.alpha_after)), start=1
    ):
        fig.add_trace(go.Bar(x=names, y=before, name="before", marker_color="#adb5bd", legendgroup="before",
                             showlegend=col == 1), row=1, col=col)  # fmt: skip
        fig.add_trace(go.Bar(x=names, y=after, name="after", marker_color="#1c7ed6", legendgroup="after",
                             showlegend=col == 1), row=1, col=col)  # fmt: skip
    fig.update_layout(
        title=dict(text="Weight spectra of the trained matrices, before and after"),
        barmode="group",
        height=380,
        margin=dict(t=70, b=40),
    )
    return fig
