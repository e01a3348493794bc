"""The tolerance helper itself: it must pass true eigenvalues and catch wrong ones at the scale it claims."""

import numpy as np
import pytest

from tests.tolerances import (
    assert_eigvals_close,
    backward_error,
    defective_eigenvalue_tolerance,
    eigenvalue_condition_numbers,
    gram_singular_value_tolerance,
    low_rank_product_sigma_tolerance,
    nearest_eigenvalue_tolerance,
    pagerank_residual_tolerance,
    perron_root_tolerance,
    product_tolerance,
    solve_tolerance,
    subspace_tolerance,
    sum_rtol,
    summation_tolerance,
    symmetric_tolerance,
    trace_tolerance,
)


def test_condition_numbers_of_normal_and_jordan_like_matrices():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    _, kappa = eigenvalue_condition_numbers(Q @ np.diag([1.0, 2, 3, 4, 5]) @ Q.T)
    np.testing.assert_allclose(kappa, 1.0, rtol=1e-8)  # normal: x = y, kappa = 1 up to rounding of x, y
    w, kappa = eigenvalue_condition_numbers(Q @ np.diag([1j, 2, 3, 4, 5 - 1j]) @ Q.T)  # complex stays complex
    np.testing.assert_allclose(np.sort_complex(w), [1j, 2, 3, 4, 5 - 1j], atol=1e-12)  # normal: c n eps ||A||
    np.testing.assert_allclose(kappa, 1.0, rtol=1e-8)  # as above
    # [[a, t], [0, b]]: kappa = sqrt(1 + (t / (a - b))^2) for both eigenvalues (closed form).
    a, b, t = 1.0, 0.999, 1.0
    _, kappa = eigenvalue_condition_numbers(np.array([[a, t], [0.0, b]]))
    np.testing.assert_allclose(kappa, np.hypot(1, t / (a - b)), rtol=1e-6)


def test_assert_eigvals_close_accepts_rounding_and_rejects_errors():
    A = np.diag([3.0, 2.0, 1.0]) + np.triu(np.ones((3, 3)), 1)
    assert_eigvals_close(np.linalg.eigvals(A), A, expected=[1.0, 2.0, 3.0])
    assert_eigvals_close([3.0, 1.0, 2.0], A)  # order does not matter
    with pytest.raises(AssertionError, match="eigenvalues off"):
        assert_eigvals_close([3.0, 2.0, 1.0 + 1e-9], A, expected=[1.0, 2.0, 3.0])
    with pytest.raises(AssertionError, match="computed"):
        assert_eigvals_close([3.0, 2.0], A)


def test_ill_conditioned_eigenvalues_get_room_in_proportion():
    n = 8
    J = np.diag(np.linspace(1.0, 0.6, n)) + 2.0 * np.eye(n, k=1)
    _, kappa = eigenvalue_condition_numbers(J)
    assert kappa.max() > 1e6
    err = 1e-4 * kappa.max() * backward_error(J)  # well inside the allowed band of the worst eigenvalue
    worst = np.argmax(kappa)
    w = np.linalg.eigvals(J)
    shifted = w.copy()
    shifted[np.argmin(np.abs(w - np.linalg.eigvals(J)[worst]))] += err
    assert_eigvals_close(shifted, J)


def test_symmetric_tolerance_scales_with_norm_and_precision():
    A = np.eye(4) * 10
    # a ratio of two evaluations of the same formula: equal to a few ulp
    assert symmetric_tolerance(A, dtype=np.float32) / symmetric_tolerance(A) == pytest.approx(
        np.finfo(np.float32).eps / np.finfo(np.float64).eps
    )
    # scaling by 2 is exact in binary; the 2-norm to a few ulp
    assert symmetric_tolerance(2 * A) == pytest.approx(2 * symmetric_tolerance(A))


@pytest.mark.parametrize("order", [2, 3])
def test_defective_tolerance_covers_the_split_of_a_jordan_block(order):
    J = 0.8 * np.eye(order) + np.eye(order, k=1)
    tol = defective_eigenvalue_tolerance(J, order=order)
    # A perturbation e as large as the backward error in the bottom-left corner splits the block the most:
    # det(z I - J - E) = (z - 0.8)^m - e, so the eigenvalues move by exactly e^(1/m).
    split = backward_error(J) ** (1 / order)
    assert split <= tol < 10 * split  # room for it, and no more than an order of magnitude
    assert np.abs(np.linalg.eigvals(J) - 0.8).max() <= tol  # what geev does to the exact block


def test_subspace_tolerance_is_davis_kahan():
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    lam = np.array([1.0, 1.0 - 1e-3, 0.5, 0.2, 0.1, 0.0])  # gap 1e-3 at the top
    A = (Q * lam) @ Q.T
    F = rng.normal(size=(6, 6))
    E = (F + F.T) / np.linalg.norm(F + F.T, 2) * backward_error(A)  # ||E|| = the backward error
    v = np.linalg.eigh(A + E)[1][:, -1]
    sin = np.linalg.norm(v - (v @ Q[:, 0]) * Q[:, 0])  # not sqrt(1 - cos^2): that cancels to sqrt(eps)
    assert sin <= subspace_tolerance(A, gap=1e-3)
    # the same formula over a gap: a few ulp
    assert subspace_tolerance(A, gap=1e-3) == pytest.approx(1e3 * backward_error(A))
    with pytest.raises(ValueError):
        subspace_tolerance(A, gap=0.0)


def test_summation_tolerance_bounds_a_float32_sum():
    x = np.random.default_rng(2).uniform(0, 1, 10_000)
    exact = np.sum(x)  # float64 reference: its own error is 1e-9 of the float32 bound
    assert abs(float(np.sum(x.astype(np.float32), dtype=np.float32)) - exact) <= summation_tolerance(
        x, dtype=np.float32
    )
    assert summation_tolerance(-x) == summation_tolerance(x)  # magnitudes, not the signed sum


def test_perron_and_trace_tolerances():
    rng = np.random.default_rng(3)
    P = rng.uniform(size=(20, 20))
    P /= P.sum(axis=1, keepdims=True)
    lam = np.linalg.eigvals(P)
    assert np.abs(lam - 1).min() <= perron_root_tolerance(P)
    off = P.copy()
    off[0] *= 1 + 1e-6  # rows no longer sum to 1: the allowance grows with the defect
    assert perron_root_tolerance(off) > 1e-6 > perron_root_tolerance(P)
    assert np.abs(np.linalg.eigvals(off) - 1).min() <= perron_root_tolerance(off)
    assert abs(lam.sum() - np.trace(P)) <= trace_tolerance(P)
    assert trace_tolerance(P) < 1e-11  # c n^2 eps ||P||: a tight check even for non-normal P


def test_sum_rtol_bounds_a_float32_sum_of_squares():
    x = np.random.default_rng(4).normal(size=4096)
    exact = np.sum(x**2)  # float64: its own error is 1e-9 of the float32 bound
    got = float(np.sum(x.astype(np.float32) ** 2, dtype=np.float32))
    assert abs(got - exact) <= sum_rtol(x.size, dtype=np.float32) * exact
    assert sum_rtol(10) == pytest.approx(10 * sum_rtol(1))  # 10 * (c eps) vs c 10 eps: a few ulp


def test_solve_tolerance_bounds_the_forward_error():
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    V, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    M = (U * np.logspace(0, -8, 30)) @ V.T  # cond 1e8
    x = rng.normal(size=30)
    got = np.linalg.solve(M, M @ x)
    assert np.linalg.norm(got - x) <= solve_tolerance(M) * np.linalg.norm(x)
    assert solve_tolerance(M) == pytest.approx(1e8 * backward_error(np.eye(30)), rel=1e-6)


def test_gram_singular_value_tolerance_covers_the_squaring():
    rng = np.random.default_rng(6)
    U, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    V, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    s = np.logspace(0, -12, 20)  # down to far below sqrt(eps): those come out as noise
    A = (U[:, :20] * s) @ V.T
    gram = np.sqrt(np.clip(np.linalg.eigvalsh(A.T @ A)[::-1], 0, None))
    allowed = gram_singular_value_tolerance(A, s)
    assert np.all(np.abs(gram - s) <= allowed)
    # Tight where sigma is large (c n eps sigma_1^2 / sigma_1 ~ 3e-13), sqrt(delta) at the noise floor.
    # ||A||_2 = s[0] to c n eps, then a sqrt: far inside rel 1e-6
    assert allowed[0] < 1e-12 and allowed[-1] == pytest.approx(np.sqrt(2 * backward_error(A) * s[0]))


def test_nearest_eigenvalue_tolerance_grows_with_the_residual():
    A = np.diag([3.0, 2.0, 1.0]) + np.triu(np.ones((3, 3)), 1)
    nearest, allowed = nearest_eigenvalue_tolerance(A, [2.0 + 1e-12])
    np.testing.assert_allclose(nearest, [2.0], rtol=0, atol=allowed[0])
    assert allowed[0] < 1e-12 < nearest_eigenvalue_tolerance(A, [2.0], residual=1e-12)[1][0]


def test_product_and_low_rank_product_tolerances():
    rng = np.random.default_rng(7)
    A, B = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    exact = (A.astype(np.longdouble) @ B.T.astype(np.longdouble)).astype(np.float64)  # extended precision
    assert np.linalg.norm(A @ B.T - exact, 2) <= product_tolerance(A, B.T)
    sigma = np.linalg.svd(A @ B.T, compute_uv=False)[:8]
    Ra = np.linalg.cholesky(A.T @ A).T  # another R with R^T R = A^T A
    Rb = np.linalg.cholesky(B.T @ B).T
    assert np.all(
        np.abs(np.linalg.svd(Ra @ Rb.T, compute_uv=False) - sigma) <= low_rank_product_sigma_tolerance(A, B)
    )


def test_pagerank_residual_tolerance_covers_rows_that_do_not_sum_to_one():
    rng = np.random.default_rng(8)
    A = rng.uniform(size=(30, 30))
    A = (A / A.sum(axis=1, keepdims=True)).astype(np.float32).astype(np.float64)  # rows 1 +- 1e-7
    pi = np.linalg.solve((np.eye(30) - 0.85 * A).T, np.full(30, 0.15 / 30))
    pi /= pi.sum()
    residual = np.abs(pi - (0.85 * pi @ A + 0.15 / 30)).max()
    assert residual <= pagerank_residual_tolerance(A, pi, 0.85)
    assert residual > backward_error(np.eye(30) - 0.85 * A.T)  # the row-sum term is the one that matters here
