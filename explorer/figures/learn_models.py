"""Figures of the Learn walkthroughs on dynamics and models (explorer/analysis/teaching_models.py): Markov
chains, Laplacians, recurrent powers, the Hessian, LoRA and Lipschitz bounds. Plotly only; results in."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.lora import LoraRun
from explorer.analysis.teaching_models import (
    FiedlerSplit,
    LipschitzStack,
    LoraSubspace,
    MarkovChain,
    ModelLipschitz,
    QuadraticDescent,
    RecurrentPowers,
)
from explorer.figures.common import axes_layout, circle_trace, complex_points, equal_axes

MAIN = "#3b6fd4"
EIGEN = "#1a9850"
ACCENT = "#e8590c"
SECOND = "#7b3fb8"
GRAY = "#868e96"
SIDE_COLORS = ("#e8590c", "#3b6fd4")  # Fiedler sign: negative, positive
_MARGIN = (55, 20, 50, 40)
TINY = 1e-300  # log axes: a value of exactly 0 is drawn at this floor


def _pos(y) -> np.ndarray:
    return np.maximum(np.asarray(y, np.float64), TINY)


def _bar_figure(
    values, labels: list[str] | None, color, hover: str, title: str, x_title: str, y_title: str
) -> go.Figure:
    """One bar per state (token or node), named by ``labels`` (default 0, 1, ...), coloured ``color`` (one
    colour or one a bar), hover text ``hover`` (a Plotly template). The names stay categories in their order,
    even when a tokenizer's pieces look like numbers."""
    names = list(labels) if labels is not None else [f"{i}" for i in range(len(values))]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=color, hovertemplate=hover))
    axes_layout(fig, title, x_title, y_title, height=340, margin=_MARGIN)
    fig.update_xaxes(type="category")
    return fig


# ------------------------------------------------------------------------------------------- Markov


def make_stationary_figure(chain: MarkovChain, labels: list[str] | None = None) -> go.Figure:
    """The stationary distribution pi over states (tokens), one bar each."""
    return _bar_figure(
        chain.pi, labels, MAIN, "%{x}: π = %{y:.4f}<extra></extra>",
        f"Stationary distribution π (damping {chain.damping:g}): where the walk spends its time",
        "state (token)", "π",
    )  # fmt: skip


def make_mixing_figure(chain: MarkovChain) -> go.Figure:
    """Worst-case distance to stationarity after k steps against the slope |lambda_2|^k (log scale)."""
    k = np.arange(len(chain.distances))
    fig = go.Figure(
        [
            go.Scatter(
                x=k, y=_pos(chain.distances), mode="lines+markers", name="max_i ‖e_i Pᵏ − π‖_TV",
                line=dict(color=MAIN, width=3),
            ),
            go.Scatter(
                x=k, y=_pos(chain.rate_line), mode="lines", name=f"|λ₂|ᵏ = {chain.lambda2:.3g}ᵏ (slope)",
                line=dict(color=EIGEN, dash="dash"),
            ),
            go.Scatter(
                x=[k[0], k[-1]], y=[0.25, 0.25], mode="lines", name="1/4 (mixing time)",
                line=dict(color=GRAY, dash="dot"), hoverinfo="skip",
            ),
        ]
    )  # fmt: skip
    axes_layout(
        fig,
        "Mixing: the distance to π shrinks like |λ₂|ᵏ",
        "steps k",
        "total-variation distance (log scale)",
        height=380,
        margin=_MARGIN,
        legend_y=-0.25,
        log_y=True,
    )
    return fig


# ----------------------------------------------------------------------------------------- Laplacian


def make_fiedler_figure(split: FiedlerSplit, labels: list[str] | None = None) -> go.Figure:
    """The Fiedler vector's entries, one bar per node, coloured by sign (the two sides of the cut)."""
    return _bar_figure(
        split.fiedler, labels, [SIDE_COLORS[int(side)] for side in split.side],
        "%{x}: v₂ = %{y:.4f}<extra></extra>",
        f"Fiedler vector v₂ (λ₂ = {split.connectivity:.4g}): its sign splits the graph", "node (token)", "v₂ entry",
    )  # fmt: skip


def make_laplacian_spectrum_figure(split: FiedlerSplit) -> go.Figure:
    """The Laplacian's eigenvalues in ascending order, lambda_1 = 0 and lambda_2 highlighted."""
    i = np.arange(1, len(split.eigvals) + 1)
    fig = go.Figure(
        [
            go.Scatter(x=i, y=split.eigvals, mode="markers", marker=dict(color=MAIN, size=8), name="λᵢ"),
            go.Scatter(
                x=[2], y=[split.eigvals[1]], mode="markers", name="λ₂ (algebraic connectivity)",
                marker=dict(color=ACCENT, size=14, symbol="star"),
            ),
        ]
    )  # fmt: skip
    which = "normalised I − D^-½WD^-½" if split.normalized else "L = D − W"
    axes_layout(
        fig, f"Eigenvalues of {which}", "index i (ascending)", "λᵢ", height=340, margin=_MARGIN, legend_y=-0.3
    )
    return fig


# ---------------------------------------------------------------------------------------- recurrent


def make_recurrent_figure(rp: RecurrentPowers, title: str = "h_{t+1} = W h_t") -> go.Figure:
    """||W^t||_2 between rho^t and ||W||_2^t (log scale)."""
    t = np.arange(len(rp.norms))
    fig = go.Figure(
        [
            go.Scatter(x=t, y=_pos(rp.norms), mode="lines+markers", name="‖Wᵗ‖₂ (largest growth of ‖hₜ‖/‖h₀‖)",
                       line=dict(color=MAIN, width=3)),
            go.Scatter(x=t, y=_pos(rp.rho_powers), mode="lines", name=f"ρᵗ, ρ = {rp.rho:.4g}",
                       line=dict(color=EIGEN, dash="dash")),
            go.Scatter(x=t, y=_pos(rp.sigma_powers), mode="lines", name=f"‖W‖₂ᵗ, ‖W‖₂ = {rp.sigma_max:.4g}",
                       line=dict(color=ACCENT, dash="dot")),
        ]
    )  # fmt: skip
    axes_layout(
        fig, f"{title}: ρᵗ ≤ ‖Wᵗ‖₂ ≤ ‖W‖₂ᵗ", "step t", "norm (log scale)",
        height=400, margin=_MARGIN, legend_y=-0.25, log_y=True,
    )  # fmt: skip
    return fig


def make_recurrent_eigs_figure(rp: RecurrentPowers) -> go.Figure:
    """W's eigenvalues in the complex plane with the unit circle (inside: vanishing, outside: exploding)."""
    fig = go.Figure(
        [
            circle_trace(1.0),
            complex_points(rp.eigvals, name="eigenvalues of W", marker=dict(color=MAIN, size=9)),
        ]
    )
    half = 1.15 * max(1.0, rp.rho)
    equal_axes(fig, half)
    axes_layout(
        fig, "Eigenvalues of W and the unit circle", "Re λ", "Im λ", height=380, margin=(40, 20, 50, 40)
    )
    return fig


# ------------------------------------------------------------------------------------------- Hessian


def make_quadratic_path_figure(qd: QuadraticDescent) -> go.Figure:
    """Contours of f(x) = xᵀHx/2, the gradient-descent path and H's eigen-directions (2-D only)."""
    half = max(1.2, 1.1 * float(np.max(np.abs(qd.path[: min(len(qd.path), 8)]))))
    half = min(half, 6.0)
    g = np.linspace(-half, half, 121)
    X, Y = np.meshgrid(g, g)
    Z = 0.5 * (qd.H[0, 0] * X**2 + 2 * qd.H[0, 1] * X * Y + qd.H[1, 1] * Y**2)
    fig = go.Figure(
        go.Contour(x=g, y=g, z=np.log10(Z + 1e-6), showscale=False, colorscale="Blues", reversescale=True,
                   contours=dict(coloring="lines"), hoverinfo="skip", name="log₁₀ f")
    )  # fmt: skip
    for i, color in ((0, EIGEN), (1, ACCENT)):
        v = qd.eigvecs[:, i] * half * 0.9
        fig.add_trace(
            go.Scatter(x=[-v[0], v[0]], y=[-v[1], v[1]], mode="lines", line=dict(color=color, dash="dash"),
                       name=f"eigen-direction λ = {qd.eigvals[i]:.3g}")
        )  # fmt: skip
    path = np.clip(qd.path, -half, half)
    fig.add_trace(
        go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", line=dict(color=SECOND),
                   marker=dict(size=5), name=f"gradient descent, η = {qd.eta:.3g}")
    )  # fmt: skip
    equal_axes(fig, half)
    axes_layout(fig, "The loss xᵀHx/2 and gradient descent", "x₁", "x₂", height=440, margin=(40, 20, 50, 40),
                legend_y=-0.2)  # fmt: skip
    return fig


def make_eigen_coords_figure(qd: QuadraticDescent) -> go.Figure:
    """|x_k| along each eigen-direction: multiplied by |1 - eta lambda_i| per step (log scale)."""
    k = np.arange(len(qd.coords))
    fig = go.Figure()
    for i, color in ((0, EIGEN), (1, ACCENT)):
        fig.add_trace(
            go.Scatter(x=k, y=_pos(np.abs(qd.coords[:, i])), mode="lines+markers", line=dict(color=color),
                       name=f"λ = {qd.eigvals[i]:.3g}: ×|1 − ηλ| = {abs(qd.multipliers[i]):.3g} per step")
        )  # fmt: skip
    axes_layout(fig, "Each eigen-direction on its own", "step k", "|coordinate| (log scale)", height=400,
                margin=_MARGIN, legend_y=-0.25, log_y=True)  # fmt: skip
    return fig


def make_density_figure(grid, density, *, kde0: float, title: str, eigenvalues=None) -> go.Figure:
    """A broadened spectral density with its value at 0 marked (and the eigenvalues as a rug when given)."""
    fig = go.Figure(
        go.Scatter(x=grid, y=density, mode="lines", line=dict(color=MAIN, width=2), name="density")
    )
    if eigenvalues is not None:
        lam = np.ravel(eigenvalues)
        fig.add_trace(
            go.Scatter(x=lam, y=np.zeros_like(lam), mode="markers", name="eigenvalues",
                       marker=dict(symbol="line-ns-open", size=12, color=GRAY))
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=[0.0], y=[kde0], mode="markers", marker=dict(color=ACCENT, size=13, symbol="star"),
                   name=f"density at 0 = {kde0:.4g}")
    )  # fmt: skip
    axes_layout(fig, title, "eigenvalue λ", "density", height=360, margin=_MARGIN, legend_y=-0.3)
    return fig


# ---------------------------------------------------------------------------------------------- LoRA


def make_lora_example_figure(sub: LoraSubspace) -> go.Figure:
    """||U^T W V||_F for three r-dim subspaces (Delta W's, W's top, random) and ||Delta W||_F."""
    names = ["ΔW's top-r directions", "W's own top-r directions", "random r directions", "‖ΔW‖_F"]
    values = [sub.projected, sub.w_top, sub.w_random, sub.delta_norm]
    colors = [ACCENT, EIGEN, GRAY, MAIN]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=colors,
                           hovertemplate="%{x}: %{y:.4g}<extra></extra>"))  # fmt: skip
    axes_layout(fig, f"‖Uᵀ W V‖_F for r = {sub.rank}: how much W already has in each subspace", "", "Frobenius norm",
                height=360, margin=_MARGIN)  # fmt: skip
    return fig


def make_lora_model_figure(run: LoraRun) -> go.Figure:
    """Per adapted matrix: the amplification factor ||Delta W||_F / ||U^T W V||_F against its block."""
    fig = go.Figure()
    for kind, color in (("q", MAIN), ("v", ACCENT), ("qkv", SECOND)):
        idx = [i for i, k in enumerate(run.kinds) if k == kind]
        if not idx:
            continue
        fig.add_trace(
            go.Scatter(
                x=run.layers[idx], y=run.amplification[idx], mode="lines+markers", name=f"W_{kind}",
                line=dict(color=color), customdata=np.stack([run.top_share[idx], run.delta_norm[idx]], axis=1),
                hovertemplate="layer %{x}: amplification %{y:.4g}, share in W's top-r %{customdata[0]:.3f}, "
                "‖ΔW‖_F %{customdata[1]:.3g}<extra></extra>",
            )
        )  # fmt: skip
    axes_layout(fig, f"LoRA rank {run.rank} after {run.steps} Adam steps: amplification per matrix", "layer",
                "‖ΔW‖_F / ‖Uᵀ W V‖_F (log scale)", height=380, margin=_MARGIN, legend_y=-0.25, log_y=True)  # fmt: skip
    return fig


# ----------------------------------------------------------------------------------------- Lipschitz


def make_lipschitz_stack_figure(ls: LipschitzStack) -> go.Figure:
    """The product bound, the exact norm of the linear product and the measured amplification, per depth."""
    depth = np.arange(1, len(ls.bound) + 1)
    fig = go.Figure(
        [
            go.Scatter(x=depth, y=_pos(ls.bound), mode="lines+markers", name="bound ∏ σ_max(W_i)",
                       line=dict(color=ACCENT, width=3)),
            go.Scatter(x=depth, y=_pos(ls.linear_norm), mode="lines", name="‖W_l ⋯ W_1‖₂ (no activation)",
                       line=dict(color=EIGEN, dash="dash")),
            go.Scatter(x=depth, y=_pos(ls.amplification.max(axis=1)), mode="lines+markers",
                       name=f"largest measured ‖f(x) − f(y)‖/‖x − y‖ ({ls.activation})", line=dict(color=MAIN)),
            go.Scatter(x=depth, y=_pos(np.median(ls.amplification, axis=1)), mode="lines",
                       name="median measured", line=dict(color=MAIN, dash="dot")),
        ]
    )  # fmt: skip
    axes_layout(fig, "Lipschitz bound of a stack against what random directions see", "depth l", "amplification (log scale)",
                height=400, margin=_MARGIN, legend_y=-0.3, log_y=True)  # fmt: skip
    return fig


KIND_LABELS = {
    "attn_q": "W_Q", "attn_k": "W_K", "attn_v": "W_V", "attn_o": "W_O",
    "mlp_gate": "W_gate", "mlp_up": "W_up", "mlp_down": "W_down",
}  # fmt: skip


def make_model_sigma_figure(ml: ModelLipschitz) -> go.Figure:
    """sigma_max of each block matrix against its layer (log scale), one line per kind."""
    layers = np.arange(ml.sigma.shape[0])
    fig = go.Figure()
    for j, kind in enumerate(ml.kinds):
        if np.all(np.isnan(ml.sigma[:, j])):
            continue
        fig.add_trace(
            go.Scatter(x=layers, y=ml.sigma[:, j], mode="lines+markers", name=KIND_LABELS.get(kind, kind))
        )
    axes_layout(fig, "σ_max of every block matrix", "layer", "σ_max (log scale)", height=380, margin=_MARGIN,
                legend_y=-0.25, log_y=True)  # fmt: skip
    return fig


def make_model_bound_figure(ml: ModelLipschitz) -> go.Figure:
    """log10 of the product bound over blocks 0..l (a straight line would be geometric growth)."""
    layers = np.arange(len(ml.log10_bound))
    fig = go.Figure(
        go.Scatter(x=layers, y=ml.log10_bound, mode="lines+markers", line=dict(color=ACCENT, width=3),
                   name="log₁₀ ∏ (1 + σ_V σ_O + σ_up σ_down)",
                   hovertemplate="blocks 0..%{x}: bound 10^%{y:.2f}<extra></extra>")
    )  # fmt: skip
    axes_layout(
        fig, "Product bound over the blocks", "up to layer", "log₁₀ bound", height=380, margin=_MARGIN
    )
    return fig
