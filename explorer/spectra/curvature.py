"""Spectra of a symmetric linear operator known only through its matrix-vector product (a loss Hessian).

Every routine takes ``matvec``: a callable mapping a flat torch vector of shape (n,) to A v of shape (n,),
with A symmetric (n up to ~1e8: a whole model's parameters). An operator may also offer ``into(v, out)``,
writing A v into a given (n,) row: the solvers then put each product straight into the basis row it becomes
(on a whole model, one 0.5 GB temporary and its copy fewer per product).
Vectors stay torch tensors on the operator's device and dtype (float32 for models, float64 in tests); small projected matrices are float64 numpy.

- ``lanczos_top_k``: top-k eigenpairs by thick-restart Lanczos (Wu & Simon 2000; the Krylov-Schur form of
  Stewart 2001), full reorthogonalisation (classical Gram-Schmidt, repeated when semi-orthogonality needs it:
  ``_orthogonalise``) inside a basis of ``max_basis`` vectors. It holds max_basis + 1 n-vectors (basis plus
  residual; each product is written into the row it becomes); the restart and the final Ritz vectors are
  formed in place, in chunks of the n axis, so no second basis is ever allocated.
  Why not scipy's eigsh: ARPACK keeps ncv >= 2k+1 (default max(2k+1, 20)) float64 vectors (20 x 1.1 GB on a
  135 M-parameter model) and converts every vector to numpy. Why not torch.lobpcg: it needs A as a tensor
  (dense or sparse), not a callable, and its block method holds 3k vectors plus their images (6k).
- ``power_iteration``: the plain method PyHessian uses (2 n-vectors), a reference for the above.
- ``hutchinson_trace`` (Rademacher probes; standard error from the sample spread) and ``hutchpp_trace``
  (Meyer, Musco, Musco & Woodruff 2021).
- ``slq_density``: stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019):
  Ritz values and weights tau^2 per probe, Gaussian broadening on a grid, normalised to integrate to 1.
- ``quadratic_gd``: gradient descent on f(x) = x^T A x / 2, stable exactly when eta < 2 / lambda_max.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from explorer.spectra.memory import empty_huge

Matvec = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]

# In-place basis rotations touch this many entries of the n axis at a time (bounds the temporary).
_CHUNK = 1 << 20
# dot64's float64 copies: 2 MB per operand, within a core's L2.
_DOT_CHUNK = 1 << 18


class Cancelled(Exception):
    """A long computation stopped because its cancel check returned True."""


def _check(cancel: CancelCheck | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("Stopped on request.")


def seeded_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed`` (MPS draws on the CPU)."""
    device = torch.device(device)
    if device.type == "mps":
        device = torch.device("cpu")
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


@dataclass(frozen=True)
class ProbeOptions:
    """How a stochastic or iterative solver draws its vectors, reports and stops (every estimator takes one).

    dtype: torch dtype of the probe and basis vectors (float32 for models, float64 in tests).
    device: where those vectors live (the operator's device; MPS draws its signs on the CPU).
    seed: seeds the Rademacher draws (``seeded_generator``): the same seed gives the same probes.
    progress: called as progress(fraction in [0, 1], message) after each step, or None.
    cancel: polled before each product; returning True stops the solver with ``Cancelled``; or None.
    """

    dtype: torch.dtype = torch.float32
    device: torch.device | str = "cpu"
    seed: int = 0
    progress: Progress | None = None
    cancel: CancelCheck | None = None

    def generator(self) -> torch.Generator:
        """A fresh generator for the Rademacher draws (``seeded_generator`` of device and seed)."""
        return seeded_generator(self.device, self.seed)

    def vectors(self, rows: int, n: int) -> torch.Tensor:
        """(rows, n) uninitialised in dtype on device (``empty_huge``: a whole model's n fits)."""
        return empty_huge((rows, n), dtype=self.dtype, device=self.device)

    def check(self) -> None:
        """Raise ``Cancelled`` if the cancel check says so."""
        _check(self.cancel)

    def report(self, fraction: float, message: str) -> None:
        """Pass (fraction done, message) to progress, if any."""
        if self.progress is not None:
            self.progress(fraction, message)


# The estimators' default options: one shared instance (frozen, so sharing it is safe), named rather than
# written as a call in each signature (ruff's B008).
PROBE_DEFAULTS = ProbeOptions()


def dot64(a: torch.Tensor, b: torch.Tensor) -> float:
    """a . b of two flat (n,) vectors, accumulated in float64 (a Hutchinson sample sums n terms of both
    signs), converted chunk by chunk into two float64 buffers reused for every chunk, so the copies stay in
    cache and nothing is allocated per chunk. For n = 134.5 M on CPU: ``torch.dot(a.double(), b.double())``
    took 1.4-3.3 s (two 1 GB copies); a new float64 copy per chunk 1.0-1.4 s in a process holding a model
    (each 2 MB allocation mapped fresh pages from the kernel); the reused buffers 0.1 s, the same sum bit for
    bit (the same chunks added in the same order)."""
    a, b = a.reshape(-1), b.reshape(-1)
    if a.numel() != b.numel():
        raise ValueError(f"dot64 of vectors of {a.numel()} and {b.numel()} entries.")
    if a.dtype == torch.float64 and b.dtype == torch.float64:
        return float(torch.dot(a, b))
    n = a.numel()
    same = a.data_ptr() == b.data_ptr() and a.stride() == b.stride()  # a norm: one copy per chunk
    a64 = torch.empty(min(n, _DOT_CHUNK), dtype=torch.float64, device=a.device)
    b64 = a64 if same else torch.empty_like(a64)
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for start in range(0, n, _DOT_CHUNK):
        size = min(_DOT_CHUNK, n - start)
        a64[:size].copy_(a[start : start + size])
        if not same:
            b64[:size].copy_(b[start : start + size])
        total += torch.dot(a64[:size], b64[:size])
    return float(total)


_SIGNS_PER_WORD = 16


_SIGN_TABLES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _sign_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Shape (2^16, 16): row w holds the 16 bits of w, lowest first, as -1 / +1 (4 MiB in float32)."""
    key = (dtype, torch.device(device))
    if key not in _SIGN_TABLES:
        words = torch.arange(1 << _SIGNS_PER_WORD, dtype=torch.int32, device=device)[:, None]
        shifts = torch.arange(_SIGNS_PER_WORD, dtype=torch.int32, device=device)
        _SIGN_TABLES[key] = words.bitwise_right_shift(shifts).bitwise_and_(1).mul_(2).sub_(1).to(dtype)
    return _SIGN_TABLES[key]


def rademacher(
    n: int, *, dtype: torch.dtype, device, generator: torch.Generator, out: torch.Tensor | None = None
) -> torch.Tensor:
    """A vector of shape (n,) with i.i.d. +-1 entries: the bits of uniform 16-bit words (each bit a fair,
    independent coin), lowest bit first. torch.randint is one thread and ~7 ns an entry, so one draw per entry
    took 1.2-1.3 s for n = 134.5 M on CPU; one word per 16 entries, expanded by shifts and masks, 0.7-0.85 s;
    looked up in a table of every word's 16 signs (one gather, no int32 temporaries), less again.

    ``out``: a contiguous (n,) tensor of ``dtype`` on the generator's device to write the signs into (a solver's
    reused buffer; the same signs as without it), returned."""
    if out is not None and (out.shape != (n,) or out.dtype != dtype or not out.is_contiguous()):
        raise ValueError(
            f"out must be a contiguous ({n},) {dtype} tensor; got {tuple(out.shape)} {out.dtype}."
        )  # refused before the draw, so the generator is not advanced
    words = torch.randint(
        0, 1 << _SIGNS_PER_WORD, (-(-n // _SIGNS_PER_WORD),), generator=generator, device=device,
        dtype=torch.int32,
    )  # fmt: skip
    table = _sign_table(dtype, words.device)  # (2^16, 16) in {-1, 1}
    if out is None:
        return torch.index_select(table, 0, words).reshape(-1)[:n]
    full = n // _SIGNS_PER_WORD  # words whose 16 signs all fit
    torch.index_select(table, 0, words[:full], out=out[: full * _SIGNS_PER_WORD].view(full, _SIGNS_PER_WORD))
    if full < words.numel():
        out[full * _SIGNS_PER_WORD :].copy_(table[words[full]][: n - full * _SIGNS_PER_WORD])
    return out


def rademacher_into(row: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """row <- Rademacher signs (``rademacher``'s, for that generator), in place when the generator lives on the
    row's device; otherwise (an MPS row: MPS draws on the CPU) drawn there and copied. Returns row."""
    if row.device == generator.device and row.is_contiguous():
        return rademacher(row.numel(), dtype=row.dtype, device=row.device, generator=generator, out=row)
    return row.copy_(rademacher(row.numel(), dtype=row.dtype, device=generator.device, generator=generator))


def _product_into(matvec: Matvec, v: torch.Tensor, out: torch.Tensor) -> None:
    """out <- A v for a flat row ``out`` (not aliasing v): through the operator's ``into`` when it has one,
    else by copying its result."""
    into = getattr(matvec, "into", None)
    if into is not None:
        into(v, out)
    else:
        out.copy_(matvec(v).reshape(-1))


def _rotate_in_place(V: torch.Tensor, rows: int, S: np.ndarray) -> None:
    """V[:k] <- S^T V[:rows] for S of shape (rows, k), k <= rows, chunk by chunk along the n axis."""
    coeff = torch.as_tensor(S.T, dtype=V.dtype, device=V.device)  # (k, rows)
    k = coeff.shape[0]
    n = V.shape[1]
    rotated = torch.empty(
        (k, min(n, _CHUNK)), dtype=V.dtype, device=V.device
    )  # reused: no allocation per chunk
    for start in range(0, n, _CHUNK):
        block = V[:rows, start : start + _CHUNK]
        out = rotated[:, : block.shape[1]]
        torch.mm(coeff, block, out=out)
        V[:k, start : start + _CHUNK] = out


def norm64(x: torch.Tensor) -> float:
    """||x|| of a flat (n,) vector, its squares summed in float64 (``dot64``). torch.linalg.vector_norm sums
    float32 squares in float32: on a vector with a few large entries and many small ones (a converging Lanczos
    vector) it dropped 0.3 of the small entries' share, 6e-4 of ||x||^2 for n = 2 M."""
    return float(np.sqrt(max(dot64(x, x), 0.0)))


# The fused sweep below walks the n axis this many entries at a time, so each block of j basis rows is still in
# cache when the check reads it after the update (CPU, j = 6, n = 134.5 M: update and check 0.4 s in one sweep,
# 1.0 s as two whole-vector calls; 2^18 and 2^20 entries: 0.55 s and 0.74 s).
_FUSE_CHUNK = 1 << 16


def _sweep(V: torch.Tensor, j: int, coef: torch.Tensor | None = None) -> tuple[np.ndarray, float]:
    """For the row w = V[j]: w <- w - V[:j]^T coef when ``coef`` (shape (j,)) is given, then (V[:j] w of shape
    (j,), ||w||), in one sweep along the n axis, C = 2^16 entries at a time, so each block of the rows is still in
    cache for the check after its update (CPU, j = 6, n = 134.5 M: update and check 0.4 s in one sweep, 1.0 s as
    two whole-vector calls).

    Per chunk, one float32 matrix-vector product of the rows V[:j + 1] with w's part gives the overlaps and w's
    squared norm (its last entry), each a sum of C terms; the chunks' sums are added in float64. A whole-vector
    float32 reduction adds all n terms per accumulator lane, and once a lane holds a large partial sum every small
    term after it is lost: torch.linalg.vector_norm of a converging Lanczos vector lost 6e-4 of its square
    (n = 2 M), which left the basis non-orthonormal by 3 % on SmolLM2 (n = 134.5 M); a whole-vector
    ``V[:j] @ w`` got a product's overlaps wrong by 7e-4 to 5e-2 of what was left of it. Chunked, overlaps and
    norms are right to about 1e-5 of ||w|| there (float64 copies of each chunk would give 1e-7 at twice the time)."""
    w = V[j]
    n = w.numel()
    partial = torch.empty((-(-n // _FUSE_CHUNK), j + 1), dtype=w.dtype, device=w.device)
    for c, start in enumerate(range(0, n, _FUSE_CHUNK)):
        rows = V[: j + 1, start : start + _FUSE_CHUNK]
        part = rows[j]
        if coef is not None and j > 0:
            part.addmv_(rows[:j].T, coef, alpha=-1.0)
        torch.mv(rows, part, out=partial[c])
    sums = partial.double().sum(0).cpu().numpy()
    return sums[:j], float(np.sqrt(max(sums[j], 0.0)))


def _orthogonalise(V: torch.Tensor, j: int, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """V[j] <- V[j] - V[:j]^T h by classical Gram-Schmidt against orthonormal rows V[:j] (a solver's next basis
    row against the basis); returns (h of shape (j,), float64; ||V[j]|| after).

    One sweep measures the overlaps c = V[:j] w, a second takes them out and checks what is left, c' = V[:j] w,
    chunk by chunk while each block of V is in cache (``_sweep``). A second update w -= V[:j]^T c' (Gram-Schmidt
    twice, Giraud et al. 2005) is applied only when ||c'|| > threshold ||w|| (default sqrt(eps)): below sqrt(eps)
    the basis is semi-orthogonal, which keeps every Ritz value accurate to about eps ||A|| (Simon 1984; Parlett,
    The Symmetric Eigenvalue Problem, 13-8), but a residual estimate only to about threshold ||A||: a solver that
    stops on small residuals passes a smaller threshold. On SmolLM2's Lanczos products one pass left 1e-6 to
    2e-4 of ||w|| (under sqrt(eps) = 3.5e-4), so the second update did not run; it did every step while c came
    from a whole-vector float32 product (off by 7e-4 to 5e-2). The check and the norm are summed in float64
    across chunks: the comparison with sqrt(eps) needs sums more accurate than that.

    The updates are in-place addmv with the transposed basis: on CPU, ``coef @ V[:j]`` (a vector-matrix product
    into a new n-vector) took 0.9-1.0 s for j = 4 and n = 134.5 M, the addmv 0.27 s."""
    if j == 0:
        return np.zeros(0), norm64(V[0])
    h, _ = _sweep(V, j, None)
    check, norm = _sweep(V, j, torch.as_tensor(h, dtype=V.dtype, device=V.device))
    if threshold is None:
        threshold = float(np.sqrt(torch.finfo(V.dtype).eps))
    if float(np.linalg.norm(check)) > threshold * norm:
        _, norm = _sweep(V, j, torch.as_tensor(check, dtype=V.dtype, device=V.device))
        h = h + check
    return h, norm


@dataclass(frozen=True)
class LanczosResult:
    """Top-k eigenpairs of a symmetric operator.

    eigenvalues: ndarray (k,), float64, in A's units, ordered by ``which`` (descending for "LA").
    residual_norms: ndarray (k,), ||A y_i - theta_i y_i|| for unit Ritz vectors y_i (same units).
    eigenvectors: tensor (k, n) of unit Ritz vectors on the operator's device, or None.
    history_ritz: ndarray (steps, k), the k wanted Ritz values after each matrix-vector product.
    history_residuals: ndarray (steps, k), their residual norms.
    n_matvec: products used. converged: every residual <= tol * max|theta|. n_vectors: n-vectors held
    at peak by the solver (basis + residual, plus k for the returned Ritz vectors).
    """

    eigenvalues: np.ndarray
    residual_norms: np.ndarray
    eigenvectors: torch.Tensor | None
    history_ritz: np.ndarray
    history_residuals: np.ndarray
    n_matvec: int
    converged: bool
    n_vectors: int


def _order(theta: np.ndarray, which: str) -> np.ndarray:
    if which == "LA":
        return np.argsort(-theta, kind="stable")
    if which == "LM":
        return np.argsort(-np.abs(theta), kind="stable")
    raise ValueError(f"Unknown which='{which}': choose 'LA' (largest algebraic) or 'LM' (largest magnitude).")


def lanczos_top_k(
    matvec: Matvec,
    n: int,
    k: int = 1,
    *,
    which: str = "LA",
    max_basis: int | None = None,
    tol: float = 1e-6,
    max_matvec: int = 300,
    v0: torch.Tensor | Callable[[torch.Tensor], object] | None = None,
    return_vectors: bool = False,
    options: ProbeOptions = PROBE_DEFAULTS,
) -> LanczosResult:
    """Top-k eigenpairs of the symmetric operator ``matvec`` on R^n by thick-restart Lanczos.

    Args:
        max_basis: basis size m (default max(2k + 2, 6), at most n); memory is m + 1 n-vectors.
        tol: stop when every wanted Ritz pair has residual <= tol * max |theta| (relative accuracy of the
            eigenvalues is then about tol^2 * ||A|| / gap, Parlett's bound).
        v0: starting vector of shape (n,) (e.g. the previous eigenvector, for a warm start), or a callable
            that writes one into the (n,) row it is given (so a whole-model start need not be built in a vector
            of its own and copied); default a Rademacher vector.
    """
    if k < 1 or k > n:
        raise ValueError(f"k must be in [1, n]; got k={k}, n={n}.")
    m = min(n, max_basis or max(2 * k + 2, 6))
    if m < k + 1 and m < n:
        raise ValueError(f"max_basis must exceed k; got {m} for k={k}.")
    gen = options.generator()
    V = options.vectors(m + 1, n)  # rows written before read; last: residual
    if callable(v0):
        v0(V[0])
    elif v0 is not None:  # copied in place: no second 0.5 GB temporary
        V[0].copy_(v0.detach().reshape(-1))
    norm = 0.0 if v0 is None else norm64(V[0])
    if not (np.isfinite(norm) and norm > 0.0):
        rademacher_into(V[0], gen)
        norm = norm64(V[0])
    V[0].div_(norm)

    # Overlaps of a new basis vector with the basis up to `threshold` perturb H, and so every residual estimate,
    # by about threshold * ||A|| * sqrt(m): kept at a tenth of the tolerance the solver stops on.
    threshold = min(float(np.sqrt(torch.finfo(options.dtype).eps)), 0.1 * tol / np.sqrt(m))
    H = np.zeros((m + 1, m + 1))  # projected matrix V^T A V (symmetric; arrow after a restart)
    j = 0  # basis vectors 0..j are set; column j is next to expand
    hist_ritz: list[np.ndarray] = []
    hist_res: list[np.ndarray] = []
    n_matvec = 0
    theta = np.zeros(0)
    S = np.zeros((0, 0))
    beta = 0.0
    scale = 1.0
    converged = False
    while True:
        options.check()
        w = V[j + 1]  # the product becomes the next basis vector (or, at a restart, the residual row V[m])
        _product_into(matvec, V[j], w)
        n_matvec += 1
        h, beta = _orthogonalise(V, j + 1, threshold)
        H[: j + 1, j] = h
        H[j, : j + 1] = h
        size = j + 1
        theta_all, S_all = np.linalg.eigh(H[:size, :size])
        order = _order(theta_all, which)
        theta, S = theta_all[order], S_all[:, order]
        want = min(k, size)
        residual = np.abs(beta * S[size - 1, :want])
        scale = max(float(np.max(np.abs(theta))), np.finfo(np.float64).tiny)
        hist_ritz.append(np.pad(theta[:want], (0, k - want), constant_values=np.nan))
        hist_res.append(np.pad(residual, (0, k - want), constant_values=np.nan))
        converged = want == k and bool(np.all(residual <= tol * scale))
        options.report(
            min(n_matvec / max_matvec, 1.0),
            f"Lanczos: {n_matvec} products, residual {float(np.max(residual)) / scale:.1e} (relative)",
        )
        if converged or n_matvec >= max_matvec or size == n:
            break
        # Invariant subspace found (beta ~ 0): continue with a fresh direction orthogonal to the basis.
        breakdown = beta <= 1e3 * np.finfo(np.float64).eps * scale
        if breakdown:
            rademacher_into(w, gen)
            _, norm = _orthogonalise(V, size, threshold)
            beta = 0.0
            w.div_(norm)
        else:
            w.div_(beta)
        if size < m:
            H[size, :size] = 0.0
            H[:size, size] = 0.0
            j = size
            continue
        # Thick restart: keep the best `keep` Ritz vectors, then the residual direction.
        keep = min(m - 1, max(k + (m - k) // 2, k))
        _rotate_in_place(V, m, S[:, :keep])  # rows :m only; the residual direction w is V[m]
        V[keep] = V[m]
        coupling = beta * S[m - 1, :keep]
        H[:] = 0.0
        H[np.arange(keep), np.arange(keep)] = theta[:keep]
        H[keep, :keep] = coupling
        H[:keep, keep] = coupling
        j = keep
    del w
    size = j + 1
    want = min(k, size)
    vectors = None
    if return_vectors:
        _rotate_in_place(V, size, S[:, :want])
        vectors = V[:want].clone()
    del V
    return LanczosResult(
        eigenvalues=theta[:want].copy(),
        residual_norms=np.abs(beta * S[size - 1, :want]),
        eigenvectors=vectors,
        history_ritz=np.array(hist_ritz),
        history_residuals=np.array(hist_res),
        n_matvec=n_matvec,
        converged=converged,
        n_vectors=m + 1 + (want if return_vectors else 0),
    )


@dataclass(frozen=True)
class PowerResult:
    """Dominant eigenpair by power iteration. eigenvalue: Rayleigh quotient (A's units). history: ndarray
    (steps,) of Rayleigh quotients. eigenvector: tensor (n,), unit. n_matvec: products used."""

    eigenvalue: float
    history: np.ndarray
    eigenvector: torch.Tensor
    n_matvec: int


def power_iteration(
    matvec: Matvec,
    n: int,
    *,
    max_matvec: int = 100,
    tol: float = 1e-3,
    v0: torch.Tensor | None = None,
    options: ProbeOptions = PROBE_DEFAULTS,
) -> PowerResult:
    """Plain power iteration (PyHessian's stopping rule: relative change of the Rayleigh quotient < tol).

    Converges to the eigenvalue of largest magnitude, at the rate |lambda_2 / lambda_1| per product."""
    dtype = options.dtype
    v = v0.detach().to(device=options.device, dtype=dtype).clone() if v0 is not None else None
    if v is None:
        v = rademacher(n, dtype=dtype, device=options.device, generator=options.generator())
    v /= norm64(v)
    history = []
    rayleigh = 0.0
    for _ in range(max_matvec):
        options.check()
        w = matvec(v).to(dtype).reshape(-1)
        new = dot64(v, w)
        history.append(new)
        options.report(len(history) / max_matvec, f"Power iteration: {len(history)} products")
        norm = norm64(w)
        if norm == 0.0:
            break
        v = w / norm
        if len(history) > 1 and abs(new - rayleigh) <= tol * max(abs(rayleigh), 1e-300):
            rayleigh = new
            break
        rayleigh = new
    return PowerResult(rayleigh, np.array(history), v, len(history))


@dataclass(frozen=True)
class TraceEstimate:
    """Stochastic trace estimate. trace: A's units. stderr: standard error of the random part (sample
    standard deviation / sqrt(count)). samples: ndarray (count,) of the per-probe quadratic forms whose
    mean is the random part. n_matvec: products used. method: "hutchinson" or "hutch++"."""

    trace: float
    stderr: float
    samples: np.ndarray
    n_matvec: int
    method: str


def hutchinson_trace(
    matvec: Matvec, n: int, n_probes: int = 32, *, options: ProbeOptions = PROBE_DEFAULTS
) -> TraceEstimate:
    """tr(A) ~ mean_i z_i^T A z_i, z_i Rademacher (unbiased; variance 2 sum_{i != j} A_ij^2 per probe).

    Holds 2 n-vectors, the probe and its product, allocated once (``empty_huge``) and rewritten per probe.
    The standard error is the sample standard deviation / sqrt(n_probes)."""
    if n_probes < 2:
        raise ValueError("Hutchinson needs at least 2 probes for a standard error.")
    gen = options.generator()
    z, product = options.vectors(2, n)
    samples = np.empty(n_probes)
    for i in range(n_probes):
        options.check()
        rademacher_into(z, gen)
        _product_into(matvec, z, product)
        samples[i] = dot64(z, product)
        options.report((i + 1) / n_probes, f"Hutchinson trace: probe {i + 1} of {n_probes}")
    return TraceEstimate(
        float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(n_probes)), samples, n_probes, "hutchinson"
    )


def hutchpp_trace(
    matvec: Matvec, n: int, n_matvec: int = 48, *, options: ProbeOptions = PROBE_DEFAULTS
) -> TraceEstimate:
    """Hutch++: tr(A) = tr(Q^T A Q) + Hutchinson on (I - QQ^T) A (I - QQ^T), Q an orthonormal basis of
    A S for s = n_matvec / 3 Rademacher columns S. Exact when rank(A) <= s; otherwise error O(1/n_matvec)
    instead of Hutchinson's O(1/sqrt(n_matvec)) for matrices with decaying spectra.

    Holds s + 2 n-vectors (Q, one probe and its product). ``stderr`` is that of the Hutchinson part (the
    deflated part is computed exactly for the sampled Q)."""
    s = max(1, n_matvec // 3)
    g = max(2, n_matvec - 2 * s)
    gen = options.generator()
    total = 2 * s + g
    Q = options.vectors(s, n)
    z, product = options.vectors(2, n)
    done = 0
    rank = 0
    for _ in range(s):
        options.check()
        w = Q[rank]  # overwritten by the next product when dropped
        _product_into(matvec, rademacher_into(z, gen), w)
        done += 1
        norm0 = float(torch.linalg.vector_norm(w))  # only for a 1e-10 rank test: its float32 sum will do
        _, norm = _orthogonalise(Q, rank)
        if norm > 1e-10 * max(norm0, 1e-300):  # drop directions already in the span (rank-deficient A)
            w.div_(norm)
            rank += 1
        options.report(done / total, f"Hutch++: product {done} of {total}")
    deflated = 0.0
    for i in range(rank):
        options.check()
        _product_into(matvec, Q[i], product)
        deflated += dot64(Q[i], product)
        done += 1
        options.report(done / total, f"Hutch++: product {done} of {total}")
    samples = np.empty(g)
    for i in range(g):
        options.check()
        rademacher_into(z, gen)
        z.addmv_(Q[:rank].T, Q[:rank] @ z, alpha=-1.0)  # z -= Q^T (Q z), in place (see _orthogonalise)
        _product_into(matvec, z, product)
        samples[i] = dot64(z, product)
        done += 1
        options.report(done / total, f"Hutch++: product {done} of {total}")
    return TraceEstimate(
        deflated + float(samples.mean()),
        float(samples.std(ddof=1) / np.sqrt(g)),
        samples,
        done,
        "hutch++",
    )


@dataclass(frozen=True)
class SpectralDensity:
    """Spectral density of A by stochastic Lanczos quadrature.

    nodes: ndarray (probe, steps), Ritz values (A's units). weights: ndarray (probe, steps), tau^2 (each
    probe's weights sum to 1). grid: ndarray (g,), A's units. density: ndarray (g,), per unit of A's units,
    integrating to 1 on ``grid`` (trapezoid). raw_mass: the trapezoid integral before that normalisation
    (1 up to grid truncation and discretisation: a check). sigma: Gaussian broadening (A's units).
    moments: ndarray (3,), quadrature estimates of tr(A^p) / n for p = 0, 1, 2 (p = 0 gives 1).
    moments_stderr: ndarray (3,), their standard errors over probes.
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    raw_mass: float
    sigma: float
    moments: np.ndarray
    moments_stderr: np.ndarray


def lanczos_tridiagonal(
    matvec: Matvec, v0: torch.Tensor, steps: int, cancel: CancelCheck | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` Lanczos steps from unit(v0) with full reorthogonalisation (holds steps + 1 n-vectors).

    Returns (alpha of shape (m,), beta of shape (m - 1,)), m <= steps (fewer on an invariant subspace)."""
    n = v0.numel()
    steps = min(steps, n)
    V = empty_huge((steps + 1, n), dtype=v0.dtype, device=v0.device)
    V[0].copy_(v0.reshape(-1))
    V[0].div_(norm64(V[0]))
    alpha, beta = [], []
    for j in range(steps):
        _check(cancel)
        w = V[j + 1]  # the product becomes the next basis vector
        _product_into(matvec, V[j], w)
        h, norm = _orthogonalise(V, j + 1)
        alpha.append(h[j])
        if j + 1 == steps or norm <= 1e3 * np.finfo(np.float64).eps * max(abs(h[j]), 1e-300):
            break
        beta.append(norm)
        w.div_(norm)
    return np.array(alpha), np.array(beta)


def gaussian_quadrature(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (Ritz values) and weights tau^2 (squared first components of T's eigenvectors) of the
    Lanczos tridiagonal T. Sum of weights is 1; exact for polynomials of degree < 2 m."""
    T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    nodes, vectors = np.linalg.eigh(T)
    return nodes, vectors[0] ** 2


def slq_density(
    matvec: Matvec,
    n: int,
    *,
    n_probes: int = 4,
    steps: int = 40,
    n_grid: int = 1000,
    sigma_fraction: float = 0.01,
    options: ProbeOptions = PROBE_DEFAULTS,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature: for each Rademacher probe z, ``steps`` Lanczos steps from z/||z||
    give nodes theta_j and weights tau_j^2 with z^T f(A) z / n ~ sum_j tau_j^2 f(theta_j); the density is
    the probe mean of sum_j tau_j^2 N(t; theta_j, sigma^2).

    sigma = sigma_fraction * (max node - min node); the grid spans the nodes +- 5 sigma. Holds steps + 1
    n-vectors."""
    gen = options.generator()
    nodes = np.full((n_probes, min(steps, n)), np.nan)
    weights = np.zeros_like(nodes)
    for i in range(n_probes):
        z = rademacher(n, dtype=options.dtype, device=options.device, generator=gen)
        alpha, beta = lanczos_tridiagonal(matvec, z, steps, options.cancel)
        theta, tau2 = gaussian_quadrature(alpha, beta)
        nodes[i, : theta.size] = theta
        weights[i, : theta.size] = tau2
        options.report((i + 1) / n_probes, f"Spectral density: probe {i + 1} of {n_probes}")
    valid = np.isfinite(nodes)
    lo, hi = float(nodes[valid].min()), float(nodes[valid].max())
    width = hi - lo if hi > lo else max(abs(hi), 1.0)
    sigma = sigma_fraction * width
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid)
    density = np.zeros(n_grid)
    for theta, tau2 in zip(nodes, weights, strict=True):
        ok = np.isfinite(theta)
        gauss = np.exp(-0.5 * ((grid[:, None] - theta[ok][None, :]) / sigma) ** 2) / (
            sigma * np.sqrt(2 * np.pi)
        )
        density += gauss @ tau2[ok]
    density /= n_probes
    raw_mass = float(np.trapezoid(density, grid))
    density = density / raw_mass
    filled = np.where(valid, nodes, 0.0)
    per_probe = np.stack([(weights * filled**p).sum(axis=1) for p in range(3)], axis=1)  # (probe, 3)
    stderr = per_probe.std(axis=0, ddof=1) / np.sqrt(n_probes) if n_probes > 1 else np.full(3, np.nan)
    return SpectralDensity(nodes, weights, grid, density, raw_mass, sigma, per_probe.mean(axis=0), stderr)


def stability_threshold(lambda_max: float) -> float:
    """Largest stable gradient-descent step on a quadratic with top curvature lambda_max: 2 / lambda_max."""
    return 2.0 / lambda_max if lambda_max > 0 else float("inf")


def gd_multipliers(eigenvalues, eta: float) -> np.ndarray:
    """Per-eigendirection factor 1 - eta * lambda of one GD step on x^T A x / 2; |factor| > 1 diverges."""
    return 1.0 - eta * np.asarray(eigenvalues, dtype=np.float64)


@dataclass(frozen=True)
class QuadraticRun:
    """Gradient descent on f(x) = x^T A x / 2. loss: ndarray (steps + 1,), f at each iterate (A's units
    times x's squared). eta: the step. diverged: the last loss exceeds the first."""

    loss: np.ndarray
    eta: float
    diverged: bool


def quadratic_gd(matvec: Matvec, x0: torch.Tensor, eta: float, steps: int) -> QuadraticRun:
    """x <- x - eta A x for ``steps`` steps (the gradient of x^T A x / 2 is A x)."""
    x = x0.detach().clone().reshape(-1)
    losses = []
    for _ in range(steps + 1):
        Ax = matvec(x).reshape(-1)
        losses.append(0.5 * dot64(x, Ax))
        x = x - eta * Ax
    loss = np.array(losses)
    return QuadraticRun(loss, float(eta), bool(loss[-1] > loss[0]))
