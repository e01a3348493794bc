"""Factorizations on disk: computed once per (weights, method, calibration, groups), read back after a restart.

Each factorization is one entry of the disk store (``explorer.store``: safetensors for U, B and the error tails,
JSON for the rest; no pickle), of kind ``factors``, identified by the weights' fingerprint
(``explorer.analysis.weights.model_fingerprint``: every weight matrix's bytes, the class and config), the
method, the caller's calibration key (which text, how it was cut), the groups, the layers, the ridge and whether
only the usable ranks are kept. Changing any one gives another entry; bumping FORMAT_VERSION makes old entries
read as missing.

Size: the store holds the whole cache directory under one cap (``EIGEN_EXPLORER_CACHE_MB``, least recently used
first; a read refreshes an entry). The three methods' full factors of SmolLM2's MLP matrices take about 440 MB
each, the page's usable-rank cuts 320 MB each. ``EIGEN_EXPLORER_CACHE_MB=0`` keeps nothing on disk.

Concurrency: entries are written under a unique temporary name and renamed into place (atomic on POSIX), so a
reader sees a whole file or none; two processes computing the same key write identical content and the last
rename wins; an entry evicted by another process between listing and reading is a miss, not an error.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from explorer import store
from explorer.analysis.lowrank import RIDGE, ActivationStats, Factorization, MatrixFactors, factorize
from explorer.analysis.weights import model_fingerprint
from explorer.spectra.allocation import largest_factored_rank

FORMAT_VERSION = 2  # 1: the factor store's own safetensors layout, before the one store
KIND = "factors"

Progress = Callable[[float, str], None]
StatsProvider = Callable[[], tuple[dict[str, ActivationStats], int]]


def factor_entry(
    fingerprint: str,
    method: str,
    calibration_key: str,
    kinds,
    *,
    layers=None,
    ridge: float = RIDGE,
    usable_only: bool = False,
) -> store.Entry:
    """The store entry of one factorization; any change of its inputs changes it (``usable_only``: the factors
    truncated to the ranks that save parameters, ``usable_factors``)."""
    identity = {
        "fingerprint": fingerprint,
        "method": method,
        "calibration": calibration_key,
        "kinds": sorted(kinds),
        "layers": None if layers is None else sorted(int(x) for x in layers),
        "ridge": repr(float(ridge)),
        "usable_only": bool(usable_only),
    }
    return store.Entry(KIND, FORMAT_VERSION, identity)


def factor_key(fingerprint: str, method: str, calibration_key: str, kinds, **kw) -> str:
    """A hex key naming one factorization (the digest of its entry's identity)."""
    return store.digest(factor_entry(fingerprint, method, calibration_key, kinds, **kw).identity)


def save_factorization(fact: Factorization, entry: store.Entry) -> None:
    """Write ``fact`` as ``entry`` of the disk store (atomically; the cache then held under its cap)."""
    store.save(entry, fact)


def load_factorization(entry: store.Entry) -> Factorization | None:
    """The factorization stored as ``entry``; None when it is missing, of another layout or broken."""
    return store.load(entry, Factorization)


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
    fingerprint = model_fingerprint(model)
    entry = factor_entry(
        fingerprint, method, calibration_key, kinds, layers=layers, ridge=ridge, usable_only=usable_only
    )
    if store.enabled():
        found = load_factorization(entry)
        if found is None and usable_only:  # the full factors (the report's, a bench's) hold the usable ones
            full = load_factorization(
                factor_entry(fingerprint, method, calibration_key, kinds, layers=layers, ridge=ridge)
            )
            if full is not None:
                found = usable_factors(full)
                save_factorization(found, entry)
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
    save_factorization(fact, entry)
    return fact, False
