"""Low-rank factorizations of weight matrices: plain truncated SVD, ASVD and SVD-LLM (docs/ARCHITECTURE.md section 2).

One form for all three methods. Each picks an orthonormal basis U of shape (m, r), r = min(m, n), of the
output space of W (m, n) = (out, in), ordered by importance, and approximates W at rank k by the projection

    W_k = U_k U_k^T W,   stored as  A_k = U[:, :k]  (m, k)  and  B_k = (U^T W)[:k]  (k, n),

k(m + n) numbers instead of mn (break-even rank mn / (m + n)). The methods differ only in which matrix M
they take U from (U = left singular vectors of M):

- ``svd`` (plain truncated SVD): M = W. Eckart-Young: W_k is the best rank-k approximation in Frobenius
  norm, error ||W - W_k||_F = sqrt(sum_{i>k} sigma_i^2).
- ``asvd`` (activation-aware SVD, Yuan et al. 2023): M = W D, D = diag(s), s_j = mean_t |x_tj|^alpha with
  alpha = 0.5, x the calibration inputs of the matrix. Input channels that carry large activations weigh more.
- ``svdllm`` (SVD-LLM, Wang et al. 2024): M = W L with L L^T = X^T X + lambda I (Cholesky; X is the
  (token, in) matrix of calibration inputs). Then ||(W - W') L||_F^2 = ||(W - W') X^T||_F^2 + lambda ||W - W'||_F^2,
  so the truncated SVD of W L gives the rank-k W' with the smallest output error on the calibration data
  (plus a small ridge term). Consequence, tested: the output error ||(W - W_k) X^T||_F of SVD-LLM is never
  above plain SVD's at the same rank, for any lambda >= 0 (plain SVD has the smaller ||W - W'||_F, so the
  ridge term can only favour it; the inequality survives).

The papers write the compressed matrix as U_k S_k V_k^T T^{-1} (T = D or L). That equals U_k U_k^T W T T^{-1}
= U_k U_k^T W, so we form the right factor as U_k^T W: identical in exact arithmetic, and it never inverts
the Cholesky factor, whose condition number can be large. The ridge, lambda = RIDGE * trace(X^T X) / n,
makes X^T X + lambda I positive definite when there are fewer calibration tokens than input channels
(SmolLM2's down_proj has 1536 inputs), where the plain Gram matrix is singular and Cholesky fails.

Precision: activation statistics are accumulated in float64 across chunks (massive-activation channels make
X^T X span many orders of magnitude). The basis U comes by default from the float64 eigendecomposition of M's
smaller Gram matrix (``_gram_basis``: squaring the condition number costs nothing below break-even, its
docstring says why; for SVD-LLM's wide matrices M M^T = W (X^T X + lambda I) W^T needs no Cholesky); a tall M
too ill-conditioned for that, or ``route="direct"``, takes a float32 SVD followed by one float64 QR of U (the
Cholesky factor then in float64). Either way full rank reproduces W to float32 rounding; the stored factors are
CPU float32. Error tails are summed in float64; the Eckart-Young floor of the activation-aware methods comes
from the float64 eigenvalues of the smaller Gram matrix of W.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from explorer.analysis.matrices import weight_matrices
from explorer.labels import LOWRANK_METHOD_LABELS

METHODS = ("svd", "asvd", "svdllm")
ROUTES = ("gram", "direct")
METHOD_LABELS = LOWRANK_METHOD_LABELS
ASVD_ALPHA = 0.5
# Relative ridge for SVD-LLM: lambda = RIDGE * mean diagonal of X^T X (see the module docstring).
RIDGE = 1e-2
# ASVD scales below this share of the largest are floored, so a dead channel keeps a tiny weight.
ASVD_FLOOR = 1e-6


@dataclass(frozen=True)
class ActivationStats:
    """Calibration statistics of one matrix's input x (in,).

    abs_mean: ndarray of shape (in,), float64: mean over tokens of |x_j|.
    gram: tensor of shape (in, in), float32: X^T X summed over calibration tokens (X is (token, in)); stored
        in float32 to halve memory, accumulated in float64.
    n_tokens: number of calibration tokens.
    """

    abs_mean: np.ndarray
    gram: torch.Tensor
    n_tokens: int


@dataclass(frozen=True)
class MatrixFactors:
    """One matrix's factors. W_k = U[:, :k] @ B[:k] for any k in [1, r].

    shape: (m, n) = (out, in). U: tensor of shape (m, r), float32, orthonormal columns. B: tensor of shape
    (r, n), float32, U^T W. sigma: ndarray of shape (r,), float64, singular values of the method's matrix M.
    weight_tail, plain_tail, output_tail: ndarrays of shape (r + 1,), float64, entry k is, at rank k:
    ||W - W_k||_F^2 (this method), sum_{i>k} sigma_i(W)^2 (Eckart-Young, the best any rank-k matrix can do),
    and ||(W - W_k) X^T||_F^2 on the calibration inputs (None without calibration). output_norm2: ||W X^T||_F^2.
    n_bias: bias entries (kept dense). calibrated: False when the method fell back to plain SVD.
    """

    name: str
    module: str
    kind: str
    layer: int | None
    shape: tuple[int, int]
    U: torch.Tensor
    B: torch.Tensor
    sigma: np.ndarray
    weight_tail: np.ndarray
    plain_tail: np.ndarray
    output_tail: np.ndarray | None
    output_norm2: float | None
    n_bias: int
    calibrated: bool

    @property
    def max_rank(self) -> int:
        return int(self.U.shape[1])

    @property
    def break_even(self) -> float:
        """mn / (m + n): below this rank the two factors hold fewer numbers than W."""
        m, n = self.shape
        return m * n / (m + n)

    @property
    def dense_params(self) -> int:
        m, n = self.shape
        return m * n + self.n_bias

    def params(self, k: int) -> int:
        """k(m + n) + bias: the factored matrix's parameter count at rank k."""
        m, n = self.shape
        return int(k) * (m + n) + self.n_bias

    def clamp(self, k: int) -> int:
        return int(min(max(int(k), 1), self.max_rank))

    def factors(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_k (m, k), B_k (k, n)): views, no copy."""
        k = self.clamp(k)
        return self.U[:, :k], self.B[:k]

    def reconstruct(self, k: int) -> torch.Tensor:
        """W_k as a dense (m, n) float32 tensor."""
        A, B = self.factors(k)
        return A @ B

    def weight_error(self, k: int) -> float:
        """||W - W_k||_F / ||W||_F for this method."""
        return _relative(self.weight_tail, self.clamp(k))

    def eckart_young_error(self, k: int) -> float:
        """sqrt(sum_{i>k} sigma_i(W)^2) / ||W||_F: the smallest relative error any rank-k matrix reaches."""
        return _relative(self.plain_tail, self.clamp(k))

    def output_error(self, k: int) -> float | None:
        """||(W - W_k) X^T||_F / ||W X^T||_F on the calibration inputs, or None without calibration."""
        if self.output_tail is None:
            return None
        return _relative(self.output_tail, self.clamp(k))


@dataclass(frozen=True)
class Factorization:
    """Factors of the chosen matrices of one model by one method (and one calibration)."""

    method: str
    matrices: tuple[MatrixFactors, ...]
    calibration_tokens: int
    notes: tuple[str, ...] = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.kind for m in self.matrices))

    def nbytes(self) -> int:
        return int(sum(m.U.numel() * 4 + m.B.numel() * 4 for m in self.matrices))


def _relative(tail: np.ndarray, k: int) -> float:
    total = tail[0]
    return float(np.sqrt(max(tail[k], 0.0) / total)) if total > 0 else 0.0


def _tail_sums(values: np.ndarray) -> np.ndarray:
    """(r,) -> (r + 1,): entry k = sum_{i >= k} values[i] (0-based), entry r = 0; summed from the small end."""
    out = np.zeros(len(values) + 1)
    out[:-1] = np.cumsum(values[::-1])[::-1]
    return out


def eckart_young_error(S, k: int) -> float:
    """sqrt(sum_{i>k} sigma_i^2) for singular values ``S`` (r,), sorted decreasing: ||W - W_k||_F exactly."""
    S = np.asarray(S.detach().cpu() if isinstance(S, torch.Tensor) else S, dtype=np.float64)
    return float(np.sqrt((S[int(k) :] ** 2).sum()))


def asvd_scales(abs_mean: np.ndarray, alpha: float = ASVD_ALPHA) -> np.ndarray:
    """(in,) -> (in,): s_j = mean|x_j|^alpha, floored at ASVD_FLOOR times the largest."""
    s = np.power(np.maximum(np.asarray(abs_mean, dtype=np.float64), 0.0), alpha)
    top = s.max() if s.size else 0.0
    return np.maximum(s, ASVD_FLOOR * top if top > 0 else 1.0)


def whitening_factor(gram: torch.Tensor, ridge: float = RIDGE) -> torch.Tensor:
    """Lower-triangular L (in, in), float64, with L L^T = gram + lambda I, lambda = ridge * trace / in."""
    G = gram.to(torch.float64)
    n = G.shape[0]
    lam = ridge * float(torch.diagonal(G).sum()) / n
    if lam <= 0:  # no calibration signal at all
        lam = 1.0
    G = (G + G.T) / 2 + lam * torch.eye(n, dtype=torch.float64)
    L, info = torch.linalg.cholesky_ex(G)
    if int(info) != 0:  # rounding made it indefinite: a larger ridge always succeeds
        L = torch.linalg.cholesky(G + 10 * lam * torch.eye(n, dtype=torch.float64))
    return L


def _method_matrix64(W32: torch.Tensor, method: str, stats, ridge: float, alpha: float) -> torch.Tensor:
    """M in float64: W, W D (ASVD) or W L (SVD-LLM)."""
    W64 = W32.to(torch.float64)
    if method == "asvd":
        return W64 * torch.from_numpy(asvd_scales(stats.abs_mean, alpha))[None, :]
    if method == "svdllm":
        return W64 @ whitening_factor(stats.gram, ridge)
    return W64


def _direct_basis(W32, method, stats, ridge, alpha) -> tuple[torch.Tensor, torch.Tensor]:
    """(U (m, r) float64 orthonormal, singular values (r,)) from a float32 SVD of M and one float64 QR."""
    if method == "asvd":
        M = W32 * torch.from_numpy(asvd_scales(stats.abs_mean, alpha)).to(torch.float32)[None, :]
    elif method == "svdllm":
        M = W32 @ whitening_factor(stats.gram, ridge).to(torch.float32)
    else:
        M = W32
    if M.shape[0] < M.shape[1]:  # wide: LAPACK is faster on the tall transpose; U = its right vectors
        _, S, Vh = torch.linalg.svd(M.T, full_matrices=False)
        U = Vh.T
    else:
        U, S, _ = torch.linalg.svd(M, full_matrices=False)
    # float32 SVD leaves U^T U = I + O(1e-6), so U U^T W would miss W by ~1.5e-6 even at full rank (1e-4 in
    # SmolLM2's logits after its 90 MLP matrices). One QR in float64 makes U orthonormal to float32 rounding
    # (~3e-7) and moves no column by more than that; the sign fix keeps each column's direction.
    Q, R = torch.linalg.qr(U.to(torch.float64))
    return Q * torch.sign(torch.diagonal(R)), S.to(torch.float64)


def _gram_basis(W32, method, stats, ridge, alpha) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(U (m, r) float64 orthonormal, singular values (r,)) from the float64 eigendecomposition of M's smaller
    Gram matrix; None when a tall M is too ill-conditioned for it (the caller then takes the direct route).

    Wide or square M (m <= n): M M^T = U S^2 U^T, for SVD-LLM W (X^T X + lambda I) W^T (no Cholesky needed);
    eigh returns U orthonormal to float64 rounding, whatever the spectrum. Tall M (m > n): M^T M = V S^2 V^T,
    U = M V S^-1, then one Cholesky-QR pass (U <- U R^-1, R upper triangular: the span of every leading k
    columns is kept) restores orthonormality.
    Cost of squaring: eigenvalues carry an absolute error ~ n eps ||M||^2, so sigma_i has a relative error
    ~ n eps (sigma_1 / sigma_i)^2 and its vector an angle error ~ eps sigma_1^2 / gap_i^2. In float64 that is
    below float32's own rounding (what the stored factors keep) while sigma_i / sigma_1 > ~1e-4, which covers
    every rank below break-even of the real models' matrices; the tails dropped there are sums of sigma_i^2
    >> n eps sigma_1^2. Past 1e-6 (sigma_i^2 near eps sigma_1^2) U = M V S^-1 loses its columns: tall M then
    goes the direct route. The full basis still spans the whole space, so full rank reproduces W either way.
    """
    m, n = W32.shape
    if m <= n:
        if method == "svdllm":  # W L L^T W^T with L L^T = X^T X + lambda I, lambda as in whitening_factor
            W64 = W32.to(torch.float64)
            G = stats.gram.to(torch.float64)
            lam = ridge * float(torch.diagonal(G).sum()) / G.shape[0]
            C = W64 @ ((G + G.T) / 2) @ W64.T + (lam if lam > 0 else 1.0) * (W64 @ W64.T)
        else:
            M = _method_matrix64(W32, method, stats, ridge, alpha)
            C = M @ M.T
        lam2, U = torch.linalg.eigh((C + C.T) / 2)
        return U.flip(1), lam2.flip(0).clamp_min(0).sqrt()
    M = _method_matrix64(W32, method, stats, ridge, alpha)
    lam2, V = torch.linalg.eigh(M.T @ M)
    S = lam2.flip(0).clamp_min(0).sqrt()
    if S[-1] <= 1e-6 * S[0]:
        return None
    U = (M @ V.flip(1)) / S
    R, info = torch.linalg.cholesky_ex(U.T @ U, upper=True)
    if int(info) != 0:
        return None
    return torch.linalg.solve_triangular(R, U, upper=True, left=False), S


def factorize_matrix(
    W: torch.Tensor,
    method: str,
    stats: ActivationStats | None = None,
    *,
    name: str = "W",
    module: str = "",
    kind: str = "other",
    layer: int | None = None,
    n_bias: int = 0,
    ridge: float = RIDGE,
    alpha: float = ASVD_ALPHA,
    route: str = "gram",
) -> MatrixFactors:
    """Factor W (m, n) = (out, in) by ``method``. ``stats`` are needed for asvd/svdllm (without them: plain
    SVD, ``calibrated`` False); with any method they also give the output error on the calibration inputs.
    ``route``: "gram" (default) or "direct", how the basis U is computed (see ``_gram_basis``)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method '{method}'; choose one of {', '.join(METHODS)}.")
    if route not in ROUTES:
        raise ValueError(f"Unknown route '{route}'; choose one of {', '.join(ROUTES)}.")
    W32 = W.detach().to("cpu", torch.float32)
    calibrated = method != "svd" and stats is not None
    basis = None
    if route == "gram":
        basis = _gram_basis(W32, method if calibrated else "svd", stats, ridge, alpha)
    if basis is None:  # the direct route, or a tall matrix too ill-conditioned for its Gram matrix
        basis = _direct_basis(W32, method if calibrated else "svd", stats, ridge, alpha)
    Q, S = basis
    B64 = Q.T @ W32.to(torch.float64)  # (r, n) = U^T W
    U = Q.to(torch.float32).contiguous()
    B = B64.to(torch.float32).contiguous()
    sigma = S.to(torch.float64).numpy()
    weight_tail = _tail_sums((B64**2).sum(dim=1).numpy())
    if method == "svd":
        plain_tail = _tail_sums(sigma**2)
    else:  # sigma_i(W)^2 = eigenvalues of the smaller Gram matrix, in float64 so the tail sums stay exact
        W64 = W32.to(torch.float64)
        small = W64.T @ W64 if W64.shape[1] <= W64.shape[0] else W64 @ W64.T
        plain_tail = _tail_sums(torch.linalg.eigvalsh(small).flip(0).clamp_min(0).numpy())
    output_tail = output_norm2 = None
    if stats is not None:
        G = stats.gram.to(torch.float32)
        # ||u_i^T W X^T||^2 = b_i G b_i^T with b_i = u_i^T W: exact per row because U is orthonormal.
        per_row = ((B @ G) * B).sum(dim=1).to(torch.float64).clamp_min(0).numpy()
        output_tail = _tail_sums(per_row)
        output_norm2 = float(((W32 @ G) * W32).to(torch.float64).sum())
    return MatrixFactors(
        name=name,
        module=module,
        kind=kind,
        layer=layer,
        shape=(int(W.shape[0]), int(W.shape[1])),
        U=U,
        B=B,
        sigma=sigma,
        weight_tail=weight_tail,
        plain_tail=plain_tail,
        output_tail=output_tail,
        output_norm2=output_norm2,
        n_bias=n_bias,
        calibrated=calibrated,
    )


def factorize(
    model: torch.nn.Module,
    method: str,
    kinds,
    stats: dict[str, ActivationStats] | None = None,
    *,
    calibration_tokens: int = 0,
    ridge: float = RIDGE,
    layers=None,
    progress: Callable[[float, str], None] | None = None,
    route: str = "gram",
) -> Factorization:
    """Factor every weight matrix of ``model`` whose kind is in ``kinds`` (and, if given, whose block index
    is in ``layers``: a test's shortcut on big models).

    ``stats`` maps a matrix's module name to its calibration statistics (explorer.analysis.compression
    collects them); for asvd/svdllm a matrix without statistics falls back to plain SVD and a note says so.
    """
    kinds = tuple(kinds)
    chosen = [
        m for m in weight_matrices(model) if m.kind in kinds and (layers is None or m.layer in set(layers))
    ]
    out: list[MatrixFactors] = []
    fallback: list[str] = []
    for i, mat in enumerate(chosen):
        if progress is not None:
            progress(i / max(len(chosen), 1), f"{METHOD_LABELS[method]}: {mat.name}")
        mstats = (stats or {}).get(mat.module)
        if method != "svd" and mstats is None:
            fallback.append(mat.name)
        out.append(
            factorize_matrix(
                mat.weight,
                method,
                mstats,
                name=mat.name,
                module=mat.module,
                kind=mat.kind,
                layer=mat.layer,
                n_bias=0 if mat.bias is None else int(mat.bias.numel()),
                ridge=ridge,
                route=route,
            )
        )
    notes = []
    if fallback:
        notes.append(
            f"No calibration activations for {', '.join(fallback[:3])}{'…' if len(fallback) > 3 else ''}: "
            "plain SVD is used there (an embedding without a tied output layer has no input activations)."
        )
    if progress is not None:
        progress(1.0, f"{METHOD_LABELS[method]}: done")
    return Factorization(method, tuple(out), calibration_tokens, tuple(notes))
