"""Measured results kept through the one store (explorer/ui/result_store.py): lists of nested frozen dataclasses
come back equal, float for float (NaN, infinities and None included); a missing, corrupt or other-layout file reads
as missing; the name changes with anything in the identity."""

import math

from explorer.analysis.compression import Quality, SweepPoint
from explorer.analysis.quantize import TradeoffPoint
from explorer.ui import result_store


def _quality(ppl, kl=0.1, causal=True):
    return Quality(causal, ppl, kl, None, None, 12.5, 512)


POINTS = [
    SweepPoint(
        "svdllm",
        0.95,
        398.5,
        130_400_000,
        134_515_008,
        _quality(70.21929, 0.1 + 0.2),
        "uniform",
        79_626_240,
        75_644_928,
        0.012345678901234567,
    ),  # fmt: skip
    SweepPoint("svd", 0.25, 104.0, 80_000_000, 134_515_008, _quality(float("inf"), float("nan")), "greedy"),
    SweepPoint("asvd", 0.5, 209.0, 100_000_000, 134_515_008, _quality(1e25), calib_output_error=None),
]


def test_sweep_points_round_trip_float_for_float(cache_home):
    path = result_store.result_path("sweep", {"weights": "abc", "kinds": ["mlp_up"]})
    assert path.parent == cache_home / "eigen-explorer" / "store" / "sweep"
    result_store.save(path, POINTS)
    back = result_store.load(path, SweepPoint)
    assert back[0] == POINTS[0] and back[2] == POINTS[2]  # exact: JSON writes a float's shortest repr
    assert back[0].quality.kl == 0.1 + 0.2 and isinstance(back[0].quality, Quality)
    assert back[1].quality.perplexity == math.inf and math.isnan(back[1].quality.kl)
    assert [type(p.params_model_after) for p in back] == [int] * 3
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def test_tradeoff_points_round_trip(cache_home):
    points = [TradeoffPoint("int8", "int8 per row", 190_000_000, _quality(25.64)),
              TradeoffPoint("4-bit + offset, groups of 32", "own grid", 95_000_000, _quality(25.53), True)]  # fmt: skip
    path = result_store.result_path("fewer-bits", {"weights": "abc"})
    result_store.save(path, points)
    assert result_store.load(path, TradeoffPoint) == points


def test_missing_corrupt_or_other_layout_reads_as_missing(cache_home):
    path = result_store.result_path("sweep", {"weights": "abc"})
    assert result_store.load(path, SweepPoint) is None
    result_store.save(path, POINTS)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # cut off mid-write by another tool
    assert result_store.load(path, SweepPoint) is None
    result_store.save(path, [{"method": "svd", "colour": "red"}])  # a field this code does not know
    assert result_store.load(path, SweepPoint) is None
    result_store.save(path, [{"method": "svd"}])  # fields missing
    assert result_store.load(path, SweepPoint) is None
    result_store.save(path, POINTS)
    assert result_store.load(path, TradeoffPoint) is None  # another type altogether


def test_the_name_follows_the_identity(cache_home):
    base = {"weights": "abc", "kinds": ["mlp_up"], "tokens": 512}
    names = {
        result_store.result_path("sweep", base),
        result_store.result_path("sweep", {**base, "weights": "abd"}),
        result_store.result_path("sweep", {**base, "kinds": ["mlp_up", "mlp_down"]}),
        result_store.result_path("sweep", {**base, "tokens": 256}),
        result_store.result_path("fewer-bits", base),
    }
    assert len(names) == 5
    assert result_store.result_path("sweep", dict(reversed(base.items()))) == result_store.result_path(
        "sweep", base
    )
