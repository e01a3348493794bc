"""Figures of the six matrix-theory walkthroughs (charpoly, psd, rayleigh, pca, weyl, conditioning): one builder
per figure, results of explorer.analysis.teaching_matrices in, plotly figures out."""

from __future__ import annotations

import functools

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.teaching_matrices import (
    EPS64,
    PCA_ROUTES,
    Diagonalisation,
    GershgorinPicture,
    HiddenCovariance,
    Interlacing,
    MinMax,
    PCAComparison,
    PCAResult,
    PerturbationCloud,
    PrecisionCheck,
    QuadraticForm,
    RayleighSphere,
    WeylCheck,
    ellipse_points,
)
from explorer.figures.common import axes_layout, circle_trace, complex_points, equal_axes
from explorer.figures.learn import ACCENT, AFTER, BEFORE, EIGEN, HIGHLIGHT, SECOND

_MARGIN = (60, 20, 50, 45)  # left, right, top, bottom (px)
HEIGHT = 340
# The one-panel layout of this module's figures: its height and margins unless a figure says otherwise.
_axes = functools.partial(axes_layout, height=HEIGHT, margin=_MARGIN)
#: Errors of exactly 0 are drawn at this height on log axes (log(0) has no place); the hover says 0.
LOG_FLOOR = 1e-18
ROUTE_COLORS = {"covariance": AFTER, "svd": ACCENT, "sklearn": EIGEN}


# ------------------------------------------------------------------------------------------------ charpoly


def make_charpoly_curve_figure(result: Diagonalisation, points: int = 401) -> go.Figure:
    """p(λ) = det(λI − A) over the real line around the eigenvalues, real roots marked."""
    lam = result.eigvals
    lo, hi = float(lam.real.min()), float(lam.real.max())
    pad = max(0.5, 0.25 * (hi - lo))
    x = np.linspace(lo - pad, hi + pad, points)
    coeffs = np.real(result.charpoly)
    fig = go.Figure(
        go.Scatter(x=x, y=np.polyval(coeffs, x), mode="lines", line=dict(color=AFTER), name="p(λ)")
    )
    real = lam[np.abs(lam.imag) < 1e-9].real
    fig.add_trace(
        go.Scatter(
            x=real,
            y=np.zeros_like(real),
            mode="markers",
            marker=dict(size=11, color=HIGHLIGHT, symbol="x"),
            name="eigenvalues (roots)",
            hovertemplate="λ = %{x:.6g}<extra></extra>",
        )
    )
    fig.add_hline(y=0, line=dict(color=BEFORE, width=1))
    _axes(fig, "Characteristic polynomial det(λI − A)", "λ", "p(λ)", legend_y=-0.25)
    return fig


def make_power_error_figure(result: Diagonalisation, *, title: str) -> go.Figure:
    """Relative error of V Λᵏ V⁻¹ against Aᵏ for k = 1.., on a log axis, with the level κ(V) · eps."""
    k = np.arange(1, len(result.powers) + 1)
    err = np.where(np.isfinite(result.powers), np.maximum(result.powers, LOG_FLOOR), np.nan)
    fig = go.Figure(
        go.Scatter(
            x=k,
            y=err,
            mode="lines+markers",
            line=dict(color=AFTER),
            name="‖VΛᵏV⁻¹ − Aᵏ‖_F / ‖Aᵏ‖_F",
            customdata=result.powers,
            hovertemplate="k = %{x}<br>relative error %{customdata:.3g}<extra></extra>",
        )
    )
    if np.isfinite(result.kappa_V):
        fig.add_hline(
            y=max(result.kappa_V * EPS64, LOG_FLOOR),
            line=dict(color=ACCENT, dash="dash"),
            annotation_text="κ(V) · eps",
            annotation_position="top left",
        )
    _axes(fig, title, "power k", "relative error", log_y=True, legend_y=-0.25)
    return fig


def make_eigenvalues_figure(eigvals: np.ndarray, *, title: str) -> go.Figure:
    """Eigenvalues in the complex plane (equal axes)."""
    fig = go.Figure(complex_points(eigvals, name="eigenvalues", marker=dict(size=9, color=AFTER)))
    half = 1.1 * max(float(np.abs(eigvals).max()), 1e-12)
    fig.add_trace(circle_trace(half / 1.1, name="|λ| = ρ"))
    equal_axes(fig, half)
    _axes(fig, title, "Re λ", "Im λ", showlegend=False)
    return fig


# ----------------------------------------------------------------------------------------------------- psd


def make_quadratic_form_figure(form: QuadraticForm, half: float = 2.5, grid: int = 121) -> go.Figure:
    """Contours of q(x) = xᵀSx on [−half, half]², the level q = 1 (an ellipse when S is positive definite)
    and each eigenvector drawn to length 1/√λ where λ > 0 (else to the frame, dashed)."""
    t = np.linspace(-half, half, grid)
    X, Y = np.meshgrid(t, t)
    S = form.matrix
    Z = S[0, 0] * X**2 + 2 * S[0, 1] * X * Y + S[1, 1] * Y**2
    fig = go.Figure(
        go.Contour(
            x=t,
            y=t,
            z=Z,
            colorscale="RdBu",
            reversescale=True,
            zmid=0,
            contours=dict(showlines=False),
            opacity=0.55,
            colorbar=dict(title="q(x)"),
            hovertemplate="x = (%{x:.2f}, %{y:.2f})<br>q = %{z:.3g}<extra></extra>",
            name="q(x)",
        )
    )
    curve = ellipse_points(form)
    if curve is not None:
        fig.add_trace(
            go.Scatter(
                x=curve[0], y=curve[1], mode="lines", line=dict(color="black", width=2), name="q(x) = 1"
            )
        )
    else:
        fig.add_trace(
            go.Contour(
                x=t,
                y=t,
                z=Z,
                contours=dict(start=1, end=1, size=1, coloring="none"),
                line=dict(color="black", width=2),
                showscale=False,
                hoverinfo="skip",
                name="q(x) = 1",
            )
        )
    for i, color in enumerate((ACCENT, SECOND)):
        v = form.eigvecs[:, i]
        length = form.half_axes[i] if np.isfinite(form.half_axes[i]) else half
        dash = "solid" if np.isfinite(form.half_axes[i]) else "dash"
        fig.add_trace(
            go.Scatter(
                x=[-length * v[0], length * v[0]],
                y=[-length * v[1], length * v[1]],
                mode="lines",
                line=dict(color=color, width=3, dash=dash),
                name=f"v{i + 1}, λ{i + 1} = {form.eigvals[i]:.3g}",
                hoverinfo="skip",
            )
        )
    equal_axes(fig, half)
    _axes(fig, "The quadratic form xᵀSx and its level set 1", "x₁", "x₂", height=420, legend_y=-0.2)
    return fig


def make_covariance_spectrum_figure(result: HiddenCovariance) -> go.Figure:
    """|eigenvalues| of the covariance (d_model of them) and of the centred Gram (token of them), log axis, with
    the rounding level under which an eigenvalue counts as 0."""
    fig = go.Figure()
    # The Gram's open rings first, the covariance's dots on top: where they coincide, the dot sits in its ring.
    for values, name, color, symbol, size in (
        (result.gram_eigvals, f"Gram G ({result.n_tokens}×{result.n_tokens})", ACCENT, "circle-open", 11),
        (result.cov_eigvals, f"covariance C ({result.d_model}×{result.d_model})", AFTER, "circle", 5),
    ):
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, len(values) + 1),
                y=np.maximum(np.abs(values), LOG_FLOOR),
                mode="markers",
                marker=dict(color=color, symbol=symbol, size=size),
                name=name,
                customdata=values,
                hovertemplate="i = %{x}<br>λ = %{customdata:.4g}<extra></extra>",
            )
        )
    fig.add_hline(
        y=max(result.zero_tol, LOG_FLOOR),
        line=dict(color=HIGHLIGHT, dash="dash"),
        annotation_text="counts as 0 below",
        annotation_position="top right",
    )
    _axes(fig, "Eigenvalues of the covariance of hidden states", "i", "|λᵢ|", log_y=True, legend_y=-0.25)
    return fig


# ------------------------------------------------------------------------------------------------ rayleigh


def make_rayleigh_sphere_figure(result: RayleighSphere) -> go.Figure:
    """r(x) over the unit sphere as a map (longitude, latitude in degrees), ±v_i marked."""
    fig = go.Figure(
        go.Heatmap(
            x=np.rad2deg(result.lon),
            y=np.rad2deg(result.lat),
            z=result.values,
            colorscale="Viridis",
            colorbar=dict(title="r(x)"),
            hovertemplate="lon %{x:.0f}°, lat %{y:.0f}°<br>r = %{z:.4g}<extra></extra>",
        )
    )
    for i, (symbol, color) in enumerate(
        (("triangle-up", "white"), ("diamond", HIGHLIGHT), ("triangle-down", "black"))
    ):
        lon, lat = result.eig_lonlat[i]
        pts = np.rad2deg([[lon, lat], [lon - np.sign(lon) * np.pi if lon != 0 else np.pi, -lat]])
        fig.add_trace(
            go.Scatter(
                x=pts[:, 0],
                y=pts[:, 1],
                mode="markers",
                marker=dict(symbol=symbol, size=13, color=color, line=dict(color="gray", width=1)),
                name=f"±v{i + 1}: r = λ{i + 1} = {result.eigvals[i]:.3g}",
                hovertemplate=f"±v{i + 1}<br>r = {result.eigvals[i]:.6g}<extra></extra>",
            )
        )
    _axes(
        fig,
        "Rayleigh quotient r(x) = xᵀSx over the unit sphere",
        "longitude (°)",
        "latitude (°)",
        height=380,
        legend_y=-0.22,
    )
    return fig


def make_minmax_figure(result: MinMax) -> go.Figure:
    """max and min of r over the plane ⊥ u(t), against t, with λ₂ (Courant-Fischer: min of the first = max of
    the second = λ₂)."""
    deg = np.rad2deg(result.t)
    fig = go.Figure(
        [
            go.Scatter(
                x=deg, y=result.upper, mode="lines", line=dict(color=AFTER, width=4), name="max r(x), x ⊥ u"
            ),
            go.Scatter(
                x=deg,
                y=result.lower,
                mode="lines",
                line=dict(color=ACCENT, width=4, dash="dot"),
                name="min r(x), x ⊥ u",
            ),
        ]
    )
    for i in range(3):
        fig.add_hline(
            y=result.eigvals[i],
            line=dict(color=HIGHLIGHT if i == 1 else BEFORE, dash="dash", width=1),
            annotation_text=f"λ{i + 1} = {result.eigvals[i]:.3g}",
            annotation_position="right",
        )
    _axes(
        fig,
        "Courant-Fischer: λ₂ = min over u of max over x ⊥ u",
        "t (°): u = cos t·v₁ + sin t·v₃",
        "r",
        margin=(60, 70, 50, 45),
        legend_y=-0.3,
    )
    return fig


def make_interlacing_figure(result: Interlacing, *, top: int | None = None) -> go.Figure:
    """λ of S (upper row) and μ of the principal submatrix (lower row) on one axis, the first ``top`` of each;
    interlacing means each μ_i lies in [λ_{i+1}, λ_i] (the shaded bands)."""
    k = len(result.sub_eigvals) if top is None else min(top, len(result.sub_eigvals))
    lam, mu = result.eigvals[: k + 1], result.sub_eigvals[:k]
    fig = go.Figure()
    for i in range(k):  # alternate shades, so neighbouring bands stay apart
        fig.add_shape(
            type="rect",
            x0=lam[i + 1],
            x1=lam[i],
            y0=-0.3,
            y1=1.3,
            fillcolor=BEFORE if i % 2 == 0 else AFTER,
            opacity=0.2,
            line_width=0,
        )
    fig.add_trace(
        go.Scatter(
            x=lam,
            y=np.ones_like(lam),
            mode="markers",
            marker=dict(size=12, color=AFTER, symbol="line-ns", line=dict(width=3, color=AFTER)),
            name="λᵢ of S",
            hovertemplate="λ = %{x:.6g}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=mu,
            y=np.zeros_like(mu),
            mode="markers",
            marker=dict(size=10, color=ACCENT),
            name=f"μᵢ without coordinate {result.dropped}",
            hovertemplate="μ = %{x:.6g}<extra></extra>",
        )
    )
    fig.update_yaxes(visible=False, range=[-0.6, 1.6])
    _axes(fig, "Cauchy interlacing: λ₁ ≥ μ₁ ≥ λ₂ ≥ μ₂ ≥ …", "eigenvalue", "", height=240, legend_y=-0.5)
    return fig


# ----------------------------------------------------------------------------------------------------- pca


def make_cloud_figure(X: np.ndarray, pca: PCAResult) -> go.Figure:
    """Points (n, 2), the mean, and each component drawn from the mean to ±2 standard deviations."""
    fig = go.Figure(
        go.Scatter(x=X[:, 0], y=X[:, 1], mode="markers", marker=dict(size=5, color=BEFORE), name="points")
    )
    for i, color in enumerate((ACCENT, SECOND)):
        v = pca.components[i] * 2 * np.sqrt(pca.variances[i])
        fig.add_trace(
            go.Scatter(
                x=[pca.mean[0] - v[0], pca.mean[0] + v[0]],
                y=[pca.mean[1] - v[1], pca.mean[1] + v[1]],
                mode="lines",
                line=dict(color=color, width=4),
                name=f"PC{i + 1}: {100 * pca.ratios[i]:.1f} % of the variance",
            )
        )
    half = float(np.abs(X).max()) * 1.05
    equal_axes(fig, half)
    _axes(fig, "Points, their mean and principal axes (±2 sd)", "x₁", "x₂", height=400, legend_y=-0.2)
    return fig


def make_pca_scores_figure(pca: PCAResult, labels: list[str]) -> go.Figure:
    """Each token projected on PC1 and PC2 (the scores)."""
    y = pca.scores[:, 1] if pca.scores.shape[1] > 1 else np.zeros(len(pca.scores))
    fig = go.Figure(
        go.Scatter(
            x=pca.scores[:, 0],
            y=y,
            mode="markers+text",
            text=labels,
            textposition="top center",
            textfont=dict(size=9),
            marker=dict(
                size=7, color=np.arange(len(y)), colorscale="Viridis", colorbar=dict(title="position")
            ),
            hovertemplate="%{text}<br>PC1 %{x:.4g}, PC2 %{y:.4g}<extra></extra>",
            name="tokens",
        )
    )
    _axes(fig, "Tokens projected on the first two components", "PC1", "PC2", height=420, showlegend=False)
    return fig


def make_explained_figure(comparison: PCAComparison) -> go.Figure:
    """Explained-variance ratio of each component by the three routes (grouped bars), cumulative as a line."""
    fig = go.Figure()
    for name, res in comparison.routes.items():
        k = np.arange(1, len(res.ratios) + 1)
        fig.add_trace(
            go.Bar(
                x=k,
                y=res.ratios,
                name=PCA_ROUTES[name],
                marker_color=ROUTE_COLORS[name],
                hovertemplate="PC%{x}: %{y:.6f}<extra>" + PCA_ROUTES[name] + "</extra>",
            )
        )
    base = comparison.routes["covariance"]
    fig.add_trace(
        go.Scatter(
            x=np.arange(1, len(base.ratios) + 1),
            y=np.cumsum(base.ratios),
            mode="lines+markers",
            line=dict(color="black"),
            name="cumulative",
            hovertemplate="first %{x}: %{y:.4f}<extra></extra>",
        )
    )
    _axes(
        fig,
        "Explained variance ratio, three ways",
        "component",
        "share of the variance",
        legend_y=-0.3,
        barmode="group",
    )
    return fig


# ---------------------------------------------------------------------------------------------------- weyl


def make_gershgorin_figure(result: GershgorinPicture) -> go.Figure:
    """Row discs (centre a_ii, radius R_i) and the eigenvalues, equal axes."""
    fig = go.Figure()
    theta = np.linspace(0, 2 * np.pi, 121)
    for i, (c, r) in enumerate(zip(result.centers, result.radii, strict=True)):
        fig.add_trace(
            go.Scatter(
                x=c.real + r * np.cos(theta),
                y=c.imag + r * np.sin(theta),
                mode="lines",
                fill="toself",
                opacity=0.35,
                line=dict(color=AFTER),
                name=f"disc {i + 1}: {c.real:.3g} ± {r:.3g}",
                hoverinfo="name",
            )
        )
    fig.add_trace(
        complex_points(result.eigvals, name="eigenvalues", marker=dict(size=10, color=HIGHLIGHT, symbol="x"))
    )
    half = float(np.max(np.abs(result.centers) + result.radii)) * 1.1
    equal_axes(fig, half)
    _axes(fig, "Gershgorin row discs and the eigenvalues", "Re λ", "Im λ", height=380, legend_y=-0.25)
    return fig


def make_weyl_shift_figure(check: WeylCheck) -> go.Figure:
    """|σ_i(W + E) − σ_i(W)| for each i (bars) against ‖E‖₂ (the line Weyl's bound puts above them all)."""
    i = np.arange(1, len(check.shifts) + 1)
    fig = go.Figure(
        go.Bar(
            x=i,
            y=check.shifts,
            marker_color=AFTER,
            name="|Δσᵢ|",
            hovertemplate="i = %{x}: %{y:.4g}<extra></extra>",
        )
    )
    fig.add_hline(
        y=check.e_norm,
        line=dict(color=HIGHLIGHT, dash="dash"),
        annotation_text="‖E‖₂",
        annotation_position="top left",
    )
    _axes(
        fig,
        "Weyl: every singular value moves by at most ‖E‖₂",
        "i",
        "|σᵢ(W+E) − σᵢ(W)|",
        height=300,
        showlegend=False,
    )
    return fig


def make_weyl_model_figure(checks: list[WeylCheck]) -> go.Figure:
    """For each matrix and quantization: the largest |Δσ_i| and ‖E‖₂ side by side (log axis)."""
    labels = [f"{c.name.split('.')[-1]} · {c.scheme}" for c in checks]
    sides = (
        ([c.e_norm for c in checks], "‖E‖₂", "‖E‖₂ (the bound)", BEFORE),
        ([c.max_shift for c in checks], "max |Δσᵢ|", "max |Δσᵢ|", AFTER),
    )
    fig = go.Figure(
        [
            go.Bar(x=labels, y=[max(v, LOG_FLOOR) for v in values], name=name, marker_color=color,
                   customdata=values, hovertemplate=f"%{{x}}<br>{what} = %{{customdata:.4g}}<extra></extra>")
            for values, what, name, color in sides
        ]
    )  # fmt: skip
    _axes(
        fig,
        "Quantization error against the largest move of a singular value",
        "matrix · quantization",
        "",
        height=380,
        margin=(60, 20, 50, 110),
        log_y=True,
        legend_y=1.12,
        barmode="group",
    )
    return fig


# ------------------------------------------------------------------------------------------- conditioning


def make_perturbation_figure(cloud: PerturbationCloud) -> go.Figure:
    """Eigenvalues of A + E for many E of norm eps (dots) around those of A (crosses), with circles of radius
    κ(λ) · eps: first-order perturbation theory's reach."""
    fig = go.Figure()
    pts = cloud.perturbed.ravel()
    fig.add_trace(
        go.Scatter(
            x=pts.real,
            y=pts.imag,
            mode="markers",
            marker=dict(size=3, color=BEFORE),
            name="λ(A + E)",
            hoverinfo="skip",
        )
    )
    theta = np.linspace(0, 2 * np.pi, 121)
    for i, (lam, k) in enumerate(zip(cloud.eigvals, cloud.kappa, strict=True)):
        r = k * cloud.eps
        fig.add_trace(
            go.Scatter(
                x=lam.real + r * np.cos(theta),
                y=lam.imag + r * np.sin(theta),
                mode="lines",
                line=dict(color=ACCENT, dash="dot"),
                name="radius κ(λ)·ε" if i == 0 else None,
                showlegend=i == 0,
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        complex_points(
            cloud.eigvals,
            name="λ(A)",
            marker=dict(size=11, color=HIGHLIGHT, symbol="x"),
            label="λ",
            extra=cloud.kappa,
            extra_hover="<br>κ = %{customdata[1]:.3g}",
        )
    )
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    _axes(fig, f"Eigenvalues of A + E, ‖E‖₂ = {cloud.eps:.1e}", "Re λ", "Im λ", height=400, legend_y=-0.2)
    return fig


def make_precision_figure(check: PrecisionCheck) -> go.Figure:
    """Error of each eigenvalue against κ(λ) (log-log) in float32 and float64, with the first-order lines
    κ · n · eps · ‖A‖₂ of each precision. Errors of exactly 0 sit on the floor."""
    fig = go.Figure()
    kappa = np.maximum(check.kappa, 1.0)
    span = np.array([kappa.min(), kappa.max()]) if np.all(np.isfinite(kappa)) else np.array([1.0, 1e16])
    for err, bound, name, color in (
        (check.err32, check.bound32, "float32 (sgeev)", ACCENT),
        (check.err64, check.bound64, "float64 (dgeev)", AFTER),
    ):
        fig.add_trace(
            go.Scatter(
                x=kappa,
                y=np.maximum(err, LOG_FLOOR),
                mode="markers",
                marker=dict(size=7, color=color),
                name=name,
                customdata=err,
                hovertemplate="κ = %{x:.3g}<br>error %{customdata:.3g}<extra>" + name + "</extra>",
            )
        )
        scale = float(np.median(bound / kappa)) if len(bound) else 0.0
        fig.add_trace(
            go.Scatter(
                x=span,
                y=np.maximum(span * scale, LOG_FLOOR),
                mode="lines",
                line=dict(color=color, dash="dash"),
                name=f"κ · n · eps · ‖A‖ ({name.split()[0]})",
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(type="log", exponentformat="power")
    _axes(
        fig,
        "Eigenvalue error against its condition number",
        "κ(λ)",
        "|λ computed − λ exact|",
        height=400,
        log_y=True,
        legend_y=-0.25,
    )
    return fig
