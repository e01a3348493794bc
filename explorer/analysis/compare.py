"""Model A against model B: per-matrix metrics side by side, the update Delta W = W_B - W_A, and the two
models' outputs on the same text. Pure functions of arrays (numpy, float64): building B and running the
models is explorer.analysis.variants' work.

Delta W against W_A (Hu et al. 2021, "LoRA", section 7.3). With W_A = U S V^T and Delta W = U' S' V'^T:

- energy share in W_A's top-r subspace, r = 1..R (R = min(MAX_SUBSPACE_RANK, m, n)):
      share(r) = ||U_r U_r^T dW V_r V_r^T||_F^2 / ||dW||_F^2 = ||U_r^T dW V_r||_F^2 / ||dW||_F^2,
  the two-sided projection onto the span of W_A's top-r left AND right singular vectors (the paper projects
  the other way, see below; this is its question asked of dW). Non-decreasing in r (the leading r x r blocks
  of U^T dW V nest); 1 at r = min(m, n) for square matrices (U, V are then complete bases). A random
  (m, n) update would hold about r^2/(mn) of its energy there.
- amplification factor, r = 1..R: ||dW||_F / ||U'_r^T W_A V'_r||_F with U'_r, V'_r the top-r singular vectors of
  dW (the paper's Table 7 ratio): how much the update amplifies the directions it shares with W_A. Large (the
  paper: ~21 at r = 4 on GPT-3's W_q) when dW lives in directions W_A barely uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.spectra import ranks

MAX_SUBSPACE_RANK = 64
# The r whose energy share and amplification the page's caption and the report list.
SUBSPACE_RANKS = (1, 4, 8, 16, 64)
# Tokens of the greedy continuations of A and B shown side by side (causal models).
CONTINUATION_TOKENS = 24
EPS32 = float(np.finfo(np.float32).eps)

# Per-matrix metrics shown for A, B and their difference (WeightSpectra field or metric names).
MATRIX_METRICS = ("alpha", "alpha_hat", "stable_rank", "spectral_norm")


@dataclass(frozen=True)
class MatrixComparison:
    """One metric for every matrix of A and B (same order, same names). a, b, delta: (matrix,) float64,
    delta = b - a; relative: delta / |a| (nan where a is 0 or not finite)."""

    metric: str
    a: np.ndarray
    b: np.ndarray
    delta: np.ndarray
    relative: np.ndarray


def compare_metric(a: np.ndarray, b: np.ndarray, metric: str) -> MatrixComparison:
    """Side by side and the differences of one per-matrix metric (``a``, ``b``: (matrix,))."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"A has {a.shape[0]} matrices and B {b.shape[0]}: compare models of one architecture."
        )
    delta = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(np.isfinite(a) & (a != 0), delta / np.abs(a), np.nan)
    return MatrixComparison(metric, a, b, delta, relative)


@dataclass(frozen=True)
class DeltaSpectrum:
    """Delta W = W_B - W_A of one (m, n) matrix, and how it sits against W_A (module docstring).

    shape: (m, n). sigma: (min(m, n),) float64, dW's singular values, decreasing. frobenius: ||dW||_F.
    effective_rank, stable_rank: of dW (0 when dW = 0). numerical_rank: #sigma_i above ``noise``, where
    noise bounds the singular values float32 rounding of W_B alone can create (see ``rounding_floor``).
    energy_share, amplification: (R,) float64 for r = 1..R (nan when dW = 0). a_frobenius: ||W_A||_F."""

    shape: tuple[int, int]
    sigma: np.ndarray
    frobenius: float
    effective_rank: float
    stable_rank: float
    numerical_rank: int
    noise: float
    energy_share: np.ndarray
    amplification: np.ndarray
    a_frobenius: float

    @property
    def zero(self) -> bool:
        """No change at all (the page says "no change" instead of dividing by zero)."""
        return self.frobenius == 0.0

    @property
    def relative(self) -> float:
        """||dW||_F / ||W_A||_F."""
        return self.frobenius / self.a_frobenius if self.a_frobenius > 0 else float("nan")

    def share_over_random(self, r: int) -> float:
        """energy_share at r over a random update's, r^2 / (mn): the expected share of ||dW||_F^2 in a fixed
        r-dimensional left and right subspace when dW's singular directions are uniformly random. 1: as random;
        much above 1: dW lives in W_A's top-r singular subspace."""
        m, n = self.shape
        return float(self.energy_share[r - 1] / (r * r / (m * n)))

    def alignment_over_random(self, r: int) -> float:
        """||U'_r^T W_A V'_r||_F (W_A along dW's own top-r singular directions; = ||dW||_F / amplification) over
        its value for random r-dimensional directions, ||W_A||_F r / sqrt(mn) (E||U^T W V||_F^2 = ||W||_F^2 r^2 /
        (mn) for uniformly random orthonormal U, V). Hu et al. (LoRA, section 7.3) found it above 1 for GPT-3:
        dW correlated with W more than a random matrix would be."""
        m, n = self.shape
        along = self.frobenius / self.amplification[r - 1]
        return float(along / (self.a_frobenius * r / np.sqrt(m * n)))


def rounding_floor(W_B: np.ndarray, eps: float = EPS32) -> float:
    """An upper bound on ||E||_2 for E the rounding of W_B to float32: |E_ij| <= eps/2 |W_B,ij|, so
    ||E||_2 <= ||E||_F <= eps/2 ||W_B||_F. By Weyl, a stored W_B = W_A + dW_exact + E has
    sigma_{k+1}(W_B - W_A) <= this bound when dW_exact has rank k."""
    return 0.5 * eps * float(np.linalg.norm(np.asarray(W_B, dtype=np.float64)))


def delta_spectrum(
    W_A: np.ndarray, W_B: np.ndarray, max_rank: int = MAX_SUBSPACE_RANK, eps: float = EPS32
) -> DeltaSpectrum:
    """Delta W = W_B - W_A (both (m, n)) and its energy share / amplification curves (module docstring).
    ``eps``: the unit roundoff scale of the stored weights (float32 by default) for the numerical rank."""
    W_A = np.asarray(W_A, dtype=np.float64)
    W_B = np.asarray(W_B, dtype=np.float64)
    if W_A.shape != W_B.shape:
        raise ValueError(f"W_A is {W_A.shape} and W_B {W_B.shape}: Delta W needs equal shapes.")
    m, n = W_A.shape
    R = max(1, min(int(max_rank), m, n))
    dW = W_B - W_A
    Ud, Sd, Vdh = np.linalg.svd(dW, full_matrices=False)
    total = float(np.sum(Sd**2))
    noise = rounding_floor(W_B, eps)
    nan = np.full(R, np.nan)
    if total == 0.0:
        share, amplification = nan, nan
    else:
        Ua, _Sa, Vah = np.linalg.svd(W_A, full_matrices=False)
        P = Ua[:, :R].T @ dW @ Vah[:R].T  # (R, R): dW in W_A's singular bases
        share = _leading_block_energy(P) / total
        Q = Ud[:, :R].T @ W_A @ Vdh[:R].T  # (R, R): W_A in dW's singular bases
        projected = np.sqrt(_leading_block_energy(Q))
        with np.errstate(divide="ignore"):
            amplification = np.where(projected > 0, np.sqrt(total) / projected, np.inf)
    return DeltaSpectrum(
        shape=(m, n),
        sigma=Sd,
        frobenius=float(np.sqrt(total)),
        effective_rank=float(ranks.effective_rank(Sd)),
        stable_rank=float(ranks.stable_rank(Sd)),
        numerical_rank=int(np.sum(Sd > noise)),
        noise=noise,
        energy_share=share,
        amplification=amplification,
        a_frobenius=float(np.linalg.norm(W_A)),
    )


def _leading_block_energy(P: np.ndarray) -> np.ndarray:
    """(R,): ||P[:r, :r]||_F^2 for r = 1..R of a square (R, R) array: each step adds row r and column r."""
    E = P**2
    R = E.shape[0]
    out = np.empty(R)
    acc = 0.0
    for r in range(R):
        acc += float(E[r, : r + 1].sum() + E[:r, r].sum())
        out[r] = acc
    return out


# ---------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class OutputComparison:
    """A and B on the same token ids (causal LMs). kl: mean over predicting positions of
    KL(p_A || p_B) = sum_v p_A (log p_A - log p_B), nats per token. kl_per_position: (position,) float64.
    top1_agreement: share of positions whose most likely next token is the same in A and B (llama.cpp
    perplexity's "Same top p"). perplexity_a, perplexity_b: exp(mean NLL of the actual next tokens).
    n_positions: predictions compared (tokens - 1)."""

    kl: float
    kl_per_position: np.ndarray
    top1_agreement: float
    perplexity_a: float
    perplexity_b: float
    n_positions: int


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def compare_outputs(logits_a: np.ndarray, logits_b: np.ndarray, ids) -> OutputComparison:
    """``logits_a``, ``logits_b``: (token, vocab) next-token scores of A and B on ``ids`` (token,); position t
    predicts ids[t + 1], so the last position is not scored."""
    ids = np.asarray(ids, dtype=np.int64)
    if logits_a.shape != logits_b.shape or logits_a.shape[0] != ids.shape[0]:
        raise ValueError("A's and B's logits must both be (token, vocab) over the same tokens.")
    if ids.shape[0] < 2:
        raise ValueError("Comparing outputs needs at least two tokens (one next-token prediction).")
    la = _log_softmax(logits_a[:-1])
    lb = _log_softmax(logits_b[:-1])
    # KL >= 0 (Gibbs); clamp the ~1e-16 rounding equal distributions leave.
    kl = np.maximum((np.exp(la) * (la - lb)).sum(axis=-1), 0.0)
    targets = ids[1:]
    rows = np.arange(targets.shape[0])
    return OutputComparison(
        kl=float(kl.mean()),
        kl_per_position=kl,
        top1_agreement=float(np.mean(la.argmax(-1) == lb.argmax(-1))),
        perplexity_a=float(np.exp(-la[rows, targets].mean())),
        perplexity_b=float(np.exp(-lb[rows, targets].mean())),
        n_positions=int(targets.shape[0]),
    )


@dataclass(frozen=True)
class HiddenComparison:
    """A and B on the same text (encoders, which predict no tokens): cosine: (token,) cosine similarity of the
    last hidden states per token; mean_cosine its mean; relative_change: ||H_B - H_A||_F / ||H_A||_F."""

    cosine: np.ndarray
    mean_cosine: float
    relative_change: float


def compare_hidden(hidden_a: np.ndarray, hidden_b: np.ndarray) -> HiddenComparison:
    """``hidden_a``, ``hidden_b``: (token, d_model) last hidden states of A and B on the same tokens."""
    a = np.asarray(hidden_a, dtype=np.float64)
    b = np.asarray(hidden_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("A's and B's hidden states must have the same shape.")
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where((na > 0) & (nb > 0), (a * b).sum(-1) / (na * nb), np.nan)
    norm_a = float(np.linalg.norm(a))
    return HiddenComparison(
        cosine=cos,
        mean_cosine=float(np.nanmean(cos)),
        relative_change=float(np.linalg.norm(b - a)) / norm_a if norm_a > 0 else float("nan"),
    )
