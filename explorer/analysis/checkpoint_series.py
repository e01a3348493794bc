"""Weight spectra against the training step: a folder of checkpoints analysed as a series.

``find_checkpoints(folder)`` lists the checkpoints of a training run: its sub-folders named ``checkpoint-N``
(what a transformers Trainer writes) or holding one integer in their name (``step_1200``, ``ckpt-300``), the
integer being the step. ``checkpoint_series(folder)`` reads each one's weight spectra from its safetensors files
without loading a model (``analysis.weights.checkpoint_spectra``: one task per checkpoint, keyed by that
checkpoint's fingerprint and kept in the disk store, so a re-run reuses the steps already done) and keeps four
per-matrix metrics of ``WeightSpectra``: alpha, alpha-hat, stable rank and spectral norm.

A checkpoint that cannot be read (no config.json, a truncated safetensors file, matrices whose names or shapes
differ from the other checkpoints') is listed by name in ``CheckpointSeries.failed`` with the reason, and the
others still run. Cancelling: ``progress`` may raise ``tasks.Cancelled`` (as ``Task.report`` does once its task
is cancelled), which stops the series between (or inside) checkpoints; the finished steps stay stored.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError

from explorer import tasks
from explorer.analysis.weights import WeightSpectra, checkpoint_spectra
from explorer.errors import ExplorerError, InputError
from explorer.models.checkpoint import Checkpoint

# The per-matrix metrics of the series, keys of ``analysis.weights.METRICS`` (their labels and meaning).
SERIES_METRICS = ("alpha", "alpha_hat", "stable_rank", "spectral_norm")
EXPECTED_NAMES = (
    "sub-folders named checkpoint-N (what a transformers Trainer writes) or with one step number in their "
    "name (step_1200, ckpt-300)"
)
_INTEGER = re.compile(r"\d+")


@dataclass(frozen=True)
class SeriesCheckpoint:
    """One checkpoint folder of a series: name (the sub-folder's), step (the integer in the name), folder."""

    name: str
    step: int
    folder: Path


def find_checkpoints(folder: str | Path) -> tuple[SeriesCheckpoint, ...]:
    """The checkpoint sub-folders of ``folder`` (see the module docstring), ordered by step (checkpoint-10 after
    checkpoint-9). Hidden folders and folders with no or several integers in their name are not checkpoints.
    InputError, saying what names are expected, for a folder with none or two at one step."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise InputError(
            f"'{root}' is not a folder. Give the folder holding the checkpoints ({EXPECTED_NAMES})."
        )
    found = []
    for sub in root.iterdir():
        numbers = _INTEGER.findall(sub.name)
        if sub.is_dir() and not sub.name.startswith(".") and len(numbers) == 1:
            found.append(SeriesCheckpoint(sub.name, int(numbers[0]), sub))
    if not found:
        hint = (
            " It is one checkpoint itself: analyse it with --model FOLDER --sections weights."
            if (root / "config.json").is_file()
            else ""
        )
        raise InputError(f"'{root}' holds no checkpoints: expected {EXPECTED_NAMES}.{hint}")
    found.sort(key=lambda c: (c.step, c.name))
    steps = Counter(c.step for c in found)
    clashes = [c.name for c in found if steps[c.step] > 1]
    if clashes:
        raise InputError(
            f"Several checkpoints in '{root}' have the same step: {', '.join(clashes)}. Keep one folder per step."
        )
    return tuple(found)


@dataclass(frozen=True)
class CheckpointSeries:
    """Alpha, alpha-hat, stable rank and spectral norm of every weight matrix at every readable step.

    folder: the series' folder. checkpoints: names of the read checkpoints, by step; steps: (step,) int64,
    their steps, increasing. from_cache: (step,) bool, the step's spectra read from the disk store, not
    computed. failed: checkpoint name -> why it was left out. names: tuple of length ``matrix``
    (``weight_matrices`` order, the same in every checkpoint); layers: (matrix,) int64, -1 outside the blocks
    (embeddings, lm_head); shapes: (matrix, 2) int64, (out, in); kinds: tuple of length ``matrix``.
    alpha, alpha_hat, stable_rank, spectral_norm: (step, matrix) float64, as ``WeightSpectra.metric`` defines
    them (alpha: power-law exponent of the ESD of W^T W / N, NaN without a fit; alpha_hat = alpha log10
    sigma_1^2; stable rank = sum sigma_i^2 / sigma_1^2; spectral norm sigma_1, in the weights' units).
    """

    folder: Path
    checkpoints: tuple[str, ...]
    steps: np.ndarray
    from_cache: np.ndarray
    failed: dict[str, str]
    names: tuple[str, ...]
    layers: np.ndarray
    shapes: np.ndarray
    kinds: tuple[str, ...]
    alpha: np.ndarray
    alpha_hat: np.ndarray
    stable_rank: np.ndarray
    spectral_norm: np.ndarray

    def metric(self, name: str) -> np.ndarray:
        """(step, matrix) float64 values of one of SERIES_METRICS."""
        if name not in SERIES_METRICS:
            raise KeyError(f"Unknown series metric '{name}'; choose one of {list(SERIES_METRICS)}.")
        return getattr(self, name)

    @property
    def kinds_in_blocks(self) -> list[str]:
        """The kinds of the blocks' matrices, in first-seen order."""
        return list(dict.fromkeys(k for k, lay in zip(self.kinds, self.layers, strict=True) if lay >= 0))

    def median_over_layers(self, name: str, kind: str) -> np.ndarray:
        """(step,) float64: the median of metric ``name`` over the blocks' matrices of ``kind`` at each step
        (NaNs, e.g. alpha without a fit, left out; NaN where every one is NaN)."""
        idx = [
            i
            for i, (k, lay) in enumerate(zip(self.kinds, self.layers, strict=True))
            if k == kind and lay >= 0
        ]
        values = self.metric(name)[:, idx]
        out = np.full(len(self.steps), np.nan)
        some = np.isfinite(values).any(axis=1)
        out[some] = np.nanmedian(values[some], axis=1)
        return out


def checkpoint_series(
    folder: str | Path,
    *,
    device: str = "cpu",
    method: str = "gram",
    dtype: str = "float32",
    progress: tasks.Progress | None = None,
) -> CheckpointSeries:
    """The series of ``folder``'s checkpoints (``find_checkpoints``), each read from its files without loading
    its model. ``device``, ``method``: as ``checkpoint_spectra``; ``dtype``: the loading dtype each tensor is
    rounded to. ``progress`` sees the whole series' fraction and a message naming the checkpoint. InputError
    when no checkpoint could be read (each one's reason in the message)."""
    found = find_checkpoints(folder)
    failed: dict[str, str] = {}
    opened: list[tuple[SeriesCheckpoint, Checkpoint]] = []
    for c in found:
        try:
            opened.append((c, Checkpoint.open(c.folder, dtype=dtype)))
        except ExplorerError as err:
            failed[c.name] = str(err)
    layouts = [_layout(checkpoint) for _, checkpoint in opened]
    # The layout most checkpoints share (ties: the earliest step's) is the model's; the others are left out.
    common = Counter(layouts).most_common(1)[0][0] if layouts else ()
    kept = []
    for (c, checkpoint), layout in zip(opened, layouts, strict=True):
        if layout == common:
            kept.append((c, checkpoint))
        else:
            failed[c.name] = _layout_difference(common, layout)
    done: list[tuple[SeriesCheckpoint, WeightSpectra]] = []
    for i, (c, checkpoint) in enumerate(kept):
        report = _step_progress(progress, i, len(kept), c)
        report(0.0, "reading the headers")  # a cancel point even when every step is stored
        try:
            done.append((c, checkpoint_spectra(checkpoint, device=device, method=method, progress=report)))
        except (
            ExplorerError,
            OSError,
            SafetensorError,
        ) as err:  # a file damaged or removed since it was opened
            failed[c.name] = (
                str(err) if isinstance(err, ExplorerError) else f"its files cannot be read ({err})."
            )
    if not done:
        reasons = "; ".join(f"{name}: {why}" for name, why in failed.items())
        raise InputError(f"None of the {len(found)} checkpoints in '{Path(folder)}' could be read. {reasons}")
    first = done[0][1]
    values = {name: np.stack([s.metric(name) for _, s in done]) for name in SERIES_METRICS}
    return CheckpointSeries(
        folder=Path(folder).expanduser().resolve(),
        checkpoints=tuple(c.name for c, _ in done),
        steps=np.array([c.step for c, _ in done], dtype=np.int64),
        names=first.names,
        kinds=first.kinds,
        layers=np.asarray(first.layers, dtype=np.int64),
        shapes=np.asarray(first.shapes, dtype=np.int64),
        from_cache=np.array([s.from_cache for _, s in done], dtype=bool),
        failed={c.name: failed[c.name] for c in found if c.name in failed},  # in step order
        **values,
    )


def _layout(checkpoint: Checkpoint) -> tuple[tuple[str, tuple[int, int]], ...]:
    """What must agree across a series: every matrix's name and (out, in) shape, in order."""
    return tuple((m.name, m.shape) for m in checkpoint.matrices)


def _layout_difference(common: tuple, layout: tuple) -> str:
    """Why a checkpoint's matrices are not the series' (its first difference)."""
    ours, theirs = dict(layout), dict(common)
    for name, shape in common:
        if name not in ours:
            return f"it has no matrix {name}, which the other checkpoints have: not the same model."
        if ours[name] != shape:
            return (
                f"its matrix {name} is {ours[name][0]}×{ours[name][1]}, {shape[0]}×{shape[1]} in the other "
                "checkpoints: not the same model."
            )
    extra = next((name for name, _ in layout if name not in theirs), None)
    if extra is None:
        return "its matrices are those of the other checkpoints in another order: not the same model."
    return f"it has a matrix {extra} that the other checkpoints lack: not the same model."


def _step_progress(
    progress: tasks.Progress | None, i: int, n: int, c: SeriesCheckpoint
) -> Callable[[float, str], None]:
    """``progress`` for checkpoint ``i`` of ``n``: its share of the series, its name in the message."""
    share = tasks.forward(progress, i / n, (i + 1) / n)

    def report(fraction: float, message: str) -> None:
        share(fraction, f"{c.name} (step {c.step}, {i + 1} of {n}): {message}")

    return report
