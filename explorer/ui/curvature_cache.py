"""Cached, background work behind the Curvature page (and the λ_max that Learn's walkthrough shows).

Three kinds of task (explorer/tasks.py), shared by every browser session and cancellable (a person's cancel
stays until someone starts the task again):
- one block's top-k eigenvalues, trace and spectral density (``BlockSpec``), publishing the eigenvalues and
  the trace as partial results before the density is done;
- the layer x {attention, MLP} grid of λ_max and trace (``GridSpec``), publishing one layer at a time;
- the training what-if (``TrainingSpec``), on a deep copy made by the analysis.

Block results and grids are ``KEEP`` specs: the one disk store (explorer/store.py: safetensors + JSON, no
pickle) keeps them, keyed by the weights' fingerprint (``explorer.analysis.weights.model_fingerprint``, the one
the weight-spectra and factor stores use), the loss's exact inputs (``loss_key``: the token ids the text and max
tokens give, or the shipped sentence pairs for encoders, whose loss does not read the text), the operator, the
block and the solver settings; a new process reads them back instead of recomputing. Training runs are not
kept on disk.

Foreground or background is the task layer's one rule (``Spec.estimated_seconds``): each spec estimates its
Hessian-vector products, each costing about SECONDS_PER_PARAM_PRODUCT per model parameter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import streamlit as st

from explorer import tasks
from explorer.analysis import curvature as C
from explorer.analysis.curvature import TrainingSettings  # the what-if's settings, a TrainingSpec's key
from explorer.errors import InputError
from explorer.models.choice import ModelChoice
from explorer.spectra.curvature import Cancelled as SolverCancelled
from explorer.spectra.curvature import ProbeOptions
from explorer.ui.cache import cached_fingerprint, cached_model
from explorer.ui.spec_support import KeptOnDisk

# 4: kept in the one disk store (3: .npz files under curvature/, never read back).
FORMAT_VERSION = 4
# Density: SLQ with this many probes and (at most) Lanczos steps (each probe holds steps + 1 vectors).
DENSITY_PROBES = 2
DENSITY_STEPS = 20
# Every solver holds a few float32 vectors of the block's size (Lanczos 2k + 3, SLQ steps + 1, Hutch++
# probes / 3 + 2): 0.54 GB each for SmolLM2's whole model. Settings are cut to keep them under this.
VECTOR_BUDGET_BYTES = 6 * 2**30
# Grid: per block, Lanczos to this relative tolerance or budget, and this many Hutchinson probes.
GRID_TOL = 1e-3
GRID_MAX_MATVEC = 30
GRID_PROBES = 8
# Training what-if: Lanczos budget for λ_max at every step (warm-started from the previous step's vector).
TRAIN_MAX_MATVEC = 20
# One Hessian-vector product is a double backward through the whole model whatever the block (the loss
# reads every layer): measured on a laptop CPU at the page's default text, about one second for SmolLM2's
# 135 M parameters. So the tiny test models' work takes well under a second (in the run), MiniLM's block a
# few seconds and SmolLM2's a minute or two (in the background, watched).
SECONDS_PER_PARAM_PRODUCT = 1.0 / 135_000_000


def was_cancelled(task: tasks.Task) -> bool:
    """The task stopped because someone cancelled it (from a progress report or the solvers' own check)."""
    return task.done and task.cancelled and isinstance(task.error, tasks.Cancelled | SolverCancelled)


# ---------------------------------------------------------------------------------------------- inputs


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_loss(model_key: ModelChoice, text: str, max_tokens: int) -> C.LossSpec:
    """The loss the page curves (its input tensors are shared read-only by the tasks)."""
    return C.make_loss(cached_model(model_key), text, max_tokens)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_loss_value(model_key: ModelChoice, text: str, max_tokens: int) -> float:
    """The loss (nats) at the loaded weights."""
    return C.loss_value(cached_model(model_key).model, cached_loss(model_key, text, max_tokens))


def loss_key(spec: C.LossSpec) -> str:
    """A hash of exactly what the loss sees: its kind and every input tensor's values."""
    digest = hashlib.sha1(spec.kind.encode(), usedforsecurity=False)
    for name in sorted(spec.inputs):
        tensor = spec.inputs[name].detach().to("cpu")
        digest.update(f"|{name}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:24]


@st.cache_data(max_entries=4, show_spinner=False)
def block_choices(model_key: ModelChoice) -> dict[str, str]:
    """Block spec -> label, in the page's order: whole model, embeddings, then per layer the layer, its
    attention, its MLP and each of its parameters (matrices and vectors), then the parameters outside the
    layers."""
    model = cached_model(model_key).model
    choices = {"all": "Whole model (every parameter)"}
    try:
        C.select_block(model, "embeddings")
        choices["embeddings"] = "Embeddings"
    except InputError:
        pass
    names = [name for name, _ in model.named_parameters()]
    for layer in range(C.n_layers_of(model)):
        for spec, label in (
            (f"layer:{layer}", f"Layer {layer} (all of it)"),
            (f"layer:{layer}:attention", f"Layer {layer} attention"),
            (f"layer:{layer}:mlp", f"Layer {layer} MLP"),
        ):
            try:
                C.select_block(model, spec)
            except InputError:
                continue
            choices[spec] = label
        inside = set(C.select_block(model, f"layer:{layer}").names)
        for name in names:
            if name in inside:
                choices[f"param:{name}"] = f"Layer {layer}: {name}"
    for name in names:  # parameters outside the layers (embeddings, final norm, head)
        choices.setdefault(f"param:{name}", f"Parameter {name}")
    return choices


@st.cache_data(max_entries=16, show_spinner=False)
def block_size(model_key: ModelChoice, block: str) -> int:
    return C.select_block(cached_model(model_key).model, block).n_params


# --------------------------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class BlockSettings:
    """What one block's analysis depends on besides the model and the loss."""

    block: str
    kind: str = "hessian"
    k: int = 3
    trace_method: str = "hutchinson"
    probes: int = 16
    max_matvec: int = 60
    density_steps: int = DENSITY_STEPS


def fit_to_memory(settings: BlockSettings, n_params: int) -> tuple[BlockSettings, list[str]]:
    """``settings`` with k, the Hutch++ products and the density's Lanczos steps cut so that no solver holds
    more than VECTOR_BUDGET_BYTES of block-sized float32 vectors, and a note for each cut."""
    allowed = max(4, VECTOR_BUDGET_BYTES // (4 * max(n_params, 1)))
    k = min(settings.k, max(1, (allowed - 3) // 2))
    probes = settings.probes
    if settings.trace_method == "hutch++":
        probes = min(probes, max(6, 3 * (allowed - 2)))
    steps = min(settings.density_steps, max(6, allowed - 1))
    notes = []
    gib = VECTOR_BUDGET_BYTES / 2**30
    if k < settings.k:
        notes.append(f"k cut from {settings.k} to {k}: Lanczos holds 2k + 3 vectors of the block")
    if probes < settings.probes:
        notes.append(f"Hutch++ products cut from {settings.probes} to {probes}")
    if steps < settings.density_steps:
        notes.append(f"density Lanczos steps cut from {settings.density_steps} to {steps}")
    if notes:
        notes = [f"To stay under {gib:g} GiB of {n_params:,}-entry vectors: " + "; ".join(notes) + "."]
    return BlockSettings(settings.block, settings.kind, k, settings.trace_method, probes, settings.max_matvec,
                         steps), notes  # fmt: skip


@dataclass(frozen=True)
class CurvatureSpec(tasks.Spec):
    """A task on one model's loss, keyed by the model choice, the weights' fingerprint and ``loss``
    (``loss_key``: exactly what the loss sees). ``model_params`` (not in the key: it follows from the model)
    sizes ``estimated_seconds``: ``products()`` Hessian-vector products through the whole model."""

    VERSION: ClassVar[int] = FORMAT_VERSION
    LABEL: ClassVar[str] = ""  # what a watcher names the task ("": its KIND)
    model_key: ModelChoice
    fingerprint: str
    loss: str
    model_params: int = field(default=0, compare=False, kw_only=True)

    def products(self) -> int:
        return 1

    def estimated_seconds(self) -> float:
        return self.products() * self.model_params * SECONDS_PER_PARAM_PRODUCT

    @property
    def label(self) -> str:
        return self.LABEL or self.KIND


@dataclass(frozen=True)
class BlockSpec(CurvatureSpec):
    """One block's spectrum (kept on disk)."""

    KIND: ClassVar[str] = "curvature-block"
    KEEP: ClassVar[bool] = True
    RESULT: ClassVar[Any] = C.CurvatureSummary
    MAX_FINISHED: ClassVar[int] = 8
    settings: BlockSettings = BlockSettings("all")
    density_probes: int = DENSITY_PROBES

    def products(self) -> int:
        s = self.settings
        return s.max_matvec + s.probes + self.density_probes * s.density_steps

    @property
    def label(self) -> str:
        return f"curvature of {self.settings.block}"


@dataclass(frozen=True)
class GridSpec(KeptOnDisk, CurvatureSpec):
    """λ_max and trace of every layer's attention and MLP (kept on disk)."""

    KIND: ClassVar[str] = "curvature-grid"
    LABEL: ClassVar[str] = "curvature grid"
    RESULT: ClassVar[Any] = C.CurvatureGrid
    kind: str = "hessian"
    tol: float = GRID_TOL
    max_matvec: int = GRID_MAX_MATVEC
    probes: int = GRID_PROBES
    n_layers: int = field(default=0, compare=False, kw_only=True)

    def products(self) -> int:
        return 2 * self.n_layers * (self.max_matvec + self.probes)


@dataclass(frozen=True)
class TrainingSpec(CurvatureSpec):
    """The training what-if (in memory only)."""

    KIND: ClassVar[str] = "curvature-training"
    LABEL: ClassVar[str] = "training what-if"
    MAX_FINISHED: ClassVar[int] = 4
    settings: TrainingSettings = TrainingSettings("all")

    def products(self) -> int:
        return self.settings.steps * (TRAIN_MAX_MATVEC + 2)


def _fields(model_key: ModelChoice, text: str, max_tokens: int) -> dict:
    """What every curvature spec shares (read in the script thread: Streamlit's caches are)."""
    return {
        "model_key": model_key,
        "fingerprint": cached_fingerprint(model_key),
        "loss": loss_key(cached_loss(model_key, text, max_tokens)),
        "model_params": cached_model(model_key).card.n_params,
    }


def eigenvector_mass(op: C.CurvatureOperator, model, vectors) -> tuple[tuple[str, ...], np.ndarray]:
    """Where the eigenvectors (k, n) live: their squared-norm share per parameter group
    (``C.group_mass``), or, when the block is a single group (one layer's MLP), per parameter, so the
    answer says more than "all of it". ndarray (group or parameter, k), columns summing to 1."""
    groups, mass = C.group_mass(op, model, vectors)
    if len(groups) > 1 or len(op.block.names) == 1:
        return groups, mass
    parts = vectors.split(op.numels, dim=1)
    mass = np.stack([(part.double() ** 2).sum(1).cpu().numpy() for part in parts])
    return tuple(op.block.names), mass / mass.sum(0, keepdims=True)


def block_spec(model_key: ModelChoice, text: str, max_tokens: int, settings: BlockSettings) -> BlockSpec:
    return BlockSpec(settings=settings, **_fields(model_key, text, max_tokens))


def block_task(
    model_key: ModelChoice, text: str, max_tokens: int, settings: BlockSettings
) -> tuple[BlockSpec, Callable]:
    """(spec, work) analysing one block. Partial results: ("eigen", TopEigen), then ("trace", TraceEstimate)."""
    loaded = cached_model(model_key)  # read here: Streamlit's caches are not read from worker threads
    loss = cached_loss(model_key, text, max_tokens)
    spec = block_spec(model_key, text, max_tokens, settings)
    s = settings

    def work(task: tasks.Task) -> C.CurvatureSummary:
        model = loaded.model
        chosen = C.select_block(model, s.block)
        task.report(0.0, f"Building the {s.kind} operator of {chosen.label} ({chosen.n_params:,} parameters)")
        op = C.CurvatureOperator(model, loss, chosen, s.kind)
        options = ProbeOptions(progress=task.report, cancel=lambda: task.cancelled)
        res = C.top_eigenpairs(op, s.k, max_matvec=s.max_matvec, options=C.within(options, 0.02, 0.5))
        groups, mass = eigenvector_mass(op, model, res.eigenvectors)
        eigen = C.TopEigen(res.eigenvalues, res.residual_norms, res.history_ritz, res.history_residuals,
                           res.n_matvec, res.converged, groups, mass)  # fmt: skip
        del res
        task.publish(("eigen", eigen))
        trace = C.block_trace(op, s.probes, s.trace_method, options=C.within(options, 0.5, 0.75))
        task.publish(("trace", trace))
        density = C.block_density(
            op, spec.density_probes, s.density_steps, options=C.within(options, 0.75, 1.0)
        )
        return C.CurvatureSummary(op.loss, loss.n_tokens, s.block, chosen.n_params, s.kind, eigen, trace,
                                  density, loss.description)  # fmt: skip

    return spec, work


def peek_block(
    model_key: ModelChoice, text: str, max_tokens: int, settings: BlockSettings
) -> tasks.Task | None:
    """The block's task if one was started (or its result is on disk); never starts one."""
    return tasks.peek(block_spec(model_key, text, max_tokens, settings))


def known_lambda_max(model_key: ModelChoice, text: str, max_tokens: int, block: str = "all") -> float | None:
    """λ_max of ``block``'s Hessian at the page's default settings if any session or process has already
    computed it (in memory, its partial eigenvalues while it runs, or on disk); never computes it."""
    n_params = block_size(model_key, block)
    task = peek_block(model_key, text, max_tokens, fit_to_memory(BlockSettings(block), n_params)[0])
    if task is None:
        return None
    if task.succeeded:
        return float(task.result.eigen.eigenvalues[0])
    for kind, item in list(task.partial):
        if kind == "eigen":
            return float(item.eigenvalues[0])
    return None


# ----------------------------------------------------------------------------------------------- grid


def merge_grid_rows(rows: list[C.CurvatureGrid], n_layers: int, kind: str) -> C.CurvatureGrid:
    """One grid over every layer from the per-layer grids computed so far (missing layers stay NaN)."""
    shape = (n_layers, len(C.LAYER_PARTS))
    lam, tr, se = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    sizes = np.zeros(shape, dtype=np.int64)
    loss = float("nan")
    for row in rows:
        for i, layer in enumerate(row.layers):
            lam[layer], tr[layer], se[layer], sizes[layer] = (
                row.lambda_max[i],
                row.trace[i],
                row.trace_stderr[i],
                row.n_params[i],
            )
        loss = row.loss
    return C.CurvatureGrid(np.arange(n_layers), C.LAYER_PARTS, lam, tr, se, sizes, loss, kind)


def grid_spec(model_key: ModelChoice, text: str, max_tokens: int, kind: str) -> GridSpec:
    n_layers = C.n_layers_of(cached_model(model_key).model)
    return GridSpec(kind=kind, n_layers=n_layers, **_fields(model_key, text, max_tokens))


def grid_task(model_key: ModelChoice, text: str, max_tokens: int, kind: str) -> tuple[GridSpec, Callable]:
    """(spec, work) of λ_max and trace of every layer's attention and MLP, one layer at a time (each published
    as a CurvatureGrid of one row)."""
    loaded = cached_model(model_key)
    loss = cached_loss(model_key, text, max_tokens)
    spec = grid_spec(model_key, text, max_tokens, kind)

    def work(task: tasks.Task) -> C.CurvatureGrid:
        n_layers = spec.n_layers
        rows = []
        for layer in range(n_layers):
            row = C.curvature_grid(
                loaded.model, loss, kind=kind, trace_probes=spec.probes, tol=spec.tol,
                max_matvec=spec.max_matvec, layers=[layer],
                progress=tasks.forward(task.report, layer / n_layers, (layer + 1) / n_layers),
                cancel=lambda: task.cancelled,
            )  # fmt: skip
            rows.append(row)
            task.publish(row)
        return merge_grid_rows(rows, n_layers, kind)

    return spec, work


def grid_starts_itself(spec: GridSpec) -> bool:
    """The grid starts without a click when it is quick (the task layer's foreground rule) or already there
    (in memory or on disk); otherwise a person asks for it."""
    return spec.estimated_seconds() <= tasks.FOREGROUND_SECONDS or tasks.peek(spec) is not None


# ------------------------------------------------------------------------------------------- training


def training_spec(
    model_key: ModelChoice, text: str, max_tokens: int, settings: TrainingSettings
) -> TrainingSpec:
    return TrainingSpec(settings=settings, **_fields(model_key, text, max_tokens))


def training_task(
    model_key: ModelChoice, text: str, max_tokens: int, settings: TrainingSettings
) -> tuple[TrainingSpec, Callable]:
    """(spec, work) of the training what-if (on a deep copy, made by ``train_what_if``; the cached model is
    never written)."""
    loaded = cached_model(model_key)
    loss = cached_loss(model_key, text, max_tokens)

    def work(task: tasks.Task) -> C.TrainingRun:
        return C.train_what_if(
            loaded.model, loss, settings, max_matvec=TRAIN_MAX_MATVEC, progress=task.report,
            cancel=lambda: task.cancelled,
        )  # fmt: skip

    return training_spec(model_key, text, max_tokens, settings), work
