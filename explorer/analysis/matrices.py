"""Every 2-D weight of a model, oriented one way, named one way; and per-head attention weights.

Where the matrices are, their kinds and orientation come from the model's anatomy
(``explorer.models.anatomy``): every matrix is W of shape (out, in), so y = W x; GPT-2's fused c_attn is
split into q, k, v; tied weights (lm_head = embeddings) appear once.

The tensors are views of the model's parameters (no copies): callers must never modify them in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.models.anatomy import ATTENTION_KINDS, KINDS, MLP_KINDS, HeadWeights, anatomy_of, matrix_slots

__all__ = [
    "ATTENTION_KINDS",
    "KINDS",
    "MLP_KINDS",
    "HeadWeights",
    "WeightMatrix",
    "head_weights",
    "weight_matrices",
    "weights_checksum",
]


@dataclass(frozen=True)
class WeightMatrix:
    """One 2-D weight. ``weight``: tensor of shape (out, in) (a view; do not modify). ``layer``: block
    index or None (embeddings, heads). ``name``: unique, e.g. ``model.layers.3.self_attn.q_proj``
    (``...c_attn:q`` for GPT-2's split q/k/v). ``module``: the owning module's name. ``bias``: shape (out,) or None."""

    name: str
    module: str
    layer: int | None
    kind: str
    weight: torch.Tensor
    bias: torch.Tensor | None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    @property
    def n_params(self) -> int:
        return int(self.weight.numel() + (0 if self.bias is None else self.bias.numel()))


def weight_matrices(model: torch.nn.Module) -> list[WeightMatrix]:
    """All 2-D weights of Linear, Conv1D and Embedding modules, in module order, tied copies skipped; kinds
    and layers from the model's anatomy (kind "other" throughout for a module of no supported architecture)."""
    modules = dict(model.named_modules())
    return [
        WeightMatrix(
            slot.name,
            slot.module,
            slot.layer,
            slot.kind,
            slot.weight_of(modules[slot.module]),
            slot.bias_of(modules[slot.module]),
        )
        for slot in matrix_slots(model)
    ]


def head_weights(
    model: torch.nn.Module,
    layer: int,
    n_heads: int,
    n_kv_heads: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> HeadWeights:
    """Split layer ``layer``'s q/k/v/o projections into heads (see HeadWeights). Biases are ignored.

    ``n_heads`` and ``n_kv_heads`` must be the model's (ValueError otherwise)."""
    return anatomy_of(model).require_heads(n_heads, n_kv_heads).head_weights(model, layer, dtype)


def weights_checksum(model: torch.nn.Module) -> str:
    """A fingerprint of every parameter's values (sha256 over bytes): equal before/after proves no mutation."""
    import hashlib

    digest = hashlib.sha256()
    for name, param in model.state_dict().items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(param.detach().to("cpu").float().numpy()).tobytes())
    return digest.hexdigest()
