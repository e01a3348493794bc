"""Latency comparison: multiply-add counts worked out by hand from the configs, and the structure of the timing
(no timed assertions: machines are noisy)."""

import pytest

from explorer.analysis import compression as comp
from explorer.analysis import latency as lat
from explorer.analysis.lowrank import factorize
from explorer.analysis.matrices import weights_checksum


def test_macs_by_hand_llama(load):
    loaded = load("tiny-llama")
    c = loaded.model.config
    d, inter, vocab = c.hidden_size, c.intermediate_size, c.vocab_size
    kv = c.num_key_value_heads * (d // c.num_attention_heads)
    per_layer = d * d + 2 * kv * d + d * d + 3 * inter * d  # q, k, v, o, gate, up, down
    dense = c.num_hidden_layers * per_layer + vocab * d  # untied lm_head; the embedding lookup is free
    assert lat.matmul_macs(loaded, 10) == 10 * dense
    fact = factorize(loaded.model, "svd", ("mlp_gate", "mlp_up", "mlp_down"))
    ranks = {f.name: 5 for f in fact.matrices}
    factored = dense - c.num_hidden_layers * 3 * (inter * d - 5 * (inter + d))
    assert lat.matmul_macs(loaded, 7, ranks) == 7 * factored


def test_macs_by_hand_gpt2_tied_embedding(load):
    loaded = load("tiny-gpt2")
    c = loaded.model.config
    d, vocab, inner = c.n_embd, c.vocab_size, c.n_inner or 4 * c.n_embd
    per_layer = 3 * d * d + d * d + 2 * inner * d  # c_attn (q, k, v), attn c_proj, mlp c_fc and c_proj
    dense = c.n_layer * per_layer + vocab * d  # tied lm_head; wte and wpe lookups are free
    assert lat.matmul_macs(loaded, 3) == 3 * dense
    # Embedding factored at k: the lookup then costs k d, the tied output layer k (vocab + d).
    k = 8
    assert lat.matmul_macs(loaded, 3, {"transformer.wte": k}) == 3 * (
        dense - vocab * d + k * d + k * (vocab + d)
    )


def test_compare_latency_structure(load):
    loaded = load("tiny-llama")
    before = weights_checksum(loaded.model)
    fact = factorize(loaded.model, "svd", ("mlp_up", "mlp_down"))
    ranks = comp.choose_ranks(fact, comp.RankSetting(share=0.5))
    model = comp.compressed_model(loaded, fact, ranks)
    ids = list(range(5, 29))
    result = lat.measure_latency(loaded, model, ids, ranks, runs=5, warmup=1)
    assert result.warmup == 1
    assert result.at_text.n_tokens == 24
    assert result.at_fixed.n_tokens == min(lat.FIXED_TOKENS, loaded.card.max_positions)
    for comparison in (result.at_text, result.at_fixed):
        for t in (comparison.original, comparison.compressed):
            assert t.runs == 5
            assert 0 < t.min_ms <= t.q1_ms <= t.median_ms <= t.q3_ms <= t.max_ms
        assert comparison.macs_compressed < comparison.macs_original
        assert comparison.macs_original == lat.matmul_macs(loaded, comparison.n_tokens)
        assert comparison.ratio == (  # exact: the same division
            comparison.compressed.median_ms / comparison.original.median_ms
        )
    assert weights_checksum(loaded.model) == before
    with pytest.raises(ValueError):
        lat.compare_latency(loaded, model, ids, ranks, runs=0)


def test_timing_statistics():
    t = lat.Timing.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (t.median_ms, t.q1_ms, t.q3_ms, t.min_ms, t.max_ms, t.runs) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert t.iqr_ms == 2.0
    a = lat.LatencyComparison(4, t, lat.Timing.of([10.0, 11.0, 12.0, 13.0, 14.0]), 100, 50)
    assert a.distinguishable and a.mac_ratio == 0.5
    b = lat.LatencyComparison(4, t, lat.Timing.of([3.5, 2.5, 3.0, 4.5, 1.5]), 100, 50)
    assert not b.distinguishable
