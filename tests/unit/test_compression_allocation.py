"""The greedy rank allocation wired into compression on the tiny models: the budget it spends, its calibration
output error against uniform ranks (checked from the weights and X^T X directly), and the factored model."""

import numpy as np
import pytest
import torch

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import METHODS, factorize
from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.analysis.quality import Budget
from explorer.analysis.surgery import structural_copy
from tests.module_inputs import record_inputs


def _direct_output_error(loaded, fact, stats, ranks):
    """sum ||(W - W_k) X^T||^2 / sum ||W X^T||^2 in float64 from the weights and X^T X, not from the tails."""
    weights = {m.name: m.weight.detach().double() for m in weight_matrices(loaded.model)}
    num = den = 0.0
    for f in fact.matrices:
        W, G = weights[f.name], stats[f.module].gram.double()
        den += float(((W @ G) * W).sum())
        if f.name in ranks:
            E = W - f.reconstruct(ranks[f.name]).double()
            num += float(((E @ G) * E).sum())
    return num / den


@pytest.fixture(scope="module")
def llama_setup(load):
    loaded = load("tiny-llama")
    kinds = tuple(k for k in comp.available_kinds(loaded.model) if k != "embed")  # untied: no inputs
    chunks = comp.calibration_chunks(loaded, comp.shipped_calibration_text(), 64)[:4]
    stats, n_tokens = comp.collect_activation_stats(loaded, chunks, kinds)
    return loaded, kinds, stats, n_tokens


@pytest.mark.parametrize("method", METHODS)
def test_greedy_spends_the_uniform_budget_and_never_loses_beyond_the_gap(llama_setup, method):
    loaded, kinds, stats, n_tokens = llama_setup
    fact = factorize(loaded.model, method, kinds, stats, calibration_tokens=n_tokens)
    assert comp.allocation_objective(fact) == "output"
    den = sum(f.output_norm2 for f in fact.matrices)
    for share in (0.2, 0.5, 0.8, 0.95):
        uniform = comp.choose_ranks(fact, comp.RankSetting(share=share))
        greedy = comp.choose_ranks(fact, comp.RankSetting(share=share, allocation="greedy"))
        budget = sum(uniform[f.name] * sum(f.shape) for f in fact.matrices)
        spent = sum(
            greedy[f.name] * sum(f.shape) if f.name in greedy else np.prod(f.shape) for f in fact.matrices
        )
        steps = [sum(f.shape) for f in fact.matrices if f.name in greedy]
        assert spent <= budget and (not steps or budget - spent < min(steps))
        _, before_u = comp.group_params(fact, uniform)
        _, before_g = comp.group_params(fact, greedy)
        assert before_g <= before_u
        alloc = comp.allocation_of(fact, budget)
        e_uniform = comp.calib_output_error(fact, uniform)
        e_greedy = comp.calib_output_error(fact, greedy)
        # The reported errors are the tails of the factorization; recompute them from W and X^T X (float32
        # factors: relative 1e-4 covers their rounding through the Gram matrix's spread).
        # abs 1e-7 only serves errors near 0 (the float32 scale); rel 1e-4 governs.
        assert e_uniform == pytest.approx(
            _direct_output_error(loaded, fact, stats, uniform), rel=1e-4, abs=1e-7
        )
        assert e_greedy == pytest.approx(
            _direct_output_error(loaded, fact, stats, greedy), rel=1e-4, abs=1e-7
        )
        # The theorem: at a budget no smaller than uniform's, greedy is at most one hull step worse.
        # 1e-9: rounding of the normalised float64 error sums (~1e-13); the theorem's slack is the gap.
        assert e_greedy <= e_uniform + alloc.gap / den + 1e-9, (share, e_greedy, e_uniform)


def test_greedy_ranks_build_a_model_equal_to_dense_reconstruction(llama_setup):
    loaded, kinds, stats, n_tokens = llama_setup
    before = weights_checksum(loaded.model)
    fact = factorize(loaded.model, "svdllm", kinds, stats, calibration_tokens=n_tokens)
    ranks = comp.choose_ranks(fact, comp.RankSetting(share=0.9, allocation="greedy"))
    assert ranks and len(ranks) <= len(fact.matrices)
    by_name = {f.name: f for f in fact.matrices}
    dense = {m.name: m.weight.detach().clone() for m in weight_matrices(loaded.model)}
    for name, k in ranks.items():
        dense[name] = by_name[name].reconstruct(k)
    ids = torch.tensor([list(range(3, 50))])
    with torch.no_grad():
        factored = comp.compressed_model(loaded, fact, ranks)(input_ids=ids).logits
        reference_model = structural_copy(loaded.model)
        for mat in weight_matrices(reference_model):
            module = reference_model.get_submodule(mat.module)
            module.weight = torch.nn.Parameter(dense[mat.name], requires_grad=False)
        rebuilt = reference_model(input_ids=ids).logits
    torch.testing.assert_close(factored, rebuilt, atol=1e-4, rtol=1e-4)
    assert weights_checksum(loaded.model) == before


def test_without_calibration_the_greedy_minimises_the_weight_error(load):
    loaded = load("tiny-gpt2")
    fact = factorize(loaded.model, "svd", ("mlp_up", "mlp_down"))
    assert comp.allocation_objective(fact) == "weight"
    ranks = comp.choose_ranks(fact, comp.RankSetting(share=0.5, allocation="greedy"))
    uniform = comp.choose_ranks(fact, comp.RankSetting(share=0.5))
    alloc = comp.allocation_of(fact, sum(uniform[f.name] * sum(f.shape) for f in fact.matrices))

    def weight_error(r):  # sum of ||W - W_k||_F^2 from numpy's singular values (plain SVD: Eckart-Young)
        total = 0.0
        for mat in weight_matrices(loaded.model):
            if mat.name in {f.name for f in fact.matrices} and mat.name in r:
                S = np.linalg.svd(mat.weight.double().numpy(), compute_uv=False)
                total += float((S[r[mat.name] :] ** 2).sum())
        return total

    scale = sum(float((m.weight.double() ** 2).sum()) for m in weight_matrices(loaded.model))
    assert weight_error(ranks) <= weight_error(uniform) + alloc.gap + 1e-6 * scale
    assert comp.calib_output_error(fact, ranks) is None


def test_quality_budget_picks_the_smallest_fitting_point():
    def q(ppl):
        return comp.Quality(True, ppl, 0.0, None, None, 1.0, 10)

    before = q(10.0)
    pts = [
        comp.Point.low_rank(
            "svdllm", s, q(p), mean_rank=1.0, params_model_before=100, params_model_after=int(100 * s)
        )  # fmt: skip
        for s, p in [(0.5, 40.0), (0.7, 11.5), (0.8, 10.9), (0.9, 10.2)]
    ]
    budget = Budget.default(True)
    best, closest = comp.within_budget(pts, before, budget)
    assert best.share == 0.8 and closest.share == 0.9
    best, closest = comp.within_budget(pts[:2], before, budget)
    assert best is None and closest.share == 0.7
    assert pts[2].bytes == 80 * comp.BYTES_PER_PARAM


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-gpt2"])
def test_body_only_calibration_sees_what_the_full_model_feeds_the_mlps(load, model_id):
    """Without the embedding among the groups the calibration pass skips the output layer; the statistics must
    be those of the inputs the MLP modules see in a full forward pass."""
    loaded = load(model_id)
    chunks = [list(range(5, 45)), list(range(50, 70))]
    stats, n_tokens = comp.collect_activation_stats(loaded, chunks, ("mlp_up", "mlp_down"))
    clone = structural_copy(loaded.model)
    names = sorted(stats)
    seen = record_inputs(clone, names, chunks)
    assert n_tokens == 60 and len(names) == 2 * loaded.card.n_layers
    for name in names:
        X = torch.cat(seen[name]).double().numpy()
        # float32 sums of |x|: the rtol carries them; the atol only serves means near 0.
        np.testing.assert_allclose(stats[name].abs_mean, np.abs(X).mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            stats[name].gram.double().numpy(), X.T @ X, rtol=1e-4, atol=1e-4 * np.abs(X).max() ** 2
        )
