"""Why did the compressed SmolLM2 measure slower than the original (issue 15: 915 ms against 346 ms at 24
tokens)? The page timed one forward pass of each, the compressed copy's first. This measures, in one run:

  * a single first pass of a freshly built compressed copy (what the page showed) against the original's;
  * explorer.analysis.latency.measure_latency (warm-up, interleaved runs, median and quartiles) at 24 and 256
    tokens, with the factors as the views ``compressed_model`` uses (A_k = U[:, :k], strided) and as contiguous
    copies, beside the multiply-add counts.

Usage: .venv/bin/python bench/bench_latency.py [--model smollm2-135m] [--share 0.5] [--runs 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from explorer.analysis import compression as comp  # noqa: E402
from explorer.analysis import latency as lat  # noqa: E402
from explorer.analysis.lowrank import factorize  # noqa: E402
from explorer.analysis.surgery import LowRankLinear  # noqa: E402
from explorer.models import load_model  # noqa: E402


def _contiguous(model: torch.nn.Module) -> torch.nn.Module:
    for module in model.modules():
        if isinstance(module, LowRankLinear):
            module.A = module.A.contiguous()
            module.B = module.B.contiguous()
    return model


def _describe(c: lat.LatencyComparison) -> str:
    o, f = c.original, c.compressed
    return (
        f"{c.n_tokens:4d} tokens: original {o.median_ms:7.1f} ms (IQR {o.q1_ms:.1f}-{o.q3_ms:.1f}), compressed "
        f"{f.median_ms:7.1f} ms (IQR {f.q1_ms:.1f}-{f.q3_ms:.1f}), ratio {c.ratio:.2f}, MAC ratio {c.mac_ratio:.2f}"
        f"{'' if c.distinguishable else ' (within the noise)'}"
    )


def bench(model_id: str = "smollm2-135m", share: float = 0.5, runs: int = 7, log=print) -> dict:
    loaded = load_model(model_id, device="cpu")
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.available_kinds(loaded.model))
    fact = factorize(loaded.model, "svd", kinds)  # the route does not matter for timing: same shapes
    ranks = comp.choose_ranks(fact, comp.RankSetting(share=share))
    ids = loaded.tokenizer(comp.heldout_text())["input_ids"][:24]
    x = torch.tensor([ids])
    out: dict = {"model": model_id, "share": share, "threads": torch.get_num_threads()}
    with torch.inference_mode():
        loaded.model(input_ids=x)  # the original is warm on the page: it ran for the reference
        t0 = time.perf_counter()
        loaded.model(input_ids=x)
        out["first_original_ms"] = (time.perf_counter() - t0) * 1e3
        model = comp.compressed_model(loaded, fact, ranks)
        t0 = time.perf_counter()
        model(input_ids=x)
        out["first_compressed_ms"] = (time.perf_counter() - t0) * 1e3
    log(
        f"single passes at 24 tokens, as the page timed them: original {out['first_original_ms']:.0f} ms, "
        f"freshly built compressed copy {out['first_compressed_ms']:.0f} ms"
    )
    for label, module in (
        ("views", model),
        ("contiguous", _contiguous(comp.compressed_model(loaded, fact, ranks))),
    ):
        result = lat.measure_latency(loaded, module, ids, ranks, runs=runs)
        for key, c in (("at_24", result.at_text), ("at_fixed", result.at_fixed)):
            out[f"{label}_{key}"] = {
                "n_tokens": c.n_tokens,
                "original_median_ms": c.original.median_ms,
                "original_iqr_ms": [c.original.q1_ms, c.original.q3_ms],
                "compressed_median_ms": c.compressed.median_ms,
                "compressed_iqr_ms": [c.compressed.q1_ms, c.compressed.q3_ms],
                "macs_original": c.macs_original,
                "macs_compressed": c.macs_compressed,
            }
            log(f"  factors as {label:10s} {_describe(c)}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = bench(args.model, args.share, args.runs)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
