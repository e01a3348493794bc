"""Walkthrough: PCA from scratch (covariance, eigenvectors, projection, explained variance) on a point cloud, then
on the loaded model's hidden states, three ways: eigh of the covariance, SVD of the centred data, scikit-learn."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching_matrices as tm
from explorer.figures import learn_matrices as figures
from explorer.models import Capture, LoadedModel
from explorer.ui.learn.matrices_cache import hidden_pca
from explorer.ui.learn.walkthrough import PAGE, Prose, layer_picker, link, on_model, small_first
from explorer.ui.session import selection, token_labels
from explorer.ui.state import Float

TOO_SHORT = "PCA of the hidden states needs at least three tokens. Add some words in the sidebar."
ANGLE = Float("pca_angle", 30.0, -90.0, 90.0, key="pca_angle")
RATIO = Float("pca_ratio", 0.35, 0.05, 1.0, key="pca_ratio")
TABLE_ROWS = 5  # components listed in the three-way table


def _small(angle: float, ratio: float) -> None:
    X = tm.point_cloud(angle, ratio)
    res = tm.pca_by_covariance(X, 2)
    C = tm.covariance(X)
    st.latex(
        rf"C = \tfrac{{1}}{{n-1}}X_c^\top X_c = \begin{{pmatrix}} {C[0, 0]:.4f} & {C[0, 1]:.4f} \\ {C[1, 0]:.4f} & "
        rf"{C[1, 1]:.4f} \end{{pmatrix}},\quad \lambda_1 = {res.variances[0]:.4f},\ \lambda_2 = {res.variances[1]:.4f}"
    )
    v = res.components[0]
    st.markdown(
        f"{len(X)} points. PC1 = ({v[0]:.3f}, {v[1]:.3f}), at {np.degrees(np.arctan2(v[1], v[0])):.1f}° (the cloud "
        f"was drawn at {angle:.0f}°, up to sign and sampling); it explains λ₁ / tr C = "
        f"{res.variances[0]:.4f} / {res.total_variance:.4f} = **{100 * res.ratios[0]:.1f} %** of the variance."
    )
    st.plotly_chart(figures.make_cloud_figure(X, res), width="stretch", key="learn_pca_cloud")


@on_model(3, TOO_SHORT)
def _model(loaded: LoadedModel, cap: Capture) -> None:
    layer = layer_picker("pca", loaded.card.n_layers, "Hidden state after block")
    sel = selection()
    with st.spinner("PCA three ways…"):
        res = hidden_pca(sel.model_key, sel.text_key, layer)
    base = res.routes["covariance"]
    k = len(base.ratios)
    st.markdown(
        f"X: {cap.n_tokens} tokens × {loaded.card.d_model} dimensions. The first {k} components explain "
        f"**{100 * base.ratios.sum():.1f} %** of the variance (PC1 alone {100 * base.ratios[0]:.1f} %). The three "
        f"routes agree: explained-variance ratios within **{res.ratio_gap:.1e}**, components with 1 − |cos| ≤ "
        f"**{max(1 - res.min_cos, 0.0):.1e}**, projections within **{res.scores_gap:.1e}** of the largest (signs aligned)."
    )
    rows = ["| component | " + " | ".join(tm.PCA_ROUTES.values()) + " |", "|---" * 4 + "|"]
    for i in range(min(TABLE_ROWS, k)):
        rows.append(f"| PC{i + 1} | " + " | ".join(f"{r.ratios[i]:.10f}" for r in res.routes.values()) + " |")
    st.markdown("\n".join(rows))
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.make_explained_figure(res), width="stretch", key="learn_pca_explained")
    with c2:
        st.plotly_chart(
            figures.make_pca_scores_figure(base, token_labels(cap)), width="stretch", key="learn_pca_scores"
        )


def _controls() -> tuple[float, float]:
    return (
        PAGE.slider(ANGLE, "Direction of the cloud (°)", step=1.0),
        PAGE.slider(RATIO, "Spread across / along", step=0.05),
    )


def render(prose: Prose) -> None:
    small_first(prose, _controls, _small, _model)
    link(["directions"], "PCA and UMAP of the hidden states, layer by layer")


def handout_figures(seed: int) -> list:
    """The default point cloud and its principal axes (the same for every seed)."""
    X = tm.point_cloud(ANGLE.default, RATIO.default)
    return [figures.make_cloud_figure(X, tm.pca_by_covariance(X, 2))]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "PCA from scratch"
PARAMS = (ANGLE.param, RATIO.param, "layer")
MODEL_LINK = {}
PREREQUISITES = ("psd",)
exercises = tm.pca_exercises
