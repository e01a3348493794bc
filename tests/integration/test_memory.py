"""Memory: fifty compression what-ifs in a row, each at a different setting, through the same cached API the
compression page calls, leave the process's resident memory where it was after a short warm-up.

A what-if builds a compressed copy of the model's chosen matrices and runs it; if a copy, its activations or
a factorization outlived the what-if (a cache holding models, a reference cycle through a module, a leaked
hook), fifty of them on MiniLM would add hundreds of MB."""

from __future__ import annotations

import gc
import os

import pytest

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import METHODS
from explorer.models.choice import ModelChoice
from explorer.ui import compression_cache as cc
from explorer.ui.cache import cached_model

pytestmark = pytest.mark.slow
MODEL_KEY = ModelChoice("minilm-l6", device="cpu", allow_external=False)  # as ui.sidebar.Selection builds it
TEXT = (
    "The quick brown fox jumps over the lazy dog. Then the fox sleeps under the old oak tree all afternoon."
)
N_WHATIFS = 50
TOLERANCE = 0.10


def _rss_mb() -> float:
    """Current (not peak) resident set size of this process, MB, after a full garbage collection."""
    gc.collect()
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open(f"/proc/{os.getpid()}/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024


def _settings(kinds: tuple[str, ...]) -> list[tuple[str, comp.RankSetting]]:
    """N_WHATIFS different (method, setting) pairs, cycling through the methods and the three rank modes."""
    out = []
    for i in range(N_WHATIFS):
        method = METHODS[i % len(METHODS)]
        mode = comp.MODES[(i // len(METHODS)) % len(comp.MODES)]
        if mode == "rank":
            setting = comp.RankSetting(mode="rank", ranks=tuple((k, 2 + 5 * i) for k in kinds))
        elif mode == "energy":
            setting = comp.RankSetting(mode="energy", energy=round(0.5 + 0.009 * i, 3))
        else:
            setting = comp.RankSetting(mode="share", share=round(0.05 + 0.019 * i, 3))
        out.append((method, setting))
    assert len(set(out)) == N_WHATIFS
    return out


def _what_if(kinds, method: str, setting: comp.RankSetting) -> comp.Outcome:
    """One what-if as the page runs it: cached factors, then the compressed copy measured on the text."""
    return cc.cached_outcome(cc.LowRank(MODEL_KEY, method, kinds, cc.Calibration(), setting), TEXT, 512)


def test_fifty_what_ifs_leave_resident_memory_where_it_started():
    loaded = cached_model(MODEL_KEY)
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.kind_shapes(loaded.model))
    assert kinds, "MiniLM has MLP matrices to compress"
    # Warm-up: every method's factors, the calibration statistics, the reference outputs, torch's allocator
    # and kernels: what stays for the life of the server, not per what-if.
    for method in METHODS:
        _what_if(kinds, method, comp.RankSetting(mode="share", share=0.5))
        _what_if(kinds, method, comp.RankSetting(mode="energy", energy=0.9))
    start = _rss_mb()
    outcomes = []
    peak = start
    for i, (method, setting) in enumerate(_settings(kinds)):
        outcomes.append(_what_if(kinds, method, setting))
        if i % 10 == 9:
            peak = max(peak, _rss_mb())
    end = _rss_mb()
    change = (end - start) / start
    message = (
        f"RSS after warm-up {start:.1f} MB, after {N_WHATIFS} what-ifs {end:.1f} MB "
        f"({change:+.1%}; highest sample {peak:.1f} MB)"
    )
    print("\n" + message)
    # The what-ifs really were different and really compressed something.
    assert len({o.params_model_after for o in outcomes}) > N_WHATIFS // 2
    assert all(o.params_model_after != o.params_model_before for o in outcomes)
    assert abs(change) <= TOLERANCE, message
