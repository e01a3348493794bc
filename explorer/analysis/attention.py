"""Attention heads of one capture: cheap per-head summaries for the layer x head grid, and the full spectrum,
eigenvectors and stationary distribution of one selected head on demand.

Inputs are a capture's ``attentions`` of shape (layer, head, query, key), float32 (read-only; never modified:
everything works on float64 copies). The heavy linear algebra runs in torch on the chosen device, in chunks of
heads (bounded memory) spread over a few threads on CPU (LAPACK releases the GIL).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from explorer.models.device import linalg_device
from explorer.spectra import attention_spectra as spec
from explorer.spectra import ranks

# The captured attention is float32, so singular values below sigma_1 * n * eps(float32) are rounding noise.
FLOAT32_EPS = float(np.finfo(np.float32).eps)
# Heads per chunk: 32 heads of 512 x 512 in float64 are 64 MiB (plus as much for the Gram matrices).
CHUNK_HEADS = 32
# A head "looks collapsed" when its attention is nearly rank one: every query reads (almost) the same mixture of
# keys, so the output is (almost) the same vector at every position. Stable rank = ||A||_F^2 / ||A||_2^2 below
# 1.1 means the top singular direction carries more than 90% of the energy ||A||_F^2.
COLLAPSED_STABLE_RANK = 1.1
# A head is an "attention sink" when, on average, at least half of every query's attention goes to token 0.
SINK_MASS = 0.5
# Up to this many tokens every metric comes from a whole decomposition of each head (about 0.3 s a head at 1,024
# on one core; 270 heads of SmolLM2); past it the grid offers the O(T^2) metrics only and the selected head gets
# the top of its spectrum by a Krylov method (explorer.analysis.attention_long).
FULL_DECOMPOSITION_MAX_TOKENS = 1024
_PARALLEL_LOCK = threading.Lock()


@dataclass(frozen=True)
class GridMetric:
    label: str  # axis/colorbar title, with units where there are any
    help: str  # one sentence for the person reading the grid
    low_is_notable: bool  # colour scale direction: True when small values are the ones to look at


GRID_METRICS: dict[str, GridMetric] = {
    "lambda2_abs": GridMetric(
        "|λ₂|",
        "Second-largest eigenvalue modulus. Near 1: the head keeps groups of tokens apart (slow mixing); "
        "near 0: one step of attention forgets where it started. For causal heads it is the second-largest "
        "diagonal entry.",
        False,
    ),
    "spectral_gap": GridMetric(
        "spectral gap 1 − |λ₂|",
        "How fast repeated attention converges to its stationary mixture (large gap = fast).",
        False,
    ),
    "entropy": GridMetric(
        "row entropy (normalised, 0–1)",
        "Mean entropy of the attention rows divided by log(allowed keys): 1 = uniform, 0 = one key per query.",
        True,
    ),
    "effective_rank": GridMetric(
        "effective rank (tokens)",
        "exp(entropy of the normalised singular values) (Roy & Vetterli 2007): how many independent "
        "mixtures the head produces.",
        True,
    ),
    "stable_rank": GridMetric(
        "stable rank",
        "||A||_F² / ||A||_2²: robust count of large singular values; near 1 = collapsed head.",
        True,
    ),
    "numerical_rank": GridMetric(
        "numerical rank (tokens)",
        "Singular values above σ₁ · n · eps(float32) (the captured attention is float32).",
        True,
    ),
    "sink_mass": GridMetric(
        "sink mass (attention on token 0)",
        "Mean attention every query puts on the first token; near 1 = an attention sink.",
        False,
    ),
}


def _workers(device: torch.device) -> int:
    if device.type != "cpu":
        return 1
    return max(1, min(4, os.cpu_count() or 1, torch.get_num_threads()))


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _stack_chunks(chunks: list[dict], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    keys = chunks[0].keys()
    return {k: np.concatenate([c[k] for c in chunks]).reshape(*shape, *chunks[0][k].shape[1:]) for k in keys}


def _run_parallel(tasks: list, workers: int) -> list:
    """Run independent callables on up to ``workers`` threads (LAPACK releases the GIL); results in order.

    BLAS runs single-threaded meanwhile: the workers are the parallelism, and threaded BLAS on top of them (or on
    a machine shared with other work) oversubscribes the cores, measured here up to 5x slower. The limit is
    process-wide, so a lock keeps two browser sessions from interleaving their set/restore of it.
    """
    with _PARALLEL_LOCK, threadpool_limits(limits=1, user_api="blas"):
        if workers <= 1 or len(tasks) <= 1:
            return [task() for task in tasks]
        with ThreadPoolExecutor(min(workers, len(tasks))) as pool:
            return list(pool.map(lambda task: task(), tasks))


def _map_chunks(attentions: np.ndarray, device: str, fn) -> dict[str, np.ndarray]:
    """Apply ``fn(A (batch, n, n) float64 tensor) -> dict of (batch, ...) arrays`` to every chunk of heads."""
    n_layers, n_heads, n, _ = attentions.shape
    flat = attentions.reshape(n_layers * n_heads, n, n)
    dev = linalg_device(device)
    workers = _workers(dev)
    total = flat.shape[0]
    # At least two chunks per worker so that uneven chunks still keep every worker busy.
    size = max(1, min(CHUNK_HEADS, -(-total // (2 * workers)) if workers > 1 else CHUNK_HEADS))
    starts = range(0, total, size)

    def run(start: int) -> dict:
        return fn(spec.as_float64(flat[start : start + size], dev))

    chunks = _run_parallel([lambda start=start: run(start) for start in starts], workers)
    return _stack_chunks(chunks, (n_layers, n_heads))


# ---------------------------------------------------------------------------------------------------------
# The grid: every head, cheaply


class _HeadFlags:
    """The two flags heads are marked by, one rule for a grid of heads ((layer, head) bool arrays from its
    ``stable_rank`` and ``sink_mass`` arrays) and for one head (a bool from those scalars): ``collapsed``,
    nearly rank one (stable rank < COLLAPSED_STABLE_RANK); ``sink``, sink mass >= SINK_MASS."""

    @property
    def collapsed(self):
        return self.stable_rank < COLLAPSED_STABLE_RANK

    @property
    def sink(self):
        return self.sink_mass >= SINK_MASS


@dataclass(frozen=True)
class AttentionGrid(_HeadFlags):
    """Per-head summaries of one capture. Every array has shape (layer, head), float64 unless noted.

    Attributes:
        n_tokens: T, the size of each attention matrix.
        causal: the model masks future tokens (rows normalised over i + 1 keys).
        lambda2_abs: |lambda_2|, second eigenvalue modulus; spectral_gap = 1 - lambda2_abs.
        entropy: mean normalised row entropy in [0, 1]; entropy_nats: mean row entropy in nats.
        effective_rank, stable_rank, numerical_rank (float32 tolerance), sigma_max: from the singular values.
        sink_mass: mean attention on token 0.
        triangular: (layer, head) bool, the head is exactly lower-triangular (eigenvalues = diagonal).
        lambda2_method: (layer, head) int, spec.METHOD_DIAGONAL / METHOD_KRYLOV / METHOD_FULL, or
            METHOD_NOT_OFFERED where lambda_2 is not computed at this length (NaN).
        stable_rank_low: (layer, head) float64 or None: past FULL_DECOMPOSITION_MAX_TOKENS sigma_1 comes from a
            power iteration; stable_rank = ||A||_F^2 / rho with rho <= sigma_1^2, so it is an upper bound, and
            stable_rank_low a certified lower bound (spec.top_singular_value_power). None when exact.
        not_offered: names of GRID_METRICS that are NaN at this length (they need a whole decomposition);
        note: one sentence saying why, for the page ("" when every metric is offered).
    """

    n_tokens: int
    causal: bool
    lambda2_abs: np.ndarray
    spectral_gap: np.ndarray
    entropy: np.ndarray
    entropy_nats: np.ndarray
    effective_rank: np.ndarray
    stable_rank: np.ndarray
    numerical_rank: np.ndarray
    sigma_max: np.ndarray
    sink_mass: np.ndarray
    triangular: np.ndarray
    lambda2_method: np.ndarray
    stable_rank_low: np.ndarray | None = None
    not_offered: tuple[str, ...] = ()
    note: str = ""

    @property
    def n_layers(self) -> int:
        return self.lambda2_abs.shape[0]

    @property
    def n_heads(self) -> int:
        return self.lambda2_abs.shape[1]

    def metric(self, name: str) -> np.ndarray:
        if name not in GRID_METRICS:
            raise KeyError(f"unknown metric '{name}'; choose one of {list(GRID_METRICS)}")
        return getattr(self, name)

    @staticmethod
    def heads_where(mask: np.ndarray) -> list[tuple[int, int]]:
        """The (layer, head) pairs where a (layer, head) mask is True, in layer-major order."""
        return [(int(layer), int(head)) for layer, head in np.argwhere(mask)]


def _grid_chunk(A: torch.Tensor, causal: bool) -> dict[str, np.ndarray]:
    n = A.shape[-1]
    # Only a causal model's heads can be triangular; for the others the check would be wasted (and treating a
    # triangular head as general is still exact, only slower).
    triangular = spec.is_lower_triangular(A) if causal else torch.zeros(A.shape[0], dtype=torch.bool)
    lam2, method = spec.second_eigval_modulus(A, triangular)
    S = _numpy(spec.singular_values_gram(A))
    nats, normalised = spec.row_entropy(A, causal)
    return {
        "lambda2_abs": _numpy(lam2),
        "lambda2_method": _numpy(method),
        "triangular": _numpy(triangular),
        "effective_rank": ranks.effective_rank(S),
        "stable_rank": ranks.stable_rank(S),
        "numerical_rank": ranks.numerical_rank(S, (n, n), eps=FLOAT32_EPS),
        "sigma_max": S[:, 0],
        "entropy": _numpy(normalised),
        "entropy_nats": _numpy(nats),
        "sink_mass": _numpy(spec.sink_mass(A)),
    }


def attention_grid(attentions, *, causal: bool, device: str = "cpu", progress=None) -> AttentionGrid:
    """Per-head summaries for every layer and head, without a full eigensolve where a cheaper route is exact
    (see explorer.spectra.attention_spectra).

    Args:
        attentions: (layer, head, query, key) float32, rows summing to 1: an ndarray, or a capture's
            LazyAttentions (read one layer at a time).
        causal: whether the model masks future tokens (sets the number of allowed keys for the entropy).
        progress: optional ``(fraction, message)`` callback, called per layer on the layer-by-layer route.
    Past FULL_DECOMPOSITION_MAX_TOKENS tokens, or for an array that is not held whole, the grid is computed
    layer by layer (explorer.analysis.attention_long), with the whole-decomposition metrics not offered.
    """
    summary = getattr(attentions, "summary", None)  # a long capture's grid, reduced during its own pass
    if isinstance(summary, AttentionGrid) and summary.causal == bool(causal):
        return summary
    if not isinstance(attentions, np.ndarray) or attentions.shape[-1] > FULL_DECOMPOSITION_MAX_TOKENS:
        from explorer.analysis.attention_long import grid_by_layers  # it builds on this module

        return grid_by_layers(attentions, causal=causal, device=device, progress=progress)
    out = _map_chunks(attentions, device, lambda A: _grid_chunk(A, causal))
    return AttentionGrid(
        n_tokens=int(attentions.shape[-1]),
        causal=bool(causal),
        spectral_gap=1.0 - out["lambda2_abs"],
        **out,
    )


# ---------------------------------------------------------------------------------------------------------
# All heads, full spectra (the report)


@dataclass(frozen=True)
class AttentionSpectra:
    """Full spectra of every head. eigvals: (layer, head, token) complex128, by modulus descending.
    laplacian_eigvals: (layer, head, token) complex128, by real part descending (real for causal heads)."""

    eigvals: np.ndarray
    laplacian_eigvals: np.ndarray


def attention_spectra(attentions: np.ndarray, *, device: str = "cpu") -> AttentionSpectra:
    """Every eigenvalue of every head and of its Laplacian (geev for the heads that are not triangular)."""

    def chunk(A: torch.Tensor) -> dict:
        triangular = spec.is_lower_triangular(A)
        return {
            "eigvals": _numpy(spec.eigvals(A, triangular)),
            "laplacian_eigvals": _numpy(spec.laplacian_eigvals(A, triangular)),
        }

    return AttentionSpectra(**_map_chunks(attentions, device, chunk))


# ---------------------------------------------------------------------------------------------------------
# One head, everything


@dataclass(frozen=True)
class HeadSpectrum(_HeadFlags):
    """Everything the attention page shows for one head at temperature tau. Arrays over T tokens.

    Attributes:
        attention: (query, key) float64, A_tau (the captured matrix when tau = 1; past
            FULL_DECOMPOSITION_MAX_TOKENS at tau = 1 the captured float32 head itself, read-only).
        eigvals: (token,) complex128, by modulus descending.
        singular_values: (token,) float64, descending (full SVD).
        sym_eigvals: (token,) float64, eigenvalues of (A + A^T)/2, descending.
        laplacian_eigvals: (token,) complex128, eigenvalues of L = D - A, by real part descending.
        laplacian_degrees: (token,) float64, d_jj.
        stationary: (token,) float64, PageRank stationary distribution (sums to 1).
        lambda2_abs, spectral_gap, entropy (normalised), entropy_nats, effective_rank, stable_rank,
        numerical_rank, sink_mass: scalars, as in AttentionGrid.
        partial: past FULL_DECOMPOSITION_MAX_TOKENS the spectra are the top of each (explorer.analysis.
            attention_long): singular_values and sym_eigvals hold the top k, eigvals and laplacian_eigvals the top k
            of a general head (all of them, exact, for a triangular one); effective and numerical rank are NaN.
        residuals: name of a spectrum -> (k,) float64 residual of each Krylov value (None when all are exact):
            a singular value or symmetric eigenvalue lies within it of the true one (Weyl); for eigvals and
            laplacian_eigvals it is the backward error (an exact eigenvalue of a matrix that close to A).
        note: what the page should say about how the spectra were computed ("" for the whole decomposition).
    """

    layer: int
    head: int
    tau: float
    damping: float
    causal: bool
    triangular: bool
    attention: np.ndarray
    eigvals: np.ndarray
    singular_values: np.ndarray
    sym_eigvals: np.ndarray
    laplacian_eigvals: np.ndarray
    laplacian_degrees: np.ndarray
    stationary: np.ndarray
    lambda2_abs: float
    spectral_gap: float
    entropy: float
    entropy_nats: float
    effective_rank: float
    stable_rank: float
    numerical_rank: float
    sink_mass: float
    partial: bool = False
    residuals: dict[str, np.ndarray] | None = None
    note: str = ""

    @property
    def n_tokens(self) -> int:
        return self.attention.shape[0]


def _check_head(attentions: np.ndarray, layer: int, head: int) -> None:
    n_layers, n_heads = attentions.shape[:2]
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise IndexError(f"head ({layer}, {head}) is outside {n_layers} layers x {n_heads} heads")


def head_matrix(
    attentions: np.ndarray, layer: int, head: int, *, tau: float = 1.0, device: str = "cpu"
) -> torch.Tensor:
    """A_tau of one head, (query, key) float64 on the linear-algebra device (the captured matrix at tau = 1)."""
    _check_head(attentions, layer, head)
    A = spec.as_float64(attentions[layer, head], linalg_device(device))
    return A if tau == 1 else spec.temperature(A, tau)


def head_spectrum(
    attentions: np.ndarray,
    layer: int,
    head: int,
    *,
    causal: bool,
    tau: float = 1.0,
    damping: float = spec.PAGERANK_DAMPING,
    device: str = "cpu",
) -> HeadSpectrum:
    """The full spectrum of head (layer, head) at temperature ``tau``: eigenvalues, singular values, symmetric
    part, Laplacian and stationary distribution. Past FULL_DECOMPOSITION_MAX_TOKENS: the top of each spectrum
    by a Krylov method with residuals (explorer.analysis.attention_long.long_head_spectrum)."""
    if attentions.shape[-1] > FULL_DECOMPOSITION_MAX_TOKENS:
        from explorer.analysis.attention_long import long_head_spectrum

        return long_head_spectrum(
            attentions, layer, head, causal=causal, tau=tau, damping=damping, device=device
        )
    A = head_matrix(attentions, layer, head, tau=tau, device=device)
    n = A.shape[-1]
    triangular = spec.is_lower_triangular(A)
    # The two eigensolves (A and its Laplacian) dominate for a bidirectional head: run them side by side.
    eig, lap, S, sym_values, stationary = _run_parallel(
        [
            lambda: spec.eigvals(A, triangular),
            lambda: spec.laplacian_eigvals(A, triangular),
            lambda: _numpy(spec.singular_values(A)),
            lambda: spec.symmetric_eigvals(A),
            lambda: spec.stationary_distribution(A, damping),
        ],
        _workers(A.device),
    )
    nats, normalised = spec.row_entropy(A, causal)
    lam2 = float(eig[1].abs()) if n > 1 else 0.0
    return HeadSpectrum(
        layer=layer,
        head=head,
        tau=float(tau),
        damping=float(damping),
        causal=bool(causal),
        triangular=bool(triangular),
        attention=_numpy(A),
        eigvals=_numpy(eig),
        singular_values=S,
        sym_eigvals=_numpy(sym_values),
        laplacian_eigvals=_numpy(lap),
        laplacian_degrees=_numpy(spec.laplacian_degrees(A)),
        stationary=_numpy(stationary),
        lambda2_abs=lam2,
        spectral_gap=1.0 - lam2,
        entropy=float(normalised),
        entropy_nats=float(nats),
        effective_rank=float(ranks.effective_rank(S)),
        stable_rank=float(ranks.stable_rank(S)),
        numerical_rank=float(ranks.numerical_rank(S, (n, n), eps=FLOAT32_EPS)),
        sink_mass=float(spec.sink_mass(A)),
    )


# ---------------------------------------------------------------------------------------------------------
# One head, eigenvectors

VECTOR_KINDS: dict[str, str] = {
    "right": "right eigenvectors of A (A v = λ v)",
    "symmetric": "eigenvectors of the symmetric part (A + Aᵀ)/2",
    "singular": "left singular vectors of A (A = U S Vᵀ, columns of U)",
}


@dataclass(frozen=True)
class HeadEigenvectors:
    """The top-k vectors of one head over its tokens.

    Attributes:
        kind: a key of VECTOR_KINDS.
        values: (k,) complex128: eigenvalues (right), eigenvalues of S (symmetric) or singular values, ordered by
            modulus descending.
        vectors: (k, token) complex128, unit 2-norm, phase fixed so the largest-magnitude entry is real and
            positive (real for the symmetric and singular kinds, and for real eigenvalues).
        top_tokens: (k, m) int64, token positions ordered by |vector entry| descending.
        stationary: (token,) float64, the PageRank stationary distribution of the same matrix.
        residuals: (k,) float64 or None: past FULL_DECOMPOSITION_MAX_TOKENS the vectors come from ARPACK and each
            has its residual ||A v - lambda v|| (singular: the residual of the pair, see spec.krylov_singular).
    """

    layer: int
    head: int
    kind: str
    tau: float
    damping: float
    values: np.ndarray
    vectors: np.ndarray
    top_tokens: np.ndarray
    stationary: np.ndarray
    residuals: np.ndarray | None = None

    @property
    def is_real(self) -> np.ndarray:
        """(k,) bool: the vector has no imaginary part (beyond rounding)."""
        return np.abs(self.vectors.imag).max(axis=-1) <= 1e-12


def _right_eigenvectors(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if A.device.type == "cpu":
        values, vectors = np.linalg.eig(A.numpy())
        values, vectors = torch.from_numpy(values.astype(np.complex128)), torch.from_numpy(vectors)
    else:
        values, vectors = torch.linalg.eig(A)
    vectors = vectors.to(torch.complex128)
    order = spec._lexsort_desc([values.abs(), values.real, values.imag])
    return values[order], vectors[:, order]


def head_eigenvectors(
    attentions: np.ndarray,
    layer: int,
    head: int,
    *,
    kind: str = "right",
    k: int = 6,
    tau: float = 1.0,
    damping: float = spec.PAGERANK_DAMPING,
    n_top: int = 5,
    device: str = "cpu",
) -> HeadEigenvectors:
    """Top-``k`` vectors of head (layer, head) at temperature ``tau`` (ordered by |value|), with the tokens where
    each is largest, and the stationary distribution."""
    if kind not in VECTOR_KINDS:
        raise ValueError(f"kind must be one of {list(VECTOR_KINDS)}")
    A = head_matrix(attentions, layer, head, tau=tau, device=device)
    n = A.shape[-1]
    k = max(1, min(int(k), n))
    residuals = None
    if n > FULL_DECOMPOSITION_MAX_TOKENS:
        from explorer.analysis.attention_long import long_head_vectors

        values, vectors, residuals = long_head_vectors(A, kind, k)
        k = min(k, values.shape[0])
    elif kind == "right":
        values, vectors = _right_eigenvectors(A)
    elif kind == "symmetric":
        sym_values, sym_vectors = spec.symmetric_eigh(A)
        order = torch.sort(sym_values.abs(), descending=True, stable=True).indices
        values, vectors = sym_values[order], sym_vectors[:, order]
    else:
        U, S, _ = torch.linalg.svd(A)
        values, vectors = S, U
    vectors = vectors[:, :k].to(torch.complex128)
    vectors = vectors / torch.linalg.vector_norm(vectors, dim=0, keepdim=True)
    vectors = spec.fix_signs(vectors).T  # (k, token)
    V = _numpy(vectors)
    V = np.where(np.abs(V.imag) <= 1e-13, V.real + 0j, V)  # exact zeros where the phase fix made it real
    top = np.argsort(-np.abs(V), axis=-1, kind="stable")[:, : min(n_top, n)]
    return HeadEigenvectors(
        layer=layer,
        head=head,
        kind=kind,
        tau=float(tau),
        damping=float(damping),
        values=_numpy(values[:k].to(torch.complex128)),
        vectors=V,
        top_tokens=top.astype(np.int64),
        stationary=_stationary(A, damping),
        residuals=None if residuals is None else np.asarray(residuals[:k]),
    )


def _stationary(A: torch.Tensor, damping: float) -> np.ndarray:
    """The PageRank stationary distribution; O(T^2) past FULL_DECOMPOSITION_MAX_TOKENS (attention_long)."""
    if A.shape[-1] > FULL_DECOMPOSITION_MAX_TOKENS:
        from explorer.analysis.attention_long import stationary_long

        return _numpy(stationary_long(A, damping, bool(spec.is_lower_triangular(A))))
    return _numpy(spec.stationary_distribution(A, damping))


def selected_heads(grid: AttentionGrid, count: int = 3) -> list[tuple[int, int, str]]:
    """A few heads worth a look, each with why: the strongest sink, the sharpest (lowest entropy) and the
    slowest-mixing (largest |lambda_2| among non-triangular heads, else the most diffuse). No duplicates."""
    picks: list[tuple[int, int, str]] = []

    def add(values: np.ndarray, why: str, largest: bool) -> None:
        order = np.argsort(values, axis=None, kind="stable")
        if largest:
            order = order[::-1]
        for flat in order:
            layer, head = np.unravel_index(int(flat), values.shape)
            if not any((layer, head) == (p[0], p[1]) for p in picks):
                picks.append((int(layer), int(head), why))
                return

    add(grid.sink_mass, "strongest attention sink", True)
    add(grid.entropy, "sharpest (lowest entropy)", False)
    if grid.triangular.all():
        add(grid.entropy, "most diffuse (highest entropy)", True)
    else:
        add(np.where(grid.triangular, -np.inf, grid.lambda2_abs), "slowest mixing (largest |λ₂|)", True)
    return picks[:count]
