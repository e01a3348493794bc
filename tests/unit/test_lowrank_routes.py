"""The Gram route of the factorization against numpy's SVD, under tolerances from conditioning: eigenvalues of
the float64 Gram matrix carry an absolute error ~ n eps sigma_1^2 (backward stability of the product and of
eigh, Weyl), so sigma_i^2 is compared with that bound and the rank-k subspace with the Davis-Kahan bound
n eps sigma_1^2 / (sigma_k^2 - sigma_{k+1}^2); and the fallback where squaring would lose the small ones."""

import numpy as np
import pytest
import torch

from explorer.analysis.lowrank import METHODS, ActivationStats, factorize_matrix

EPS = np.finfo(np.float64).eps
SHAPES = [(24, 40), (40, 24), (32, 32), (96, 48), (48, 96)]


def _random(m, n, seed=0, decay=0.93):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    r = min(m, n)
    S = np.sort(decay ** np.arange(r) * (1 + rng.random(r)))[::-1]
    return ((U[:, :r] * S) @ V[:, :r].T).astype(np.float32).astype(np.float64)  # exactly float32 values


def _stats(n, tokens=300, seed=1):
    rng = np.random.default_rng(seed)
    X = (
        (rng.standard_normal((tokens, n)) * np.exp(rng.normal(0, 1.2, n)))
        .astype(np.float32)
        .astype(np.float64)
    )
    G = torch.from_numpy(X.T @ X).float()
    return ActivationStats(np.abs(X).mean(0), G, tokens)


def _reference_matrix(W, method, stats, ridge=1e-2, alpha=0.5):
    """M of each method built in numpy float64 from the same inputs (Cholesky for SVD-LLM, as the paper)."""
    if method == "asvd":
        s = np.power(stats.abs_mean, alpha)
        return W * np.maximum(s, 1e-6 * s.max())[None, :]
    if method == "svdllm":
        G = stats.gram.double().numpy()
        n = G.shape[0]
        return W @ np.linalg.cholesky((G + G.T) / 2 + ridge * np.trace(G) / n * np.eye(n))
    return W


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gram_route_matches_numpy_svd_within_conditioning(method, shape):
    m, n = shape
    W, stats = _random(m, n), _stats(n)
    f = factorize_matrix(torch.from_numpy(W).float(), method, stats, route="gram")
    M = _reference_matrix(W, method, stats)
    Un, Sn, _ = np.linalg.svd(M, full_matrices=False)
    size = max(m, n)
    bound2 = 10 * size * EPS * Sn[0] ** 2  # absolute error of sigma_i^2 through the Gram matrix
    assert np.all(np.abs(f.sigma**2 - Sn**2) <= bound2)
    U = f.U.double().numpy()
    # U is orthonormal to float32 rounding whatever the route (it is stored in float32).
    np.testing.assert_allclose(U.T @ U, np.eye(U.shape[1]), atol=10 * size * np.finfo(np.float32).eps)
    for k in (1, min(m, n) // 4, min(m, n) // 2, int(m * n / (m + n))):
        gap = Sn[k - 1] ** 2 - Sn[k] ** 2 if k < len(Sn) else Sn[k - 1] ** 2
        P, Pn = U[:, :k] @ U[:, :k].T, Un[:, :k] @ Un[:, :k].T
        # Davis-Kahan for the float64 Gram, plus the float32 storage of U (~ sqrt(k) eps32 per column).
        tol = bound2 / gap + 10 * np.sqrt(k) * np.finfo(np.float32).eps
        assert np.linalg.norm(P - Pn, 2) <= tol, (k, np.linalg.norm(P - Pn, 2), tol)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", SHAPES)
def test_both_routes_give_the_same_errors(method, shape):
    m, n = shape
    W, stats = _random(m, n, seed=2), _stats(n, seed=3)
    Wt = torch.from_numpy(W).float()
    gram = factorize_matrix(Wt, method, stats, route="gram")
    direct = factorize_matrix(Wt, method, stats, route="direct")
    # The tails are sums of squared float32 factor entries: agreement to 1e-5 of the whole (float32 rounding
    # of U and B, ~1e-7 per entry, summed over up to 96 x 96 entries) for every rank.
    np.testing.assert_allclose(gram.weight_tail, direct.weight_tail, atol=1e-5 * direct.weight_tail[0])
    np.testing.assert_allclose(gram.output_tail, direct.output_tail, atol=1e-5 * direct.output_tail[0])
    np.testing.assert_allclose(gram.plain_tail, direct.plain_tail, atol=1e-5 * direct.plain_tail[0])


def test_ill_conditioned_tall_matrix_takes_the_direct_route_and_stays_exact():
    rng = np.random.default_rng(5)
    m, n = 60, 20
    U, _ = np.linalg.qr(rng.standard_normal((m, n)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    S = np.logspace(0, -9, n)  # sigma_min / sigma_max = 1e-9: its square is below float64's eps
    W = (U * S) @ V.T
    f = factorize_matrix(torch.from_numpy(W).float(), "svd", route="gram")
    Q = f.U.double().numpy()
    np.testing.assert_allclose(Q.T @ Q, np.eye(n), atol=1e-5)
    np.testing.assert_allclose(f.reconstruct(n).double().numpy(), W, atol=1e-6)
    Sn = np.linalg.svd(f.U.double().numpy() @ f.B.double().numpy(), compute_uv=False)
    np.testing.assert_allclose(f.sigma[:5], Sn[:5], rtol=1e-5)


def test_rank_deficient_wide_matrix_keeps_an_orthonormal_basis():
    W = np.zeros((16, 40))
    W[:4] = np.random.default_rng(6).standard_normal((4, 40))  # rank 4
    f = factorize_matrix(torch.from_numpy(W).float(), "svd", route="gram")
    Q = f.U.double().numpy()
    np.testing.assert_allclose(Q.T @ Q, np.eye(16), atol=1e-6)
    np.testing.assert_allclose(f.reconstruct(4).double().numpy(), W, atol=1e-5)
    assert f.weight_error(4) < 1e-5


def test_unknown_route_is_refused():
    with pytest.raises(ValueError):
        factorize_matrix(torch.eye(3), "svd", route="magic")
