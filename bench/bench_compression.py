"""Benchmark of the compression what-if on SmolLM2-135M (CPU unless --device says otherwise).

Measures, on the shipped held-out passage cut to --tokens tokens (default 256):
  * rank change -> updated quality: choose ranks, build the factored copy from cached factors, run it,
    compute perplexity and KL (what the page does when a slider moves; target < 2 s);
    printed with its ratio to the baseline, one forward pass of the original model on the same tokens;
  * one-time costs: calibration activations (shipped set) and the factorization of the MLP matrices per method;
  * the Pareto sweep (3 methods x 4 ranks): its evaluation time with factors cached, and its total from scratch;
  * the quality numbers the issue asks for: perplexity and KL of each method with every MLP matrix at half its
    break-even rank, and the parameter share kept.

Usage: .venv/bin/python bench/bench_compression.py [--tokens 256] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from explorer.analysis import compression as comp  # noqa: E402
from explorer.analysis.lowrank import METHOD_LABELS, METHODS  # noqa: E402
from explorer.models import load_model  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3, help="rank changes timed per method")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict = {"model": args.model, "tokens": args.tokens, "threads": torch.get_num_threads()}

    loaded, out["load_s"] = _timed(lambda: load_model(args.model, device=args.device))
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    evalset = comp.make_eval_set(loaded, comp.heldout_text(), args.tokens)
    comp.reference(loaded, evalset)  # warm-up
    baselines = [comp.reference(loaded, evalset) for _ in range(args.repeats)]
    ref = baselines[-1]
    baseline_s = statistics.median(b.quality.latency_ms for b in baselines) / 1e3
    out["baseline_forward_s"] = baseline_s
    out["original_perplexity"] = ref.quality.perplexity
    print(
        f"{args.model} on {evalset.n_tokens} tokens, {torch.get_num_threads()} threads, device {loaded.device}"
    )
    print(
        f"baseline: one forward pass of the original model  {baseline_s:.3f} s  (perplexity {ref.quality.perplexity:.2f})"
    )

    chunks = comp.calibration_chunks(loaded, comp.shipped_calibration_text())
    (stats, n_tokens), out["calibration_s"] = _timed(
        lambda: comp.collect_activation_stats(loaded, chunks, kinds)
    )
    print(
        f"one-time: calibration activations ({n_tokens} tokens, {', '.join(kinds)})  {out['calibration_s']:.1f} s"
    )
    facts = {}
    out["factorize_s"] = {}
    for method in METHODS:
        facts[method], seconds = _timed(
            lambda m=method: comp.factorize_model(loaded, m, kinds, stats, n_tokens)
        )
        out["factorize_s"][method] = seconds
        print(
            f"one-time: factorize {len(facts[method].matrices)} matrices, {METHOD_LABELS[method]:<24} {seconds:6.1f} s"
            f"  ({facts[method].nbytes() / 1e6:.0f} MB of factors)"
        )
    stats.clear()  # the Gram matrices are no longer needed

    # Rank change -> updated quality (factors cached; every setting new, as when a slider moves). Each one is
    # paired with a baseline forward pass measured just before it, so a shared machine's load hits both alike.
    out["rank_change_s"] = {}
    ratios = []
    shares = [0.5 + 0.05 * (i + 1) * (-1) ** i for i in range(args.repeats)]  # 0.45, 0.6, 0.35, ...
    for method in METHODS:
        times = []
        for share in shares:
            base = comp.reference(loaded, evalset).quality.latency_ms / 1e3

            def run(share=share, method=method):
                ranks = comp.choose_ranks(facts[method], comp.RankSetting(mode="share", share=share))
                return comp.evaluate_ranks(loaded, facts[method], ranks, evalset, ref)

            _outcome, seconds = _timed(run)
            times.append(seconds)
            ratios.append(seconds / base)
        out["rank_change_s"][method] = statistics.median(times)
    all_changes = statistics.median(out["rank_change_s"].values())
    out["rank_change_over_baseline"] = statistics.median(ratios)
    print(
        f"rank change -> updated quality (median, factors cached)  {all_changes:.3f} s  "
        f"= {out['rank_change_over_baseline']:.2f} x a baseline forward measured just before each "
        f"(target < 2 s: {'met' if all_changes < 2 else 'MISSED'})"
    )
    for method in METHODS:
        print(f"    {METHOD_LABELS[method]:<26} {out['rank_change_s'][method]:.3f} s")

    # The numbers: every MLP matrix at half its break-even rank.
    out["half_break_even"] = {}
    print("MLP matrices at half their break-even rank:")
    for method in METHODS:
        ranks = comp.choose_ranks(facts[method], comp.RankSetting(mode="share", share=0.5))
        o = comp.evaluate_ranks(loaded, facts[method], ranks, evalset, ref)
        row = {
            "perplexity": o.after.perplexity,
            "kl": o.after.kl,
            "mean_rank": o.mean_rank,
            "params_kept_model": o.share_kept,
            "params_kept_mlp": o.params_chosen_after / o.params_chosen_before,
            "latency_ms": o.after.latency_ms,
        }
        out["half_break_even"][method] = row
        print(
            f"    {METHOD_LABELS[method]:<26} perplexity {row['perplexity']:>12,.2f}  KL {row['kl']:6.3f} nats/token"
            f"  rank {row['mean_rank']:.0f}  params kept {row['params_kept_model']:.1%} of model "
            f"({row['params_kept_mlp']:.1%} of MLP)  latency {row['latency_ms']:.0f} ms"
        )

    points, out["sweep_eval_s"] = _timed(lambda: comp.sweep(loaded, facts, evalset, ref))
    scratch = out["calibration_s"] + sum(out["factorize_s"].values()) + out["sweep_eval_s"]
    out["sweep_total_s"] = scratch
    print(
        f"sweep ({len(points)} settings): {out['sweep_eval_s']:.1f} s with factors cached "
        f"= {out['sweep_eval_s'] / baseline_s:.1f} x baseline forward; {scratch:.1f} s from scratch "
        "(calibration + 3 factorizations + evaluations)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
