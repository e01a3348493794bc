"""The model anatomy on the embedded models: per-head OV products from the slices against W_V^h W_O^h read
straight from the modules, SmolLM2's heads and key/value sharing (9 query heads on 3 key/value heads) against
its own forward pass, tied output, causal flag and quantization provenance."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers.models.llama.modeling_llama import repeat_kv

from explorer.models.catalogue import CATALOGUE
from tests.attention_reference import llama_attention_from_heads
from tests.conftest import SAMPLE_TEXT

pytestmark = pytest.mark.slow

EPS64 = np.finfo(np.float64).eps


def _value_and_output(loaded, layer):
    """(W_v (kv_heads * d_head, d_model), W_o (d_model, heads * d_head)) float64 numpy, from the modules."""
    model = loaded.model
    if loaded.id == "minilm-l6":
        attn = model.encoder.layer[layer].attention
        return attn.self.value.weight.double().numpy(), attn.output.dense.weight.double().numpy()
    attn = model.model.layers[layer].self_attn
    return attn.v_proj.weight.double().numpy(), attn.o_proj.weight.double().numpy()


def _kv_of_query_heads(n_heads, n_kv_heads):
    """The key/value head each query head reads, as transformers' repeat_kv lays them out."""
    labels = torch.arange(n_kv_heads, dtype=torch.float64).reshape(1, n_kv_heads, 1, 1)
    return repeat_kv(labels, n_heads // n_kv_heads).flatten().long().tolist()


@pytest.mark.parametrize("model_name", ["minilm", "smollm2"])
def test_ov_products_from_the_slices_equal_the_modules(request, model_name):
    loaded = request.getfixturevalue(model_name)
    anatomy = loaded.anatomy
    dh = anatomy.d_head
    kv = _kv_of_query_heads(anatomy.n_heads, anatomy.n_kv_heads)
    for layer in (0, anatomy.n_layers // 2, anatomy.n_layers - 1):
        Wv, Wo = _value_and_output(loaded, layer)
        hw = anatomy.head_weights(loaded.model, layer)
        for head in range(anatomy.n_heads):
            # Row-vector convention: x -> x W_V^h W_O^h, W_V^h = (rows of W_v for the head's kv head)^T and
            # W_O^h = (columns of W_o for the head)^T.
            W_V = Wv[kv[head] * dh : (kv[head] + 1) * dh].T  # (d_model, d_head)
            W_O = Wo[:, head * dh : (head + 1) * dh].T  # (d_head, d_model)
            expected = W_V @ W_O
            got = (hw.W_V[head] @ hw.W_O[head]).numpy()
            # Same float64 factors on both sides, only the summation order differs: each entry is a sum of
            # d_head products, off by at most d_head * eps * sum |v_ik o_kj| either way.
            bound = 2 * dh * EPS64 * (np.abs(W_V) @ np.abs(W_O))
            assert (np.abs(got - expected) <= bound).all(), (layer, head)


def test_smollm2_heads_and_key_value_sharing(smollm2):
    a = smollm2.anatomy
    assert (a.family, a.n_layers, a.n_heads, a.n_kv_heads, a.d_model, a.d_head) == (
        "llama",
        30,
        9,
        3,
        576,
        64,
    )
    assert a.group_size == 3 and a.grouped
    assert [a.kv_head(h) for h in range(9)] == _kv_of_query_heads(9, 3) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    hw = a.head_weights(smollm2.model, 12)
    for h in range(9):
        mates = [g for g in range(9) if a.kv_head(g) == a.kv_head(h)]
        for g in mates:
            np.testing.assert_array_equal(hw.W_K[g].numpy(), hw.W_K[h].numpy())
            np.testing.assert_array_equal(hw.W_V[g].numpy(), hw.W_V[h].numpy())
        assert len(mates) == 3


def test_smollm2_attention_from_the_slices_equals_its_forward_pass(smollm2):
    """A float64 copy (the cached model is never changed): attention recomputed from the head slices, the
    model's own RMSNorm and rotary tables equals the attention its forward pass returns, in three layers."""
    model = copy.deepcopy(smollm2.model).double()
    ids = torch.tensor([smollm2.tokenizer(SAMPLE_TEXT)["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
        for layer in (0, 17, 29):
            hw = smollm2.anatomy.head_weights(model, layer)
            expected, atol = llama_attention_from_heads(model, hw, out.hidden_states[layer][0])
            np.testing.assert_allclose(out.attentions[layer][0].numpy(), expected, rtol=0, atol=atol)


def test_smollm2_tied_output_causal_and_quantization(smollm2):
    a = smollm2.anatomy
    model = smollm2.model
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert (a.embed, a.lm_head, a.tied_output, a.pos_embed, a.causal) == (
        "model.embed_tokens",
        "lm_head",
        "lm_head",
        None,
        True,
    )
    assert a.quantization is CATALOGUE["smollm2-135m"].quantization
    assert (a.quantization.scheme, a.quantization.bits, a.quantization.container) == ("Q4_1", 4, "GGUF")
    assert any(a.quantization.describe() in note for note in smollm2.notes)


def test_minilm_encoder_anatomy(minilm):
    a = minilm.anatomy
    assert (a.family, a.n_layers, a.n_heads, a.n_kv_heads, a.d_model, a.d_head) == (
        "bert",
        6,
        12,
        12,
        384,
        32,
    )
    assert (a.causal, a.lm_head, a.tied_output, a.quantization) == (False, None, None, None)
    assert (a.embed, a.pos_embed) == ("embeddings.word_embeddings", "embeddings.position_embeddings")
    assert [a.kv_head(h) for h in range(12)] == list(range(12))
