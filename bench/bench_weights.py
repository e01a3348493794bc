"""Whole-model weight analysis: ours against a numpy per-matrix loop and WeightWatcher's analyze(), same run.

For each embedded model (MiniLM, SmolLM2) it times:
  ours, first visit   analysis.weights.compute_weight_spectra (batched by shape; every metric and the
                      power-law fits included), with the default "gram" route and with "svd" (float32 svdvals)
  ours, second visit  analysis.weights.weight_spectra reading the disk store (fingerprint + safetensors read)
  numpy loop          np.linalg.svd(W, compute_uv=False) on each matrix in turn (singular values only)
  WeightWatcher       ww.WeightWatcher(model=...).analyze() with its defaults (its SVDs + power-law fits)
and compares our alphas with WeightWatcher's, matrix by matrix (matched by module name).

With --memory it runs instead, each in a fresh process, the spectra streamed from the model's safetensors folder
(analysis.weights.compute_checkpoint_spectra: no model built) and the spectra of the loaded model (load_model +
compute_weight_spectra), and reports each one's time and peak resident memory (ru_maxrss), above the imports.

WeightWatcher is a bench-only dependency (bench/requirements.txt): without it that column is skipped.
Run:  HF_HUB_OFFLINE=1 /tmp/bench-venv/bin/python bench/bench_weights.py [--models ...] [--threads N]
Machines here are shared: the load average is printed with the results; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _threads_before_imports() -> None:
    """--threads N also caps numpy's BLAS (OpenBLAS/MKL read these variables once, at import), so every
    contender runs on the same number of threads."""
    if "--threads" in sys.argv:
        n = sys.argv[sys.argv.index("--threads") + 1]
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = n


_threads_before_imports()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from explorer import tasks  # noqa: E402
from explorer.analysis.matrices import weight_matrices  # noqa: E402
from explorer.analysis.weights import compute_weight_spectra, weight_spectra  # noqa: E402
from explorer.models import load_model  # noqa: E402
from explorer.spectra.heavy_tail import esd, fit_power_law  # noqa: E402


def timed(fn, repeat: int = 1):
    """(best wall time in seconds, last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def numpy_loop(model) -> list[np.ndarray]:
    return [np.linalg.svd(m.weight.detach().cpu().numpy(), compute_uv=False) for m in weight_matrices(model)]


def weightwatcher_analyze(model):
    """WeightWatcher's analyze() with its defaults, quiet. None when it is not installed."""
    try:
        import weightwatcher as ww
    except ImportError:
        return None
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return ww.WeightWatcher(model=model).analyze()


def compare_alphas(spectra, details, convention: str = "ours") -> dict:
    """Match WeightWatcher's rows to our matrices by module name; summarise |alpha_ours - alpha_ww|.

    convention "ours": the app's alphas (exact KS distance, tails of >= 10 points). "weightwatcher": our
    fit with its one-sided KS distance and tails down to 2 points, on our singular values."""
    if convention == "ours":
        alphas = spectra.alpha
    else:
        alphas = [
            float(fit_power_law(esd(s, tuple(shape)), ks="weightwatcher", min_tail=2).alpha)
            for s, shape in zip(spectra.sigma, spectra.shapes, strict=True)
        ]
    ours = {name: float(a) for name, a in zip(spectra.names, alphas, strict=True)}
    pairs = []
    for _, row in details.iterrows():
        name = str(row.get("longname", row.get("name")))
        if name in ours and np.isfinite(ours[name]) and np.isfinite(row["alpha"]) and row["alpha"] > 0:
            pairs.append((name, ours[name], float(row["alpha"])))
    if not pairs:
        return {"matched": 0}
    a = np.array([p[1] for p in pairs])
    b = np.array([p[2] for p in pairs])
    diff = np.abs(a - b)
    worst = pairs[int(diff.argmax())]
    return {
        "matched": len(pairs),
        "ours_total": len(spectra),
        "ww_total": int(len(details)),
        "median_abs_diff": float(np.median(diff)),
        "max_abs_diff": float(diff.max()),
        "within_0.1": float((diff <= 0.1).mean()),
        "within_0.5": float((diff <= 0.5).mean()),
        "pearson_r": float(np.corrcoef(a, b)[0, 1]) if len(pairs) > 2 else float("nan"),
        "median_alpha_ours": float(np.median(a)),
        "median_alpha_ww": float(np.median(b)),
        "worst": {"name": worst[0], "ours": worst[1], "ww": worst[2]},
    }


def bench_model(model_id: str, skip_ww: bool) -> dict:
    loaded = load_model(model_id, device="cpu")
    model = loaded.model
    mats = weight_matrices(model)
    out: dict = {
        "model": model_id,
        "matrices": len(mats),
        "parameters_in_matrices": int(sum(m.weight.numel() for m in mats)),
    }
    t_gram, spectra = timed(lambda: compute_weight_spectra(model, method="gram"))
    t_svd, spectra_svd = timed(lambda: compute_weight_spectra(model, method="svd"))
    t_numpy, reference = timed(lambda: numpy_loop(model))
    err = max(float(np.abs(s - r).max() / r[0]) for s, r in zip(spectra.sigma, reference, strict=True))
    err_svd = max(
        float(np.abs(s - r).max() / r[0]) for s, r in zip(spectra_svd.sigma, reference, strict=True)
    )
    with tempfile.TemporaryDirectory() as tmp:  # the disk cache, in a fresh place
        previous = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = tmp
        try:
            weight_spectra(model)  # computes and writes

            def second_visit():  # a restarted server: nothing in memory, the disk store read back
                tasks.BOARD = tasks.Board()
                return weight_spectra(model)

            t_cached, cached = timed(second_visit, repeat=3)
            assert cached.from_cache
        finally:
            if previous is None:
                del os.environ["XDG_CACHE_HOME"]
            else:
                os.environ["XDG_CACHE_HOME"] = previous
    out.update(
        ours_gram_s=t_gram,
        ours_svd_s=t_svd,
        numpy_loop_s=t_numpy,
        cached_second_visit_s=t_cached,
        max_rel_sigma_error_gram=err,
        max_rel_sigma_error_svd=err_svd,
    )
    if not skip_ww:
        t_ww, details = timed(lambda: weightwatcher_analyze(model))
        if details is not None:
            out["weightwatcher_analyze_s"] = t_ww
            out["alpha_vs_weightwatcher"] = compare_alphas(spectra, details)
            out["alpha_vs_weightwatcher_same_convention"] = compare_alphas(spectra, details, "weightwatcher")
    return out


def peak_child(mode: str, model_id: str) -> dict:
    """In this (fresh) process: the weight spectra streamed from the checkpoint files or of the loaded model;
    seconds and peak resident bytes (ru_maxrss) after the imports and at the end."""
    from explorer.analysis.weights import compute_checkpoint_spectra
    from explorer.models.checkpoint import Checkpoint, checkpoint_folder

    def peak() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports kilobytes

    baseline, start = peak(), time.perf_counter()
    if mode == "streamed":
        folder = checkpoint_folder(model_id)
        if folder is None:
            raise SystemExit(f"{model_id} has no safetensors folder to stream from (load it once first)")
        spectra = compute_checkpoint_spectra(Checkpoint.open(folder))
    else:
        spectra = compute_weight_spectra(load_model(model_id, device="cpu").model)
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "seconds": seconds,
        "baseline_bytes": baseline,
        "peak_bytes": peak(),
        "matrices": len(spectra),
    }


def bench_memory(model_id: str) -> dict:
    """Streamed against loaded, each in its own process (so each peak is its own)."""
    out = {}
    for mode in ("streamed", "loaded"):
        done = subprocess.run(
            [sys.executable, __file__, "--peak-child", mode, model_id],
            capture_output=True,
            text=True,
            check=True,
        )
        out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def report_memory(model_id: str, r: dict) -> None:
    print(f"\n== {model_id}: weight spectra streamed from the checkpoint files vs the loaded model")
    for mode, what in (("streamed", "streamed (no model built)"), ("loaded", "load_model + spectra")):
        m = r[mode]
        print(
            f"  {what:<28s} {m['seconds']:8.2f} s   peak RSS {m['peak_bytes'] / 2**20:7.0f} MB "
            f"(+{(m['peak_bytes'] - m['baseline_bytes']) / 2**20:.0f} MB over the imports)"
        )


def report(r: dict) -> None:
    print(f"\n== {r['model']}: {r['matrices']} matrices, {r['parameters_in_matrices'] / 1e6:.1f} M weights")
    best = min(r["ours_gram_s"], r["ours_svd_s"])
    rows = [
        ("ours, first visit (gram, default)", r["ours_gram_s"]),
        ("ours, first visit (float32 svdvals)", r["ours_svd_s"]),
        ("numpy per-matrix svd loop (values only)", r["numpy_loop_s"]),
    ]
    if "weightwatcher_analyze_s" in r:
        rows.append(("WeightWatcher analyze()", r["weightwatcher_analyze_s"]))
    rows.append(("ours, second visit (disk cache)", r["cached_second_visit_s"]))
    for name, seconds in rows:
        print(f"  {name:<42s} {seconds:8.2f} s   {seconds / r['ours_gram_s']:6.2f}x ours(gram)")
    print(f"  speed-up vs numpy loop: {r['numpy_loop_s'] / best:.2f}x (best of our two routes)")
    if "weightwatcher_analyze_s" in r:
        print(f"  speed-up vs WeightWatcher: {r['weightwatcher_analyze_s'] / r['ours_gram_s']:.2f}x (gram)")
    print(
        f"  max |sigma - numpy| / sigma_1: gram {r['max_rel_sigma_error_gram']:.1e}, "
        f"svd {r['max_rel_sigma_error_svd']:.1e}"
    )
    for key, what in (
        ("alpha_vs_weightwatcher", "app's fit (exact KS, tail >= 10)"),
        ("alpha_vs_weightwatcher_same_convention", "its convention (one-sided KS, tail >= 2)"),
    ):
        cmp = r.get(key)
        if not cmp or not cmp.get("matched"):
            continue
        print(
            f"  alpha vs WeightWatcher, {what}, {cmp['matched']} matched matrices: median |diff| "
            f"{cmp['median_abs_diff']:.3f} (max {cmp['max_abs_diff']:.3g}), within 0.1: {cmp['within_0.1']:.0%}, within 0.5: {cmp['within_0.5']:.0%}, "
            f"r = {cmp['pearson_r']:.3f}; median alpha ours {cmp['median_alpha_ours']:.2f} vs "
            f"{cmp['median_alpha_ww']:.2f}; largest gap {cmp['worst']['name']} "
            f"({cmp['worst']['ours']:.2f} vs {cmp['worst']['ww']:.2f})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip-weightwatcher", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="instead: time and peak memory of the spectra streamed from the checkpoint vs of the loaded model",
    )
    parser.add_argument("--peak-child", nargs=2, metavar=("MODE", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        print(json.dumps(peak_child(*args.peak_child)))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    if args.memory:
        results = [{"model": model_id, "memory": bench_memory(model_id)} for model_id in args.models]
        for r in results:
            report_memory(r["model"], r["memory"])
    else:
        results = [bench_model(model_id, args.skip_weightwatcher) for model_id in args.models]
        for r in results:
            report(r)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
