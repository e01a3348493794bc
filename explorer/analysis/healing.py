"""Healing a low-rank model: a few dozen Adam steps on its factors only, on the calibration text, on a copy.

The compressed copy (explorer.analysis.compression.compressed_model) holds each factored matrix as two factors
A (out, k) and B (k, in). Healing makes private copies of those factors trainable and leaves every other
weight as it is (shared with the cached model, read only: gradients are taken with torch.autograd.grad for the
factors alone, so nothing is ever written to the shared tensors, not even .grad). The objective:

- causal LMs: the mean next-token cross-entropy on the calibration chunks (what the model was trained on);
- encoders: distillation, one minus the mean cosine between the copy's and the original's last hidden states,
  token by token, on the calibration chunks (an encoder has no next-token loss; its use is its embeddings, and
  their quality is measured by cosine: a squared difference would chase the few large-norm dimensions of BERT's
  hidden states instead).

Quality is measured on the held-out EvalSet before and after, with the same evaluate() as every what-if, so
the chart shows how much of the loss training gives back. Cancellable between steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explorer.analysis.compression import (
    EvalSet,
    LowRankEmbedding,
    LowRankLinear,
    Quality,
    Reference,
    calibration_chunks,
    compressed_model,
    evaluate,
)
from explorer.analysis.lowrank import Factorization
from explorer.errors import InputError
from explorer.models.loading import LoadedModel

DEFAULT_STEPS = 30
DEFAULT_LR = 1e-4
MAX_STEPS = 500
HEAL_CHUNK_TOKENS = 128  # per step: one chunk of the calibration text, cycled
MEASURE_CHUNKS = 8  # the training objective before/after is averaged over the first chunks (the same data)


class Cancelled(Exception):
    """Raised when the caller's cancel check says stop."""


@dataclass(frozen=True)
class HealingRun:
    """One healing run.

    losses: ndarray (steps,), the training objective (nats per token for causal LMs, 1 - cosine for encoders)
    on each step's chunk, before the step. calibration_before/after: the objective averaged over the first
    MEASURE_CHUNKS calibration chunks before and after healing (the same data both times: what training did to
    its own objective). objective: its name. before: Quality of the compressed copy before healing; after: of
    the healed copy (held-out EvalSet). seconds: wall-clock time of the training steps. n_params: trainable
    parameters (the factors' entries).
    """

    losses: np.ndarray
    calibration_before: float
    calibration_after: float
    objective: str
    steps: int
    lr: float
    before: Quality
    after: Quality
    seconds: float
    n_params: int


def objective_name(causal: bool) -> str:
    if causal:
        return "next-token cross-entropy on the calibration text (nats per token)"
    return "distillation: 1 - mean cosine to the original's last hidden states, per token"


def _trainable_factors(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Swap every low-rank module's factor buffers for private trainable copies; return them."""
    params = []
    for module in model.modules():
        if isinstance(module, (LowRankLinear, LowRankEmbedding)):
            for name in ("A", "B"):
                value = module._buffers.pop(name).detach().clone()
                param = torch.nn.Parameter(value)
                module.register_parameter(name, param)
                params.append(param)
    return params


def _objective(loaded: LoadedModel, model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    if loaded.causal:
        logits = model(input_ids=ids).logits[0]
        return F.cross_entropy(logits[:-1].float(), ids[0, 1:])
    with torch.no_grad():
        target = loaded.model(input_ids=ids).last_hidden_state
    hidden = model(input_ids=ids).last_hidden_state
    return 1.0 - F.cosine_similarity(hidden.float(), target.float(), dim=-1).mean()


def _mean_objective(loaded: LoadedModel, model: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return float(np.mean([float(_objective(loaded, model, b)) for b in batches[:MEASURE_CHUNKS]]))


def heal(
    loaded: LoadedModel,
    factorization: Factorization,
    ranks: dict[str, int],
    calibration_text: str,
    evalset: EvalSet,
    ref: Reference,
    *,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[HealingRun, torch.nn.Module]:
    """Heal the compressed copy at ``ranks`` with Adam (``steps`` steps of size ``lr``); return the run and the
    healed copy (its factors are its own; everything else is shared with the cached model, unchanged)."""
    if not 0 <= steps <= MAX_STEPS:
        raise InputError(f"Healing takes 0 to {MAX_STEPS} steps; {steps} asked.")
    if not lr > 0:
        raise InputError("The learning rate must be positive.")
    chunks = calibration_chunks(loaded, calibration_text, HEAL_CHUNK_TOKENS)
    chunks = [c for c in chunks if len(c) >= 2] or chunks
    device = loaded.device
    batches = [torch.tensor([c], device=device) for c in chunks]

    model = compressed_model(loaded, factorization, ranks)
    before = evaluate(loaded, model, evalset, ref)
    params = _trainable_factors(model)
    if not params:
        raise InputError("Nothing to heal: no matrix is factored at these settings.")
    calibration_before = _mean_objective(loaded, model, batches)
    optimizer = torch.optim.Adam(params, lr=lr)
    model.eval()  # no dropout: the objective is the deterministic model's

    losses = []
    start = time.perf_counter()
    for step in range(steps):
        if cancel is not None and cancel():
            raise Cancelled
        loss = _objective(loaded, model, batches[step % len(batches)])
        grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(
                (step + 1) / max(steps, 1), f"Healing: step {step + 1} of {steps}, loss {losses[-1]:.4f}"
            )
    seconds = time.perf_counter() - start
    for p in params:
        p.requires_grad_(False)
    after = evaluate(loaded, model, evalset, ref)
    run = HealingRun(
        losses=np.array(losses),
        calibration_before=calibration_before,
        calibration_after=_mean_objective(loaded, model, batches),
        objective=objective_name(loaded.causal),
        steps=steps,
        lr=float(lr),
        before=before,
        after=after,
        seconds=seconds,
        n_params=int(sum(p.numel() for p in params)),
    )
    return run, model
