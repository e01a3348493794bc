"""Attention spectral maths on synthetic row-stochastic matrices, against numpy/scipy and theorems."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import softmax
from scipy.stats import entropy as scipy_entropy

from explorer.spectra import attention_spectra as spec
from explorer.spectra import ranks


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
        assert_same_multiset(values, np.linalg.eigvals(a), 1e-8)
        assert np.all(np.diff(np.abs(values)) <= 1e-15)  # sorted by modulus, descending
        assert values.sum().real == pytest.approx(np.trace(a), abs=1e-12)  # trace = sum of eigenvalues
        assert values[0] == pytest.approx(1.0, abs=1e-12)  # Perron root of a row-stochastic matrix
        assert np.abs(values).max() <= 1 + 1e-12


def test_causal_eigenvalues_are_the_diagonal_and_the_full_solver_agrees():
    A, _ = stochastic(30, causal=True, seed=2)
    lam = spec.eigvals(t(A)).numpy()
    assert_same_multiset(lam, np.diag(A), 1e-15)  # shortcut: exactly the diagonal
    assert_same_multiset(lam, np.linalg.eigvals(A), 1e-10)  # and the full eigensolver says the same


def test_arnoldi_top_eigvals_match_geev():
    A, _ = stochastic(200, seed=3, scale=3.0)
    top = spec.arnoldi_top_eigvals(A, 3)
    ref = spec.sort_by_modulus(torch.from_numpy(np.linalg.eigvals(A))).numpy()[:3]
    assert top is not None
    np.testing.assert_allclose(np.abs(top), np.abs(ref), atol=1e-10)
    assert top[0] == pytest.approx(1.0, abs=1e-12)


def test_arnoldi_exact_on_an_invariant_krylov_space():
    # Every row the same: A = 1 w^T has rank one, eigenvalues {1, 0, ..., 0}; the Krylov space is 2-dimensional.
    w = softmax(np.random.default_rng(4).standard_normal(150))
    A = np.tile(w, (150, 1))
    top = spec.arnoldi_top_eigvals(A, 2)
    np.testing.assert_allclose(np.abs(top), [1.0, 0.0], atol=1e-12)


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
    np.testing.assert_allclose(lam2.numpy(), ref, atol=1e-10)


def test_second_eigval_modulus_small_matrices_use_the_full_solver():
    A, _ = stochastic(10, seed=8, batch=2)
    lam2, method = spec.second_eigval_modulus(t(A))
    assert (method == spec.METHOD_FULL).all()
    np.testing.assert_allclose(
        lam2.numpy(), [np.sort(np.abs(np.linalg.eigvals(a)))[-2] for a in A], atol=1e-12
    )


# --- singular values ----------------------------------------------------------------------------------------


def test_singular_values_gram_match_svd_to_the_documented_tolerance():
    A, _ = stochastic(256, seed=9, batch=3, scale=4.0)
    A = A.astype(np.float32).astype(np.float64)  # as captured: float32 values
    fast = spec.singular_values_gram(t(A)).numpy()
    ref = np.linalg.svd(A, compute_uv=False)
    # Relative error about eps * (sigma_1 / sigma_i)^2 / 2; the smallest read as noise of ~sqrt(eps) * sigma_1.
    np.testing.assert_allclose(fast, ref, atol=1e-7 * ref[:, :1].max())
    big = ref > 1e-4 * ref[:, :1]
    np.testing.assert_allclose(fast[big], ref[big], rtol=2e-8)
    np.testing.assert_allclose(ranks.effective_rank(fast), ranks.effective_rank(ref), rtol=1e-4)
    np.testing.assert_allclose(ranks.stable_rank(fast), ranks.stable_rank(ref), rtol=1e-12)
    eps32 = np.finfo(np.float32).eps
    np.testing.assert_array_equal(
        ranks.numerical_rank(fast, (256, 256), eps=eps32), ranks.numerical_rank(ref, (256, 256), eps=eps32)
    )


def test_singular_values_full_svd():
    A, _ = stochastic(30, seed=10)
    np.testing.assert_allclose(
        spec.singular_values(t(A)).numpy(), np.linalg.svd(A, compute_uv=False), atol=1e-14
    )


# --- rows ---------------------------------------------------------------------------------------------------


def test_row_entropy_against_scipy_and_extremes():
    A, _ = stochastic(12, seed=11)
    nats, normalised = spec.row_entropy(t(A), causal=False)
    per_row = scipy_entropy(A, axis=-1)
    assert float(nats) == pytest.approx(per_row.mean(), rel=1e-12)
    assert float(normalised) == pytest.approx((per_row / np.log(12)).mean(), rel=1e-12)
    uniform = np.full((12, 12), 1 / 12)
    assert float(spec.row_entropy(t(uniform), causal=False)[1]) == pytest.approx(1.0)
    assert float(spec.row_entropy(t(np.eye(12)), causal=False)[1]) == pytest.approx(0.0)


def test_row_entropy_causal_uses_allowed_keys():
    n = 10
    uniform_causal = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    nats, normalised = spec.row_entropy(t(uniform_causal), causal=True)
    assert float(normalised) == pytest.approx(1.0)  # uniform over what each row may see
    assert float(nats) == pytest.approx(np.log(np.arange(1, n + 1)).mean())


def test_sink_mass():
    A, _ = stochastic(9, seed=12, batch=2)
    np.testing.assert_allclose(spec.sink_mass(t(A)).numpy(), A[:, :, 0].mean(-1), rtol=1e-14)


# --- Laplacian ----------------------------------------------------------------------------------------------


def explicit_laplacian(A):
    T = A.shape[0]
    d = np.array([sum(A[u, j] for u in range(T)) / (T - j) for j in range(T)])
    return np.diag(d) - A, d


@pytest.mark.parametrize("causal", [False, True])
def test_laplacian_eigvals_match_an_explicit_eigensolver(causal):
    A, _ = stochastic(25, causal=causal, seed=13)
    L, d = explicit_laplacian(A)
    np.testing.assert_allclose(spec.laplacian_degrees(t(A)).numpy(), d, rtol=1e-14)
    np.testing.assert_allclose(spec.laplacian(t(A)).numpy(), L, atol=1e-15)
    values = spec.laplacian_eigvals(t(A)).numpy()
    assert_same_multiset(values, np.linalg.eigvals(L), 1e-9)
    assert np.all(np.diff(values.real) <= 1e-15)  # sorted by real part, descending
    if causal:
        assert_same_multiset(values, d - np.diag(A), 1e-15)  # triangular: d_jj - a_jj exactly


# --- temperature --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_temperature_is_exact_softmax_of_scaled_scores(causal):
    A, logits = stochastic(15, causal=causal, seed=14)
    for tau in (0.3, 1.0, 2.5):
        np.testing.assert_allclose(
            spec.temperature(t(A), tau).numpy(), softmax(logits / tau, axis=-1), atol=1e-12
        )


def test_temperature_one_returns_A():
    A, _ = stochastic(20, causal=True, seed=15)
    np.testing.assert_allclose(spec.temperature(t(A), 1.0).numpy(), A, atol=1e-15)
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
    np.testing.assert_allclose(values, np.linalg.eigvalsh(S)[::-1], atol=1e-13)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(20), atol=1e-12)
    np.testing.assert_allclose(vectors @ np.diag(values) @ vectors.T, S, atol=1e-12)
    pivots = vectors[np.abs(vectors).argmax(0), np.arange(20)]
    assert (pivots > 0).all()  # deterministic signs
    assert values[0] >= 1 - 1e-12  # Rayleigh quotient of the ones vector is 1


@pytest.mark.parametrize("causal", [False, True])
def test_stationary_distribution_solves_the_pagerank_equation(causal):
    A, _ = stochastic(30, causal=causal, seed=19)
    pi = spec.stationary_distribution(t(A), 0.85).numpy()
    assert (pi >= 0).all() and pi.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(pi, 0.85 * pi @ A + 0.15 / 30, atol=1e-14)


def test_stationary_without_teleport_is_the_left_perron_vector():
    A, _ = stochastic(25, seed=20)
    pi = spec.stationary_distribution(t(A), 1.0).numpy()
    values, vectors = np.linalg.eig(A.T)
    perron = np.real(vectors[:, np.argmax(values.real)])
    np.testing.assert_allclose(pi, perron / perron.sum(), atol=1e-12)
    causal, _ = stochastic(10, causal=True, seed=21)
    # Token 0 attends only to itself: the walk is absorbed there.
    np.testing.assert_allclose(
        spec.stationary_distribution(t(causal), 1.0).numpy(), np.eye(10)[0], atol=1e-12
    )
