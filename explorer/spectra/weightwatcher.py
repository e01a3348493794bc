"""WeightWatcher's metric set beyond the power-law alpha (CalculatedContent/WeightWatcher 0.7.7, weightwatcher.py).

Norm metrics (``apply_norm_metrics`` there). WeightWatcher's eigenvalues are those of W^T W, *not* divided by N
(its ``normalize`` option was removed in 0.6.5), so with sigma the singular values of W:

- log norm            log10 sum_i sigma_i^2 = log10 ||W||_F^2
- log spectral norm   log10 lambda_max = log10 sigma_1^2 = 2 log10 ||W||_2
- alpha-hat           alpha * log10 lambda_max (alpha-weighted: alpha is scale-free, lambda_max is not)
- stable rank         sum lambda / lambda_max = ||W||_F^2 / ||W||_2^2, the same number as
                      ``explorer.spectra.ranks.stable_rank``.

Our ESD (``heavy_tail.esd``) divides by N = max(m, n); in its units log10 lambda_max would be smaller by log10 N
and alpha-hat by alpha log10 N. These functions keep WeightWatcher's units so its numbers can be compared.

The randomized comparison (``apply_random_esd``): W with its entries shuffled has i.i.d.-like entries of the same
values, so its ESD is a Marchenko-Pastur bulk whatever correlations training put into W. Here the shuffle is a
seeded numpy permutation of W's m n entries (``entry_permutation``), one per matrix (``matrix_seed``).

- rand_distance: WeightWatcher's ``jensen_shannon_distance(evals, rand_evals)``: both eigenvalue lists sorted,
  then read as probability vectors over the index (scipy.stats.entropy normalises each of p, q and m = (p+q)/2),
  JS divergence in nats, square-rooted. In [0, sqrt(ln 2) ~ 0.833]; 0 when the sorted spectra are proportional.
  It compares the sorted spectra entry by entry, not two density histograms.
- correlation traps: eigenvalues of the shuffled ESD past the Marchenko-Pastur edge. A shuffle destroys every
  correlation, so an eigenvalue left outside the bulk comes from a few unusually large entries (or a nonzero
  mean), not from learned structure. We count those above lambda_+ plus ``TRAP_MARGIN`` Tracy-Widom widths
  (``tracy_widom_width``): the largest eigenvalue of a pure-noise matrix fluctuates around lambda_+ on that
  scale (Johnstone 2001) and is past lambda_+ itself about 17 % of the time, past 4 widths about 1e-4 of the time
  (the TW1 right tail). WeightWatcher fits sigma by a kernel density and adds its own TW term; counts can differ.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from explorer.spectra.heavy_tail import mp_bulk_edge

# Tracy-Widom widths past lambda_+ before a shuffled eigenvalue counts as a trap (P(TW1 > 4) is about 1e-4).
TRAP_MARGIN = 4.0


def log_norm(S) -> np.ndarray:
    """log10 sum sigma^2 = log10 ||W||_F^2 (WeightWatcher's log_norm). S: (..., k) -> (...); -inf for W = 0."""
    S = np.asarray(S, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log10((S**2).sum(axis=-1))


def log_spectral_norm(S) -> np.ndarray:
    """log10 lambda_max = log10 sigma_1^2 (WeightWatcher's log_spectral_norm). S: (..., k) -> (...)."""
    S = np.asarray(S, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log10(S.max(axis=-1) ** 2)


def alpha_hat(alpha, S) -> np.ndarray:
    """alpha * log10 lambda_max, lambda_max = sigma_1^2 (WeightWatcher's alpha_weighted). alpha: (...), S: (..., k)."""
    return np.asarray(alpha, dtype=np.float64) * log_spectral_norm(S)


def matrix_seed(name: str, seed: int) -> list[int]:
    """The numpy seed of one matrix's shuffle: [seed, CRC-32 of its name], so every matrix gets its own
    permutation, independent of the order the matrices are visited in."""
    return [int(seed), zlib.crc32(name.encode())]


def entry_permutation(size: int, seed) -> np.ndarray:
    """``np.random.default_rng(seed).permutation(size)``, shuffled as int32 when it fits (the same draws, half the
    memory traffic). (size,) int32 or int64."""
    rng = np.random.default_rng(seed)
    index = np.arange(size, dtype=np.int32 if size < 2**31 else np.int64)
    rng.shuffle(index)
    return index


def shuffle_entries(stack: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Shuffle the entries of each matrix of a stack: out[b].flatten() = stack[b].flatten()[perms[b]].

    stack: (batch, m, n); perms: (batch, m n) integer, each row a permutation of range(m n). Returns
    (batch, m, n) on stack's device, a new tensor (the input is untouched)."""
    batch, m, n = stack.shape
    flat = stack.reshape(batch, m * n)
    return torch.gather(flat, 1, perms.to(flat.device, torch.int64)).reshape(batch, m, n)


def rand_distance(lam, lam_rand) -> np.ndarray:
    """WeightWatcher's rand_distance: the Jensen-Shannon distance (nats, square-rooted) between two eigenvalue
    lists sorted the same way and each normalised to sum 1, with m = (p + q) / (sum p + sum q).

    lam, lam_rand: (..., k) non-negative, any common order after sorting (sorted here). Returns (...)."""
    p = np.sort(np.asarray(lam, dtype=np.float64), axis=-1)
    q = np.sort(np.asarray(lam_rand, dtype=np.float64), axis=-1)
    P, Q = p.sum(axis=-1, keepdims=True), q.sum(axis=-1, keepdims=True)
    m = (p + q) / (P + Q)
    p, q = p / P, q / Q

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log(a / m), 0.0).sum(axis=-1)

    return np.sqrt(np.clip((kl(p) + kl(q)) / 2, 0.0, None))


def tracy_widom_width(shape: tuple[int, int], element_var) -> np.ndarray:
    """Johnstone's (2001) Tracy-Widom scale of the largest eigenvalue of W^T W / N for a random (m, n) matrix
    with entries of variance s^2: s^2 (sqrt N + sqrt M)(1/sqrt N + 1/sqrt M)^(1/3) / N, N = max, M = min.
    ``element_var`` may be an array; same shape out."""
    big, small = max(shape), min(shape)
    width = (np.sqrt(big) + np.sqrt(small)) * (1 / np.sqrt(big) + 1 / np.sqrt(small)) ** (1 / 3) / big
    return np.asarray(element_var, dtype=np.float64) * width


def trap_edge(shape: tuple[int, int], element_var, margin: float = TRAP_MARGIN) -> np.ndarray:
    """lambda_+ + margin Tracy-Widom widths, in ESD units (W^T W / N): past it a shuffled eigenvalue is a trap."""
    return mp_bulk_edge(shape, element_var) + margin * tracy_widom_width(shape, element_var)
