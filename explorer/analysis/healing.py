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

Every fourth calibration chunk is held out of training as a validation set; the objective on it is measured
before training and every VALIDATE_EVERY steps, and the factors of the best check are the ones kept (early
stopping). Adam's first steps move every entry by about the step size whatever the gradient's scale, so a step
too large for a model makes its own objective worse (MiniLM's factors at 1e-4: validation 0.043 -> 0.054 in 5
steps). When the first check is worse than the start, the run starts again from the compressed factors with a
step LR_BACKOFF times smaller (at most MAX_BACKOFFS times: MiniLM then heals at 1e-5); when no check beats the
start, the factors are left as they were and the run says so, instead of returning a worse model.

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
VALIDATION_EVERY_NTH_CHUNK = 4  # chunks 3, 7, 11, ... are validation, never trained on
VALIDATE_EVERY = 5  # steps between validation checks (each costs one forward pass per validation chunk)
LR_BACKOFF = 10.0
MAX_BACKOFFS = 2


class Cancelled(Exception):
    """Raised when the caller's cancel check says stop."""


@dataclass(frozen=True)
class HealingRun:
    """One healing run.

    losses: ndarray (steps,), the training objective (nats per token for causal LMs, 1 - cosine for encoders)
    on each step's chunk, before the step; ``steps`` (a property) is their count. calibration_before/after:
    the objective averaged over the first MEASURE_CHUNKS calibration chunks before and after healing (the same
    data both times: what training did to its own objective; measured on the factors kept). objective (a
    property): its name. before: Quality of the compressed copy before healing; after: of the healed copy
    (held-out EvalSet). seconds: wall-clock time of the training steps and checks. n_params: trainable
    parameters (the factors' entries).
    validation_steps: ndarray (checks,), the steps after which the validation chunks were measured (0: before
    training). validation_losses: ndarray (checks,), the objective on them. best_step: the step whose factors
    were kept (the lowest validation objective; 0: training did not help and the factors are unchanged).
    """

    losses: np.ndarray
    calibration_before: float
    calibration_after: float
    lr: float
    lr_asked: float
    before: Quality
    after: Quality
    seconds: float
    n_params: int
    validation_steps: np.ndarray
    validation_losses: np.ndarray
    best_step: int

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def objective(self) -> str:
        return objective_name(self.before.causal)

    @property
    def improved(self) -> bool:
        """Training lowered the validation objective (otherwise the factors were left as they were)."""
        return self.best_step > 0


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


def _assign(targets: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    """targets[i] <- values[i] in place, outside autograd."""
    with torch.no_grad():
        for target, value in zip(targets, values, strict=True):
            target.copy_(value)


def split_chunks(batches: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(training, validation): every VALIDATION_EVERY_NTH_CHUNK-th chunk is validation. With fewer chunks
    than that, the last one is validation (and the rest train); a single chunk is both."""
    nth = VALIDATION_EVERY_NTH_CHUNK
    if len(batches) < 2:
        return batches, batches
    if len(batches) < nth:
        return batches[:-1], batches[-1:]
    train = [b for i, b in enumerate(batches) if i % nth != nth - 1]
    return train, [b for i, b in enumerate(batches) if i % nth == nth - 1]


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
    train, validation = split_chunks(batches)
    calibration_before = _mean_objective(loaded, model, train)
    model.eval()  # no dropout: the objective is the deterministic model's

    start = time.perf_counter()
    initial = _mean_objective(loaded, model, validation)
    snapshot = [p.detach().clone() for p in params]  # the compressed factors (restored on a back-off)
    used = float(lr)
    for attempt in range(MAX_BACKOFFS + 1):
        optimizer = torch.optim.Adam(params, lr=used)
        losses, checks, best_step, best = [], [(0, initial)], 0, None
        backed_off = False
        for step in range(steps):
            if cancel is not None and cancel():
                raise Cancelled
            loss = _objective(loaded, model, train[step % len(train)])
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            done = step + 1
            if done % VALIDATE_EVERY == 0 or done == steps:
                checks.append((done, _mean_objective(loaded, model, validation)))
                if checks[-1][1] < min(value for _, value in checks[:-1]):
                    best_step = done
                    if best is None:
                        best = [p.detach().clone() for p in params]
                    else:
                        _assign(best, params)
                elif len(checks) == 2 and attempt < MAX_BACKOFFS:  # worse at once: the step is too large
                    _assign(params, snapshot)
                    used /= LR_BACKOFF
                    backed_off = True
                    break
            if progress is not None:
                progress(
                    done / max(steps, 1),
                    f"Healing: step {done} of {steps} (step size {used:.0e}), loss {losses[-1]:.4f}",
                )
        if not backed_off:
            break
    _assign(params, best if best is not None else snapshot)  # the best check's factors (or the start's)
    del best, snapshot
    seconds = time.perf_counter() - start
    for p in params:
        p.requires_grad_(False)
    after = evaluate(loaded, model, evalset, ref)
    run = HealingRun(
        losses=np.array(losses),
        calibration_before=calibration_before,
        calibration_after=_mean_objective(loaded, model, train),
        lr=used,
        lr_asked=float(lr),
        before=before,
        after=after,
        seconds=seconds,
        n_params=int(sum(p.numel() for p in params)),
        validation_steps=np.array([s for s, _ in checks]),
        validation_losses=np.array([v for _, v in checks]),
        best_step=best_step,
    )
    return run, model
