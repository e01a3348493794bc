"""Quantization what-ifs on the tiny models: the copy computes what a hand-quantized copy computes, the bytes are
counted as defined, full precision gives the original back, and the cached model is never touched."""

import copy

import numpy as np
import pytest
import torch

from explorer.analysis import compression as comp
from explorer.analysis import quantize as qz
from explorer.analysis.lowrank import factorize
from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.spectra.quantization import INT8, QuantScheme, fake_quantize
from tests.conftest import SAMPLE_TEXT, TINY_IDS

INT4_G32 = QuantScheme(4, 32)
EPS32 = float(np.finfo(np.float32).eps)


def _setup(load, model_id):
    loaded = load(model_id)
    evalset = comp.make_eval_set(loaded, SAMPLE_TEXT, 64)
    return loaded, evalset, comp.reference(loaded, evalset)


def _hand_quantized(loaded, kinds, scheme) -> torch.nn.Module:
    """An independent route: a deep copy whose parameters are overwritten in place, slice by slice."""
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for mat in weight_matrices(
            model
        ):  # views into the copy's parameters, (out, in) as stored or transposed
            if mat.kind in kinds:
                mat.weight.copy_(fake_quantize(mat.weight.detach().clone(), scheme))
    return model.eval()


def _perplexity(model, ids) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    nll = -torch.log_softmax(logits[:-1], -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return float(torch.exp(nll.mean()))


@pytest.mark.parametrize("model_id", TINY_IDS)
@pytest.mark.parametrize(
    "scheme", [INT8, INT4_G32, QuantScheme(4, 16, symmetric=False)], ids=lambda s: s.name
)
def test_quantized_copy_matches_a_hand_quantized_copy(load, model_id, scheme):
    loaded, evalset, ref = _setup(load, model_id)
    kinds = tuple(
        k for k in ("attn_q", "attn_v", "mlp_up", "mlp_down") if k in comp.available_kinds(loaded.model)
    )
    before = weights_checksum(loaded.model)
    outcome = qz.quantize_weights(loaded, kinds, scheme, evalset, ref)
    assert weights_checksum(loaded.model) == before  # the cached model is only read

    hand = _hand_quantized(loaded, kinds, scheme)
    ids = torch.tensor([evalset.ids])
    mine = qz.with_weights_replaced(
        loaded,
        {
            m.name: fake_quantize(m.weight.detach(), scheme)
            for m in weight_matrices(loaded.model)
            if m.kind in kinds
        },
    )
    with torch.no_grad():
        a = hand(ids).logits if loaded.causal else hand(ids).last_hidden_state
        b = mine(ids).logits if loaded.causal else mine(ids).last_hidden_state
    # Same weights, different kernels (Conv1D's addmm against F.linear, fused q/k/v as one matmul or three): the
    # outputs agree to float32 rounding of sums over d_model terms through a few layers.
    scale = float(a.abs().max())
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=200 * EPS32 * scale)
    if loaded.causal:
        assert outcome.after.perplexity == pytest.approx(_perplexity(hand, list(evalset.ids)), rel=1e-4)

    mats = [m for m in weight_matrices(loaded.model) if m.kind in kinds]
    assert outcome.bytes_chosen == sum(scheme.nbytes(tuple(m.shape)) for m in mats)
    assert outcome.bytes_chosen_fp16 == 2 * sum(m.weight.numel() for m in mats)
    assert outcome.bytes_model == 2 * loaded.card.n_params - outcome.bytes_chosen_fp16 + outcome.bytes_chosen
    dropped = sum(
        float((m.weight.double() - fake_quantize(m.weight.detach(), scheme).double()).square().sum())
        for m in mats
    )
    total = sum(float(m.weight.double().square().sum()) for m in mats)
    assert outcome.weight_error == pytest.approx(dropped / total, rel=1e-12)  # the same sums, another order


@pytest.mark.parametrize("model_id", TINY_IDS)
def test_residual_split_keeping_everything_is_the_original(load, model_id):
    loaded, evalset, ref = _setup(load, model_id)
    outcome = qz.residual_split_weights(loaded, ("mlp_up",), INT4_G32, evalset, ref, energy=1.0)
    # Full rank in fp16-free float64 factors: W back to its SVD's rounding, which rounds to W itself in the
    # model's float32, so the copy's forward pass is the original's: KL and 1 - cosine are the rounding of
    # identical inputs (a few eps), far inside 1e-9; the perplexity within one float32 exp/log round trip.
    assert outcome.weight_error < 1e-20
    if loaded.causal:
        assert outcome.after.kl == pytest.approx(0.0, abs=1e-9)
        assert outcome.after.perplexity == pytest.approx(ref.quality.perplexity, rel=1e-6)
    else:
        assert outcome.after.embedding_cosine == pytest.approx(1.0, abs=1e-9)
    mats = [m for m in weight_matrices(loaded.model) if m.kind == "mlp_up"]
    assert all(outcome.ranks[m.name] == min(m.shape) for m in mats)
    assert outcome.bytes_chosen == sum(
        2 * min(m.shape) * sum(m.shape) + INT4_G32.nbytes(tuple(m.shape)) for m in mats
    )


def test_factors_quantized_at_full_rank_and_int8_stay_close(load):
    """svd factors at full rank, each factor int8: the product's error is bounded by the factors' half steps."""
    loaded, evalset, ref = _setup(load, "tiny-llama")
    fact = factorize(loaded.model, "svd", ("mlp_down",))
    ranks = {f.name: f.max_rank for f in fact.matrices}
    outcome = qz.quantize_factored_weights(loaded, fact, ranks, INT8, evalset, ref)
    assert outcome.method == "svd+int8"
    assert 0 < outcome.weight_error < 1e-3  # int8 steps are 1/127 of each row's largest entry
    before = weights_checksum(loaded.model)
    qz.quantize_factored_weights(loaded, fact, ranks, INT4_G32, evalset, ref)
    assert weights_checksum(loaded.model) == before
