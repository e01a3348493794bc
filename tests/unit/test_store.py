"""The one disk store (explorer/store.py): round trips by declared type, layouts that read as missing, the cap."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from explorer import store


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(store.CAP_ENV, raising=False)
    return tmp_path


@dataclass(frozen=True)
class Point:
    name: str
    value: float
    flags: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Result:
    sigma: np.ndarray
    eig: np.ndarray
    factors: dict[str, torch.Tensor]
    points: tuple[Point, ...]
    by_key: dict[tuple[int, str], float]
    names: np.ndarray
    best: Point | None = None
    note: str = ""
    extra: list[int] = field(default_factory=list)


def _result(rng) -> Result:
    return Result(
        sigma=rng.standard_normal((3, 5)),
        eig=rng.standard_normal(4) + 1j * rng.standard_normal(4),
        factors={"A": torch.randn(3, 2, dtype=torch.float32), "B": torch.randn(2, 3, dtype=torch.float64)},
        points=(Point("a", 1.5, (True,)), Point("b", float("nan")), Point("c", float("-inf"))),
        by_key={(0, "mlp"): 0.25, (3, "attn"): 2.0},
        names=np.array(["q", "k", "vee"]),
        best=None,
        note="ünïcode",
        extra=[1, 2],
    )


def test_round_trip_is_exact_and_arrays_come_back_read_only():
    rng = np.random.default_rng(0)
    value = _result(rng)
    entry = store.Entry("unit", 1, {"model": "tiny", "text": "abc", "k": 3})
    path = store.save(entry, value)
    assert path is not None and path.name.startswith("unit-s1-v1-") and path.suffix == ".safetensors"
    back = store.load(entry, Result)
    np.testing.assert_array_equal(back.sigma, value.sigma)
    assert back.sigma.dtype == np.float64 and not back.sigma.flags.writeable
    np.testing.assert_array_equal(back.eig, value.eig)
    assert back.eig.dtype == np.complex128
    for name in ("A", "B"):
        assert back.factors[name].dtype == value.factors[name].dtype
        assert torch.equal(back.factors[name], value.factors[name])
    assert back.points[0] == Point("a", 1.5, (True,))
    assert np.isnan(back.points[1].value) and back.points[2].value == float("-inf")
    assert back.by_key == {(0, "mlp"): 0.25, (3, "attn"): 2.0}
    assert back.names.tolist() == ["q", "k", "vee"]
    assert back.best is None and back.note == "ünïcode" and back.extra == [1, 2]


def test_identity_and_version_name_the_file():
    a = store.Entry("unit", 1, {"k": 3, "text": "abc"})
    assert a.path == store.Entry("unit", 1, {"text": "abc", "k": 3}).path  # key order does not matter
    assert a.path != store.Entry("unit", 1, {"k": 4, "text": "abc"}).path
    assert a.path != store.Entry("unit", 2, {"k": 3, "text": "abc"}).path
    assert a.path != store.Entry("other", 1, {"k": 3, "text": "abc"}).path
    store.save(a, Point("x", 1.0))
    assert (
        store.load(store.Entry("unit", 2, {"k": 3, "text": "abc"}), Point) is None
    )  # a bump reads as missing


@dataclass(frozen=True)
class PointV2:
    name: str
    value: float
    weight: float  # a new required field: old entries must not be read as this


def test_another_layout_reads_as_missing():
    entry = store.Entry("unit", 1, "same")
    store.save(entry, Point("x", 1.0))
    assert store.load(entry, PointV2) is None
    assert store.load(entry, int) is None
    assert store.load(entry, Point) == Point("x", 1.0)


def test_unreadable_files_read_as_missing():
    entry = store.Entry("unit", 1, "broken")
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    entry.path.write_bytes(b"not a safetensors file")
    assert store.load(entry, Point) is None
    entry.path.write_bytes(b"")
    assert store.load(entry, Point) is None


def test_no_pickle_and_refuses_what_it_cannot_keep():
    with pytest.raises(TypeError):
        store.save(store.Entry("unit", 1, "obj"), object())
    with pytest.raises(TypeError):
        store.save(store.Entry("unit", 1, "objarr"), np.array([object()], dtype=object))


def _fill(kind: str, count: int, nbytes: int) -> list:
    paths = []
    for i in range(count):
        paths.append(store.save(store.Entry(kind, 1, i), np.zeros(nbytes // 8)))
        os.utime(paths[-1], (1_000_000 + i, 1_000_000 + i))  # distinct ages, oldest first
    return paths


def test_the_cap_holds_the_whole_cache_dir_least_recently_used_first(cache_home, monkeypatch):
    monkeypatch.setenv(store.CAP_ENV, "1")  # 1 MiB
    models = cache_home / "eigen-explorer" / "models"
    models.mkdir(parents=True)
    (models / "big.safetensors").write_bytes(b"\0" * 3_000_000)  # model files are outside the cap
    other = cache_home / "eigen-explorer" / "factors"
    other.mkdir(parents=True)
    (other / "old.safetensors").write_bytes(b"\0" * 400_000)
    os.utime(other / "old.safetensors", (10, 10))  # the oldest file of all: any area counts
    paths = _fill("unit", 5, 300_000)
    cap = store.cap_bytes()
    assert store.cache_bytes() <= cap
    assert (models / "big.safetensors").exists() and not (other / "old.safetensors").exists()
    assert paths[-1].exists() and not paths[0].exists()  # the newest kept, the oldest gone
    # A read refreshes a file's time: it outlives an unread one written after it.
    monkeypatch.setenv(store.CAP_ENV, "100")
    survivors = [p for p in paths if p.exists()]
    assert len(survivors) >= 2
    first = survivors[0]
    assert store.load(store.Entry("unit", 1, paths.index(first)), np.ndarray) is not None
    monkeypatch.setenv(store.CAP_ENV, "1")
    store.save(store.Entry("unit", 1, "new"), np.zeros(300_000 // 8))
    assert first.exists()


def test_a_single_entry_larger_than_the_cap_is_kept_until_the_next_write(monkeypatch):
    monkeypatch.setenv(store.CAP_ENV, "0.1")
    entry = store.Entry("unit", 1, "huge")
    path = store.save(entry, np.zeros(100_000))
    assert path.exists()  # "plus the one entry being written"


def test_zero_keeps_nothing(monkeypatch):
    monkeypatch.setenv(store.CAP_ENV, "0")
    entry = store.Entry("unit", 1, "off")
    assert store.save(entry, Point("x", 1.0)) is None and store.load(entry, Point) is None


def test_a_disk_that_refuses_costs_a_recomputation_not_an_error(monkeypatch):
    from safetensors import SafetensorError

    def refuse(tensors, filename, metadata=None):
        with open(filename, "wb") as half:  # a partial write, then the library's own error
            half.write(b"\0" * 10)
        raise SafetensorError("No space left on device")

    monkeypatch.setattr(store, "save_file", refuse)
    entry = store.Entry("unit", 1, "refused")
    assert store.save(entry, Point("x", 1.0)) is None
    assert not list(entry.path.parent.glob(".*.tmp"))  # no temporary left outside the cap
    assert store.load(entry, Point) is None


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "lots"])
def test_a_cap_that_names_no_size_falls_back_to_the_default(monkeypatch, raw):
    monkeypatch.setenv(store.CAP_ENV, raw)
    assert store.cap_bytes() == store.DEFAULT_CAP_MB * 1024 * 1024
