"""The budget question on SmolLM2: perplexity on the shipped held-out passage when the MLP matrices keep 95, 90,
80, 70, 50 and 25 % of their parameters, uniform ranks against greedy-allocated ranks (same parameter count),
for the three methods; the calibration output error of each; and the smallest setting within +10 % perplexity.

Factors come from the disk store (explorer.analysis.factor_store), computed on a miss.
Usage: .venv/bin/python bench/bench_budget.py [--model smollm2-135m] [--tokens 512] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.analysis import compression as comp  # noqa: E402
from explorer.analysis.lowrank import METHODS  # noqa: E402
from explorer.analysis.quality import Budget  # noqa: E402
from explorer.models import load_model  # noqa: E402


def bench(model_id: str = "smollm2-135m", tokens: int = 512, log=print) -> dict:
    loaded = load_model(model_id, device="cpu")
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    facts = comp.shipped_factorizations(loaded, kinds, METHODS, log)
    evalset = comp.make_eval_set(loaded, comp.heldout_text(), tokens)
    ref = comp.reference(loaded, evalset)
    log(f"held-out passage: {evalset.n_tokens} tokens, original perplexity {ref.quality.perplexity:.3f}")
    points = comp.sweep(loaded, facts, evalset, ref, comp.KEPT_SHARES, greedy=METHODS)
    rows = comp.sweep_records(points, kinds)
    log(
        f"{'method':7s} {'share':>5s}  {'uniform ppl':>11s} {'greedy ppl':>10s}  {'uniform err':>11s} {'greedy err':>10s}"
    )
    by = {(r["method"], r["allocation"], r["share_of_break_even"]): r for r in rows}
    for method in METHODS:
        for share in comp.KEPT_SHARES:
            u, g = by[(method, "uniform", share)], by[(method, "greedy", share)]
            log(
                f"{method:7s} {share:5.0%}  {u['perplexity']:11.3f} {g['perplexity']:10.3f}  "
                f"{u['calib_output_error']:11.4f} {g['calib_output_error']:10.4f}"
            )
    best, closest = comp.within_budget(points, ref.quality, Budget.default(loaded.causal))
    if best is not None:
        log(
            f"smallest within +10 %: {best.method} {best.allocation} at {best.share:.0%} of the MLP parameters "
            f"({best.share_kept:.1%} of the model, {best.bytes / 1e6:.0f} MB fp16), perplexity {best.quality.perplexity:.3f}"
        )
    else:
        log(f"nothing within +10 %; closest {closest.method} {closest.allocation} {closest.share:.0%}")
    return {
        "model": model_id,
        "tokens": evalset.n_tokens,
        "original_perplexity": ref.quality.perplexity,
        "rows": rows,
        "best": None if best is None else rows[points.index(best)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = bench(args.model, args.tokens)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
