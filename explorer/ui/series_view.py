"""The checkpoint series page's work and words: a folder's series read as a task (explorer/tasks.py), a demo
series trained from the sidebar's model as another, and the sentences and table under the charts (computed from
the series they describe)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from explorer import tasks
from explorer.analysis.checkpoint_series import (
    SERIES_METRICS,
    CheckpointSeries,
    SeriesCheckpoint,
    checkpoint_series,
    find_checkpoints,
)
from explorer.analysis.series_demo import (
    LEARNING_RATES,
    MAX_STEPS,
    DemoSettings,
    SeriesLoss,
    demo_folder,
    write_demo_series,
)
from explorer.analysis.weights import METRICS
from explorer.errors import ExplorerError, InputError
from explorer.figures.checkpoint_series import kind_in_blocks
from explorer.labels import weight_kind_label
from explorer.models.choice import ModelChoice
from explorer.ui import task_view
from explorer.ui.cache import cached_fingerprint, cached_model
from explorer.ui.sidebar import Selection
from explorer.ui.state import Choice, Int, Text

# Bytes of safetensors read and decomposed per second on a two-core laptop (Gram route, float32): sets the
# foreground/background split of the task layer, nothing else.
BYTES_PER_SECOND = 5e7
PENDING = "checkpoints_demo_pending"  # session key: the demo spec this session asked for, until it is drawn

FOLDER = Text("series", "", from_link=lambda raw: raw.strip())
METRIC = Choice("metric", "alpha", SERIES_METRICS)
DEMO_STEPS = Int("demo_steps", DemoSettings.steps, 1, MAX_STEPS)
DEMO_LR = Choice("lr", DemoSettings.lr, LEARNING_RATES)


def kind_setting(series: CheckpointSeries) -> Choice:
    kinds = series.kinds_in_blocks
    return Choice("kind", "attn_q" if "attn_q" in kinds else kinds[0], kinds)


def step_setting(series: CheckpointSeries) -> Int:
    steps = [int(s) for s in series.steps]
    return Int("step", steps[-1], steps[0], steps[-1])


# ------------------------------------------------------------------------------------------- the series


@dataclass(frozen=True)
class SeriesSpec(tasks.Spec):
    """A folder's checkpoint series. ``listing``: (checkpoint name, newest mtime in ns of its files) per
    checkpoint, so a checkpoint rewritten or added is a new task; ``n_bytes``: their files' size (the estimate).
    Each checkpoint's spectra are stored by its fingerprint (``checkpoint_series``), so a new task re-reads
    only what changed."""

    KIND = "checkpoint_series_view"
    MAX_FINISHED = 4

    folder: str
    listing: tuple[tuple[str, int], ...]
    n_bytes: int

    def estimated_seconds(self) -> float:
        return self.n_bytes / BYTES_PER_SECOND

    @property
    def label(self) -> str:
        return f"checkpoint series of {len(self.listing)} checkpoints"


def series_spec(found: tuple[SeriesCheckpoint, ...]) -> SeriesSpec:
    """The one place a series spec is built (to start the work and to look for it)."""
    listing, n_bytes = [], 0
    for c in found:
        stats = [f.stat() for f in c.folder.iterdir() if f.is_file()]
        listing.append((c.name, max((s.st_mtime_ns for s in stats), default=0)))
        n_bytes += sum(s.st_size for s in stats)
    return SeriesSpec(str(found[0].folder.parent), tuple(listing), n_bytes)


def watch_series(folder: str) -> CheckpointSeries | None:
    """The series of ``folder`` (None while it runs, after a cancel, or when the folder holds no checkpoints:
    then the reason is shown, find_checkpoints' words)."""
    try:
        spec = series_spec(find_checkpoints(folder))
    except InputError as err:
        st.error(str(err), icon=":material/error:")
        return None
    return task_view.watch(
        spec,
        lambda task: checkpoint_series(spec.folder, progress=task.report),
        label=f"Reading the weight spectra of {len(spec.listing)} checkpoints",
        failure="The series could not be read; check the folder",
        key="series_task",
    )


# ------------------------------------------------------------------------------------------ the demo


@dataclass(frozen=True)
class DemoSpec(tasks.Spec):
    """A demo series of the sidebar's model (``write_demo_series``) written to ``folder``."""

    KIND = "series_demo"
    MAX_FINISHED = 2

    model_key: ModelChoice
    text: str
    fingerprint: str
    settings: DemoSettings
    folder: str

    @property
    def label(self) -> str:
        return f"demo series of {self.settings.steps} Adam steps"


def _demo_work(spec: DemoSpec, task: tasks.Task) -> str | ExplorerError:
    """The written folder, or the reason it could not be written as the task's result (not its failure, which
    the task layer would retry at every rerun of the page: a demo trains for a while)."""
    loaded = cached_model(spec.model_key)
    try:
        return str(write_demo_series(loaded, spec.text, spec.folder, spec.settings, progress=task.report))
    except ExplorerError as err:
        return err


def request_demo(sel: Selection, settings: DemoSettings) -> None:
    """Start (or find) the demo series of the sidebar's model with ``settings``; the page draws its progress
    (``demo_folder_when_done``) and opens the series once written. A model that cannot be loaded is said."""
    try:
        loaded = cached_model(sel.model_key)
    except ExplorerError as err:
        st.error(
            f"The demo needs the sidebar's model, which could not be loaded: {err}", icon=":material/error:"
        )
        return
    text = sel.text if loaded.causal else ""  # an encoder's loss reads the shipped pairs, not the text
    fingerprint = cached_fingerprint(sel.model_key)
    spec = DemoSpec(sel.model_key, text, fingerprint, settings, str(demo_folder(fingerprint, text, settings)))
    task = tasks.peek(spec)
    if task is not None and task.done and not Path(spec.folder).is_dir():  # a newer demo replaced it
        tasks.BOARD.forget(spec)
    st.session_state[PENDING] = spec
    tasks.start(spec, lambda task: _demo_work(spec, task), background=True)


def demo_folder_when_done() -> str | None:
    """The folder of the demo this session asked for, once written (then it is no longer pending); meanwhile
    its progress and Cancel are drawn here. None when none is pending or it is still running."""
    spec = st.session_state.get(PENDING)
    if spec is None:
        return None
    result = task_view.watch(
        spec,
        lambda task: _demo_work(spec, task),
        label=f"Training {spec.model_key.model_id} for {spec.settings.steps} steps and saving each",
        failure="The demo series could not be made",
        key="series_demo_task",
    )
    if result is None:
        return None
    del st.session_state[PENDING]  # written, or why not said once below: nothing left to watch
    if isinstance(result, ExplorerError):
        st.error(f"The demo series could not be made: {result}", icon=":material/error:")
        return None
    return result


# ---------------------------------------------------------------------------------------------- words


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def lines_sentence(series: CheckpointSeries, metric: str) -> str:
    """What the median-over-layers chart shows: which matrix kind's median moved most (and least) between the
    first and the last step."""
    label = METRICS[metric][0]
    first, last = int(series.steps[0]), int(series.steps[-1])
    if len(series.steps) == 1:
        return f"Only step {first} was read: a series needs two checkpoints to show a change."
    moves = {}
    for kind in series.kinds_in_blocks:
        median = series.median_over_layers(metric, kind)
        if np.isfinite(median[0]) and np.isfinite(median[-1]):
            moves[kind] = (median[0], median[-1])
    if not moves:
        return f"No matrix kind has a {label} at both step {first} and step {last} (no power-law fit)."
    ranked = sorted(moves, key=lambda k: abs(moves[k][1] - moves[k][0]), reverse=True)
    top, bottom = ranked[0], ranked[-1]
    a, b = moves[top]
    if _fmt(a) == _fmt(b):  # "moved most" would name a move the numbers shown do not have
        return (
            f"From step {first} to step {last} no matrix kind's median {label} changed at the precision shown "
            f"(the largest move, {weight_kind_label(top)}: {a:.6g} → {b:.6g})."
        )
    text = (
        f"From step {first} to step {last}, the median {label} of the {weight_kind_label(top)} matrices moved "
        f"most: {_fmt(a)} → {_fmt(b)} ({b - a:+.3g}"
        + (f", {100 * (b - a) / abs(a):+.3g} %)" if a != 0 else ")")
    )
    if bottom != top:
        a, b = moves[bottom]
        text += (
            f"; the {weight_kind_label(bottom)} matrices' moved least ({_fmt(a)} → {_fmt(b)}, {b - a:+.3g})"
        )
    return text + "."


def heatmap_sentence(series: CheckpointSeries, metric: str, kind: str) -> str:
    """What the step x layer heatmap shows: the layer whose value changed most between the first and the last
    step, and the layer with the largest value at the last step."""
    label = METRICS[metric][0]
    idx = kind_in_blocks(series, kind)
    values = series.metric(metric)[:, idx]
    change = values[-1] - values[0]
    finite = np.isfinite(change)
    last_finite = np.isfinite(values[-1])
    if not last_finite.any():
        return f"No {weight_kind_label(kind)} matrix has a {label} at step {int(series.steps[-1])}."
    top = int(np.nanargmax(np.where(last_finite, values[-1], -np.inf)))
    text = (
        f"At step {int(series.steps[-1])} the largest {label} of the {weight_kind_label(kind)} matrices is "
        f"layer {int(series.layers[idx[top]])}'s ({_fmt(values[-1, top])})"
    )
    if len(series.steps) > 1 and finite.any():
        most = int(np.nanargmax(np.where(finite, np.abs(change), -np.inf)))
        if _fmt(values[0, most]) == _fmt(values[-1, most]):
            return (
                text
                + f"; no layer's {label} changed since step {int(series.steps[0])} at the precision shown."
            )
        text += (
            f"; layer {int(series.layers[idx[most]])}'s changed most since step {int(series.steps[0])} "
            f"({_fmt(values[0, most])} → {_fmt(values[-1, most])})"
        )
    return text + "."


def loss_sentence(loss: SeriesLoss) -> str:
    """What the loss chart shows: the loss at the first and last step, and at how many steps it fell."""
    if len(loss.loss) < 2:
        return f"The loss at step {int(loss.steps[0])} is {loss.loss[0]:.6g} nats."
    fell = int((np.diff(loss.loss) < 0).sum())
    return (
        f"The loss went from {loss.loss[0]:.6g} nats at step {int(loss.steps[0])} to {loss.loss[-1]:.6g} at step "
        f"{int(loss.steps[-1])} ({loss.loss[-1] - loss.loss[0]:+.3g}); it fell at {fell} of "
        f"{len(loss.loss) - 1} steps. {loss.description}"
    )


def step_table(series: CheckpointSeries, step: int) -> pd.DataFrame:
    """One row per matrix at ``step`` (one of ``series.steps``): its name, layer, kind, shape, the four
    metrics, and each metric's change since the first step."""
    i = int(np.flatnonzero(series.steps == step)[0])
    table = pd.DataFrame(
        {
            "matrix": series.names,
            "layer": [int(x) if x >= 0 else None for x in series.layers],
            "kind": [weight_kind_label(k) for k in series.kinds],
            "shape (out×in)": [f"{o}×{n}" for o, n in series.shapes],
        }
    )
    for name in SERIES_METRICS:
        values = series.metric(name)
        table[METRICS[name][0]] = values[i]
        if i > 0:
            table[f"Δ {METRICS[name][0]} since step {int(series.steps[0])}"] = values[i] - values[0]
    return table
