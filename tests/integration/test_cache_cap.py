"""The one cache cap (EIGEN_EXPLORER_CACHE_MB) holds the whole cache directory, model files aside, after the work
the report keeps on disk (every model's weight spectra and its three methods' factors on the shipped calibration
set), repeated as three report runs per model would do it, each in a "new process" (an empty task board)."""

from __future__ import annotations

from pathlib import Path

from explorer import store, tasks
from explorer.analysis import compression as comp
from explorer.analysis.weights import weight_spectra
from tests.conftest import get_model

MODELS = ("tiny-gpt2", "tiny-bert")
KINDS = ("mlp_up", "mlp_down")
RUNS = 3


def _kept(cache: Path) -> list[Path]:
    root = cache / "eigen-explorer"
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] not in store.UNCOUNTED]


def _what_the_report_keeps(monkeypatch) -> None:
    for model_id in MODELS:
        loaded = get_model(model_id)
        for _ in range(RUNS):
            monkeypatch.setattr(tasks, "BOARD", tasks.Board())  # a new report process: memory empty
            weight_spectra(loaded.model)
            comp.shipped_factorizations(loaded, KINDS)


def test_the_cap_holds_the_cache_dir_after_the_reports_work(cache_home, monkeypatch):
    # Uncapped first: how much the runs keep, and the largest single entry.
    _what_the_report_keeps(monkeypatch)
    sizes = [p.stat().st_size for p in _kept(cache_home)]
    total, largest = sum(sizes), max(sizes)
    assert len(sizes) == len(MODELS) * 4  # weight spectra and three factorizations per model, each kept once
    cap = total // 2  # the cap must bite
    assert cap > largest

    capped = cache_home / "capped"
    monkeypatch.setenv("XDG_CACHE_HOME", str(capped))
    monkeypatch.setenv(store.CAP_ENV, repr(cap / 2**20))
    writes: list[int] = []
    original = store.write

    def watched(path, value, **kw):  # the cap must hold after every single write, not only at the end
        written = original(path, value, **kw)
        writes.append(sum(p.stat().st_size for p in _kept(capped)))
        return written

    monkeypatch.setattr(store, "write", watched)
    _what_the_report_keeps(monkeypatch)
    assert writes and max(writes) <= cap  # every entry is smaller than the cap, so nothing may stand over it
    assert sum(p.stat().st_size for p in _kept(capped)) <= cap
    assert len(_kept(capped)) < len(sizes)  # something was evicted
