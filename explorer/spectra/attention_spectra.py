"""Spectral maths on stacks of attention matrices, defined once (docs/ARCHITECTURE.md section 2).

Every function takes a stack ``A`` of shape (..., query, key) (e.g. (layer, head, query, key) or
(batch, query, key)): row-stochastic, float64 torch tensors on any device, and works on the whole stack
at once. Eigenvalue orders are fixed here so that every page, test and report means the same thing:
eigenvalues by modulus, descending (ties: real part, then imaginary part, descending, so a conjugate pair
lists +i first); Laplacian eigenvalues by real part, descending.

Cost notes (measured on 512 x 512 heads, one CPU core): a full eigensolve (LAPACK geev) takes about 250 ms a
head, so the cheap per-head summaries avoid it:

- lower-triangular (causal) heads: the eigenvalues ARE the diagonal entries (no solver at all);
- strictly positive (bidirectional) heads: |lambda_2| from a batched Arnoldi iteration (about 10 ms), checked
  against geev in tests and falling back to geev for the heads where it has not converged;
- singular values from the eigenvalues of the Gram matrix A A^T (about 25 ms instead of 46 ms for an SVD).

On CPU the LAPACK-heavy calls (geev, syevd, the Gram products) go through numpy (OpenBLAS), which measured
1.5-2x faster here than torch's bundled MKL; torch also only loops over the batch on CPU. On CUDA they stay in
torch. The Arnoldi iteration always runs in numpy, one head at a time (see arnoldi_top_eigvals).
"""

from __future__ import annotations

import numpy as np
import torch

# Arnoldi settings for |lambda_2|: the Krylov dimension grows up to MAX_KRYLOV_DIM, with convergence checked at
# these sizes (an eigensolve of the small Hessenberg matrix each time, so not at every step).
MAX_KRYLOV_DIM = 240
KRYLOV_CHECKPOINTS = (12, 20, 30, 45, 65, 90, 125, 170, 240)
# A Ritz pair counts as converged when its residual ||A x - theta x|| <= KRYLOV_TOL * ||A||_inf.
KRYLOV_TOL = 1e-13
# Below this size a full eigensolve is as cheap as the Krylov bookkeeping.
KRYLOV_MIN_N = 96
# How lambda_2 of each head was obtained (AttentionGrid.lambda2_method).
METHOD_DIAGONAL, METHOD_KRYLOV, METHOD_FULL = 0, 1, 2
# Not computed at this length (the value is NaN): a general head's lambda_2 past the full-decomposition length.
METHOD_NOT_OFFERED = -1
# Power iteration for sigma_1 (stable rank at long lengths): stop once the certified interval for sigma_1^2 is
# this narrow relative to its lower end, or the estimate moves less than POWER_RTOL**2 in a step, or after
# POWER_MAX_ITERATIONS (each iteration reads every head twice).
POWER_RTOL = 1e-3
POWER_MAX_ITERATIONS = 30
PAGERANK_DAMPING = 0.85


# ---------------------------------------------------------------------------------------------------------
# Conversions and orderings


def as_float64(attentions, device: str | torch.device = "cpu") -> torch.Tensor:
    """A float64 copy of ``attentions`` (numpy or torch, any float dtype) on ``device``; never a view of it,
    so a cached, read-only capture cannot be changed through the result."""
    if isinstance(attentions, np.ndarray):
        return torch.tensor(attentions, dtype=torch.float64, device=device)
    return attentions.detach().to(device=device, dtype=torch.float64, copy=True)


def _lexsort_desc(keys: list[torch.Tensor]) -> torch.Tensor:
    """Indices sorting the last axis by ``keys[0]`` descending, ties by ``keys[1]``, ... (stable sorts)."""
    order = torch.arange(keys[0].shape[-1], device=keys[0].device).expand_as(keys[0])
    for key in reversed(keys):
        sorted_key = torch.gather(key, -1, order)
        step = torch.sort(sorted_key, dim=-1, descending=True, stable=True).indices
        order = torch.gather(order, -1, step)
    return order


def sort_by_modulus_order(values: torch.Tensor) -> torch.Tensor:
    """Indices (..., n) that sort complex values by modulus descending, then real part, then imaginary part
    descending: the project's one order for eigenvalues (index 0 is lambda_1)."""
    values = values.to(torch.complex128)
    return _lexsort_desc([values.abs(), values.real, values.imag])


def sort_by_modulus(values: torch.Tensor) -> torch.Tensor:
    """Complex values (..., n) in the order of ``sort_by_modulus_order``."""
    values = values.to(torch.complex128)
    return torch.gather(values, -1, sort_by_modulus_order(values))


def sort_by_real(values: torch.Tensor) -> torch.Tensor:
    """Complex values (..., n) sorted by real part descending, then imaginary part descending."""
    values = values.to(torch.complex128)
    order = _lexsort_desc([values.real, values.imag])
    return torch.gather(values, -1, order)


def is_lower_triangular(A: torch.Tensor) -> torch.Tensor:
    """(...,) bool: every entry above the diagonal is exactly zero (causal masking gives exact zeros)."""
    return (torch.triu(A, diagonal=1) == 0).flatten(-2).all(-1)


# ---------------------------------------------------------------------------------------------------------
# Dense solvers (geev, syevd) with the CPU routed through numpy


def _general_eigvals(M: torch.Tensor) -> torch.Tensor:
    """Unsorted eigenvalues (..., n) complex128 of general matrices (..., n, n) by LAPACK geev (balanced)."""
    if M.shape[-1] == 0:
        return torch.zeros(M.shape[:-1], dtype=torch.complex128, device=M.device)
    if M.device.type == "cpu":
        return torch.from_numpy(np.linalg.eigvals(M.numpy()).astype(np.complex128))
    return torch.linalg.eigvals(M)


def _symmetric_eigvalsh(M: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues (..., n) float64 of symmetric matrices (LAPACK syevd)."""
    if M.device.type == "cpu":
        return torch.from_numpy(np.linalg.eigvalsh(M.numpy()))
    return torch.linalg.eigvalsh(M)


# ---------------------------------------------------------------------------------------------------------
# Eigenvalues


def eigvals(A: torch.Tensor, triangular: torch.Tensor | None = None) -> torch.Tensor:
    """All eigenvalues (..., n) complex128, sorted by modulus descending.

    Lower-triangular heads (``triangular`` True, computed when None) take their diagonal: the eigenvalues of a
    triangular matrix are its diagonal entries, exactly. The others go to geev.
    """
    if triangular is None:
        triangular = is_lower_triangular(A)
    return sort_by_modulus(_diagonal_or_general(A, triangular))


def _diagonal_or_general(M: torch.Tensor, triangular: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (..., n) complex128, unsorted, of matrices M (..., n, n): the diagonal where ``triangular``
    (..., bool) is True (exact for a triangular matrix), geev for the others."""
    out = torch.diagonal(M, dim1=-2, dim2=-1).to(torch.complex128).clone()
    general = ~triangular
    if bool(general.any()):
        out[general] = _general_eigvals(M[general])
    return out


def arnoldi_top_eigvals(
    M: np.ndarray,
    k: int = 2,
    *,
    max_dim: int = MAX_KRYLOV_DIM,
    checkpoints: tuple[int, ...] = KRYLOV_CHECKPOINTS,
    tol: float = KRYLOV_TOL,
    seed: int = 0,
) -> np.ndarray | None:
    """The ``k`` largest-modulus eigenvalues of one matrix by Arnoldi with full reorthogonalization.

    Args:
        M: (n, n) float64 numpy array.
        k: how many eigenvalues (by modulus) must have converged.
    Returns:
        (k,) complex128 sorted by modulus descending, or None when they have not converged within ``max_dim``
        Krylov steps (the caller then uses a full solver). Converged means: at one of ``checkpoints`` the
        residual ||M x - theta x|| of each of the top-k Ritz pairs is at most ``tol * ||M||_inf``, or the Krylov
        space became invariant (its Ritz values are then exact).

    Krylov methods see one copy of a repeated eigenvalue only: use this for primitive matrices (e.g. strictly
    positive attention), whose dominant eigenvalue is simple by Perron-Frobenius.

    Numpy on the CPU, one matrix at a time: the iteration is hundreds of small dependent steps, and a 512 x 512
    head (2 MiB) stays in cache; measured here 10 ms a head, against 24-31 ms for torch per head or batched.
    """
    n = M.shape[0]
    m_max = min(max_dim, n)
    checks = {c for c in checkpoints if c < m_max} | {m_max}
    rng = np.random.default_rng(seed)
    V = np.empty((m_max + 1, n))
    H = np.zeros((m_max + 1, m_max))
    v = rng.standard_normal(n)
    V[0] = v / np.linalg.norm(v)
    scale = np.abs(M).sum(axis=1).max()
    for j in range(m_max):
        size = j + 1
        w = M @ V[j]
        Q = V[:size]
        # Classical Gram-Schmidt twice: orthogonal to working precision with matrix-vector products only.
        h = Q @ w
        w -= h @ Q
        h2 = Q @ w
        w -= h2 @ Q
        H[:size, j] = h + h2
        beta = float(np.linalg.norm(w))
        H[size, j] = beta
        invariant = beta <= 1e-14 * scale
        if invariant or size in checks:
            theta, Y = np.linalg.eig(H[:size, :size])
            order = np.lexsort((-theta.imag, -theta.real, -np.abs(theta)))[:k]
            residual = beta * np.abs(Y[-1, order]) / np.linalg.norm(Y[:, order], axis=0)
            if len(order) == k and (invariant or bool((residual <= tol * scale).all())):
                return theta[order].astype(np.complex128)
            if invariant:
                return None
        V[size] = w / beta
    return None


def second_eigval_modulus(
    A: torch.Tensor, triangular: torch.Tensor | None = None, *, krylov_min_n: int = KRYLOV_MIN_N
) -> tuple[torch.Tensor, torch.Tensor]:
    """|lambda_2| of each matrix, without a full eigensolve where a cheaper route is exact.

    Args:
        A: (batch, n, n) float64 row-stochastic.
    Returns:
        lambda2: (batch,) float64, the second-largest eigenvalue modulus (0 for 1 x 1 matrices).
        method: (batch,) int64: METHOD_DIAGONAL (lower-triangular: sorted |diagonal|), METHOD_KRYLOV
        (strictly positive: Arnoldi), METHOD_FULL (geev: small n, zero entries, or Arnoldi not converged).
    """
    batch, n, _ = A.shape
    lam2 = torch.zeros(batch, dtype=torch.float64, device=A.device)
    method = torch.full((batch,), METHOD_FULL, dtype=torch.int64, device=A.device)
    if n < 2 or batch == 0:
        return lam2, method
    if triangular is None:
        triangular = is_lower_triangular(A)
    if bool(triangular.any()):
        diag = torch.diagonal(A[triangular], dim1=-2, dim2=-1).abs()
        lam2[triangular] = torch.topk(diag, 2, dim=-1).values[:, 1]
        method[triangular] = METHOD_DIAGONAL
    # Strictly positive matrices are primitive: the Perron root is simple and every other |lambda| < 1,
    # which is what a single-vector Krylov method needs. Zero entries (float32 underflow) can make a head
    # reducible with a repeated eigenvalue 1, so those go to the full solver.
    krylov = ~triangular & (A > 0).flatten(-2).all(-1) if n >= krylov_min_n else torch.zeros_like(triangular)
    for i in torch.nonzero(krylov).squeeze(-1).tolist():
        top = arnoldi_top_eigvals(A[i].cpu().numpy(), 2)
        if top is not None:
            lam2[i] = float(abs(top[1]))
            method[i] = METHOD_KRYLOV
    full = method == METHOD_FULL
    if bool(full.any()):
        lam2[full] = sort_by_modulus(_general_eigvals(A[full]))[:, 1].abs()
    return lam2, method


# ---------------------------------------------------------------------------------------------------------
# Singular values


def singular_values(A: torch.Tensor) -> torch.Tensor:
    """Singular values (..., n) float64, descending, by a full SVD (accurate down to eps * sigma_1)."""
    return torch.linalg.svdvals(A)


def singular_values_gram(A: torch.Tensor) -> torch.Tensor:
    """Singular values (..., n) float64, descending, as sqrt(eigenvalues of A A^T): half the cost of an SVD.

    Accuracy: the Gram eigenvalues carry an absolute error of about eps * sigma_1^2, so sigma_i has a relative
    error of about eps * (sigma_1 / sigma_i)^2 / 2: 1e-8 at sigma_i = 1e-4 sigma_1 (the float32 numerical-rank
    threshold at 512 tokens is 6e-5 sigma_1), and values below about 1e-8 sigma_1 read as noise of that size.
    The noise floor adds up in sum(sigma): effective rank matches an SVD's to a relative 1e-4 (worst measured:
    8e-6, on nearly rank-one sink heads of SmolLM2 at 512 tokens, whose other singular values are below 1e-14);
    stable and numerical rank match to rounding (tested).
    """
    if A.device.type == "cpu":
        a = A.numpy()
        gram = torch.from_numpy(a @ a.transpose(0, 2, 1) if a.ndim == 3 else a @ a.T)
    else:
        gram = A @ A.transpose(-1, -2)
    return _symmetric_eigvalsh(gram).flip(-1).clamp_min(0).sqrt()


# ---------------------------------------------------------------------------------------------------------
# Row statistics


def allowed_keys(n: int, causal: bool, device=None) -> torch.Tensor:
    """(n,) float64: how many keys query i may attend to (i + 1 under a causal mask, else n)."""
    if causal:
        return torch.arange(1, n + 1, dtype=torch.float64, device=device)
    return torch.full((n,), float(n), dtype=torch.float64, device=device)


def row_entropy(A: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean row entropy of each matrix.

    Returns:
        nats: (...,) mean over all rows of -sum_j a_ij log a_ij.
        normalised: (...,) mean over rows with at least two allowed keys of that entropy / log(allowed keys),
        in [0, 1] (1 = uniform over what the row may see). NaN when no row has two allowed keys.
    """
    n = A.shape[-1]
    # xlogy: 0 log 0 = 0. Summed in float64 whatever A's dtype (a float32 layer of a long text is not copied).
    per_row = -torch.special.xlogy(A, A).sum(-1, dtype=torch.float64)  # (..., query)
    nats = per_row.mean(-1)
    allowed = allowed_keys(n, causal, A.device)
    usable = allowed >= 2
    if not bool(usable.any()):
        return nats, torch.full_like(nats, float("nan"))
    normalised = (per_row[..., usable] / torch.log(allowed[usable])).mean(-1)
    return nats, normalised


def sink_mass(A: torch.Tensor) -> torch.Tensor:
    """(...,) mean over queries of the attention on the first token, a_{i0}."""
    return A[..., :, 0].to(torch.float64).mean(-1)


# ---------------------------------------------------------------------------------------------------------
# Attention Laplacian (LapEigvals, Binkowski et al. 2025)


def laplacian_degrees(A: torch.Tensor) -> torch.Tensor:
    """(..., key) d_jj = (sum_u a_uj) / (T - j), j 0-based: the attention key j receives, averaged over the
    T - j queries that can see it under a causal mask (the paper's definition, used for every head)."""
    n = A.shape[-1]
    counts = torch.arange(n, 0, -1, dtype=torch.float64, device=A.device)
    return A.sum(-2) / counts


def laplacian(A: torch.Tensor) -> torch.Tensor:
    """L = D - A (..., n, n), D = diag(laplacian_degrees(A))."""
    return torch.diag_embed(laplacian_degrees(A)) - A


def laplacian_eigvals(A: torch.Tensor, triangular: torch.Tensor | None = None) -> torch.Tensor:
    """Eigenvalues (..., n) complex128 of L = D - A, sorted by real part descending.

    For a lower-triangular A, L is lower-triangular too, so its eigenvalues are d_jj - a_jj exactly; the other
    heads go to geev.
    """
    if triangular is None:
        triangular = is_lower_triangular(A)
    return sort_by_real(_diagonal_or_general(laplacian(A), triangular))


# ---------------------------------------------------------------------------------------------------------
# Temperature, symmetric part, stationary distribution


def temperature(A: torch.Tensor, tau: float) -> torch.Tensor:
    """A_tau = row-softmax(log(A) / tau), (..., n, n).

    Exact: log A differs from the pre-softmax scores by a per-row constant, which softmax ignores. Zero
    (masked) entries stay zero. tau < 1 sharpens, tau > 1 flattens towards uniform over the allowed keys.
    """
    if not tau > 0:
        raise ValueError("tau must be positive")
    logits = torch.where(A > 0, torch.log(torch.where(A > 0, A, 1.0)) / tau, float("-inf"))
    return torch.softmax(logits, dim=-1)


def symmetric_part(A: torch.Tensor) -> torch.Tensor:
    """S = (A + A^T) / 2, (..., n, n)."""
    return (A + A.transpose(-1, -2)) / 2


def fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """Deterministic signs/phases for column vectors (..., n, k): each column is scaled by a unit factor so that
    its largest-magnitude entry (the first, on ties) is real and positive (scikit-learn's svd_flip idea); a
    zero column stays as it is. The one sign convention of the project."""
    idx = vectors.abs().argmax(dim=-2, keepdim=True)
    pivot = torch.gather(vectors, -2, idx)
    unit = torch.where(
        pivot == 0, torch.ones_like(pivot), pivot / pivot.abs().clamp_min(torch.finfo(torch.float64).tiny)
    )
    return vectors / unit


def symmetric_eigvals(A: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (..., n) float64 of S = (A + A^T)/2, descending (no eigenvectors: half the cost of eigh)."""
    return _symmetric_eigvalsh(symmetric_part(A)).flip(-1)


def symmetric_eigh(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of S = (A + A^T)/2.

    Returns:
        values: (..., n) float64, descending (real, since S is symmetric).
        vectors: (..., n, n) float64, orthonormal columns matching ``values``, signs fixed by ``fix_signs``.
    """
    values, vectors = torch.linalg.eigh(symmetric_part(A))
    return values.flip(-1), fix_signs(vectors.flip(-1))


def stationary_distribution(A: torch.Tensor, damping: float = PAGERANK_DAMPING) -> torch.Tensor:
    """Left Perron vector of the PageRank chain P = damping * A + (1 - damping) * 1 u^T / n, (..., n).

    pi P = pi, pi >= 0, sum pi = 1, i.e. pi = (1 - damping)/n * 1^T (I - damping A)^{-1}. The teleport keeps
    causal heads (where token 0 is absorbing) from putting all the mass on the first token. damping = 1 gives the
    plain left Perron vector of A (unique when A is irreducible).
    """
    if not 0 < damping <= 1:
        raise ValueError("damping must be in (0, 1]")
    n = A.shape[-1]
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    if damping < 1:
        rhs = torch.full((*A.shape[:-2], n, 1), (1 - damping) / n, dtype=A.dtype, device=A.device)
        pi = torch.linalg.solve((eye - damping * A).transpose(-1, -2), rhs).squeeze(-1)
    else:
        # Replace one equation of (A^T - I) pi = 0 by sum(pi) = 1.
        M = (A - eye).transpose(-1, -2).clone()
        M[..., -1, :] = 1.0
        rhs = torch.zeros((*A.shape[:-2], n, 1), dtype=A.dtype, device=A.device)
        rhs[..., -1, 0] = 1.0
        pi = torch.linalg.solve(M, rhs).squeeze(-1)
    pi = pi.clamp_min(0)
    return pi / pi.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------------------------
# The top of the spectrum without a whole decomposition (long texts)


def top_singular_value_power(
    A: torch.Tensor, *, rtol: float = POWER_RTOL, max_iterations: int = POWER_MAX_ITERATIONS
) -> dict[str, torch.Tensor]:
    """sigma_1^2 of each matrix by power iteration on B = A^T A, with a certified interval. O(T^2) a step.

    Args:
        A: (batch, n, n), any float dtype (a float32 layer is used as it is: the products run in its dtype, the
            small reductions in float64).
    Returns (each (batch,) float64):
        sigma1_sq: the Rayleigh quotient rho = ||A x||^2 of the last unit iterate x: a LOWER bound of sigma_1^2
            (for any unit x, ||A x|| <= sigma_1).
        sigma1_sq_upper: an UPPER bound of sigma_1^2: the smallest of
            - max(rho + r, ||A||_F^2 - rho + r), r = ||B x - rho x||: B is symmetric, so some eigenvalue mu of B
              lies within r of rho (Weyl); either mu = sigma_1^2 <= rho + r, or sigma_1^2 + mu <= trace B =
              ||A||_F^2, so sigma_1^2 <= ||A||_F^2 - rho + r. Tight for heads dominated by one direction;
            - ||A||_1 ||A||_inf (max column sum times max row sum of |A|), always true.
        frobenius_sq: ||A||_F^2; residual: r; iterations: steps taken (int64).
    The start x_0 = A^T 1 (column sums; positive for attention) is one power step from the all-ones vector,
    which attention maps to itself (A 1 = 1). Stops when (upper - rho) <= rtol * rho for every matrix, when rho
    moved less than rtol^2 relatively in a step, or after ``max_iterations``. Convergence is geometric with
    ratio (sigma_2 / sigma_1)^2. Rounding: products in float32 give rho a relative error of about
    n * eps(float32) at worst (1e-3 at n = 8,192, far less in practice), which the bounds do not include.
    """
    batch, n, _ = A.shape
    f64 = torch.float64
    # Per matrix, on views: a (9, 8192, 8192) float32 layer is 2.4 GB, so no whole-stack temporaries.
    frobenius_sq = torch.stack([(a.to(f64) ** 2).sum() for a in A]) if batch else A.new_zeros(0, dtype=f64)
    norm_bound = (
        torch.stack([a.abs().sum(0, dtype=f64).amax() * a.abs().sum(1, dtype=f64).amax() for a in A])
        if batch
        else frobenius_sq.clone()
    )
    x = torch.stack([a.sum(0, dtype=f64) for a in A]) if batch else A.new_zeros((0, n), dtype=f64)
    x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(torch.finfo(f64).tiny)
    rho = torch.zeros(batch, dtype=f64, device=A.device)
    upper = norm_bound.clone()
    residual = torch.full_like(rho, float("inf"))
    steps = torch.zeros(batch, dtype=torch.int64, device=A.device)
    active = [True] * batch
    for _ in range(max(1, max_iterations)):
        if not any(active):
            break
        for i in range(batch):
            if not active[i]:
                continue
            y = A[i] @ x[i].to(A.dtype)  # A x
            z = (A[i].T @ y).to(f64)  # B x = A^T A x
            new_rho = (y.to(f64) ** 2).sum()
            r = torch.linalg.vector_norm(z - new_rho * x[i])
            bound = torch.minimum(torch.maximum(new_rho + r, frobenius_sq[i] - new_rho + r), norm_bound[i])
            moved = bool((new_rho - rho[i]).abs() <= rtol * rtol * new_rho)
            rho[i], residual[i], upper[i] = new_rho, r, torch.minimum(bound, upper[i])
            steps[i] += 1
            x[i] = z / torch.linalg.vector_norm(z).clamp_min(torch.finfo(f64).tiny)
            active[i] = not (bool(upper[i] - new_rho <= rtol * new_rho) or moved or bool(r == 0))
    return {
        "sigma1_sq": rho,
        "sigma1_sq_upper": torch.maximum(upper, rho),
        "frobenius_sq": frobenius_sq,
        "residual": residual,
        "iterations": steps,
    }


# Krylov routes for one head (scipy ARPACK on the CPU): the top k of a spectrum, each value with the residual
# that bounds its error.


def krylov_singular(
    A: np.ndarray, k: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-k singular triplets of one (n, n) matrix by ARPACK (scipy.sparse.linalg.svds, Lanczos on A^T A).

    Returns:
        values: (k,) float64 descending; U: (n, k), V: (n, k) unit singular vectors (columns);
        residuals: (k,) float64, r_i = sqrt(||A v_i - s_i u_i||^2 + ||A^T u_i - s_i v_i||^2) / sqrt(2): the residual
        of the unit eigenvector [u; v]/sqrt(2) of the symmetric [[0, A], [A^T, 0]], whose eigenvalues are
        +-sigma_j, so some singular value of A lies within r_i of s_i (Weyl).
    """
    from scipy.sparse.linalg import svds

    n = A.shape[0]
    k = max(1, min(int(k), n - 1))
    v0 = np.random.default_rng(seed).standard_normal(n)
    U, S, Vt = svds(A, k=k, v0=v0, which="LM", solver="arpack")
    order = np.argsort(-S, kind="stable")
    U, S, V = U[:, order], S[order], Vt[order].T
    res = np.sqrt(
        np.linalg.norm(A @ V - U * S, axis=0) ** 2 + np.linalg.norm(A.T @ U - V * S, axis=0) ** 2
    ) / np.sqrt(2)
    return S, U, V, res


def krylov_symmetric(
    S: np.ndarray, k: int, seed: int = 0, which: str = "LA"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k largest eigenpairs of one symmetric (n, n) matrix by ARPACK (eigsh, Lanczos): largest algebraic
    (which="LA") or largest modulus ("LM").

    Returns values (k,) float64 descending, vectors (n, k) unit columns, residuals (k,) ||S v - lambda v||: some
    eigenvalue of S lies within each residual of its value (Weyl; S is symmetric).
    """
    from scipy.sparse.linalg import eigsh

    n = S.shape[0]
    k = max(1, min(int(k), n - 1))
    v0 = np.random.default_rng(seed).standard_normal(n)
    values, vectors = eigsh(S, k=k, which=which, v0=v0)
    order = np.argsort(-values, kind="stable")
    values, vectors = values[order], vectors[:, order]
    return values, vectors, np.linalg.norm(S @ vectors - vectors * values, axis=0)


def krylov_general(M: np.ndarray, k: int, which: str = "LM", seed: int = 0):
    """k eigenpairs of one general (n, n) matrix by ARPACK (eigs, implicitly restarted Arnoldi).

    ``which``: "LM" (largest modulus; ordered like ``sort_by_modulus``) or "LR" (largest real part; ordered like
    ``sort_by_real``). Returns values (k or k - 1,) complex128 (k - 1 when the k-th would split a conjugate pair), unit vectors (n, k), residuals (k,) ||M v - lambda v||.
    A non-symmetric M has no Weyl bound: each value is an exact eigenvalue of some M + E with ||E||_2 = its
    residual (backward error); its distance to an eigenvalue of M is at most about the residual times that
    eigenvalue's condition number.
    """
    from scipy.sparse.linalg import eigs

    n = M.shape[0]
    k = max(1, min(int(k), n - 3))
    v0 = np.random.default_rng(seed).standard_normal(n)
    # One more than asked, so that a conjugate pair cut at the k-th value can be recognised and dropped whole.
    values, vectors = eigs(M, k=k + 1, which=which, v0=v0)
    values = torch.from_numpy(values.astype(np.complex128))
    order = (
        sort_by_modulus_order(values) if which == "LM" else _lexsort_desc([values.real, values.imag])
    ).numpy()
    values, vectors = values.numpy()[order][:k], vectors[:, order][:, :k]
    last = values[-1]
    if abs(last.imag) > 0 and not np.any(np.isclose(values[:-1], np.conj(last), rtol=1e-10, atol=0)):
        # Half of a conjugate pair whose partner is not in the top k: drop it.
        values, vectors = values[:-1], vectors[:, :-1]
    vectors = vectors / np.linalg.norm(vectors, axis=0)
    return values, vectors, np.linalg.norm(M @ vectors - vectors * values, axis=0)
