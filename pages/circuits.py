"""QK/OV circuits: OV eigenvalues and copying scores of every head; QK and OV singular values of one head."""

import numpy as np
import streamlit as st

from explorer.figures.circuits import (
    make_circuit_singular_values_figure,
    make_copying_heatmap_figure,
    make_ov_eigenvalue_figure,
)
from explorer.ui import circuits_compare, compare_view
from explorer.ui.session import require_model, selection
from explorer.ui.state import PageState, head_picker
from explorer.ui.weights_cache import cached_circuits

st.title("QK/OV circuits")
st.markdown(
    "Each attention head is two circuits made of its weights alone (Elhage et al. 2021). The **OV circuit** "
    r"$W_{OV} = W_V W_O$ (d_model × d_model, rank ≤ d_head) decides *what* a head writes into the residual "
    r"stream for a token it attends to; the **QK circuit** $W_{QK} = W_Q W_K^\top$ decides *where* it attends. "
    r"The nonzero eigenvalues of $W_{OV}$ equal those of the small d_head × d_head core $W_O W_V$, so they are "
    r"computed there. The **copying score** $\sum_i \mathrm{Re}\,\lambda_i / \sum_i |\lambda_i|$ is +1 when "
    "the head writes back what it reads (positive eigenvalues: copying), −1 when it writes the opposite "
    "(suppression), near 0 when it rotates."
)

PAGE = PageState("circuits")
loaded = require_model()
card = loaded.card
sel = selection()
circuits = cached_circuits(sel.model_key)

if circuits.grouped:
    group = card.n_heads // circuits.n_kv_heads
    st.info(
        f"Grouped-query attention: {card.n_heads} query heads share {circuits.n_kv_heads} key/value heads "
        f"(query head $h$ reads K/V head $g = \\lfloor h / {group} \\rfloor$). Convention here: every query head has its "
        r"own circuits, $W_{QK}^h = W_Q^h (W_K^g)^\top$ and $W_{OV}^h = W_V^g W_O^h$; heads of one group share "
        "$W_K$ and $W_V$ but not $W_Q$ or $W_O$, so their circuits differ.",
        icon=":material/call_split:",
    )
st.caption(
    f"{card.n_layers} layers × {card.n_heads} heads, d_head = {circuits.d_head}. Raw weights: biases and the "
    "scales of the layer norm before attention are not folded in; the QK circuit is taken before the "
    "1/√d_head scale and before any rotary position encoding."
)

st.subheader("Copying score of every head")
st.plotly_chart(make_copying_heatmap_figure(circuits), width="stretch", key="circuits_heatmap")
scores = circuits.copying_score
top = np.unravel_index(np.nanargmax(scores), scores.shape)
bottom = np.unravel_index(np.nanargmin(scores), scores.shape)
st.caption(
    f"Strongest copier: layer {top[0]} head {top[1]} ({scores[top]:+.3f}); strongest suppressor: layer "
    f"{bottom[0]} head {bottom[1]} ({scores[bottom]:+.3f}). Hover a cell for its value."
)


@st.fragment
def head_section() -> None:
    st.subheader("One head")
    # Opens on the strongest copier.
    layer, head = head_picker(PAGE, card.n_layers, card.n_heads, default=(int(top[0]), int(top[1])))
    ov, qk = circuits.ov_sigma[layer, head], circuits.qk_sigma[layer, head]
    cols = st.columns(4)
    cols[0].metric("copying score", f"{circuits.copying_score[layer, head]:+.3f}")
    cols[1].metric(
        "largest |λ| of W_OV",
        f"{np.abs(circuits.ov_eigvals[layer, head]).max():.3g}",
        help="Spectral radius of the OV circuit: how much a copied direction is amplified.",
    )
    cols[2].metric("‖W_OV‖₂", f"{ov[0]:.3g}", help="Largest singular value of the OV circuit.")
    cols[3].metric("‖W_QK‖₂", f"{qk[0]:.3g}", help="Largest singular value of the QK circuit.")
    if circuits.grouped:
        kv = int(circuits.kv_head[head])
        mates = [int(h) for h in np.flatnonzero(circuits.kv_head == kv) if h != head]
        st.caption(f"Head {head} reads key/value head {kv}, shared with heads {', '.join(map(str, mates))}.")
    a, b = st.columns(2)
    with a:
        st.plotly_chart(
            make_ov_eigenvalue_figure(circuits, layer, head), width="stretch", key="circuits_ov_eig"
        )
    with b:
        st.plotly_chart(
            make_circuit_singular_values_figure(circuits, layer, head), width="stretch", key="circuits_sigma"
        )
    st.caption(
        "Eigenvalues on the right half-plane (red) copy, on the left (blue) suppress; complex pairs rotate the "
        "subspace they act on. The eigenvalues of a non-symmetric W_OV need not match its singular values: "
        "a large σ with small |λ| means the head moves information into a different subspace rather than "
        "amplifying it in place."
    )


head_section()

st.subheader("Compare with a variant")
vs = compare_view.compare_control(PAGE)
if vs is not None:
    circuits_compare.draw(PAGE, sel, loaded, circuits, vs)
