"""Maths of the Learn walkthroughs on dynamics and models: Markov chains, graph Laplacians, recurrent
dynamics, the Hessian of a quadratic loss, LoRA's subspace, Lipschitz bounds. Small matrices in, small frozen
dataclasses out (numpy float64), so every number is testable against numpy/scipy or a theorem.

The LoRA fine-tune that produces a real Delta W lives in explorer/analysis/lora.py; the model-level helpers
here only read weights (never write them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.analysis.teaching import sort_by_modulus
from explorer.models.anatomy import anatomy_of
from explorer.spectra.attention_spectra import PAGERANK_DAMPING

__all__ = [
    "PAGERANK_DAMPING",
    "FiedlerSplit",
    "LipschitzStack",
    "LoraSubspace",
    "MarkovChain",
    "ModelLipschitz",
    "QuadraticDescent",
    "RecurrentPowers",
    "attention_like",
    "fiedler_split",
    "kde_at",
    "weight_near_zero",
    "laplacian",
    "lipschitz_stack",
    "lora_example",
    "lora_subspace",
    "markov_chain",
    "model_lipschitz",
    "pagerank_chain",
    "quadratic_descent",
    "quadratic_hessian",
    "random_stack",
    "recurrent_powers",
    "stationary",
    "token_graph",
    "two_cliques",
]


# ------------------------------------------------------------------------------------------- Markov chains


def attention_like(n: int, sharpness: float, *, causal: bool = False, seed: int = 0) -> np.ndarray:
    """(n, n) row-stochastic: row-softmax of Gaussian scores times ``sharpness`` (a toy attention head);
    ``causal`` masks keys after the query (lower-triangular, as in a causal LM)."""
    scores = sharpness * np.random.default_rng(seed).standard_normal((n, n))
    if causal:
        scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    scores -= scores.max(axis=1, keepdims=True)
    E = np.exp(scores)
    return E / E.sum(axis=1, keepdims=True)


def pagerank_chain(A: np.ndarray, damping: float = PAGERANK_DAMPING) -> np.ndarray:
    """P = damping A + (1 - damping) 11^T / n: with probability 1 - damping the walk teleports to a uniform
    token (docs/ARCHITECTURE.md section 2). Row-stochastic and, for damping < 1, strictly positive. A's rows are
    renormalised in float64 first: otherwise P^k converges to a rounding floor, not to pi."""
    if not 0 < damping <= 1:
        raise ValueError("damping must be in (0, 1]")
    A = np.asarray(A, np.float64)
    A = A / A.sum(axis=1, keepdims=True)  # a float32 capture's rows sum to 1 only within ~1e-7
    return damping * A + (1 - damping) / A.shape[0]


def stationary(P: np.ndarray) -> np.ndarray:
    """The left Perron vector of a row-stochastic P: pi P = pi, pi >= 0, sum pi = 1 (the eigenvector of P^T
    for the eigenvalue nearest 1; unique when P is irreducible, e.g. any PageRank chain with damping < 1)."""
    vals, vecs = np.linalg.eig(np.asarray(P, np.float64).T)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    v = np.abs(v)  # a Perron vector has one sign; abs removes the arbitrary sign (and -0 rounding)
    return v / v.sum()


@dataclass(frozen=True)
class MarkovChain:
    """A random walk on tokens. P: (n, n) row-stochastic chain (after the teleport). pi: (n,) stationary
    distribution. eigvals: (n,) complex128 of P, by decreasing modulus (lambda_1 = 1). lambda2: |lambda_2|.
    distances: (steps + 1,) worst-case total-variation distance max_i 0.5 ||e_i P^k - pi||_1 after k steps.
    rate_line: (steps + 1,) distances[0] * |lambda_2|^k, the slope the distances follow for large k.
    damping: the teleport's damping (1: none)."""

    P: np.ndarray
    pi: np.ndarray
    eigvals: np.ndarray
    lambda2: float
    distances: np.ndarray
    rate_line: np.ndarray
    damping: float

    @property
    def mixing_time(self) -> int | None:
        """First k with distance <= 1/4 (the usual mixing time), None if not within the steps run."""
        hits = np.flatnonzero(self.distances <= 0.25)
        return int(hits[0]) if hits.size else None


def markov_chain(A: np.ndarray, damping: float = PAGERANK_DAMPING, steps: int = 40) -> MarkovChain:
    """The PageRank chain of the row-stochastic ``A`` with its stationary distribution and mixing curve."""
    P = pagerank_chain(A, damping)
    pi = stationary(P)
    eigvals = sort_by_modulus(np.linalg.eigvals(P))
    lambda2 = float(np.abs(eigvals[1])) if len(eigvals) > 1 else 0.0
    n = P.shape[0]
    distances = np.empty(steps + 1)
    Pk = np.eye(n)
    for k in range(steps + 1):
        distances[k] = 0.5 * np.abs(Pk - pi).sum(axis=1).max()
        Pk = Pk @ P
    rate_line = distances[0] * lambda2 ** np.arange(steps + 1)
    return MarkovChain(P, pi, eigvals, lambda2, distances, rate_line, float(damping))


# ------------------------------------------------------------------------------------- graph Laplacian


def two_cliques(n1: int, n2: int, bridge: float = 1.0) -> np.ndarray:
    """(n1 + n2, n1 + n2) weights of two complete graphs (unit edges, no self-loops) joined by one edge of
    weight ``bridge`` between the last node of the first and the first node of the second."""
    n = n1 + n2
    W = np.zeros((n, n))
    W[:n1, :n1] = 1.0
    W[n1:, n1:] = 1.0
    np.fill_diagonal(W, 0.0)
    W[n1 - 1, n1] = W[n1, n1 - 1] = float(bridge)
    return W


def token_graph(A: np.ndarray) -> np.ndarray:
    """W = (A + A^T) / 2 with a zero diagonal: tokens as nodes, symmetrised attention as edge weights
    (a token attending to itself is not an edge between two tokens)."""
    W = 0.5 * (np.asarray(A, np.float64) + np.asarray(A, np.float64).T)
    np.fill_diagonal(W, 0.0)
    return W


def laplacian(W: np.ndarray, normalized: bool = False) -> np.ndarray:
    """L = D - W (D = diag of row sums), or the normalised I - D^{-1/2} W D^{-1/2} (isolated nodes: 0 row)."""
    W = np.asarray(W, np.float64)
    d = W.sum(axis=1)
    if not normalized:
        return np.diag(d) - W
    inv = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    return np.diag((d > 0).astype(float)) - inv[:, None] * W * inv[None, :]


@dataclass(frozen=True)
class FiedlerSplit:
    """Spectral bisection of a weighted graph. W: (n, n) weights. L: (n, n) the Laplacian used. eigvals: (n,)
    ascending. fiedler: (n,) unit eigenvector of the second-smallest eigenvalue (for the normalised Laplacian
    mapped back by D^{-1/2}, Shi-Malik's relaxed cut, then normalised), sign fixed so its largest-|.| entry is
    positive. side: (n,) bool, fiedler >= 0. connectivity: lambda_2, the algebraic connectivity. cut: total
    weight of edges between the two sides. normalized: which Laplacian."""

    W: np.ndarray
    L: np.ndarray
    eigvals: np.ndarray
    fiedler: np.ndarray
    side: np.ndarray
    connectivity: float
    cut: float
    normalized: bool


def fiedler_split(W: np.ndarray, normalized: bool = False) -> FiedlerSplit:
    """Eigen-decomposition of the Laplacian of ``W`` (n >= 2) and the sign split of its Fiedler vector."""
    W = np.asarray(W, np.float64)
    L = laplacian(W, normalized)
    vals, vecs = np.linalg.eigh(L)
    v = vecs[:, 1]
    if normalized:
        d = W.sum(axis=1)
        v = v / np.sqrt(np.where(d > 0, d, 1.0))
        v = v / np.linalg.norm(v)
    v = v * (1.0 if v[np.argmax(np.abs(v))] >= 0 else -1.0)
    side = v >= 0
    cut = float(W[np.ix_(side, ~side)].sum())
    return FiedlerSplit(W, L, vals, v, side, float(vals[1]), cut, normalized)


# ----------------------------------------------------------------------------------- recurrent dynamics


@dataclass(frozen=True)
class RecurrentPowers:
    """h_{t+1} = W h_t from every start at once: ||W^t||_2 is the largest growth of ||h_t|| / ||h_0||.

    W: (n, n). eigvals: (n,) complex128 by decreasing modulus. rho: spectral radius. sigma_max: ||W||_2.
    norms: (steps + 1,) ||W^t||_2. rho_powers: rho^t (a lower bound, Gelfand: ||W^t||^{1/t} -> rho).
    sigma_powers: ||W||_2^t (an upper bound, submultiplicativity). normal_gap: ||W W^T - W^T W||_F /
    ||W||_F^2 (0 for a normal W, where ||W^t|| = rho^t exactly). verdict: "explodes", "vanishes" or
    "neither" (rho within 1e-9 of 1), from rho alone: what happens as t -> infinity."""

    W: np.ndarray
    eigvals: np.ndarray
    rho: float
    sigma_max: float
    norms: np.ndarray
    rho_powers: np.ndarray
    sigma_powers: np.ndarray
    normal_gap: float
    verdict: str

    @property
    def peak_t(self) -> int:
        return int(np.argmax(self.norms))


def recurrent_powers(W: np.ndarray, steps: int = 40) -> RecurrentPowers:
    """Norms of W^t for t = 0..steps, with the spectral bounds (float64)."""
    W = np.asarray(W, np.float64)
    eigvals = sort_by_modulus(np.linalg.eigvals(W))
    rho = float(np.abs(eigvals[0]))
    sigma = float(np.linalg.norm(W, 2))
    norms = np.empty(steps + 1)
    Wt = np.eye(W.shape[0])
    for t in range(steps + 1):
        norms[t] = np.linalg.norm(Wt, 2)
        Wt = Wt @ W
    t = np.arange(steps + 1)
    fro2 = float(np.sum(W * W))
    gap = float(np.linalg.norm(W @ W.T - W.T @ W)) / fro2 if fro2 > 0 else 0.0
    verdict = "neither" if abs(rho - 1) <= 1e-9 else ("explodes" if rho > 1 else "vanishes")
    return RecurrentPowers(W, eigvals, rho, sigma, norms, rho**t, sigma**t, gap, verdict)


def ov_core(model: torch.nn.Module, layer: int, head: int) -> np.ndarray:
    """(d_head, d_head) float64: the core C = W_O^h W_V^h of one head (explorer/analysis/circuits.py), which
    holds all of W_OV's nonzero dynamics: (W_V W_O)^t = W_V C^(t-1) W_O. Read only, never written."""
    from explorer.analysis.circuits import ov_core_matrix

    anatomy = anatomy_of(model)
    return ov_core_matrix(model, layer, head, anatomy.n_heads, anatomy.n_kv_heads)


# ----------------------------------------------------------------------------------------- the Hessian


def quadratic_hessian(lam_small: float, lam_large: float, angle_deg: float = 30.0) -> np.ndarray:
    """(2, 2) symmetric H = R diag(lam_large, lam_small) R^T, R the rotation by ``angle_deg``: the Hessian of
    the loss f(x) = x^T H x / 2, whose sharp eigen-direction points at ``angle_deg``."""
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return R @ np.diag([lam_large, lam_small]) @ R.T


@dataclass(frozen=True)
class QuadraticDescent:
    """Gradient descent x_{k+1} = x_k - eta H x_k on f(x) = x^T H x / 2 (H symmetric positive definite).

    H: (n, n). eigvals: (n,) ascending. eigvecs: (n, n) columns, matching. eta: the step. path: (steps + 1, n).
    losses: (steps + 1,) f(x_k). coords: (steps + 1, n) x_k in the eigenbasis (column i along eigvecs[:, i]).
    multipliers: (n,) 1 - eta lambda_i, what each eigen-coordinate is multiplied by per step. kappa:
    lambda_max / lambda_min. eta_max: 2 / lambda_max, the stability limit. diverges: some |1 - eta lambda_i|
    > 1."""

    H: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    eta: float
    path: np.ndarray
    losses: np.ndarray
    coords: np.ndarray
    multipliers: np.ndarray
    kappa: float
    eta_max: float
    diverges: bool


def quadratic_descent(H: np.ndarray, x0, eta: float, steps: int = 30) -> QuadraticDescent:
    """Run ``steps`` gradient-descent steps from ``x0`` on the quadratic with Hessian ``H``."""
    H = np.asarray(H, np.float64)
    vals, vecs = np.linalg.eigh(H)
    path = np.empty((steps + 1, H.shape[0]))
    path[0] = np.asarray(x0, np.float64)
    for k in range(steps):
        path[k + 1] = path[k] - eta * (H @ path[k])
    losses = 0.5 * np.einsum("ki,ij,kj->k", path, H, path)
    mult = 1.0 - eta * vals
    return QuadraticDescent(
        H,
        vals,
        vecs,
        float(eta),
        path,
        losses,
        path @ vecs,
        mult,
        float(vals[-1] / vals[0]) if vals[0] > 0 else float("inf"),
        2.0 / float(vals[-1]),
        bool(np.any(np.abs(mult) > 1.0)),
    )


def kde_at(x, eigenvalues, weights=None, *, sigma: float) -> np.ndarray:
    """Gaussian kernel density of a spectrum at ``x``: sum_i w_i N(x; lambda_i, sigma^2), weights normalised
    to sum to 1 (equal when None). Units: per unit of lambda. At x = 0 it measures how much of the spectrum is
    flat (eigenvalues near zero): larger means a flatter minimum in more directions."""
    lam = np.ravel(np.asarray(eigenvalues, np.float64))
    w = np.ones_like(lam) if weights is None else np.ravel(np.asarray(weights, np.float64))
    w = w / w.sum()
    z = (np.atleast_1d(np.asarray(x, np.float64))[:, None] - lam[None, :]) / sigma
    return (np.exp(-0.5 * z**2) / (sigma * np.sqrt(2 * np.pi))) @ w


# ------------------------------------------------------------------------------------------------- LoRA


@dataclass(frozen=True)
class LoraSubspace:
    """Where a low-rank update Delta W (m, n) sits relative to W (m, n) (Hu et al. 2021, section 7).

    rank: r, the update's rank used. delta_sigma: (r,) Delta W's top singular values. top_share:
    ||U_r^T Delta W V_r||_F / ||Delta W||_F with U_r, V_r W's own top-r singular vectors (1: Delta W lives in
    W's dominant subspace; about r / sqrt(m n) for a random update). projected: ||U^T W V||_F with U, V
    Delta W's top-r singular vectors (how much W already has in Delta W's directions). w_top: the same for W's
    own top-r vectors, sqrt(sigma_1^2 + ... + sigma_r^2). w_random: the same for random r-dim subspaces.
    amplification: ||Delta W||_F / projected, how strongly the update amplifies those directions."""

    rank: int
    delta_sigma: np.ndarray
    top_share: float
    projected: float
    w_top: float
    w_random: float
    delta_norm: float
    amplification: float


def lora_subspace(W: np.ndarray, dW: np.ndarray, r: int, seed: int = 0) -> LoraSubspace:
    """The section-7 measurements of Hu et al. (2021) for one adapted matrix (float64)."""
    W = np.asarray(W, np.float64)
    dW = np.asarray(dW, np.float64)
    m, n = W.shape
    r = max(1, min(int(r), m, n))
    Uw, Sw, Vwh = np.linalg.svd(W, full_matrices=False)
    Ud, Sd, Vdh = np.linalg.svd(dW, full_matrices=False)
    delta_norm = float(np.linalg.norm(dW))
    top_share = float(np.linalg.norm(Uw[:, :r].T @ dW @ Vwh[:r].T)) / delta_norm if delta_norm > 0 else 0.0
    projected = float(np.linalg.norm(Ud[:, :r].T @ W @ Vdh[:r].T))
    rng = np.random.default_rng(seed)
    Ur = np.linalg.qr(rng.standard_normal((m, r)))[0]
    Vr = np.linalg.qr(rng.standard_normal((n, r)))[0]
    return LoraSubspace(
        rank=r,
        delta_sigma=Sd[:r].copy(),
        top_share=top_share,
        projected=projected,
        w_top=float(np.sqrt(np.sum(Sw[:r] ** 2))),
        w_random=float(np.linalg.norm(Ur.T @ W @ Vr)),
        delta_norm=delta_norm,
        amplification=delta_norm / projected if projected > 0 else float("inf"),
    )


LORA_WHERE = ("top", "middle", "random")


def lora_example(m: int, n: int, r: int, where: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(W, Delta W) for the small example: W (m, n) with singular values 1, 1/2, 1/3, ... on random singular
    vectors; Delta W = B A of rank r with unit singular values along W's top r directions ("top"), along
    directions r+1..2r ("middle"), or along random ones ("random")."""
    if where not in LORA_WHERE:
        raise ValueError(f"where must be one of {LORA_WHERE}")
    rng = np.random.default_rng(seed)
    k = min(m, n)
    U = np.linalg.qr(rng.standard_normal((m, k)))[0]
    V = np.linalg.qr(rng.standard_normal((n, k)))[0]
    W = U @ np.diag(1.0 / np.arange(1, k + 1)) @ V.T
    r = max(1, min(r, k // 2))
    if where == "top":
        B, A = U[:, :r], V[:, :r].T
    elif where == "middle":
        B, A = U[:, r : 2 * r], V[:, r : 2 * r].T
    else:
        B = np.linalg.qr(rng.standard_normal((m, r)))[0]
        A = np.linalg.qr(rng.standard_normal((n, r)))[0].T
    return W, B @ A


# -------------------------------------------------------------------------------------- Lipschitz bounds

ACTIVATIONS = {
    "none": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
}


def random_stack(depth: int, width: int, scale: float, *, normalize: bool = False, seed: int = 0):
    """``depth`` Gaussian (width, width) matrices with entries N(0, scale^2 / width) (sigma_max about
    2 scale); ``normalize`` divides each by its sigma_max (spectral normalisation: every layer 1-Lipschitz)."""
    rng = np.random.default_rng(seed)
    mats = [scale * rng.standard_normal((width, width)) / np.sqrt(width) for _ in range(depth)]
    if normalize:
        mats = [M / np.linalg.norm(M, 2) for M in mats]
    return mats


@dataclass(frozen=True)
class LipschitzStack:
    """f_l = act(W_l f_{l-1}) for l = 1..L, against its Lipschitz bound.

    sigma_max: (L,) ||W_l||_2. bound: (L,) prod_{i<=l} sigma_max (valid for a 1-Lipschitz activation).
    linear_norm: (L,) ||W_l ... W_1||_2, the exact Lipschitz constant without activation (<= bound).
    amplification: (L, pairs) ||f_l(x) - f_l(y)|| / ||x - y|| for random nearby pairs (<= bound).
    activation: the activation's name."""

    sigma_max: np.ndarray
    bound: np.ndarray
    linear_norm: np.ndarray
    amplification: np.ndarray
    activation: str


def lipschitz_stack(mats, activation: str = "relu", pairs: int = 64, seed: int = 0) -> LipschitzStack:
    """Bounds and measured amplification through the stack ``mats`` (each (width, width))."""
    act = ACTIVATIONS[activation]
    rng = np.random.default_rng(seed)
    width = mats[0].shape[1]
    x = rng.standard_normal((pairs, width))
    y = x + 1e-3 * rng.standard_normal((pairs, width))
    d0 = np.linalg.norm(x - y, axis=1)
    sig, lin, amp = [], [], []
    prod = np.eye(width)
    for W in mats:
        sig.append(np.linalg.norm(W, 2))
        prod = W @ prod
        lin.append(np.linalg.norm(prod, 2))
        x, y = act(x @ W.T), act(y @ W.T)
        amp.append(np.linalg.norm(x - y, axis=1) / d0)
    sig = np.array(sig)
    return LipschitzStack(sig, np.cumprod(sig), np.array(lin), np.array(amp), activation)


@dataclass(frozen=True)
class ModelLipschitz:
    """sigma_max of every attention and MLP matrix of every block of a model, and a product bound.

    kinds: the matrix kinds (anatomy names, e.g. "attn_v"). sigma: (layer, kind) ||W||_2 (NaN where a kind is
    missing). path: (layer,) 1 + sigma(W_V) sigma(W_O) + sigma(W_up) sigma(W_down): the Lipschitz constant of
    x -> x + W_O W_V x + W_down act(W_up x) (residual block with the value-output path and the MLP, attention
    weights and LayerNorm left out, activation 1-Lipschitz). log10_bound: (layer,) cumulative
    sum of log10(path): the bound for blocks 0..l."""

    kinds: tuple[str, ...]
    sigma: np.ndarray
    path: np.ndarray
    log10_bound: np.ndarray


def model_lipschitz(model: torch.nn.Module) -> ModelLipschitz:
    """sigma_max by LAPACK on float64 copies of each block matrix (read only)."""
    anatomy = anatomy_of(model)
    kinds = ("attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down")
    sigma = np.full((anatomy.n_layers, len(kinds)), np.nan)
    with torch.no_grad():
        for layer in range(anatomy.n_layers):
            slots = anatomy.layer_matrices(layer)
            for j, kind in enumerate(kinds):
                if kind in slots:
                    W = slots[kind].weight(model).to("cpu", torch.float64)
                    sigma[layer, j] = float(torch.linalg.matrix_norm(W, ord=2))
    col = {k: sigma[:, j] for j, k in enumerate(kinds)}
    path = 1.0 + col["attn_v"] * col["attn_o"] + col["mlp_up"] * col["mlp_down"]
    return ModelLipschitz(kinds, sigma, path, np.cumsum(np.log10(path)))


# ------------------------------------------------------------------------- the loaded model's curvature


@dataclass(frozen=True)
class BlockCurvature:
    """The Hessian of the loaded model's loss over one parameter block, from a few Lanczos steps (the
    curvature page's solvers, explorer/analysis/curvature.py, at a smaller budget).

    block, label, n_params: which parameters. loss: nats. description: the loss in words. lambda_max: the top
    Ritz value (nats per parameter unit^2); residual: its residual norm (an eigenvalue lies within it).
    eta_max: 2 / lambda_max. nodes, weights: (probe, steps) SLQ Ritz values and weights (each probe's sum
    to 1). sigma: the Gaussian broadening. grid, density: (g,) the broadened density (integrating to 1).
    kde0: the kernel density at 0, kde_at(0, nodes, weights, sigma), per unit of lambda. n_matvec: Hessian-
    vector products for lambda_max."""

    block: str
    label: str
    n_params: int
    loss: float
    description: str
    lambda_max: float
    residual: float
    eta_max: float
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    grid: np.ndarray
    density: np.ndarray
    kde0: float
    n_matvec: int


def weight_near_zero(nodes, weights, width: float) -> float:
    """Share of a spectrum's weight at eigenvalues with |lambda| <= width (weights normalised over all nodes):
    how much of an SLQ density (nodes, weights of shape (probe, steps)) is flat at that resolution."""
    lam = np.ravel(np.asarray(nodes, np.float64))
    w = np.ravel(np.asarray(weights, np.float64))
    return float(w[np.abs(lam) <= width].sum() / w.sum())


def block_curvature(
    loaded,
    text: str,
    block: str,
    *,
    max_tokens: int = 64,
    max_matvec: int = 12,
    density_steps: int = 12,
    progress=None,
) -> BlockCurvature:
    """lambda_max and the SLQ density of the Hessian over ``block`` of ``loaded`` (a LoadedModel, only read:
    the operator works on a structural copy) on the curvature page's loss for ``text``. The random draws are
    the default ``ProbeOptions``' (seed 0): the same block gives the same numbers."""
    from explorer.analysis import curvature as C

    spec = C.make_loss(loaded, text, max_tokens)
    chosen = C.select_block(loaded.model, block)
    op = C.CurvatureOperator(loaded.model, spec, chosen, "hessian")
    options = C.ProbeOptions(progress=progress)
    top = C.top_eigen(op, loaded.model, 1, tol=1e-3, max_matvec=max_matvec, options=C.within(options, 0, 0.5))
    dens = C.block_density(op, 1, density_steps, options=C.within(options, 0.5, 1.0))
    lam = float(top.eigenvalues[0])
    return BlockCurvature(
        block=block,
        label=chosen.label,
        n_params=chosen.n_params,
        loss=op.loss,
        description=spec.description,
        lambda_max=lam,
        residual=float(top.residual_norms[0]),
        eta_max=2.0 / lam if lam > 0 else float("inf"),
        nodes=np.asarray(dens.nodes, np.float64),
        weights=np.asarray(dens.weights, np.float64),
        sigma=float(dens.sigma),
        grid=np.asarray(dens.grid, np.float64),
        density=np.asarray(dens.density, np.float64),
        kde0=float(kde_at(0.0, dens.nodes, dens.weights, sigma=dens.sigma)[0]),
        n_matvec=int(top.n_matvec),
    )
