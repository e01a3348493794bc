"""Weight spectra: singular values and their summaries for every 2-D weight of a model, cached on disk.

Every matrix from ``explorer.analysis.matrices.weight_matrices`` (oriented (out, in)) is decomposed once.
Matrices of one shape are stacked and decomposed in one batched torch call on the chosen device (CPU,
CUDA; MPS falls back to CPU, it has no float64), in chunks that bound memory. Two routes, same result:

- ``"gram"``: eigenvalues of the smaller Gram matrix W^T W (or W W^T) in float64, sigma = sqrt(lambda).
  Fast (one matmul and a symmetric eigensolver on a min(m, n) square) and accurate to ~1e-13 * sigma_1
  in lambda, i.e. better than float32 SVD for every sigma_i above ~1e-7 * sigma_1, which is as far as
  float32 weights can resolve anyway.
- ``"svd"``: torch.linalg.svdvals in float32 (abs. error ~1e-7 * sigma_1).

Metrics are those of ``explorer.spectra.ranks`` (defined once) and the heavy-tail statistics of
``explorer.spectra.heavy_tail``. Numerical rank and condition number use float32's machine epsilon,
because the weights are stored in float32 (or coarser): singular values below sigma_1 * max(m, n) * eps32
are rounding noise of the stored numbers, not structure.

The result depends on the weights only, so it runs as a task (``WeightSpectraSpec``, keyed by a model
fingerprint, see ``model_fingerprint``) kept in the disk store: a second visit, even from a new process, reads it
back.

The same spectra can be read from a safetensors checkpoint folder without loading its model
(``compute_checkpoint_spectra``, ``CheckpointSpectraSpec``; ``explorer.models.checkpoint``): one chunk of
same-shape matrices is read, decomposed and dropped at a time, so peak memory follows the largest chunk, not the
model. Both routes share the computation (``_spectra_of``, ``_randomized_of``), so they give the same numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from explorer import tasks
from explorer.analysis.matrices import KINDS, WeightMatrix, weight_matrices
from explorer.models.checkpoint import Checkpoint, CheckpointMatrix
from explorer.models.device import linalg_device
from explorer.spectra import ranks
from explorer.spectra import weightwatcher as ww
from explorer.spectra.heavy_tail import element_variance, esd, fit_power_law, mp_bulk_edge

# Bump when the computation or the file layout changes: old cache files are then ignored.
CACHE_VERSION = 1
METHODS = ("gram", "svd")
# Largest stack (in float64 bytes) decomposed in one call.
_CHUNK_BYTES = 256 * 2**20
EPS32 = float(np.finfo(np.float32).eps)

ProgressCallback = Callable[[float, str], None]

# Metric name -> (label, help). The single list the heatmap, the table and the report use.
METRICS: dict[str, tuple[str, str]] = {
    "spectral_norm": (
        "spectral norm σ₁",
        "Largest singular value: the most any input direction is stretched.",
    ),
    "frobenius_norm": ("Frobenius norm", "sqrt(Σσᵢ²): the overall size of the matrix."),
    "stable_rank": ("stable rank", "‖W‖_F² / ‖W‖₂²: how many directions carry comparable energy."),
    "effective_rank": ("effective rank", "exp(entropy of σᵢ/Σσ) (Roy & Vetterli 2007)."),
    "numerical_rank": ("numerical rank", "#σᵢ above σ₁·max(m,n)·ε (float32 ε)."),
    "condition_number": ("condition number", "σ₁ / smallest numerically nonzero σ."),
    "k90": ("energy rank k₉₀", "Fewest singular values holding 90% of Σσᵢ²."),
    "k99": ("energy rank k₉₉", "Fewest singular values holding 99% of Σσᵢ²."),
    "k90_fraction": ("k₉₀ / min(m,n)", "Energy rank k₉₀ as a share of the full rank."),
    "alpha": (
        "power-law α",
        "Tail exponent of the ESD of WᵀW/N (≈2-6 for trained layers; smaller = heavier tail).",
    ),
    "alpha_ks": ("KS distance D", "Kolmogorov-Smirnov distance of the power-law fit (smaller = better fit)."),
    "n_spikes": ("MP spikes", "ESD eigenvalues above the Marchenko-Pastur bulk edge λ₊."),
    "alpha_hat": (
        "α̂ = α·log₁₀λ_max",
        "WeightWatcher's alpha-weighted: α times log₁₀ of the largest eigenvalue σ₁² of WᵀW.",
    ),
    "log_norm": ("log₁₀‖W‖_F²", "WeightWatcher's log norm: log₁₀ Σσᵢ², the total energy."),
    "log_spectral_norm": ("log₁₀λ_max = log₁₀σ₁²", "WeightWatcher's log spectral norm: log₁₀ σ₁²."),
}
LOG_METRICS = {"condition_number", "spectral_norm", "frobenius_norm"}
# Metrics computed from sigma and alpha when asked for (not stored: no cache version bump).
_DERIVED = ("alpha_hat", "log_norm", "log_spectral_norm")


@dataclass(frozen=True, kw_only=True)
class _MatrixResult:
    """What every per-matrix result here carries besides its numbers: ``names`` (one per matrix, in
    ``weight_matrices`` order) and how it was made. fingerprint: the weights' fingerprint; seconds: time of the
    computation (not of a cache read); method, device: the route and where it ran; from_cache: read from the
    disk store (set by ``with_origin``)."""

    names: tuple[str, ...]
    fingerprint: str
    seconds: float
    method: str
    device: str
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class WeightSpectra(_MatrixResult):
    """Singular values and metrics of every 2-D weight of a model, in ``weight_matrices`` order.

    names, kinds: tuples of length ``matrix``. layers: (matrix,) int64, -1 where the matrix belongs to no
    block (embeddings, lm_head). shapes: (matrix, 2) int64, (out, in). sigma: tuple of (min(m, n),)
    float64 arrays, decreasing. Metric arrays (spectral_norm ... n_spikes): (matrix,) float64;
    k90/k99/numerical_rank are counts, alpha_xmin and mp_edge are ESD eigenvalues (units of sigma^2 / N),
    element_variance is the mean squared entry. names and the provenance fields: see ``_MatrixResult``.
    """

    kinds: tuple[str, ...]
    layers: np.ndarray
    shapes: np.ndarray
    sigma: tuple[np.ndarray, ...]
    spectral_norm: np.ndarray
    frobenius_norm: np.ndarray
    stable_rank: np.ndarray
    effective_rank: np.ndarray
    numerical_rank: np.ndarray
    condition_number: np.ndarray
    k90: np.ndarray
    k99: np.ndarray
    alpha: np.ndarray
    alpha_xmin: np.ndarray
    alpha_ks: np.ndarray
    alpha_n_tail: np.ndarray
    mp_edge: np.ndarray
    n_spikes: np.ndarray
    element_variance: np.ndarray

    @property
    def n_layers(self) -> int:
        return int(self.layers.max()) + 1 if len(self) and self.layers.max() >= 0 else 0

    @property
    def kinds_present(self) -> list[str]:
        """Kinds in the canonical order of ``matrices.KINDS``."""
        present = set(self.kinds)
        return [k for k in KINDS if k in present]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def find(self, kind: str, layer: int | None) -> int | None:
        """Index of the first matrix of ``kind`` in ``layer`` (None: outside any block), or None."""
        want = -1 if layer is None else layer
        for i, (k, lay) in enumerate(zip(self.kinds, self.layers, strict=True)):
            if k == kind and lay == want:
                return i
        return None

    def of_kind(self, kind: str) -> np.ndarray:
        """Indices of every matrix of ``kind``, in layer order."""
        idx = [i for i, k in enumerate(self.kinds) if k == kind]
        return np.asarray(sorted(idx, key=lambda i: (self.layers[i], i)), dtype=int)

    def metric(self, name: str) -> np.ndarray:
        """(matrix,) float64 values of one of METRICS."""
        if name == "k90_fraction":
            return self.k90 / self.shapes.min(axis=1)
        if name in _DERIVED:
            return self._derived(name)
        if name not in METRICS:
            raise KeyError(f"Unknown metric '{name}'; choose one of {list(METRICS)}.")
        return np.asarray(getattr(self, name), dtype=np.float64)

    def _derived(self, name: str) -> np.ndarray:
        """WeightWatcher's norm metrics (explorer/spectra/weightwatcher.py), (matrix,) float64."""
        if name == "log_norm":
            return np.array([ww.log_norm(S) for S in self.sigma], dtype=np.float64)
        top = np.array([ww.log_spectral_norm(S) for S in self.sigma], dtype=np.float64)
        return top if name == "log_spectral_norm" else np.asarray(self.alpha, dtype=np.float64) * top

    def esd(self, i: int) -> np.ndarray:
        """(min(m, n),) float64 eigenvalues of W^T W / N of matrix i, decreasing."""
        return esd(self.sigma[i], tuple(self.shapes[i]))

    def break_even_rank(self, i: int) -> float:
        """mn / (m + n): below this rank a factorisation U_k (m x k) V_k (k x n) stores fewer numbers."""
        m, n = (int(v) for v in self.shapes[i])
        return m * n / (m + n)

    def rows(self) -> list[dict]:
        """One plain dict per matrix (name, layer, kind, shape and every metric), for tables and JSON."""
        out = []
        derived = {name: self.metric(name) for name in _DERIVED}
        for i in range(len(self)):
            row = self.row_identity(i)
            for key in ARRAY_FIELDS:
                value = float(getattr(self, key)[i])
                row[key] = int(value) if key in _COUNTS and np.isfinite(value) else value
            for key, values in derived.items():
                row[key] = float(values[i])
            out.append(row)
        return out

    def row_identity(self, i: int) -> dict:
        """The plain-dict head of matrix i's table row: name, layer (None outside any block), kind, shape."""
        return {
            "name": self.names[i],
            "layer": None if self.layers[i] < 0 else int(self.layers[i]),
            "kind": self.kinds[i],
            "shape": [int(v) for v in self.shapes[i]],
        }


_COUNTS = {"numerical_rank", "k90", "k99", "alpha_n_tail", "n_spikes"}
# The stored per-matrix metric columns, in table order (``rows`` and the report's columns follow it).
ARRAY_FIELDS = (
    "spectral_norm",
    "frobenius_norm",
    "stable_rank",
    "effective_rank",
    "numerical_rank",
    "condition_number",
    "k90",
    "k99",
    "alpha",
    "alpha_xmin",
    "alpha_ks",
    "alpha_n_tail",
    "mp_edge",
    "n_spikes",
    "element_variance",
)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _raw_bytes(W: torch.Tensor) -> np.ndarray:
    """The stored bytes of a weight, without a copy when it is (or is the transpose of) a contiguous tensor."""
    if not W.is_contiguous():
        W = W.mT if W.mT.is_contiguous() else W.contiguous()
    return W.detach().to("cpu").reshape(-1).view(torch.uint8).numpy()


def model_fingerprint(model: torch.nn.Module, mats: list[WeightMatrix] | None = None) -> str:
    """A fingerprint of everything the weight spectra depend on: the model class, its config (minus paths
    and versions), and every weight matrix's name, kind, shape, dtype and stored bytes.

    SHA-1 over the bytes (an identity check, not security): about 0.4 s for SmolLM2's 540 MB on one core,
    where the full ``matrices.weights_checksum`` (float64 copies, every parameter) takes several seconds.
    """
    mats = weight_matrices(model) if mats is None else mats
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"v{CACHE_VERSION}:{type(model).__module__}.{type(model).__name__}".encode())
    config = getattr(model, "config", None)
    if config is not None:
        settings = {
            k: v
            for k, v in config.to_dict().items()
            if k not in ("_name_or_path", "transformers_version", "_commit_hash")
        }
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for m in mats:
            W = m.weight
            digest.update(f"{m.name}|{m.kind}|{tuple(W.shape)}|{W.dtype}|{W.is_contiguous()}".encode())
            digest.update(_raw_bytes(W))
    return digest.hexdigest()[:32]


def _singular_values(stack: torch.Tensor, method: str, device: torch.device) -> np.ndarray:
    """(batch, m, n) weights -> (batch, min(m, n)) float64 singular values, decreasing."""
    if method == "svd":
        S = torch.linalg.svdvals(stack.to(device, torch.float32))
        return S.to("cpu", torch.float64).numpy()
    X = stack.to(device, torch.float64)
    m, n = X.shape[-2:]
    gram = X.mT @ X if m >= n else X @ X.mT  # (batch, min, min), symmetric PSD
    lam = torch.linalg.eigvalsh(gram).flip(-1).clamp_min(0)
    return lam.sqrt().to("cpu", torch.float64).numpy()


def _group_metrics(S: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Every metric for a stack of spectra S (batch, k) of matrices of ``shape``."""
    lam = esd(S, shape)
    fit = fit_power_law(lam)
    var = element_variance(S, shape)
    edge = mp_bulk_edge(shape, var)
    return {
        "spectral_norm": ranks.spectral_norm(S),
        "frobenius_norm": ranks.frobenius_norm(S),
        "stable_rank": ranks.stable_rank(S),
        "effective_rank": ranks.effective_rank(S),
        "numerical_rank": ranks.numerical_rank(S, shape, eps=EPS32),
        "condition_number": ranks.condition_number(S, shape, eps=EPS32),
        "k90": ranks.energy_rank(S, 0.9),
        "k99": ranks.energy_rank(S, 0.99),
        "alpha": fit.alpha,
        "alpha_xmin": fit.xmin,
        "alpha_ks": fit.ks,
        "alpha_n_tail": fit.n_tail,
        "mp_edge": edge,
        "n_spikes": (lam > edge[:, None]).sum(axis=1).astype(np.float64),
        "element_variance": var,
    }


def compute_weight_spectra(
    model: torch.nn.Module,
    *,
    device: str = "cpu",
    method: str = "gram",
    progress: ProgressCallback | None = None,
    mats: list[WeightMatrix] | None = None,
    fingerprint: str | None = None,
) -> WeightSpectra:
    """Decompose every weight matrix (no disk cache). See the module docstring for ``method``."""
    return _spectra_of(
        _LoadedWeights(model, mats), device=device, method=method, progress=progress, fingerprint=fingerprint
    )


class _WeightSource(Protocol):
    """Where the computations below read weights from: a loaded model (``_LoadedWeights``) or a safetensors
    checkpoint (``explorer.models.checkpoint.Checkpoint``, read from its files)."""

    @property
    def matrices(self) -> Sequence[WeightMatrix | CheckpointMatrix]:
        """Each matrix's name, kind, layer and (out, in) shape, in ``weight_matrices`` order."""
        ...

    def stack(self, indices: list[int]) -> torch.Tensor:
        """(batch, out, in) float32 weights of matrices ``indices`` (all of one shape)."""
        ...


class _LoadedWeights:
    """A loaded model's weight matrices as a ``_WeightSource`` (``mats``: a subset; default every matrix).
    Stacks are detached copies: the model is only read."""

    def __init__(self, model: torch.nn.Module, mats: list[WeightMatrix] | None = None):
        self.matrices = weight_matrices(model) if mats is None else mats

    def stack(self, indices: list[int]) -> torch.Tensor:
        return torch.stack([self.matrices[i].weight.detach() for i in indices])


def _shape_groups(mats: Sequence[WeightMatrix | CheckpointMatrix]) -> dict[tuple[int, int], list[int]]:
    """Indices of ``mats`` by (out, in) shape, shapes in first-seen order: each group is decomposed as stacks."""
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(mats):
        by_shape.setdefault(m.shape, []).append(i)
    return by_shape


def _chunks(idx: list[int], shape: tuple[int, int]) -> Iterator[list[int]]:
    """Consecutive parts of ``idx`` (matrices of ``shape``) of at most ``_CHUNK_BYTES`` in float64 (at least one
    matrix each): only one part's weights need be in memory when they are read from a file."""
    chunk = max(1, _CHUNK_BYTES // (shape[0] * shape[1] * 8))
    for lo in range(0, len(idx), chunk):
        yield idx[lo : lo + chunk]


def _spectra_of(
    source: _WeightSource,
    *,
    device: str,
    method: str,
    progress: ProgressCallback | None,
    fingerprint: str | None,
) -> WeightSpectra:
    """The computation behind ``compute_weight_spectra`` and ``compute_checkpoint_spectra``, one chunk of
    same-shape matrices (``_chunks``) read from ``source`` at a time."""
    if method not in METHODS:
        raise ValueError(f"Unknown method '{method}'; choose one of {METHODS}.")
    start = time.perf_counter()
    lin_device = linalg_device(device)
    mats = source.matrices
    by_shape = _shape_groups(mats)
    # Progress weighted by work: an SVD of (m, n) costs about m * n * min(m, n).
    costs = {shape: len(idx) * shape[0] * shape[1] * min(shape) for shape, idx in by_shape.items()}
    total_cost, done = float(sum(costs.values())) or 1.0, 0.0
    sigma: list[np.ndarray | None] = [None] * len(mats)
    columns: dict[str, np.ndarray] = {f: np.full(len(mats), np.nan) for f in ARRAY_FIELDS}

    def report(message: str) -> None:
        if progress is not None:
            progress(min(done / total_cost, 1.0), message)

    with torch.no_grad():
        for shape, idx in by_shape.items():
            spectra = []
            for part in _chunks(idx, shape):
                report(f"Singular values of {len(idx)} matrices of shape {shape[0]}×{shape[1]}…")
                stack = source.stack(part)
                spectra.append(_singular_values(stack, method, lin_device))
                del stack
                done += costs[shape] * len(part) / len(idx) * 0.9
            S = np.concatenate(spectra, axis=0)
            report(f"Power-law fits for {len(idx)} matrices of shape {shape[0]}×{shape[1]}…")
            for field, values in _group_metrics(S, shape).items():
                columns[field][idx] = values
            for row, i in enumerate(idx):
                sigma[i] = _frozen(S[row].copy())
            done += costs[shape] * 0.1
    report("Done.")
    return WeightSpectra(
        names=tuple(m.name for m in mats),
        kinds=tuple(m.kind for m in mats),
        layers=_frozen(np.array([-1 if m.layer is None else m.layer for m in mats], dtype=np.int64)),
        shapes=_frozen(np.array([m.shape for m in mats], dtype=np.int64).reshape(-1, 2)),
        sigma=tuple(sigma),  # type: ignore[arg-type]
        **{f: _frozen(v) for f, v in columns.items()},
        fingerprint=fingerprint or "",
        seconds=time.perf_counter() - start,
        method=method,
        device=str(lin_device),
    )


@dataclass(frozen=True)
class _WeightsSpec(tasks.Spec):
    """A task whose result depends on the weights (their ``fingerprint``) and the decomposition route
    (``method``) only: kept in the disk store, so a new process reads it back."""

    KEEP: ClassVar[bool] = True
    MAX_FINISHED: ClassVar[int] = 4
    fingerprint: str
    method: str = "gram"


class _SizedByEntries:
    """Mixin of a spec with an ``n_entries`` field (the weights' total size, fixed by the fingerprint): it only
    sizes the estimate that decides whether the task runs in a worker (unknown, inf, when 0)."""

    def estimated_seconds(self) -> float:
        return self.n_entries / _ENTRIES_PER_SECOND if self.n_entries else float("inf")


@dataclass(frozen=True)
class WeightSpectraSpec(_WeightsSpec):
    """The task of one model's weight spectra (``_WeightsSpec``)."""

    KIND: ClassVar[str] = "weight-spectra"
    VERSION: ClassVar[int] = CACHE_VERSION
    RESULT: ClassVar[Any] = WeightSpectra

    @property
    def label(self) -> str:
        return "weight spectra"


def weight_spectra(
    model: torch.nn.Module,
    *,
    device: str = "cpu",
    method: str = "gram",
    progress: ProgressCallback | None = None,
) -> WeightSpectra:
    """The model's weight spectra through the task layer: read from the disk store when these weights were
    analysed before (``from_cache``), else computed (``compute_weight_spectra``) and kept there.
    ``progress(fraction, message)`` is called while computing."""
    mats = weight_matrices(model)
    spec = WeightSpectraSpec(model_fingerprint(model, mats), method)
    return weight_spectra_task(spec, model, device=device, progress=progress)


def weight_spectra_task(
    spec: WeightSpectraSpec,
    model: torch.nn.Module,
    *,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
    background: bool = False,
) -> WeightSpectra | tasks.Task:
    """``spec``'s result, waited for here (``background=False``), or its task (``background=True``: a page
    watches it). A stored result comes back with ``from_cache`` set."""

    def work(task: tasks.Task) -> WeightSpectra:
        return compute_weight_spectra(
            model, device=device, method=spec.method, progress=task.report, fingerprint=spec.fingerprint
        )

    return _run_spectra(spec, work, progress, background)


def _run_spectra(
    spec: WeightSpectraSpec, work, progress: ProgressCallback | None, background: bool
) -> WeightSpectra | tasks.Task:
    """``spec``'s task: its Task (``background``), or its result waited for, marked ``from_cache`` when read
    from the disk store."""
    if background:
        return tasks.get(spec, work, background=True)
    result = tasks.run(spec, work, progress=progress)
    if progress is not None:
        progress(1.0, "Done.")
    return with_origin(result, spec)


def with_origin(result: _MatrixResult, spec: tasks.Spec) -> Any:
    """``result`` (a WeightSpectra or RandomizedSpectra) marked ``from_cache`` when the task layer read it from
    the disk store."""
    task = tasks.peek(spec)
    from_disk = task is not None and task.from_disk
    return dataclasses.replace(result, from_cache=True) if from_disk and not result.from_cache else result


# ------------------------------------------------------------------------ streamed from a checkpoint


@dataclass(frozen=True)
class CheckpointSpectraSpec(_SizedByEntries, WeightSpectraSpec):
    """The weight spectra of a safetensors checkpoint folder, read tensor by tensor without loading its model
    (``compute_checkpoint_spectra``): keyed by ``Checkpoint.fingerprint`` (config, the weight files' names,
    sizes, times and headers, the loading dtype) and the route; ``n_entries``: see ``_SizedByEntries``. Same
    result type and numbers as the loaded model's ``WeightSpectraSpec``; a separate entry, since a fingerprint
    of files is not one of weights."""

    KIND: ClassVar[str] = "weight-spectra-checkpoint"
    n_entries: int = 0

    @property
    def label(self) -> str:
        return "weight spectra (read from the checkpoint files)"


def checkpoint_spec(checkpoint: Checkpoint, method: str = "gram") -> CheckpointSpectraSpec:
    """The one way to build the spec of ``checkpoint``'s weight spectra (report, pages and benches alike)."""
    return CheckpointSpectraSpec(checkpoint.fingerprint(), method, checkpoint.n_entries)


def compute_checkpoint_spectra(
    checkpoint: Checkpoint,
    *,
    device: str = "cpu",
    method: str = "gram",
    progress: ProgressCallback | None = None,
    fingerprint: str | None = None,
) -> WeightSpectra:
    """``compute_weight_spectra`` of the model ``checkpoint`` holds, without loading it: each chunk of
    same-shape matrices (at most ``_CHUNK_BYTES`` in float64) is read from the files, decomposed and dropped,
    so peak memory follows the largest matrix or chunk, not the model. Same names, order and numbers as the
    loaded model's (its tensors are rounded to the loading dtype first, as the loader does)."""
    return _spectra_of(checkpoint, device=device, method=method, progress=progress, fingerprint=fingerprint)


def checkpoint_spectra_task(
    spec: CheckpointSpectraSpec,
    checkpoint: Checkpoint,
    *,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
    background: bool = False,
) -> WeightSpectra | tasks.Task:
    """``spec``'s result (``background=False``) or its task (``background=True``), as ``weight_spectra_task``."""

    def work(task: tasks.Task) -> WeightSpectra:
        return compute_checkpoint_spectra(
            checkpoint, device=device, method=spec.method, progress=task.report, fingerprint=spec.fingerprint
        )

    return _run_spectra(spec, work, progress, background)


def checkpoint_spectra(
    checkpoint: Checkpoint,
    *,
    device: str = "cpu",
    method: str = "gram",
    progress: ProgressCallback | None = None,
) -> WeightSpectra:
    """The checkpoint's weight spectra through the task layer, waited for here (report CLI, benches)."""
    return checkpoint_spectra_task(
        checkpoint_spec(checkpoint, method), checkpoint, device=device, progress=progress
    )


# ------------------------------------------------------------------------------ randomized comparison

RANDOMIZED_VERSION = 1
DEFAULT_SEED = 0
# Entries shuffled and decomposed per second on one CPU core (SmolLM2: 134.5 M entries), for the task layer's
# estimate: tiny models run in the asking thread, the embedded ones in a worker.
_ENTRIES_PER_SECOND = 1e7

# WeightWatcher's metric set, in the order of the page's picker: key -> (label, what it means).
WW_METRICS: dict[str, tuple[str, str]] = {
    "alpha": ("power-law α", METRICS["alpha"][1]),
    "alpha_hat": METRICS["alpha_hat"],
    "log_norm": METRICS["log_norm"],
    "log_spectral_norm": METRICS["log_spectral_norm"],
    "stable_rank": ("stable rank", "Σσᵢ² / σ₁²: WeightWatcher's stable rank, the same number as ours."),
    "rand_distance": (
        "rand_distance",
        "Jensen-Shannon distance between the sorted ESD of W and of W with its entries shuffled (0 = no "
        "learned structure; at most √ln2 ≈ 0.83).",
    ),
    "n_traps": (
        "correlation traps",
        "Eigenvalues of the shuffled W's ESD past the Marchenko-Pastur edge (plus 4 Tracy-Widom widths): "
        "a few outsized entries, not learned correlations.",
    ),
}
RANDOMIZED_METRICS = ("rand_distance", "n_traps")


@dataclass(frozen=True)
class RandomizedSpectra(_MatrixResult):
    """The randomized comparison of every weight matrix (WeightWatcher's ``randomize=True``), in
    ``weight_matrices`` order: each matrix with its m n entries shuffled by its own seeded permutation
    (``explorer.spectra.weightwatcher.matrix_seed``), decomposed by the same route as the real spectra.

    names: tuple of length ``matrix``. shapes: (matrix, 2) int64 (out, in). sigma: tuple of (min(m, n),)
    float64 singular values of the shuffled matrices, decreasing. rand_distance: (matrix,) float64, the JS
    distance between the real and the shuffled ESD (nats, square-rooted). trap_edge: (matrix,) float64, lambda_+
    plus ``TRAP_MARGIN`` Tracy-Widom widths, in ESD units (sigma^2 / N). n_traps: (matrix,) float64 count of
    shuffled ESD eigenvalues above trap_edge. seed: the base seed. names and the provenance fields: see
    ``_MatrixResult``.
    """

    shapes: np.ndarray
    sigma: tuple[np.ndarray, ...]
    rand_distance: np.ndarray
    trap_edge: np.ndarray
    n_traps: np.ndarray
    seed: int

    def esd(self, i: int) -> np.ndarray:
        """(min(m, n),) float64 eigenvalues of W_shuffled^T W_shuffled / N of matrix i, decreasing."""
        return esd(self.sigma[i], tuple(self.shapes[i]))

    def traps(self, i: int) -> np.ndarray:
        """The shuffled ESD eigenvalues of matrix i above its trap edge, decreasing (ESD units)."""
        lam = self.esd(i)
        return lam[lam > self.trap_edge[i]]


def compute_randomized_spectra(
    model: torch.nn.Module,
    spectra: WeightSpectra,
    *,
    device: str = "cpu",
    seed: int = DEFAULT_SEED,
    progress: ProgressCallback | None = None,
    mats: list[WeightMatrix] | None = None,
) -> RandomizedSpectra:
    """Shuffle every weight matrix's entries (copies: the model is untouched) and decompose the shuffled stacks
    by ``spectra``'s route, batched by shape as ``compute_weight_spectra`` does. ``spectra``: the model's real
    weight spectra (the ESD each shuffled one is compared with)."""
    source = _LoadedWeights(model, mats)
    return _randomized_of(source, spectra, device=device, seed=seed, progress=progress)


def _randomized_of(
    source: _WeightSource,
    spectra: WeightSpectra,
    *,
    device: str,
    seed: int,
    progress: ProgressCallback | None,
) -> RandomizedSpectra:
    """The computation behind ``compute_randomized_spectra`` and ``randomized_work`` (a loaded model or a
    checkpoint), one chunk of same-shape matrices (``_chunks``) read from ``source`` at a time."""
    start = time.perf_counter()
    mats = source.matrices
    if tuple(m.name for m in mats) != spectra.names:
        raise ValueError("The weight spectra belong to another model: their matrices differ.")
    lin_device = linalg_device(device)
    by_shape = _shape_groups(mats)
    total = float(sum(m.shape[0] * m.shape[1] for m in mats)) or 1.0
    done = 0.0
    sigma: list[np.ndarray | None] = [None] * len(mats)
    distance = np.full(len(mats), np.nan)
    edge = np.full(len(mats), np.nan)
    n_traps = np.full(len(mats), np.nan)
    with torch.no_grad():
        for shape, idx in by_shape.items():
            size = shape[0] * shape[1]
            for part in _chunks(idx, shape):
                if progress is not None:
                    progress(
                        min(done / total, 1.0),
                        f"Shuffling {len(idx)} matrices of shape {shape[0]}×{shape[1]}…",
                    )
                perms = torch.from_numpy(
                    np.stack([ww.entry_permutation(size, ww.matrix_seed(mats[i].name, seed)) for i in part])
                )
                stack = source.stack(part)
                S = _singular_values(ww.shuffle_entries(stack, perms), spectra.method, lin_device)
                del stack, perms
                for row, i in enumerate(part):
                    sigma[i] = _frozen(S[row].copy())
                done += size * len(part)
            S_real = np.stack([spectra.sigma[i] for i in idx])
            S_rand = np.stack([sigma[i] for i in idx])
            var = np.asarray(spectra.element_variance[idx], dtype=np.float64)  # a shuffle keeps every entry
            distance[idx] = ww.rand_distance(esd(S_real, shape), esd(S_rand, shape))
            edge[idx] = ww.trap_edge(shape, var)
            n_traps[idx] = (esd(S_rand, shape) > edge[idx][:, None]).sum(axis=1)
    if progress is not None:
        progress(1.0, "Done.")
    return RandomizedSpectra(
        names=spectra.names,
        shapes=spectra.shapes,
        sigma=tuple(sigma),  # type: ignore[arg-type]
        rand_distance=_frozen(distance),
        trap_edge=_frozen(edge),
        n_traps=_frozen(n_traps),
        seed=int(seed),
        fingerprint=spectra.fingerprint,
        seconds=time.perf_counter() - start,
        method=spectra.method,
        device=str(lin_device),
    )


@dataclass(frozen=True)
class RandomizedSpectraSpec(_SizedByEntries, _WeightsSpec):
    """The randomized comparison of one model's weights (``_WeightsSpec``, and the seed); ``n_entries``: see
    ``_SizedByEntries``. A checkpoint's comparison has the same spec: its spectra carry the checkpoint's
    fingerprint."""

    KIND: ClassVar[str] = "weight-spectra-randomized"
    VERSION: ClassVar[int] = RANDOMIZED_VERSION
    RESULT: ClassVar[Any] = RandomizedSpectra
    seed: int = DEFAULT_SEED
    n_entries: int = 0

    @property
    def label(self) -> str:
        return "randomized weight spectra"


def randomized_spec(spectra: WeightSpectra, seed: int = DEFAULT_SEED) -> RandomizedSpectraSpec:
    """The one way to build the spec of ``spectra``'s randomized comparison (pages, report and benches alike)."""
    n_entries = int(np.prod(spectra.shapes, axis=1).sum()) if len(spectra) else 0
    return RandomizedSpectraSpec(spectra.fingerprint, spectra.method, int(seed), n_entries)


def randomized_work(
    weights: torch.nn.Module | Checkpoint,
    spectra: WeightSpectra,
    device: str = "cpu",
    seed: int = DEFAULT_SEED,
):
    """The task work of ``randomized_spec(spectra, seed)``: ``weights``, a loaded model or a checkpoint read
    one chunk at a time from its files (``spectra``: its ``weight_spectra`` or ``checkpoint_spectra``)."""

    def work(task: tasks.Task) -> RandomizedSpectra:
        source = weights if isinstance(weights, Checkpoint) else _LoadedWeights(weights)
        return _randomized_of(source, spectra, device=device, seed=seed, progress=task.report)

    return work


def randomized_spectra(
    weights: torch.nn.Module | Checkpoint,
    spectra: WeightSpectra,
    *,
    device: str = "cpu",
    seed: int = DEFAULT_SEED,
    progress: ProgressCallback | None = None,
) -> RandomizedSpectra:
    """The randomized comparison of ``weights`` (a loaded model or a checkpoint, see ``randomized_work``)
    through the task layer, waited for here (report CLI, benches): read from the disk store when these weights
    were shuffled before with this seed (``from_cache``), else computed and kept."""
    spec = randomized_spec(spectra, seed)
    result = tasks.run(spec, randomized_work(weights, spectra, device, seed), progress=progress)
    return with_origin(result, spec)


def ww_metric(spectra: WeightSpectra, randomized: RandomizedSpectra | None, name: str) -> np.ndarray:
    """(matrix,) float64 values of one of WW_METRICS; the randomized ones are NaN without ``randomized``."""
    if name not in WW_METRICS:
        raise KeyError(f"Unknown metric '{name}'; choose one of {list(WW_METRICS)}.")
    if name in RANDOMIZED_METRICS:
        if randomized is None:
            return np.full(len(spectra), np.nan)
        return np.asarray(getattr(randomized, name), dtype=np.float64)
    return spectra.metric(name)


def ww_rows(spectra: WeightSpectra, randomized: RandomizedSpectra | None) -> list[dict]:
    """One plain dict per matrix: name, layer, kind, shape, WeightWatcher's metrics, the trap edge and the traps
    (shuffled ESD eigenvalues past it, ESD units); the randomized fields are None without ``randomized``."""
    values = {name: ww_metric(spectra, randomized, name) for name in WW_METRICS}
    out = []
    for i in range(len(spectra)):
        row = spectra.row_identity(i)
        for key, column in values.items():
            value = float(column[i])
            row[key] = None if not np.isfinite(value) else (int(value) if key == "n_traps" else value)
        row["trap_edge"] = None if randomized is None else float(randomized.trap_edge[i])
        row["traps"] = None if randomized is None else [float(v) for v in randomized.traps(i)]
        out.append(row)
    return out
