"""The tolerance helper itself: it must pass true eigenvalues and catch wrong ones at the scale it claims."""

import numpy as np
import pytest

from tests.tolerances import (
    assert_eigvals_close,
    backward_error,
    eigenvalue_condition_numbers,
    symmetric_tolerance,
)


def test_condition_numbers_of_normal_and_jordan_like_matrices():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    _, kappa = eigenvalue_condition_numbers(Q @ np.diag([1.0, 2, 3, 4, 5]) @ Q.T)
    np.testing.assert_allclose(kappa, 1.0, rtol=1e-8)  # normal: x = y, kappa = 1 up to rounding of x, y
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
    assert symmetric_tolerance(A, dtype=np.float32) / symmetric_tolerance(A) == pytest.approx(
        np.finfo(np.float32).eps / np.finfo(np.float64).eps
    )
    assert symmetric_tolerance(2 * A) == pytest.approx(2 * symmetric_tolerance(A))
