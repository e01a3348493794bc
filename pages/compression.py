"""Compression for decisions: how small can the model get at the quality you accept? The budget view (first),
measured in the background on the held-out passage over every method (low rank, fewer bits, both), each method's
answer with a button that sets the free controls to it, then the free controls (any store: low rank, fewer
bits, both) with their measured card and its downloads (report, table, compressed weights), latency, allocated
ranks, the per-matrix table and a greedy continuation.
Thin: settings, rows, following the answer, watching the budget's tasks and measuring a setting in
explorer.ui.compression_view, tasks and caching in explorer.ui.compression_cache / quantization_cache, words in
explorer.ui.compression_text, figures in explorer.figures."""

import pandas as pd
import streamlit as st

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import METHOD_LABELS
from explorer.errors import ExplorerError
from explorer.figures.compression import (
    make_pareto_figure,
)
from explorer.figures.quantization import make_tradeoff_figure
from explorer.ui import compression_cache as cc
from explorer.ui import compression_text as words
from explorer.ui import compression_view as view
from explorer.ui.session import require_model, selection

st.title("Compression what-if")
st.caption(
    "Replace weight matrices by low-rank factors W ≈ A·B, store them with fewer bits, or both: how much smaller "
    "can the model get at the quality you accept? Everything is measured on the model itself, on a separate "
    "copy: the loaded model never changes."
)

loaded = require_model()
sel = selection()
shapes = comp.kind_shapes(loaded.model)
if not shapes:
    st.error("This model has no attention, MLP or embedding matrices that this page knows how to factor.")
    st.stop()

causal = loaded.causal
ctl = view.controls(shapes, causal)
PAGE = ctl.page


# Read before the budget view: it measures the chosen groups (ticked below) with the chosen calibration.
kinds = PAGE.ticked(ctl.groups)
calib = PAGE.bind(ctl.calibration)
kinds_key = tuple(k for k in shapes if k in kinds)
calibration = cc.Calibration(calib, sel.text, sel.max_tokens) if calib == "text" else cc.Calibration()

# ====================================================================================== the budget view
st.subheader("How small can it get at the quality you accept?")
b1, b2, b3 = st.columns([1.2, 1, 2])
metric = PAGE.selectbox(
    ctl.budget_metric,
    "Quality budget",
    where=b1,
    format_func=words.BUDGET_METRIC_LABELS.get,
    help="Causal LM: perplexity increase on the held-out passage, or mean KL divergence of the next-token "
    "distributions. Encoder: mean cosine of the sentence embeddings to the original's, or the rank "
    "correlation of the pairwise similarities.",
)
for other, setting in ctl.budget_values.items():
    if other != metric:
        PAGE.bind(setting, link=False)
limit_label, limit_options = view.limit_widget(metric, causal)
limit = PAGE.number_input(ctl.budget_values[metric], limit_label, where=b2, **limit_options)
budget = view.budget_of(metric, limit, causal)
b3.markdown("**Low-rank methods searched** (fewer bits and both are always measured)")
budget_methods = PAGE.checkboxes(ctl.budget_methods, METHOD_LABELS.get, where=b3)
methods_key = tuple(m for m in cc.BUDGET_METHODS if m in budget_methods) if kinds_key else ()
state = view.measure_budget(
    loaded,
    sel.model_key,
    kinds_key,
    calibration,
    methods_key,
    budget,
    (PAGE.bind(ctl.heal_steps), PAGE.bind(ctl.heal_lr)),
)
original, points, all_points, chosen = state.original, state.points, state.all_points, state.chosen
answer_point = state.answer_point
following = view.follow_answer(ctl, answer_point)
original_bytes = loaded.card.n_params * comp.BYTES_PER_PARAM

with st.container(border=True):
    if all_points:
        left, right = st.columns([3, 1])
        left.markdown(
            f"#### {words.tradeoff_headline(state.overall, state.overall_closest, original, original_bytes, budget)}"
        )
        if answer_point is not None and view.appliable(answer_point.recipe):
            if right.button(
                "Use these settings",
                key="compression_use_best",
                icon=":material/done:",
                type="primary",
                help=f"Sets the free controls below to {words.setting_phrase(answer_point)}.",
            ):
                view.use(ctl, answer_point.recipe)
        st.caption(
            words.scope_sentence(view.scope_of(loaded, kinds_key), state.budget_tokens)
            + (
                " Still measuring: the answer can still improve."
                if state.quant_running or state.running
                else ""
            )
        )
    headline, how = words.answer_headline(state.best, state.closest, original, budget, kinds_key)
    st.markdown(f"##### Low rank alone: {headline}")
    if chosen is not None:
        left, right = st.columns([3, 1])
        left.caption(
            f"{how}; {chosen.params_model_after / 1e6:.1f} M parameters, {words.size_phrase(chosen.bytes)} at "
            f"fp16 (original {chosen.params_model_before / 1e6:.1f} M, "
            f"{words.size_phrase(chosen.params_model_before * comp.BYTES_PER_PARAM)}). Measured on the held-out "
            f"passage ({state.budget_tokens} tokens{'' if loaded.causal else ' and the shipped sentence set'}), never "
            "seen in calibration."
        )
        if right.button("Use the low-rank setting", key="compression_use_lowrank", icon=":material/tune:"):
            view.use(ctl, chosen.recipe)
    view.watch_fewer_bits(state)
    view.watch_sweep(state)
    if not kinds_key:
        st.caption("Choose at least one weight group below to compress.")
    elif not methods_key:
        st.caption("Choose at least one low-rank method to search.")

if state.rows:
    with st.expander(f"Each method's answer ({len(state.rows)} ways of shrinking the model)", expanded=True):
        view.draw_rows(ctl, state, causal)

attr_line = view.budget_line(budget, original)
if state.answers and points:
    st.plotly_chart(
        make_pareto_figure(
            points, original=original, budget_line=attr_line, measured_on="the held-out passage"
        ),
        width="stretch",
        key="compression_pareto",
    )
    st.caption(
        "Each line: one method, its matrices keeping "
        f"{', '.join(f'{s:.0%}' for s in comp.KEPT_SHARES)} of their parameters; solid: the same share for "
        "every matrix, dashed: the same parameter count allocated where it lowers the calibration output "
        "error most. Quality on the held-out passage."
    )
    st.download_button(
        "Download the sweep (CSV)",
        pd.DataFrame(comp.sweep_records(points, kinds_key)).to_csv(index=False),
        file_name=f"compression_sweep_{loaded.id.replace('/', '_')}.csv",
        mime="text/csv",
        key="compression_sweep_csv",
    )


# ====================================================================================== fewer bits
st.subheader("Low rank, fewer bits, or both?")
st.caption(
    "The same groups stored with fewer bits instead (int8 per row; 4 bits in groups of 32, 64 or 128, with or "
    "without an offset), the top singular directions kept at fp16 with a 4-bit residual, and SVD-LLM factors "
    "stored in int8. Each is measured like the low-rank settings, on the held-out passage; storage counts the "
    "real bytes (codes, scales, offsets), every other weight at fp16."
)

# Healing: an explicit action on the low-rank answer (or the closest low-rank setting), on a copy.
heal_args = state.heal_args
if heal_args is not None:
    with st.expander(f"Heal the low-rank answer ({chosen.setting}) by training its factors"):
        st.caption(
            "A few Adam steps on the factors only (every other weight stays as loaded), on the shipped "
            "calibration text, on a copy: "
            + (
                "next-token cross-entropy"
                if causal
                else "distillation to the original's hidden states (cosine)"
            )
            + ". Every fourth chunk of that text is held out of training: the factors of its best check are "
            "kept, a step size that makes it worse at once is cut tenfold, and if nothing helps the factors stay "
            "as they were. Quality is measured on the held-out passage before and after, as everything above."
        )
        h1, h2, h3 = st.columns([1, 1, 1])
        heal_steps = PAGE.number_input(ctl.heal_steps, "Steps", where=h1, step=5)
        heal_lr = PAGE.selectbox(ctl.heal_lr, "Learning rate", where=h2, format_func=lambda v: f"{v:g}")
        healed = view.healing(heal_args, heal_steps, heal_lr, start=h3)
        if healed is not None:
            st.markdown(words.healing_sentence(healed.run, original, budget))

tradeoff_slot = st.container()


# ====================================================================================== free controls
st.divider()
st.subheader("Try a setting yourself")
controls_col, main = st.columns([1.15, 3], gap="large")
with controls_col:
    free = view.free_controls(ctl, shapes, sel.text, sel.max_tokens)


def free_section() -> view.FreeResult | None:
    """The free setting measured and drawn; None when there is nothing to draw yet (or nothing chosen)."""
    if free is None:
        st.warning("Choose at least one weight group on the left to compress.", icon=":material/tune:")
        return None
    eval_text, eval_tokens = view.eval_tokens(free.eval_source, sel.text, sel.max_tokens)
    if following and answer_point is None and (state.quant_running or state.running):
        st.info(
            "Measuring the budget's first answer above (seconds): these controls open on it.",
            icon=":material/hourglass_top:",
        )
        return None
    try:
        evalset = cc.cached_eval_set(sel.model_key, eval_text, eval_tokens)
        for message in view.eval_notes(free.eval_source, evalset):
            st.info(message, icon=":material/content_cut:")
        if not view.factors_ready(sel.model_key, free, state.first_answer_pending):
            return None
        with st.spinner("Measuring the compressed copy…"):
            result = view.measure(sel.model_key, free, eval_text, eval_tokens)
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        return None
    view.current_free_setting(result)
    note = (
        words.following_note(answer_point, budget.fits(original, answer_point.quality))
        if following and view.still_following()
        else None
    )
    view.draw_free_card(result, evalset, sel.model_key, note)
    try:
        view.draw_downloads(view.decision_of(sel.model_key, result, evalset, eval_text, state, attr_line))
    except ExplorerError as err:
        st.info(str(err), icon=":material/download:")
    view.draw_free_details(result, evalset, eval_text, eval_tokens, loaded, sel.model_key)
    return result


with main:
    free_result = free_section()

# The chart sits above the free controls but shows their result: drawn last, into its place.
if all_points:
    current = None
    if free_result is not None and free_result.setting.eval_source == "heldout":
        current = comp.Point(
            "current setting", view.describe(free_result), free_result.bytes_model, free_result.after
        )
    with tradeoff_slot:
        st.plotly_chart(
            make_tradeoff_figure(
                all_points,
                original=original,
                original_bytes=original_bytes,
                budget_line=attr_line if points else None,
                current=current,
                measured_on="the held-out passage",
            ),
            width="stretch",
            key="compression_tradeoff",
        )
        provenance = loaded.anatomy.quantization
        if provenance is not None:
            st.caption(
                f"These weights were {provenance.describe()}: quantizing them back to that grid (4 bits with an "
                "offset, groups of 32: the hollow point) costs nothing by construction, which says how the model "
                "was shipped, not how well 4-bit quantization works. The budget answer leaves that point out."
            )
