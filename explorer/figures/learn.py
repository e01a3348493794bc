"""Figures of the Learn page's walkthroughs: one builder per figure, results of explorer.analysis.teaching in."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.analysis.teaching import (
    GradientDescent,
    LanczosRun,
    LowRank,
    Plane2x2,
    PowerIteration,
    TemperatureSweep,
    TransientGrowth,
)
from explorer.figures.common import (
    CELL_HOVER,
    axes_layout,
    circle_trace,
    diverging_heatmap,
    equal_axes,
    square_cells,
    unit_modulus_marker,
)

BEFORE = "#b8bec9"
AFTER = "#3b6fd4"
EIGEN = "#1a9850"
ACCENT = "#e8590c"
SECOND = "#7b3fb8"
HIGHLIGHT = "#d62728"  # the reader's choice or a single notable point
GRAY_SCALE = [[0.0, "black"], [1.0, "white"]]
_MARGIN = (50, 20, 50, 40)  # left, right, top, bottom (px) of the line plots
_PLANE_MARGIN = (40, 20, 50, 40)  # of the equal-axes planes


def _segments(points: np.ndarray) -> tuple[list, list]:
    """(lines, 2, p) segments -> x, y lists with None between lines (one trace for many lines)."""
    xs, ys = [], []
    for line in points:
        xs += [*line[0], None]
        ys += [*line[1], None]
    return xs, ys


def format_complex(z: complex) -> str:
    z = complex(z)
    if abs(z.imag) < 1e-12:
        return f"{z.real:.4g}"
    return f"{z.real:.4g} {'+' if z.imag >= 0 else '−'} {abs(z.imag):.4g}i"


def _highlight(x: float, y: float, name: str, *, symbol: str, size: int = 13) -> go.Scatter:
    """One point drawn large in the highlight colour: where the reader's choice lands, or a notable value."""
    return go.Scatter(
        x=[x], y=[y], mode="markers", marker=dict(size=size, color=HIGHLIGHT, symbol=symbol), name=name
    )


# ----------------------------------------------------------------------------------------------- 1. plane


def make_plane_figure(result: Plane2x2) -> go.Figure:
    """The plane before (grey grid, dashed unit circle) and after M (blue grid, orange ellipse), with the
    images of e1, e2 as arrows and the real eigenvector lines (green). Equal axes, unitless coordinates."""
    fig = go.Figure()
    gx, gy = _segments(result.grid)
    fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", line=dict(color=BEFORE, width=1), name="grid before"))
    ix, iy = _segments(result.grid_image)
    fig.add_trace(go.Scatter(x=ix, y=iy, mode="lines", line=dict(color=AFTER, width=1), name="grid after M"))
    fig.add_trace(
        go.Scatter(
            x=result.circle[0],
            y=result.circle[1],
            mode="lines",
            line=dict(color="#555", dash="dash", width=1.5),
            name="unit circle",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=result.circle_image[0],
            y=result.circle_image[1],
            mode="lines",
            line=dict(color=ACCENT, width=3),
            name="M × unit circle",
        )
    )
    reach = float(np.abs(result.grid_image).max()) if result.grid_image.size else 1.0
    half = float(np.clip(max(reach, 1.6) * 1.05, 1.6, 8.0))
    for i, vec in enumerate(result.eigvecs):
        lam = result.eigvec_values[i]
        fig.add_trace(
            go.Scatter(
                x=[-half * 2 * vec[0], half * 2 * vec[0]],
                y=[-half * 2 * vec[1], half * 2 * vec[1]],
                mode="lines",
                line=dict(color=EIGEN, width=2.5, dash="longdash"),
                name=f"eigenvector line, λ = {lam:.3g}"
                if result.kind != "scalar"
                else f"every line (λ = {lam:.3g})",
                showlegend=result.kind != "scalar" or i == 0,
            )
        )
    for j in range(2):  # images of e1, e2 (the columns of M) as arrows, labelled at their tips
        col = result.matrix[:, j]
        fig.add_annotation(
            x=col[0], y=col[1], ax=0, ay=0, xref="x", yref="y", axref="x", ayref="y", text="",
            showarrow=True, arrowhead=3, arrowwidth=2, arrowcolor=AFTER,
        )  # fmt: skip
    tips = result.matrix * 1.12
    fig.add_trace(
        go.Scatter(
            x=tips[0],
            y=tips[1],
            mode="text",
            text=["M e₁", "M e₂"],
            textfont=dict(color=AFTER, size=14),
            showlegend=False,
            hoverinfo="skip",
        )
    )
    title = "M acting on the plane: grey before, blue and orange after"
    axes_layout(fig, title, "x", "y", height=520, margin=_PLANE_MARGIN, legend_y=-0.18)
    equal_axes(fig, half)
    return fig


def make_eigenvalue_plane_figure(
    eigvals: np.ndarray, *, title: str = "Eigenvalues in the complex plane", height: int = 340
) -> go.Figure:
    """Eigenvalues (complex) as points with the unit circle for scale. Axes Re λ, Im λ (unitless)."""
    eigvals = np.asarray(eigvals, dtype=np.complex128)
    fig = go.Figure(
        [
            circle_trace(name="|λ| = 1", color=BEFORE, dash="dash"),
            go.Scatter(
                x=eigvals.real,
                y=eigvals.imag,
                mode="markers",
                marker=dict(size=12, color=EIGEN, line=dict(color="white", width=1)),
                name="eigenvalues",
                customdata=np.abs(eigvals),
                hovertemplate="λ = %{x:.4g} + %{y:.4g}i<br>|λ| = %{customdata:.4g}<extra></extra>",
            ),
        ]
    )
    half = max(1.25, float(np.abs(eigvals).max(initial=0)) * 1.15)
    axes_layout(fig, title, "Re λ", "Im λ", height=height, margin=_PLANE_MARGIN, showlegend=False)
    equal_axes(fig, half)
    return fig


def make_charpoly_figure(result: Plane2x2) -> go.Figure:
    """p(λ) = λ² − tr λ + det over real λ: its real roots are the real eigenvalues; no crossing = complex pair."""
    centre = result.trace / 2
    spread = max(1.5, float(np.sqrt(abs(result.discriminant))) / 2 * 1.6)
    lam = np.linspace(centre - spread, centre + spread, 201)
    p = np.polyval(result.charpoly, lam)
    fig = go.Figure(go.Scatter(x=lam, y=p, mode="lines", line=dict(color=AFTER, width=2.5), name="p(λ)"))
    fig.add_hline(y=0, line=dict(color="#555", width=1))
    real = result.eigvals[np.abs(result.eigvals.imag) < 1e-9].real
    if real.size:
        fig.add_trace(
            go.Scatter(
                x=real, y=np.zeros_like(real), mode="markers", marker=dict(size=12, color=EIGEN), name="roots"
            )
        )
    tr, det = result.trace, result.det
    title = f"p(λ) = λ² {'−' if tr >= 0 else '+'} {abs(tr):.3g}λ {'+' if det >= 0 else '−'} {abs(det):.3g}"
    axes_layout(fig, title, "λ (real)", "p(λ)", height=340, margin=_PLANE_MARGIN, showlegend=False)
    return fig


# ------------------------------------------------------------------------------------ 2. power / Lanczos


def _positive(values: np.ndarray) -> np.ndarray:
    """Log axes cannot show zeros or infinities: those become gaps."""
    values = np.asarray(values, dtype=np.float64)
    return np.where((values > 0) & np.isfinite(values), values, np.nan)


def make_power_convergence_figure(result: PowerIteration, *, step: int) -> go.Figure:
    """Errors of power iteration up to ``step`` (log scale) against the |λ₂/λ₁| theory lines."""
    k = np.arange(step + 1)
    kind = "bound" if result.symmetric else "slope"
    power = "2k" if result.symmetric else "k"
    traces = [
        ("tan ∠(x_k, v₁): vector error", result.tan_angle, AFTER, "solid"),
        (f"tan θ₀ · |λ₂/λ₁|^k ({kind})", result.vector_line, AFTER, "dash"),
        ("|r_k − λ₁|: Rayleigh-quotient error", result.value_error, ACCENT, "solid"),
        (f"theory ∝ |λ₂/λ₁|^{power} ({kind})", result.value_line, ACCENT, "dash"),
    ]
    fig = go.Figure()
    for name, values, color, dash in traces:
        fig.add_trace(
            go.Scatter(
                x=k,
                y=_positive(values[: step + 1]),
                mode="lines+markers" if dash == "solid" else "lines",
                marker=dict(size=5),
                line=dict(color=color, dash=dash),
                name=name,
            )
        )
    title = f"Error after k steps (rate {result.rate:.4g})"
    axes_layout(
        fig, title, "step k", "error (log scale)", height=420, margin=_MARGIN, legend_y=-0.2, log_y=True
    )
    return fig


def make_power_vector_figure(
    result: PowerIteration, *, step: int, labels: list[str] | None = None
) -> go.Figure:
    """The iterate x_k (bars) beside the dominant eigenvector v₁ (markers), entry by entry."""
    labels = labels if labels is not None else [str(i) for i in range(result.n)]
    x = result.iterates[step]
    x = x if x @ result.v1 >= 0 else -x
    fig = go.Figure(
        [
            go.Bar(x=labels, y=x, name=f"x_{step}", marker_color=AFTER, opacity=0.8),
            go.Scatter(x=labels, y=result.v1, mode="markers", name="v₁", marker=dict(color=EIGEN, size=8)),
        ]
    )
    axes_layout(
        fig,
        f"x_{step} against the top eigenvector v₁",
        "entry (token for an attention head)",
        "component (unit vectors)",
        height=360,
        margin=(50, 20, 50, 80),
        legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
    )
    fig.update_xaxes(type="category", tickangle=-60)
    return fig


def make_lanczos_figure(run: LanczosRun, *, steps: int) -> go.Figure:
    """Ritz values of every Lanczos step up to ``steps`` (coloured by distance to the nearest true
    eigenvalue), the eigsh extremes as dashed lines, and the full spectrum (eigh) as ticks on the right."""
    steps = int(min(steps, run.steps))
    xs, ys, dist = [], [], []
    for j in range(steps):
        theta = run.ritz[j, : j + 1]
        xs += [j + 1] * len(theta)
        ys += theta.tolist()
        dist += np.abs(theta[:, None] - run.eigvals[None, :]).min(axis=1).tolist()
    dist = np.log10(np.maximum(np.array(dist), 1e-16))
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            marker=dict(
                size=7,
                color=dist,
                colorscale="Viridis_r",
                cmin=-14,
                cmax=0,
                colorbar=dict(title="log₁₀ distance<br>to nearest λ", len=0.8),
            ),
            name="Ritz values",
            hovertemplate="step %{x}<br>Ritz value %{y:.6g}<extra></extra>",
        )
    )
    right = steps + 1.5
    fig.add_trace(
        go.Scatter(
            x=np.full(run.eigvals.shape, right),
            y=run.eigvals,
            mode="markers",
            marker=dict(symbol="line-ew", size=14, line=dict(width=1.5, color="#333")),
            name="all eigenvalues (eigh)",
            hovertemplate="λ = %{y:.6g}<extra></extra>",
        )
    )
    for i, value in enumerate(np.concatenate([run.eigsh_largest, run.eigsh_smallest])):
        if np.isfinite(value):
            fig.add_trace(
                go.Scatter(
                    x=[0.5, right],
                    y=[value, value],
                    mode="lines",
                    line=dict(color=ACCENT, dash="dash", width=1),
                    name="eigsh (ARPACK) extremes",
                    legendgroup="eigsh",
                    showlegend=i == 0,
                    hovertemplate=f"eigsh: {value:.6g}<extra></extra>",
                )
            )
    title = "Ritz values per step: the extremes converge first"
    x_title = "Lanczos step m (size of the Krylov space)"
    axes_layout(fig, title, x_title, "eigenvalue", height=460, margin=_MARGIN, legend_y=-0.15)
    fig.update_xaxes(range=[0.3, right + 0.7])
    return fig


# ------------------------------------------------------------------------------------------ 3. gradient


def make_gd_contour_figure(result: GradientDescent) -> go.Figure:
    """Contours of √f (evenly spaced ellipses), the eigenvector axes, and the GD trajectory."""
    half = float(result.grid_x[-1])
    fig = go.Figure(
        go.Contour(
            x=result.grid_x,
            y=result.grid_y,
            z=np.sqrt(result.grid_f),
            ncontours=18,
            colorscale="Blues",
            reversescale=True,
            contours=dict(coloring="heatmap", showlines=True),
            line=dict(width=0.5, color="white"),
            colorbar=dict(title="√f"),
            hoverinfo="skip",
        )
    )
    for i, (name, color) in enumerate([("v₁ (λ_max, steep)", ACCENT), ("v₂ (λ_min, flat)", EIGEN)]):
        v = result.eigvecs[:, i] * half * 1.5
        fig.add_trace(
            go.Scatter(
                x=[-v[0], v[0]], y=[-v[1], v[1]], mode="lines", line=dict(color=color, dash="dash"), name=name
            )
        )
    X = result.iterates
    fig.add_trace(
        go.Scatter(
            x=X[:, 0],
            y=X[:, 1],
            mode="lines+markers",
            line=dict(color=HIGHLIGHT, width=2),
            marker=dict(size=6),
            name="GD iterates x_t",
            customdata=np.stack([np.arange(len(X)), result.loss], axis=1),
            hovertemplate="t = %{customdata[0]}<br>f = %{customdata[1]:.3g}<extra></extra>",
        )
    )
    fig.add_trace(_highlight(X[0, 0], X[0, 1], "x₀", symbol="star", size=12))
    verdict = "diverges" if result.diverges else ("oscillates forever" if result.rate == 1 else "converges")
    title = f"η = {result.eta:.3g}: {verdict}"
    axes_layout(fig, title, "x₁", "x₂", height=520, margin=_PLANE_MARGIN, legend_y=-0.18)
    equal_axes(fig, half)
    return fig


def make_gd_decay_figure(result: GradientDescent) -> go.Figure:
    """|c_i(t)| along each eigendirection (markers: the iterates; lines: the closed form), log scale.

    Iterate coordinates below 1e-13 of the iterate's norm are rounding noise (float64) and are not drawn."""
    t = np.arange(len(result.coords))
    noise = 1e-13 * np.linalg.norm(result.iterates, axis=1)
    fig = go.Figure()
    for i, (name, color) in enumerate([("λ_max", ACCENT), ("λ_min", EIGEN)]):
        factor = result.factors[i]
        closed = np.abs(result.coords[0, i]) * np.abs(factor) ** t
        fig.add_trace(
            go.Scatter(
                x=t,
                y=_positive(closed),
                mode="lines",
                line=dict(color=color, width=2),
                name=f"|1 − η{name}|^t |c(0)|, factor {factor:+.3g}",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=_positive(
                    np.where(np.abs(result.coords[:, i]) > noise, np.abs(result.coords[:, i]), np.nan)
                ),
                mode="markers",
                marker=dict(color=color, size=6, symbol="circle-open"),
                name=f"|v·x_t| along {name} (iterates)",
            )
        )
    title = "Per eigendirection: c_i(t) = (1 − ηλ_i)^t c_i(0)"
    y_title = "|coordinate along eigenvector| (log)"
    axes_layout(fig, title, "step t", y_title, height=400, margin=_MARGIN, legend_y=-0.25, log_y=True)
    return fig


def make_gd_rate_figure(result: GradientDescent) -> go.Figure:
    """Per-step contraction |1 − ηλ_i| against η, with 2/λ_max, the optimal step and the chosen η marked."""
    eta = result.eta_grid
    fig = go.Figure(
        [
            go.Scatter(
                x=eta, y=result.rate_curves[:, 0], mode="lines", line=dict(color=ACCENT), name="|1 − ηλ_max|"
            ),
            go.Scatter(
                x=eta, y=result.rate_curves[:, 1], mode="lines", line=dict(color=EIGEN), name="|1 − ηλ_min|"
            ),
            go.Scatter(
                x=eta,
                y=result.rate_curves.max(axis=1),
                mode="lines",
                line=dict(color="#333", width=3),
                name="rate = max",
            ),
        ]
    )
    fig.add_hline(
        y=1, line=dict(color="#d62728", dash="dot"), annotation_text="rate 1", annotation_position="top left"
    )
    fig.add_vline(
        x=result.eta_opt,
        line=dict(color="#333", dash="dash"),
        annotation_text="η*",
        annotation_position="top left",
    )
    fig.add_vline(
        x=result.eta_max,
        line=dict(color="#d62728", dash="dash"),
        annotation_text="2/λ_max",
        annotation_position="top right",
    )
    fig.add_trace(_highlight(result.eta, result.rate, f"your η: rate {result.rate:.3g}", symbol="diamond"))
    title = "Shrink factor per step against η"
    axes_layout(fig, title, "step size η", "|1 − ηλ| (per step)", height=400, margin=_MARGIN, legend_y=-0.25)
    fig.update_yaxes(range=[0, 1.6])
    return fig


# --------------------------------------------------------------------------------------- 4. temperature


def _temperature_trace(lam: np.ndarray) -> go.Scatter:
    return go.Scatter(
        x=lam.real,
        y=lam.imag,
        mode="markers",
        marker=unit_modulus_marker(lam, colorscale="Viridis", size=9, line=dict(color="white", width=0.5)),
        customdata=np.abs(lam),
        hovertemplate="λ = %{x:.4f} + %{y:.4f}i<br>|λ| = %{customdata:.4f}<extra></extra>",
        name="eigenvalues",
    )


def make_temperature_animation_figure(
    sweep: TemperatureSweep, *, start_index: int, title: str = ""
) -> go.Figure:
    """Eigenvalues of A_τ in the complex plane, one Plotly animation frame per temperature (slider + play)."""
    circle = circle_trace(name="|λ| = 1", color=BEFORE, dash="dash")
    names = [f"{tau:.3g}" for tau in sweep.taus]
    frames = [
        go.Frame(data=[_temperature_trace(lam)], traces=[1], name=name)
        for lam, name in zip(sweep.eigvals, names, strict=True)
    ]
    start_index = int(np.clip(start_index, 0, len(frames) - 1))
    fig = go.Figure(data=[circle, _temperature_trace(sweep.eigvals[start_index])], frames=frames)
    step_args = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    axes_layout(
        fig,
        title or f"Eigenvalues of A_τ = row-softmax(log A / τ), {sweep.n} tokens",
        "Re λ",
        "Im λ",
        height=640,
        margin=(40, 20, 60, 110),
        showlegend=False,
        sliders=[
            dict(
                active=start_index,
                currentvalue=dict(prefix="τ = "),
                x=0.2,
                len=0.8,
                y=0,
                yanchor="top",
                pad=dict(t=50),
                steps=[dict(method="animate", label=name, args=[[name], step_args]) for name in names],
            )
        ],
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.19,
                y=0,
                xanchor="right",
                yanchor="top",
                pad=dict(t=75, r=10),
                buttons=[
                    dict(
                        label="▶ Play",
                        method="animate",
                        args=[
                            None,
                            {**step_args, "frame": {"duration": 250, "redraw": True}, "fromcurrent": True},
                        ],
                    ),
                    dict(label="❚❚ Pause", method="animate", args=[[None], step_args]),
                ],
            )
        ],
    )
    equal_axes(fig, 1.1)
    return fig


def make_temperature_summary_figure(sweep: TemperatureSweep, *, tau: float) -> go.Figure:
    """|λ₂| and normalised row entropy against τ (log axis), with the chosen τ marked."""
    curves = ((sweep.second_modulus, SECOND, "|λ₂|"), (sweep.entropy, ACCENT, "row entropy / log(#keys)"))
    fig = go.Figure(
        [
            go.Scatter(x=sweep.taus, y=values, mode="lines+markers", line=dict(color=color), name=name)
            for values, color, name in curves
        ]
    )
    fig.add_vline(x=tau, line=dict(color="#333", dash="dash"), annotation_text=f"τ = {tau:.3g}")
    title = "Sharp (small τ) to uniform (large τ)"
    x_title = "temperature τ (log scale)"
    axes_layout(
        fig, title, x_title, "value (0 to 1)", height=360, margin=_MARGIN, legend_y=-0.25, xaxis_type="log"
    )
    fig.update_yaxes(range=[0, 1.05])
    return fig


# ---------------------------------------------------------------------------------------- 5. non-normal


def make_transient_figure(result: TransientGrowth) -> go.Figure:
    """||J^t||₂ between its lower bound ρ^t and its upper bound κ(V) ρ^t, log scale."""
    t = np.arange(len(result.norms))
    fig = go.Figure(
        [
            go.Scatter(
                x=t,
                y=_positive(result.norms),
                mode="lines+markers",
                line=dict(color=AFTER, width=3),
                name="‖J^t‖₂",
            ),
            go.Scatter(
                x=t,
                y=_positive(result.rho_powers),
                mode="lines",
                line=dict(color=EIGEN, dash="dash"),
                name="ρ^t",
            ),
        ]
    )
    if np.isfinite(result.kappa_V):
        fig.add_trace(
            go.Scatter(
                x=t,
                y=_positive(result.bound),
                mode="lines",
                line=dict(color=ACCENT, dash="dash"),
                name=f"κ(V) ρ^t, κ(V) = {result.kappa_V:.3g}",
            )
        )
    peak = f"peak ‖J^{result.peak_t}‖ = {result.peak_norm:.3g}"
    fig.add_trace(_highlight(result.peak_t, result.peak_norm, peak, symbol="star"))
    title = f"Powers of J: ρ(J) = {result.rho:.3g}, yet ‖J^t‖ can grow first"
    axes_layout(
        fig, title, "power t", "norm (log scale)", height=440, margin=_MARGIN, legend_y=-0.2, log_y=True
    )
    return fig


def make_schur_figure(result: TransientGrowth) -> go.Figure:
    """Heatmaps of J and its Schur form T = Qᵀ J Q (same colour scale): eigenvalues on T's diagonal, the
    non-normal part above it."""
    lim = float(max(np.abs(result.matrix).max(), np.abs(result.schur_T).max(), 1e-12))
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("J (as given)", "Schur form T = Qᵀ J Q"), horizontal_spacing=0.12
    )
    for col, M in enumerate([result.matrix, result.schur_T], start=1):
        fig.add_trace(diverging_heatmap(M, lim, colorbar_title="entry", showscale=col == 2), row=1, col=col)
        square_cells(fig, col)
        fig.update_xaxes(title_text="column", row=1, col=col)
    fig.update_yaxes(title_text="row", row=1, col=1)
    fig.update_layout(
        title=f"Departure from normality ‖N‖_F = {result.departure:.3g} (0 for a normal matrix)",
        height=380,
        margin=dict(l=50, r=20, t=70, b=40),
    )
    return fig


# ---------------------------------------------------------------------------------------------- 6. SVD


def make_low_rank_figure(result: LowRank, *, image: bool, max_cells: int = 128) -> go.Figure:
    """Original, rank-k reconstruction and residual as heatmaps (crop to the top-left ``max_cells`` square
    of a large matrix, said in the titles). ``image``: grey scale (else a diverging scale around 0)."""
    m, n = result.matrix.shape
    rows, cols = min(m, max_cells), min(n, max_cells)
    crop = "" if (rows, cols) == (m, n) else f" (first {rows}×{cols})"
    titles = (f"original{crop}", f"rank {result.k}{crop}", f"residual W − W_k{crop}")
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.04)
    lim = float(np.abs(result.matrix[:rows, :cols]).max()) or 1.0
    for col, M in enumerate([result.matrix, result.approx, result.residual], start=1):
        block = M[:rows, :cols]
        if image and col < 3:
            trace = go.Heatmap(
                z=block, zmin=0, zmax=1, colorscale=GRAY_SCALE, showscale=False, hovertemplate=CELL_HOVER
            )
        else:
            trace = diverging_heatmap(block, lim, colorbar_title="value", showscale=col == 3)
        fig.add_trace(trace, row=1, col=col)
        square_cells(fig, col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
        fig.update_yaxes(showticklabels=col == 1, row=1, col=col)
    fig.update_layout(
        title=f"Best rank-{result.k} approximation: relative error ‖W − W_k‖_F / ‖W‖_F = {result.relative_error:.3g}",
        height=360 if image else 420,
        margin=dict(l=40, r=20, t=70, b=20),
    )
    return fig


def make_svd_error_figure(result: LowRank) -> go.Figure:
    """Left: singular values (log) with k marked. Right: the Eckart-Young error √(Σ_{i>k} σ_i²) for every k,
    the measured ‖W − W_k‖_F at the chosen k, and the parameter break-even rank."""
    r = len(result.S)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Singular values σ_i", "Error of the best rank-k approximation"),
        horizontal_spacing=0.12,
    )
    idx = np.arange(1, r + 1)
    kept = idx <= result.k
    for which, color, name in ((kept, AFTER, "kept σ_i"), (~kept, BEFORE, "dropped σ_i")):
        points = go.Scatter(
            x=idx[which],
            y=_positive(result.S[which]),
            mode="markers",
            marker=dict(color=color, size=6),
            name=name,
        )
        fig.add_trace(points, row=1, col=1)
    fig.add_trace(
        go.Scatter(
            x=np.arange(r + 1),
            y=result.errors_by_k,
            mode="lines",
            line=dict(color=ACCENT, width=2.5),
            name="√(Σ_{i>k} σ_i²) (Eckart-Young)",
        ),
        row=1,
        col=2,
    )
    measured = f"measured ‖W − W_k‖_F at k = {result.k}"
    fig.add_trace(_highlight(result.k, result.error_fro, measured, symbol="diamond"), row=1, col=2)
    if result.break_even < r:
        fig.add_vline(
            x=result.break_even,
            line=dict(color="#333", dash="dot"),
            row=1,
            col=2,
            annotation_text="break-even k",
        )
    fig.update_yaxes(type="log", title_text="σ_i (log)", row=1, col=1)
    fig.update_xaxes(title_text="index i", row=1, col=1)
    fig.update_yaxes(title_text="‖W − W_k‖_F", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="rank k", row=1, col=2)
    fig.update_layout(height=380, margin=dict(l=50, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.25))
    return fig
