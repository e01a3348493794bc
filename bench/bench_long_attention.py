"""Benchmark: attention at long lengths (SmolLM2), each number beside its reference in the same run.

1. Grid metrics at 2,048 tokens: explorer.analysis.attention_long.long_grid_chunk on one layer's heads (entropy,
   sink mass, triangular check, |lambda_2| from the diagonal, stable rank with sigma_1 by power iteration) against
   a per-head numpy loop computing the same metrics the plain way (sigma_1 by numpy.linalg.norm(A, 2), i.e. a
   whole SVD). Target: at least 10x. The values are compared (stable rank within the power iteration's
   certified interval).
2. The top of one head's spectrum at 2,048 tokens: ARPACK top-k singular values (spec.krylov_singular) against a
   whole numpy SVD: the same values within the stated residual, and the time ratio.
3. A capture at --capture-tokens (default 4,096), with the grid reduced during the pass
   (capture_with_grid), in a fresh subprocess: wall time and peak resident memory (ru_maxrss, which torch's
   allocations count in; tracemalloc does not see them), beside the cost model's estimate.

Usage: .venv/bin/python bench/bench_long_attention.py [--tokens 2048] [--capture-tokens 4096] [--layer 5]
Wall and process CPU time are both printed: on a shared machine the wall ratio moves with the load.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.analysis.attention_long import (  # noqa: E402
    capture_with_grid,
    estimate_capture_cost,
    long_grid_chunk,
)
from explorer.models import load_model  # noqa: E402
from explorer.models.capture import capture  # noqa: E402
from explorer.spectra import attention_spectra as spec  # noqa: E402
from explorer.texts import example_texts  # noqa: E402

MODEL = "smollm2-135m"


def long_text(n_tokens: int, loaded) -> str:
    """The example texts repeated until the text has at least n_tokens tokens."""
    base = " ".join(example_texts().values())
    text = base
    while len(loaded.tokenizer(text)["input_ids"]) < n_tokens:
        text += " " + base
    return text


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def numpy_grid(A: np.ndarray, causal: bool) -> dict[str, np.ndarray]:
    """The same metrics as long_grid_chunk, one head at a time in plain numpy (float64 copies)."""
    rows = {k: [] for k in ("entropy", "sink_mass", "triangular", "lambda2_abs", "stable_rank")}
    n = A.shape[-1]
    allowed = np.arange(1, n + 1) if causal else np.full(n, n)
    for head in A:
        M = head.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(M > 0, M * np.log(M), 0.0)
        per_row = -plogp.sum(1)
        usable = allowed >= 2
        rows["entropy"].append((per_row[usable] / np.log(allowed[usable])).mean())
        rows["sink_mass"].append(M[:, 0].mean())
        triangular = bool(np.all(np.triu(M, 1) == 0))
        rows["triangular"].append(triangular)
        rows["lambda2_abs"].append(np.sort(np.abs(np.diag(M)))[-2] if triangular else np.nan)
        rows["stable_rank"].append((M**2).sum() / np.linalg.norm(M, 2) ** 2)
    return {k: np.asarray(v) for k, v in rows.items()}


def bench_grid(loaded, n_tokens: int, layer: int, heads: int | None = None) -> dict:
    text = long_text(n_tokens, loaded)
    cap = capture(loaded, text, n_tokens)
    A = np.array(cap.attentions[layer][:heads])  # (head, T, T) float32, a writable copy
    fast, fast_wall, fast_cpu = timed(lambda: long_grid_chunk(torch.from_numpy(A), True))
    slow, slow_wall, slow_cpu = timed(lambda: numpy_grid(A, True))
    for name in ("entropy", "sink_mass", "lambda2_abs"):
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-5)
    assert (fast["stable_rank_low"] <= slow["stable_rank"] * (1 + 1e-5)).all()
    worst = float(np.max(np.abs(fast["stable_rank"] / slow["stable_rank"] - 1)))
    return {
        "n_tokens": n_tokens, "layer": layer, "heads": int(A.shape[0]),
        "grid_wall_s": fast_wall, "grid_cpu_s": fast_cpu, "numpy_wall_s": slow_wall, "numpy_cpu_s": slow_cpu,
        "speedup_wall": slow_wall / fast_wall, "speedup_cpu": slow_cpu / fast_cpu,
        "stable_rank_worst_rel_err": worst, "power_iterations_max": int(fast["power_iterations"].max()),
    }, A  # fmt: skip


def bench_krylov(A: np.ndarray, k: int = 8) -> dict:
    M = A.astype(np.float64)
    (values, _U, _V, residuals), k_wall, k_cpu = timed(lambda: spec.krylov_singular(M, k))
    full, f_wall, f_cpu = timed(lambda: np.linalg.svd(M, compute_uv=False))
    # Weyl: each Krylov value is within its residual of a singular value; numpy's own error is c n eps sigma_1.
    numpy_error = 10 * M.shape[0] * np.finfo(np.float64).eps * full[0]
    diff = np.abs(values - full[:k])
    assert np.all(diff <= residuals + numpy_error), (diff, residuals)
    return {
        "k": k, "krylov_wall_s": k_wall, "krylov_cpu_s": k_cpu, "svd_wall_s": f_wall, "svd_cpu_s": f_cpu,
        "speedup_wall": f_wall / k_wall, "max_abs_diff": float(diff.max()), "max_residual": float(residuals.max()),
    }  # fmt: skip


def capture_child(n_tokens: int) -> None:
    """Run in a fresh process: load, capture with the grid, print JSON with wall time and peak RSS."""
    loaded = load_model(MODEL, device="cpu")
    text = long_text(n_tokens, loaded)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    (cap, grid), wall, cpu = timed(lambda: capture_with_grid(loaded, text, n_tokens))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _layer, layer_wall, _ = timed(lambda: cap.attentions[15, 3])
    cost = estimate_capture_cost(loaded, n_tokens)
    print(json.dumps({
        "n_tokens": cap.n_tokens, "capture_wall_s": wall, "capture_cpu_s": cpu, "peak_rss_gb": peak / 2**30,
        "rss_after_load_gb": base / 2**30, "one_layer_recompute_s": layer_wall,
        "estimate_s": cost.seconds, "estimate_peak_above_model_gb": cost.peak_bytes / 2**30,
        "not_offered": list(grid.not_offered),
    }))  # fmt: skip


def bench_capture(n_tokens: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n_tokens)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--capture-tokens", type=int, default=4096)
    parser.add_argument("--layer", type=int, default=5)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--skip-capture", action="store_true")
    parser.add_argument("--heads", type=int, help="only the first HEADS heads of the layer (a quicker ratio)")
    args = parser.parse_args()
    if args.child:
        capture_child(args.child)
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    loaded = load_model(MODEL, device="cpu")
    grid, A = bench_grid(loaded, args.tokens, args.layer, args.heads)
    print("grid", json.dumps(grid), flush=True)
    print("krylov", json.dumps(bench_krylov(A[0])), flush=True)
    if not args.skip_capture:
        print("capture", json.dumps(bench_capture(args.capture_tokens)), flush=True)


if __name__ == "__main__":
    main()
