"""Record what named modules receive in a forward pass: the independent reference for calibration statistics."""

from __future__ import annotations

import torch


def record_inputs(model: torch.nn.Module, names, chunks) -> dict[str, list[torch.Tensor]]:
    """Run ``model`` on each token chunk and return, per module name, its inputs as (token, in) tensors."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [
        model.get_submodule(n).register_forward_pre_hook(
            lambda _m, args, n=n: seen.setdefault(n, []).append(
                args[0].detach().reshape(-1, args[0].shape[-1])
            )
        )
        for n in names
    ]
    try:
        with torch.no_grad():
            for chunk in chunks:
                model(input_ids=torch.tensor([chunk]))
    finally:
        for hook in hooks:
            hook.remove()
    return seen
