"""The compression page's words: verdicts, the budget answer, the latency finding. Numbers come from
explorer.analysis.compression and explorer.analysis.latency; this module only phrases them (no Streamlit, no
maths beyond formatting), so the page and its tests share one wording."""

from __future__ import annotations

import numpy as np

from explorer.analysis.compression import (
    BYTES_PER_PARAM,
    DEFAULT_KINDS,
    GROUP_LABELS,
    BudgetAnswer,
    Outcome,
    Point,
    Quality,
)
from explorer.analysis.latency import Latency, LatencyComparison
from explorer.analysis.quality import METRICS, Budget, headline_metric
from explorer.labels import LOWRANK_METHOD_LABELS as METHOD_LABELS

BUDGET_METRIC_LABELS = {name: m.label for name, m in METRICS.items()}
ALLOCATION_WORDS = {"uniform": "same share for every matrix", "greedy": "ranks allocated where they matter"}


# Words for a measured change of the headline metric (its name -> (limit, words) from best to worst, each
# limit inclusive; the words beyond the last), stated on the page next to the number they are read from:
# perplexity by its ratio to the original's, embedding cosine by its value.
VERDICT_WORDS = {
    "perplexity": (
        ((1.02, "barely changes"), (1.10, "is slightly worse"), (1.5, "is noticeably worse"),
         (3.0, "is much worse"), (10.0, "is far worse")),
        "is broken (it has lost the language)",
    ),
    "cosine": (
        ((0.999, "barely changes"), (0.99, "changes a little"), (0.95, "changes noticeably"),
         (0.85, "changes a lot")),
        "changes a lot (similarity rankings are no longer trustworthy)",
    ),
}  # fmt: skip


def _verdict_measure(before: Quality, after: Quality) -> float | None:
    """The number a verdict reads: the headline metric's ratio to the original's (a ratio metric) or its
    value; None when not finite."""
    metric = headline_metric(after.causal)
    value = metric.value(after)
    if value is None or not np.isfinite(value):
        return None
    return value / metric.value(before) if metric.compare == "ratio" else value


def verdict(before: Quality, after: Quality) -> str:
    """A plain-language judgement of the quality change, from the perplexity ratio (causal LM) or the mean
    embedding cosine (encoder): VERDICT_WORDS."""
    metric = headline_metric(after.causal)
    measure = _verdict_measure(before, after)
    if measure is None:
        return "the compressed model produces no usable numbers"
    steps, beyond = VERDICT_WORDS[metric.name]
    for limit, words in steps:
        if (measure <= limit) if metric.better == "lower" else (measure >= limit):
            return words
    return beyond


def ratio_text(before: Quality, after: Quality) -> str:
    """The measured number the verdict is read from: "perplexity ×2.75" or "embedding cosine 0.962"."""
    metric = headline_metric(after.causal)
    measure = _verdict_measure(before, after)
    if measure is None:
        return f"{metric.noun} not finite"
    return f"{metric.noun} ×{measure:,.4g}" if metric.compare == "ratio" else f"{metric.noun} {measure:.3f}"


def verdict_scale(causal: bool) -> str:
    """The words and the numbers they stand for, as one caption."""
    metric = headline_metric(causal)
    steps, _beyond = VERDICT_WORDS[metric.name]
    if metric.compare == "ratio":
        scale = ", ".join(f"≤ ×{limit:g}: {words.removeprefix('is ')}" for limit, words in steps)
        return f"Perplexity ratio {scale}; beyond: broken."
    scale = ", ".join(f"≥ {limit:g}: {words}" for limit, words in steps)
    return f"Embedding cosine {scale}; below: rankings no longer trustworthy."


def quality_sentence(before: Quality, after: Quality, where: str) -> str:
    """What the change does to the headline metric on ``where`` (Markdown), with the verdict."""
    if after.causal:
        quality = (
            f"Perplexity on {where} goes from **{before.perplexity:,.4g}** to **{after.perplexity:,.4g}**"
        )
    else:
        quality = f"On {where}, sentence embeddings keep a mean cosine of **{after.embedding_cosine:.3f}**"
    return f"{quality}: quality **{verdict(before, after)}** ({ratio_text(before, after)})."


def groups_phrase(kinds) -> str:
    """'MLP' for the three MLP kinds, else the kinds' labels joined."""
    kinds = tuple(kinds)
    if set(kinds) == set(DEFAULT_KINDS) or (
        kinds and all(k.startswith("mlp_") for k in kinds) and len(kinds) > 1
    ):
        return "MLP"
    return ", ".join(GROUP_LABELS.get(k, k) for k in kinds)


def summary_sentences(outcome: Outcome) -> tuple[str, str]:
    """Two sentences a non-specialist can read (Markdown, key numbers in bold): what it saves, what it costs."""
    n = len(outcome.rows)
    groups = ", ".join(GROUP_LABELS.get(k, k) for k in outcome.kinds)
    change = outcome.params_model_after - outcome.params_model_before
    size = (
        f"Replacing {n} matrices ({groups}) by {METHOD_LABELS[outcome.method]} factors of mean rank "
        f"{outcome.mean_rank:.0f} keeps **{outcome.share_kept:.0%} of the model's parameters** "
        f"({outcome.params_model_before / 1e6:.1f} M → {outcome.params_model_after / 1e6:.1f} M; "
        f"{abs(change) * 2 / 1e6:.0f} MB {'less' if change <= 0 else 'more'} at fp16)."
    )
    return size, quality_sentence(outcome.before, outcome.after, "the text")


def cost_phrase(point: Point, before: Quality, budget: Budget) -> str:
    """What a point costs in the budget's metric: "+6.0% perplexity (27.6 → 29.3)", ... (Budget.cost)."""
    return budget.cost(before, point.quality)


def size_phrase(nbytes: float) -> str:
    """Bytes in the unit that reads best: "41 MB", "3.2 MB", "180 kB", "1.20 GB"."""
    if abs(nbytes) >= 1e9:
        return f"{nbytes / 1e9:.2f} GB"
    if abs(nbytes) >= 1e7:
        return f"{nbytes / 1e6:,.0f} MB"
    if abs(nbytes) >= 1e6:
        return f"{nbytes / 1e6:.1f} MB"
    return f"{nbytes / 1e3:,.0f} kB"


def savings_phrase(point: Point) -> str:
    """E.g. "saves 41 MB (12% of the model) at fp16"."""
    saved = (point.params_model_before - point.params_model_after) * BYTES_PER_PARAM
    share = saved / (point.params_model_before * BYTES_PER_PARAM)
    return f"saves {size_phrase(saved)} ({share:.0%} of the model) at fp16"


def point_sentence(point: Point, before: Quality, budget: Budget, kinds, *, fits: bool) -> str:
    """The headline sentence of one point: "Keeping 90 % of the MLP weights costs +6 % perplexity (...):
    within your +10 % perplexity budget; saves 41 MB (...)" (Markdown)."""
    where = "within" if fits else "outside"
    return (
        f"Keeping **{point.group_share_kept:.0%} of the {groups_phrase(kinds)} weights** costs "
        f"**{cost_phrase(point, before, budget)}**: {where} your {budget.phrase()} "
        f"budget; {savings_phrase(point)}."
    )


def answer_headline(
    best: BudgetAnswer | None, closest: BudgetAnswer | None, before: Quality, budget: Budget, kinds
) -> tuple[str, str]:
    """(the headline sentence, how it was found) for the whole budget view: the smallest configuration within
    the budget, or, if none fits, a plain "nothing fits" with the closest one."""
    if best is not None:
        how = f"{METHOD_LABELS[best.method]}, {ALLOCATION_WORDS[best.allocation]}"
        return point_sentence(best.best, before, budget, kinds, fits=True), how
    if closest is None:
        return "No configuration has been measured yet.", ""
    how = f"{METHOD_LABELS[closest.method]}, {ALLOCATION_WORDS[closest.allocation]}"
    sentence = point_sentence(closest.closest, before, budget, kinds, fits=False)
    return (
        f"**Nothing measured fits your {budget.phrase()} budget.** The closest: "
        f"{sentence[0].lower()}{sentence[1:]}",
        f"{how}. To stay within the budget, compress fewer weight groups (below) or accept a looser one: rank-k "
        "factors cost k(m+n) numbers against mn, so even the gentlest setting drops many directions of every "
        "matrix it compresses",
    )


def answer_row(answer: BudgetAnswer, before: Quality, budget: Budget) -> dict:
    """One row of the per-method table (plain values; the page formats them)."""
    point = answer.best if answer.best is not None else answer.closest
    row = {
        "method": METHOD_LABELS[answer.method],
        "ranks": ALLOCATION_WORDS[answer.allocation],
        "fits": "yes" if answer.best is not None else ("no: closest shown" if point is not None else "…"),
        "weights kept": None if point is None else f"{point.group_share_kept:.0%}",
        "parameters (M)": None if point is None else point.params_model_after / 1e6,
        "memory fp16 (MB)": None if point is None else point.bytes / 1e6,
        "cost": "" if point is None else cost_phrase(point, before, budget),
        "points measured": answer.measured,
    }
    return row


def _timing(t) -> str:
    return f"{t.median_ms:,.1f} ms (quartiles {t.q1_ms:,.1f}–{t.q3_ms:,.1f}, {t.runs} runs)"


def latency_sentence(c: LatencyComparison, device: str) -> str:
    """What one comparison shows, never noise as a finding (Markdown)."""
    macs = (
        f"The compressed model does **{c.mac_ratio:.0%} of the multiply-adds** of the original "
        f"({c.macs_compressed / 1e9:,.2f} G against {c.macs_original / 1e9:,.2f} G)."
    )
    times = f"Original {_timing(c.original)}; compressed {_timing(c.compressed)}."
    if not c.distinguishable:
        finding = (
            "The two timings overlap: on this machine the difference is within the noise, so no speed-up or "
            "slow-down can be claimed."
        )
    elif c.ratio < 1:
        finding = f"The compressed model is **faster: {c.ratio:.2f}× the original's time**."
    else:
        finding = f"The compressed model is **slower: {c.ratio:.2f}× the original's time**. " + (
            "It replaces each big matrix product by two thin ones (x·Bᵀ, then ·Aᵀ): twice the kernel "
            f"launches and reads of the activations, and thin products run below the {device} "
            "library's best speed, which can cost more than the multiply-adds saved, above all at few "
            "tokens. Fewer multiply-adds pay off at larger inputs or smaller ranks."
            if c.mac_ratio < 1
            else "At these ranks the factors do more multiply-adds than the dense matrices."
        )
    return f"**{c.n_tokens} tokens.** {macs} {times} {finding}"


def latency_sentences(latency: Latency, device: str) -> tuple[str, str]:
    return latency_sentence(latency.at_text, device), latency_sentence(latency.at_fixed, device)


def setting_phrase(point) -> str:
    """A chart point's setting in words a non-specialist reads first, the scheme's name after it: "8-bit
    weights (int8)", "4-bit weights with an offset, groups of 32 (int4-g32-asym)"; low-rank and combined settings
    are already words."""
    if point.series == "int8":
        return f"8-bit weights ({point.setting})"
    if point.series.startswith("4-bit"):
        detail = point.series.removeprefix("4-bit").replace(" + offset,", " with an offset,")
        return f"4-bit weights{detail} ({point.setting})"
    return point.setting


def tradeoff_headline(best, closest, before: Quality, original_bytes: int, budget: Budget) -> str:
    """The answer over every method (low rank, fewer bits, both): ``best``/``closest`` are Points
    (explorer.analysis.compression.within_budget)."""
    if best is not None:
        saved = original_bytes - best.bytes_model
        return (
            f"Across every method, the smallest model within your budget: **{setting_phrase(best)}**, "
            f"{size_phrase(best.bytes_model)} instead of {size_phrase(original_bytes)} (saves "
            f"{size_phrase(saved)}, {saved / original_bytes:.0%}), at {cost_phrase(best, before, budget)}."
        )
    if closest is not None:
        return (
            f"No method measured fits your budget; the closest is **{setting_phrase(closest)}** at "
            f"{cost_phrase(closest, before, budget)}, {size_phrase(closest.bytes_model)}."
        )
    return "Nothing measured yet."


def healing_sentence(run, before: Quality, budget: Budget) -> str:
    """What healing gave back (``run``: explorer.analysis.healing.HealingRun), in the budget's metric, and
    which step's factors were kept (the validation chunks decide; none: left as they were)."""
    was, now = budget.loss(before, run.before), budget.loss(before, run.after)
    if not (np.isfinite(was) and np.isfinite(now)):
        return f"After {run.steps} steps ({run.seconds:.0f} s) the model still gives no usable numbers."
    step_size = (
        f"step size {run.lr:g}"
        if run.lr == run.lr_asked
        else f"step size {run.lr:g}: {run.lr_asked:g} made the validation text worse at once"
    )
    if not run.improved:
        return (
            f"**Training did not help** ({run.steps} steps, {step_size}, {run.seconds:.0f} s): no check on the "
            "calibration text held out of training beat the compressed model, so its factors are left as they "
            f"were, at {budget.cost(before, run.after)}. A smaller step size may help."
        )
    given_back = (was - now) / was if was > 0 else 0.0
    fits = "within" if budget.fits(before, run.after) else "outside"
    kept = (
        ""
        if run.best_step == run.steps
        else f", keeping step {run.best_step}'s factors (the validation best)"
    )
    return (
        f"**{run.steps} steps ({step_size}, {run.seconds:.0f} s){kept}**: from "
        f"{budget.cost(before, run.before)} to {budget.cost(before, run.after)}: training "
        f"gave back {given_back:.0%} of the loss, {fits} your budget. Training objective on the calibration "
        f"text: {run.calibration_before:.4g} → {run.calibration_after:.4g}."
    )


def blocks_phrase(blocks: tuple[int, ...], n_layers: int) -> str:
    """ "all 30 blocks", "blocks 0-5", "blocks 1, 3" (counted from 0), "no block" (embeddings only)."""
    if not blocks:
        return "no block"
    if len(blocks) == n_layers:
        return f"all {n_layers} blocks"
    if blocks == tuple(range(blocks[0], blocks[-1] + 1)):
        return f"blocks {blocks[0]}–{blocks[-1]}"
    return "blocks " + ", ".join(str(b) for b in blocks)


def scope_sentence(scope, budget_tokens: int) -> str:
    """What the card's numbers cover (``scope``: explorer.ui.compression_view.Scope), in one sentence."""
    names = ", ".join(GROUP_LABELS.get(k, k) for k in scope.kinds)
    shipped = (
        f" The model's weights were {scope.shipped}; this page loads them as floats, so the fp16 baseline is "
        "what it compares with, not the file that ships."
        if scope.shipped
        else ""
    )
    return (
        f"Scope: only the {scope.n_matrices} chosen matrices are compressed ({names} of "
        f"{blocks_phrase(scope.blocks, scope.n_layers)}: {scope.params_chosen / 1e6:.1f} M of the model's "
        f"{scope.params_model / 1e6:.1f} M parameters); every size is the whole model with everything else at "
        f"fp16, against the whole model at fp16 ({size_phrase(scope.bytes_fp16)}; "
        f"{size_phrase(scope.bytes_fp32)} at fp32); quality on the held-out passage ({budget_tokens} tokens)."
        + shipped
    )


def free_sentences(description: str, nbytes: int, original_bytes: int, before: Quality, after: Quality,
                   where: str) -> tuple[str, str]:  # fmt: skip
    """The free result's two sentences (Markdown): what the setting stores and saves, what it costs."""
    saved = original_bytes - nbytes
    size = (
        f"{description}: the model takes **{size_phrase(nbytes)}** instead of {size_phrase(original_bytes)} "
        f"at fp16 ({'saves' if saved >= 0 else 'adds'} {size_phrase(abs(saved))}, "
        f"{abs(saved) / original_bytes:.0%})."
    )
    return size, quality_sentence(before, after, where)


def quality_value(q: Quality) -> str:
    """The headline number of a measured quality, as the table shows it: perplexity or embedding cosine."""
    metric = headline_metric(q.causal)
    return metric.formatted(metric.value(q))


def following_note(answer, fits: bool) -> str | None:
    """The free card's caption while it follows the budget's answer (``answer``: a TradeoffPoint or None)."""
    if answer is None:
        return None
    opened = (
        f"Opened on the budget's answer ({setting_phrase(answer)})"
        if fits
        else f"**Nothing measured fits your budget**: opened on the closest setting ({setting_phrase(answer)}), "
        "outside the budget"
    )
    return (
        f"{opened}, measured on the held-out passage. It follows the answer while it is measured; move any "
        "control to try your own."
    )


# ------------------------------------------------------------------------------------------ the downloads

LOAD_BACK_SENTENCE = (
    "To load the compressed weights back, unzip them or keep the .zip, then open the sidebar's model box and "
    "give the path of the unzipped folder or the .zip: the page checks that the base model is the same one."
)


def decision_title(model_id: str, description: str) -> str:
    return f"Compression decision for {model_id}: {description}"


def decision_notes(where: str, n_tokens: int, on_budget_chart: bool) -> tuple[str, ...]:
    """The sentences under the decision report's title: what was measured where, what the chart shows, and how
    to load the weights back."""
    chart = (
        "The chart: every setting the budget measured on the held-out passage, and this one."
        if on_budget_chart
        else "The chart: this setting only (the budget's settings were measured on the held-out passage)."
    )
    return (
        f"Measured by running the compressed copy on {where} ({n_tokens} tokens) against the original on the "
        f"same tokens. {chart}",
        LOAD_BACK_SENTENCE,
    )
