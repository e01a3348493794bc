"""A LoRA fine-tune of the loaded model, for the Learn page's "LoRA and the dominant eigenspace" walkthrough.

LoRA (Hu et al. 2021) trains W + Delta W with Delta W = B A of rank r, B (m, r) and A (r, n), leaving W frozen.
Here `peft` injects rank-r adapters into the query and value projections (GPT-2: the fused q/k/v c_attn) of a
COPY of the model whose parameters share the cached model's tensors (nothing is written to them: they are
frozen and only the adapters' new tensors train), a few Adam steps run on the walkthrough's loss (the same
loss the curvature page uses: next-token cross-entropy on the text for causal LMs, the contrastive loss on the
shipped sentence pairs for encoders), and each adapted matrix gets the section-7 measurements
(explorer.analysis.teaching_models.lora_subspace). The training, ``train_adapters``, is also the LoRA variant's
(explorer/analysis/variants.py), which keeps the adapted copy to merge W + B A instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explorer import tasks
from explorer.analysis.curvature import LossSpec, scores_and_targets
from explorer.analysis.teaching_models import lora_subspace
from explorer.models.anatomy import anatomy_of

LORA_ALPHA_PER_RANK = 2.0  # peft's lora_alpha = 2 r: the scaling alpha / r is 2 whatever the rank


@dataclass(frozen=True)
class LoraRun:
    """A LoRA fine-tune and where its updates sit. rank, steps, lr, seed: the settings. losses: (steps + 1,)
    the loss (nats) before each step and after the last. names: (matrix,) adapted module names (model
    order). layers: (matrix,) int block index. kinds: (matrix,) "q", "v" or "qkv" (GPT-2's fused c_attn).
    top_share, projected, w_top, w_random, delta_norm, amplification: (matrix,) float64, the fields of
    teaching_models.LoraSubspace for each adapted matrix (oriented out x in)."""

    rank: int
    steps: int
    lr: float
    seed: int
    losses: np.ndarray
    names: tuple[str, ...]
    layers: np.ndarray
    kinds: tuple[str, ...]
    top_share: np.ndarray
    projected: np.ndarray
    w_top: np.ndarray
    w_random: np.ndarray
    delta_norm: np.ndarray
    amplification: np.ndarray


def target_modules(model: torch.nn.Module) -> dict[str, tuple[int, str]]:
    """module name -> (layer, kind) of the matrices LoRA adapts: W_q and W_v of every block (Hu et al.'s
    choice), or GPT-2's fused c_attn (its q, k and v side by side)."""
    targets: dict[str, tuple[int, str]] = {}
    for slot in anatomy_of(model).matrices:
        if slot.layer is None or slot.kind not in ("attn_q", "attn_v"):
            continue
        kind = "qkv" if slot.fused else slot.kind[-1]
        targets.setdefault(slot.module, (slot.layer, kind))
    return targets


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A new module tree whose parameters are NEW Parameter objects on the SAME storage as ``model``'s,
    frozen (requires_grad False): peft's injection and freezing then touch only the copy's objects, and no
    tensor of the cached model is written (tied weights stay tied: one new Parameter per original)."""
    memo = {id(p): torch.nn.Parameter(p.detach(), requires_grad=False) for p in model.parameters()}
    memo.update({id(b): b for b in model.buffers()})
    return copy.deepcopy(model, memo)


def _loss(model: torch.nn.Module, spec: LossSpec) -> torch.Tensor:
    z, y = scores_and_targets(model, spec)
    return F.cross_entropy(z.float(), y)


def train_adapters(
    model: torch.nn.Module,
    targets: Iterable[str],
    spec: LossSpec,
    *,
    rank: int,
    steps: int,
    lr: float,
    seed: int,
    report: tasks.Progress,
) -> tuple[torch.nn.Module, list[float]]:
    """Inject rank-``rank`` LoRA adapters (peft, lora_alpha = 2 r, no dropout) into the modules ``targets`` of
    a frozen copy of ``model`` and run ``steps`` Adam steps at ``lr`` on ``spec``'s loss (cross-entropy, nats).

    Returns (the adapted copy, in eval mode; losses: ``steps + 1`` floats, the loss before each step and after
    the last). The adapters' initial A comes from ``torch.manual_seed(seed)`` inside a forked RNG (the
    caller's RNG state is left as it was), so a seed gives the same losses every time. ``report(fraction,
    message)`` gets ``step / (steps + 1)`` before each step. ``model`` is only read."""
    from peft import LoraConfig, inject_adapter_in_model  # peft is slow to import: only when fine-tuning

    targets = list(targets)
    copy_ = frozen_copy(model).eval()  # eval: no dropout, the steps are deterministic given the seed
    config = LoraConfig(
        r=rank,
        lora_alpha=LORA_ALPHA_PER_RANK * rank,
        lora_dropout=0.0,
        target_modules=targets,
        fan_in_fan_out=any(type(copy_.get_submodule(n)).__name__ == "Conv1D" for n in targets),  # GPT-2
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        copy_ = inject_adapter_in_model(config, copy_)
    trainable = [p for n, p in copy_.named_parameters() if "lora_" in n]
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(trainable, lr=lr)
    losses = []
    with torch.enable_grad():
        for step in range(steps):
            report(step / (steps + 1), f"Adam step {step + 1} of {steps}")
            optimizer.zero_grad(set_to_none=True)
            loss = _loss(copy_, spec)
            losses.append(float(loss.detach()))
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        losses.append(float(_loss(copy_, spec)))
    return copy_, losses


def finetune_lora(
    model: torch.nn.Module,
    spec: LossSpec,
    *,
    rank: int = 4,
    steps: int = 10,
    lr: float = 1e-3,
    seed: int = 0,
    progress: tasks.Progress | None = None,
) -> LoraRun:
    """Inject rank-``rank`` LoRA adapters into a frozen copy of ``model``, run ``steps`` Adam steps at ``lr``
    on ``spec``'s loss (train_adapters), and measure every adapted matrix. ``model`` is only read."""
    report = tasks.forward(progress, 0.0, 1.0)
    targets = target_modules(model)
    copy_, losses = train_adapters(
        model, targets, spec, rank=rank, steps=steps, lr=lr, seed=seed, report=report
    )
    report(steps / (steps + 1), "Measuring each Delta W against W's singular vectors")
    rows = []
    for name, (layer, kind) in targets.items():
        module = copy_.get_submodule(name)
        base = module.get_base_layer().weight.detach()
        delta = module.get_delta_weight("default").detach()
        W, dW = base.to("cpu", torch.float64), delta.to("cpu", torch.float64)
        if getattr(module, "fan_in_fan_out", False):  # GPT-2's Conv1D stores (in, out)
            W, dW = W.T, dW.T
        rows.append((name, layer, kind, lora_subspace(W.numpy(), dW.numpy(), rank, seed)))
    report(1.0, "Done")

    def col(field: str) -> np.ndarray:
        return np.array([getattr(m, field) for *_, m in rows], dtype=np.float64)

    return LoraRun(
        rank=int(rank),
        steps=int(steps),
        lr=float(lr),
        seed=int(seed),
        losses=np.array(losses),
        names=tuple(r[0] for r in rows),
        layers=np.array([r[1] for r in rows], dtype=np.int64),
        kinds=tuple(r[2] for r in rows),
        top_share=col("top_share"),
        projected=col("projected"),
        w_top=col("w_top"),
        w_random=col("w_random"),
        delta_norm=col("delta_norm"),
        amplification=col("amplification"),
    )
