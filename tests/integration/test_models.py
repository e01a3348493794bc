"""Loading every catalogue model and capturing a text: shapes, stochastic rows, causal masks, losses."""

import numpy as np
import pytest
import torch

from explorer.models import capture
from tests.conftest import EMBEDDED_IDS, SAMPLE_TEXT, TINY_IDS, get_model


def _check_capture(loaded, cap):
    card = loaded.card
    T = cap.n_tokens
    assert cap.attentions.shape == (card.n_layers, card.n_heads, T, T)
    assert cap.attentions.dtype == np.float32
    assert cap.hidden_states.shape == (card.n_layers + 1, T, card.d_model)
    assert len(cap.tokens) == len(cap.token_texts) == T == len(cap.token_ids)
    # Every attention row is a probability distribution.
    np.testing.assert_allclose(cap.attentions.sum(-1), 1.0, atol=1e-5)
    assert (cap.attentions >= 0).all()
    upper = np.triu(cap.attentions, k=1)
    if card.causal:
        assert np.abs(upper).max() == 0.0  # lower-triangular: no attention to future tokens
        assert cap.token_losses.shape == (T - 1,)
        assert cap.perplexity > 1
    else:
        assert np.abs(upper).max() > 0  # bidirectional
        assert cap.token_losses is None
    assert not cap.attentions.flags.writeable  # shared through the cache: read-only


@pytest.mark.parametrize("model_id", TINY_IDS)
def test_tiny_models(model_id):
    loaded = get_model(model_id)
    assert loaded.card.n_layers == 2 and loaded.card.n_heads == 4
    assert loaded.card.causal == (model_id != "tiny-bert")
    _check_capture(loaded, capture(loaded, SAMPLE_TEXT))


def test_tiny_models_are_deterministic_and_leave_global_rng_alone():
    from explorer.models.tiny import build_tiny_model

    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = build_tiny_model("gpt2")
    got = torch.rand(1)
    b = build_tiny_model("gpt2")
    assert torch.equal(expected, got)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.slow
@pytest.mark.parametrize("model_id", EMBEDDED_IDS)
def test_embedded_models(model_id):
    loaded = get_model(model_id)
    expected = {"minilm-l6": (6, 12, 12, 384, False), "smollm2-135m": (30, 9, 3, 576, True)}[model_id]
    card = loaded.card
    assert (card.n_layers, card.n_heads, card.n_kv_heads, card.d_model, card.causal) == expected
    _check_capture(loaded, capture(loaded, SAMPLE_TEXT))


@pytest.mark.slow
def test_smollm2_logits_match_manual_loss(smollm2):
    """The stored per-token losses are -log softmax(logits)[next token], recomputed here independently."""
    cap = capture(smollm2, SAMPLE_TEXT)
    ids = torch.tensor([cap.token_ids.tolist()])
    with torch.no_grad():
        logits = smollm2.model(input_ids=ids).logits[0].double()
    expected = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:], reduction="none").numpy()
    np.testing.assert_allclose(cap.token_losses, expected, rtol=1e-4, atol=1e-4)
    assert 1 < cap.perplexity < 1000


@pytest.mark.slow
def test_smollm2_cached_safetensors_give_the_same_logits_as_the_gguf():
    """The converted copy is what we load; it must equal a fresh de-quantization of the GGUF."""
    from transformers import AutoModelForCausalLM

    from explorer.models.loading import smollm2_gguf_path

    loaded = get_model("smollm2-135m")
    gguf = smollm2_gguf_path()
    fresh = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, attn_implementation="eager", dtype=torch.float32
    ).eval()
    ids = torch.tensor([[1, 504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767]])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(input_ids=ids).logits, fresh(input_ids=ids).logits, rtol=0, atol=0
        )


def test_model_card_counts_parameters_like_torch(load):
    loaded = load("tiny-llama")
    assert loaded.card.n_params == sum(p.numel() for p in loaded.model.parameters())
    assert loaded.card.n_kv_heads == 2 and loaded.card.d_head == 16
