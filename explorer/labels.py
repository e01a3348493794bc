"""Display names shared by every layer (analysis prose, figures, pages): each label is defined here once.

Plain data, no imports, so the maths layers and the figures can both use it without depending on each other.
"""

from __future__ import annotations

# The kinds of weight matrix (explorer.models.anatomy.KINDS), as the pages, figures and prose name them.
WEIGHT_KIND_LABELS = {
    "attn_q": "attention W_Q",
    "attn_k": "attention W_K",
    "attn_v": "attention W_V",
    "attn_o": "attention W_O",
    "mlp_gate": "MLP gate",
    "mlp_up": "MLP up",
    "mlp_down": "MLP down",
    "embed": "token embedding",
    "pos_embed": "position embedding",
    "lm_head": "LM head",
    "other": "other",
}

# The low-rank factorization methods (explorer.analysis.lowrank.METHODS).
LOWRANK_METHOD_LABELS = {
    "svd": "Plain SVD",
    "asvd": "ASVD (activation-aware)",
    "svdllm": "SVD-LLM (whitened)",
}


def weight_kind_label(kind: str) -> str:
    """The display name of a weight kind; an unknown kind is shown as it is."""
    return WEIGHT_KIND_LABELS.get(kind, kind)
