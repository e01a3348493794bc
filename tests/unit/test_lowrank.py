"""Low-rank factorizations and the compression what-if, checked against numpy/scipy and theorems:
Eckart-Young, parameter counts, the papers' own formulas for ASVD and SVD-LLM, the optimality of whitening on
calibration data, and a factored model against a dense model built independently from the same W_k."""

import copy

import numpy as np
import pytest
import torch
from scipy.special import rel_entr
from scipy.stats import spearmanr
from transformers.pytorch_utils import Conv1D

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import (
    ASVD_ALPHA,
    METHODS,
    ActivationStats,
    eckart_young_error,
    factorize,
    factorize_matrix,
    whitening_factor,
)
from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.analysis.surgery import LowRankLinear
from explorer.errors import InputError
from explorer.models import capture
from explorer.spectra.ranks import energy_rank
from tests.conftest import SAMPLE_TEXT
from tests.module_inputs import record_inputs
from tests.tolerances import sum_rtol

SHAPES = [(24, 40), (40, 24), (32, 32)]


def _random(m, n, seed=0, decay=0.9):
    """A float64 matrix with a decaying spectrum (so truncation errors are not all alike)."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    r = min(m, n)
    S = decay ** np.arange(r) * (1 + rng.random(r))
    S = np.sort(S)[::-1]
    return (U[:, :r] * S) @ V[:, :r].T


def _activations(n, tokens=200, seed=1):
    """(token, n) inputs with very unequal channel scales, as in real LLMs (a few large channels)."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.normal(0, 1.2, n))
    mix = np.eye(n) + 0.3 * rng.standard_normal((n, n)) / np.sqrt(n)
    return (rng.standard_normal((tokens, n)) * scales) @ mix


def _stats(X):
    return ActivationStats(np.abs(X).mean(0), torch.from_numpy(X.T @ X).float(), X.shape[0])


@pytest.mark.parametrize("shape", SHAPES)
def test_plain_svd_error_is_eckart_young(shape):
    W = _random(*shape)
    f = factorize_matrix(torch.from_numpy(W).float(), "svd")
    S = np.linalg.svd(W, compute_uv=False)
    for k in (1, 3, min(shape) // 2, min(shape) - 1, min(shape)):
        direct = np.linalg.norm(W - f.reconstruct(k).double().numpy())
        dropped = np.sqrt((S[k:] ** 2).sum())
        assert direct == pytest.approx(dropped, rel=1e-4, abs=1e-5)
        assert eckart_young_error(S, k) == pytest.approx(
            dropped, rel=sum_rtol(S.size), abs=0
        )  # same sum, c n eps
        assert f.weight_error(k) == pytest.approx(dropped / np.linalg.norm(W), rel=1e-4, abs=1e-5)
        assert f.eckart_young_error(k) == pytest.approx(dropped / np.linalg.norm(W), rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(f.sigma, S, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_parameter_counts_and_break_even(shape):
    m, n = shape
    W = torch.from_numpy(_random(m, n)).float()
    f = factorize_matrix(W, "svd", n_bias=m)
    for k in (1, 5, min(m, n)):
        assert f.params(k) == k * (m + n) + m
        A, B = f.factors(k)
        assert A.numel() + B.numel() + m == f.params(k)
    assert f.dense_params == m * n + m
    assert f.break_even == m * n / (m + n)  # exact: the same formula
    k_star = f.break_even
    assert f.params(int(np.floor(k_star))) <= f.dense_params < f.params(int(np.floor(k_star)) + 1)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", SHAPES)
def test_full_rank_reproduces_the_matrix(method, shape):
    m, n = shape
    W = _random(m, n)
    f = factorize_matrix(torch.from_numpy(W).float(), method, _stats(_activations(n)))
    np.testing.assert_allclose(f.reconstruct(f.max_rank).double().numpy(), W, atol=1e-5 * np.abs(W).max())
    assert f.weight_error(f.max_rank) < 1e-5
    # The factors are orthonormal on the left, so the tails add up to the whole.
    U = f.U.double().numpy()
    np.testing.assert_allclose(U.T @ U, np.eye(f.max_rank), atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_asvd_equals_the_papers_formula(shape):
    """ASVD (Yuan et al.): SVD of W S with S = diag(mean|x|^alpha), W' = U_k Sigma_k V_k^T S^-1."""
    m, n = shape
    W, X = _random(m, n), _activations(n)
    s = np.abs(X).mean(0) ** ASVD_ALPHA
    U, S, Vt = np.linalg.svd(W * s[None, :], full_matrices=False)
    f = factorize_matrix(torch.from_numpy(W).float(), "asvd", _stats(X))
    for k in (2, min(shape) // 2):
        paper = (U[:, :k] * S[:k]) @ Vt[:k] / s[None, :]
        np.testing.assert_allclose(f.reconstruct(k).double().numpy(), paper, atol=1e-4 * np.abs(W).max())


@pytest.mark.parametrize("shape", SHAPES)
def test_svdllm_equals_the_papers_formula_and_is_optimal_on_calibration(shape):
    """SVD-LLM (Wang et al.): W' = U_k Sigma_k V_k^T L^-1 with L = chol(X^T X + lambda I); with lambda -> 0 the
    output error ||(W - W')X^T|| equals sqrt(sum of dropped sigma^2 of W L), the least any rank-k W' has."""
    m, n = shape
    W, X = _random(m, n), _activations(n, tokens=300)
    ridge = 1e-9
    f = factorize_matrix(torch.from_numpy(W).float(), "svdllm", _stats(X), ridge=ridge)
    G = X.T @ X
    L = np.linalg.cholesky(G + ridge * np.trace(G) / n * np.eye(n))
    U, S, Vt = np.linalg.svd(W @ L, full_matrices=False)
    scale = np.linalg.norm(W @ X.T)
    for k in (2, min(shape) // 2):
        paper = (U[:, :k] * S[:k]) @ Vt[:k] @ np.linalg.inv(L)
        Wk = f.reconstruct(k).double().numpy()
        assert np.linalg.norm((Wk - paper) @ X.T) < 1e-4 * scale
        err = np.linalg.norm((W - Wk) @ X.T)
        assert err == pytest.approx(np.sqrt((S[k:] ** 2).sum()), rel=1e-3, abs=1e-5 * scale)
        assert f.output_error(k) == pytest.approx(err / scale, rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("ridge", [1e-9, 1e-2, 1.0])
@pytest.mark.parametrize("shape", SHAPES)
def test_whitened_output_error_never_above_plain(shape, ridge):
    m, n = shape
    W, X = _random(m, n, seed=3, decay=0.95), _activations(n, tokens=150, seed=4)
    Wt = torch.from_numpy(W).float()
    plain = factorize_matrix(Wt, "svd")
    white = factorize_matrix(Wt, "svdllm", _stats(X), ridge=ridge)
    scale = np.linalg.norm(W @ X.T)
    for k in range(1, min(shape) + 1):
        e_plain = np.linalg.norm((W - plain.reconstruct(k).double().numpy()) @ X.T)
        e_white = np.linalg.norm((W - white.reconstruct(k).double().numpy()) @ X.T)
        assert e_white <= e_plain + 1e-5 * scale, k


def test_output_and_weight_tails_match_direct_computation():
    W, X = _random(30, 45, seed=5), _activations(45, seed=6)
    for method in METHODS:
        f = factorize_matrix(torch.from_numpy(W).float(), method, _stats(X))
        S = np.linalg.svd(W, compute_uv=False)
        for k in (1, 7, 20):
            Wk = f.reconstruct(k).double().numpy()
            assert f.weight_error(k) == pytest.approx(
                np.linalg.norm(W - Wk) / np.linalg.norm(W), rel=1e-4, abs=1e-6
            )
            assert f.output_error(k) == pytest.approx(
                np.linalg.norm((W - Wk) @ X.T) / np.linalg.norm(W @ X.T), rel=1e-3, abs=1e-6
            )
            assert f.eckart_young_error(k) == pytest.approx(
                np.sqrt((S[k:] ** 2).sum()) / np.linalg.norm(W), rel=1e-4, abs=1e-6
            )
            assert f.eckart_young_error(k) <= f.weight_error(k) + 1e-6  # Eckart-Young is the floor


def test_whitening_factor_is_a_cholesky_factor_with_ridge():
    X = _activations(20, tokens=10)  # fewer tokens than channels: X^T X is singular
    G = torch.from_numpy(X.T @ X)
    L = whitening_factor(G.float(), ridge=1e-2).numpy()
    lam = 1e-2 * np.trace(X.T @ X) / 20
    np.testing.assert_allclose(L @ L.T, X.T @ X + lam * np.eye(20), rtol=1e-5, atol=1e-6 * lam)
    np.testing.assert_array_equal(L, np.tril(L))  # exact: Cholesky's upper part is 0


def test_choose_ranks_modes(load):
    loaded = load("tiny-llama")
    fact = factorize(loaded.model, "svd", ("mlp_up", "attn_q"))
    share = comp.choose_ranks(fact, comp.RankSetting(mode="share", share=0.5))
    energy = comp.choose_ranks(fact, comp.RankSetting(mode="energy", energy=0.9))
    ranks = comp.choose_ranks(fact, comp.RankSetting(mode="rank", ranks=(("mlp_up", 7), ("attn_q", 999))))
    for mat in weight_matrices(loaded.model):
        if mat.name not in share:
            continue
        m, n = mat.shape
        assert share[mat.name] == int(np.floor(0.5 * m * n / (m + n)))
        S = np.linalg.svd(mat.weight.double().numpy(), compute_uv=False)
        assert energy[mat.name] == int(energy_rank(S, 0.9))
        assert ranks[mat.name] == (7 if mat.kind == "mlp_up" else min(m, n))


def _dense_copy_with(model, fact, ranks):
    """An independent check: a full deepcopy whose weights are overwritten by W_k, in each module's own
    orientation (Conv1D stores (in, out); GPT-2's c_attn holds q, k, v side by side)."""
    clone = copy.deepcopy(model)
    by_name = {f.name: f for f in fact.matrices}
    for mat in weight_matrices(clone):
        if mat.name not in ranks:
            continue
        Wk = by_name[mat.name].reconstruct(ranks[mat.name])
        module = clone.get_submodule(mat.module)
        with torch.no_grad():
            if isinstance(module, Conv1D):
                if ":" in mat.name:
                    part = "qkv".index(mat.name[-1])
                    width = module.weight.shape[1] // 3
                    module.weight[:, part * width : (part + 1) * width] = Wk.T
                else:
                    module.weight.copy_(Wk.T)
            else:
                module.weight.copy_(Wk)
    return clone


@pytest.mark.parametrize("method", METHODS)
def test_factored_model_matches_dense_reconstruction_and_full_rank_matches_original(tiny_model, method):
    loaded = tiny_model
    before = weights_checksum(loaded.model)
    kinds = comp.available_kinds(loaded.model)
    chunks = comp.calibration_chunks(loaded, comp.shipped_calibration_text(), 64)[:3]
    stats, n_tokens = comp.collect_activation_stats(loaded, chunks, kinds)
    fact = factorize(loaded.model, method, kinds, stats, calibration_tokens=n_tokens)
    ids = torch.tensor([list(range(3, 60))])

    def out(m):
        result = m(input_ids=ids)
        return result.logits if loaded.causal else result.last_hidden_state

    with torch.no_grad():
        original = out(loaded.model)
        full = {f.name: f.max_rank for f in fact.matrices}
        torch.testing.assert_close(
            out(comp.compressed_model(loaded, fact, full)), original, atol=1e-4, rtol=0
        )
        half = comp.choose_ranks(fact, comp.RankSetting(mode="share", share=0.5))
        factored = out(comp.compressed_model(loaded, fact, half))
        dense = out(_dense_copy_with(loaded.model, fact, half))
        torch.testing.assert_close(factored, dense, atol=1e-4, rtol=1e-4)
        assert (factored - original).abs().max() > 1e-3  # half rank really changed something
    assert weights_checksum(loaded.model) == before


def test_activation_stats_match_the_inputs_the_modules_see(load):
    loaded = load("tiny-gpt2")
    text = "Statistics of the inputs.\n\nA second paragraph, packed into the same chunk."
    chunks = comp.calibration_chunks(loaded, text, 64)
    stats, n_tokens = comp.collect_activation_stats(loaded, chunks, ("attn_q", "mlp_up", "mlp_down", "embed"))
    clone = copy.deepcopy(loaded.model)
    names = [
        "transformer.h.1.attn.c_attn",
        "transformer.h.0.mlp.c_fc",
        "transformer.h.0.mlp.c_proj",
        "lm_head",
    ]
    seen = record_inputs(clone, names, chunks)
    owner = dict(zip(names, names[:3] + ["transformer.wte"], strict=True))  # tied lm_head feeds the embedding
    for name in names:
        X = torch.cat(seen[name]).double().numpy()
        st = stats[owner[name]]
        assert st.n_tokens == n_tokens == X.shape[0]
        # float32 sums of |x|: the rtol carries them; the atol only serves means near 0 (at 1e-7, far below rtol's scale).
        np.testing.assert_allclose(st.abs_mean, np.abs(X).mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            st.gram.double().numpy(), X.T @ X, rtol=1e-4, atol=1e-4 * np.abs(X).max() ** 2
        )


def test_modules_reading_the_same_input_share_statistics(load):
    loaded = load("tiny-llama")
    stats, _ = comp.collect_activation_stats(
        loaded, [list(range(5, 40))], ("attn_q", "attn_k", "attn_v", "mlp_gate", "mlp_up", "mlp_down")
    )
    layer = "model.layers.0"
    assert stats[f"{layer}.self_attn.q_proj"] is stats[f"{layer}.self_attn.k_proj"]
    assert stats[f"{layer}.self_attn.q_proj"] is stats[f"{layer}.self_attn.v_proj"]
    assert stats[f"{layer}.mlp.gate_proj"] is stats[f"{layer}.mlp.up_proj"]
    assert stats[f"{layer}.mlp.down_proj"] is not stats[f"{layer}.mlp.up_proj"]


def test_perplexity_and_kl_against_independent_computations(load):
    loaded = load("tiny-gpt2")
    evalset = comp.make_eval_set(loaded, SAMPLE_TEXT, 64)
    ref = comp.reference(loaded, evalset)
    cap = capture(loaded, SAMPLE_TEXT, 64)
    assert ref.quality.perplexity == pytest.approx(cap.perplexity, rel=1e-5)
    fact = factorize(loaded.model, "svd", ("mlp_up", "mlp_down"))
    ranks = comp.choose_ranks(fact, comp.RankSetting(mode="share", share=0.25))
    model = comp.compressed_model(loaded, fact, ranks)
    q = comp.evaluate(loaded, model, evalset, ref)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([evalset.ids])).logits[0].double()
    p = torch.softmax(ref.logprobs.double(), -1).numpy()
    r = torch.softmax(logits, -1).numpy()
    assert q.kl == pytest.approx(rel_entr(p, r).sum(-1).mean(), rel=1e-4)
    nll = -torch.log_softmax(logits, -1)[torch.arange(len(evalset.ids) - 1), list(evalset.ids[1:])]
    assert q.perplexity == pytest.approx(float(torch.exp(nll.mean())), rel=1e-5)
    # The same model on the same ids: KL is second order in the logits' difference (float32 rounding at most).
    assert comp.evaluate(loaded, loaded.model, evalset, ref).kl == pytest.approx(0, abs=1e-9)


def test_encoder_quality_against_scipy(load):
    loaded = load("tiny-bert")
    evalset = comp.make_eval_set(loaded, SAMPLE_TEXT, 64)
    ref = comp.reference(loaded, evalset)
    fact = factorize(loaded.model, "svd", ("mlp_up",))
    model = comp.compressed_model(loaded, fact, comp.choose_ranks(fact, comp.RankSetting(share=0.2)))
    q = comp.evaluate(loaded, model, evalset, ref)
    batch = loaded.tokenizer(list(evalset.sentences), padding=True, return_tensors="pt")
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        text = model(input_ids=torch.tensor([evalset.ids])).last_hidden_state[0].double().mean(0)
        hidden = model(**batch).last_hidden_state.double()
    mask = batch["attention_mask"][..., None].double()
    emb = np.vstack([text.numpy()[None], ((hidden * mask).sum(1) / mask.sum(1)).numpy()])
    orig = ref.embeddings.double().numpy()
    cos = (emb * orig).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(orig, axis=1)
    assert q.embedding_cosine == pytest.approx(cos.mean(), rel=1e-6)

    def sims(E):
        E = E[1:] / np.linalg.norm(E[1:], axis=1, keepdims=True)
        return (E @ E.T)[np.triu_indices(len(E), 1)]

    # Spearman is a function of the ranks: the same ranks give the same statistic up to a few eps.
    assert q.similarity_spearman == pytest.approx(spearmanr(sims(orig), sims(emb)).statistic, rel=1e-9)
    # cos(x, x) = 1 up to the rounding of its dot product and norms (c d eps in float64).
    assert comp.evaluate(loaded, loaded.model, evalset, ref).embedding_cosine == pytest.approx(1, abs=1e-9)


def test_parameter_totals_follow_k_m_plus_n(load):
    loaded = load("tiny-gpt2")  # tied embedding: counted once, factored once
    fact = factorize(loaded.model, "svd", ("embed", "attn_v", "mlp_down"))
    ranks = comp.choose_ranks(fact, comp.RankSetting(share=0.5))
    evalset = comp.make_eval_set(loaded, SAMPLE_TEXT, 32)
    outcome = comp.evaluate_ranks(loaded, fact, ranks, evalset, comp.reference(loaded, evalset))
    total = sum(p.numel() for p in loaded.model.parameters())
    expected_removed = 0
    for mat in weight_matrices(loaded.model):
        if mat.name in ranks:
            m, n = mat.shape
            expected_removed += m * n - ranks[mat.name] * (m + n)
    assert outcome.params_model_before == total
    assert outcome.params_model_after == total - expected_removed
    module = comp.compressed_model(loaded, fact, ranks)
    assert isinstance(module.lm_head, LowRankLinear)  # the tied output layer follows the embedding


def test_bad_input_is_a_readable_error(load):
    loaded = load("tiny-gpt2")
    with pytest.raises(InputError):
        comp.make_eval_set(loaded, "   ", 32)
    with pytest.raises(InputError):
        comp.calibration_chunks(loaded, "\n\n")
    with pytest.raises(ValueError):
        factorize_matrix(torch.eye(3), "magic")


def test_shipped_assets_are_plain_text_of_useful_size():
    assert len(comp.shipped_calibration_text().split()) > 800
    assert len(comp.heldout_text().split()) > 400
    sentences = comp.sentence_set()
    assert len(sentences) >= 30 and len(set(sentences)) == len(sentences)
