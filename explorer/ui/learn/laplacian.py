"""Walkthrough: the graph Laplacian and spectral clustering, on two cliques or a head's token graph."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching_models as tm
from explorer.analysis.exercises import Exercise, instance_rng
from explorer.figures import learn_models as figures
from explorer.ui.learn.models_cache import fiedler_on_head
from explorer.ui.learn.walkthrough import PAGE, Prose, head_pickers, layout, link, source_switch
from explorer.ui.session import require_capture, selection, token_labels
from explorer.ui.state import Choice, Float, Int

ID = "laplacian"
SOURCE = source_switch("lp", "Two cliques", "Tokens of the loaded model", model_value="head")
LEFT = Int("lp_a", 5, 2, 10, key="lp_a")
RIGHT = Int("lp_b", 4, 2, 10, key="lp_b")
BRIDGE = Float("lp_w", 1.0, 0.0, 5.0, key="lp_w")
KINDS = {"plain": "L = D − W", "normalized": "I − D^-½ W D^-½"}
KIND = Choice("lp_norm", "plain", KINDS, key="lp_norm")
MAX_SHOWN_WORDS = 160  # tokens shown coloured under the chart


def exercises(seed: int) -> tuple[Exercise, ...]:
    """The trace of L from the edge weights, and the number of zero eigenvalues of a graph of cliques."""
    rng = instance_rng(seed, ID, "trace")
    n = 4
    W = np.triu(rng.integers(0, 4, size=(n, n)).astype(float), 1)
    W = W + W.T
    edges = ", ".join(f"{i}–{j}: {int(W[i, j])}" for i in range(n) for j in range(i + 1, n) if W[i, j])
    trace = float(W.sum())  # sum of degrees = twice the total edge weight
    rng2 = instance_rng(seed, ID, "components")
    sizes = [int(s) for s in rng2.integers(2, 5, size=int(rng2.integers(1, 5)))]
    k = len(sizes)
    return (
        Exercise(
            id="trace",
            question=f"A graph on 4 nodes has the weighted edges {edges or 'none'}. What is the sum of the "
            "eigenvalues of its Laplacian L = D − W?",
            answer=trace,
            tolerance=0.01,
            hint="The sum of the eigenvalues is the trace, and L's diagonal holds the degrees.",
            solution=f"Σλᵢ = trace L = Σᵢ dᵢ, and each edge adds its weight to two degrees: 2 × "
            f"{trace / 2:g} = **{trace:g}**.",
        ),
        Exercise(
            id="components",
            question=f"A graph is made of {k} separate complete graphs with "
            f"{', '.join(map(str, sizes))} nodes and no edges between them. How many eigenvalues of L are 0?",
            answer=k - 1,
            choices=tuple(str(c) for c in range(1, 6)),
            hint="xᵀLx = Σ over edges w_ij (x_i − x_j)²: it is 0 exactly when x is constant on each connected piece.",
            solution=f"L x = 0 exactly when x is constant on each connected component, so the null space has one "
            f"dimension per component: **{k}** zero eigenvalues.",
        ),
    )


def _words(split: tm.FiedlerSplit, texts: list[str]) -> str:
    """The text with each token coloured by its side of the cut (markdown)."""
    shown = []
    for text, side in list(zip(texts, split.side, strict=True))[:MAX_SHOWN_WORDS]:
        color = "blue" if side else "orange"
        word = text.replace("\n", " ").strip() or "·"
        shown.append(f":{color}[{word.replace('[', '(').replace(']', ')')}]")
    more = len(texts) - MAX_SHOWN_WORDS
    return " ".join(shown) + (f" … ({more} more)" if more > 0 else "")


def render(prose: Prose) -> None:
    with layout(prose):
        source = SOURCE.pick("Graph")
        kind = PAGE.segmented_control(KIND, "Laplacian", format_func=KINDS.get)
        if source == "example":
            a = PAGE.slider(LEFT, "First clique: nodes")
            b = PAGE.slider(RIGHT, "Second clique: nodes")
            w = PAGE.slider(BRIDGE, "Weight of the one bridge edge", step=0.1)
            split = tm.fiedler_split(tm.two_cliques(a, b, w), kind == "normalized")
            labels, texts = None, None
        else:
            loaded, cap = require_capture(single_token="a graph needs two nodes to split.")
            layer, head = head_pickers("lp", loaded.card.n_layers, loaded.card.n_heads)
            sel = selection()
            split = fiedler_on_head(sel.model_key, sel.text_key, layer, head, kind == "normalized")
            labels, texts = token_labels(cap), cap.token_texts
    n_pos = int(split.side.sum())
    cols = st.columns(4)
    cols[0].metric(
        "λ₁",
        "0" if abs(split.eigvals[0]) <= 1e-9 * max(split.eigvals[-1], 1.0) else f"{split.eigvals[0]:.2g}",
        help=f"Always 0: L·1 = 0 (constant vectors); computed {split.eigvals[0]:.1e} in floating point.",
    )
    cols[1].metric(
        "λ₂", f"{split.connectivity:.4g}", help="Algebraic connectivity: 0 iff the graph is disconnected."
    )
    cols[2].metric("sides", f"{n_pos} | {len(split.side) - n_pos}", help="Nodes with v₂ ≥ 0 | v₂ < 0.")
    cols[3].metric("cut weight", f"{split.cut:.4g}", help="Total weight of edges between the two sides.")
    if source == "example":
        found = bool(np.all(split.side[:a] == split.side[0]) and np.all(split.side[a:] != split.side[0]))
        st.caption(
            ("The sign of v₂ separates the two cliques exactly" if found else "The sign of v₂ does not follow the cliques here")
            + f" (cut weight {split.cut:.3g}"
            + (", the bridge alone)." if found else ").")
            + (" With no bridge the graph is disconnected: λ₂ = 0 and v₂ can be any mix of the two clique indicators."
               if w == 0 else "")
        )  # fmt: skip
    else:
        st.caption(
            "W = (A + Aᵀ)/2 with its diagonal removed (a token attending to itself is no edge). Tokens coloured by "
            "the sign of v₂ (blue ≥ 0, orange < 0):"
        )
        st.markdown(_words(split, texts))
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.make_fiedler_figure(split, labels), width="stretch", key="learn_lp_fiedler")
    with c2:
        st.plotly_chart(
            figures.make_laplacian_spectrum_figure(split), width="stretch", key="learn_lp_spectrum"
        )
    link(["eigenvectors"], "The symmetric part (A + Aᵀ)/2 of every head and its eigenvectors over the tokens")


def handout_figures(seed: int) -> list:
    """Two cliques and a bridge at the default sizes (the handout has no model)."""
    split = tm.fiedler_split(tm.two_cliques(LEFT.default, RIGHT.default, BRIDGE.default))
    return [figures.make_fiedler_figure(split), figures.make_laplacian_spectrum_figure(split)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Graph Laplacian & spectral clustering"
PARAMS = (SOURCE.param, KIND.param, LEFT.param, RIGHT.param, BRIDGE.param, "layer", "head")
MODEL_LINK = SOURCE.model_link
PREREQUISITES = ("rayleigh",)
