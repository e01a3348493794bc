"""Attention spectral maths on synthetic row-stochastic matrices, against numpy/scipy and theorems."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import softmax
from scipy.stats import entropy as scipy_entropy

from explorer.spectra import attention_spectra as spec
from explorer.spectra import ranks
from tests.tolerances import (
    assert_eigvals_close,
    backward_error,
    eigenvalue_condition_numbers,
    nearest_eigenvalue_tolerance,
    pagerank_residual_tolerance,
    perron_root_tolerance,
    solve_tolerance,
    sum_rtol,
    summation_tolerance,
    symmetric_tolerance,
    trace_tolerance,
)


def stochastic(n, *, causal=False, seed=0, scale=2.0, batch=None):
    """softmax(scale * Gaussian logits) rows (masked above the diagonal when causal); also returns the logits."""
    rng = np.random.default_rng(seed)
    shape = (n, n) if batch is None else (batch, n, n)
    logits = scale * rng.standard_normal(shape)
    if causal:
        logits = np.where(np.tril(np.ones((n, n), dtype=bool)), logits, -np.inf)
    return softmax(logits, axis=-1), logits


def t(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def assert_same_multiset(a, b, atol):
    """Two lists of complex numbers are equal up to order: optimal matching, then the largest distance."""
    a, b = np.asarray(a, dtype=complex), np.asarray(b, dtype=complex)
    assert a.shape == b.shape
    cost = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].max() <= atol, cost[rows, cols].max()


def arnoldi_allowed(A, values):
    """Converged Arnoldi Ritz values of A against geev: each has residual <= KRYLOV_TOL ||A||_inf."""
    return nearest_eigenvalue_tolerance(A, values, residual=spec.KRYLOV_TOL * np.abs(A).sum(axis=1).max())


# --- orderings and structure -------------------------------------------------------------------------------


def test_sort_by_modulus_orders_modulus_then_real_then_conjugate_pairs():
    values = torch.tensor([0.5j, -1.0, 0.3 - 0.4j, 1.0, 0.3 + 0.4j, 0.1], dtype=torch.complex128)
    out = spec.sort_by_modulus(values).numpy()
    np.testing.assert_array_equal(out, [1.0, -1.0, 0.3 + 0.4j, 0.3 - 0.4j, 0.5j, 0.1])


def test_sort_by_real_descending():
    values = torch.tensor([0.1, 2.0 - 1j, 2.0 + 1j, -3.0], dtype=torch.complex128)
    np.testing.assert_array_equal(spec.sort_by_real(values).numpy(), [2 + 1j, 2 - 1j, 0.1, -3.0])


def test_is_lower_triangular():
    causal, _ = stochastic(6, causal=True)
    full, _ = stochastic(6)
    result = spec.is_lower_triangular(t(np.stack([causal, full])))
    assert result.tolist() == [True, False]


def test_as_float64_copies_read_only_input():
    A, _ = stochastic(5)
    A = A.astype(np.float32)
    A.setflags(write=False)
    out = spec.as_float64(A)
    out[0, 0] = 123.0
    assert A[0, 0] != 123.0 and out.dtype == torch.float64


# --- eigenvalues --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_eigvals_match_numpy_trace_and_perron_root(causal):
    A, _ = stochastic(40, causal=causal, batch=3, seed=1)
    lam = spec.eigvals(t(A)).numpy()
    for a, values in zip(A, lam, strict=True):
        assert_eigvals_close(values, a)  # non-normal: kappa(lambda) c n eps ||A|| each
        # Sorted by torch's |z|, checked with numpy's, which may differ by an ulp (2.2e-16 at |z| <= 1).
        assert np.all(np.diff(np.abs(values)) <= 1e-15)  # sorted by modulus, descending
        assert values.sum().real == pytest.approx(
            np.trace(a), abs=trace_tolerance(a)
        )  # trace = sum of eigenvalues
        assert values[0] == pytest.approx(
            1.0, abs=perron_root_tolerance(a)
        )  # Perron root of a row-stochastic matrix
        # rho(A + E) <= ||A + E||_inf <= ||A||_inf + sqrt(n) ||E||_2, with ||A||_inf = 1 up to the row-sum rounding.
        assert np.abs(values).max() <= np.abs(a).sum(1).max() + np.sqrt(len(a)) * backward_error(a)


def test_causal_eigenvalues_are_the_diagonal_and_the_full_solver_agrees():
    A, _ = stochastic(30, causal=True, seed=2)
    lam = spec.eigvals(t(A)).numpy()
    assert_same_multiset(lam, np.diag(A), 0.0)  # shortcut: exactly the diagonal (a copy)
    assert_eigvals_close(np.linalg.eigvals(A), A, expected=lam)  # and the full eigensolver says the same


def test_arnoldi_top_eigvals_match_geev():
    A, _ = stochastic(200, seed=3, scale=3.0)
    top = spec.arnoldi_top_eigvals(A, 3)
    ref = spec.sort_by_modulus(torch.from_numpy(eigenvalue_condition_numbers(A)[0])).numpy()[:3]  # geev
    assert top is not None
    nearest, allowed = arnoldi_allowed(A, top)
    assert np.all(np.abs(top - nearest) <= allowed)  # converged Ritz values, kappa * (residual + rounding)
    np.testing.assert_array_equal(
        np.abs(nearest), np.abs(ref)
    )  # and they are geev's top three (same numbers)
    assert top[0] == pytest.approx(1.0, abs=allowed[0] + perron_root_tolerance(A))


def test_arnoldi_exact_on_an_invariant_krylov_space():
    # Every row the same: A = 1 w^T has rank one, eigenvalues {1, 0, ..., 0}; the Krylov space is 2-dimensional.
    w = softmax(np.random.default_rng(4).standard_normal(150))
    A = np.tile(w, (150, 1))
    top = spec.arnoldi_top_eigvals(A, 2)
    # An invariant Krylov space: the Ritz values are exact up to the Gram-Schmidt rounding c n eps ||A||, times
    # kappa(1) = ||1|| ||w|| / (w . 1) = sqrt(n) ||w|| for the eigenvalue 1 (right vector 1, left vector w).
    kappa = np.sqrt(len(w)) * np.linalg.norm(w)
    np.testing.assert_allclose(np.abs(top), [1.0, 0.0], rtol=0, atol=kappa * backward_error(A))


def test_arnoldi_reports_non_convergence_instead_of_a_wrong_value():
    # A clustered spectrum (moduli 1 and a ring near 0.95) cannot converge in 6 Krylov steps.
    n = 120
    rng = np.random.default_rng(5)
    angles = rng.uniform(0.2, np.pi, (n - 1) // 2)
    blocks = [np.array([[1.0]])]
    for angle in angles:
        r = 0.95 - 0.001 * rng.random()
        blocks.append(r * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]))
    D = np.zeros((n, n))
    i = 0
    for block in blocks:
        k = block.shape[0]
        D[i : i + k, i : i + k] = block
        i += k
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    assert spec.arnoldi_top_eigvals(Q @ D @ Q.T, 2, max_dim=6, checkpoints=(6,)) is None


def test_second_eigval_modulus_routes_and_values():
    n = 128
    positive, _ = stochastic(n, seed=6, batch=2)
    causal, _ = stochastic(n, causal=True, seed=7)
    with_zeros = positive[0].copy()
    with_zeros[0, 1:] = 0.0
    with_zeros[0, 0] = 1.0  # token 0 attends only to itself: a zero block, so not strictly positive
    A = np.stack([positive[0], positive[1], causal, with_zeros])
    lam2, method = spec.second_eigval_modulus(t(A))
    assert method.tolist() == [spec.METHOD_KRYLOV, spec.METHOD_KRYLOV, spec.METHOD_DIAGONAL, spec.METHOD_FULL]
    ref = [np.sort(np.abs(np.linalg.eigvals(a)))[-2] for a in A]
    # Krylov: kappa(lambda_2) (residual + rounding); diagonal: exact against geev; full: geev against geev.
    allowed = [arnoldi_allowed(a, [ref_value * 1.0])[1][0] for a, ref_value in zip(A, ref, strict=True)]
    assert np.all(np.abs(lam2.numpy() - ref) <= allowed)


def test_second_eigval_modulus_small_matrices_use_the_full_solver():
    A, _ = stochastic(10, seed=8, batch=2)
    lam2, method = spec.second_eigval_modulus(t(A))
    assert (method == spec.METHOD_FULL).all()
    np.testing.assert_allclose(  # the same numpy geev on the same matrices: equal up to the sort
        lam2.numpy(), [np.sort(np.abs(np.linalg.eigvals(a)))[-2] for a in A], atol=1e-12
    )


# --- singular values ----------------------------------------------------------------------------------------


def test_singular_values_gram_match_svd_to_the_documented_tolerance():
    A, _ = stochastic(256, seed=9, batch=3, scale=4.0)
    A = A.astype(np.float32).astype(np.float64)  # as captured: float32 values
    fast = spec.singular_values_gram(t(A)).numpy()
    ref = np.linalg.svd(A, compute_uv=False)
    # Forming A A^T and eigvalsh each err by c n eps sigma_1^2 (Weyl), so the Gram eigenvalue lambda_i = sigma_i^2
    # is off by delta = 2 c n eps sigma_1^2 and sigma_i by min(sqrt(delta), delta / sigma_i): relative
    # ~ eps (sigma_1 / sigma_i)^2, the smallest read as noise of ~sqrt(eps) * sigma_1. Plus the SVD's own error.
    s1 = ref[:, :1]
    delta = 2 * symmetric_tolerance(np.eye(256)) * s1**2
    allowed = np.minimum(np.sqrt(delta), delta / ref) + symmetric_tolerance(np.eye(256)) * s1
    assert np.all(np.abs(fast - ref) <= allowed)
    np.testing.assert_allclose(ranks.effective_rank(fast), ranks.effective_rank(ref), rtol=1e-4)
    # Stable rank sum(sigma^2) / sigma_1^2: the trace of the Gram matrix moves by n delta at most, sigma_1^2 by delta.
    rtol = (256 * delta / (ref**2).sum(axis=1, keepdims=True) + 2 * delta / s1**2).max()
    np.testing.assert_allclose(ranks.stable_rank(fast), ranks.stable_rank(ref), rtol=rtol)
    eps32 = np.finfo(np.float32).eps
    np.testing.assert_array_equal(
        ranks.numerical_rank(fast, (256, 256), eps=eps32), ranks.numerical_rank(ref, (256, 256), eps=eps32)
    )


def test_singular_values_full_svd():
    A, _ = stochastic(30, seed=10)
    np.testing.assert_allclose(  # two SVDs (torch's and numpy's LAPACK): Weyl, both sides
        spec.singular_values(t(A)).numpy(),
        np.linalg.svd(A, compute_uv=False),
        rtol=0,
        atol=2 * symmetric_tolerance(A),
    )


# --- rows ---------------------------------------------------------------------------------------------------


def test_row_entropy_against_scipy_and_extremes():
    A, _ = stochastic(12, seed=11)
    nats, normalised = spec.row_entropy(t(A), causal=False)
    per_row = scipy_entropy(A, axis=-1)
    # Sums of the 144 terms -a log a (each to a few eps), both sides, then a mean over 12 rows.
    tol = 2 * summation_tolerance(A * np.log(A)) / 12
    assert float(nats) == pytest.approx(per_row.mean(), rel=0, abs=tol)
    assert float(normalised) == pytest.approx((per_row / np.log(12)).mean(), rel=0, abs=tol / np.log(12))
    uniform = np.full((12, 12), 1 / 12)
    # log 12 as a sum of 12 terms, over log 12: c n eps
    assert float(spec.row_entropy(t(uniform), causal=False)[1]) == pytest.approx(1.0, rel=2 * sum_rtol(12))
    # exact: 1 log 1 = 0 and 0 log 0 := 0
    assert float(spec.row_entropy(t(np.eye(12)), causal=False)[1]) == 0.0


def test_row_entropy_causal_uses_allowed_keys():
    n = 10
    uniform_causal = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    nats, normalised = spec.row_entropy(t(uniform_causal), causal=True)
    # Uniform over what each row may see: sums of k <= n terms over log k, c n eps.
    assert float(normalised) == pytest.approx(1.0, rel=2 * sum_rtol(n))  # uniform over what each row may see
    assert float(nats) == pytest.approx(np.log(np.arange(1, n + 1)).mean(), rel=2 * sum_rtol(n))


def test_sink_mass():
    A, _ = stochastic(9, seed=12, batch=2)
    np.testing.assert_allclose(  # a mean of 9 positive numbers, torch's and numpy's summation order
        spec.sink_mass(t(A)).numpy(), A[:, :, 0].mean(-1), rtol=2 * sum_rtol(9)
    )


# --- Laplacian ----------------------------------------------------------------------------------------------


def explicit_laplacian(A):
    T = A.shape[0]
    d = np.array([sum(A[u, j] for u in range(T)) / (T - j) for j in range(T)])
    return np.diag(d) - A, d


@pytest.mark.parametrize("causal", [False, True])
def test_laplacian_eigvals_match_an_explicit_eigensolver(causal):
    A, _ = stochastic(25, causal=causal, seed=13)
    L, d = explicit_laplacian(A)
    # Column sums of 25 positive entries in two summation orders: relative c n eps each.
    np.testing.assert_allclose(spec.laplacian_degrees(t(A)).numpy(), d, rtol=2 * sum_rtol(25))
    d_tol = 2 * sum_rtol(25) * d.max()
    np.testing.assert_allclose(
        spec.laplacian(t(A)).numpy(), L, rtol=0, atol=d_tol
    )  # off-diagonal: exactly -A
    values = spec.laplacian_eigvals(t(A)).numpy()
    assert_eigvals_close(values, L)  # non-normal L: kappa(lambda) c n eps ||L|| (d's rounding is inside that)
    assert np.all(np.diff(values.real) <= 0)  # sorted by these very real parts, descending: exact
    if causal:
        assert_same_multiset(values, d - np.diag(A), d_tol)  # triangular: d_jj - a_jj, up to d's rounding


# --- temperature --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_temperature_is_exact_softmax_of_scaled_scores(causal):
    A, logits = stochastic(15, causal=causal, seed=14)
    for tau in (0.3, 1.0, 2.5):
        np.testing.assert_allclose(  # softmax is 1-Lipschitz: error <= eps |log a| / tau ~ 1e-14 here
            spec.temperature(t(A), tau).numpy(), softmax(logits / tau, axis=-1), atol=1e-12
        )


def test_temperature_one_returns_A():
    A, _ = stochastic(20, causal=True, seed=15)
    # exp(log a) = a to (1 + a |log a|) eps; renormalising a row of 20 to c n eps.
    np.testing.assert_allclose(spec.temperature(t(A), 1.0).numpy(), A, rtol=0, atol=2 * sum_rtol(20))
    A32 = A.astype(np.float32).astype(np.float64)  # float32 rows sum to 1 only to ~1e-7
    np.testing.assert_allclose(spec.temperature(t(A32), 1.0).numpy(), A32, atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_large_temperature_approaches_uniform_over_allowed_keys(causal):
    n = 12
    A, _ = stochastic(n, causal=causal, seed=16)
    hot = spec.temperature(t(A), 1e6).numpy()
    allowed = np.tril(np.ones((n, n))) if causal else np.ones((n, n))
    np.testing.assert_allclose(hot, allowed / allowed.sum(-1, keepdims=True), atol=1e-5)
    if causal:
        assert (hot[~allowed.astype(bool)] == 0).all()  # masked entries stay exactly zero


def test_small_temperature_approaches_argmax():
    A, _ = stochastic(8, seed=17)
    cold = spec.temperature(t(A), 1e-3).numpy()
    # A limit, not rounding: off-argmax entries are (a_j / a_max)^1000.
    np.testing.assert_allclose(cold, np.eye(8)[A.argmax(-1)], atol=1e-9)


def test_temperature_rejects_non_positive_tau():
    with pytest.raises(ValueError):
        spec.temperature(t(np.eye(3)), 0.0)


# --- symmetric part and stationary distribution --------------------------------------------------------------


def test_symmetric_eigh_matches_numpy_and_is_orthonormal():
    A, _ = stochastic(20, causal=True, seed=18)
    S = (A + A.T) / 2
    values, vectors = spec.symmetric_eigh(t(A))
    values, vectors = values.numpy(), vectors.numpy()
    np.testing.assert_allclose(values, np.linalg.eigvalsh(S)[::-1], rtol=0, atol=2 * symmetric_tolerance(S))
    # eigh is backward stable: V orthonormal to c n eps, V diag V^T = S + E with ||E|| <= c n eps ||S||.
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(20), rtol=0, atol=backward_error(np.eye(20)))
    np.testing.assert_allclose(vectors @ np.diag(values) @ vectors.T, S, rtol=0, atol=backward_error(S))
    pivots = vectors[np.abs(vectors).argmax(0), np.arange(20)]
    assert (pivots > 0).all()  # deterministic signs
    # Rayleigh quotient of the ones vector is sum(A) / n = 1 up to the row sums' rounding; lambda_max by Weyl.
    assert values[0] >= 1 - np.abs(A.sum(1) - 1).max() - symmetric_tolerance(S)


@pytest.mark.parametrize("causal", [False, True])
def test_stationary_distribution_solves_the_pagerank_equation(causal):
    A, _ = stochastic(30, causal=causal, seed=19)
    pi = spec.stationary_distribution(t(A), 0.85).numpy()
    # renormalised, non-negative: c n eps
    assert (pi >= 0).all() and pi.sum() == pytest.approx(1.0, rel=2 * sum_rtol(pi.size))
    # A backward-stable solve, renormalised (rows sum to 1 up to rounding here).
    np.testing.assert_allclose(
        pi, 0.85 * pi @ A + 0.15 / 30, rtol=0, atol=pagerank_residual_tolerance(A, pi, 0.85)
    )


def test_stationary_without_teleport_is_the_left_perron_vector():
    A, _ = stochastic(25, seed=20)
    pi = spec.stationary_distribution(t(A), 1.0).numpy()
    values, vectors = np.linalg.eig(A.T)
    perron = np.real(vectors[:, np.argmax(values.real)])

    def solved(P):  # the system stationary_distribution solves: (P^T - I) pi = 0 with sum(pi) = 1 as last row
        M = (P - np.eye(len(P))).T
        M[-1] = 1.0
        return M

    # Forward error of the solve (and of geev's Perron vector, both sides): cond(M) c n eps ||pi||.
    np.testing.assert_allclose(
        pi, perron / perron.sum(), rtol=0, atol=2 * solve_tolerance(solved(A)) * np.linalg.norm(pi)
    )
    causal, _ = stochastic(10, causal=True, seed=21)
    # Token 0 attends only to itself: the walk is absorbed there.
    np.testing.assert_allclose(
        spec.stationary_distribution(t(causal), 1.0).numpy(),
        np.eye(10)[0],
        rtol=0,
        atol=solve_tolerance(solved(causal)),
    )
