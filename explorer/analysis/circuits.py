"""QK and OV circuits of every attention head (Elhage et al. 2021), from the weights alone.

Convention (row vectors, as ``matrices.HeadWeights``): head h reads the residual stream x through
W_Q^h, W_K^h, W_V^h of shape (d_model, d_head) and writes through W_O^h of shape (d_head, d_model).

- OV circuit W_OV^h = W_V^h W_O^h (d_model x d_model, rank <= d_head): what the head adds to the stream
  for a token it attends to. Its nonzero eigenvalues equal those of the small "core" W_O^h W_V^h
  (d_head x d_head), since AB and BA share their nonzero eigenvalues; so they are computed there.
- Copying score = sum_i Re(lambda_i) / sum_i |lambda_i| in [-1, 1]: +1 when W_OV maps its subspace onto
  itself with positive eigenvalues (the head copies what it reads), -1 when it writes the negative
  (suppression). Note: this is the residual-stream version; Elhage et al. also use W_U W_OV W_E (vocabulary).
- QK circuit W_QK^h = W_Q^h (W_K^h)^T (d_model x d_model, rank <= d_head), the bilinear form behind
  the attention scores (before the 1/sqrt(d_head) scale and any rotary position encoding).
- Singular values of both low-rank products: A B^T = Q_a (R_a R_b^T) Q_b^T with A = Q_a R_a, B = Q_b R_b,
  so the nonzero singular values are those of the d_head x d_head matrix R_a R_b^T.

Grouped-query attention (SmolLM2: 9 query heads, 3 key/value heads): query head h uses key/value head
h // (n_heads / n_kv_heads). Every query head gets its own circuits: heads of one group share W_K and
W_V but have their own W_Q and W_O, so their QK and OV circuits differ. Biases are ignored throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.models.anatomy import HeadWeights, anatomy_of
from explorer.spectra.attention_spectra import sort_by_modulus


@dataclass(frozen=True)
class CircuitSpectra:
    """Per-head circuit spectra of a whole model.

    ov_eigvals: (layer, head, d_head) complex128, eigenvalues of W_O^h W_V^h (= the nonzero eigenvalues
        of W_OV^h), sorted by modulus, decreasing.
    copying_score: (layer, head) float64 in [-1, 1] (NaN for an all-zero circuit).
    ov_sigma, qk_sigma: (layer, head, d_head) float64, singular values of W_OV^h and W_QK^h, decreasing.
    kv_head: (head,) int64, the key/value head each query head reads (identity without GQA).
    """

    ov_eigvals: np.ndarray
    copying_score: np.ndarray
    ov_sigma: np.ndarray
    qk_sigma: np.ndarray
    kv_head: np.ndarray
    n_kv_heads: int

    @property
    def n_layers(self) -> int:
        return int(self.copying_score.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.copying_score.shape[1])

    @property
    def d_head(self) -> int:
        return int(self.ov_eigvals.shape[2])

    @property
    def grouped(self) -> bool:
        return self.n_kv_heads < self.n_heads


def copying_score(eigvals) -> np.ndarray:
    """sum Re(lambda) / sum |lambda| over the last axis: (..., k) complex -> (...) float64 (NaN if all zero)."""
    lam = np.asarray(eigvals, dtype=np.complex128)
    total = np.abs(lam).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, lam.real.sum(axis=-1) / total, np.nan)


def ov_core(hw: HeadWeights) -> torch.Tensor:
    """(head, d_head, d_head) float64: W_O^h W_V^h, whose eigenvalues are the nonzero ones of W_OV^h."""
    return hw.W_O.to(torch.float64) @ hw.W_V.to(torch.float64)


def _gram_root(A: torch.Tensor) -> torch.Tensor:
    """A square root R (..., d_head, d_head) of the Gram matrix, R^T R = A^T A, via eigh (PSD-safe)."""
    evals, V = torch.linalg.eigh(A.mT @ A)
    return evals.clamp_min(0).sqrt()[..., :, None] * V.mT


def low_rank_product_svdvals(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Singular values of A @ B^T for A, B of shape (..., d_model, d_head): (..., d_head), decreasing.

    Any R_a with R_a^T R_a = A^T A (the R of a QR of A, or the Gram square root used here) gives
    (A B^T)(A B^T)^T and (R_a R_b^T)(R_a R_b^T)^T the same nonzero eigenvalues (both equal those of
    (B^T B)(A^T A)), so only a d_head x d_head SVD is needed. The Gram route avoids a batched tall QR,
    which is slow on CPU."""
    A, B = A.to(torch.float64), B.to(torch.float64)
    return torch.linalg.svdvals(_gram_root(A) @ _gram_root(B).mT)


def head_circuits(W_Q, W_K, W_V, W_O) -> dict[str, np.ndarray]:
    """Circuit spectra of a stack of heads (any leading axes ``...``), in the HeadWeights convention.

    W_Q, W_K, W_V: (..., d_model, d_head); W_O: (..., d_head, d_model). Returns ov_eigvals (..., d_head)
    complex128, copying_score (...), ov_sigma and qk_sigma (..., d_head) float64."""
    W_Q, W_K, W_V, W_O = (w.to(torch.float64) for w in (W_Q, W_K, W_V, W_O))
    lam = sort_by_modulus(torch.linalg.eigvals(W_O @ W_V)).numpy()  # the OV core, d_head x d_head
    ov_sigma = low_rank_product_svdvals(W_V, W_O.mT).numpy()  # W_OV = W_V (W_O^T)^T
    qk_sigma = low_rank_product_svdvals(W_Q, W_K).numpy()
    return {
        "ov_eigvals": lam,
        "copying_score": copying_score(lam),
        "ov_sigma": ov_sigma,
        "qk_sigma": qk_sigma,
    }


def layer_circuits(hw: HeadWeights) -> dict[str, np.ndarray]:
    """Circuit spectra of one layer's heads (see ``head_circuits``; leading axis ``head``)."""
    return head_circuits(hw.W_Q, hw.W_K, hw.W_V, hw.W_O)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def circuit_spectra(
    model: torch.nn.Module, n_layers: int, n_heads: int, n_kv_heads: int | None = None
) -> CircuitSpectra:
    """Circuits of every head of the first ``n_layers`` layers, all heads of all layers in one batched
    float64 call each (on CPU: at d_head <= 128 this is cheap, and one big call beats many small ones)."""
    anatomy = anatomy_of(model).require_heads(n_heads, n_kv_heads)
    with torch.no_grad():
        layers = [anatomy.head_weights(model, layer) for layer in range(n_layers)]
        stacked = head_circuits(
            *(torch.stack([getattr(hw, w) for hw in layers]) for w in ("W_Q", "W_K", "W_V", "W_O"))
        )
    return CircuitSpectra(
        ov_eigvals=_frozen(stacked["ov_eigvals"].astype(np.complex128)),
        copying_score=_frozen(stacked["copying_score"]),
        ov_sigma=_frozen(stacked["ov_sigma"]),
        qk_sigma=_frozen(stacked["qk_sigma"]),
        kv_head=_frozen(np.array([anatomy.kv_head(h) for h in range(n_heads)], dtype=np.int64)),
        n_kv_heads=anatomy.n_kv_heads,
    )


def ov_core_matrix(
    model: torch.nn.Module, layer: int, head: int, n_heads: int, n_kv_heads: int | None = None
):
    """(d_head, d_head) float64 numpy: the OV core W_O^h W_V^h of one head (for the Gershgorin page)."""
    with torch.no_grad():
        hw = anatomy_of(model).require_heads(n_heads, n_kv_heads).head_weights(model, layer)
        return ov_core(hw)[head].numpy().copy()
