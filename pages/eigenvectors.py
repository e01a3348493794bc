"""Eigenvectors of one attention head over the tokens, and its stationary distribution: the tokens the head
keeps returning to."""

import numpy as np
import streamlit as st

from explorer.analysis.attention import VECTOR_KINDS
from explorer.figures.eigenvectors import (
    make_eigenvector_heatmap_figure,
    make_stationary_figure,
    top_tokens_table,
)
from explorer.ui.attention_cache import (
    EIGENVECTORS_INTRO,
    attention_head_picker,
    cached_head_eigenvectors,
    require_head_inputs,
)
from explorer.ui.attention_view import vectors_note
from explorer.ui.session import token_labels
from explorer.ui.state import Choice, Float, Int, PageState

COLOR_MODES = {"signed": "signed value (sign / phase)", "magnitude": "magnitude |vᵢ|"}
MAX_K = 12
PAGE = PageState("eigenvectors")
COLOR = Choice("color", "signed", COLOR_MODES)
TAU = Float("tau", 1.0, 0.1, 5.0)
DAMPING = Float("damping", 0.85, 0.5, 0.99)

loaded, cap, sel, n_layers, n_heads, n_tokens = require_head_inputs(
    "Eigenvectors", EIGENVECTORS_INTRO, single_token="there is only one eigenvector, [1]."
)

KIND = Choice("vectors", "symmetric" if cap.causal else "right", VECTOR_KINDS, key="kind")
K = Int("k", 6, 1, min(MAX_K, n_tokens))

left, right = st.columns([3, 2])
with left:
    layer, head = attention_head_picker(PAGE, n_layers, n_heads)
with right:
    kind = PAGE.selectbox(
        KIND,
        "Vectors",
        format_func=lambda name: VECTOR_KINDS[name],
        help="Right eigenvectors can be complex (then colour = the part in phase with the largest entry); the "
        "symmetric part and the singular vectors are real and orthonormal.",
    )

a, b, c, d = st.columns(4)
k = PAGE.slider(
    K, "How many vectors (k)", where=a, help="The top k, ordered by |eigenvalue| (or singular value)."
)
mode = PAGE.radio(COLOR, "Colour", where=b, format_func=COLOR_MODES.get)
tau = PAGE.slider(
    TAU, "Temperature τ", where=c, step=0.05, help="A_τ = row-softmax(log A / τ); 1 is the captured head."
)
damping = PAGE.slider(
    DAMPING,
    "PageRank damping",
    where=d,
    step=0.01,
    help="π = damping · πA + (1 − damping)/T: with probability 1 − damping the walk restarts at a random token.",
)

if cap.causal:
    st.info(
        "**Causal head:** A is lower-triangular, so the right eigenvector of the diagonal entry a_kk is zero "
        "on every token before k, and these vectors are nearly parallel (A is far from normal). The symmetric "
        "part and the singular vectors are orthonormal bases and usually read better. Without a teleport the "
        "walk would end on token 0 (it attends only to itself), hence the PageRank damping.",
        icon=":material/change_history:",
    )

with st.spinner("Computing eigenvectors…"):
    result = cached_head_eigenvectors(
        sel.model_key, sel.text_key, layer, head, kind, int(k), float(tau), float(damping)
    )

labels = token_labels(cap, sel)
st.plotly_chart(
    make_eigenvector_heatmap_figure(result, labels, mode=mode), width="stretch", key="eigenvectors_heatmap"
)
if kind == "right" and not result.is_real.all():
    st.caption(
        f"{int((~result.is_real).sum())} of these vectors are complex (conjugate pairs of eigenvalues): "
        "each is scaled so its largest entry is real and positive; hover for magnitude and phase."
    )
else:
    st.caption(
        "Signs are fixed so each vector's largest entry is positive (an eigenvector's sign is arbitrary)."
    )
krylov_note = vectors_note(result)
if krylov_note:
    st.caption(krylov_note)

st.subheader("Top tokens per vector")
st.dataframe(top_tokens_table(result, labels), hide_index=True, width="stretch", key="eigenvectors_top")

st.subheader("Stationary distribution")
st.plotly_chart(
    make_stationary_figure(result.stationary, labels, damping=result.damping),
    width="stretch",
    key="eigenvectors_stationary",
)
order = np.argsort(-result.stationary, kind="stable")[:5]
st.markdown(
    "The head keeps returning to: "
    + ", ".join(f"**{labels[i]}** (π = {result.stationary[i]:.3f})" for i in order)
    + f" · uniform would be {1 / n_tokens:.3f}."
)
