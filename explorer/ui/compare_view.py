"""Compare mode of the weights page: model A (loaded) against a variant B named by a key in the link (``vs=``,
see explorer.analysis.variants): A | B | difference per matrix, one matrix's two spectra, Delta W's spectrum and
where it sits against W_A, and A and B on the current text. The work runs as tasks (explorer/tasks.py) watched
here; the page only calls ``draw``."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.analysis import variants
from explorer.analysis.compare import (
    CONTINUATION_TOKENS,
    MATRIX_METRICS,
    SUBSPACE_RANKS,
    compare_metric,
    delta_spectrum,
)
from explorer.analysis.compression import text_hash
from explorer.analysis.weights import METRICS, WeightSpectra, with_origin
from explorer.errors import InputError
from explorer.figures.compare import make_delta_figure, make_delta_heatmap_figure, make_spectra_pair_figure
from explorer.figures.weights import matrix_label
from explorer.models import LoadedModel
from explorer.ui import settings, task_view
from explorer.ui.cache import cached_fingerprint
from explorer.ui.state import Choice, PageState, Text


def _from_link(raw: str) -> str | None:
    """A link's ``vs=`` as the canonical key ("" for none), or None (the link notice says it was nonsense)."""
    raw = str(raw).strip()
    if not raw:
        return ""
    try:
        return variants.canonical(raw)
    except InputError:
        return None


VS = Text("vs", "", from_link=_from_link)
VS_METRIC = Choice("vs_metric", "alpha", MATRIX_METRICS)


def compare_control(page: PageState) -> str | None:
    """The "Compare with" box: the canonical key of B, or None (empty, or a key it cannot read: then says why)."""
    raw = page.text_input(
        VS,
        "Compare with (a variant of this model)",
        help="A key: " + ", ".join(variants.EXAMPLES) + ", or dir:/path/to/a/model/of/the/same/shape. "
        "Leave empty to see one model.",
        placeholder="e.g. int4-g32, rank:0.8:svdllm, lora:r8:s50",
    )
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        key = variants.parse_key(raw)
    except InputError as err:
        st.warning(str(err), icon=":material/warning:")
        return None
    if key.kind == "dir" and not settings.allow_external_models():
        st.warning(
            "This server only opens the catalogue models: comparing with a folder is turned off. Use a "
            "variant key such as int8 or lora:r8:s50.",
            icon=":material/warning:",
        )
        return None
    return str(key)


def _variant(sel, loaded: LoadedModel, key: str) -> variants.Variant | None:
    text = sel.text_key.text
    spec = variants.variant_spec(cached_fingerprint(sel.model_key), key, text, loaded.device)
    return task_view.watch(
        spec,
        variants.variant_work(loaded, spec, text),
        label=f"Building B = {key}",
        failure=f"Building the variant {key} failed. Check the key, or try another",
        key="weights_variant",
    )


variant_for = _variant  # public name for the other pages' compare modes (circuits): one way to build B


def _spectra_b(
    loaded: LoadedModel, variant: variants.Variant, spectra_a: WeightSpectra
) -> WeightSpectra | None:
    spec = variants.variant_spectra_spec(loaded, variant)
    result = task_view.watch(
        spec,
        variants.variant_spectra_work(loaded, variant, spec, spectra_a),
        label="Weight spectra of B (kept on disk)",
        failure="Computing B's weight spectra failed. Reload the page to retry",
        key="weights_variant_spectra",
    )
    return None if result is None else with_origin(result, spec)


def draw(page: PageState, sel, loaded: LoadedModel, spectra_a: WeightSpectra, key: str) -> None:
    """The compare section for B = ``key`` (canonical): everything below the control."""
    variant = _variant(sel, loaded, key)
    if variant is None:
        return
    st.markdown(f"**B = `{key}`**: {variant.description}. " + " ".join(variant.notes))
    spectra_b = _spectra_b(loaded, variant, spectra_a)
    if spectra_b is None:
        return
    change = variants.relative_change(loaded, variant)
    changed = np.flatnonzero(change > 0)
    if changed.size == 0:
        st.info("No change: every weight matrix of B equals A's, so every difference below is 0.",
                icon=":material/info:")  # fmt: skip
    _grid_section(page, spectra_a, spectra_b, change)
    _matrix_section(page, loaded, variant, spectra_a, spectra_b, changed)
    _outputs_section(sel, loaded, variant)


def _grid_section(page: PageState, spectra_a: WeightSpectra, spectra_b: WeightSpectra, change) -> None:
    st.subheader("A | B | difference, every matrix")
    metric = page.selectbox(VS_METRIC, "Metric", format_func=lambda m: METRICS[m][0])
    comparison = compare_metric(spectra_a.metric(metric), spectra_b.metric(metric), metric)
    st.plotly_chart(make_delta_heatmap_figure(spectra_a, comparison), width="stretch", key="weights_vs_grid")
    finite = np.isfinite(comparison.a) & np.isfinite(comparison.b)
    if finite.any():
        mean_a, mean_b = comparison.a[finite].mean(), comparison.b[finite].mean()
        shift = f" ({(mean_b - mean_a) / abs(mean_a):+.1%})" if mean_a else ""
        st.caption(
            f"Mean {METRICS[metric][0]} over {int(finite.sum())} matrices: A {mean_a:.4g}, B {mean_b:.4g}"
            f"{shift}. {int((change > 0).sum())} of {change.size} matrices differ; the largest relative change "
            f"‖W_B − W_A‖_F/‖W_A‖_F is {change.max():.3g}."
        )


def _matrix_section(page, loaded, variant, spectra_a, spectra_b, changed) -> None:
    st.subheader("One matrix: A and B, and ΔW = W_B − W_A")
    names = list(spectra_a.names)
    default = names[int(changed[0])] if changed.size else names[0]
    name = page.selectbox(
        Choice("vs_matrix", default, names),
        "Matrix",
        format_func=lambda n: matrix_label(spectra_a, names.index(n)),
    )
    index = names.index(name)
    st.plotly_chart(make_spectra_pair_figure(spectra_a, spectra_b, index), width="stretch",
                    key="weights_vs_pair")  # fmt: skip
    cols = st.columns(4)
    for col, metric in zip(cols, MATRIX_METRICS, strict=True):
        a, b = spectra_a.metric(metric)[index], spectra_b.metric(metric)[index]
        col.metric(f"{METRICS[metric][0]}: A → B", f"{a:.4g} → {b:.4g}",
                   delta=None if not (np.isfinite(a) and np.isfinite(b)) else f"{b - a:+.3g}",
                   delta_color="off")  # fmt: skip
    delta = delta_spectrum(*variants.matrix_pair(loaded, variant, name))
    if delta.zero:
        st.info(f"No change in {matrix_label(spectra_a, index)}: ΔW = 0.", icon=":material/info:")
        return
    st.plotly_chart(make_delta_figure(delta, f"ΔW of {matrix_label(spectra_a, index)}"), width="stretch",
                    key="weights_vs_delta")  # fmt: skip
    ranks = [r for r in SUBSPACE_RANKS if r <= delta.energy_share.size]
    shares = ", ".join(f"r={r}: {delta.energy_share[r - 1]:.3g}" for r in ranks)
    amps = ", ".join(f"r={r}: {delta.amplification[r - 1]:.3g}" for r in ranks)
    m, n = delta.shape
    st.caption(
        f"‖ΔW‖_F = {delta.frobenius:.4g} ({delta.relative:.3g} of ‖W_A‖_F); effective rank "
        f"{delta.effective_rank:.1f}, stable rank {delta.stable_rank:.2f}, {delta.numerical_rank} of {min(m, n)} "
        f"singular values above the float32 rounding floor {delta.noise:.2g}. Share of ‖ΔW‖_F² in W_A's top-r "
        f"singular subspace ‖U_rᵀ ΔW V_r‖_F²/‖ΔW‖_F² ({shares}); a random update would hold r²/(mn) there. "
        f"Amplification ‖ΔW‖_F / ‖U'_rᵀ W_A V'_r‖_F with U'_r, V'_r ΔW's own top-r singular vectors ({amps}). "
        + subspace_reading(delta, 8 if 8 in ranks else ranks[-1])
    )


# Within this factor of a random update's value, a ratio reads "about as random" (the share of a Gaussian dW
# of 576 x 576 at r = 8 varies by about 20 % between draws; a factor 3 is well outside that).
RANDOM_FACTOR = 3.0


def _against_random(ratio: float) -> str:
    if ratio >= RANDOM_FACTOR:
        return "well above"
    return "well below" if ratio <= 1 / RANDOM_FACTOR else "about"


def subspace_reading(delta, r: int) -> str:
    """What the numbers at rank ``r`` say, in words from the data: where dW sits against W_A's top singular
    subspace, and whether W_A is strong along dW's own directions (compare.DeltaSpectrum's ratios to random)."""
    share, along, amp = delta.share_over_random(r), delta.alignment_over_random(r), delta.amplification[r - 1]
    return (
        f"At r = {r}: ΔW holds {share:.2g}x a random update's share of its energy in W_A's top-{r} subspace "
        f"({_against_random(share)} random), W_A along ΔW's own top-{r} directions is {along:.2g}x its size along "
        f"random ones ({_against_random(along)} random), and ΔW is {amp:.3g}x that component of W_A"
        + (": the update amplifies directions W_A does not emphasise." if share < RANDOM_FACTOR and amp > 1
           else ".")
        + " Hu et al. (LoRA, section 7.3) measured 21.7 at r = 4 for GPT-3's W_q, with W_q along ΔW's "
        "directions above random."
    )  # fmt: skip


def _outputs_section(sel, loaded: LoadedModel, variant: variants.Variant) -> None:
    st.subheader("Outputs on this text")
    text = sel.text_key.text
    n_new = CONTINUATION_TOKENS if loaded.causal else 0
    vspec = variants.variant_spec(cached_fingerprint(sel.model_key), variant.key, text, loaded.device)
    spec = variants.OutputsSpec(vspec, text_hash(text), int(sel.text_key.max_tokens), n_new)

    def work(task):
        return variants.compare_outputs_of(loaded, variant, text, sel.text_key.max_tokens, n_new, task.report)

    out = task_view.watch(spec, work, label="A and B on the text",
                          failure="Running A and B on the text failed", key="weights_vs_outputs")  # fmt: skip
    if out is None:
        return
    if out.tokens is None:
        h = out.hidden
        cols = st.columns(2)
        cols[0].metric("mean cosine of the last hidden states", f"{h.mean_cosine:.6f}")
        cols[1].metric("‖H_B − H_A‖_F / ‖H_A‖_F", f"{h.relative_change:.3g}")
        st.caption(
            f"{loaded.card.id} is an encoder: it predicts no next token, so there is no KL or top-1 agreement; "
            f"these compare its {out.n_tokens} token vectors instead."
        )
        return
    t = out.tokens
    cols = st.columns(4)
    cols[0].metric(
        "mean KL(A ‖ B)", f"{t.kl:.3g} nats", help="Σ_v p_A log(p_A/p_B), averaged over positions."
    )
    cols[1].metric("same top-1 token", f"{t.top1_agreement:.1%}",
                   help="llama.cpp perplexity's 'Same top p': positions whose most likely next token agrees.")  # fmt: skip
    cols[2].metric("perplexity A", f"{t.perplexity_a:.4g}")
    cols[3].metric("perplexity B", f"{t.perplexity_b:.4g}")
    st.caption(f"{t.n_positions} next-token predictions on the text's {out.n_tokens} tokens.")
    left, right = st.columns(2)
    left.markdown(f"**A continues** ({CONTINUATION_TOKENS} tokens, greedy)")
    left.code(out.continuation_a or "(nothing)", language=None, wrap_lines=True)
    right.markdown(f"**B continues** ({CONTINUATION_TOKENS} tokens, greedy)")
    right.code(out.continuation_b or "(nothing)", language=None, wrap_lines=True)
