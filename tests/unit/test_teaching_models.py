"""The maths of the Learn walkthroughs on dynamics and models (explorer/analysis/teaching_models.py, lora.py) and
their exercises, against numpy/scipy or a theorem. Exercise answers are recomputed here from the numbers the
question shows the student (parsed from its text), never taken from the exercise itself."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.csgraph
import scipy.stats
import torch

from explorer.analysis import teaching_models as tm
from explorer.spectra.attention_spectra import stationary_distribution
from tests.tolerances import backward_error, eps, symmetric_tolerance

SEEDS = [1, 2, 3, 7, 42, 1234]


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def _check(exercise, right: float, wrong: float) -> None:
    assert exercise.check(repr(float(right))).right, (exercise.question, right)
    assert not exercise.check(repr(float(wrong))).right, (exercise.question, wrong)


# ------------------------------------------------------------------------------------------------ Markov


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stationary_distribution_matches_power_iteration_and_the_solver(causal, seed):
    A = tm.attention_like(9, 2.0, causal=causal, seed=seed)
    chain = tm.markov_chain(A, 0.85, steps=10)
    P = 0.85 * A + 0.15 / 9
    p = np.full(9, 1 / 9)
    for _ in range(400):  # the error shrinks at least like 0.85^k (|lambda_2| <= d): 0.85^400 ~ 1e-28
        p = p @ P
    np.testing.assert_allclose(chain.pi, p, atol=1e-12)
    np.testing.assert_allclose(chain.pi @ P, chain.pi, atol=1e-13)
    solved = stationary_distribution(torch.from_numpy(A), 0.85).numpy()  # a linear solve, another route
    np.testing.assert_allclose(chain.pi, solved, atol=1e-12)
    assert abs(chain.eigvals[0] - 1) < 1e-12  # Perron root
    assert chain.lambda2 <= 0.85 + 1e-12  # Haveliwala & Kamvar: |lambda_2(P)| <= d


def test_reversible_chain_mixes_within_the_spectral_bound():
    # P = D^-1 W with W symmetric is reversible: d_x(k) <= 0.5 sqrt((1 - pi_x) / pi_x) lambda_*^k
    # (Levin, Peres & Wilmer, Markov chains and mixing times, Theorem 12.4 and (12.13)).
    rng = np.random.default_rng(5)
    W = rng.random((7, 7))
    W = W + W.T
    P = W / W.sum(1, keepdims=True)
    chain = tm.markov_chain(P, damping=1.0, steps=30)
    pi = W.sum(1) / W.sum()
    np.testing.assert_allclose(chain.pi, pi, atol=1e-13)
    lam_star = np.sort(np.abs(np.linalg.eigvals(P)))[-2]
    assert chain.lambda2 == pytest.approx(lam_star, abs=1e-12)
    k = np.arange(31)
    bound = 0.5 * np.sqrt((1 - pi.min()) / pi.min()) * lam_star**k
    assert np.all(chain.distances <= bound + 1e-12)
    assert np.all(np.diff(chain.distances) <= 1e-15)  # the worst-case distance never grows
    exact = [0.5 * np.abs(np.linalg.matrix_power(P, j) - pi).sum(1).max() for j in (0, 5, 30)]
    np.testing.assert_allclose(chain.distances[[0, 5, 30]], exact, atol=1e-13)


@pytest.mark.parametrize("seed", SEEDS)
def test_markov_exercises(seed):
    from explorer.ui.learn import markov

    stationary_ex, rate_ex = markov.exercises(seed)
    numbers = _numbers(stationary_ex.question.split("P =")[1])[:4]
    P = np.array(numbers).reshape(2, 2)
    vals, vecs = np.linalg.eig(P.T)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    pi = pi / pi.sum()
    _check(stationary_ex, pi[0], pi[0] + 0.05)
    lam2 = np.sort(np.abs(np.linalg.eigvals(P)))[0]
    _check(rate_ex, lam2, lam2 + 0.05)


# --------------------------------------------------------------------------------------------- Laplacian


def _random_graph(n: int, seed: int) -> np.ndarray:
    W = np.random.default_rng(seed).random((n, n))
    W = W + W.T
    np.fill_diagonal(W, 0)
    return W


@pytest.mark.parametrize("normalized", [False, True])
def test_laplacian_matches_scipy(normalized):
    W = _random_graph(8, 3)
    expected = scipy.sparse.csgraph.laplacian(W, normed=normalized)
    np.testing.assert_allclose(tm.laplacian(W, normalized), expected, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fiedler_vector_matches_scipy_eigh(seed):
    W = _random_graph(10, seed)
    split = tm.fiedler_split(W)
    L = scipy.sparse.csgraph.laplacian(W)
    vals, vecs = scipy.linalg.eigh(L)
    tol = symmetric_tolerance(L)
    np.testing.assert_allclose(split.eigvals, vals, atol=tol)
    # The eigenvector's error is about tol / gap (Davis-Kahan); the gap to lambda_1 and lambda_3 is O(1) here.
    gap = min(vals[1] - vals[0], vals[2] - vals[1])
    assert abs(abs(split.fiedler @ vecs[:, 1]) - 1) < 10 * tol / gap
    side = split.fiedler >= 0
    assert split.cut == pytest.approx(W[np.ix_(side, ~side)].sum(), rel=1e-12)


def test_normalised_fiedler_is_the_generalised_eigenvector():
    # Shi-Malik: L v = lambda D v; its second eigenvector is D^-1/2 times that of I - D^-1/2 W D^-1/2.
    W = _random_graph(9, 4)
    split = tm.fiedler_split(W, normalized=True)
    L = scipy.sparse.csgraph.laplacian(W)
    vals, vecs = scipy.linalg.eigh(L, np.diag(W.sum(1)))
    np.testing.assert_allclose(split.eigvals, vals, atol=1e-12)
    v = vecs[:, 1] / np.linalg.norm(vecs[:, 1])
    assert abs(abs(split.fiedler @ v) - 1) < 1e-10


@pytest.mark.parametrize(("a", "b"), [(5, 4), (3, 7), (2, 2)])
def test_two_cliques_are_split_by_the_bridge(a, b):
    split = tm.fiedler_split(tm.two_cliques(a, b, 1.0))
    assert len(set(split.side[:a])) == 1 and len(set(split.side[a:])) == 1 and split.side[0] != split.side[-1]
    assert split.cut == pytest.approx(1.0)
    apart = tm.fiedler_split(tm.two_cliques(a, b, 0.0))
    assert np.sum(np.abs(apart.eigvals) < 1e-10) == 2  # one zero eigenvalue per connected component


@pytest.mark.parametrize("seed", SEEDS)
def test_laplacian_exercises(seed):
    from explorer.ui.learn import laplacian

    trace_ex, comp_ex = laplacian.exercises(seed)
    W = np.zeros((4, 4))
    for i, j, w in re.findall(r"(\d)–(\d): (\d+)", trace_ex.question):
        W[int(i), int(j)] = W[int(j), int(i)] = float(w)
    total = np.linalg.eigvalsh(scipy.sparse.csgraph.laplacian(W)).sum()
    _check(trace_ex, total, total + 1)
    sizes = [int(s) for s in re.search(r"with ([\d, ]+) nodes", comp_ex.question).group(1).split(",")]
    W = scipy.linalg.block_diag(*[np.ones((s, s)) - np.eye(s) for s in sizes])
    zeros = int(np.sum(np.abs(np.linalg.eigvalsh(scipy.sparse.csgraph.laplacian(W))) < 1e-9))
    right = comp_ex.choices.index(str(zeros))
    assert comp_ex.check(right).right and not comp_ex.check((right + 1) % len(comp_ex.choices)).right


# --------------------------------------------------------------------------------------------- recurrent


@pytest.mark.parametrize(("rho", "coupling"), [(0.9, 0.0), (0.9, 2.0), (1.1, 1.0)])
def test_recurrent_powers_against_numpy_and_their_bounds(rho, coupling):
    from explorer.analysis.teaching import nonnormal_matrix

    W = nonnormal_matrix(5, rho, coupling)
    rp = tm.recurrent_powers(W, steps=30)
    assert rp.rho == pytest.approx(np.abs(np.linalg.eigvals(W)).max(), abs=1e-9)  # distinct eigenvalues
    for t in (0, 1, 7, 30):
        Wt = np.linalg.matrix_power(W, t)
        assert rp.norms[t] == pytest.approx(np.linalg.norm(Wt, 2), rel=1e-9)
    assert np.all(rp.rho_powers <= rp.norms * (1 + 1e-9))
    assert np.all(rp.norms <= rp.sigma_powers * (1 + 1e-9))
    assert rp.verdict == ("vanishes" if rho < 1 else "explodes")
    if coupling == 0:  # a normal matrix: ||W^t|| = rho^t exactly
        np.testing.assert_allclose(rp.norms, rp.rho_powers, rtol=1e-9)
        assert rp.normal_gap < 1e-12
    else:
        assert rp.normal_gap > 1e-3


def test_ov_core_has_the_nonzero_eigenvalues_of_w_ov(load):
    model = load("tiny-gpt2").model
    anatomy = load("tiny-gpt2").anatomy
    hw = anatomy.head_weights(model, 1)
    core = tm.ov_core(model, 1, 2)
    full = (hw.W_V[2] @ hw.W_O[2]).numpy()  # (d_model, d_model), rank d_head
    big = np.sort(np.abs(np.linalg.eigvals(full)))[::-1][: core.shape[0]]
    # AB and BA share their nonzero eigenvalues; tolerance: backward error of the full matrix, well separated
    np.testing.assert_allclose(
        np.sort(np.abs(np.linalg.eigvals(core)))[::-1], big, atol=1e3 * backward_error(full)
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_recurrent_exercises(seed):
    from explorer.ui.learn import recurrent

    radius_ex, fate_ex = recurrent.exercises(seed)
    a, s, zero, b = _numbers(radius_ex.question.split("W =")[1])[:4]
    W = np.array([[a, s], [zero, b]])
    rho = np.abs(np.linalg.eigvals(W)).max()
    _check(radius_ex, rho, rho + 0.1)
    right = 0 if rho < 1 else 1
    assert fate_ex.check(right).right and not fate_ex.check(1 - right).right


# ------------------------------------------------------------------------------------------- Hessian


def test_gradient_descent_diverges_exactly_past_two_over_lambda_max():
    H = tm.quadratic_hessian(1.0, 10.0, 30.0)
    lam = np.linalg.eigvalsh(H)
    limit = 2 / lam[-1]
    below = tm.quadratic_descent(H, (1.0, 1.0), 0.99 * limit, steps=400)
    above = tm.quadratic_descent(H, (1.0, 1.0), 1.01 * limit, steps=400)
    assert below.eta_max == pytest.approx(limit) and not below.diverges and above.diverges
    assert below.losses[-1] < 1e-6 * below.losses[0]
    assert above.losses[-1] > 1e3 * above.losses[0]
    # In the eigenbasis each coordinate is multiplied by (1 - eta lambda_i) per step.
    k = 17
    expected = (below.path[0] @ below.eigvecs) * (1 - below.eta * lam) ** k
    np.testing.assert_allclose(below.coords[k], expected, atol=1e-12)
    assert below.kappa == pytest.approx(10.0)


def test_kde_at_zero_matches_scipy_gaussian_kde():
    rng = np.random.default_rng(0)
    lam = np.concatenate([np.zeros(5), rng.exponential(1.0, 30)])
    w = rng.random(lam.size)
    sigma = 0.2
    kde = scipy.stats.gaussian_kde(lam, weights=w, bw_method=1.0)  # factor 1: covariance = data covariance
    kde.set_bandwidth(sigma / np.sqrt(kde.covariance[0, 0]))  # scipy's kernel std = factor x data std
    x = np.array([0.0, 0.3, 2.0])
    np.testing.assert_allclose(tm.kde_at(x, lam, w, sigma=sigma), kde(x), rtol=1e-12)


def test_block_curvature_lambda_max_matches_the_exact_hessian(load):
    from explorer.analysis import curvature as C

    loaded = load("tiny-gpt2")
    name = "transformer.h.1.attn.c_proj.bias"
    result = tm.block_curvature(loaded, "The quick brown fox jumps over the lazy dog.", f"param:{name}",
                                max_matvec=30, density_steps=10)  # fmt: skip
    spec = C.make_loss(loaded, "The quick brown fox jumps over the lazy dog.", 64)
    model64 = copy.deepcopy(loaded.model).double()  # a copy: the session's model is never changed
    p0 = dict(model64.named_parameters())[name].detach()

    def loss(p):
        z, y = C.scores_and_targets(model64, spec, {name: p})
        return torch.nn.functional.cross_entropy(z, y)

    H = torch.autograd.functional.hessian(loss, p0).numpy()
    exact = np.linalg.eigvalsh(H)[-1]
    # A Ritz value with residual r has an eigenvalue within r; float32 products add ~eps32 ||H|| n.
    assert abs(result.lambda_max - exact) <= result.residual + 1e3 * eps(np.float32) * abs(exact)
    assert result.eta_max == pytest.approx(2 / result.lambda_max)
    expected0 = tm.kde_at(0.0, result.nodes, result.weights, sigma=result.sigma)[0]
    assert result.kde0 == pytest.approx(expected0)


@pytest.mark.parametrize("seed", SEEDS)
def test_hessian_exercises(seed):
    from explorer.ui.learn import hessian

    limit_ex, kappa_ex = hessian.exercises(seed)
    h = _numbers(limit_ex.question.split("H =")[1])[:4]
    lam = np.linalg.eigvalsh(np.array(h).reshape(2, 2))
    # H is shown to 3 decimals: its eigenvalues are off by at most ~1e-3, far inside the tolerances.
    _check(limit_ex, 2 / lam[-1], 2 / lam[-1] + 0.01)
    _check(kappa_ex, lam[-1] / lam[0], lam[-1] / lam[0] + 0.2)


# ---------------------------------------------------------------------------------------------- LoRA


def _w(m: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    s = np.linspace(5, 0.5, n)
    return U @ np.diag(s) @ V.T, U, s, V


def test_lora_update_in_ws_top_subspace():
    W, U, s, V = _w(12, 8)
    r = 3
    dW = U[:, :r] @ np.diag([0.3, 0.2, 0.1]) @ V[:, :r].T
    sub = tm.lora_subspace(W, dW, r)
    assert sub.top_share == pytest.approx(1.0, abs=1e-12)
    top = np.sqrt(np.sum(s[:r] ** 2))
    assert sub.projected == pytest.approx(top, rel=1e-12) and sub.w_top == pytest.approx(top, rel=1e-12)
    assert sub.amplification == pytest.approx(np.linalg.norm(dW) / top, rel=1e-12)


def test_lora_update_off_ws_top_subspace_is_amplified():
    W, U, s, V = _w(12, 8)
    r = 2
    dW = U[:, 4:6] @ V[:, 4:6].T  # W's 5th and 6th directions, unit singular values
    sub = tm.lora_subspace(W, dW, r)
    assert sub.top_share == pytest.approx(0.0, abs=1e-12)
    assert sub.projected == pytest.approx(np.sqrt(s[4] ** 2 + s[5] ** 2), rel=1e-10)
    assert sub.amplification == pytest.approx(np.sqrt(2) / np.sqrt(s[4] ** 2 + s[5] ** 2), rel=1e-10)
    assert sub.w_random < sub.w_top  # no r directions hold more of W than its top r (Ky Fan)


def test_lora_finetune_leaves_the_model_unchanged(load):
    from explorer.analysis.curvature import make_loss
    from explorer.analysis.lora import finetune_lora

    loaded = load("tiny-gpt2")
    before = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
    flags = {n: p.requires_grad for n, p in loaded.model.named_parameters()}
    spec = make_loss(loaded, "The quick brown fox jumps over the lazy dog. Then the fox sleeps.", 32)
    run = finetune_lora(loaded.model, spec, rank=2, steps=3, lr=1e-2)
    after = dict(loaded.model.named_parameters())
    assert set(after) == set(before)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert {n: p.requires_grad for n, p in after.items()} == flags
    assert not any("lora" in n for n, _ in loaded.model.named_modules())
    assert run.names == ("transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn")
    assert len(run.losses) == 4 and np.all(np.isfinite(run.losses))
    assert np.all(run.delta_norm > 0) and np.all((run.top_share >= 0) & (run.top_share <= 1 + 1e-12))


@pytest.mark.parametrize("seed", SEEDS)
def test_lora_exercises(seed):
    from explorer.ui.learn import lora

    norm_ex, params_ex = lora.exercises(seed)
    b, a = (
        np.array([float(x) for x in v.split(",")])
        for v in re.findall(r"\[([-\d, ]+)\]", norm_ex.question)[:2]
    )
    norm = np.linalg.norm(np.outer(b, a))
    _check(norm_ex, norm, norm + 0.1)
    r, m, n = _numbers(params_ex.question)[:3]
    count = np.zeros((int(m), int(r))).size + np.zeros((int(r), int(n))).size
    _check(params_ex, count, count + 1)


# ----------------------------------------------------------------------------------------- Lipschitz


@pytest.mark.parametrize("activation", ["none", "relu", "tanh"])
@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_measured_amplification_never_exceeds_the_product_bound(activation, scale):
    mats = tm.random_stack(10, 12, scale, seed=3)
    ls = tm.lipschitz_stack(mats, activation)
    np.testing.assert_allclose(
        ls.sigma_max, [np.linalg.svd(M, compute_uv=False)[0] for M in mats], rtol=1e-12
    )
    np.testing.assert_allclose(ls.bound, np.cumprod(ls.sigma_max), rtol=1e-12)
    product = np.linalg.multi_dot(mats[::-1])
    assert ls.linear_norm[-1] == pytest.approx(np.linalg.norm(product, 2), rel=1e-10)
    slack = 1 + 1e3 * eps()  # rounding in the forward passes
    assert np.all(ls.linear_norm <= ls.bound * slack)
    assert np.all(ls.amplification <= ls.bound[:, None] * slack)
    if activation == "none":
        assert np.all(ls.amplification <= ls.linear_norm[:, None] * slack)


def test_spectral_normalisation_makes_every_layer_one_lipschitz():
    ls = tm.lipschitz_stack(tm.random_stack(6, 10, 2.0, normalize=True), "relu")
    np.testing.assert_allclose(ls.sigma_max, 1.0, rtol=1e-12)
    assert np.all(ls.amplification <= 1 + 1e-12)


@pytest.mark.parametrize("model_id", ["tiny-gpt2", "tiny-bert"])
def test_model_lipschitz_against_numpy_svd(load, model_id):
    loaded = load(model_id)
    ml = tm.model_lipschitz(loaded.model)
    for layer in range(loaded.anatomy.n_layers):
        for kind, slot in loaded.anatomy.layer_matrices(layer).items():
            W = slot.weight(loaded.model).double().numpy()
            expected = np.linalg.svd(W, compute_uv=False)[0]
            assert ml.sigma[layer, ml.kinds.index(kind)] == pytest.approx(expected, rel=1e-10)
    col = dict(zip(ml.kinds, ml.sigma.T, strict=True))
    path = 1 + col["attn_v"] * col["attn_o"] + col["mlp_up"] * col["mlp_down"]
    np.testing.assert_allclose(ml.log10_bound, np.cumsum(np.log10(path)), rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_lipschitz_exercises(seed):
    from explorer.ui.learn import lipschitz

    bound_ex, tight_ex = lipschitz.exercises(seed)
    theta, a1, a2, b1, b2 = (float(x) for x in re.findall(r"R\((\d+)°\)·diag\(([\d.]+), ([\d.]+)\).*?diag\(([\d.]+), ([\d.]+)\)", bound_ex.question)[0])  # fmt: skip
    t = np.deg2rad(theta)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    A, B = R @ np.diag([a1, a2]), np.diag([b1, b2]) @ R.T
    bound = np.linalg.norm(A, 2) * np.linalg.norm(B, 2)
    _check(bound_ex, bound, bound + 0.5)
    A0, B0 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])  # the counterexample: the bound is 1, BA = 0
    assert np.linalg.norm(B0 @ A0, 2) < np.linalg.norm(B0, 2) * np.linalg.norm(A0, 2)
    assert tight_ex.check(0).right and not tight_ex.check(1).right


def test_weight_near_zero_counts_the_weight_of_small_nodes():
    nodes = np.array([[-0.01, 0.02, 0.5, 3.0], [0.0, -2.0, 0.04, 1.0]])
    weights = np.array([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    expected = (0.1 + 0.2 + 0.25 + 0.25) / 2.0
    assert tm.weight_near_zero(nodes, weights, 0.05) == pytest.approx(expected)
