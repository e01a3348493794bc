"""Compression for decisions: how small can the model get at the quality you accept? The budget view (first),
measured in the background on the held-out passage, then the free controls with their headline card, honest
latency, allocated ranks, the per-matrix table and a greedy continuation. Thin: analysis in
explorer.analysis.compression, caching and jobs in explorer.ui.compression_cache, words in
explorer.ui.compression_text, figures in explorer.figures.compression."""

import pandas as pd
import streamlit as st

from explorer.analysis import compression as comp
from explorer.analysis import quantize as qz
from explorer.analysis.lowrank import ASVD_ALPHA, METHOD_LABELS, METHODS, RIDGE
from explorer.errors import ExplorerError
from explorer.figures.compression import (
    make_matrix_error_figure,
    make_pareto_figure,
    make_rank_allocation_figure,
)
from explorer.figures.quantization import make_tradeoff_figure
from explorer.ui import compression_cache as cc
from explorer.ui import compression_text as words
from explorer.ui import jobs
from explorer.ui import quantization_cache as qc
from explorer.ui.session import require_model, selection
from explorer.ui.state import Choice, Float, Int, PageState, Subset

POLL_SECONDS = 3
# Until the fewer-bits comparison's first point is in, its poller looks every second: that point is the budget
# card's first answer on a cold visit (a look is a dictionary read; the page reruns only when a point arrived).
FIRST_POINT_POLL_SECONDS = 1
# A factorization job that finishes within this wait (factors read back from disk: 0.2-1.5 s) is drawn in the
# same run; a longer one (computed: a minute or more on SmolLM2) in the background.
FACTORS_GRACE_SECONDS = 3.0
CALIBRATION_SOURCES = {"shipped": "Shipped calibration set (≈900 words)", "text": "The current text"}
EVAL_SOURCES = {"text": "The current text (sidebar)", "heldout": "Shipped held-out passage (≈500 words)"}
GENERATION_TOKENS = 32

st.title("Compression what-if")
st.caption(
    "Replace weight matrices by low-rank factors W ≈ A·B: how much smaller can the model get at the quality "
    "you accept? Everything is measured on the model itself, on a separate copy: the loaded model never "
    "changes."
)

loaded = require_model()
sel = selection()
shapes = comp.kind_shapes(loaded.model)
if not shapes:
    st.error("This model has no attention, MLP or embedding matrices that this page knows how to factor.")
    st.stop()

causal = loaded.causal
PAGE = PageState("compression")
METHOD = Choice("comp_method", "svdllm", METHODS, key="method")
GROUPS = Subset(
    "comp_groups", [k for k in comp.DEFAULT_KINDS if k in shapes] or list(shapes)[:1], shapes, key="group"
)
MODE = Choice("comp_mode", "share", comp.MODES, key="mode")
ENERGY = Float("comp_energy", 0.9, 0.5, 0.995, key="energy")
SHARE = Int("comp_share", 90, 5, 100, key="share")
ALLOCATION = Choice("comp_alloc", "uniform", comp.ALLOCATIONS, key="alloc")
CALIBRATION = Choice("comp_calib", "shipped", CALIBRATION_SOURCES, key="calib")
EVALUATION = Choice("comp_eval", "text", EVAL_SOURCES, key="eval")
RANKS = {
    kind: Int(f"comp_rank_{kind}", max(1, round(k_star / 2)), 1, max_rank, key=f"rank_{kind}")
    for kind, (_shape, k_star, max_rank) in shapes.items()
}
BUDGET_METRIC = Choice(
    "budget_metric", comp.BUDGET_METRICS[causal][0], comp.BUDGET_METRICS[causal], key="budget_metric"
)
BUDGET_VALUES = {
    "perplexity": Int("budget_ppl", 10, 1, 200, key="budget_ppl"),
    "kl": Float("budget_kl", 0.05, 1e-6, 2.0, key="budget_kl", digits=3),
    "cosine": Float("budget_cos", 0.99, 0.5, 0.9999, key="budget_cos", digits=4),
    "spearman": Float("budget_rho", 0.98, 0.5, 0.9999, key="budget_rho", digits=4),
}
BUDGET_METHODS = Subset("budget_methods", list(METHODS), METHODS, key="budget_method")
HEAL_STEPS = Int("heal_steps", 30, 5, 200, key="heal_steps")
HEAL_LR = Choice("heal_lr", 1e-4, [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], key="heal_lr")


def chosen_groups() -> tuple[str, ...]:
    """The ticked groups before their checkboxes are drawn (the budget view above them measures them): the
    boxes' own state once they exist, else the setting (link, memory or default)."""
    keys = {kind: f"{PAGE.key(GROUPS)}_{kind}" for kind in GROUPS.choices}
    if all(key in st.session_state for key in keys.values()):
        return tuple(kind for kind, key in keys.items() if st.session_state[key])
    return tuple(PAGE.bind(GROUPS))


# Read before the budget view: it measures the chosen groups with the chosen calibration.
kinds = chosen_groups()
calib = PAGE.bind(CALIBRATION)
kinds_key = tuple(k for k in shapes if k in kinds)
calibration = cc.Calibration(calib, sel.text, sel.max_tokens) if calib == "text" else cc.Calibration()


def use_settings(point: comp.SweepPoint) -> None:
    """Set the free controls to a sweep point (before they are drawn): the point is then the headline card."""
    PAGE.set(METHOD, point.method)
    PAGE.set(MODE, "share")
    PAGE.set(SHARE, round(100 * point.share))
    PAGE.set(ALLOCATION, point.allocation)
    PAGE.set(EVALUATION, "heldout")


# ====================================================================================== the budget view
st.subheader("How small can it get at the quality you accept?")
b1, b2, b3 = st.columns([1.2, 1, 2])
metric = PAGE.selectbox(
    BUDGET_METRIC,
    "Quality budget",
    where=b1,
    format_func=words.BUDGET_METRIC_LABELS.get,
    help="Causal LM: perplexity increase on the held-out passage, or mean KL divergence of the next-token "
    "distributions. Encoder: mean cosine of the sentence embeddings to the original's, or the rank "
    "correlation of the pairwise similarities.",
)
limit_setting = BUDGET_VALUES[metric]
for other, setting in BUDGET_VALUES.items():
    if other != metric:
        PAGE.bind(setting, link=False)
if metric == "perplexity":
    limit = PAGE.number_input(limit_setting, "At most + (%)", where=b2, step=1)
    budget = comp.QualityBudget(perplexity_increase=limit / 100, metric=metric)
elif metric == "kl":
    limit = PAGE.number_input(limit_setting, "At most (nats/token)", where=b2, step=0.01, format="%.4f")
    budget = comp.QualityBudget(max_kl=limit, metric=metric)
elif metric == "cosine":
    limit = PAGE.number_input(limit_setting, "At least", where=b2, step=0.001, format="%.4f")
    budget = comp.QualityBudget(min_cosine=limit, metric=metric)
else:
    limit = PAGE.number_input(limit_setting, "At least", where=b2, step=0.001, format="%.4f")
    budget = comp.QualityBudget(min_spearman=limit, metric=metric)
b3.markdown("**Methods searched**")
budget_methods = PAGE.checkboxes(BUDGET_METHODS, METHOD_LABELS.get, where=b3)
methods_key = tuple(m for m in cc.BUDGET_METHODS if m in budget_methods) if kinds_key else ()

# A stopped sweep: (what it was measuring, the points it had) for this session, so the answer keeps them.
stop_key = "compression_sweep_stopped"
sweep_id = (sel.model_key, kinds_key, calibration.key(), methods_key)
stopped_state = st.session_state.get(stop_key)
stopped = stopped_state is not None and stopped_state[0] == sweep_id
# Fewer bits on the same groups, measured alongside: the first answer covers every method.
quant_job = qc.comparison_job(sel.model_key, kinds_key, calibration) if kinds_key else None
if quant_job is not None and not quant_job.done and not cc.in_background(loaded):
    quant_bar = st.progress(0.0, text="Measuring fewer bits…")
    jobs.follow(quant_job, lambda f, msg: quant_bar.progress(f, text=f"Fewer bits: {msg}"))
    quant_bar.empty()
quant_points = qc.comparison_points(quant_job) if quant_job is not None and not quant_job.failed else []
quant_running = quant_job is not None and not quant_job.done
# The first time, the fewer-bits comparison's first point (int8: one quantization and one forward pass) answers
# the budget in seconds; the low-rank sweep and factors take minutes and, started at the same time, would share
# the CPU with it. So they start once that first point is in (the comparison's poller redraws the page then).
first_answer_pending = quant_running and not quant_points and cc.in_background(loaded)

job = None
if methods_key and not stopped and not first_answer_pending:
    try:
        job = cc.sweep_job(sel.model_key, kinds_key, calibration, methods_key)
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    if not job.done and not cc.in_background(loaded):
        bar = st.progress(0.0, text="Measuring the budget sweep…")
        jobs.follow(job, lambda f, msg: bar.progress(f, text=f"Budget sweep: {msg}"))
        bar.empty()
    if job.failed and not job.cancelled:
        st.error(f"The budget sweep failed: {job.error}", icon=":material/error:")

budget_tokens = cc.budget_evalset(sel.model_key).n_tokens
original = cc.budget_original(sel.model_key)
if stopped:
    points = list(stopped_state[1])
else:
    points = cc.sweep_points(job) if job is not None and not job.failed else []
answers = comp.budget_answers(points, original, budget, methods_key)
best, closest = comp.overall_best(answers), comp.overall_closest(answers)
running = job is not None and not job.done

all_points = [qz.from_sweep_point(p) for p in points] + quant_points
original_bytes = loaded.card.n_params * comp.BYTES_PER_PARAM
overall, overall_closest = qz.smallest_within(all_points, original, budget)

with st.container(border=True):
    if all_points:
        st.markdown(
            f"#### {words.tradeoff_headline(overall, overall_closest, original, original_bytes, budget)}"
        )
        st.caption(
            "Every method: low rank (below), fewer bits and both (the chart further down), on the held-out "
            "passage."
            + (" Still measuring: the answer can still improve." if quant_running or running else "")
        )
    headline, how = words.answer_headline(best, closest, original, budget, kinds_key)
    st.markdown(f"##### Low rank alone: {headline}")
    chosen = best.best if best is not None else (closest.closest if closest is not None else None)
    if chosen is not None:
        left, right = st.columns([3, 1])
        left.caption(
            f"{how}; {chosen.params_model_after / 1e6:.1f} M parameters, {words.size_phrase(chosen.bytes)} at "
            f"fp16 (original {chosen.params_model_before / 1e6:.1f} M, "
            f"{words.size_phrase(chosen.params_model_before * comp.BYTES_PER_PARAM)}). Measured on the held-out "
            f"passage ({budget_tokens} tokens{'' if loaded.causal else ' and the shipped sentence set'}), never "
            "seen in calibration."
        )
        if right.button(
            "Use these settings", key="compression_use_best", icon=":material/done:", type="primary"
        ):
            use_settings(chosen)
    if running:
        st.progress(job.fraction, text=f"Still measuring ({len(points)} points so far): {job.message}")
        if st.button("Stop the sweep", key="compression_stop_sweep", icon=":material/stop:"):
            job.cancel()
            st.session_state[stop_key] = (sweep_id, cc.sweep_points(job))
            st.rerun()
        st.caption("The answer can still improve: smaller settings of every method are being measured.")
    elif first_answer_pending:
        st.progress(
            quant_job.fraction, text=f"Still measuring: fewer bits first ({quant_job.message}), low rank next"
        )
    elif stopped:
        st.caption("The sweep was stopped: the answer covers the points measured before that.")
        if st.button("Run the sweep", key="compression_run_sweep", icon=":material/play_arrow:"):
            st.session_state.pop(stop_key, None)
            st.rerun()
    elif not kinds_key:
        st.caption("Choose at least one weight group below to compress.")
    elif not methods_key:
        st.caption("Choose at least one method to search.")

if answers and points:
    with st.expander("Each method's answer", expanded=False):
        table = pd.DataFrame([words.answer_row(a, original, budget) for a in answers])
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            key="compression_budget_table",
            column_config={
                "parameters (M)": st.column_config.NumberColumn(format="%.1f"),
                "memory fp16 (MB)": st.column_config.NumberColumn(format="%.0f"),
            },
        )
        cols = st.columns(len(answers))
        for col, answer in zip(cols, answers, strict=True):
            point = answer.best if answer.best is not None else answer.closest
            if point is None:
                continue
            label = f"{METHOD_LABELS[answer.method].split(' (')[0]}, {answer.allocation}"
            if col.button(label, key=f"compression_use_{answer.method}_{answer.allocation}", width="stretch"):
                use_settings(point)
        st.caption("A button sets the free controls below to that method's setting.")

    attr_line = None
    if metric == "perplexity":
        attr_line = ((1 + budget.perplexity_increase) * original.perplexity, "budget limit")
    elif metric == "cosine":
        attr_line = (budget.min_cosine, "budget limit")
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


@st.fragment(run_every=POLL_SECONDS if running else None)
def sweep_poller(seen: int) -> None:
    """While the sweep runs in the background: redraw the page when new points arrived."""
    now = cc.peek_sweep(sel.model_key, kinds_key, calibration, methods_key)
    if now is None or now.done or len(now.partial) != seen:
        st.rerun()


if running:
    sweep_poller(len(points))


# ====================================================================================== fewer bits
st.subheader("Low rank, fewer bits, or both?")
st.caption(
    "The same groups stored with fewer bits instead (int8 per row; 4 bits in groups of 32, 64 or 128, with or "
    "without an offset), the top singular directions kept at fp16 with a 4-bit residual, and SVD-LLM factors "
    "stored in int8. Each is measured like the low-rank settings, on the held-out passage; storage counts the "
    "real bytes (codes, scales, offsets), every other weight at fp16."
)
if quant_job is not None and quant_job.failed:
    st.error(f"The fewer-bits comparison failed: {quant_job.error}", icon=":material/error:")


@st.fragment(run_every=POLL_SECONDS)
def healing_progress(args: tuple, steps: int, lr: float) -> None:
    """While a healing runs: its progress and stop button, redrawn on their own (a whole-page rerun every few
    seconds took the CPU and the GIL the training needs: MiniLM's 10-second healing did not finish in 10
    minutes); the whole page once it is done."""
    job = qc.peek_healing(*args, steps, lr)
    if job is None or job.done:
        st.rerun()
    st.progress(job.fraction, text=f"Healing: {job.message}")
    if st.button("Stop healing", key="compression_stop_heal", icon=":material/stop:"):
        job.cancel()
        st.rerun()


# Healing: an explicit action on the low-rank answer (or the closest low-rank setting), on a copy.
heal_job = None
if chosen is not None:
    heal_setting = comp.RankSetting(mode="share", share=chosen.share, allocation=chosen.allocation)
    heal_args = (sel.model_key, chosen.method, kinds_key, calibration, heal_setting)
    with st.expander(
        f"Heal the low-rank answer ({qz.from_sweep_point(chosen).setting}) by training its factors"
    ):
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
        heal_steps = PAGE.number_input(HEAL_STEPS, "Steps", where=h1, step=5)
        heal_lr = PAGE.selectbox(HEAL_LR, "Learning rate", where=h2, format_func=lambda v: f"{v:g}")
        heal_job = qc.peek_healing(*heal_args, heal_steps, heal_lr)
        if heal_job is None or heal_job.cancelled:
            if h3.button("Heal", key="compression_heal", icon=":material/healing:"):
                heal_job = qc.healing_job(*heal_args, heal_steps, heal_lr)
        if heal_job is not None and not heal_job.done:
            healing_progress(heal_args, heal_steps, heal_lr)
        elif heal_job is not None and heal_job.failed and not heal_job.cancelled:
            st.error(f"Healing failed: {heal_job.error}", icon=":material/error:")
        elif heal_job is not None and heal_job.done and not heal_job.failed:
            run = heal_job.result
            st.markdown(words.healing_sentence(run, original, budget))
            healed = qz.TradeoffPoint(
                "healed low rank",
                f"{qz.from_sweep_point(chosen).setting}, healed ({run.steps} steps)",
                chosen.bytes,
                run.after,
            )
            all_points = [*all_points, healed]

if all_points:
    st.plotly_chart(
        make_tradeoff_figure(
            all_points,
            original=original,
            original_bytes=original_bytes,
            budget_line=attr_line if points else None,
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


@st.fragment(
    run_every=(FIRST_POINT_POLL_SECONDS if not quant_points else POLL_SECONDS) if quant_running else None
)
def quant_poller(seen: int) -> None:
    """While the fewer-bits comparison runs in the background: redraw the page when new points arrived."""
    now = qc.peek_comparison(sel.model_key, kinds_key, calibration)
    if now is None or now.done or len(now.partial) != seen:
        st.rerun()


if quant_running:
    quant_poller(len(quant_points))


@st.fragment(run_every=POLL_SECONDS)
def factors_poller(method: str, kinds: tuple[str, ...], calibration: cc.Calibration) -> None:
    """While the free controls' factors are computed in the background: redraw the page once they are."""
    if cc.has_factorization(sel.model_key, method, kinds, calibration):
        st.rerun()


# ====================================================================================== free controls
st.divider()
st.subheader("Try a setting yourself")
controls, main = st.columns([1.15, 3], gap="large")
with controls:
    method = PAGE.radio(
        METHOD,
        "Method",
        format_func=METHOD_LABELS.get,
        help="Plain SVD keeps the directions of largest weight. ASVD and SVD-LLM weigh them by how the "
        "calibration text actually uses each input, which is what keeps the model working.",
    )
    st.markdown("**Weight groups to compress**")
    kinds = PAGE.checkboxes(
        GROUPS, lambda kind: f"{comp.GROUP_LABELS[kind]} ({shapes[kind][0][0]}×{shapes[kind][0][1]})"
    )
    mode = PAGE.radio(MODE, "Choose ranks by", format_func=comp.MODE_LABELS.get)
    # Every mode's values are kept (a link's value survives a trip through another mode); only the shown
    # sliders' values are in the link.
    ranks = {
        kind: PAGE.bind(setting, link=mode == "rank" and kind in kinds) for kind, setting in RANKS.items()
    }
    energy = PAGE.bind(ENERGY, link=mode == "energy")
    share = PAGE.bind(SHARE, link=mode == "share")
    if mode == "rank":
        for kind in kinds:
            (m, n), k_star, max_rank = shapes[kind]
            ranks[kind] = PAGE.slider(
                RANKS[kind],
                f"{comp.GROUP_LABELS[kind]} rank",
                help=f"{m}×{n}: break-even rank k* = mn/(m+n) = {k_star:.0f}; above it nothing is saved, so the "
                f"slider stops at {max_rank}.",
            )
    elif mode == "energy":
        energy = PAGE.slider(
            ENERGY,
            "Energy kept p",
            step=0.005,
            help="Each matrix keeps the smallest rank k_p whose singular values hold this share of "
            "sum σ² (of the method's own matrix: W, W·D or W·L).",
        )
    else:
        share = PAGE.slider(
            SHARE,
            "Parameters kept per matrix (%)",
            step=5,
            help="Rank k = share × mn/(m+n), so each factored matrix holds about this share of its numbers. "
            "100 % is the break-even rank: nothing saved.",
        )
    allocation = PAGE.radio(
        ALLOCATION,
        "Ranks",
        format_func=comp.ALLOCATION_LABELS.get,
        help="Allocated: the same number of factor parameters, spent where each parameter lowers the error "
        "on the calibration activations most (greedy over every matrix's next component).",
    )
    calib = PAGE.radio(CALIBRATION, "Calibration text (ASVD, SVD-LLM)", format_func=CALIBRATION_SOURCES.get)
    eval_source = PAGE.radio(EVALUATION, "Measure quality on", format_func=EVAL_SOURCES.get)
    with st.expander("How the methods work"):
        st.markdown(
            "Every method keeps k directions U_k of each matrix's output and stores W_k = U_k (U_kᵀW): "
            "k(m+n) numbers instead of mn.\n\n"
            "- **Plain SVD**: U = singular vectors of W (Eckart-Young: the smallest ‖W−W_k‖ possible).\n"
            f"- **ASVD**: singular vectors of W·diag(mean|x|^{ASVD_ALPHA}), x = the calibration inputs.\n"
            "- **SVD-LLM**: singular vectors of W·L, L Lᵀ = XᵀX + λI (Cholesky, "
            f"λ = {RIDGE:g} × mean diagonal): the smallest ‖(W−W_k)X‖ on the calibration text.\n\n"
            "Factors are computed once per model, method, calibration and groups and kept on disk (they "
            "survive a restart); moving a slider only slices them and re-runs the model."
        )

# Only the active mode's value enters the setting, so hidden sliders never split the cache.
rank_setting = comp.RankSetting(
    mode=mode,
    ranks=tuple((k, int(ranks[k])) for k in shapes if k in kinds) if mode == "rank" else (),
    energy=float(energy) if mode == "energy" else 0.9,
    share=int(share) / 100 if mode == "share" else 0.5,
    allocation=allocation,
)

with main:
    if not kinds:
        st.warning("Choose at least one weight group on the left to compress.", icon=":material/tune:")
        st.stop()
    kinds_key = tuple(k for k in shapes if k in kinds)
    calibration = cc.Calibration(calib, sel.text, sel.max_tokens) if calib == "text" else cc.Calibration()
    eval_text, eval_tokens = (
        (comp.heldout_text(), cc.BUDGET_TOKENS) if eval_source == "heldout" else (sel.text, sel.max_tokens)
    )
    try:
        evalset = cc.cached_eval_set(sel.model_key, eval_text, eval_tokens)
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    for message in evalset.messages:
        st.info(message, icon=":material/content_cut:")

    try:
        have_factors = cc.has_factorization(sel.model_key, method, kinds_key, calibration)
        if first_answer_pending and not have_factors:
            st.info(
                "Measuring the first answer above (seconds); the factors for this card are computed next.",
                icon=":material/hourglass_top:",
            )
            st.stop()
        if not have_factors:
            factor_job = cc.factorization_job(sel.model_key, method, kinds_key, calibration)
            if cc.in_background(loaded) and not factor_job.wait(FACTORS_GRACE_SECONDS):
                # The first time, a big model's factors take a minute or more: waiting here would also freeze
                # the budget answer above (its pollers run only between script runs), so draw and poll.
                st.progress(
                    factor_job.fraction,  # Job.report keeps it in [0, 1]
                    text=f"Factorizing the chosen matrices (first time only; kept on disk): {factor_job.message}",
                )
                st.caption(
                    "This card appears when they are ready; the budget answer above updates meanwhile."
                )
                factors_poller(method, kinds_key, calibration)
                st.stop()
            bar = st.progress(0.0, text="Factorizing the chosen matrices (first time only; kept on disk)…")
            cc.factorization(
                sel.model_key,
                method,
                kinds_key,
                calibration,
                lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg),
            )
            bar.empty()
        with st.spinner("Measuring the compressed copy…"):
            outcome = cc.cached_outcome(
                sel.model_key, method, kinds_key, calibration, rank_setting, eval_text, eval_tokens
            )
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    fact = cc.factorization(sel.model_key, method, kinds_key, calibration)

    # ------------------------------------------------------------------ headline card
    before, after = outcome.before, outcome.after
    with st.container(border=True):
        for sentence in words.summary_sentences(outcome):
            st.markdown(f"##### {sentence}")
        # Two rows of three: five metrics side by side beside the controls truncate their values ("102.…").
        cols = [*st.columns(3), *st.columns(3)]
        saved = outcome.params_model_after - outcome.params_model_before
        cols[0].metric(
            "Parameters",
            f"{outcome.params_model_after / 1e6:.1f} M",
            f"{saved / 1e6:+.1f} M ({saved / outcome.params_model_before:+.0%})",
            delta_color="inverse",
            help="Every parameter of the model (tied weights once). Each factored matrix holds k(m+n) "
            "numbers plus its bias.",
        )
        cols[0].caption(f"before: {outcome.params_model_before / 1e6:.1f} M")
        for col, (label, nbytes) in zip(cols[1:3], (("Memory fp16", 2), ("Memory fp32", 4)), strict=True):
            col.metric(
                label,
                f"{outcome.megabytes(nbytes, True):,.0f} MB",
                f"{saved * nbytes / 1e6:+,.0f} MB",
                delta_color="inverse",
                help=f"Weights only, at {nbytes} bytes per parameter.",
            )
            col.caption(f"before: {outcome.megabytes(nbytes, False):,.0f} MB")
        if after.causal:
            cols[3].metric(
                "Perplexity",
                f"{after.perplexity:,.4g}",
                f"×{after.perplexity / before.perplexity:.3g}",
                delta_color="inverse",
                help="Lower is better. exp(mean next-token loss) on the evaluated tokens: roughly how many "
                "words the model hesitates between.",
            )
            cols[3].caption(f"before: {before.perplexity:,.4g}")
            cols[5].metric(
                "KL divergence (nats/token)",
                f"{after.kl:.3g}",
                help="Mean KL(original ‖ compressed) of the next-token distributions: 0 = the compressed copy "
                "predicts exactly like the original; 1 nat/token ≈ its predictions are often different.",
            )
            cols[5].caption("before: 0")
        else:
            cols[3].metric(
                "Embedding cosine",
                f"{after.embedding_cosine:.3f}",
                f"{after.embedding_cosine - 1:+.3f}",
                help="1 = unchanged. Mean cosine between original and compressed mean-pooled embeddings of "
                f"the text and {len(evalset.sentences)} shipped sentences.",
            )
            cols[3].caption("before: 1")
            cols[5].metric(
                "Similarity ranking",
                f"{after.similarity_spearman:.3f}",
                f"{after.similarity_spearman - 1:+.3f}",
                help="Spearman correlation between the original and compressed pairwise cosine similarities of "
                f"the {len(evalset.sentences)} shipped sentences: 1 = every pair ranked the same.",
            )
            cols[5].caption("before: 1")
        macs_before, macs_after = cc.cached_macs(sel.model_key, method, kinds_key, calibration, rank_setting)
        cols[4].metric(
            "Multiply-adds per token",
            f"{macs_after / 1e6:,.1f} M",
            f"{macs_after / macs_before - 1:+.0%}",
            delta_color="inverse",
            help="Of the products with weight matrices: mn for a dense matrix, k(m+n) for a factored one. "
            "Measured latency: below.",
        )
        cols[4].caption(f"before: {macs_before / 1e6:,.1f} M")
    if outcome.params_chosen_after > outcome.params_chosen_before:
        st.warning(
            "At these ranks the two factors hold more numbers than the dense matrices (rank above "
            "break-even k* = mn/(m+n)): the model gets bigger, not smaller.",
            icon=":material/warning:",
        )
    if calib == "text" and eval_source == "text" and method != "svd":
        st.info(
            "Calibrated and measured on the same tokens: the activation-aware methods look better here than "
            "they would on new text. Use the shipped calibration set for an honest number.",
            icon=":material/info:",
        )
    for note in fact.notes:
        st.info(note, icon=":material/info:")
    if after.causal and evalset.n_tokens < 64:
        st.caption(
            f"Perplexity on {evalset.n_tokens} tokens is noisy: measure on the held-out passage or a longer "
            "text for numbers you can quote."
        )

    # ------------------------------------------------------------------ latency, on demand
    @st.fragment
    def latency_section():
        st.markdown("**Latency** (warm-up, then interleaved runs of both models: medians with their spread)")
        args = (sel.model_key, method, kinds_key, calibration, rank_setting, eval_text, eval_tokens)
        job = cc.peek_latency(*args)
        if job is None:
            if not st.button("Measure latency", key="compression_latency", icon=":material/timer:"):
                st.caption(
                    "Takes a few seconds to a minute: each model runs several times at this text's tokens and "
                    "at 256 tokens."
                )
                return
            job = cc.latency_job(*args)
        latency = jobs.result_with_progress(job, "Latency", failure="The latency measurement failed")
        for sentence in words.latency_sentences(latency, loaded.device):
            st.markdown(sentence)

    latency_section()

    # ------------------------------------------------------------------ allocated ranks
    st.subheader("Where the ranks go")
    comparison = cc.rank_comparison(
        sel.model_key, method, kinds_key, calibration, share / 100 if mode == "share" else 0.5
    )
    st.plotly_chart(make_rank_allocation_figure(comparison), width="stretch", key="compression_ranks")
    st.caption(
        "Each cell: one matrix's rank (the colour: its share of the break-even rank mn/(m+n)). The greedy "
        "spends the same parameters as the same share for every matrix, one component at a time where it "
        "removes the most calibration output error per parameter; it may leave a matrix dense."
        + ("" if mode == "share" else " (Shown at 50 %: choose ranks by share to follow the slider.)")
    )

    # ------------------------------------------------------------------ per-matrix table
    st.subheader("Per-matrix ranks and errors")
    st.caption(
        "Eckart-Young: sqrt(Σ dropped σ²)/‖W‖, the least error any rank-k matrix can have. Weight error: "
        "this method's ‖W−W_k‖/‖W‖ (equal to Eckart-Young for plain SVD). Output error: ‖(W−W_k)X‖/‖WX‖ "
        "on the calibration inputs X, the error the model actually feels."
    )
    st.plotly_chart(
        make_matrix_error_figure(outcome.rows, method=method), width="stretch", key="compression_errors"
    )
    table = pd.DataFrame(
        [
            {
                "matrix": r.name,
                "kind": r.kind,
                "layer": r.layer,
                "shape": f"{r.shape[0]}×{r.shape[1]}",
                "rank k": r.rank,
                "break-even k*": round(r.break_even, 1),
                "params before": r.params_before,
                "params after": r.params_after,
                "Eckart-Young error": r.eckart_young_error,
                "weight error": r.weight_error,
                "output error (calibration)": r.output_error,
            }
            for r in outcome.rows
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="compression_table",
        column_config={
            c: st.column_config.NumberColumn(format="%.4f")
            for c in ("Eckart-Young error", "weight error", "output error (calibration)")
        },
    )
    st.download_button(
        "Download the per-matrix table (CSV)",
        table.to_csv(index=False),
        file_name=f"compression_matrices_{loaded.id.replace('/', '_')}_{method}.csv",
        mime="text/csv",
        key="compression_table_csv",
    )

    # ------------------------------------------------------------------ greedy generation
    if loaded.causal:
        st.subheader("Greedy continuation, original and compressed")
        n_prompt = min(32, evalset.n_tokens)
        with st.spinner(f"Generating {GENERATION_TOKENS} tokens with both models…"):
            prompt, original_text = cc.cached_original_generation(
                sel.model_key, eval_text, eval_tokens, n_prompt, GENERATION_TOKENS
            )
            compressed_text = cc.cached_compressed_generation(
                sel.model_key,
                method,
                kinds_key,
                calibration,
                rank_setting,
                eval_text,
                eval_tokens,
                n_prompt,
                GENERATION_TOKENS,
            )
        st.caption(f"Prompt (the first {n_prompt} tokens of the text): {prompt!r}")
        left, right = st.columns(2)
        with left.container(border=True):
            st.markdown("**Original model**")
            st.text(original_text or "(nothing: it ended the text)")
        with right.container(border=True):
            st.markdown(f"**Compressed ({METHOD_LABELS[method]}, {outcome.share_kept:.0%} of parameters)**")
            st.text(compressed_text or "(nothing: it ended the text)")
