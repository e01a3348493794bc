"""Compression what-if: replace chosen weight groups by low-rank factors, see parameters saved against quality
lost, measured on the model itself. Thin: analysis in explorer.analysis.compression, caching in
explorer.ui.compression_cache, figures in explorer.figures.compression."""

import pandas as pd
import streamlit as st

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import ASVD_ALPHA, METHOD_LABELS, METHODS, RIDGE
from explorer.errors import ExplorerError
from explorer.figures.compression import make_matrix_error_figure, make_pareto_figure
from explorer.ui import compression_cache as cc
from explorer.ui.session import require_model, selection
from explorer.ui.state import Choice, Float, Int, PageState, Subset

# Models below this many parameters run the Pareto sweep on their own; bigger ones wait for a click.
AUTO_SWEEP_PARAMS = 60_000_000
CALIBRATION_SOURCES = {"shipped": "Shipped calibration set (≈900 words)", "text": "The current text"}
EVAL_SOURCES = {"text": "The current text (sidebar)", "heldout": "Shipped held-out passage (≈500 words)"}
GENERATION_TOKENS = 32

st.title("Compression what-if")
st.caption(
    "Replace weight matrices by low-rank factors W ≈ A·B and measure, on the model itself, how many "
    "parameters that saves and how much quality it costs. The loaded model is never changed: every "
    "measurement runs on a separate copy."
)

loaded = require_model()
sel = selection()
shapes = comp.kind_shapes(loaded.model)
if not shapes:
    st.error("This model has no attention, MLP or embedding matrices that this page knows how to factor.")
    st.stop()


PAGE = PageState("compression")
METHOD = Choice("comp_method", "svdllm", METHODS, key="method")
GROUPS = Subset(
    "comp_groups", [k for k in comp.DEFAULT_KINDS if k in shapes] or list(shapes)[:1], shapes, key="group"
)
MODE = Choice("comp_mode", "share", comp.MODES, key="mode")
ENERGY = Float("comp_energy", 0.9, 0.5, 0.995, key="energy")
SHARE = Int("comp_share", 50, 5, 100, key="share")
CALIBRATION = Choice("comp_calib", "shipped", CALIBRATION_SOURCES, key="calib")
EVALUATION = Choice("comp_eval", "text", EVAL_SOURCES, key="eval")
RANKS = {
    kind: Int(f"comp_rank_{kind}", max(1, round(k_star / 2)), 1, max_rank, key=f"rank_{kind}")
    for kind, (_shape, k_star, max_rank) in shapes.items()
}

controls, main = st.columns([1.15, 3], gap="large")
with controls:
    st.subheader("Settings")
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
                help=f"{m}×{n}: break-even rank k* = mn/(m+n) = {k_star:.0f}; above it nothing is saved.",
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
            "Factors are computed once per model, method, calibration and groups; moving a slider only "
            "slices them and re-runs the model."
        )

# Only the active mode's value enters the setting, so hidden sliders never split the cache.
rank_setting = comp.RankSetting(
    mode=mode,
    ranks=tuple((k, int(ranks[k])) for k in shapes if k in kinds) if mode == "rank" else (),
    energy=float(energy) if mode == "energy" else 0.9,
    share=int(share) / 100 if mode == "share" else 0.5,
)

with main:
    if not kinds:
        st.warning("Choose at least one weight group on the left to compress.", icon=":material/tune:")
        st.stop()
    kinds_key = tuple(k for k in shapes if k in kinds)
    eval_text = comp.heldout_text() if eval_source == "heldout" else sel.text
    try:
        evalset = cc.cached_eval_set(sel.model_key, eval_text, sel.max_tokens)
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    for message in evalset.messages:
        st.info(message, icon=":material/content_cut:")
    calibration = cc.Calibration(calib, sel.text, sel.max_tokens) if calib == "text" else cc.Calibration()

    try:
        if not cc.has_factorization(sel.model_key, method, kinds_key, calibration):
            bar = st.progress(0.0, text="Factorizing the chosen matrices (first time only)…")
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
                sel.model_key, method, kinds_key, calibration, rank_setting, eval_text, sel.max_tokens
            )
    except ExplorerError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    fact = cc.factorization(sel.model_key, method, kinds_key, calibration)

    # ------------------------------------------------------------------ headline card
    before, after = outcome.before, outcome.after
    with st.container(border=True):
        for sentence in comp.summary_sentences(outcome):
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
        cols[4].metric(
            "Latency",
            f"{after.latency_ms:,.0f} ms",
            f"{after.latency_ms - before.latency_ms:+,.0f} ms",
            delta_color="inverse",
            help="Wall-clock time of the forward pass that produced these numbers (encoders: the text and "
            f"the sentence batch), on {loaded.device}. Shared machines are noisy: repeat before you quote it.",
        )
        cols[4].caption(f"before: {before.latency_ms:,.0f} ms · {evalset.n_tokens} tokens")
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

    # ------------------------------------------------------------------ Pareto sweep
    st.subheader("Parameters kept against quality, all three methods")

    @st.fragment
    def pareto_section():
        auto = loaded.card.n_params < AUTO_SWEEP_PARAMS
        done = cc.has_sweep(sel.model_key, kinds_key, calibration, eval_text, sel.max_tokens)
        if not (auto or done):
            st.caption(
                f"The sweep measures {len(METHODS) * len(comp.SWEEP_SHARES)} compressed models and factors "
                "every chosen matrix three ways: on this model that takes a minute or more the first time."
            )
            if not st.button("Run the sweep", key="compression_run_sweep", icon=":material/play_arrow:"):
                return
        bar = st.progress(0.0, text="Sweep: starting…")
        points = cc.sweep(
            sel.model_key,
            kinds_key,
            calibration,
            eval_text,
            sel.max_tokens,
            lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg),
        )
        bar.empty()
        fig = make_pareto_figure(
            points, original=before, current=outcome, break_even=comp.break_even_by_kind(fact)
        )
        st.plotly_chart(fig, width="stretch", key="compression_pareto")
        st.caption(
            "Each line: one method with every chosen matrix at 25, 50, 75 and 100 % of its break-even rank "
            "(at 100 % the factors hold as many numbers as the original, so nothing is saved). The star is "
            "the current setting; the dashed line the original model."
        )
        records = pd.DataFrame(comp.sweep_records(points, kinds_key))
        st.download_button(
            "Download the sweep (CSV)",
            records.to_csv(index=False),
            file_name=f"compression_sweep_{loaded.id.replace('/', '_')}.csv",
            mime="text/csv",
            key="compression_sweep_csv",
        )

    pareto_section()

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
                sel.model_key, eval_text, sel.max_tokens, n_prompt, GENERATION_TOKENS
            )
            compressed_text = cc.cached_compressed_generation(
                sel.model_key,
                method,
                kinds_key,
                calibration,
                rank_setting,
                eval_text,
                sel.max_tokens,
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
