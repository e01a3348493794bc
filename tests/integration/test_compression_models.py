"""Compression on the embedded models: full rank is exact, whitening beats plain SVD on the calibration data of
real matrices, the activation-aware methods keep SmolLM2 usable where plain SVD breaks it, and the cached
model is never changed. A few layers stand in for all of them where the full set would only cost time."""

import json

import numpy as np
import pytest
import torch

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import METHODS, factorize
from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.models import capture
from explorer.report.build import model_section, write_report
from explorer.report.compression import compression_section

LAYERS = (0, 14, 29)
BODY_KINDS = ("attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down")


@pytest.fixture(scope="module")
def smol_calibration(smollm2):
    chunks = comp.calibration_chunks(smollm2, comp.shipped_calibration_text())[:2]
    return comp.collect_activation_stats(smollm2, chunks, BODY_KINDS)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_smollm2_full_rank_reproduces_logits(smollm2, smol_calibration, method):
    before = weights_checksum(smollm2.model)
    stats, n_tokens = smol_calibration
    fact = factorize(smollm2.model, method, BODY_KINDS, stats, calibration_tokens=n_tokens, layers=LAYERS)
    assert len(fact.matrices) == len(LAYERS) * len(BODY_KINDS)
    ids = torch.tensor([smollm2.tokenizer(comp.heldout_text())["input_ids"][:96]])
    full = {f.name: f.max_rank for f in fact.matrices}
    with torch.no_grad():
        original = smollm2.model(input_ids=ids).logits
        compressed = comp.compressed_model(smollm2, fact, full)(input_ids=ids).logits
    assert (compressed - original).abs().max().item() < 1e-4
    assert weights_checksum(smollm2.model) == before


@pytest.mark.slow
def test_smollm2_whitening_never_worse_than_plain_on_calibration(smollm2, smol_calibration):
    stats, _ = smol_calibration
    names = {
        "model.layers.14.mlp.down_proj",
        "model.layers.14.self_attn.q_proj",
        "model.layers.0.mlp.up_proj",
    }
    kinds = ("mlp_down", "attn_q", "mlp_up")
    plain = {f.name: f for f in factorize(smollm2.model, "svd", kinds, stats, layers=(0, 14)).matrices}
    white = {f.name: f for f in factorize(smollm2.model, "svdllm", kinds, stats, layers=(0, 14)).matrices}
    weights = {m.name: m.weight.double() for m in weight_matrices(smollm2.model)}
    for name in names:
        W, G = weights[name], stats[plain[name].module].gram.double()

        def output_error(f, k, W=W, G=G):  # ||(W - W_k) X^T||_F from the Gram matrix X^T X, in float64
            E = W - f.reconstruct(k).double()
            return float(torch.sqrt(((E @ G) * E).sum().clamp_min(0)))

        scale = float(torch.sqrt(((W @ G) * W).sum()))
        for k in (8, 64, int(plain[name].break_even // 2), int(plain[name].break_even)):
            assert output_error(white[name], k) <= output_error(plain[name], k) + 1e-5 * scale, (name, k)
        # And plain SVD keeps the weight itself closer (Eckart-Young), the other half of the trade.
        k = int(plain[name].break_even // 2)
        assert plain[name].weight_error(k) <= white[name].weight_error(k) + 1e-6


@pytest.mark.slow
def test_smollm2_activation_aware_methods_beat_plain_at_half_break_even(smollm2):
    layers = tuple(range(0, 30, 3))
    chunks = comp.calibration_chunks(smollm2, comp.shipped_calibration_text())
    stats, n_tokens = comp.collect_activation_stats(smollm2, chunks, comp.DEFAULT_KINDS)
    evalset = comp.make_eval_set(smollm2, comp.heldout_text(), 256)
    ref = comp.reference(smollm2, evalset)
    ppl = {}
    for method in METHODS:
        fact = factorize(
            smollm2.model, method, comp.DEFAULT_KINDS, stats, calibration_tokens=n_tokens, layers=layers
        )
        ranks = comp.choose_ranks(fact, comp.RankSetting(mode="share", share=0.5))
        outcome = comp.evaluate_ranks(smollm2, fact, ranks, evalset, ref)
        assert outcome.params_chosen_after == pytest.approx(0.5 * outcome.params_chosen_before, rel=0.01)
        ppl[method] = outcome.after.perplexity
    assert ppl["asvd"] < ppl["svd"] and ppl["svdllm"] < ppl["svd"], ppl
    assert all(p > ref.quality.perplexity for p in ppl.values()), (ppl, ref.quality.perplexity)


@pytest.mark.slow
def test_smollm2_tied_embedding_counts_once(smollm2):
    fact = factorize(smollm2.model, "svd", ("embed",))
    (emb,) = fact.matrices
    V, d = emb.shape
    assert (V, d) == (smollm2.card.vocab_size, smollm2.card.d_model)
    evalset = comp.make_eval_set(smollm2, "The embedding is shared with the output layer.", 64)
    ref = comp.reference(smollm2, evalset)
    outcome = comp.evaluate_ranks(smollm2, fact, {emb.name: 128}, evalset, ref)
    assert outcome.params_model_after == smollm2.card.n_params - V * d + 128 * (V + d)
    full = comp.evaluate_ranks(smollm2, fact, {emb.name: emb.max_rank}, evalset, ref)
    assert full.after.kl < 1e-6


@pytest.mark.slow
def test_minilm_all_groups_full_rank_and_half_rank(minilm):
    before = weights_checksum(minilm.model)
    kinds = comp.available_kinds(minilm.model)
    assert set(kinds) == set(BODY_KINDS) - {"mlp_gate"} | {"embed"}
    stats, n_tokens = comp.collect_activation_stats(
        minilm, comp.calibration_chunks(minilm, comp.shipped_calibration_text()), kinds
    )
    assert "embeddings.word_embeddings" not in stats  # no tied output layer: nothing to calibrate on
    evalset = comp.make_eval_set(minilm, comp.heldout_text(), 128)
    ref = comp.reference(minilm, evalset)
    for method in METHODS:
        fact = factorize(minilm.model, method, kinds, stats, calibration_tokens=n_tokens)
        if method != "svd":
            assert any("plain SVD is used" in note for note in fact.notes)
        full = comp.evaluate(
            minilm,
            comp.compressed_model(minilm, fact, {f.name: f.max_rank for f in fact.matrices}),
            evalset,
            ref,
        )
        assert full.embedding_cosine == pytest.approx(1, abs=1e-6)
        assert full.similarity_spearman == pytest.approx(1, abs=1e-6)
        half = comp.evaluate_ranks(
            minilm, fact, comp.choose_ranks(fact, comp.RankSetting(share=0.5)), evalset, ref
        )
        assert 0 < half.after.embedding_cosine < 1 and -1 <= half.after.similarity_spearman < 1
        assert np.isfinite(half.after.latency_ms)
    assert weights_checksum(minilm.model) == before


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-bert"])
def test_report_section_writes_the_sweep(load, tmp_path, model_id):
    loaded = load(model_id)
    cap = capture(loaded, comp.heldout_text(), 64)
    metrics_path, report_path = write_report(loaded, cap, tmp_path, [model_section, compression_section])
    metrics = json.loads(metrics_path.read_text())
    # The low-rank sweep; the quantization rows (no "allocation") are tested in test_report_quantization.
    rows = [r for r in metrics["compression"] if "allocation" in r]
    shares = comp.KEPT_SHARES
    assert len(rows) == 2 * len(METHODS) * len(shares)  # the page's sweep: every method uniform and allocated
    quality = "perplexity" if loaded.causal else "embedding_cosine"
    for row in rows:
        assert {
            "method",
            "allocation",
            "groups",
            "params_total",
            "params_kept",
            quality,
            "latency_ms",
        } <= set(row)
        assert ("kl" in row) == loaded.causal
        assert row["params_kept"] <= row["params_total"] == loaded.card.n_params
        assert row["bytes"] == 2 * row["params_kept"]  # fp16 storage of everything that is left
        assert row["group_params_kept"] <= row["group_params_total"]
        assert (
            row["params_total"] - row["params_kept"] == row["group_params_total"] - row["group_params_kept"]
        )
    assert {r["method"] for r in rows} == set(METHODS)
    assert {r["method"] for r in rows if r["allocation"] == "greedy"} == set(METHODS)
    by = {(r["method"], r["allocation"], r["share_of_break_even"]): r for r in rows}
    for share in shares:
        uniform, greedy = by[("svdllm", "uniform", share)], by[("svdllm", "greedy", share)]
        assert greedy["group_params_kept"] <= uniform["group_params_kept"]  # the same parameter target
        if loaded.causal:  # the tiny models' MLPs are all calibrated: the error is defined and in [0, 1]
            assert 0 <= greedy["calib_output_error"] <= 1 and 0 <= uniform["calib_output_error"] <= 1
    budget = metrics["compression_budget"]
    assert budget["budget"] == ("perplexity_increase" if loaded.causal else "embedding_cosine")
    fits = [
        r
        for r in rows
        if (r[quality] <= 1.1 * budget["original"] if loaded.causal else r[quality] >= budget["limit"])
    ]
    if fits:
        assert budget["best"]["params_kept"] == min(r["params_kept"] for r in fits)
    else:
        assert budget["best"] is None
    assert budget["closest"] in rows
    assert "Parameters kept against quality" in report_path.read_text()
