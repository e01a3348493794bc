"""Per-layer (lazy) attention capture: keep only the layers a view needs, so memory stays bounded.

A full capture stores (layer, head, token, token) float32: for SmolLM2 at 1,024 tokens that is 30 x 9 x 1024^2 x 4
bytes = 1.1 GB. Eager attention modules return their weights as the second element of their output whether or not
output_attentions is set; a forward hook on the chosen layers' attention modules copies those out and the rest
are freed layer by layer as usual. The same hooks work when a model is split across GPUs with
device_map="auto" (accelerate moves activations between devices; each hook copies its layer to the CPU).

A capture of a long text (explorer.models.capture, LazyAttentions) goes further: it keeps each block's input and
recomputes one layer from it, without running the layers before it.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from explorer.models.anatomy import anatomy_of
from explorer.models.capture import tokenize
from explorer.models.loading import LoadedModel


def attention_modules(model: torch.nn.Module) -> dict[int, torch.nn.Module]:
    """layer index -> the module whose forward returns (output, attention weights (batch, head, query, key))."""
    return anatomy_of(model).attention_modules(model)


@torch.no_grad()
def attention_for_layers(
    loaded: LoadedModel, text: str, layers, max_tokens: int | None = None
) -> dict[int, np.ndarray]:
    """Attention of the chosen layers only: {layer: ndarray of shape (head, query, key), float32}.

    Runs one forward pass without output_attentions, so no other layer's weights are kept.
    Raises ValueError for a layer the model does not have.
    """
    modules = loaded.anatomy.attention_modules(loaded.model)
    layers = sorted(set(int(layer) for layer in layers))
    missing = [layer for layer in layers if layer not in modules]
    if missing:
        raise ValueError(f"Layer(s) {missing} not found; this model has layers 0..{len(modules) - 1}.")
    ids, _n_original, _messages = tokenize(loaded, text, max_tokens)
    kept: dict[int, np.ndarray] = {}
    owner = threading.get_ident()

    def keep(layer):
        def hook(_module, _args, output):
            if threading.get_ident() != owner:  # another session's forward on the same cached model
                return
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError(
                    f"layer {layer}'s attention module returned no weights (needs eager attention)"
                )
            kept[layer] = weights[0].float().cpu().numpy()

        return hook

    handles = [modules[layer].register_forward_hook(keep(layer)) for layer in layers]
    try:
        loaded.model(input_ids=torch.tensor([ids], device=loaded.device))
    finally:
        for handle in handles:
            handle.remove()  # the cached model must come out exactly as it went in
    return kept
