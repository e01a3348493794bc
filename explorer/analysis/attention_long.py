"""Attention at long lengths (up to a model's whole context): the grid reduced layer by layer as the model
produces it, and the top of one head's spectrum by Krylov methods, each value with the residual that bounds it.

Past FULL_DECOMPOSITION_MAX_TOKENS (explorer.analysis.attention) a whole decomposition of every head costs
O(T^3) each (a full SVD of one 4,096 x 4,096 head is about 20 s on two cores; SmolLM2 has 270 heads), and the
attention of every layer does not fit in memory (72 GB at 8,192 tokens on SmolLM2). So:

- the grid keeps the O(T^2) metrics: entropy, sink mass, the triangular check and lambda_2 from the diagonal of a
  triangular (causal) head, and the stable rank with sigma_1 from a few power iterations (with a certified
  interval); effective and numerical rank (every singular value) and lambda_2 of a non-triangular head are NaN,
  listed in AttentionGrid.not_offered with a note;
- the selected head gets its top-k singular values, eigenvalues of the symmetric part, and (non-triangular heads)
  eigenvalues by ARPACK, each with its residual (HeadSpectrum.residuals); a triangular head's eigenvalues and
  Laplacian eigenvalues are its diagonal (exact, all of them) and its stationary distribution one triangular solve.
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from explorer.analysis import attention as att
from explorer.models.capture import FULL_ATTENTION_BYTES, Capture, attention_bytes, capture, tokenize
from explorer.models.device import linalg_device
from explorer.spectra import attention_spectra as spec

# How many values of the top of each spectrum the selected head gets at long lengths.
HEAD_TOP_K = 8
# Metrics that need every singular value of a head: never offered past the full-decomposition length.
WHOLE_SPECTRUM_METRICS = ("effective_rank", "numerical_rank")
# PageRank by power iteration (general heads past the full length): the chain contracts by `damping` a step in
# the 1-norm, so STATIONARY_TOL is reached within log(tol) / log(damping) steps (about 210 at damping 0.85).
STATIONARY_TOL = 1e-14
STATIONARY_MAX_STEPS = 2000


# ---------------------------------------------------------------------------------------------------------
# The grid, one layer at a time


def long_grid_chunk(A: torch.Tensor, causal: bool) -> dict[str, np.ndarray]:
    """The O(T^2) grid metrics of one layer's heads. A: (head, T, T) in the dtype it was captured in (float32
    is used as it is: every reduction is accumulated in float64, no float64 copy of the layer is made).

    Returns (head,) arrays with the keys of AttentionGrid's fields (effective and numerical rank NaN; lambda_2
    NaN with METHOD_NOT_OFFERED for a head that is not triangular) plus stable_rank_low and power_iterations.
    """
    n_heads = A.shape[0]
    triangular = np.array([bool(spec.is_lower_triangular(a)) if causal else False for a in A])
    entropies = [spec.row_entropy(a, causal) for a in A]  # one head at a time: xlogy makes a copy
    power = spec.top_singular_value_power(A)
    lam2 = np.full(n_heads, np.nan)
    method = np.full(n_heads, spec.METHOD_NOT_OFFERED, dtype=np.int64)
    for h in np.flatnonzero(triangular):
        diag = torch.diagonal(A[h]).abs().to(torch.float64)
        # Eigenvalues of a triangular matrix are its diagonal: |lambda_2| is the second-largest |a_ii|, exactly.
        lam2[h] = float(torch.topk(diag, 2).values[1]) if diag.numel() > 1 else 0.0
        method[h] = spec.METHOD_DIAGONAL
    rho, upper, fro = (power[k].cpu().numpy() for k in ("sigma1_sq", "sigma1_sq_upper", "frobenius_sq"))
    return {
        "lambda2_abs": lam2,
        "lambda2_method": method,
        "triangular": triangular,
        "effective_rank": np.full(n_heads, np.nan),
        "stable_rank": fro / rho,
        "stable_rank_low": fro / upper,
        "numerical_rank": np.full(n_heads, np.nan),
        "sigma_max": np.sqrt(rho),
        "entropy": np.array([float(e[1]) for e in entropies]),
        "entropy_nats": np.array([float(e[0]) for e in entropies]),
        "sink_mass": spec.sink_mass(A).cpu().numpy(),
        "power_iterations": power["iterations"].cpu().numpy(),
    }


class GridReducer:
    """``on_layer`` callback for ``capture``: reduces each layer's (head, T, T) attention to the grid's metrics
    as the model produces it (and keeps nothing else), then ``grid()`` assembles the AttentionGrid.

    Up to FULL_DECOMPOSITION_MAX_TOKENS the metrics are those of attention_grid (whole decompositions, on a
    float64 copy of the layer on the linear-algebra device); past it, long_grid_chunk.
    """

    def __init__(self, *, causal: bool, device: str = "cpu"):
        self.causal = bool(causal)
        self.device = device
        self.layers: dict[int, dict[str, np.ndarray]] = {}

    def __call__(self, layer: int, weights: torch.Tensor) -> None:
        n = weights.shape[-1]
        if n <= att.FULL_DECOMPOSITION_MAX_TOKENS:
            chunk = att._grid_chunk(spec.as_float64(weights, linalg_device(self.device)), self.causal)
        else:
            chunk = long_grid_chunk(weights, self.causal)
        self.layers[int(layer)] = {k: np.asarray(v) for k, v in chunk.items()}
        self.n_tokens = int(n)

    def grid(self) -> att.AttentionGrid:
        if not self.layers:
            raise ValueError("no layer was reduced")
        layers = [self.layers[layer] for layer in range(len(self.layers))]
        out = {k: np.stack([chunk[k] for chunk in layers]) for k in layers[0]}
        out.pop("power_iterations", None)
        stable_rank_low = out.pop("stable_rank_low", None)
        not_offered = tuple(
            name for name in att.GRID_METRICS
            if name != "spectral_gap" and bool(np.isnan(out[name]).any())
        )  # fmt: skip
        if "lambda2_abs" in not_offered:
            not_offered += ("spectral_gap",)
        return att.AttentionGrid(
            n_tokens=self.n_tokens,
            causal=self.causal,
            spectral_gap=1.0 - out["lambda2_abs"],
            stable_rank_low=stable_rank_low,
            not_offered=not_offered,
            note=not_offered_note(not_offered, self.n_tokens),
            **out,
        )


def not_offered_note(names: tuple[str, ...], n_tokens: int) -> str:
    """The sentence the grid shows for metrics it does not offer at this length ("" when none)."""
    if not names:
        return ""
    labels = ", ".join(att.GRID_METRICS[name].label for name in names)
    return (
        f"Not offered at {n_tokens:,} tokens: {labels}. They need every eigen- or singular value of each head "
        f"(a whole decomposition, O(T³) a head), which the grid computes up to "
        f"{att.FULL_DECOMPOSITION_MAX_TOKENS:,} tokens; |λ₂| of a causal (triangular) head is its diagonal and "
        "stays offered. Select a head for the top of its spectrum (Krylov, with residuals). Stable rank here uses "
        "σ₁ from power iteration (an upper estimate; its certified lower bound is in the hover)."
    )


def grid_by_layers(attentions, *, causal: bool, device: str = "cpu", progress=None) -> att.AttentionGrid:
    """The grid of an attention stack read one layer at a time (an ndarray, or a capture's LazyAttentions,
    which recomputes each layer: about a forward pass in all)."""
    reducer = GridReducer(causal=causal, device=device)
    n_layers = attentions.shape[0]
    for layer in range(n_layers):
        weights = np.asarray(attentions[layer], dtype=np.float32)
        with warnings.catch_warnings():  # a read-only capture: torch warns it could write, nothing here does
            warnings.simplefilter("ignore", UserWarning)
            reducer(layer, torch.from_numpy(weights))
        if progress is not None:
            progress((layer + 1) / n_layers, f"grid: layer {layer + 1} of {n_layers}")
    return reducer.grid()


def is_long(loaded, n_tokens: int) -> bool:
    """Whether a capture of ``n_tokens`` keeps no layer whole (Capture.attentions is then a LazyAttentions)."""
    card = loaded.anatomy
    return attention_bytes(card.n_layers, card.n_heads, n_tokens) > FULL_ATTENTION_BYTES


def capture_with_grid(
    loaded, text: str, max_tokens: int | None = None, *, progress=None
) -> tuple[Capture, att.AttentionGrid | None]:
    """A capture and, for a long text, its grid reduced during the same forward pass (None for a short text,
    whose attention is kept whole: attention_grid computes its grid when a page asks). The grid is also left on
    the capture's LazyAttentions (``summary``), where attention_grid finds it."""
    ids, _n, _messages = tokenize(loaded, text, max_tokens)
    reducer = GridReducer(causal=loaded.causal, device=loaded.device) if is_long(loaded, len(ids)) else None
    cap = capture(
        loaded, text, max_tokens, on_layer=reducer, progress=progress, keep_bytes=FULL_ATTENTION_BYTES
    )
    if reducer is None:
        return cap, None
    grid = reducer.grid()
    if hasattr(cap.attentions, "summary"):
        cap.attentions.summary = grid  # attention_grid(cap.attentions) returns it: no second pass
    return cap, grid


# ---------------------------------------------------------------------------------------------------------
# One head: the top of its spectrum


def stationary_long(A: torch.Tensor, damping: float, triangular: bool) -> torch.Tensor:
    """PageRank stationary distribution (as spec.stationary_distribution) in O(T^2): a triangular solve for a
    triangular head (I - d A is lower triangular), else the fixed-point iteration pi <- d pi A + (1 - d)/n (the
    same linear system, so the same answer even where float32 rows do not sum exactly to 1), normalised once."""
    n = A.shape[-1]
    if triangular and damping < 1:
        M = (torch.eye(n, dtype=A.dtype, device=A.device) - damping * A).T  # upper triangular
        rhs = torch.full((n, 1), (1 - damping) / n, dtype=A.dtype, device=A.device)
        pi = torch.linalg.solve_triangular(M, rhs, upper=True).squeeze(-1)
    else:
        pi = torch.full((n,), 1.0 / n, dtype=A.dtype, device=A.device)
        for _ in range(STATIONARY_MAX_STEPS):
            new = damping * (pi @ A) + (1 - damping) / n
            if float((new - pi).abs().sum()) <= STATIONARY_TOL:
                pi = new
                break
            pi = new
    pi = pi.clamp_min(0)
    return pi / pi.sum()


def long_head_spectrum(
    attentions, layer: int, head: int, *, causal: bool, tau: float = 1.0,
    damping: float = spec.PAGERANK_DAMPING, device: str = "cpu", k: int = HEAD_TOP_K,
) -> att.HeadSpectrum:  # fmt: skip
    """The selected head past the full-decomposition length: the top ``k`` of each spectrum by ARPACK with
    residuals (HeadSpectrum.residuals), the whole spectrum where it is exact and cheap (a triangular head's
    eigenvalues and Laplacian eigenvalues are its diagonal), effective and numerical rank NaN (not offered)."""
    A = att.head_matrix(attentions, layer, head, tau=tau, device=device)
    n = A.shape[-1]
    triangular = bool(spec.is_lower_triangular(A))
    a = A.cpu().numpy()
    residuals: dict[str, np.ndarray] = {}
    if triangular:
        eig = spec.eigvals(A, torch.tensor(True)).cpu().numpy()
        lap = (
            spec.sort_by_real((spec.laplacian_degrees(A) - torch.diagonal(A)).to(torch.complex128))
            .cpu()
            .numpy()
        )
    else:
        eig, _vectors, residuals["eigvals"] = spec.krylov_general(a, k, "LM")
        L = spec.laplacian(A).cpu().numpy()
        lap, _vectors, residuals["laplacian_eigvals"] = spec.krylov_general(L, k, "LR")
        del L
    S, _U, _V, residuals["singular_values"] = spec.krylov_singular(a, k)
    sym, _vectors, residuals["sym_eigvals"] = spec.krylov_symmetric((a + a.T) / 2, k)
    del a
    nats, normalised = spec.row_entropy(A, causal)
    lam2 = float(abs(eig[1])) if len(eig) > 1 else 0.0
    fro_sq = float((A * A).sum())
    note = (
        f"At {n:,} tokens this head's spectra are the top {len(S)} values by a Krylov method (ARPACK), each with "
        "its residual; "
        + ("its eigenvalues and Laplacian eigenvalues are its diagonal (triangular head: exact, all of them); "
           if triangular else "")
        + "effective and numerical rank need every singular value and are not offered at this length."
    )  # fmt: skip
    return att.HeadSpectrum(
        layer=layer, head=head, tau=float(tau), damping=float(damping), causal=bool(causal),
        triangular=triangular, attention=_shown(attentions, layer, head, A, tau), eigvals=np.asarray(eig),
        singular_values=np.asarray(S), sym_eigvals=np.asarray(sym), laplacian_eigvals=np.asarray(lap),
        laplacian_degrees=spec.laplacian_degrees(A).cpu().numpy(),
        stationary=stationary_long(A, damping, triangular).cpu().numpy(),
        lambda2_abs=lam2, spectral_gap=1.0 - lam2, entropy=float(normalised), entropy_nats=float(nats),
        effective_rank=float("nan"), stable_rank=fro_sq / float(S[0]) ** 2, numerical_rank=float("nan"),
        sink_mass=float(spec.sink_mass(A)), partial=True, residuals=residuals, note=note,
    )  # fmt: skip


def _shown(attentions, layer: int, head: int, A: torch.Tensor, tau: float) -> np.ndarray:
    """The matrix HeadSpectrum.attention holds at long lengths: at tau = 1 the captured float32 head itself (a
    read-only view: a float64 copy of an 8,192-token head is 537 MB), else A_tau (float64)."""
    if tau == 1:
        return np.asarray(attentions[layer, head])
    return A.cpu().numpy()


def long_head_vectors(A: torch.Tensor, kind: str, k: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Top-k (values, vectors (n, k), residuals) of one head by ARPACK, ordered by |value| descending, for
    head_eigenvectors past the full-decomposition length."""
    a = A.cpu().numpy()
    if kind == "right":
        values, vectors, res = spec.krylov_general(a, k, "LM")
    elif kind == "symmetric":
        values, vectors, res = spec.krylov_symmetric((a + a.T) / 2, k, which="LM")
        order = np.argsort(-np.abs(values), kind="stable")
        values, vectors, res = values[order], vectors[:, order], res[order]
    else:
        values, vectors, _V, res = spec.krylov_singular(a, k)
    return torch.from_numpy(np.asarray(values)), torch.from_numpy(np.asarray(vectors)), res


# ---------------------------------------------------------------------------------------------------------
# What a length costs, before it runs

# Throughputs of the cost model: dense matrix products of the forward pass at this machine's measured matmul rate
# (matmul_flops_per_second), and streaming over attention bytes (softmax, copies and the grid's reductions are
# memory-bound) at a rate set on the development machine (2 CPU cores, float32; bench/bench_long_attention.py
# prints the measured run beside the estimate).
FLOPS_PER_SECOND = 4.0e10  # the fallback when the device's matmul rate cannot be measured
BYTES_PER_SECOND = 4.0e9
# Passes over one layer's float32 attention: eager attention writes the scores, the softmax reads and writes them,
# the weighted sum reads them (4); a long capture's grid adds the entropy, triangular check, sink, Frobenius norm
# (4) and two passes per power iteration (about 2 x 8 on SmolLM2's heads, measured).
FORWARD_PASSES = 4
GRID_PASSES = 4 + 2 * 8
# Transient copies of one layer's attention held at once during the pass (scores, probabilities, a float32 copy).
LAYER_COPIES = 3
COST_FACTOR = 3.0  # the factor the estimate should meet against a measured run (not met yet past 512 tokens)


@dataclass(frozen=True)
class CaptureCost:
    """An estimate (not a measurement) of what capturing ``n_tokens`` costs: ``seconds`` of wall time and
    ``peak_bytes`` of memory above the loaded model, from the cost model above; ``long``: whether the attention
    is reduced layer by layer (nothing kept whole)."""

    n_tokens: int
    seconds: float
    peak_bytes: int
    long: bool

    def describe(self) -> str:
        return (
            f"estimate for {self.n_tokens:,} tokens: about {_seconds(self.seconds)} and {self.peak_bytes / 2**30:.1f} GB "
            "of memory beyond the model (a rough cost model: past 512 tokens it has measured several times low)"
        )


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 1.5 else "1 s or less"


@functools.lru_cache(maxsize=8)
def matmul_flops_per_second(device: str) -> float:
    """This machine's float32 matmul rate on ``device`` (flop/s), measured once per process: the best of three
    1,024 x 576 by 576 x 4,096 products (the shapes of a small model's dense layers), a few milliseconds."""
    try:
        dev = torch.device(device)
        a = torch.randn(1024, 576, device=dev)
        b = torch.randn(576, 4096, device=dev)
        best = float("inf")
        for _ in range(4):  # the first warms the kernels up
            start = time.perf_counter()
            (a @ b).sum().item()
            best = min(best, time.perf_counter() - start)
        return 2.0 * 1024 * 576 * 4096 / best
    except Exception:  # an estimate must never fail a page
        return FLOPS_PER_SECOND


def estimate_capture_cost(loaded, n_tokens: int) -> CaptureCost:
    """The cost model: 2 x parameters x T flops for the dense layers, 4 x layers x T^2 x d_model for the
    attention products, plus float32 attention bytes (layer x head x T^2 x 4) streamed FORWARD_PASSES times
    (and GRID_PASSES more when long); memory: hidden states, logits, the kept attention (short) or a few copies
    of one layer (long)."""
    card = loaded.anatomy
    T, L, H, d = int(n_tokens), card.n_layers, card.n_heads, card.d_model
    params = sum(p.numel() for p in loaded.model.parameters())
    long = is_long(loaded, T)
    flops = 2.0 * params * T + 4.0 * L * T * T * d
    layer_bytes = 4 * H * T * T
    streamed = L * layer_bytes * (FORWARD_PASSES + (GRID_PASSES if long else 0))
    seconds = flops / matmul_flops_per_second(str(loaded.device)) + streamed / BYTES_PER_SECOND
    vocab = int(getattr(loaded.model.config, "vocab_size", 0) or 0) if loaded.causal else 0
    hidden = 4 * (L + 1) * T * d * (2 if long else 1)  # a long capture also keeps each block's input
    peak = hidden + 4 * T * vocab + LAYER_COPIES * layer_bytes + (0 if long else L * layer_bytes)
    return CaptureCost(T, seconds, int(peak), long)
