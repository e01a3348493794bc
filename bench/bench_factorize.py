"""Benchmark of the factorization of SmolLM2's MLP matrices (90 of them), in one run:

  * per method, the direct route (float32 SVD + float64 QR) against the Gram route (float64 eigh of the smaller
    Gram matrix), reported with their ratio, and the largest difference of their relative calibration output
    errors at every rank up to break-even (what truncation keeps);
  * the disk store (explorer.analysis.factor_store): a cold call (calibration pass + factorization + write)
    against a warm one (read back), in a temporary cache directory so the user's cache is not touched.

Usage: .venv/bin/python bench/bench_factorize.py [--model smollm2-135m] [--layers 0 3 ...] [--threads N]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from explorer import store  # noqa: E402
from explorer.analysis import compression as comp  # noqa: E402
from explorer.analysis import factor_store  # noqa: E402
from explorer.analysis.lowrank import METHODS, factorize  # noqa: E402
from explorer.models import load_model  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench(model_id: str = "smollm2-135m", layers=None, log=print) -> dict:
    loaded = load_model(model_id, device="cpu")
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    text = comp.shipped_calibration_text()
    (stats, n_tokens), calib_s = _timed(
        lambda: comp.collect_activation_stats(loaded, comp.calibration_chunks(loaded, text), kinds)
    )
    out: dict = {
        "model": model_id,
        "threads": torch.get_num_threads(),
        "calibration_s": calib_s,
        "methods": {},
    }
    log(
        f"{model_id}: calibration pass {calib_s:.1f} s ({n_tokens} tokens), {torch.get_num_threads()} threads"
    )
    for method in METHODS:
        direct, direct_s = _timed(
            lambda m=method: factorize(
                loaded.model, m, kinds, stats, calibration_tokens=n_tokens, route="direct", layers=layers
            )
        )
        gram, gram_s = _timed(
            lambda m=method: factorize(
                loaded.model, m, kinds, stats, calibration_tokens=n_tokens, route="gram", layers=layers
            )
        )
        diff = 0.0
        for a, b in zip(direct.matrices, gram.matrices, strict=True):
            top = int(a.break_even) + 1
            diff = max(
                diff, float(np.max(np.abs(a.output_tail[:top] - b.output_tail[:top]) / a.output_tail[0]))
            )
        out["methods"][method] = {
            "direct_s": direct_s,
            "gram_s": gram_s,
            "speedup": direct_s / gram_s,
            "max_output_error_diff": diff,
        }
        log(
            f"  {method:7s} direct {direct_s:6.1f} s   gram {gram_s:6.1f} s   x{direct_s / gram_s:4.1f}   "
            f"max |difference| of relative output error^2 up to break-even {diff:.1e}"
        )
        del direct, gram
    stats.clear()
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = tmp
        try:
            key = comp.calibration_key_of(text)

            def provider():
                return comp.collect_activation_stats(loaded, comp.calibration_chunks(loaded, text), kinds)

            for method in METHODS:
                (_, hit_cold), cold_s = _timed(
                    lambda m=method: factor_store.cached_factorize(
                        loaded.model, m, kinds, key, provider, layers=layers
                    )
                )
                (_, hit_warm), warm_s = _timed(
                    lambda m=method: factor_store.cached_factorize(
                        loaded.model, m, kinds, key, provider, layers=layers
                    )
                )
                assert not hit_cold and hit_warm
                size = sum(p.stat().st_size for p in (store.store_root() / factor_store.KIND).iterdir())
                out["methods"][method].update(cold_s=cold_s, warm_s=warm_s)
                log(
                    f"  {method:7s} store: cold (calibration + factors + write) {cold_s:6.1f} s, warm read {warm_s:5.2f} s"
                )
            out["store_mb"] = size / 1e6
            log(f"  store holds {size / 1e6:.0f} MB for the three methods")
        finally:
            if old is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = old
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--layers", type=int, nargs="*", help="only these blocks (default: all)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = bench(args.model, args.layers)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
