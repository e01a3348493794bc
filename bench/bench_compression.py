"""Benchmark of the compression what-if on SmolLM2-135M by default (--model minilm-l6 works too; CPU unless
--device says otherwise).

Measures, on the shipped held-out passage cut to --tokens tokens (default 256):
  * rank change -> updated quality: choose ranks, build the factored copy from cached factors, run it,
    compute perplexity and KL (what the page does when a slider moves; target < 2 s);
    printed with its ratio to the baseline, one forward pass of the original model on the same tokens;
  * one-time costs: calibration activations (shipped set) and the factorization of the MLP matrices per method;
  * the Pareto sweep (3 methods x 4 ranks): its evaluation time with factors cached, and its total from scratch;
  * the quality numbers the issue asks for: perplexity and KL of each method with every MLP matrix at half its
    break-even rank, and the parameter share kept.

Usage: .venv/bin/python bench/bench_compression.py [--model ID] [--tokens 256] [--threads N] [--no-sweep]
       [--methods svd asvd svdllm] [--json out.json]
bench() runs the same and returns the numbers as a dict (bench/run_all.py calls it).
For an encoder (MiniLM) quality is the embedding cosine and similarity rank correlation instead of perplexity/KL.
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


def _quality(q) -> str:
    """A Quality as text: perplexity and KL for causal LMs, embedding cosine and similarity rank correlation
    for encoders."""
    if q.causal:
        kl = "" if q.kl is None else f"  KL {q.kl:6.3f} nats/token"
        return f"perplexity {q.perplexity:>12,.2f}{kl}"
    rho = "" if q.similarity_spearman is None else f"  similarity rho {q.similarity_spearman:.3f}"
    return f"embedding cosine {q.embedding_cosine:.4f}{rho}"


def bench(
    model_id: str = "smollm2-135m",
    *,
    tokens: int = 256,
    device: str = "cpu",
    repeats: int = 3,
    loaded=None,
    run_sweep: bool = True,
    methods: tuple[str, ...] = METHODS,
    log=print,
) -> dict:
    """Run the whole benchmark on one model; returns the numbers as a dict (the keys --json writes) and prints
    its lines through ``log`` (pass ``log=lambda *_: None`` for silence). ``loaded``: reuse a model already
    loaded on ``device`` (then load_s is 0). ``methods``: the methods factorized and timed (all three by
    default); the Pareto sweep needs all three and runs only then, and only with run_sweep."""
    out: dict = {"model": model_id, "tokens": tokens, "threads": torch.get_num_threads()}
    if loaded is None:
        loaded, out["load_s"] = _timed(lambda: load_model(model_id, device=device))
    else:
        out["load_s"] = 0.0
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    out["kinds"] = list(kinds)
    evalset = comp.make_eval_set(loaded, comp.heldout_text(), tokens)
    out["tokens"] = evalset.n_tokens
    comp.reference(loaded, evalset)  # warm-up
    baselines = [comp.reference(loaded, evalset) for _ in range(repeats)]
    ref = baselines[-1]
    baseline_s = statistics.median(b.quality.latency_ms for b in baselines) / 1e3
    out["baseline_forward_s"] = baseline_s
    out["original_perplexity"] = ref.quality.perplexity
    out["original_headline"] = ref.quality.headline
    log(f"{model_id} on {evalset.n_tokens} tokens, {torch.get_num_threads()} threads, device {loaded.device}")
    log(f"baseline: one forward pass of the original model  {baseline_s:.3f} s  ({_quality(ref.quality)})")

    chunks = comp.calibration_chunks(loaded, comp.shipped_calibration_text())
    (stats, n_tokens), out["calibration_s"] = _timed(
        lambda: comp.collect_activation_stats(loaded, chunks, kinds)
    )
    log(
        f"one-time: calibration activations ({n_tokens} tokens, {', '.join(kinds)})  {out['calibration_s']:.1f} s"
    )
    facts = {}
    out["factorize_s"] = {}
    for method in methods:
        facts[method], seconds = _timed(
            lambda m=method: comp.factorize_model(loaded, m, kinds, stats, n_tokens)
        )
        out["factorize_s"][method] = seconds
        log(
            f"one-time: factorize {len(facts[method].matrices)} matrices, {METHOD_LABELS[method]:<24} {seconds:6.1f} s"
            f"  ({facts[method].nbytes() / 1e6:.0f} MB of factors)"
        )
    stats.clear()  # the Gram matrices are no longer needed

    # Rank change -> updated quality (factors cached; every setting new, as when a slider moves). Each one is
    # paired with a baseline forward pass measured just before it, so a shared machine's load hits both alike.
    out["rank_change_s"] = {}
    out["rank_change_all_s"] = {}
    ratios = []
    shares = [0.5 + 0.05 * (i + 1) * (-1) ** i for i in range(repeats)]  # 0.45, 0.6, 0.35, ...
    for method in methods:
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
        out["rank_change_all_s"][method] = times
    all_changes = statistics.median(out["rank_change_s"].values())
    out["rank_change_median_s"] = all_changes
    out["rank_change_over_baseline"] = statistics.median(ratios)
    log(
        f"rank change -> updated quality (median, factors cached)  {all_changes:.3f} s  "
        f"= {out['rank_change_over_baseline']:.2f} x a baseline forward measured just before each "
        f"(target < 2 s: {'met' if all_changes < 2 else 'MISSED'})"
    )
    for method in methods:
        log(f"    {METHOD_LABELS[method]:<26} {out['rank_change_s'][method]:.3f} s")

    # The numbers: every MLP matrix at half its break-even rank.
    out["half_break_even"] = {}
    log("MLP matrices at half their break-even rank:")
    for method in methods:
        ranks = comp.choose_ranks(facts[method], comp.RankSetting(mode="share", share=0.5))
        o = comp.evaluate_ranks(loaded, facts[method], ranks, evalset, ref)
        row = {
            "perplexity": o.after.perplexity,
            "kl": o.after.kl,
            "embedding_cosine": o.after.embedding_cosine,
            "similarity_spearman": o.after.similarity_spearman,
            "mean_rank": o.mean_rank,
            "params_kept_model": o.share_kept,
            "params_kept_mlp": o.params_chosen_after / o.params_chosen_before,
            "latency_ms": o.after.latency_ms,
        }
        out["half_break_even"][method] = row
        log(
            f"    {METHOD_LABELS[method]:<26} {_quality(o.after)}"
            f"  rank {row['mean_rank']:.0f}  params kept {row['params_kept_model']:.1%} of model "
            f"({row['params_kept_mlp']:.1%} of MLP)  latency {row['latency_ms']:.0f} ms"
        )

    if run_sweep and set(methods) == set(METHODS):
        points, out["sweep_eval_s"] = _timed(lambda: comp.sweep(loaded, facts, evalset, ref))
        out["sweep_points"] = len(points)
        scratch = out["calibration_s"] + sum(out["factorize_s"].values()) + out["sweep_eval_s"]
        out["sweep_total_s"] = scratch
        log(
            f"sweep ({len(points)} settings): {out['sweep_eval_s']:.1f} s with factors cached "
            f"= {out['sweep_eval_s'] / baseline_s:.1f} x baseline forward; {scratch:.1f} s from scratch "
            "(calibration + 3 factorizations + evaluations)"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3, help="rank changes timed per method")
    parser.add_argument("--no-sweep", action="store_true", help="skip the Pareto sweep")
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods to factorize and time"
    )
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = bench(
        args.model,
        tokens=args.tokens,
        device=args.device,
        repeats=args.repeats,
        run_sweep=not args.no_sweep,
        methods=tuple(args.methods),
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
