"""The model anatomy on the tiny GPT-2, BERT and Llama models: per-head slices against the modules' own
weights, GQA sharing against the model's forward pass, the fused q/k/v split, the tied output layer, the causal
flag against the attention the model produces, and a clear error for an architecture it does not know.

Expected values are read straight from the modules by their names in each family (written out here, not
taken from the anatomy), or from transformers' own functions."""

import copy

import numpy as np
import pytest
import torch
from transformers import MistralConfig, MistralForCausalLM, OPTConfig, OPTForCausalLM
from transformers.models.llama.modeling_llama import repeat_kv

from explorer.analysis.matrices import weight_matrices
from explorer.errors import ModelLoadError, UnsupportedModelError
from explorer.models import anatomy_of, capture, load_model
from explorer.models.tiny import VOCAB_SIZE, build_tiny_model, byte_tokenizer
from tests.attention_reference import llama_attention_from_heads
from tests.conftest import SAMPLE_TEXT


def _projections(loaded, layer):
    """(W_q, W_k, W_v, W_o) of block ``layer`` as (out, in) float64, read from each family's modules."""
    model = loaded.model
    d = loaded.card.d_model
    if loaded.id == "tiny-gpt2":
        attn = model.transformer.h[layer].attn
        fused = attn.c_attn.weight.double()  # Conv1D: (in, 3 * d_model), q | k | v side by side
        return fused[:, :d].T, fused[:, d : 2 * d].T, fused[:, 2 * d :].T, attn.c_proj.weight.double().T
    if loaded.id == "tiny-bert":
        attn = model.encoder.layer[layer].attention
        parts = (attn.self.query, attn.self.key, attn.self.value, attn.output.dense)
        return tuple(p.weight.double() for p in parts)
    attn = model.model.layers[layer].self_attn
    return tuple(p.weight.double() for p in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj))


def _kv_of_query_heads(n_heads, n_kv_heads):
    """The key/value head each query head reads, as transformers' repeat_kv lays them out."""
    labels = torch.arange(n_kv_heads, dtype=torch.float64).reshape(1, n_kv_heads, 1, 1)
    return repeat_kv(labels, n_heads // n_kv_heads).flatten().long().tolist()


@pytest.mark.parametrize("model_id", ["tiny-gpt2", "tiny-bert", "tiny-llama"])
def test_per_head_slices_reassemble_the_projections_exactly(load, model_id):
    loaded = load(model_id)
    anatomy = loaded.anatomy
    H, G, dh = anatomy.n_heads, anatomy.n_kv_heads, anatomy.d_head
    kv = _kv_of_query_heads(H, G)
    for layer in range(anatomy.n_layers):
        Wq, Wk, Wv, Wo = _projections(loaded, layer)
        hw = anatomy.head_weights(loaded.model, layer)
        # Row-vector convention: W_Q[h] (d_model, d_head) is the transpose of head h's rows of W_q. Pure
        # copies of the same float32 numbers, so equality is exact.
        np.testing.assert_array_equal(torch.cat([hw.W_Q[h].T for h in range(H)]).numpy(), Wq.numpy())
        np.testing.assert_array_equal(torch.cat([hw.W_O[h] for h in range(H)]).T.numpy(), Wo.numpy())
        for h in range(H):
            rows = slice(kv[h] * dh, (kv[h] + 1) * dh)
            np.testing.assert_array_equal(hw.W_K[h].T.numpy(), Wk[rows].numpy())
            np.testing.assert_array_equal(hw.W_V[h].T.numpy(), Wv[rows].numpy())
            assert anatomy.kv_head(h) == hw.kv_head(h) == kv[h]


def test_gqa_heads_share_key_value_heads_as_the_forward_pass_does():
    """tiny-llama: 4 query heads on 2 key/value heads. Attention recomputed from the slices (with the model's
    own norm and rotary tables) equals the attention of a float64 copy's forward pass."""
    model = build_tiny_model("llama").double()
    anatomy = anatomy_of(model)
    assert (anatomy.n_heads, anatomy.n_kv_heads, anatomy.group_size, anatomy.grouped) == (4, 2, 2, True)
    assert [anatomy.kv_head(h) for h in range(4)] == [0, 0, 1, 1] == _kv_of_query_heads(4, 2)
    ids = torch.tensor([byte_tokenizer()(SAMPLE_TEXT)["input_ids"][:24]])
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
        for layer in range(anatomy.n_layers):
            hw = anatomy.head_weights(model, layer)
            expected, atol = llama_attention_from_heads(model, hw, out.hidden_states[layer][0])
            np.testing.assert_allclose(out.attentions[layer][0].numpy(), expected, rtol=0, atol=atol)
    with pytest.raises(ValueError, match="heads 0..3"):
        anatomy.kv_head(4)


def test_fused_qkv_split_equals_the_columns_of_c_attn(load):
    loaded = load("tiny-gpt2")
    anatomy = loaded.anatomy
    d = anatomy.d_model
    for layer in range(anatomy.n_layers):
        c_attn = loaded.model.transformer.h[layer].attn.c_attn
        slots = anatomy.layer_matrices(layer)
        for part, kind in enumerate(("attn_q", "attn_k", "attn_v")):
            slot = slots[kind]
            assert slot.module == f"transformer.h.{layer}.attn.c_attn" and slot.fused
            assert slot.name == f"{slot.module}:{kind[-1]}"
            columns = slice(part * d, (part + 1) * d)
            W = slot.weight(loaded.model)
            np.testing.assert_array_equal(W.numpy(), c_attn.weight[:, columns].T.numpy())
            np.testing.assert_array_equal(slot.bias(loaded.model).numpy(), c_attn.bias[columns].numpy())
            # A view of the parameter, not a copy.
            assert W.untyped_storage().data_ptr() == c_attn.weight.untyped_storage().data_ptr()
        assert not slots["attn_o"].fused and slots["attn_o"].transposed


def test_tied_output_layer(load):
    gpt2 = load("tiny-gpt2").model
    assert gpt2.lm_head.weight is gpt2.transformer.wte.weight  # GPT-2 ties its output to the embedding
    a = anatomy_of(gpt2)
    assert (a.embed, a.lm_head, a.tied_output, a.pos_embed) == (
        "transformer.wte",
        "lm_head",
        "lm_head",
        "transformer.wpe",
    )
    assert "lm_head" not in {s.module for s in a.matrices}  # the tied copy is not a second matrix

    llama = load("tiny-llama").model
    assert llama.lm_head.weight is not llama.model.embed_tokens.weight
    a = anatomy_of(llama)
    assert (a.embed, a.lm_head, a.tied_output, a.pos_embed) == ("model.embed_tokens", "lm_head", None, None)
    assert [s.kind for s in a.matrices if s.module == "lm_head"] == ["lm_head"]

    bert = anatomy_of(load("tiny-bert").model)
    assert (bert.embed, bert.lm_head, bert.tied_output) == ("embeddings.word_embeddings", None, None)
    assert bert.pos_embed == "embeddings.position_embeddings"


@pytest.mark.parametrize("model_id", ["tiny-gpt2", "tiny-bert", "tiny-llama"])
def test_causal_flag_matches_the_attention_the_model_produces(load, model_id):
    loaded = load(model_id)
    attentions = capture(loaded, SAMPLE_TEXT).attentions
    has_future = bool((np.triu(attentions, k=1) > 0).any())
    assert loaded.anatomy.causal == (not has_future)
    assert loaded.anatomy.causal == (model_id != "tiny-bert")
    assert loaded.card.causal == loaded.causal == loaded.anatomy.causal_lm == loaded.anatomy.causal


def test_a_decoder_without_its_head_has_causal_attention_but_is_no_causal_lm(load):
    """GPT2Model (no LM head) attends causally but has no logits: no next-token losses, no perplexity."""
    bare = anatomy_of(load("tiny-gpt2").model.transformer)
    assert bare.causal and bare.lm_head is None and not bare.causal_lm


@pytest.mark.parametrize(
    "model_id, family, blocks, attention, mlp",
    [
        ("tiny-gpt2", "gpt2", "transformer.h.1", "transformer.h.1.attn", ("transformer.h.1.mlp",)),
        (
            "tiny-bert",
            "bert",
            "encoder.layer.1",
            "encoder.layer.1.attention",
            ("encoder.layer.1.intermediate", "encoder.layer.1.output"),
        ),
        ("tiny-llama", "llama", "model.layers.1", "model.layers.1.self_attn", ("model.layers.1.mlp",)),
    ],
)
def test_family_counts_and_module_names(load, model_id, family, blocks, attention, mlp):
    loaded = load(model_id)
    a = loaded.anatomy
    assert (a.family, a.model_type, a.quantization) == (family, loaded.model.config.model_type, None)
    assert (a.n_layers, a.n_heads, a.d_model, a.d_head) == (2, 4, 64, 16)
    assert a.n_kv_heads == (2 if family == "llama" else 4)
    block = a.blocks[1]
    assert (block.block, block.attention, block.mlp) == (blocks, attention, mlp)
    modules = dict(loaded.model.named_modules())
    assert all(name in modules for name in (block.block, block.attention, block.core, *block.mlp))
    assert a.attention_modules(loaded.model)[1] is modules[attention]
    kinds = set(a.layer_matrices(1))
    expected = {"attn_q", "attn_k", "attn_v", "attn_o", "mlp_up", "mlp_down"}
    assert kinds == expected | ({"mlp_gate"} if family == "llama" else set())
    with pytest.raises(ValueError, match="layers 0..1"):
        a.layer_matrices(2)


def test_family_is_recognised_by_structure_not_by_name():
    """A Mistral model (another model_type) has the Llama layout, so it is read as one."""
    config = MistralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MistralForCausalLM(config).eval()
    a = anatomy_of(model)
    assert (a.family, a.model_type, a.n_heads, a.n_kv_heads, a.d_head) == ("llama", "mistral", 4, 1, 8)
    assert [a.kv_head(h) for h in range(4)] == [0, 0, 0, 0]


def _opt_model():
    config = OPTConfig(
        vocab_size=VOCAB_SIZE,  # the byte tokenizer saved next to it
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        max_position_embeddings=32,
        word_embed_proj_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return OPTForCausalLM(config).eval()


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(UnsupportedModelError) as info:
        anatomy_of(_opt_model())
    message = str(info.value)
    assert "OPTForCausalLM" in message and "'opt'" in message
    assert "GPT-2" in message and "BERT" in message and "Llama family" in message


def test_weights_of_an_unknown_architecture_are_still_matrices():
    """Weight spectra need no anatomy: every 2-D weight is listed once, with kind "other" and no layer."""
    model = _opt_model()
    expected = {
        name
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)) and name != "lm_head"  # lm_head is tied
    }
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
    mats = weight_matrices(model)
    assert {m.name for m in mats} == expected and len(mats) == len(expected)
    assert all(m.kind == "other" and m.layer is None for m in mats)


def test_unknown_architecture_is_refused_at_load(tmp_path):
    _opt_model().save_pretrained(tmp_path)
    byte_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="supports these architectures: GPT-2, BERT, Llama family"):
        load_model(str(tmp_path), device="cpu")


@pytest.mark.parametrize(
    "model_id, attribute, value, message",
    [
        ("tiny-gpt2", "n_head", 3, "attn_q has shape"),  # 64 rows of q are not 3 heads
        ("tiny-llama", "num_attention_heads", 8, "attn_k has shape"),  # 8 heads of 8: k would be 16 rows
        ("tiny-llama", "num_attention_heads", 3, "cannot share 2 key/value heads evenly"),
    ],
)
def test_head_counts_that_do_not_fit_the_weights_are_refused(load, model_id, attribute, value, message):
    model = copy.deepcopy(load(model_id).model)
    setattr(model.config, attribute, value)
    with pytest.raises(UnsupportedModelError, match=message):
        anatomy_of(model)


def test_caller_head_counts_must_be_the_models(load):
    anatomy = load("tiny-llama").anatomy
    assert anatomy.require_heads(4, 2) is anatomy
    with pytest.raises(ValueError, match="evenly"):
        anatomy.require_heads(4, 3)
    with pytest.raises(ValueError, match="4 query heads and 2 key/value heads"):
        anatomy.require_heads(4, 4)
