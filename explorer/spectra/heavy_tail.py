"""Heavy-tail statistics of a weight matrix's spectrum (the WeightWatcher convention, docs/ARCHITECTURE.md section 2).

ESD: the eigenvalues of X = W^T W / N for W of shape (m, n), N = max(m, n). They are sigma^2 / N, so the
singular values are all that is needed (no second decomposition).

Power-law tail p(lambda) ~ lambda^-alpha for lambda >= x_min, fitted as Clauset, Shalizi & Newman (2009)
do for continuous data: for every candidate x_min (each eigenvalue leaving at least ``min_tail`` points
in the tail) alpha is the maximum-likelihood estimate 1 + n / sum_i log(lambda_i / x_min), and x_min is the
candidate whose fitted CDF is closest to the tail's empirical CDF in Kolmogorov-Smirnov distance D.

D here is by default the exact KS statistic: the empirical CDF is a step function, so both the top and the
bottom of each step are compared (max((i+1)/n - F, F - i/n)). WeightWatcher compares only the bottom
(|F - i/n|) and lets a tail shrink to 2 points; ``ks="weightwatcher", min_tail=2`` reproduces its alphas
exactly (checked in bench/bench_weights.py). The defaults differ on purpose: with the one-sided D and tails
of a handful of points, alphas of 10-20 from 6 eigenvalues come out, which are noise.

Marchenko-Pastur: a random (m, n) matrix with i.i.d. entries of variance s^2 has its ESD (of W^T W / N)
inside [s^2 (1 - sqrt(1/Q))^2, s^2 (1 + sqrt(1/Q))^2], Q = N / M >= 1, M = min(m, n), as the size grows.
Eigenvalues above the upper edge lambda_+ are "spikes": structure that training put there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A tail with fewer points than this gives an alpha that is noise (its standard error is (alpha-1)/sqrt(n)).
DEFAULT_MIN_TAIL = 10
# Rows per pass are chosen so a temporary (rows, k) holds about this many float64 entries.
_CHUNK_ENTRIES = 1_000_000


def esd(S, shape: tuple[int, int]) -> np.ndarray:
    """Eigenvalues of W^T W / N from the singular values.

    Args:
        S: singular values of shape (..., k) (any order).
        shape: (m, n) of W; N = max(m, n).
    Returns:
        ndarray of shape (..., k), float64, sigma^2 / N in the order of ``S``.
    """
    S = np.asarray(S, dtype=np.float64)
    return S**2 / max(shape)


def mp_bulk_edge(shape: tuple[int, int], element_variance) -> np.ndarray:
    """Marchenko-Pastur upper bulk edge lambda_+ = s^2 (1 + sqrt(1/Q))^2 of W^T W / N, Q = N / M.

    ``element_variance`` s^2 may be an array (one per matrix of this shape)."""
    big, small = max(shape), min(shape)
    return np.asarray(element_variance, dtype=np.float64) * (1.0 + np.sqrt(small / big)) ** 2


def element_variance(S, shape: tuple[int, int]) -> np.ndarray:
    """Mean squared entry ||W||_F^2 / (m n) = sum sigma^2 / (m n): the s^2 of the MP reference. (..., k) -> (...)."""
    S = np.asarray(S, dtype=np.float64)
    return (S**2).sum(axis=-1) / (shape[0] * shape[1])


def mp_density(x, shape: tuple[int, int], element_var: float) -> np.ndarray:
    """Marchenko-Pastur density of the ESD of W^T W / N at ``x`` (zero outside the bulk), for the reference curve."""
    y = min(shape) / max(shape)
    lo = element_var * (1 - np.sqrt(y)) ** 2
    hi = element_var * (1 + np.sqrt(y)) ** 2
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.sqrt(np.clip((hi - x) * (x - lo), 0, None)) / (2 * np.pi * element_var * y * x)
    return np.where((x > lo) & (x < hi), rho, 0.0)


@dataclass(frozen=True)
class PowerLawFit:
    """Power-law tail fits of a stack of spectra. All arrays have shape (...) of the input's leading axes.

    alpha: fitted exponent of p(lambda) ~ lambda^-alpha (NaN where no fit was possible).
    xmin: start of the tail (same units as the data). ks: KS distance D of the chosen fit, in [0, 1].
    n_tail: number of data points >= xmin. sigma: standard error (alpha - 1) / sqrt(n_tail).
    """

    alpha: np.ndarray
    xmin: np.ndarray
    ks: np.ndarray
    n_tail: np.ndarray

    @property
    def sigma(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.alpha - 1) / np.sqrt(self.n_tail)


def power_law_ks(tail: np.ndarray, alpha: float, xmin: float) -> float:
    """Exact KS distance between the data ``tail`` (all >= xmin) and the Pareto CDF 1 - (x/xmin)^(1-alpha)."""
    x = np.sort(np.asarray(tail, dtype=np.float64))
    n = x.size
    F = 1.0 - (x / xmin) ** (1.0 - alpha)
    i = np.arange(n)
    return float(np.max(np.maximum((i + 1) / n - F, F - i / n)))


KS_KINDS = ("exact", "weightwatcher")


def fit_power_law(
    data, *, min_tail: int = DEFAULT_MIN_TAIL, ks: str = "exact", positive_rtol: float = 1e-12
) -> PowerLawFit:
    """Clauset-Shalizi-Newman fit of a power-law tail to each row of ``data``.

    Args:
        data: array of shape (..., k) (e.g. an ESD per matrix), any order; values <= positive_rtol * max
            (numerically zero eigenvalues of a rank-deficient matrix) are never part of a tail.
        min_tail: fewest points a candidate tail may hold (candidates above that are skipped).
        ks: "exact" (the KS statistic) or "weightwatcher" (its one-sided variant, |F(x_i) - i/n|).
    Returns:
        PowerLawFit with arrays of shape (...). Rows with fewer than ``min_tail`` positive values get NaN.
    """
    if ks not in KS_KINDS:
        raise ValueError(f"Unknown KS variant '{ks}'; choose one of {KS_KINDS}.")
    min_tail = max(int(min_tail), 2)
    data = np.asarray(data, dtype=np.float64)
    lead = data.shape[:-1]
    k = data.shape[-1]
    flat = np.sort(data.reshape(-1, k), axis=-1)  # ascending
    out = [np.full(flat.shape[0], np.nan) for _ in range(4)]
    if k == 0:
        return PowerLawFit(*(o.reshape(lead) for o in out))
    rows_per_chunk = max(1, _CHUNK_ENTRIES // k)
    for start in range(0, flat.shape[0], rows_per_chunk):
        part = _fit_sorted(flat[start : start + rows_per_chunk], min_tail, ks == "exact", positive_rtol)
        for o, p in zip(out, part, strict=True):
            o[start : start + rows_per_chunk] = p
    return PowerLawFit(*(o.reshape(lead) for o in out))


def _fit_sorted(x: np.ndarray, min_tail: int, exact: bool, positive_rtol: float) -> tuple[np.ndarray, ...]:
    """Vectorised scan over every x_min candidate. x: (batch, k) sorted ascending."""
    batch, k = x.shape
    top = x[:, -1:]
    positive = x > positive_rtol * np.where(top > 0, top, 1.0)
    logx = np.log(np.where(positive, x, 1.0))
    n_tail = (k - np.arange(k)).astype(np.float64)  # points at or above candidate j (ties counted in)
    # sum_{i >= j} log x_i via a reversed cumulative sum.
    suffix = np.cumsum(logx[:, ::-1], axis=-1)[:, ::-1]
    denom = suffix - n_tail * logx
    valid = positive & (n_tail >= min_tail)[None, :] & (denom > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(valid, 1.0 + n_tail / denom, np.nan)  # (batch, candidate)

    # KS distance of each candidate's fit: F = 1 - (x_i / x_j)^(1 - alpha_j) over the tail i >= j, whose
    # empirical CDF steps from r/n to (r+1)/n at rank r = i - j. One pass per candidate, vectorised over
    # the batch: O(batch * k^2 / 2) work and no (k, k) temporaries.
    D = np.full((batch, k), np.inf)
    for j in np.flatnonzero(valid.any(axis=0)):
        n = k - j
        ranks = np.arange(n, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            F = 1.0 - np.exp((1.0 - alpha[:, j : j + 1]) * (logx[:, j:] - logx[:, j : j + 1]))
            if exact:
                D[:, j] = np.maximum((ranks + 1) / n - F, F - ranks / n).max(axis=-1)
            else:
                D[:, j] = np.abs(F - ranks / n).max(axis=-1)
    D = np.where(valid, D, np.inf)

    best = np.argmin(D, axis=-1)
    rows = np.arange(batch)
    found = np.isfinite(D[rows, best])
    return (
        np.where(found, alpha[rows, best], np.nan),
        np.where(found, x[rows, best], np.nan),
        np.where(found, D[rows, best], np.nan),
        np.where(found, n_tail[best], np.nan),
    )
