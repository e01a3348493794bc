"""Rank-like summaries of singular-value spectra, defined once (docs/ARCHITECTURE.md section 2).

Every function takes singular values ``S`` of shape (..., k), sorted in decreasing order and non-negative,
as numpy arrays or torch tensors, and reduces the last axis, so a whole stack of matrices (layer, head, ...)
is handled in one call. Results are float64 numpy arrays of shape (...).
"""

from __future__ import annotations

import numpy as np
import torch


def _as_numpy(S) -> np.ndarray:
    if isinstance(S, torch.Tensor):
        S = S.detach().to("cpu", torch.float64).numpy()
    return np.asarray(S, dtype=np.float64)


def effective_rank(S) -> np.ndarray:
    """Roy & Vetterli (2007): exp(-sum p_i log p_i) with p_i = sigma_i / sum sigma. In [1, k]; 0 for a zero matrix."""
    S = _as_numpy(S)
    total = S.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(total > 0, S / total, 0.0)
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    return np.where(total[..., 0] > 0, np.exp(entropy), 0.0)


def stable_rank(S) -> np.ndarray:
    """||X||_F^2 / ||X||_2^2 = sum sigma_i^2 / sigma_1^2. In [1, rank]; 0 for a zero matrix."""
    S = _as_numpy(S)
    top = S[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(top > 0, (S**2).sum(axis=-1) / top**2, 0.0)


def numerical_rank(S, shape: tuple[int, int], eps: float | None = None) -> np.ndarray:
    """#{sigma_i > sigma_1 * max(m, n) * eps} (numpy.linalg.matrix_rank's default tolerance).

    ``eps`` defaults to float64 machine epsilon; pass float32's when the matrix was only float32-accurate.
    """
    S = _as_numpy(S)
    eps = np.finfo(np.float64).eps if eps is None else eps
    tol = S[..., :1] * max(shape) * eps
    return (S > tol).sum(axis=-1).astype(np.float64)


def condition_number(S, shape: tuple[int, int] | None = None, eps: float | None = None) -> np.ndarray:
    """sigma_1 / sigma_min over the numerically nonzero sigma (tolerance as in ``numerical_rank``)."""
    S = _as_numpy(S)
    if shape is None:
        shape = (S.shape[-1], S.shape[-1])
    eps = np.finfo(np.float64).eps if eps is None else eps
    tol = S[..., :1] * max(shape) * eps
    positive = np.where(S > tol, S, np.inf)
    smallest = positive.min(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(smallest), S[..., 0] / smallest, np.nan)


def energy_rank(S, p: float) -> np.ndarray:
    """Smallest k with sum_{i<=k} sigma_i^2 >= p * sum sigma_i^2 (k_90 for p=0.9, k_99 for p=0.99)."""
    if not 0.0 < p <= 1.0:
        raise ValueError("p must be in (0, 1]")
    S = _as_numpy(S)
    energy = np.cumsum(S**2, axis=-1)
    total = energy[..., -1:]
    # A relative tolerance so p = 1 is reached despite rounding in the cumulative sum.
    reached = energy >= p * total * (1 - 1e-12)
    return (np.argmax(reached, axis=-1) + 1).astype(np.float64)


def spectral_norm(S) -> np.ndarray:
    return _as_numpy(S)[..., 0]


def frobenius_norm(S) -> np.ndarray:
    return np.sqrt((_as_numpy(S) ** 2).sum(axis=-1))
