"""Walkthrough 4: softmax temperature replayed exactly on a head of the loaded model."""

from __future__ import annotations

import streamlit as st

from explorer.analysis import teaching
from explorer.figures import learn as figures
from explorer.ui.learn.walkthrough import PAGE, Prose, causal_note, head_pickers, layout, link
from explorer.ui.learn_cache import temperature_on_head
from explorer.ui.session import require_capture, selection
from explorer.ui.state import Float

ID = "temperature"
TAUS = teaching.default_taus()
HANDOUT_TOKENS = 12  # the synthetic head of the handout's figure
TAU = Float("tau", 1.0, float(TAUS[0]), float(TAUS[-1]), key="temp_tau", digits=3)


def _tau_slider() -> float:
    """τ on the sweep's grid: a link's value goes to the nearest grid temperature (on a log scale)."""
    requested = PAGE.bind(TAU)
    PAGE.set(TAU, float(TAUS[teaching.nearest_on_log_scale(TAUS, requested)]))
    return PAGE.select_slider(
        TAU, "Temperature τ", [float(t) for t in TAUS], format_func=lambda t: f"{t:.3g}"
    )


def render(prose: Prose) -> None:
    loaded, cap = require_capture()
    with layout(prose):
        if cap.n_tokens < 2:
            st.warning(
                "The text has a single token: type a longer text in the sidebar.", icon=":material/warning:"
            )
            return
        layer, head = head_pickers("temp", loaded.card.n_layers, loaded.card.n_heads)
        tau = _tau_slider()

    sel = selection()
    with st.spinner(f"Computing eigenvalues at {len(TAUS)} temperatures…"):
        sweep = temperature_on_head(sel.model_key, sel.text_key, layer, head, cap.causal)
    if sweep.n < sweep.n_total:
        st.caption(
            f"Using the first {sweep.n} of {sweep.n_total} tokens"
            + (
                " (for a causal model that block is exactly their attention)."
                if cap.causal
                else ", rows renormalised."
            )
        )
    if cap.causal:
        causal_note(loaded.id)
        st.caption(
            "So every eigenvalue here is real and lies in [0, 1]. As τ → 0 each a_ii becomes 1 (token attends "
            "most to itself) or 0; as τ → ∞ row i becomes uniform over i + 1 tokens, so the eigenvalues go to "
            "1, 1/2, 1/3, … and not to the rank-1 picture of bidirectional models."
        )
    i = sweep.index_of(tau)
    cols = st.columns(3)
    cols[0].metric(f"|λ₂| at τ = {tau:.3g}", f"{sweep.second_modulus[i]:.4g}")
    cols[1].metric("|λ₂| at τ = 1 (the model)", f"{sweep.second_modulus[sweep.index_of(1.0)]:.4g}")
    cols[2].metric(
        "row entropy / log(#keys)", f"{sweep.entropy[i]:.3f}", help="0: one-hot rows; 1: uniform rows."
    )
    c1, c2 = st.columns([3, 2])
    with c1:
        fig = figures.make_temperature_animation_figure(
            sweep, start_index=i, title=f"Layer {layer}, head {head}: eigenvalues of A_τ ({sweep.n} tokens)"
        )
        st.plotly_chart(fig, width="stretch", key="learn_temperature")
    with c2:
        st.plotly_chart(
            figures.make_temperature_summary_figure(sweep, tau=tau), width="stretch", key="learn_temp_summary"
        )
    link(["attention"], "Every head's spectrum, and the temperature what-if on all heads at once")


def handout_figures(seed: int) -> list:
    """|λ₂| and row entropy against τ for a synthetic causal head of 12 tokens (a handout has no model; the page
    replays a real head). The same for every seed."""
    sweep = teaching.temperature_sweep(teaching.example_attention(HANDOUT_TOKENS), causal=True, taus=TAUS)
    return [figures.make_temperature_summary_figure(sweep, tau=TAU.default)]


# The walkthrough's record (explorer/ui/learn/walkthrough.py's from_module reads these names).
TITLE = "Softmax temperature"
PARAMS = ("layer", "head", TAU.param)
MODEL_LINK = {}  # always on a head of the loaded model
PREREQUISITES = ("power",)
exercises = teaching.temperature_exercises
