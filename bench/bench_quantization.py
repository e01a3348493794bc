"""Low-rank against fewer bits, at matched bytes: quality on the held-out passage (causal LM) or the sentence set
(encoder) when the MLP matrices are stored in 75, 50 and 30 % of their fp16 bytes, for every method:

- low rank, three methods, uniform and allocated ranks: factors at that share of the dense parameters;
- int8 (per row) and 4-bit groups of 32/64/128, symmetric and with an offset: fixed byte shares, shown as they are;
- SVD-LLM factors in int8 (twice the rank for the same bytes), the top directions at fp16 + a 4-bit residual;
- SVD-LLM healed: its factors after HEAL_STEPS Adam steps on the calibration text (time measured here).

This is a quality table, not a speed race: the only timing is the healing's own. Factors come from the disk store.
Usage: .venv/bin/python bench/bench_quantization.py [--model smollm2-135m] [--tokens 512] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.analysis import compression as comp  # noqa: E402
from explorer.analysis import healing  # noqa: E402
from explorer.analysis import quantize as qz  # noqa: E402
from explorer.analysis.lowrank import METHODS  # noqa: E402
from explorer.models import load_model  # noqa: E402
from explorer.spectra.quantization import INT4_SCHEMES, INT8, QuantScheme  # noqa: E402

BUDGETS = (0.75, 0.5, 0.3)  # of the MLP matrices' fp16 bytes
HEAL_STEPS = 30
RESIDUAL = QuantScheme(4, 32)


def bench(model_id: str = "smollm2-135m", tokens: int = 512, log=print) -> dict:
    loaded = load_model(model_id, device="cpu")
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    facts = comp.shipped_factorizations(loaded, kinds, METHODS, log)
    evalset = comp.make_eval_set(loaded, comp.heldout_text(), tokens)  # encoders: + the sentence set
    ref = comp.reference(loaded, evalset)
    headline = "perplexity" if loaded.causal else "embedding_cosine"
    log(f"{model_id}: {evalset.n_tokens} tokens; original {headline} {ref.quality.headline:.4f}")
    group_fp16 = 2 * sum(f.shape[0] * f.shape[1] for f in facts["svdllm"].matrices)
    rows = []

    def add(method: str, budget: float | None, group_bytes: int, quality: comp.Quality, extra=None):
        row = {
            "method": method,
            "budget": budget,
            "bytes_share": group_bytes / group_fp16,
            headline: quality.headline,
            "kl": quality.kl,
            "similarity_spearman": quality.similarity_spearman,
            **(extra or {}),
        }
        rows.append(row)
        shown = "-" if budget is None else f"{budget:.0%}"
        log(
            f"  {method:26s} budget {shown:>5}  bytes {row['bytes_share']:6.1%}  {headline} {quality.headline:.4f}"
        )

    for scheme in (INT8, *INT4_SCHEMES):
        out = qz.quantize_weights(loaded, kinds, scheme, evalset, ref)
        add(scheme.name, None, out.bytes_chosen, out.after)
    # The residual's own storage (~28 % of fp16 at 4 bits in groups of 32); the fp16 factors take the rest.
    int4_share = sum(RESIDUAL.nbytes(f.shape) for f in facts["svdllm"].matrices) / group_fp16
    for budget in BUDGETS:
        for method in METHODS:
            for allocation in ("uniform", "greedy"):
                p = comp.sweep_point(loaded, facts[method], budget, evalset, ref, allocation)
                add(f"{method} ({allocation})", budget, 2 * p.params_group_after, p.quality)
        svdllm = facts["svdllm"]
        ranks = comp.choose_ranks(svdllm, comp.RankSetting(mode="share", share=2 * budget))
        out = qz.quantize_factored_weights(loaded, svdllm, ranks, INT8, evalset, ref)
        add("svdllm+int8", budget, out.bytes_chosen, out.after)
        if budget > int4_share:
            out = qz.residual_split_weights(loaded, kinds, RESIDUAL, evalset, ref, share=budget - int4_share)
            add(f"svd-residual-{RESIDUAL.name}", budget, out.bytes_chosen, out.after)
        ranks = comp.choose_ranks(svdllm, comp.RankSetting(mode="share", share=budget))
        run, _ = healing.heal(
            loaded, svdllm, ranks, comp.shipped_calibration_text(), evalset, ref, steps=HEAL_STEPS
        )
        add(
            "svdllm-healed",
            budget,
            2 * sum(k * sum(f.shape) for f in svdllm.matrices for name, k in ranks.items() if name == f.name),
            run.after,
            {
                "before_healing": run.before.headline,
                "heal_seconds": run.seconds,
                "calibration_before": run.calibration_before,
                "calibration_after": run.calibration_after,
            },
        )
    return {"model": model_id, "tokens": evalset.n_tokens, "original": ref.quality.headline, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = bench(args.model, args.tokens)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
