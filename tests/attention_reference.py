"""Attention of a Llama-family layer recomputed from per-head weight slices, to check them against the model's
own forward pass (the anatomy tests on tiny-llama and SmolLM2)."""

from __future__ import annotations

import numpy as np
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


def llama_attention_from_heads(model, hw, hidden: torch.Tensor) -> tuple[np.ndarray, float]:
    """Attention probabilities (head, query, key) of block ``hw.layer`` of a float64 Llama-family model, from
    its input ``hidden`` (token, d_model) and the slices ``hw`` (W_Q, W_K already expanded per query head);
    the model's own RMSNorm and rotary tables, written-out scores, causal mask and softmax.

    Also returns an absolute tolerance for comparing with the attention of the float64 model's forward pass.
    The scores differ only in summation order: a dot product of n terms in float64 is off by at most
    n * eps64 * sum |a_i b_i|, so by (d_model + d_head) * eps64 * max (|x||W_Q|)(|x||W_K|)^T / sqrt(d_head);
    the rotation mixes pairs of features (x2 on each of q and k), and softmax moves a probability by at most
    twice the largest score error: factor 8 in all. But transformers' eager attention takes its softmax in
    float32: rounding the scores to float32 moves a probability by at most 2 * (eps32 / 2) * max |score|, and
    the float32 exponentials and the sum over the keys add at most (token + 4) * eps32."""
    block = model.model.layers[hw.layer]
    x = block.input_layernorm(hidden[None].to(torch.float64))[0]  # (token, d_model)
    q = torch.einsum("td,hde->hte", x, hw.W_Q)
    k = torch.einsum("td,hde->hte", x, hw.W_K)
    positions = torch.arange(x.shape[0])[None]
    cos, sin = model.model.rotary_emb(x[None], positions)
    q, k = apply_rotary_pos_emb(q[None], k[None], cos, sin)
    d_head = hw.W_Q.shape[-1]
    scores = (q[0] @ k[0].mT) / np.sqrt(d_head)
    future = torch.ones(x.shape[0], x.shape[0], dtype=torch.bool).triu(1)
    probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)

    q_size = torch.einsum("td,hde->hte", x.abs(), hw.W_Q.abs())
    k_size = torch.einsum("td,hde->hte", x.abs(), hw.W_K.abs())
    size = float((q_size @ k_size.mT).max()) / np.sqrt(d_head)
    largest = float(scores.masked_fill(future, 0).abs().max())
    atol = 8 * (x.shape[1] + d_head) * EPS64 * size + (largest + x.shape[0] + 4) * EPS32
    return probs.numpy(), atol
