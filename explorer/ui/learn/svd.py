"""Walkthrough 6: the SVD and the best rank-k approximation (Eckart-Young), on a picture or a model weight."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching
from explorer.figures import learn as figures
from explorer.ui.learn.walkthrough import PAGE, Prose, layer_picker, layout, link
from explorer.ui.learn_cache import weight_svd
from explorer.ui.session import require_model, selection
from explorer.ui.state import Choice, Int

ID = "svd"
SOURCES = {"image": "Picture", "weight": "Weight of the loaded model"}
SOURCE = Choice("source", "image", SOURCES, key="svd_source")
KIND = Choice("kind", "attn_q", teaching.WEIGHT_KINDS, key="svd_kind")
KIND_LABELS = {"attn_q": "query W_Q", "attn_k": "key W_K", "attn_v": "value W_V", "attn_o": "output W_O"}
IMAGE_NAME = "a 72×96 picture"
IMAGE_DEFAULT_K = 4  # a few rank-one layers: enough for the sky and the house, not the sun


def _weight_picker():
    """Layer and weight kind of the loaded model; returns (name, SVDFactors), or None after an error box."""
    loaded = require_model()
    layer = layer_picker("svd", loaded.card.n_layers)
    kind = PAGE.selectbox(KIND, "Weight", format_func=KIND_LABELS.get)
    sel = selection()
    try:
        with st.spinner("Computing the SVD…"):
            name, factors = weight_svd(sel.model_key, layer, kind)
    except ValueError as err:
        st.error(f"{err} Pick another layer or weight.", icon=":material/error:")
        return None
    for note in loaded.notes:
        if any(w in note.lower() for w in ("quantiz", "random weights")):  # what these weights are
            st.caption(note)
    return name, factors


def _metrics(res: teaching.LowRank) -> None:
    cols = st.columns(5)
    cols[0].metric("‖W − W_k‖_F measured", f"{res.error_fro:.5g}")
    cols[1].metric(
        "√(Σ_{i>k} σᵢ²)", f"{res.error_eckart_young:.5g}", help="Eckart-Young: equal to the measured error."
    )
    cols[2].metric("‖W − W_k‖₂ = σ_{k+1}", f"{res.error_spectral:.4g}")
    cols[3].metric(
        "energy kept",
        f"{100 * res.energy_kept:.2f} %",
        help=f"k₉₀ = {res.k90}, k₉₉ = {res.k99} (energy ranks).",
    )
    cols[4].metric(
        "parameters k(m+n)",
        f"{res.params_low:,}",
        delta=f"{100 * res.params_change:+.1f} % vs mn = {res.params_full:,}",
        delta_color="inverse",  # fewer parameters is the good direction
        help=f"A saving only when k < mn/(m+n) = {res.break_even:.1f}.",
    )


def render(prose: Prose) -> None:
    with layout(prose):
        source = PAGE.segmented_control(SOURCE, "Matrix", format_func=SOURCES.get)
        if source == "weight":
            picked = _weight_picker()
            if picked is None:
                return
            name, factors = picked
            default_k = max(1, factors.rank_max // 8)
        else:
            name, factors = IMAGE_NAME, teaching.svd_factors(teaching.image_matrix())
            default_k = IMAGE_DEFAULT_K
        k = PAGE.slider(Int("k", default_k, 0, factors.rank_max, key="svd_k"), "Rank k")
    res = teaching.best_rank_k(factors, k)
    m, n_cols = res.matrix.shape
    st.markdown(f"**{name}**, shape {m}×{n_cols}, rank ≤ {factors.rank_max}.")
    _metrics(res)
    st.plotly_chart(
        figures.make_low_rank_figure(res, image=source == "image"), width="stretch", key="learn_svd_images"
    )
    st.plotly_chart(figures.make_svd_error_figure(res), width="stretch", key="learn_svd_error")
    link(["compression", "weights"], "What low-rank weights cost the loaded model's quality, measured")


def handout_figures(seed: int) -> list:
    """The default view: the picture at rank 4 and the Eckart-Young error for every rank. The same for every
    seed (the exercises state their own singular values)."""
    res = teaching.best_rank_k(teaching.svd_factors(teaching.image_matrix()), IMAGE_DEFAULT_K)
    return [figures.make_low_rank_figure(res, image=True), figures.make_svd_error_figure(res)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "SVD & low rank"
PARAMS = (SOURCE.param, "layer", KIND.param, "k")
MODEL_LINK = {SOURCE.param: "weight"}
PREREQUISITES = ("matrix2x2",)
exercises = teaching.svd_exercises
