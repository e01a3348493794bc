"""The factor store: bit-identical round trips through the one disk store, keys that follow the weights, the
one cap, concurrent writers, and the loaded model left untouched (LRU eviction itself: tests/unit/test_store.py)."""

import copy
import threading

import numpy as np
import pytest
import torch

from explorer import store as disk
from explorer.analysis import compression as comp
from explorer.analysis import factor_store as store
from explorer.analysis.lowrank import factorize
from explorer.analysis.matrices import weights_checksum
from explorer.analysis.weights import model_fingerprint

KINDS = ("mlp_up", "mlp_down", "attn_q")


@pytest.fixture(scope="module")
def calibrated(load):
    loaded = load("tiny-llama")
    chunks = comp.calibration_chunks(loaded, comp.shipped_calibration_text(), 64)[:2]
    return loaded, comp.collect_activation_stats(loaded, chunks, KINDS)


def _assert_identical(a, b):
    assert (a.method, a.calibration_tokens, a.notes) == (b.method, b.calibration_tokens, b.notes)
    assert len(a.matrices) == len(b.matrices)
    for x, y in zip(a.matrices, b.matrices, strict=True):
        assert (x.name, x.module, x.kind, x.layer, x.shape, x.n_bias, x.calibrated) == (
            y.name,
            y.module,
            y.kind,
            y.layer,
            y.shape,
            y.n_bias,
            y.calibrated,
        )
        assert x.U.dtype == y.U.dtype and torch.equal(x.U, y.U) and torch.equal(x.B, y.B)
        for field in ("sigma", "weight_tail", "plain_tail"):
            u, v = getattr(x, field), getattr(y, field)
            assert u.dtype == v.dtype and u.tobytes() == v.tobytes()
        assert (x.output_tail is None) == (y.output_tail is None)
        if x.output_tail is not None:
            assert x.output_tail.tobytes() == y.output_tail.tobytes()
        assert x.output_norm2 == y.output_norm2


@pytest.mark.parametrize("method", ["svd", "svdllm"])
def test_round_trip_is_bit_identical(cache_home, calibrated, method):
    loaded, (stats, n_tokens) = calibrated
    fact = factorize(loaded.model, method, KINDS, stats, calibration_tokens=n_tokens)
    entry = store.factor_entry("fp", method, "roundtrip", KINDS)
    store.save_factorization(fact, entry)
    _assert_identical(fact, store.load_factorization(entry))
    assert not [p for p in entry.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_uncalibrated_round_trip(cache_home, load):
    fact = factorize(load("tiny-gpt2").model, "asvd", ("mlp_up",))  # falls back to plain SVD, with a note
    entry = store.factor_entry("fp", "asvd", "plain", ("mlp_up",))
    store.save_factorization(fact, entry)
    _assert_identical(fact, store.load_factorization(entry))


def test_cached_factorize_reads_back_and_leaves_the_model_unchanged(cache_home, calibrated):
    loaded, (stats, n_tokens) = calibrated
    before = weights_checksum(loaded.model)
    calls = []

    def provider():
        calls.append(1)
        return stats, n_tokens

    first, hit1 = store.cached_factorize(loaded.model, "asvd", KINDS, "cal-a", provider)
    second, hit2 = store.cached_factorize(loaded.model, "asvd", KINDS, "cal-a", provider)
    assert (hit1, hit2) == (False, True) and len(calls) == 1  # a hit needs no calibration pass
    _assert_identical(first, second)
    _assert_identical(first, factorize(loaded.model, "asvd", KINDS, stats, calibration_tokens=n_tokens))
    other, hit3 = store.cached_factorize(loaded.model, "asvd", KINDS, "cal-b", provider)
    assert not hit3  # another calibration is another entry
    assert weights_checksum(loaded.model) == before


def test_the_key_changes_when_one_weight_changes(load):
    model = load("tiny-llama").model
    changed = copy.deepcopy(model)
    with torch.no_grad():
        w = changed.model.layers[1].mlp.down_proj.weight
        w[3, 5] = torch.nextafter(w[3, 5], torch.tensor(np.inf))  # the smallest change a float32 can make
    keys = {store.factor_key(model_fingerprint(m), "svdllm", "cal", KINDS) for m in (model, changed)}
    assert len(keys) == 2
    base = store.factor_key(model_fingerprint(model), "svdllm", "cal", KINDS)
    assert base == store.factor_key(model_fingerprint(model), "svdllm", "cal", tuple(reversed(KINDS)))
    variants = [
        store.factor_key(model_fingerprint(model), "asvd", "cal", KINDS),
        store.factor_key(model_fingerprint(model), "svdllm", "cal2", KINDS),
        store.factor_key(model_fingerprint(model), "svdllm", "cal", KINDS[:2]),
        store.factor_key(model_fingerprint(model), "svdllm", "cal", KINDS, layers=(0,)),
        store.factor_key(model_fingerprint(model), "svdllm", "cal", KINDS, ridge=0.5),
    ]
    assert len({base, *variants}) == 6


def _factor_files():
    folder = disk.store_root() / store.KIND
    return list(folder.iterdir()) if folder.exists() else []


def test_the_one_cap_comes_from_the_environment(cache_home, calibrated, monkeypatch):
    assert disk.cap_bytes() == disk.DEFAULT_CAP_MB * 1024 * 1024
    monkeypatch.setenv(disk.CAP_ENV, "0")
    loaded, (stats, n_tokens) = calibrated
    _, hit = store.cached_factorize(loaded.model, "svd", KINDS, "c", lambda: (stats, n_tokens))
    _, hit = store.cached_factorize(loaded.model, "svd", KINDS, "c", lambda: (stats, n_tokens))
    assert not hit and not _factor_files()  # 0 turns the store off


def test_concurrent_writers_leave_one_whole_file(cache_home, calibrated):
    loaded, (stats, n_tokens) = calibrated
    results, errors = [], []

    def work():
        try:
            results.append(
                store.cached_factorize(loaded.model, "svdllm", KINDS, "conc", lambda: (stats, n_tokens))
            )
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    files = _factor_files()
    assert len(files) == 1 and files[0].suffix == disk.SUFFIX
    on_disk = store.load_factorization(
        store.factor_entry(model_fingerprint(loaded.model), "svdllm", "conc", KINDS)
    )
    for fact, _ in results:
        _assert_identical(fact, on_disk)


def test_factorize_model_uses_the_store(cache_home, calibrated):
    loaded, (stats, n_tokens) = calibrated
    key = comp.calibration_key_of(comp.shipped_calibration_text(), 64)
    a = comp.factorize_model(loaded, "svdllm", KINDS, stats, n_tokens, calibration_key=key)
    assert len(_factor_files()) == 1
    b = comp.factorize_model(loaded, "svdllm", KINDS, None, 0, calibration_key=key)  # no stats needed now
    _assert_identical(a, b)
