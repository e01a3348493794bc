"""Benchmark: the logit lens over every layer after the forward pass (issue 31 asks under 5 s for SmolLM2's
30 layers at 1,024 tokens), against the direct way in the same run.

The lens (explorer.analysis.logit_lens.lens_from_residuals): per layer and chunk of positions, one unembedding
product, then logsumexp, top-k and the rank count over the vocabulary; KL(final || layer) from the logsumexp and a
(token x d_model) product (no extra pass over the vocabulary). The direct way: the same unembedding, then
log_softmax, top-k, rank and KL as an explicit sum over the vocabulary. The forward pass (residual_stream) is
timed separately and is not part of either. Both results are compared (top-k ids, ranks, KL within float32).

Usage: .venv/bin/python bench/bench_logit_lens.py [--model smollm2-135m] [--tokens 1024] [--repeat 1]
Wall and process CPU time are printed: on a shared machine the wall time moves with the load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.analysis.logit_lens import (  # noqa: E402
    final_norm_and_unembedding,
    lens_from_residuals,
    residual_stream,
)
from explorer.models import load_model  # noqa: E402
from explorer.texts import example_texts  # noqa: E402

K = 10


def _text_ids(loaded, n_tokens: int) -> np.ndarray:
    text = "\n\n".join(example_texts().values())
    while len(loaded.tokenizer(text)["input_ids"]) < n_tokens:
        text = text + "\n\n" + text
    return np.asarray(loaded.tokenizer(text)["input_ids"][:n_tokens], dtype=np.int64)


@torch.no_grad()
def direct(loaded, residuals: torch.Tensor, k: int) -> dict[str, np.ndarray]:
    """The textbook way, one layer at a time (chunks of 256 positions, as the lens)."""
    norm, unembed = final_norm_and_unembedding(loaded)
    n_layers, n_tokens = residuals.shape[:2]
    out = {name: [] for name in ("top_ids", "rank", "kl")}
    for start in range(0, n_tokens, 256):
        chunk = slice(start, min(start + 256, n_tokens))
        final = torch.log_softmax(unembed(norm(residuals[-1, chunk][None]))[0].float(), -1)
        target = final.argmax(-1)
        rows = {name: [] for name in out}
        for layer in range(n_layers):
            logp = torch.log_softmax(unembed(norm(residuals[layer, chunk][None]))[0].float(), -1)
            rows["top_ids"].append(torch.topk(logp, k, -1).indices)
            rows["rank"].append((logp > logp.gather(-1, target[:, None])).sum(-1) + 1)
            rows["kl"].append((final.exp() * (final - logp)).sum(-1))
        for name in out:
            out[name].append(torch.stack(rows[name]))
    return {name: torch.cat(parts, dim=1).numpy() for name, parts in out.items()}


def bench(model_id: str, n_tokens: int, repeat: int = 1) -> dict:
    loaded = load_model(model_id, device="cpu")
    ids = _text_ids(loaded, n_tokens)
    t0, c0 = time.perf_counter(), time.process_time()
    residuals, _ = residual_stream(loaded, ids)
    forward = (time.perf_counter() - t0, time.process_time() - c0)
    lens_times, direct_times = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        lens = lens_from_residuals(loaded, ids, residuals, k=K)
        lens_times.append((time.perf_counter() - t0, time.process_time() - c0))
        t0, c0 = time.perf_counter(), time.process_time()
        ref = direct(loaded, residuals, K)
        direct_times.append((time.perf_counter() - t0, time.process_time() - c0))
    agree_top1 = float((lens.top_ids[:, :, 0] == ref["top_ids"][:, :, 0]).mean())
    agree_rank = float((lens.final_rank == ref["rank"]).mean())
    kl_err = float(np.abs(lens.kl - ref["kl"]).max())
    lens_wall, lens_cpu = min(lens_times)
    direct_wall, direct_cpu = min(direct_times)
    return {
        "model": model_id,
        "tokens": n_tokens,
        "layers": int(residuals.shape[0]),
        "vocab": int(loaded.card.vocab_size),
        "forward_wall_s": forward[0],
        "lens_wall_s": lens_wall,
        "lens_cpu_s": lens_cpu,
        "direct_wall_s": direct_wall,
        "direct_cpu_s": direct_cpu,
        "top1_agree": agree_top1,
        "rank_agree": agree_rank,
        "kl_max_abs_diff": kl_err,
        "kl_max": float(ref["kl"].max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    for n in args.tokens:
        row = bench(args.model, n, args.repeat)
        print(
            f"{row['model']} {row['tokens']} tokens x {row['layers']} layers (vocab {row['vocab']:,}): "
            f"forward {row['forward_wall_s']:.2f} s | lens {row['lens_wall_s']:.2f} s wall "
            f"({row['lens_cpu_s']:.2f} s CPU) | direct {row['direct_wall_s']:.2f} s wall "
            f"({row['direct_cpu_s']:.2f} s CPU) | ratio {row['direct_wall_s'] / row['lens_wall_s']:.2f}x | "
            f"top-1 agree {row['top1_agree']:.4f}, rank agree {row['rank_agree']:.4f}, "
            f"|KL diff| max {row['kl_max_abs_diff']:.2e} (KL up to {row['kl_max']:.1f} nats)"
        )


if __name__ == "__main__":
    main()
