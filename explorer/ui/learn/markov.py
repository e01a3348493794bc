"""Walkthrough: Markov chains, Perron-Frobenius and PageRank, on a toy attention head or one of the model's."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching_models as tm
from explorer.analysis.exercises import Exercise, instance_rng
from explorer.figures import learn_models as figures
from explorer.ui.learn.models_cache import MARKOV_STEPS, markov_on_head
from explorer.ui.learn.walkthrough import (
    PAGE,
    Prose,
    causal_note,
    head_pickers,
    layout,
    link,
    source_switch,
)
from explorer.ui.session import require_capture, selection, token_labels
from explorer.ui.state import Choice, Float, Int

ID = "markov"
SOURCE = source_switch("mk", "Toy head", "Head of the loaded model", model_value="head")
SIZE = Int("mk_n", 6, 2, 12, key="mk_n")
SHARPNESS = Float("mk_sharp", 1.5, 0.0, 5.0, key="mk_sharp")
MASKS = {"full": "Every token (encoder)", "causal": "Earlier tokens only (causal)"}
MASK = Choice("mk_mask", "full", MASKS, key="mk_mask")
DAMPING = Float("mk_d", tm.PAGERANK_DAMPING, 0.5, 1.0, key="mk_d")


def exercises(seed: int) -> tuple[Exercise, ...]:
    """A two-state chain: its stationary probability and its mixing rate |lambda_2| = |1 - a - b|."""
    rng = instance_rng(seed, ID, "two-state")
    a, b = (float(x) for x in rng.choice(np.arange(5, 95, 5), size=2, replace=False) / 100)
    P = f"P = [[{1 - a:.2f}, {a:.2f}], [{b:.2f}, {1 - b:.2f}]]"
    pi0 = b / (a + b)
    lam2 = abs(1 - a - b)
    return (
        Exercise(
            id="stationary",
            question=f"A chain on two states has {P} (row i: where state i goes next). In the long run, "
            "what fraction of the time is it in state 0, π₀?",
            answer=pi0,
            tolerance=0.01,
            hint="Balance the flow between the states: π₀ · P₀₁ = π₁ · P₁₀, with π₀ + π₁ = 1.",
            solution=f"π P = π with two states says π₀ a = π₁ b (a = P₀₁ = {a:.2f}, b = P₁₀ = {b:.2f}), so "
            f"π₀ = b / (a + b) = {b:.2f} / {a + b:.2f} = **{pi0:.4f}**.",
        ),
        Exercise(
            id="rate",
            question=f"Same chain, {P}. By what factor does the distance to π shrink each step, |λ₂|?",
            answer=lam2,
            tolerance=0.01,
            hint="The eigenvalues of a 2×2 matrix add up to its trace, and one of them is 1.",
            solution=f"λ₁ = 1 (rows sum to 1) and λ₁ + λ₂ = trace = {2 - a - b:.2f}, so λ₂ = 1 − a − b = "
            f"{1 - a - b:.2f} and |λ₂| = **{lam2:.4f}**.",
        ),
    )


def _example() -> tuple[tm.MarkovChain, None]:
    n = PAGE.slider(SIZE, "States n")
    sharp = PAGE.slider(SHARPNESS, "Sharpness of the toy attention", step=0.1,
                        help="Scores are Gaussian times this; 0 gives uniform rows.")  # fmt: skip
    mask = PAGE.segmented_control(MASK, "Keys each row may use", format_func=MASKS.get)
    damping = PAGE.slider(DAMPING, "Damping d (1: no teleport)", step=0.01)
    A = tm.attention_like(n, sharp, causal=mask == "causal")
    return tm.markov_chain(A, damping, MARKOV_STEPS), None


def render(prose: Prose) -> None:
    with layout(prose):
        source = SOURCE.pick("Matrix")
        if source == "example":
            chain, labels = _example()
            causal, model_id = PAGE.bind(MASK) == "causal", None
        else:
            loaded, cap = require_capture(single_token="a chain on one state is always there.")
            layer, head = head_pickers("mk", loaded.card.n_layers, loaded.card.n_heads)
            damping = PAGE.slider(DAMPING, "Damping d (1: no teleport)", step=0.01)
            sel = selection()
            chain = markov_on_head(sel.model_key, sel.text_key, layer, head, damping)
            labels, causal, model_id = token_labels(cap), cap.causal, loaded.id
    if source == "head" and causal:
        causal_note(model_id)
    cols = st.columns(4)
    cols[0].metric("λ₁", f"{chain.eigvals[0].real:.6g}", help="Perron-Frobenius: 1 for a stochastic matrix.")
    cols[1].metric("|λ₂|", f"{chain.lambda2:.4g}", help=f"At most the damping d = {chain.damping:g}.")
    cols[2].metric("largest π", f"{chain.pi.max():.4g}",
                   help=f"on state {int(chain.pi.argmax())}" + (f" ({labels[int(chain.pi.argmax())]})" if labels else ""))  # fmt: skip
    mix = chain.mixing_time
    cols[3].metric("mixing time", "—" if mix is None else f"{mix} steps",
                   help="First k with distance to π at most 1/4.")  # fmt: skip
    st.caption(
        f"P = {chain.damping:g}·A + {1 - chain.damping:.2g}·11ᵀ/n. The teleport makes every entry positive, so "
        f"Perron-Frobenius gives one stationary π > 0 and |λ₂| ≤ d (here {chain.lambda2:.4g} ≤ {chain.damping:g})."
        + (" With d = 1 a causal chain ends on token 0: it can only go back." if causal else "")
    )
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.make_stationary_figure(chain, labels), width="stretch", key="learn_mk_pi")
    with c2:
        st.plotly_chart(figures.make_mixing_figure(chain), width="stretch", key="learn_mk_mixing")
    link(["eigenvectors"], "The stationary distribution of every head over its tokens")
    link(["attention"], "|λ₂| and the spectral gap of every head")


def handout_figures(seed: int) -> list:
    """The toy head at its default settings (the handout has no model)."""
    chain = tm.markov_chain(tm.attention_like(SIZE.default, SHARPNESS.default), DAMPING.default, MARKOV_STEPS)
    return [figures.make_stationary_figure(chain), figures.make_mixing_figure(chain)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Markov chains & PageRank"
PARAMS = (SOURCE.param, SIZE.param, SHARPNESS.param, MASK.param, DAMPING.param, "layer", "head")
MODEL_LINK = SOURCE.model_link
PREREQUISITES = ("power",)
