"""The logit lens against an independent computation: hidden state -> final norm -> unembedding -> softmax with
torch directly in the test; the last block's lens is the model's own output distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.logit_lens import NoLensError, final_norm_and_unembedding, logit_lens, residual_stream
from explorer.errors import ExplorerError
from tests.conftest import SAMPLE_TEXT, get_model

EPS32 = float(np.finfo(np.float32).eps)


def _ids(loaded, limit: int = 40) -> np.ndarray:
    return np.asarray(loaded.tokenizer(SAMPLE_TEXT)["input_ids"][:limit], dtype=np.int64)


def _reference(loaded, ids: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per layer log-probs (token, vocab) in float64, computed here from the modules by name, and the model's
    own logits."""
    model = loaded.model
    base = model.transformer if hasattr(model, "transformer") else model.model
    norm = base.ln_f if hasattr(base, "ln_f") else base.norm
    with torch.no_grad():
        inputs = torch.as_tensor(ids)[None]
        out = model(input_ids=inputs, output_hidden_states=True)
        # The residual after the last block is not among hidden_states (transformers returns it normed): take
        # the norm's input with a pre-hook of the test's own.
        grabbed = []
        handle = norm.register_forward_pre_hook(lambda _m, args: grabbed.append(args[0][0].clone()))
        model(input_ids=inputs)
        handle.remove()
        residuals = [h[0] for h in out.hidden_states[1:-1]] + [grabbed[0]]
        logps = [torch.log_softmax((norm(r) @ model.lm_head.weight.T).double(), dim=-1) for r in residuals]
    return logps, out.logits[0]


@pytest.mark.parametrize("model_id", ["tiny-gpt2", "tiny-llama"])
def test_lens_matches_an_independent_computation(model_id):
    loaded = get_model(model_id)
    ids = _ids(loaded)
    k = 4
    lens = logit_lens(loaded, ids, k=k)
    logps, logits = _reference(loaded, ids)
    n_layers = loaded.card.n_layers
    assert lens.top_ids.shape == (n_layers, len(ids), k) and lens.kl.shape == (n_layers, len(ids))
    final_logp = logps[-1]
    final_ids = final_logp.argmax(-1).numpy()
    assert np.array_equal(lens.final_ids, final_ids)
    for layer, logp in enumerate(logps):
        probs = logp.exp().numpy()
        # Probabilities in float32 of the same logits: a few ulps of their log-magnitude.
        tol = 64 * EPS32 * (1 + np.abs(logp.numpy()).max())
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        np.testing.assert_allclose(lens.top_probs[layer], np.take_along_axis(probs, order, -1), atol=tol)
        # Ids: equal wherever the k-th and (k+1)-th probabilities are not tied within the tolerance.
        sorted_p = -np.sort(-probs, axis=-1)
        clear = np.all(np.abs(np.diff(sorted_p[:, : k + 1], axis=-1)) > tol, axis=-1)
        assert np.array_equal(lens.top_ids[layer][clear], order[clear])
        target = probs[np.arange(len(ids)), final_ids]
        rank = 1 + (probs > target[:, None] * (1 + 1e-5)).sum(-1)
        rank_hi = 1 + (probs > target[:, None] * (1 - 1e-5)).sum(-1)
        assert np.all((lens.final_rank[layer] >= rank) & (lens.final_rank[layer] <= rank_hi)), layer
        np.testing.assert_allclose(lens.final_prob[layer], target, atol=tol)
        kl = (final_logp.exp() * (final_logp - logp)).sum(-1).numpy()
        np.testing.assert_allclose(lens.kl[layer], kl, atol=tol * 8, rtol=1e-5)
    assert (lens.kl >= 0).all()
    np.testing.assert_allclose(lens.kl[-1], 0.0, atol=1e-5)
    assert (lens.final_rank[-1] == 1).all()


@pytest.mark.parametrize("model_id", ["tiny-gpt2", "tiny-llama"])
def test_last_block_is_the_model_output(model_id):
    loaded = get_model(model_id)
    ids = _ids(loaded)
    residuals, logits = residual_stream(loaded, ids)
    norm, unembed = final_norm_and_unembedding(loaded)
    with torch.no_grad():
        again = unembed(norm(residuals[-1][None]))[0]
    # The same modules on the same input: identical up to float32 rounding of a reordered matmul.
    scale = float(logits.abs().max())
    np.testing.assert_allclose(again.numpy(), logits.numpy(), rtol=0, atol=8 * EPS32 * scale)
    lens = logit_lens(loaded, ids, k=3)
    probs = torch.softmax(logits.double(), -1).numpy()
    np.testing.assert_allclose(lens.top_probs[-1], -np.sort(-probs, axis=-1)[:, :3], atol=64 * EPS32)
    assert np.array_equal(lens.final_ids, probs.argmax(-1))


def test_chunks_give_the_same_lens(monkeypatch):
    import explorer.analysis.logit_lens as module

    loaded = get_model("tiny-llama")
    ids = _ids(loaded, limit=60)
    whole = logit_lens(loaded, ids, k=3)
    monkeypatch.setattr(module, "POSITION_CHUNK", 7)
    chunked = logit_lens(loaded, ids, k=3)
    assert np.array_equal(whole.top_ids, chunked.top_ids)
    assert np.array_equal(whole.final_rank, chunked.final_rank)
    np.testing.assert_allclose(whole.kl, chunked.kl, atol=1e-5)


def test_first_layer_with_final():
    loaded = get_model("tiny-gpt2")
    lens = logit_lens(loaded, _ids(loaded), k=2)
    first = lens.first_layer_with_final()
    for t in range(lens.n_tokens):
        ok = lens.final_rank[:, t] == 1
        expected = next(layer for layer in range(lens.n_layers) if ok[layer:].all())
        assert first[t] == expected


def test_encoder_has_no_lens():
    loaded = get_model("tiny-bert")
    with pytest.raises(NoLensError, match="encoder") as info:
        logit_lens(loaded, _ids(loaded))
    assert isinstance(info.value, ExplorerError)


@pytest.mark.slow
def test_smollm2_last_block_is_the_model_output():
    loaded = get_model("smollm2-135m")
    ids = _ids(loaded, limit=64)
    lens = logit_lens(loaded, ids, k=5)
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.as_tensor(ids)[None]).logits[0].double()
    probs = torch.softmax(logits, -1).numpy()
    assert np.array_equal(lens.final_ids, probs.argmax(-1))
    np.testing.assert_allclose(lens.top_probs[-1], -np.sort(-probs, axis=-1)[:, :5], atol=1e-5)
    np.testing.assert_allclose(lens.kl[-1], 0.0, atol=1e-4)
    assert (lens.kl >= 0).all() and (lens.final_rank[-1] == 1).all()


@pytest.mark.slow
def test_minilm_has_no_lens():
    with pytest.raises(NoLensError, match="no logit lens"):
        logit_lens(get_model("minilm-l6"), np.array([101, 2000, 102]))


def test_reduce_layer_ranks_inside_and_outside_the_candidates():
    """The rank shortcut (counted among the top RANK_CANDIDATES where the prediction is there, over the vocabulary
    otherwise) gives numpy's exact count, ties included; the in-place logsumexp is scipy's."""
    from scipy.special import logsumexp

    from explorer.analysis.logit_lens import RANK_CANDIDATES, _reduce_layer

    rng = np.random.default_rng(0)
    vocab = 500
    # Integer-valued logits: many exact ties, and the strict count is exact in float32.
    logits = rng.integers(-40, 40, size=(6, vocab)).astype(np.float32)
    order = np.argsort(-logits, axis=-1, kind="stable")
    # Final ids at sorted positions 0, 5, RANK_CANDIDATES - 1, RANK_CANDIDATES, 200 and the last one.
    positions = [0, 5, RANK_CANDIDATES - 1, RANK_CANDIDATES, 200, vocab - 1]
    final_ids = order[np.arange(6), positions]
    target = logits[np.arange(6), final_ids]
    expected_rank = 1 + (logits > target[:, None]).sum(-1)
    neg_entropy = torch.zeros(6)
    cross = torch.zeros(6)
    _, top_probs, rank, prob, kl = _reduce_layer(
        torch.tensor(logits), torch.tensor(final_ids), cross, neg_entropy, k=3
    )
    assert np.array_equal(rank.numpy(), expected_rank)
    lse = logsumexp(logits.astype(np.float64), axis=-1)
    # kl = lse here (zero cross and entropy): float32 sum of <= vocab terms of size <= 1 after the shift.
    np.testing.assert_allclose(kl.numpy(), lse, rtol=0, atol=vocab * EPS32 * (1 + np.abs(lse).max()))
    np.testing.assert_allclose(prob.numpy(), np.exp(target - lse), rtol=vocab * EPS32)
    top = -np.sort(-logits, axis=-1)[:, :3]
    np.testing.assert_allclose(top_probs.numpy(), np.exp(top - lse[:, None]), rtol=vocab * EPS32)
