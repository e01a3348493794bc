"""Rank summaries against their definitions on matrices with known spectra, and against numpy."""

import numpy as np
import pytest
import torch

from explorer.spectra import ranks
from tests.tolerances import sum_rtol, symmetric_tolerance


def _matrix_with_singular_values(sigma, m, n, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    S = np.zeros((m, n))
    S[: len(sigma), : len(sigma)] = np.diag(sigma)
    return U @ S @ V.T


def test_identity_has_full_effective_and_stable_rank():
    S = np.ones(7)
    # exp of a sum of n entropy terms: c n eps
    assert ranks.effective_rank(S) == pytest.approx(7.0, rel=sum_rtol(S.size))
    # a sum of n squares over the largest: c n eps
    assert ranks.stable_rank(S) == pytest.approx(7.0, rel=sum_rtol(S.size))
    assert ranks.energy_rank(S, 0.9) == 7  # 6/7 < 0.9 <= 7/7


def test_rank_one_matrix():
    S = np.array([3.0, 0, 0, 0])
    assert ranks.effective_rank(S) == 1.0  # exact: 1 log 1 = 0, exp(0) = 1
    assert ranks.stable_rank(S) == 1.0  # exact: 9 / 9
    assert ranks.numerical_rank(S, (4, 4)) == 1
    assert ranks.condition_number(S, (4, 4)) == 1.0  # exact: 3 / 3 over the non-zero values


def test_known_spectrum_values():
    S = np.array([4.0, 2.0, 1.0, 1.0])
    p = S / S.sum()
    # exp(H), H <= log n a sum of n terms: relative c n eps (1 + H) per side
    assert ranks.effective_rank(S) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=4 * sum_rtol(S.size))
    assert ranks.stable_rank(S) == pytest.approx((16 + 4 + 1 + 1) / 16, rel=sum_rtol(S.size))
    # energies 16, 20, 21, 22 of 22: 0.727, 0.909, 0.954, 1
    assert ranks.energy_rank(S, 0.9) == 2
    assert ranks.energy_rank(S, 0.99) == 4
    assert ranks.condition_number(S) == 4.0  # exact: 4 / 1


def test_numerical_rank_and_condition_match_numpy_on_random_low_rank_matrices():
    sigma = np.array([10.0, 5.0, 1.0, 1e-3])
    A = _matrix_with_singular_values(sigma, 12, 9)
    S = np.linalg.svd(A, compute_uv=False)
    assert ranks.numerical_rank(S, A.shape) == np.linalg.matrix_rank(A) == 4
    assert ranks.condition_number(S, A.shape) == pytest.approx(1e4, rel=1e-6)
    # Weyl: each sigma_i is off by e = c n eps ||A|| (both sides), so sum sigma^2 by 2 e sum sigma and
    # sigma_1 by e, relative to ||A||_F^2 and sigma_1; plus the Frobenius sum's c n eps.
    e = 2 * symmetric_tolerance(A)
    rel = e / S[0] + 2 * e * S.sum() / (S**2).sum() + sum_rtol(A.size)
    assert ranks.stable_rank(S) == pytest.approx(
        np.linalg.norm(A, "fro") ** 2 / np.linalg.norm(A, 2) ** 2, rel=2 * rel
    )
    assert ranks.frobenius_norm(S) == pytest.approx(np.linalg.norm(A, "fro"), rel=rel)
    assert ranks.spectral_norm(S) == pytest.approx(np.linalg.norm(A, 2), rel=e / S[0])


def test_batched_shapes_and_torch_input():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 5, 6, 6))
    S = np.linalg.svd(X, compute_uv=False)
    batched = ranks.effective_rank(torch.from_numpy(S))
    assert batched.shape == (3, 5)
    # torch vs numpy: the entropy bound above
    assert batched[2, 4] == pytest.approx(ranks.effective_rank(S[2, 4]), rel=4 * sum_rtol(6))
    assert ranks.energy_rank(S, 0.9).shape == (3, 5)


def test_zero_matrix_is_rank_zero_not_nan():
    S = np.zeros(3)
    assert ranks.effective_rank(S) == 0
    assert ranks.stable_rank(S) == 0
    assert ranks.numerical_rank(S, (3, 3)) == 0
