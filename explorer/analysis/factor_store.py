"""Factorizations on disk: computed once per (weights, method, calibration, groups), read back after a restart.

Files are safetensors (no pickle) in ``cache_dir("factors")`` (``$XDG_CACHE_HOME/eigen-explorer/factors``),
one per factorization, named by a key that hashes the weights' fingerprint
(``explorer.analysis.weights.model_fingerprint``: every weight matrix's bytes, the class and config), the
method, the caller's calibration key (which text, how it was cut), the groups, the layers, the ridge and this
module's format version. Changing any one gives another file.

Size: the directory is kept under ``EIGEN_EXPLORER_FACTOR_CACHE_MB`` megabytes (default 4096: the three
methods' full factors of SmolLM2's MLP matrices take about 440 MB each, the page's usable-rank cuts 320 MB each,
2.3 GB together) by deleting the least recently used files
(a read refreshes a file's modification time). ``EIGEN_EXPLORER_FACTOR_CACHE_MB=0`` turns the store off.
Deleting the directory (or ``make clean-cache``) clears it.

Concurrency: a file is written under a unique temporary name and renamed into place (atomic on POSIX), so a
reader sees a whole file or none; two processes computing the same key write identical content and the last
rename wins; a file evicted by another process between listing and reading is a miss, not an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from explorer.analysis.lowrank import RIDGE, ActivationStats, Factorization, MatrixFactors, factorize
from explorer.analysis.weights import model_fingerprint
from explorer.paths import cache_dir
from explorer.spectra.allocation import largest_factored_rank

FORMAT_VERSION = 1
CAP_ENV = "EIGEN_EXPLORER_FACTOR_CACHE_MB"
DEFAULT_CAP_MB = 4096
SUFFIX = ".safetensors"

Progress = Callable[[float, str], None]
StatsProvider = Callable[[], tuple[dict[str, ActivationStats], int]]


def store_dir() -> Path:
    return cache_dir("factors")


def cap_bytes() -> int:
    """The size cap in bytes, from EIGEN_EXPLORER_FACTOR_CACHE_MB (default DEFAULT_CAP_MB; 0 disables)."""
    raw = os.environ.get(CAP_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_CAP_MB
    except ValueError:
        mb = DEFAULT_CAP_MB
    return max(int(mb * 1024 * 1024), 0)


def factor_key(
    fingerprint: str,
    method: str,
    calibration_key: str,
    kinds,
    *,
    layers=None,
    ridge: float = RIDGE,
    usable_only: bool = False,
) -> str:
    """A hex key naming one factorization; any change of its inputs changes it (``usable_only``: the factors
    truncated to the ranks that save parameters, ``usable_factors``; absent from the key when False, so the
    keys of full factorizations are those of earlier versions)."""
    spec = {
        "version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "method": method,
        "calibration": calibration_key,
        "kinds": sorted(kinds),
        "layers": None if layers is None else sorted(int(x) for x in layers),
        "ridge": repr(float(ridge)),
    }
    if usable_only:
        spec["usable_only"] = True
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:40]


def path_for(key: str) -> Path:
    return store_dir() / f"factors-v{FORMAT_VERSION}-{key}{SUFFIX}"


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def save_factorization(fact: Factorization, path: Path) -> None:
    """Write ``fact`` as one safetensors file, atomically (temporary name, then rename)."""
    tensors: dict[str, torch.Tensor] = {}
    matrices = []
    for i, f in enumerate(fact.matrices):
        tensors[f"{i}.U"] = f.U.contiguous()
        tensors[f"{i}.B"] = f.B.contiguous()
        tensors[f"{i}.sigma"] = _as_tensor(f.sigma)
        tensors[f"{i}.weight_tail"] = _as_tensor(f.weight_tail)
        tensors[f"{i}.plain_tail"] = _as_tensor(f.plain_tail)
        if f.output_tail is not None:
            tensors[f"{i}.output_tail"] = _as_tensor(f.output_tail)
        matrices.append(
            {
                "name": f.name,
                "module": f.module,
                "kind": f.kind,
                "layer": f.layer,
                "shape": list(f.shape),
                "output_norm2": f.output_norm2,  # a Python float: json writes the shortest exact repr
                "n_bias": f.n_bias,
                "calibrated": f.calibrated,
            }
        )
    meta = {
        "version": FORMAT_VERSION,
        "method": fact.method,
        "calibration_tokens": fact.calibration_tokens,
        "notes": list(fact.notes),
        "matrices": matrices,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"explorer": json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_factorization(path: Path) -> Factorization | None:
    """Read a file written by ``save_factorization``; None when it is missing, of another format or broken."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})["explorer"])
        if meta.get("version") != FORMAT_VERSION:
            return None
        tensors = load_file(str(path))
        matrices = []
        for i, m in enumerate(meta["matrices"]):
            out_tail = tensors.get(f"{i}.output_tail")
            matrices.append(
                MatrixFactors(
                    name=m["name"],
                    module=m["module"],
                    kind=m["kind"],
                    layer=m["layer"],
                    shape=(int(m["shape"][0]), int(m["shape"][1])),
                    U=tensors[f"{i}.U"],
                    B=tensors[f"{i}.B"],
                    sigma=tensors[f"{i}.sigma"].numpy(),
                    weight_tail=tensors[f"{i}.weight_tail"].numpy(),
                    plain_tail=tensors[f"{i}.plain_tail"].numpy(),
                    output_tail=None if out_tail is None else out_tail.numpy(),
                    output_norm2=m["output_norm2"],
                    n_bias=int(m["n_bias"]),
                    calibrated=bool(m["calibrated"]),
                )
            )
        return Factorization(
            meta["method"], tuple(matrices), int(meta["calibration_tokens"]), tuple(meta["notes"])
        )
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError, RuntimeError):
        return None


def usable_factors(fact: Factorization) -> Factorization:
    """``fact`` with each matrix's U and B cut to the ranks that save parameters, 1 .. the largest k with
    k(m + n) < mn (at least 1), so a matrix's stored factors take at most about half the dense matrix's bytes
    (for a square one) instead of up to twice them. sigma and the error tails stay whole (they are small and
    say what every rank would cost); ``factors(k)`` and ``clamp`` then stop at the usable rank."""
    matrices = []
    for f in fact.matrices:
        top = max(min(largest_factored_rank(f.shape), f.max_rank), 1)
        if top == f.max_rank:
            matrices.append(f)
            continue
        matrices.append(
            MatrixFactors(
                name=f.name,
                module=f.module,
                kind=f.kind,
                layer=f.layer,
                shape=f.shape,
                U=f.U[:, :top].contiguous(),
                B=f.B[:top].contiguous(),
                sigma=f.sigma,
                weight_tail=f.weight_tail,
                plain_tail=f.plain_tail,
                output_tail=f.output_tail,
                output_norm2=f.output_norm2,
                n_bias=f.n_bias,
                calibrated=f.calibrated,
            )
        )
    return Factorization(fact.method, tuple(matrices), fact.calibration_tokens, fact.notes)


def _entries(directory: Path) -> list[tuple[float, int, Path]]:
    """(modification time, size, path) of the store's files; files vanishing meanwhile are skipped."""
    out = []
    for path in directory.glob(f"factors-*{SUFFIX}"):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((st.st_mtime, st.st_size, path))
    return out


def evict(cap: int | None = None, keep: Path | None = None, directory: Path | None = None) -> list[Path]:
    """Delete least recently used files until the store holds at most ``cap`` bytes (``keep`` last of all,
    and only when it alone is over the cap). Returns the deleted paths."""
    cap = cap_bytes() if cap is None else cap
    directory = store_dir() if directory is None else directory
    entries = sorted(_entries(directory), key=lambda e: (e[2] == keep, e[0]))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, path in entries:
        if total <= cap:
            break
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass  # another process evicted it first
        total -= size
    return removed


def cached_factorize(
    model: torch.nn.Module,
    method: str,
    kinds,
    calibration_key: str,
    stats_provider: StatsProvider | None,
    *,
    layers=None,
    ridge: float = RIDGE,
    progress: Progress | None = None,
    usable_only: bool = False,
) -> tuple[Factorization, bool]:
    """(the factorization, read from disk?). On a miss the calibration statistics are gathered
    (``stats_provider``, only then: a hit needs no forward pass), the factors computed and stored.
    ``calibration_key`` must name the calibration data exactly (text hash and how it was cut).
    ``usable_only``: keep and store only the ranks that save parameters (``usable_factors``)."""
    cap = cap_bytes()
    key = factor_key(
        model_fingerprint(model),
        method,
        calibration_key,
        kinds,
        layers=layers,
        ridge=ridge,
        usable_only=usable_only,
    )
    path = path_for(key)
    if cap > 0:
        found = _read(path)
        if found is None and usable_only:  # the full factors (the report's, a bench's) hold the usable ones
            full_key = factor_key(
                model_fingerprint(model), method, calibration_key, kinds, layers=layers, ridge=ridge
            )
            full = _read(path_for(full_key))
            if full is not None:
                found = usable_factors(full)
                _store(found, path, cap)
        if found is not None:
            if progress is not None:
                progress(1.0, "Factors read from the disk cache.")
            return found, True
    stats, n_tokens = stats_provider() if stats_provider is not None else (None, 0)
    fact = factorize(
        model,
        method,
        kinds,
        stats,
        calibration_tokens=n_tokens,
        ridge=ridge,
        layers=layers,
        progress=progress,
    )
    if usable_only:
        fact = usable_factors(fact)
    if cap > 0:
        _store(fact, path, cap)
    return fact, False


def _read(path: Path) -> Factorization | None:
    """A stored factorization, its file marked as just used; None on a miss."""
    found = load_factorization(path)
    if found is not None:
        try:
            now = time.time()
            os.utime(path, (now, now))  # least recently *used*: a read counts
        except OSError:
            pass
    return found


def _store(fact: Factorization, path: Path, cap: int) -> None:
    try:
        save_factorization(fact, path)
        evict(cap, keep=path)
    except OSError:
        pass  # a full or read-only disk only costs the next visit a recomputation
