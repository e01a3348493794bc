"""Cached, background work behind the Curvature page (and the λ_max that Learn's walkthrough shows).

Three kinds of job (explorer/ui/jobs.py), shared by every browser session and cancellable:
- one block's top-k eigenvalues, trace and spectral density (``block_job``), publishing the eigenvalues and
  the trace as partial results before the density is done;
- the layer x {attention, MLP} grid of λ_max and trace (``grid_job``), publishing one layer at a time;
- the training what-if (``training_job``), on a deep copy made by the analysis.

Finished block results and grids are also kept on disk under ``cache_dir("curvature")`` as .npz (no pickle),
named by a hash of the weights' fingerprint (``explorer.analysis.weights.model_fingerprint``, the one the
weight-spectra and factor stores use), the loss's exact inputs (the token ids the text and max tokens give,
or the shipped sentence pairs for encoders, whose loss does not read the text), the operator, the block and
the solver settings; a new process reads them back instead of recomputing. Training runs are not kept on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from explorer import tasks
from explorer.analysis import curvature as C
from explorer.errors import InputError
from explorer.models.choice import ModelChoice
from explorer.paths import cache_dir
from explorer.spectra.curvature import Cancelled as SolverCancelled
from explorer.ui import jobs
from explorer.ui.cache import cached_fingerprint, cached_model

# 3: results of the float32 solvers before their sums were accurate (explorer/spectra/curvature.py's
# _update_and_measure): a whole-model lambda_max 0.3 % off, residuals under-reported; never read back.
FORMAT_VERSION = 3
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


def _block_board() -> jobs.JobBoard:
    return jobs.board("curvature-block", max_finished=8)


def _grid_board() -> jobs.JobBoard:
    return jobs.board("curvature-grid", max_finished=4)


def _training_board() -> jobs.JobBoard:
    return jobs.board("curvature-training", max_finished=4)


def was_cancelled(job: jobs.Job) -> bool:
    """The job stopped because someone cancelled it (from a progress report or the solvers' own check)."""
    return job.done and isinstance(job.error, jobs.Cancelled | SolverCancelled)


# ---------------------------------------------------------------------------------------------- inputs


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_loss(model_key: ModelChoice, text: str, max_tokens: int) -> C.LossSpec:
    """The loss the page curves (its input tensors are shared read-only by the jobs)."""
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


# ------------------------------------------------------------------------------------------ disk cache


def _npz_items(obj, prefix: str, out: dict) -> None:
    for f in fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if is_dataclass(value):
            _npz_items(value, f"{key}.", out)
        elif isinstance(value, tuple):
            out[key] = np.array([str(v) for v in value], dtype=str)
        elif isinstance(value, dict):  # LossSpec inputs: not stored
            continue
        else:
            out[key] = np.asarray(value)


def _from_npz(cls, prefix: str, data) -> object:
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        kind, key = hints[f.name], f"{prefix}{f.name}"
        if is_dataclass(kind):
            values[f.name] = _from_npz(kind, f"{key}.", data)
        elif kind in (int, float, str, bool):
            values[f.name] = kind(data[key][()])
        elif typing.get_origin(kind) is tuple:
            values[f.name] = tuple(str(v) for v in data[key])
        else:
            values[f.name] = np.array(data[key])
    return cls(**values)


def _disk_path(what: str, identity: dict, settings: dict) -> Path:
    """``<what>-v<version>-<hash of identity>-<hash of settings>.npz``: Learn finds a block's λ_max by the
    identity part whatever the solver settings were."""

    def h(d):
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:20]

    return cache_dir("curvature") / f"{what}-v{FORMAT_VERSION}-{h(identity)}-{h(settings)}.npz"


def _save(result, path: Path) -> None:
    payload: dict = {}
    _npz_items(result, "", payload)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **payload)
    os.replace(tmp, path)  # atomic: a reader sees a whole file or none


def _load(cls, path: Path):
    """The result stored at ``path``, or None (missing, unreadable, another layout)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return _from_npz(cls, "", data)
    except (OSError, KeyError, ValueError, TypeError):
        return None


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


def _identity(model_key: ModelChoice, spec: C.LossSpec, kind: str, block: str) -> dict:
    return {"weights": cached_fingerprint(model_key), "loss": loss_key(spec), "kind": kind, "block": block}


def _block_path(model_key: ModelChoice, spec: C.LossSpec, s: BlockSettings) -> Path:
    settings = {"k": s.k, "trace": s.trace_method, "probes": s.probes, "max_matvec": s.max_matvec,
                "density": [DENSITY_PROBES, s.density_steps]}  # fmt: skip
    return _disk_path("block", _identity(model_key, spec, s.kind, s.block), settings)


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


def block_job(model_key: ModelChoice, text: str, max_tokens: int, settings: BlockSettings) -> jobs.Job:
    """The job analysing one block: started (or found) on the shared board, read from disk when a previous
    process computed it. Partial results: ("eigen", TopEigen), then ("trace", TraceEstimate)."""
    loaded = cached_model(model_key)  # read here: Streamlit's caches are not read from worker threads
    spec = cached_loss(model_key, text, max_tokens)
    path = _block_path(model_key, spec, settings)
    s = settings

    def work(job: jobs.Job) -> C.CurvatureSummary:
        stored = _load(C.CurvatureSummary, path)
        if stored is not None:
            return stored
        model = loaded.model
        chosen = C.select_block(model, s.block)
        job.report(0.0, f"Building the {s.kind} operator of {chosen.label} ({chosen.n_params:,} parameters)")
        op = C.CurvatureOperator(model, spec, chosen, s.kind)
        cancel = lambda: job.cancelled  # noqa: E731
        res = C.top_eigenpairs(op, s.k, max_matvec=s.max_matvec, progress=tasks.forward(job.report, 0.02, 0.5),
                               cancel=cancel)  # fmt: skip
        groups, mass = eigenvector_mass(op, model, res.eigenvectors)
        eigen = C.TopEigen(res.eigenvalues, res.residual_norms, res.history_ritz, res.history_residuals,
                           res.n_matvec, res.converged, groups, mass)  # fmt: skip
        del res
        job.publish(("eigen", eigen))
        trace = C.block_trace(
            op, s.probes, s.trace_method, progress=tasks.forward(job.report, 0.5, 0.75), cancel=cancel
        )
        job.publish(("trace", trace))
        density = C.block_density(op, DENSITY_PROBES, s.density_steps, progress=tasks.forward(job.report, 0.75, 1.0),
                                  cancel=cancel)  # fmt: skip
        result = C.CurvatureSummary(op.loss, spec.n_tokens, s.block, chosen.n_params, s.kind, eigen, trace,
                                    density, spec.description)  # fmt: skip
        _save(result, path)
        return result

    key = (model_key, loss_key(spec), settings)
    return _block_board().submit(key, work, f"curvature of {settings.block}")


def peek_block_job(
    model_key: ModelChoice, text: str, max_tokens: int, settings: BlockSettings
) -> jobs.Job | None:
    spec = cached_loss(model_key, text, max_tokens)
    return _block_board().peek((model_key, loss_key(spec), settings))


def known_lambda_max(model_key: ModelChoice, text: str, max_tokens: int, block: str = "all") -> float | None:
    """λ_max of ``block``'s Hessian if any session or process has already computed it (jobs board with
    the page's default settings, or any file on disk for this model, loss and block); never computes it."""
    n_params = block_size(model_key, block)
    job = peek_block_job(model_key, text, max_tokens, fit_to_memory(BlockSettings(block), n_params)[0])
    if job is not None and job.done and job.error is None:
        return float(job.result.eigen.eigenvalues[0])
    if job is not None:
        for kind, item in list(job.partial):
            if kind == "eigen":
                return float(item.eigenvalues[0])
    spec = cached_loss(model_key, text, max_tokens)
    prefix = _disk_path("block", _identity(model_key, spec, "hessian", block), {}).name.rsplit("-", 1)[0]
    for path in sorted(cache_dir("curvature").glob(f"{prefix}-*.npz")):
        stored = _load(C.CurvatureSummary, path)
        if stored is not None:
            return float(stored.eigen.eigenvalues[0])
    return None


# ----------------------------------------------------------------------------------------------- grid


def _grid_path(model_key: ModelChoice, spec: C.LossSpec, kind: str) -> Path:
    settings = {"tol": GRID_TOL, "max_matvec": GRID_MAX_MATVEC, "probes": GRID_PROBES}
    return _disk_path("grid", _identity(model_key, spec, kind, "layers:attention,mlp"), settings)


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


def grid_job(model_key: ModelChoice, text: str, max_tokens: int, kind: str) -> jobs.Job:
    """λ_max and trace of every layer's attention and MLP, one layer at a time (each published as a
    CurvatureGrid of one row), from disk when already computed."""
    loaded = cached_model(model_key)
    spec = cached_loss(model_key, text, max_tokens)
    path = _grid_path(model_key, spec, kind)

    def work(job: jobs.Job) -> C.CurvatureGrid:
        stored = _load(C.CurvatureGrid, path)
        if stored is not None:
            return stored
        n_layers = C.n_layers_of(loaded.model)
        rows = []
        for layer in range(n_layers):
            row = C.curvature_grid(
                loaded.model, spec, kind=kind, trace_probes=GRID_PROBES, tol=GRID_TOL,
                max_matvec=GRID_MAX_MATVEC, layers=[layer],
                progress=tasks.forward(job.report, layer / n_layers, (layer + 1) / n_layers), cancel=lambda: job.cancelled,
            )  # fmt: skip
            rows.append(row)
            job.publish(row)
        result = merge_grid_rows(rows, n_layers, kind)
        _save(result, path)
        return result

    return _grid_board().submit((model_key, loss_key(spec), kind), work, "curvature grid")


def peek_grid_job(model_key: ModelChoice, text: str, max_tokens: int, kind: str) -> jobs.Job | None:
    spec = cached_loss(model_key, text, max_tokens)
    return _grid_board().peek((model_key, loss_key(spec), kind))


def grid_on_disk(model_key: ModelChoice, text: str, max_tokens: int, kind: str) -> bool:
    return _grid_path(model_key, cached_loss(model_key, text, max_tokens), kind).is_file()


# ------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainingSettings:
    block: str
    steps: int = 10
    eta: float = 1e-3
    optimizer: str = "gd"


def _training_key(model_key, spec, s: TrainingSettings) -> tuple:
    return (model_key, loss_key(spec), s)


def training_job(model_key: ModelChoice, text: str, max_tokens: int, settings: TrainingSettings) -> jobs.Job:
    """The training what-if (on a deep copy, made by ``train_what_if``; the cached model is never written)."""
    loaded = cached_model(model_key)
    spec = cached_loss(model_key, text, max_tokens)
    s = settings

    def work(job: jobs.Job) -> C.TrainingRun:
        return C.train_what_if(
            loaded.model, spec, s.block, steps=s.steps, eta=s.eta, optimizer=s.optimizer,
            max_matvec=TRAIN_MAX_MATVEC, progress=job.report, cancel=lambda: job.cancelled,
        )  # fmt: skip

    return _training_board().submit(_training_key(model_key, spec, s), work, "training what-if")


def peek_training_job(model_key: ModelChoice, text: str, max_tokens: int, settings: TrainingSettings):
    spec = cached_loss(model_key, text, max_tokens)
    return _training_board().peek(_training_key(model_key, spec, settings))
