"""The budget view's pure parts: usable-rank factors on disk, budgets on every metric, per-method answers, the
sweep's order, uniform-against-greedy ranks, and the words the page shows."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.analysis import compression as comp
from explorer.analysis import factor_store as store
from explorer.analysis.latency import Latency, LatencyComparison, Timing
from explorer.analysis.lowrank import factorize
from explorer.analysis.quality import (
    COSINE,
    DEFAULT_LIMITS,
    METRICS,
    PERPLEXITY,
    Budget,
    change_text,
    metrics_for,
)
from explorer.analysis.weights import model_fingerprint
from explorer.spectra.allocation import largest_factored_rank
from explorer.ui import compression_text as words
from tests.tolerances import sum_rtol

KINDS = ("mlp_gate", "mlp_up", "mlp_down")


def _factor_files() -> list:
    """The factor entries on disk (one file each, in the one store's ``factors`` folder)."""
    from explorer import store as disk

    return list((disk.store_root() / store.KIND).iterdir())


@pytest.fixture(scope="module")
def calibrated(load):
    loaded = load("tiny-llama")
    chunks = comp.calibration_chunks(loaded, comp.shipped_calibration_text(), 64)[:2]
    return loaded, comp.collect_activation_stats(loaded, chunks, KINDS)


def _q(ppl=None, kl=None, cos=None, rho=None):
    causal = ppl is not None
    return comp.Quality(causal, ppl, kl, cos, rho, 1.0, 10)


# ------------------------------------------------------------------------------------------ usable factors


def test_usable_factors_keep_the_prefix_that_saves_parameters(calibrated):
    loaded, (stats, n_tokens) = calibrated
    full = factorize(loaded.model, "svdllm", KINDS, stats, calibration_tokens=n_tokens)
    cut = store.usable_factors(full)
    for f, g in zip(full.matrices, cut.matrices, strict=True):
        m, n = f.shape
        top = g.max_rank
        assert top == max(min((m * n - 1) // (m + n), f.max_rank), 1)
        assert top * (m + n) < m * n and (top + 1) * (m + n) >= m * n  # the largest rank that saves
        assert torch.equal(g.U, f.U[:, :top]) and torch.equal(g.B, f.B[:top])
        for field in ("sigma", "weight_tail", "plain_tail", "output_tail"):
            assert getattr(g, field).tobytes() == getattr(f, field).tobytes()
        for k in (1, top // 2, top):
            assert g.output_error(k) == f.output_error(k) and torch.equal(g.reconstruct(k), f.reconstruct(k))
        assert g.clamp(top + 5) == top  # a rank past break-even is cut back to the usable one


def test_usable_factors_are_read_back_bit_identical_and_keyed_apart(cache_home, calibrated):
    loaded, (stats, n_tokens) = calibrated
    calls = []

    def provider():
        calls.append(1)
        return stats, n_tokens

    first, hit1 = store.cached_factorize(loaded.model, "asvd", KINDS, "cal", provider, usable_only=True)
    second, hit2 = store.cached_factorize(loaded.model, "asvd", KINDS, "cal", provider, usable_only=True)
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    expected = store.usable_factors(
        factorize(loaded.model, "asvd", KINDS, stats, calibration_tokens=n_tokens)
    )
    for got in (first, second):
        for f, g in zip(expected.matrices, got.matrices, strict=True):
            assert g.U.dtype == f.U.dtype and torch.equal(g.U, f.U) and torch.equal(g.B, f.B)
            assert g.output_tail.tobytes() == f.output_tail.tobytes() and g.output_norm2 == f.output_norm2
    fingerprint = model_fingerprint(loaded.model)
    assert store.factor_key(fingerprint, "asvd", "cal", KINDS, usable_only=True) != store.factor_key(
        fingerprint, "asvd", "cal", KINDS
    )
    full, _ = store.cached_factorize(loaded.model, "asvd", KINDS, "cal", provider)
    sizes = sorted(p.stat().st_size for p in _factor_files())
    assert len(sizes) == 2 and sizes[0] < sizes[1]  # the usable file is the smaller one
    assert full.matrices[0].max_rank > first.matrices[0].max_rank


def test_the_page_key_changes_when_a_weight_changes(load):
    import copy

    model = load("tiny-gpt2").model
    changed = copy.deepcopy(model)
    with torch.no_grad():
        w = changed.transformer.h[0].mlp.c_fc.weight
        w[1, 2] = torch.nextafter(w[1, 2], torch.tensor(np.inf))
    keys = {
        store.factor_key(model_fingerprint(m), "svdllm", "cal", ("mlp_up",), usable_only=True)
        for m in (model, changed)
    }
    assert len(keys) == 2


# ---------------------------------------------------------------------------------------------- budgets


def test_quality_budget_on_every_metric():
    before = _q(ppl=20.0, kl=0.0)
    b = Budget.default(True)
    assert b.metric is PERPLEXITY and Budget.default(False).metric is COSINE
    assert b.fits(before, _q(ppl=22.0, kl=0.3)) and not b.fits(before, _q(ppl=22.2, kl=0.0))
    assert b.loss(before, _q(ppl=25.0, kl=0.1)) == 0.25  # 25 / 20 - 1: exact in binary
    assert b.loss(before, _q(ppl=float("nan"), kl=0.1)) == float("inf")
    kl = Budget.default(True, "kl")
    assert kl.limit == 0.05
    assert kl.fits(before, _q(ppl=100.0, kl=0.05)) and not kl.fits(before, _q(ppl=20.0, kl=0.051))
    assert kl.loss(before, _q(ppl=20.0, kl=0.25)) == 0.25  # KL(p || p) = 0: the loss is the KL itself
    enc_before = _q(cos=1.0, rho=1.0)
    cos = Budget.default(False)
    assert cos.fits(enc_before, _q(cos=0.991, rho=0.5)) and not cos.fits(enc_before, _q(cos=0.989, rho=1.0))
    assert cos.fits(enc_before, _q(cos=0.99, rho=0.0))  # exactly at the limit: compared on the value itself
    assert cos.loss(enc_before, _q(cos=0.75, rho=1.0)) == 0.25  # 1 - cosine: exact in binary
    rho = Budget.default(False, "spearman")
    assert rho.fits(enc_before, _q(cos=0.5, rho=0.985)) and not rho.fits(enc_before, _q(cos=1.0, rho=0.97))
    with pytest.raises(ValueError, match="does not apply"):
        Budget.default(False, "kl")


def test_every_metric_orders_losses_the_way_quality_drops():
    """The loss is 0 for the original and grows as the metric moves in its worse direction, on every metric;
    a budget's loss limit is where ``fits`` flips."""
    originals = {True: _q(ppl=20.0, kl=0.0), False: _q(cos=1.0, rho=1.0)}
    worse = {"perplexity": (20.0, 25.0, 40.0), "kl": (0.0, 0.5, 1.0), "cosine": (1.0, 0.75, 0.5),
             "spearman": (1.0, 0.75, 0.5)}  # fmt: skip
    for name, values in worse.items():
        metric = METRICS[name]
        before = originals[metric.causal]
        losses = [metric.loss(before, replace(before, **{metric.field: v})) for v in values]
        assert losses[0] == 0 and losses[0] < losses[1] < losses[2], name
        budget = Budget(metric, DEFAULT_LIMITS[name])
        assert budget.fits(before, before)
        assert (
            budget.loss_limit >= 0 and metric.loss(before, replace(before, **{metric.field: None})) == np.inf
        )
    assert [m.name for m in metrics_for(True)] == ["perplexity", "kl"]
    assert [m.name for m in metrics_for(False)] == ["cosine", "spearman"]


def test_budget_phrases_name_the_limit():
    assert Budget(PERPLEXITY, 0.1).phrase() == "+10% perplexity"
    assert Budget(METRICS["kl"], 0.05).phrase() == "KL ≤ 0.05 nats/token"
    assert Budget(COSINE, 0.99).describe() == "mean embedding cosine to the original at least 0.99"
    assert Budget(PERPLEXITY, 0.1).describe() == "perplexity at most +10% over the original"
    before = _q(cos=1.0, rho=1.0)
    assert Budget(COSINE, 0.99).cost(before, _q(cos=0.98765, rho=0.5)) == (
        "an embedding cosine of 0.9877 with the original"
    )


def _point(method, allocation, share, kept, ppl):
    """kept: thousands of parameters of a 1 M model whose compressed groups hold 0.5 M."""
    return comp.Point.low_rank(method, share, _q(ppl=ppl, kl=0.0), allocation=allocation, mean_rank=10.0,
                               params_model_before=1_000_000, params_model_after=kept * 1000,
                               params_group_before=500_000, params_group_after=kept * 1000 - 500_000)  # fmt: skip


def test_budget_answers_per_method_and_overall():
    before = _q(ppl=10.0, kl=0.0)
    pts = [
        _point("svdllm", "uniform", 0.9, 950, 10.5),
        _point("svdllm", "uniform", 0.8, 900, 10.9),
        _point("svdllm", "uniform", 0.7, 850, 12.0),
        _point("svdllm", "greedy", 0.9, 950, 10.2),
        _point("svdllm", "greedy", 0.8, 900, 10.6),
        _point("svdllm", "greedy", 0.7, 850, 10.95),
        _point("svd", "uniform", 0.9, 950, 30.0),
        _point("svd", "uniform", 0.8, 900, 90.0),
    ]
    answers = comp.budget_answers(pts, before, Budget.default(True), ("svdllm", "svd"))
    assert [(a.method, a.allocation) for a in answers] == [
        ("svdllm", "uniform"),
        ("svdllm", "greedy"),
        ("svd", "uniform"),
        ("svd", "greedy"),
    ]
    u, g, s, s_g = answers
    # 10.95 / 10 - 1: one rounded quotient near 1 and an exact subtraction, within 2 eps of 0.095 (abs).
    assert u.best.share == 0.8 and g.best.share == 0.7
    assert g.loss_best == pytest.approx(0.095, rel=0, abs=2 * np.finfo(float).eps)
    assert s.best is None and s.closest.share == 0.9 and s.measured == 2
    assert s_g.best is None and s_g.closest is None and s_g.measured == 0
    assert comp.overall_best(answers) is g
    none_fit = comp.budget_answers(pts[6:], before, Budget.default(True), ("svd",))
    assert comp.overall_best(none_fit) is None and comp.overall_closest(none_fit).closest.share == 0.9


def test_sweep_plan_measures_gentle_shares_first_method_by_method():
    plan = comp.sweep_plan(("svdllm", "svd"), (0.25, 0.9, 0.5), greedy=("svdllm",))
    assert plan == [
        ("svdllm", "uniform", 0.9),
        ("svdllm", "greedy", 0.9),
        ("svdllm", "uniform", 0.5),
        ("svdllm", "greedy", 0.5),
        ("svdllm", "uniform", 0.25),
        ("svdllm", "greedy", 0.25),
        ("svd", "uniform", 0.9),
        ("svd", "uniform", 0.5),
        ("svd", "uniform", 0.25),
    ]


@pytest.mark.parametrize("share", [0.25, 0.5, 0.9])
def test_rank_comparison_spends_the_uniform_budget_within_one_rank_step(calibrated, share):
    loaded, (stats, n_tokens) = calibrated
    fact = store.usable_factors(factorize(loaded.model, "svdllm", KINDS, stats, calibration_tokens=n_tokens))
    c = comp.rank_comparison(fact, share)
    for f, k in zip(fact.matrices, c.uniform, strict=True):
        assert k == f.clamp(int(np.floor(share * f.shape[0] * f.shape[1] / sum(f.shape))))
    assert c.params_uniform == sum(
        int(k) * sum(f.shape) for f, k in zip(fact.matrices, c.uniform, strict=True)
    )
    assert c.params_greedy <= c.params_uniform
    # What the greedy leaves unspent is smaller than the next step of every matrix it did not leave dense, and
    # each such step is at most m + n (largest_factored_rank: mn - K(m + n) <= m + n).
    steps = [sum(f.shape) for f, k in zip(fact.matrices, c.greedy, strict=True) if k > 0]
    assert c.params_uniform - c.params_greedy < min(steps)
    assert all(
        k == 0 or 1 <= k <= largest_factored_rank(f.shape)
        for f, k in zip(fact.matrices, c.greedy, strict=True)
    )
    # The greedy's calibration output error is at most the uniform ranks' (up to its gap: one component).
    greedy_ranks = {f.name: int(k) for f, k in zip(fact.matrices, c.greedy, strict=True) if k > 0}
    uniform_ranks = {f.name: int(k) for f, k in zip(fact.matrices, c.uniform, strict=True)}
    alloc = comp.allocation_of(fact, c.params_uniform)
    den = sum(f.output_norm2 for f in fact.matrices)
    # Both errors are float64 sums of at most one non-negative term per component: c n eps relative.
    slack = sum_rtol(sum(min(f.shape) for f in fact.matrices))
    assert comp.calib_output_error(fact, greedy_ranks) <= (
        comp.calib_output_error(fact, uniform_ranks) + alloc.gap / den
    ) * (1 + slack)


# ------------------------------------------------------------------------------------------------ words


def test_answer_headline_says_within_or_nothing_fits_plainly():
    before = _q(ppl=10.0, kl=0.0)
    pts = [_point("svdllm", "uniform", 0.9, 950, 10.6), _point("svdllm", "uniform", 0.7, 850, 14.0)]
    budget = Budget.default(True)
    answers = comp.budget_answers(pts, before, budget, ("svdllm",))
    text, how = words.answer_headline(
        comp.overall_best(answers), comp.overall_closest(answers), before, budget, KINDS
    )
    assert "Keeping **90% of the MLP weights** costs **+6.0% perplexity (10 → 10.6)**" in text
    assert "within your +10% perplexity budget" in text and "saves 100 kB (5% of the model)" in text
    assert how.startswith("SVD-LLM")
    strict = Budget(PERPLEXITY, 0.01)
    answers = comp.budget_answers(pts, before, strict, ("svdllm",))
    text, how = words.answer_headline(None, comp.overall_closest(answers), before, strict, KINDS)
    assert "compress fewer weight groups" in how
    assert text.startswith("**Nothing measured fits your +1% perplexity budget.** The closest: keeping")
    assert "outside your" in text


def _comparison(original, compressed, macs_ratio=0.6):
    return LatencyComparison(24, Timing.of(original), Timing.of(compressed), 1000, int(1000 * macs_ratio))


def test_latency_words_never_report_noise_as_a_finding():
    overlap = _comparison([10, 11, 12, 13, 14], [10.5, 11.5, 12.5, 13.5, 14.5])
    assert not overlap.distinguishable
    text = words.latency_sentence(overlap, "cpu")
    assert "within the noise" in text and "faster" not in text and "slower" not in text
    assert "60% of the multiply-adds" in text
    slower = _comparison([10, 10.1, 10.2, 10.3, 10.4], [20, 20.1, 20.2, 20.3, 20.4])
    text = words.latency_sentence(slower, "cpu")
    assert "slower: 1.98×" in text and "two thin ones" in text
    faster = _comparison([20, 20.1, 20.2, 20.3, 20.4], [10, 10.1, 10.2, 10.3, 10.4])
    assert "faster: 0.50×" in words.latency_sentence(faster, "cpu")
    assert len(words.latency_sentences(Latency(overlap, slower, 2), "cpu")) == 2


def test_usable_factors_come_from_stored_full_factors_without_a_calibration_pass(cache_home, calibrated):
    loaded, (stats, n_tokens) = calibrated
    full, hit = store.cached_factorize(loaded.model, "svdllm", KINDS, "cal", lambda: (stats, n_tokens))
    assert not hit

    def no_pass():
        raise AssertionError("the full factors on disk hold the usable ones: no calibration pass needed")

    cut, hit = store.cached_factorize(loaded.model, "svdllm", KINDS, "cal", no_pass, usable_only=True)
    assert hit and len(list(_factor_files())) == 2  # the usable file is written for next time
    again, hit = store.cached_factorize(loaded.model, "svdllm", KINDS, "cal", no_pass, usable_only=True)
    expected = store.usable_factors(full)
    for f, g, h in zip(expected.matrices, cut.matrices, again.matrices, strict=True):
        assert (
            torch.equal(f.U, g.U)
            and torch.equal(f.B, g.B)
            and torch.equal(f.U, h.U)
            and torch.equal(f.B, h.B)
        )


def test_verdict_thresholds_and_summary_sentences():
    before = _q(ppl=20.0, kl=0.0)
    assert words.verdict(before, _q(ppl=20.4, kl=0.1)) == "barely changes"  # x1.02: the limit is inclusive
    assert words.verdict(before, _q(ppl=21.0, kl=0.1)) == "is slightly worse"  # x1.05
    assert words.verdict(before, _q(ppl=29.0, kl=0.1)) == "is noticeably worse"  # x1.45
    assert words.verdict(before, _q(ppl=55.0, kl=0.1)) == "is much worse"  # x2.75: the case
    assert words.verdict(before, _q(ppl=1000.0, kl=0.1)).startswith("is broken")
    assert words.ratio_text(before, _q(ppl=55.0, kl=0.1)) == "perplexity ×2.75"
    assert words.verdict(before, _q(ppl=float("nan"), kl=0.1)).endswith("no usable numbers")
    enc = _q(cos=1.0, rho=1.0)
    assert words.verdict(enc, _q(cos=0.995, rho=0.9)) == "changes a little"
    assert words.verdict(enc, _q(cos=0.96, rho=0.9)) == "changes noticeably"  # below the default 0.99 budget
    row = comp.MatrixRow("l.0.up", "mlp_up", 0, (64, 32), 10, 21.3, 2048, 960, 0.3, 0.35, 0.2)
    outcome = comp.Outcome(
        "svdllm", ("mlp_up",), 1_000_000, 998_912, 2048, 960, before, _q(ppl=22.0, kl=0.1), (row,)
    )
    size, quality = words.summary_sentences(outcome)
    assert (
        "keeps **100% of the model's parameters**" in size
        and "SVD-LLM (whitened) factors of mean rank 10" in size
    )
    assert quality == (
        "Perplexity on the text goes from **20** to **22**: quality **is slightly worse** (perplexity ×1.1)."
    )


def test_huge_changes_stay_readable():
    before = _q(ppl=27.6, kl=0.0)
    budget = Budget.default(True)
    assert budget.cost(before, _q(ppl=27.6 * 1.06, kl=0.1)).startswith("+6.0% perplexity")
    # +804012.7 % in the issue: a factor, no column to cut it off in.
    huge = budget.cost(before, _q(ppl=27.6 * 8041.127, kl=5.0))
    assert huge.startswith("×8,041 perplexity (27.6 → 2.219e+05)"), huge
    assert change_text(11.345) == "×12.3"


def test_scope_names_matrices_blocks_baseline_and_shipping():
    from explorer.ui.compression_view import Scope

    scope = Scope(
        KINDS, 90, tuple(range(30)), 30, 79_626_240, 134_515_008, "de-quantized from the 4-bit GGUF"
    )
    text = words.scope_sentence(scope, 512)
    assert "only the 90 chosen matrices" in text and "MLP gate, MLP up, MLP down of all 30 blocks" in text
    assert "79.6 M of the model's 134.5 M parameters" in text
    assert f"({134_515_008 * 2 / 1e6:,.0f} MB; {134_515_008 * 4 / 1e6:,.0f} MB at fp32)" in text
    assert "de-quantized from the 4-bit GGUF" in text
    partial = Scope(("mlp_up",), 2, (1, 3), 6, 1, 10, None)
    assert "MLP up of blocks 1, 3" in words.scope_sentence(partial, 512)


def test_answers_by_series_pick_each_series_smallest_within():
    from explorer.analysis.quantize import answers_by_series, scheme_named
    from explorer.spectra.quantization import INT8, QuantScheme

    before = _q(ppl=10.0, kl=0.0)
    pts = [
        comp.Point("a", "a1", 100, _q(ppl=10.5, kl=0.1), recipe=comp.Recipe("bits", scheme="int8")),
        comp.Point("a", "a2", 80, _q(ppl=10.9, kl=0.1)),
        comp.Point("a", "a3", 60, _q(ppl=30.0, kl=0.1)),
        comp.Point("b", "b1", 50, _q(ppl=12.0, kl=0.1)),
        comp.Point("b", "b2", 40, _q(ppl=15.0, kl=0.1)),
        comp.Point("own", "o", 30, _q(ppl=10.0, kl=0.0), on_own_grid=True),
    ]
    a, b, own = answers_by_series(pts, before, Budget.default(True))
    assert (a.best.setting, a.closest.setting, a.measured) == ("a2", "a1", 3)
    assert b.best is None and b.point.setting == "b1"  # nothing fits: the closest
    assert own.own_grid and own.point.on_own_grid
    for scheme in (INT8, QuantScheme(4, 32), QuantScheme(4, 128, False), QuantScheme(8, 64)):
        assert scheme_named(scheme.name) == scheme


def test_the_headline_names_fewer_bits_in_words_then_the_scheme():
    from explorer.analysis.quantize import series_name
    from explorer.spectra.quantization import INT8, QuantScheme

    def phrase(scheme):
        return words.setting_phrase(comp.Point(series_name(scheme), scheme.name, 1, _q(ppl=20.0, kl=0.0)))

    assert phrase(INT8) == "8-bit weights (int8)"
    assert phrase(QuantScheme(4, 32)) == "4-bit weights, groups of 32 (int4-g32)"
    assert phrase(QuantScheme(4, 64, False)) == "4-bit weights with an offset, groups of 64 (int4-g64-asym)"
    combined = comp.Point("SVD-LLM factors in int8", "SVD-LLM 95% of break-even, int8 factors", 1, None)
    assert words.setting_phrase(combined) == combined.setting  # already words


def test_the_held_out_passage_cut_is_not_blamed_on_the_sidebar():
    """The held-out passage is cut at the budget's fixed length: its note says so and names no setting; the
    sidebar text's cut keeps the tokenizer's own message (which names the max-tokens setting)."""
    from explorer.analysis.compression import EvalSet
    from explorer.ui import compression_cache as cc
    from explorer.ui import compression_view as view

    cut = ("The text has 582 tokens; only the first 512 are analysed (limit: the max-tokens setting).",)
    held = view.eval_notes("heldout", EvalSet(True, (1, 2), (), cut))
    assert len(held) == 1 and "limit: the max-tokens setting" not in held[0]
    assert f"first {cc.BUDGET_TOKENS} tokens" in held[0]
    assert view.eval_notes("text", EvalSet(True, (1, 2), (), cut)) == list(cut)
    assert view.eval_notes("heldout", EvalSet(True, (1, 2))) == []
