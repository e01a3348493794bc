"""A real checkpoint series made from a loaded model: a copy trained a few full-batch Adam steps, saved each step.

``write_demo_series`` trains a deep copy of the model (the cached one is never written to) on the loss the
curvature page uses (``curvature.make_loss``: next-token cross-entropy on the text for a causal LM, the
contrastive loss on the shipped sentence pairs for an encoder) and saves the copy before the first step and
after each one as ``step_0``, ``step_1``, ... (``save_pretrained`` as safetensors, with the tokenizer), which
``analysis.checkpoint_series`` reads as a series. ``loss.json`` in the same folder records the loss (nats) at
every saved step. Only the latest demo series is kept on disk: a model is 0.54 GB per step for SmolLM2.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from explorer import paths, tasks
from explorer.analysis.curvature import LossSpec, loss_value, make_loss, scores_and_targets
from explorer.errors import InputError
from explorer.models import LoadedModel
from explorer.models.choice import text_digest

MAX_STEPS = 8
LEARNING_RATES = (
    1e-5,
    3e-5,
    1e-4,
    3e-4,
    1e-3,
)  # the page's choice; Adam moves each weight by about lr a step
LOSS_FILE = "loss.json"
_PARTIAL = ".partial"  # a series being written; renamed once complete, removed when cancelled or failed


@dataclass(frozen=True)
class DemoSettings:
    """``steps`` full-batch Adam steps (1 to MAX_STEPS) of learning rate ``lr`` (parameter units per step)."""

    steps: int = 4
    lr: float = 1e-4


@dataclass(frozen=True)
class SeriesLoss:
    """The loss of a series' checkpoints: steps (n,) int64, loss (n,) float64 in nats, what the loss is."""

    steps: np.ndarray
    loss: np.ndarray
    description: str


def demo_root() -> Path:
    """The folder that holds the demo series (one at a time): ``<user cache>/eigen-explorer/series``."""
    return paths.cache_dir("series")


def demo_folder(fingerprint: str, text: str, settings: DemoSettings) -> Path:
    """Where the demo of the model with weights ``fingerprint`` trained on ``text`` with ``settings`` goes
    (not created). ``text``: "" for an encoder, whose loss does not read the text."""
    return demo_root() / f"{fingerprint[:16]}-{text_digest(text)}-n{settings.steps}-lr{settings.lr:g}"


def read_series_loss(folder: str | Path) -> SeriesLoss | None:
    """The loss a demo series recorded in its ``loss.json``, or None when the folder has none (a series
    written elsewhere) or it cannot be read."""
    try:
        data = json.loads((Path(folder).expanduser() / LOSS_FILE).read_text())
        return SeriesLoss(
            np.asarray(data["steps"], dtype=np.int64),
            np.asarray(data["loss"], dtype=np.float64),
            str(data["description"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _loss(model: torch.nn.Module, spec: LossSpec) -> torch.Tensor:
    """The loss of ``loss_value`` (float64 cross-entropy of the scores), with its graph for the gradient."""
    z, y = scores_and_targets(model, spec)
    return F.cross_entropy(z.double(), y)


def write_demo_series(
    loaded: LoadedModel,
    text: str,
    folder: str | Path,
    settings: DemoSettings = DemoSettings(),
    *,
    progress: tasks.Progress | None = None,
) -> Path:
    """Train a deep copy of ``loaded.model`` ``settings.steps`` full-batch Adam steps on ``make_loss(loaded,
    text)`` and save it at every step to ``folder/step_<t>`` (t = 0 .. steps), the loss per step (nats) to
    ``folder/loss.json``; then remove every other folder beside ``folder`` (older demos). A ``folder`` that is
    already complete is reused as it is. The copy stays in eval mode (no dropout), so the loss is a function of
    the weights alone and step 0's equals ``loss_value`` of the original model. ``progress`` may raise
    ``tasks.Cancelled``: the half-written folder is removed. Returns ``folder``."""
    if not 1 <= settings.steps <= MAX_STEPS or not settings.lr > 0:
        raise InputError(f"A demo series takes 1 to {MAX_STEPS} steps and a learning rate > 0.")
    folder = Path(folder)
    if read_series_loss(folder) is None:
        spec = make_loss(loaded, text)
        partial = folder.with_name(folder.name + _PARTIAL)
        shutil.rmtree(partial, ignore_errors=True)
        try:
            _train_and_save(loaded, spec, partial, settings, progress)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    for other in folder.parent.iterdir():  # only the latest demo stays: they are large
        if other != folder and other.is_dir() and not other.name.endswith(_PARTIAL):
            shutil.rmtree(other, ignore_errors=True)
    return folder


def _train_and_save(
    loaded: LoadedModel, spec: LossSpec, folder: Path, settings: DemoSettings, progress
) -> None:
    report = tasks.forward(progress, 0.0, 1.0)
    model = copy.deepcopy(loaded.model)  # ties are kept by deepcopy; the cached model is never written to
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    adam = torch.optim.Adam([p for p in model.parameters()], lr=settings.lr)
    losses = []
    for t in range(settings.steps + 1):
        losses.append(loss_value(model, spec))
        report(t / (settings.steps + 1), f"saving step {t} of {settings.steps} (loss {losses[-1]:.4f} nats)")
        model.save_pretrained(folder / f"step_{t}", safe_serialization=True)
        loaded.tokenizer.save_pretrained(folder / f"step_{t}")
        if t == settings.steps:
            break
        report((t + 0.5) / (settings.steps + 1), f"Adam step {t + 1} of {settings.steps}")
        adam.zero_grad(set_to_none=True)
        _loss(model, spec).backward()
        adam.step()
    record = {
        "steps": list(range(settings.steps + 1)),
        "loss": losses,
        "unit": "nats",
        "description": f"{spec.description} Adam, lr {settings.lr:g}, full batch.",
        "model": loaded.id,
    }
    (folder / LOSS_FILE).write_text(json.dumps(record, indent=1))
    report(1.0, f"{settings.steps + 1} checkpoints written")
