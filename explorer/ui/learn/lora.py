"""Walkthrough: LoRA and the dominant eigenspace, on a small W or a LoRA fine-tuned on the loaded model."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import teaching_models as tm
from explorer.analysis.exercises import Exercise, instance_rng
from explorer.figures import learn_models as figures
from explorer.ui.learn.models_cache import CURVATURE_TOKENS, lora_spec, lora_work, watch_on_text
from explorer.ui.learn.walkthrough import PAGE, Prose, link, source_switch
from explorer.ui.session import require_model
from explorer.ui.state import Choice, Int

ID = "lora"
SOURCE = source_switch("lr", "Small W", "Fine-tune the loaded model")
RANK = Choice("lr_r", 2, [1, 2, 4, 8], key="lr_r")
WHERE = {"top": "W's top r directions", "middle": "W's next r directions", "random": "random directions"}
WHERE_SETTING = Choice("lr_where", "middle", WHERE, key="lr_where")
STEPS = Int("lr_steps", 5, 1, 40, key="lr_steps")
RATES = {1e-4: "1e-4", 3e-4: "3e-4", 1e-3: "1e-3", 3e-3: "3e-3", 1e-2: "1e-2"}
RATE = Choice("lr_lr", 1e-3, RATES, key="lr_lr")
M, N = 16, 12  # the small example's W is M x N


def exercises(seed: int) -> tuple[Exercise, ...]:
    """||B A||_F of a rank-1 update, and LoRA's parameter count."""
    rng = instance_rng(seed, ID, "norm")
    b = rng.integers(-3, 4, size=3)
    b[0] = b[0] or 1
    a = rng.integers(-3, 4, size=2)
    a[0] = a[0] or 2
    norm = float(np.linalg.norm(b) * np.linalg.norm(a))
    rng2 = instance_rng(seed, ID, "params")
    m, n = (int(x) for x in rng2.choice([64, 128, 256, 576, 768], size=2))
    r = int(rng2.choice([1, 2, 4, 8, 16]))
    return (
        Exercise(
            id="norm",
            question=f"A rank-1 update ΔW = b aᵀ with b = {b.tolist()} and a = {a.tolist()}. What is ‖ΔW‖_F?",
            answer=norm,
            tolerance=0.01,
            hint="‖b aᵀ‖_F² = Σᵢⱼ bᵢ² aⱼ²; it factors.",
            solution=f"‖b aᵀ‖_F = ‖b‖ ‖a‖ = √{int(b @ b)} · √{int(a @ a)} = **{norm:.4f}** (also its only "
            "nonzero singular value).",
        ),
        Exercise(
            id="params",
            question=f"LoRA of rank r = {r} on a {m} × {n} matrix trains B ({m} × r) and A (r × {n}). How many "
            "parameters does it train?",
            answer=float(r * (m + n)),
            tolerance=0.5,
            hint="Count the entries of B and of A.",
            solution=f"r(m + n) = {r} × ({m} + {n}) = **{r * (m + n)}**, against {m * n} for the full matrix "
            f"({100 * r * (m + n) / (m * n):.2g} %).",
        ),
    )


def _example(controls) -> None:
    r = PAGE.segmented_control(RANK, "Rank r", where=controls)
    where = PAGE.selectbox(WHERE_SETTING, "ΔW along", where=controls, format_func=WHERE.get)
    W, dW = tm.lora_example(M, N, r, where)
    sub = tm.lora_subspace(W, dW, r)
    _metrics(sub.top_share, sub.amplification, sub.projected, sub.w_top)
    st.caption(
        f"W is {M}×{N} with singular values 1, 1/2, 1/3, …; ΔW = BA has rank {sub.rank} and unit singular values. "
        f"‖UᵀWV‖_F is {sub.projected:.3g} on ΔW's directions, {sub.w_top:.3g} on W's own top-{sub.rank} and "
        f"{sub.w_random:.3g} on random ones."
    )
    st.plotly_chart(figures.make_lora_example_figure(sub), width="stretch", key="learn_lr_example")


def _metrics(top_share: float, amplification: float, projected: float, w_top: float) -> None:
    cols = st.columns(3)
    cols[0].metric("ΔW's share in W's top-r", f"{top_share:.3f}",
                   help="‖U_rᵀ ΔW V_r‖_F / ‖ΔW‖_F with U_r, V_r W's top-r singular vectors.")  # fmt: skip
    cols[1].metric("‖UᵀWV‖_F / ‖W's top-r‖", f"{projected / w_top:.3g}" if w_top > 0 else "—",
                   help="How much of W's top-r energy lies in ΔW's directions (1: the same directions).")  # fmt: skip
    cols[2].metric(
        "amplification", f"{amplification:.3g}", help="‖ΔW‖_F / ‖UᵀWV‖_F (Hu et al. 2021, section 7)."
    )


def _model(controls) -> None:
    loaded = require_model()
    r = PAGE.segmented_control(RANK, "Rank r", where=controls)
    steps = PAGE.slider(STEPS, "Adam steps", where=controls)
    lr = PAGE.segmented_control(RATE, "Learning rate", where=controls, format_func=RATES.get)
    run = watch_on_text(
        lora_spec,
        lora_work,
        r,
        steps,
        lr,
        label=f"Fine-tuning a rank-{r} LoRA for {steps} steps on a copy of {loaded.id}",
        failure="The LoRA fine-tune failed; try fewer steps or another text",
        key="learn_lr_task",
    )
    if run is None:
        return
    i = int(np.argmax(run.amplification))
    cols = st.columns(4)
    cols[0].metric("loss", f"{run.losses[-1]:.4g}", delta=f"{run.losses[-1] - run.losses[0]:+.3g}",
                   delta_color="inverse", help=f"Before: {run.losses[0]:.4g} nats.")  # fmt: skip
    cols[1].metric("median share in W's top-r", f"{np.median(run.top_share):.3g}")
    cols[2].metric("median amplification", f"{np.median(run.amplification):.3g}")
    cols[3].metric("largest amplification", f"{run.amplification[i]:.3g}", help=run.names[i])
    what = (
        f"the next-token loss on the first {CURVATURE_TOKENS} tokens of the text"
        if loaded.causal
        else f"the contrastive loss on the shipped sentence pairs (each cut at {CURVATURE_TOKENS} tokens)"
    )
    d = loaded.card.d_model
    st.caption(
        f"Adapters on W_q and W_v of every block (GPT-2: the fused c_attn) of a copy that shares {loaded.id}'s "
        f"weights without writing them; {steps} Adam steps at {RATES[lr]} on {what}. A random rank-{r} update "
        f"of a {d}×{d} matrix would have a share of about r/d = {r / d:.2g} in W's top-{r}."
    )
    st.plotly_chart(figures.make_lora_model_figure(run), width="stretch", key="learn_lr_model")


def render(prose: Prose) -> None:
    SOURCE.beside_intro(prose, "Update", _example, _model)
    link(["weights"], "The singular values of every weight matrix of the loaded model")
    link(["compression"], "Low-rank compression: keeping W's top singular directions")


def handout_figures(seed: int) -> list:
    """The small example at its default rank and directions (the handout has no model)."""
    W, dW = tm.lora_example(M, N, RANK.default, WHERE_SETTING.default)
    return [figures.make_lora_example_figure(tm.lora_subspace(W, dW, RANK.default))]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "LoRA & the dominant eigenspace"
PARAMS = (SOURCE.param, RANK.param, WHERE_SETTING.param, STEPS.param, RATE.param)
MODEL_LINK = SOURCE.model_link
PREREQUISITES = ("svd",)
