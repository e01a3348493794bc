"""Report section for loss curvature: the whole model's Hessian spectrum on the report's text.

metrics.json gains:
    "curvature": {"loss" (nats), "loss_kind" ("causal-lm" | "contrastive"), "n_tokens", "block": "all",
                  "n_params", "kind": "hessian", "top_eigenvalues": [k floats, descending],
                  "residual_norms": [k floats], "converged": bool, "n_matvec",
                  "trace", "trace_stderr", "density": {"grid": [...], "density": [...]},
                  "top_eigenvector_mass": {group: share of the top eigenvector's squared norm},
                  "by_block": [{"name", "lambda_max", "trace"}, ...]  (only with --curvature-grid)}
Eigenvalues and the trace are in nats per (parameter unit)^2; the density integrates to 1 over the grid.
The loss sees the first CURVATURE_MAX_TOKENS tokens of the text (causal LMs) or the shipped sentence pairs
(encoders).
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.curvature import curvature_grid, curvature_summary, make_loss
from explorer.models import Capture, LoadedModel
from explorer.report.section import ReportSection

CURVATURE_MAX_TOKENS = 128
# Lean settings: the whole model of SmolLM2 costs about a second per Hessian-vector product here.
TOP_K = 3
MAX_MATVEC = 40
TRACE_PROBES = 10
DENSITY_PROBES = 2
DENSITY_STEPS = 15


def _density_figure(grid: np.ndarray, density: np.ndarray) -> go.Figure:
    fig = go.Figure(go.Scatter(x=grid, y=density, mode="lines", name="density"))
    fig.update_layout(
        xaxis_title="Hessian eigenvalue (nats / unit²)", yaxis_title="density", yaxis_type="log", height=360
    )
    return fig


def _convergence_figure(history: np.ndarray) -> go.Figure:
    fig = go.Figure()
    for i in range(history.shape[1]):
        fig.add_trace(go.Scatter(y=history[:, i], mode="lines", name=f"Ritz value {i + 1}"))
    fig.update_layout(xaxis_title="Hessian-vector products", yaxis_title="Ritz value", height=360)
    return fig


def _grid_figure(rows: list[dict]) -> go.Figure:
    names = [r["name"] for r in rows]
    fig = go.Figure(go.Bar(x=names, y=[r["lambda_max"] for r in rows], name="λ_max"))
    fig.update_layout(yaxis_title="λ_max (nats / unit²)", height=360)
    return fig


def curvature_section(loaded: LoadedModel, cap: Capture, grid: bool = False) -> ReportSection:
    """Top eigenvalues, trace and density of the whole model's Hessian; with ``grid`` also lambda_max and
    trace of every layer's attention and MLP."""
    spec = make_loss(loaded, cap.text, CURVATURE_MAX_TOKENS)
    summary = curvature_summary(
        loaded.model,
        spec,
        "all",
        k=TOP_K,
        max_matvec=MAX_MATVEC,
        trace_probes=TRACE_PROBES,
        density_probes=DENSITY_PROBES,
        density_steps=DENSITY_STEPS,
    )
    eigen = summary.eigen
    data = {
        "loss": summary.loss,
        "loss_kind": spec.kind,
        "n_tokens": summary.n_tokens,
        "block": summary.block,
        "n_params": summary.n_params,
        "kind": summary.kind,
        "top_eigenvalues": [float(x) for x in eigen.eigenvalues],
        "residual_norms": [float(x) for x in eigen.residual_norms],
        "converged": eigen.converged,
        "n_matvec": eigen.n_matvec,
        "trace": summary.trace.trace,
        "trace_stderr": summary.trace.stderr,
        "density": {"grid": summary.density.grid, "density": summary.density.density},
        "top_eigenvector_mass": {
            g: float(m) for g, m in zip(eigen.groups, eigen.group_mass[:, 0], strict=True)
        },
    }
    figures = [
        ("Hessian spectral density (stochastic Lanczos quadrature)", _density_figure(
            summary.density.grid, summary.density.density)),
        ("Convergence of the top eigenvalues (Lanczos)", _convergence_figure(eigen.history_ritz)),
    ]  # fmt: skip
    if grid:
        by_block = curvature_grid(loaded.model, spec).rows()
        data["by_block"] = [{k: r[k] for k in ("name", "lambda_max", "trace")} for r in by_block]
        figures.append(("λ_max of every layer's attention and MLP", _grid_figure(by_block)))
    where = max(data["top_eigenvector_mass"].items(), key=lambda kv: kv[1])
    text = (
        f"<p>{html.escape(spec.description)} Loss {summary.loss:.4f}. Whole model ({summary.n_params:,} "
        f"parameters): λ_max {eigen.eigenvalues[0]:.4g} (gradient descent is stable for η < "
        f"{2 / eigen.eigenvalues[0]:.3g}), trace {summary.trace.trace:.4g} ± {summary.trace.stderr:.2g}. "
        f"The top eigenvector puts {where[1]:.0%} of its weight on {html.escape(where[0])}.</p>"
    )
    return ReportSection("Loss curvature", "curvature", data, figures, text)
