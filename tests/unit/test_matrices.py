"""The weight enumerator: orientation, kinds, GPT-2 splitting, ties, and per-head slicing against the model's
own forward computation."""

import numpy as np
import pytest
import torch

from explorer.analysis.matrices import head_weights, weight_matrices, weights_checksum
from tests.tolerances import sum_rtol


def test_every_layer_has_all_attention_and_mlp_kinds(tiny_model):
    mats = weight_matrices(tiny_model.model)
    card = tiny_model.card
    for layer in range(card.n_layers):
        kinds = {m.kind for m in mats if m.layer == layer}
        assert {"attn_q", "attn_k", "attn_v", "attn_o", "mlp_up", "mlp_down"} <= kinds
    assert sum(m.kind == "embed" for m in mats) == 1
    assert all(m.kind != "other" or m.layer is None for m in mats)


def test_orientation_out_by_in(load):
    gpt2 = load("tiny-gpt2")
    mats = {m.name: m for m in weight_matrices(gpt2.model)}
    fc = mats["transformer.h.0.mlp.c_fc"]
    assert fc.shape == (256, 64)  # Conv1D stores (64, 256); we return (out, in)
    x = torch.randn(3, 64)
    module = gpt2.model.transformer.h[0].mlp.c_fc
    # float32 dot products of length 64 by two kernels: c k eps32 (|x| |W|^T + |b|), both sides.
    atol = 2 * sum_rtol(64, dtype=np.float32) * float((x.abs() @ fc.weight.abs().T + fc.bias.abs()).max())
    torch.testing.assert_close(x @ fc.weight.T + fc.bias, module(x), rtol=0, atol=atol)
    q = mats["transformer.h.0.attn.c_attn:q"]
    assert q.shape == (64, 64) and q.kind == "attn_q"


def test_tied_embeddings_counted_once(load):
    gpt2 = load("tiny-gpt2")
    kinds = [m.kind for m in weight_matrices(gpt2.model)]
    assert "lm_head" not in kinds  # tied to wte
    llama = load("tiny-llama")  # untied
    assert [m.kind for m in weight_matrices(llama.model)].count("lm_head") == 1


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-bert", "tiny-gpt2"])
def test_head_slices_reproduce_projections(load, model_id):
    loaded = load(model_id)
    card = loaded.card
    hw = head_weights(loaded.model, 1, card.n_heads, card.n_kv_heads)
    mats = {m.kind: m for m in weight_matrices(loaded.model) if m.layer == 1}
    x = torch.randn(5, card.d_model, dtype=torch.float64)
    q_full = x @ mats["attn_q"].weight.double().T
    v_full = x @ mats["attn_v"].weight.double().T
    d_head = card.d_head
    for h in range(card.n_heads):
        # float64 dot products of the same numbers, maybe summed in another order: c d eps ~ 1e-13 << 1e-7
        torch.testing.assert_close(x @ hw.W_Q[h], q_full[:, h * d_head : (h + 1) * d_head])
        kv = hw.kv_head(h)
        torch.testing.assert_close(x @ hw.W_V[h], v_full[:, kv * d_head : (kv + 1) * d_head])
    # Concatenated head outputs through W_O equal o_proj applied to the concatenation.
    z = torch.randn(5, card.n_heads, d_head, dtype=torch.float64)
    expected = z.reshape(5, -1) @ mats["attn_o"].weight.double().T
    got = torch.einsum("thd,hdm->tm", z, hw.W_O)
    # the same: float64 sums of products, c d eps far inside the float64 default (1e-7)
    torch.testing.assert_close(got, expected)


def test_gqa_heads_share_kv(load):
    llama = load("tiny-llama")
    hw = head_weights(llama.model, 0, 4, 2)
    assert torch.equal(hw.W_V[0], hw.W_V[1])  # exact: slices of one K/V head
    # different heads differ at the scale of the weights, far beyond rounding
    assert not torch.allclose(hw.W_V[1], hw.W_V[2])


def test_checksum_detects_a_change(load):
    loaded = load("tiny-bert")
    before = weights_checksum(loaded.model)
    assert weights_checksum(loaded.model) == before
    import copy

    clone = copy.deepcopy(loaded.model)
    with torch.no_grad():
        clone.encoder.layer[0].attention.self.query.weight[0, 0] += 1.0
    assert weights_checksum(clone) != before
