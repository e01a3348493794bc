"""Model surgery for what-ifs: copies that share the loaded model's tensors, and the modules that replace its
matrices. Used by compression (low-rank factors), fewer bits, healing, latency, export and curvature alike.

``compressed_model`` builds the low-rank what-if: a structural copy whose chosen Linear / Conv1D / Embedding
modules are swapped for factored modules that compute A_k (B_k x), so its forward pass is the one a deployed
low-rank model would run (its measured latency is meaningful). Calibration hooks go on such a copy too.

Every what-if runs on a ``structural_copy``: a new module tree whose parameters and buffers ARE the cached model's
(nothing copied, nothing written), so a cached model shared by every browser session is never mutated; the copy's
replaced modules are new objects (``set_submodule``) holding their own tensors.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from transformers.pytorch_utils import Conv1D

from explorer.analysis.lowrank import Factorization, MatrixFactors
from explorer.analysis.matrices import weight_matrices
from explorer.models.anatomy import anatomy_of
from explorer.models.loading import LoadedModel


def structural_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A new module tree that shares every parameter and buffer of ``model`` (nothing copied or written)."""
    memo = {id(t): t for t in model.parameters()}
    memo.update({id(t): t for t in model.buffers()})
    return copy.deepcopy(model, memo)


def tied_output_module(model: torch.nn.Module, embed_module: str) -> str | None:
    """Name of the output layer that shares the embedding's weight (tied lm_head), if any."""
    anatomy = anatomy_of(model)
    return anatomy.tied_output if embed_module == anatomy.embed else None


def sync_device(device: str) -> None:
    """Wait for queued GPU work, so a wall-clock timing covers it (nothing to do on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


class LowRankLinear(torch.nn.Module):
    """y = A (B x) + bias for x of shape (..., in): A (out, k), B (k, in). Replaces Linear and Conv1D."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("A", A, persistent=False)
        self.register_buffer("B", B, persistent=False)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.B), self.A, self.bias)


class DenseLinear(torch.nn.Module):
    """y = W x (+ bias) with W (out, in): an untouched slice of a fused module."""

    def __init__(self, W: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.W = W
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.W, self.bias)


class ConcatLinear(torch.nn.Module):
    """GPT-2's fused c_attn: q, k, v parts (each low-rank or dense), outputs concatenated, plus the bias."""

    def __init__(self, parts: list[torch.nn.Module], bias: torch.Tensor | None):
        super().__init__()
        self.parts = torch.nn.ModuleList(parts)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([part(x) for part in self.parts], dim=-1)
        return y if self.bias is None else y + self.bias


class LowRankEmbedding(torch.nn.Module):
    """E_k[ids] = A[ids] @ B with A (vocab, k), B (k, d_model)."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor, padding_idx: int | None = None):
        super().__init__()
        self.register_buffer("A", A, persistent=False)
        self.register_buffer("B", B, persistent=False)
        self.padding_idx = padding_idx

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.A) @ self.B


def set_submodule(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    """Put ``module`` at dotted ``name`` inside ``root`` (a copy's tree; the original is never touched)."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def modules_holding(model: torch.nn.Module, names=None) -> dict[str, list]:
    """Module name -> its weight matrices (explorer.analysis.matrices.WeightMatrix, in order: GPT-2's fused
    c_attn holds three), for the modules holding at least one matrix named in ``names`` (None: every module
    with a weight matrix). Model surgery replaces whole modules, so it walks them this way."""
    by_module: dict[str, list] = {}
    for mat in weight_matrices(model):
        by_module.setdefault(mat.module, []).append(mat)
    if names is None:
        return by_module
    return {module: mats for module, mats in by_module.items() if any(m.name in names for m in mats)}


def compressed_model(
    loaded: LoadedModel, factorization: Factorization, ranks: dict[str, int]
) -> torch.nn.Module:
    """A structural copy of the cached model with each matrix in ``ranks`` (name -> k) factored at rank k.

    The cached model is only read. A tied output layer follows a compressed embedding.
    """
    model = loaded.model
    clone = structural_copy(model)
    ref = next(model.parameters())
    dtype, device = ref.dtype, ref.device

    def factors(f: MatrixFactors):
        A, B = f.factors(ranks[f.name])
        return A.to(device, dtype), B.to(device, dtype)

    chosen = {f.name: f for f in factorization.matrices if f.name in ranks}
    for module_name, mats in modules_holding(model, chosen).items():
        original = model.get_submodule(module_name)
        if not isinstance(original, (torch.nn.Linear, Conv1D, torch.nn.Embedding)):
            raise TypeError(f"Cannot factor module {module_name} of type {type(original).__name__}.")
        bias = getattr(original, "bias", None)
        if isinstance(original, torch.nn.Embedding):
            A, B = factors(chosen[mats[0].name])
            set_submodule(clone, module_name, LowRankEmbedding(A, B, original.padding_idx))
            tied = tied_output_module(model, module_name)
            if tied is not None:
                set_submodule(
                    clone, tied, LowRankLinear(A, B, getattr(model.get_submodule(tied), "bias", None))
                )
        elif len(mats) == 1:
            A, B = factors(chosen[mats[0].name])
            set_submodule(clone, module_name, LowRankLinear(A, B, bias))
        else:  # fused module (GPT-2 c_attn): factor the chosen parts, keep the others dense
            parts = []
            for mat in mats:
                if mat.name in chosen:
                    parts.append(LowRankLinear(*factors(chosen[mat.name]), None))
                else:
                    parts.append(DenseLinear(mat.weight))
            set_submodule(clone, module_name, ConcatLinear(parts, bias))
    return clone.eval()
