"""Every 2-D weight of a model, oriented one way, named one way; and per-head attention weights.

Orientation: every matrix is returned as W of shape (out, in), so y = W x (nn.Linear's convention).
GPT-2's Conv1D stores (in, out) and is transposed here; its fused c_attn is split into q, k, v.
Embeddings are (vocab or positions, d_model). Tied weights (lm_head = embeddings) appear once.

Kinds, the one vocabulary used across pages, the CLI and tests:
    attn_q, attn_k, attn_v, attn_o, mlp_up, mlp_gate, mlp_down, embed, pos_embed, lm_head, other

The tensors are views of the model's parameters (no copies): callers must never modify them in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from transformers.pytorch_utils import Conv1D

KINDS = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_o",
    "mlp_gate",
    "mlp_up",
    "mlp_down",
    "embed",
    "pos_embed",
    "lm_head",
    "other",
]
ATTENTION_KINDS = ["attn_q", "attn_k", "attn_v", "attn_o"]
MLP_KINDS = ["mlp_gate", "mlp_up", "mlp_down"]

# Last component of a module name -> kind. Order matters only where names overlap.
_KIND_BY_SUFFIX = [
    (r"(q_proj|query|q_lin|wq)$", "attn_q"),
    (r"(k_proj|key|k_lin|wk)$", "attn_k"),
    (r"(v_proj|value|v_lin|wv)$", "attn_v"),
    (r"(o_proj|out_proj|attention\.output\.dense|attn\.c_proj|dense_attn|out_lin|wo)$", "attn_o"),
    (r"(gate_proj|w1)$", "mlp_gate"),
    (r"(up_proj|intermediate\.dense|mlp\.c_fc|fc1|lin1|w3)$", "mlp_up"),
    (r"(down_proj|(?<!attention\.)output\.dense|mlp\.c_proj|fc2|lin2|w2)$", "mlp_down"),
    (r"(embed_tokens|word_embeddings|wte|tok_embeddings)$", "embed"),
    (r"(position_embeddings|wpe|embed_positions)$", "pos_embed"),
    (r"(lm_head|embed_out)$", "lm_head"),
]
_LAYER = re.compile(r"\.(\d+)\.")


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


def classify_kind(module_name: str) -> str:
    for pattern, kind in _KIND_BY_SUFFIX:
        if re.search(pattern, module_name):
            return kind
    return "other"


def layer_of(module_name: str) -> int | None:
    match = _LAYER.search(module_name + ".")
    return int(match.group(1)) if match else None


def weight_matrices(model: torch.nn.Module) -> list[WeightMatrix]:
    """All 2-D weights of Linear, Conv1D and Embedding modules, in module order, tied copies skipped."""
    seen: set[int] = set()
    result: list[WeightMatrix] = []
    for module_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
            continue
        if not isinstance(module, (torch.nn.Linear, Conv1D, torch.nn.Embedding)):
            continue
        if weight.data_ptr() in seen:
            continue
        seen.add(weight.data_ptr())
        bias = getattr(module, "bias", None)
        bias = bias.detach() if isinstance(bias, torch.Tensor) else None
        layer = layer_of(module_name)
        if isinstance(module, Conv1D):
            W = weight.detach().T  # Conv1D stores (in, out)
            if module_name.endswith("c_attn"):  # fused q, k, v of GPT-2
                parts = W.chunk(3, dim=0)
                biases = bias.chunk(3) if bias is not None else (None, None, None)
                for part, part_bias, kind in zip(parts, biases, ("attn_q", "attn_k", "attn_v"), strict=True):
                    result.append(
                        WeightMatrix(f"{module_name}:{kind[-1]}", module_name, layer, kind, part, part_bias)
                    )
                continue
        else:
            W = weight.detach()
        result.append(WeightMatrix(module_name, module_name, layer, classify_kind(module_name), W, bias))
    return result


@dataclass(frozen=True)
class HeadWeights:
    """Per-head attention weights of one layer, in the row-vector convention of Elhage et al. (2021):
    q = x @ W_Q[h], k = x @ W_K[h], v = x @ W_V[h], output = z @ W_O[h].

    W_Q: (head, d_model, d_head); W_K, W_V: (head, d_model, d_head), already expanded for grouped-query
    attention (query head h uses key/value head h // (n_heads / n_kv_heads), so heads of a group share
    the same W_K, W_V); W_O: (head, d_head, d_model). float64 on CPU (copies, safe to modify).
    """

    layer: int
    W_Q: torch.Tensor
    W_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor
    n_kv_heads: int

    def kv_head(self, head: int) -> int:
        return head // (self.W_Q.shape[0] // self.n_kv_heads)


def head_weights(
    model: torch.nn.Module,
    layer: int,
    n_heads: int,
    n_kv_heads: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> HeadWeights:
    """Split layer ``layer``'s q/k/v/o projections into heads (see HeadWeights). Biases are ignored."""
    n_kv_heads = n_kv_heads or n_heads
    by_kind = {
        m.kind: m.weight for m in weight_matrices(model) if m.layer == layer and m.kind in ATTENTION_KINDS
    }
    missing = [k for k in ATTENTION_KINDS if k not in by_kind]
    if missing:
        raise ValueError(
            f"Layer {layer} has no recognisable attention projections ({', '.join(missing)} missing)."
        )
    Wq, Wk, Wv, Wo = (by_kind[k].to("cpu", dtype) for k in ATTENTION_KINDS)  # (out, in)
    d_model = Wq.shape[1]
    d_head = Wq.shape[0] // n_heads
    # (out, in) -> (head, d_model, d_head): rows h*d_head..(h+1)*d_head of W produce head h's features.
    W_Q = Wq.reshape(n_heads, d_head, d_model).transpose(1, 2).contiguous()
    W_K = Wk.reshape(n_kv_heads, d_head, d_model).transpose(1, 2)
    W_V = Wv.reshape(n_kv_heads, d_head, d_model).transpose(1, 2)
    group = n_heads // n_kv_heads
    W_K = W_K.repeat_interleave(group, dim=0).contiguous()
    W_V = W_V.repeat_interleave(group, dim=0).contiguous()
    # o_proj: (d_model, n_heads * d_head) -> (head, d_head, d_model)
    W_O = Wo.reshape(d_model, n_heads, d_head).permute(1, 2, 0).contiguous()
    return HeadWeights(layer, W_Q, W_K, W_V, W_O, n_kv_heads)


def weights_checksum(model: torch.nn.Module) -> str:
    """A fingerprint of every parameter's values (sha256 over bytes): equal before/after proves no mutation."""
    import hashlib

    digest = hashlib.sha256()
    for name, param in model.state_dict().items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(param.detach().to("cpu").float().numpy()).tobytes())
    return digest.hexdigest()
