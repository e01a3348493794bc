"""Generation with the KV cache: reproducible, non-mutating, and the attention of a token produced with the cache
equals its row in a full forward pass over prompt + continuation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.generation import (
    GREEDY,
    SAMPLED,
    GenerationSettings,
    continuation_text,
    generate,
    generated_mask,
)
from explorer.errors import InputError
from tests.conftest import SAMPLE_TEXT, get_model

CAUSAL_TINY = ["tiny-gpt2", "tiny-llama"]


def _prompt(loaded, text: str = SAMPLE_TEXT, limit: int = 24) -> np.ndarray:
    return np.asarray(loaded.tokenizer(text)["input_ids"][:limit], dtype=np.int64)


def _state(model) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


@pytest.mark.parametrize("model_id", CAUSAL_TINY)
def test_greedy_is_the_argmax_chain_and_leaves_the_model_alone(model_id):
    loaded = get_model(model_id)
    before = _state(loaded.model)
    config_before = loaded.model.generation_config.to_dict()
    prompt = _prompt(loaded)
    gen = generate(loaded, prompt, GenerationSettings(n_new=6, mode=GREEDY))
    assert gen.n_prompt == len(prompt) and np.array_equal(gen.token_ids[: len(prompt)], prompt)
    assert gen.generated.tolist() == [False] * len(prompt) + [True] * gen.n_generated
    # Each generated token is the argmax of a full forward pass over everything before it.
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.as_tensor(gen.token_ids)[None]).logits[0]
    expected = logits[len(prompt) - 1 : -1].argmax(-1).numpy()
    assert np.array_equal(gen.token_ids[len(prompt) :], expected)
    assert not loaded.model.training
    assert loaded.model.generation_config.to_dict() == config_before
    after = loaded.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("model_id", CAUSAL_TINY)
def test_sampling_is_reproducible_and_leaves_the_global_rng(model_id):
    loaded = get_model(model_id)
    prompt = _prompt(loaded)
    settings = GenerationSettings(n_new=12, mode=SAMPLED, temperature=1.5, top_p=0.9, seed=7)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = generate(loaded, prompt, settings)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG stream is untouched
    second = generate(loaded, prompt, settings)
    assert np.array_equal(first.token_ids, second.token_ids)
    other = generate(
        loaded, prompt, GenerationSettings(n_new=12, mode=SAMPLED, temperature=1.5, top_p=0.9, seed=8)
    )
    # A random model at temperature 1.5 spreads over ~259 tokens: two seeds agreeing on 12 tokens is ~impossible.
    assert not np.array_equal(first.token_ids, other.token_ids)


def _kv_cache_rows_match(loaded, prompt: np.ndarray, n_new: int, atol_scale: float) -> None:
    gen = generate(loaded, prompt, GenerationSettings(n_new=n_new))
    ids = torch.as_tensor(gen.token_ids)[None]
    n_prompt = gen.n_prompt
    model = loaded.model
    with torch.no_grad():
        full = model(input_ids=ids, output_attentions=True).attentions  # layer x (1, head, query, key)
        out = model(input_ids=ids[:, :n_prompt], use_cache=True)
        past = out.past_key_values
        for pos in range(n_prompt, ids.shape[1]):
            step = model(
                input_ids=ids[:, pos : pos + 1], past_key_values=past, use_cache=True, output_attentions=True
            )
            past = step.past_key_values
            for layer, attn in enumerate(step.attentions):
                row = attn[0, :, 0, : pos + 1].double().numpy()
                ref = full[layer][0, :, pos, : pos + 1].double().numpy()
                # Both are softmaxes of the same float32 scores summed in a different order: error a few
                # float32 ulps of the scores' magnitude, times the row's largest weight.
                eps = np.finfo(np.float32).eps
                np.testing.assert_allclose(row, ref, rtol=0, atol=atol_scale * eps * (pos + 1) ** 0.5)


@pytest.mark.parametrize("model_id", CAUSAL_TINY)
def test_kv_cache_attention_row_equals_the_full_forward_row(model_id):
    loaded = get_model(model_id)
    _kv_cache_rows_match(loaded, _prompt(loaded), n_new=8, atol_scale=64)


@pytest.mark.slow
def test_kv_cache_attention_row_equals_the_full_forward_row_on_smollm2():
    loaded = get_model("smollm2-135m")
    _kv_cache_rows_match(loaded, _prompt(loaded, limit=40), n_new=6, atol_scale=256)


def test_encoder_cannot_generate():
    loaded = get_model("tiny-bert")
    with pytest.raises(InputError, match="encoder"):
        generate(loaded, _prompt(loaded), GenerationSettings(n_new=4))


def test_no_room_in_the_context_is_a_clear_error():
    loaded = get_model("tiny-gpt2")
    prompt = np.full(loaded.card.max_positions - 2, 65, dtype=np.int64)
    with pytest.raises(InputError, match="at most 2 can be generated"):
        generate(loaded, prompt, GenerationSettings(n_new=5))


def test_continuation_text_round_trips_on_a_byte_tokenizer():
    loaded = get_model("tiny-gpt2")
    prompt = _prompt(loaded, "Héllo wörld", limit=100)
    gen = generate(loaded, prompt, GenerationSettings(n_new=5, mode=SAMPLED, seed=1))
    text = loaded.tokenizer.decode(prompt.tolist()) + continuation_text(loaded, gen)
    retok = np.asarray(loaded.tokenizer(text)["input_ids"])
    mask = generated_mask(retok, prompt)
    # The prompt's own tokens are never marked; a random model's bytes need not be valid UTF-8, so the
    # continuation may decode to replacement characters (more bytes), never to fewer tokens than none.
    assert not mask[: len(prompt)].any() and mask[len(prompt) :].all() and mask.sum() >= 1


def test_generated_mask_marks_from_the_seam():
    assert generated_mask(np.array([1, 2, 3, 4]), np.array([1, 2])).tolist() == [False, False, True, True]
    # A merge across the seam: the prompt's last token became another one, so it counts as generated.
    assert generated_mask(np.array([1, 9, 4]), np.array([1, 2])).tolist() == [False, True, True]
    assert generated_mask(np.array([1, 2]), np.array([1, 2])).tolist() == [False, False]
