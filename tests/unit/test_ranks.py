"""Rank summaries against their definitions on matrices with known spectra, and against numpy."""

import numpy as np
import pytest
import torch

from explorer.spectra import ranks


def _matrix_with_singular_values(sigma, m, n, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    S = np.zeros((m, n))
    S[: len(sigma), : len(sigma)] = np.diag(sigma)
    return U @ S @ V.T


def test_identity_has_full_effective_and_stable_rank():
    S = np.ones(7)
    assert ranks.effective_rank(S) == pytest.approx(7.0)
    assert ranks.stable_rank(S) == pytest.approx(7.0)
    assert ranks.energy_rank(S, 0.9) == 7  # 6/7 < 0.9 <= 7/7


def test_rank_one_matrix():
    S = np.array([3.0, 0, 0, 0])
    assert ranks.effective_rank(S) == pytest.approx(1.0)
    assert ranks.stable_rank(S) == pytest.approx(1.0)
    assert ranks.numerical_rank(S, (4, 4)) == 1
    assert ranks.condition_number(S, (4, 4)) == pytest.approx(1.0)


def test_known_spectrum_values():
    S = np.array([4.0, 2.0, 1.0, 1.0])
    p = S / S.sum()
    assert ranks.effective_rank(S) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert ranks.stable_rank(S) == pytest.approx((16 + 4 + 1 + 1) / 16)
    # energies 16, 20, 21, 22 of 22: 0.727, 0.909, 0.954, 1
    assert ranks.energy_rank(S, 0.9) == 2
    assert ranks.energy_rank(S, 0.99) == 4
    assert ranks.condition_number(S) == pytest.approx(4.0)


def test_numerical_rank_and_condition_match_numpy_on_random_low_rank_matrices():
    sigma = np.array([10.0, 5.0, 1.0, 1e-3])
    A = _matrix_with_singular_values(sigma, 12, 9)
    S = np.linalg.svd(A, compute_uv=False)
    assert ranks.numerical_rank(S, A.shape) == np.linalg.matrix_rank(A) == 4
    assert ranks.condition_number(S, A.shape) == pytest.approx(1e4, rel=1e-6)
    assert ranks.stable_rank(S) == pytest.approx(np.linalg.norm(A, "fro") ** 2 / np.linalg.norm(A, 2) ** 2)
    assert ranks.frobenius_norm(S) == pytest.approx(np.linalg.norm(A, "fro"))
    assert ranks.spectral_norm(S) == pytest.approx(np.linalg.norm(A, 2))


def test_batched_shapes_and_torch_input():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 5, 6, 6))
    S = np.linalg.svd(X, compute_uv=False)
    batched = ranks.effective_rank(torch.from_numpy(S))
    assert batched.shape == (3, 5)
    assert batched[2, 4] == pytest.approx(ranks.effective_rank(S[2, 4]))
    assert ranks.energy_rank(S, 0.9).shape == (3, 5)


def test_zero_matrix_is_rank_zero_not_nan():
    S = np.zeros(3)
    assert ranks.effective_rank(S) == 0
    assert ranks.stable_rank(S) == 0
    assert ranks.numerical_rank(S, (3, 3)) == 0
