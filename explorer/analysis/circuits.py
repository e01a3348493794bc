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

Comparing model A with a variant B (``compare_circuits``, ``circuit_changes``): per head, B - A of the copying
score, the spectral radius of W_OV and the norms ||W_OV||_2, ||W_QK||_2, and the relative changes
||W_OV^B - W_OV^A||_F / ||W_OV^A||_F (and the same for W_QK), computed without forming any d_model x d_model
product (``low_rank_difference_norm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import torch

from explorer import tasks
from explorer.analysis.head_changes import HeadChanges
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
    model: torch.nn.Module,
    n_layers: int,
    n_heads: int,
    n_kv_heads: int | None = None,
    replaced: dict[str, torch.Tensor] | None = None,
) -> CircuitSpectra:
    """Circuits of every head of the first ``n_layers`` layers, all heads of all layers in one batched
    float64 call each (on CPU: at d_head <= 128 this is cheap, and one big call beats many small ones).

    ``replaced``: a variant's new matrices (``WeightMatrix.name`` -> (out, in) weight, as
    ``variants.Variant.replaced``): the circuits of that variant B of ``model`` (``model`` is only read)."""
    anatomy = anatomy_of(model).require_heads(n_heads, n_kv_heads)
    source = ReplacedWeights(model, replaced or {})
    with torch.no_grad():
        layers = [anatomy.head_weights(source, layer) for layer in range(n_layers)]
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


# ------------------------------------------------------------------------------------------ A against B


class ReplacedWeights:
    """``model``'s modules as the anatomy's matrix slots read them (``get_submodule(name).weight``), with the
    matrices named in ``replaced`` (slot name -> (out, in) weight) put in: the weights of a variant B of the
    model, read without B's own modules (a variant computes with modules no anatomy reads, e.g. a DenseLinear
    in place of a quantized Linear). Nothing of ``model`` is written."""

    def __init__(self, model: torch.nn.Module, replaced: dict[str, torch.Tensor]):
        self._model, self._replaced = model, replaced
        self._slots: dict[str, list] = {}
        if replaced:
            for slot in anatomy_of(model).matrices:
                self._slots.setdefault(slot.module, []).append(slot)

    def get_submodule(self, name: str):
        """The module ``name`` of ``model``, or a stand-in whose ``weight`` (in the module's own layout:
        (in, out) for GPT-2's Conv1D, the parts of a fused q/k/v stacked) holds B's matrices."""
        module = self._model.get_submodule(name)
        slots = sorted(self._slots.get(name, []), key=lambda slot: slot.part)
        if not any(slot.name in self._replaced for slot in slots):
            return module
        parts = [self._replaced.get(slot.name, slot.weight_of(module)).detach() for slot in slots]
        weight = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]  # (out, in)
        return SimpleNamespace(weight=weight.T if slots[0].transposed else weight)


def _inner(G: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """<G, H>_F = tr(G^T H) over the last two axes: (...,)."""
    return (G * H).sum(dim=(-2, -1))


def relative_difference_norm(X1: torch.Tensor, Y1: torch.Tensor, X2: torch.Tensor, Y2: torch.Tensor):
    """(||X1 Y1 - X2 Y2||_F, ||X2 Y2||_F) for X1, X2: (..., n, k) and Y1, Y2: (..., k, m), without forming an
    n x m product: two (...,) float64 tensors.

    With dX = X1 - X2, dY = Y1 - Y2: X1 Y1 - X2 Y2 = dX Y1 + X2 dY, and ||A B||_F^2 = tr(B^T A^T A B) =
    <A^T A, B B^T>_F, so
        ||X1 Y1 - X2 Y2||_F^2 = <dX^T dX, Y1 Y1^T> + 2 <dX^T X2, Y1 dY^T> + <X2^T X2, dY dY^T>,
    six k x k Gram matrices (X2^T X2 serves ||X2 Y2||_F^2 = <X2^T X2, Y2 Y2^T> too). Why through the differences
    and not ||X1 Y1||^2 - 2 <X1^T X2, Y1 Y2^T> + ||X2 Y2||^2: each term is rounded relative to its own size, of
    the order of the change squared, so a small change is not lost to cancellation against ||W||^2; and
    unchanged factors (dX = dY = 0) give exactly 0."""
    X1, Y1, X2, Y2 = (t.to(torch.float64) for t in (X1, Y1, X2, Y2))
    dX, dY = X1 - X2, Y1 - Y2
    XX = X2.mT @ X2
    squared = _inner(dX.mT @ dX, Y1 @ Y1.mT) + 2 * _inner(dX.mT @ X2, Y1 @ dY.mT) + _inner(XX, dY @ dY.mT)
    # >= 0 exactly; rounding can leave -eps where the change cancels (X Y = (cX)(Y/c))
    return squared.clamp_min(0).sqrt(), _inner(XX, Y2 @ Y2.mT).clamp_min(0).sqrt()


def low_rank_difference_norm(X1: torch.Tensor, Y1: torch.Tensor, X2: torch.Tensor, Y2: torch.Tensor):
    """||X1 Y1 - X2 Y2||_F (see ``relative_difference_norm``): (...,) float64."""
    return relative_difference_norm(X1, Y1, X2, Y2)[0]


def low_rank_product_norm(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """||X Y||_F = sqrt(<X^T X, Y Y^T>_F) for X (..., n, k), Y (..., k, m): (...,) float64."""
    X, Y = X.to(torch.float64), Y.to(torch.float64)
    return _inner(X.mT @ X, Y @ Y.mT).clamp_min(0).sqrt()


def _relative(change: torch.Tensor, norm: torch.Tensor) -> np.ndarray:
    """change / norm, with 0 for 0/0 and inf for a change of a zero circuit."""
    change, norm = change.numpy(), norm.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, change / norm, np.where(change > 0, np.inf, 0.0))


def circuit_changes(
    model: torch.nn.Module,
    replaced: dict[str, torch.Tensor],
    n_layers: int,
    n_heads: int,
    n_kv_heads: int | None = None,
    progress: tasks.Progress | None = None,
) -> dict[str, np.ndarray]:
    """How much each head's circuits differ between A = ``model`` and its variant B (A with the matrices in
    ``replaced``, as ``circuit_spectra``), from their weights.

    Returns (layer, head) arrays: ``ov_change`` = ||W_OV^B - W_OV^A||_F / ||W_OV^A||_F, ``qk_change`` the same
    for W_QK (float64; 0 where the weights agree, inf for a change of an all-zero circuit), and ``same`` (bool):
    the head's W_Q, W_K, W_V and W_O are bitwise equal in A and B (then its circuits are A's)."""
    report = tasks.forward(progress, 0.0, 1.0)
    anatomy = anatomy_of(model).require_heads(n_heads, n_kv_heads)
    source = ReplacedWeights(model, replaced)
    ov, qk, same = [], [], []
    with torch.no_grad():
        for layer in range(n_layers):
            report(layer / n_layers, f"‖ΔW_OV‖ and ‖ΔW_QK‖ of layer {layer}")
            a, b = anatomy.head_weights(model, layer), anatomy.head_weights(source, layer)
            ov.append(_relative(*relative_difference_norm(b.W_V, b.W_O, a.W_V, a.W_O)))
            qk.append(_relative(*relative_difference_norm(b.W_Q, b.W_K.mT, a.W_Q, a.W_K.mT)))
            equal = [(getattr(a, w) == getattr(b, w)).flatten(1).all(1) for w in ("W_Q", "W_K", "W_V", "W_O")]
            same.append(torch.stack(equal).all(0).numpy())
    report(1.0, "Changes measured")
    return {"ov_change": np.array(ov), "qk_change": np.array(qk), "same": np.array(same, dtype=bool)}


# Per-head quantities a comparison draws: key -> label. PAIRED ones have a value in A and in B (the grid shows
# B - A: copying score, spectral radius of W_OV, largest singular values); the relative changes are measured
# between A and B (the grid shows the value).
CIRCUIT_DELTAS = {
    "ov_change": "‖W_OV^B − W_OV^A‖_F / ‖W_OV^A‖_F",
    "qk_change": "‖W_QK^B − W_QK^A‖_F / ‖W_QK^A‖_F",
    "copying_score": "copying score",
    "spectral_radius": "largest |λ| of W_OV",
    "ov_norm": "‖W_OV‖₂",
    "qk_norm": "‖W_QK‖₂",
}
PAIRED = ("copying_score", "spectral_radius", "ov_norm", "qk_norm")


def head_metric(circuits: CircuitSpectra, metric: str) -> np.ndarray:
    """(layer, head) float64: one of PAIRED for every head of ``circuits``."""
    if metric == "copying_score":
        return np.asarray(circuits.copying_score, dtype=np.float64)
    if metric == "spectral_radius":
        return np.abs(circuits.ov_eigvals).max(axis=-1)
    if metric == "ov_norm":
        return circuits.ov_sigma[..., 0].copy()
    if metric == "qk_norm":
        return circuits.qk_sigma[..., 0].copy()
    raise ValueError(f"Unknown circuit metric {metric!r}; choose one of {', '.join(PAIRED)}.")


@dataclass(frozen=True)
class CircuitComparison(HeadChanges):
    """Circuits of model A and of a variant B, head by head. a, b: their CircuitSpectra (same shapes).
    ov_change, qk_change: (layer, head) relative changes of W_OV and W_QK (``circuit_changes``).
    same: (layer, head) bool, the head's weights are bitwise equal in A and B."""

    a: CircuitSpectra
    b: CircuitSpectra
    ov_change: np.ndarray
    qk_change: np.ndarray
    same: np.ndarray

    def values(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(A's, B's) (layer, head) values of a PAIRED metric."""
        return head_metric(self.a, metric), head_metric(self.b, metric)

    def delta(self, metric: str) -> np.ndarray:
        """(layer, head) float64: B - A of a PAIRED metric, or the relative change ``ov_change``/``qk_change``.
        Exactly 0 for a head whose weights are equal in A and B."""
        if metric in ("ov_change", "qk_change"):
            return getattr(self, metric)
        a, b = self.values(metric)
        return np.where(self.same, 0.0, b - a)


def compare_circuits(
    a: CircuitSpectra, b: CircuitSpectra, changes: dict[str, np.ndarray]
) -> CircuitComparison:
    """A's and B's circuit spectra side by side, with the weight changes of ``circuit_changes``."""
    if a.copying_score.shape != b.copying_score.shape or a.d_head != b.d_head:
        raise ValueError(
            f"A has {a.n_layers} x {a.n_heads} heads of size {a.d_head}, B {b.n_layers} x {b.n_heads} of size "
            f"{b.d_head}: compare models of one architecture."
        )
    shape = a.copying_score.shape
    fields = {k: _frozen(np.asarray(changes[k])) for k in ("ov_change", "qk_change", "same")}
    if any(v.shape != shape for v in fields.values()):
        raise ValueError(f"The changes must be (layer, head) = {shape} arrays.")
    return CircuitComparison(a, b, **fields)


def compare_model_circuits(
    model: torch.nn.Module,
    replaced: dict[str, torch.Tensor],
    circuits_a: CircuitSpectra,
    progress: tasks.Progress | None = None,
) -> CircuitComparison:
    """Compare the circuits of A = ``model`` (``circuits_a``, already computed) with those of its variant B (A
    with the matrices in ``replaced``, as ``variants.Variant.replaced``). B's circuits are computed only when
    some head's weights differ (a variant of the MLP matrices alone leaves every circuit as A's)."""
    L, H, G = circuits_a.n_layers, circuits_a.n_heads, circuits_a.n_kv_heads
    changes = circuit_changes(model, replaced, L, H, G, progress=tasks.forward(progress, 0.0, 0.3))
    circuits_b = circuits_a
    if not changes["same"].all():
        tasks.forward(progress, 0.3, 1.0)(0.0, "QK and OV circuits of B")
        circuits_b = circuit_spectra(model, L, H, G, replaced=replaced)
    if progress is not None:
        progress(1.0, "Compared")
    return compare_circuits(circuits_a, circuits_b, changes)


@dataclass(frozen=True)
class CircuitComparisonSpec(tasks.Spec):
    """The task comparing A's circuits with those of the variant ``variant`` (a variants.VariantSpec, which
    names A by its weights' fingerprint, B by its key, the text a LoRA key trains on, and the device)."""

    KIND: ClassVar[str] = "circuits-compare"
    RESULT: ClassVar[object] = CircuitComparison
    MAX_FINISHED: ClassVar[int] = 4
    variant: tasks.Spec

    @property
    def label(self) -> str:
        return f"circuits of A and {self.variant.label}"
