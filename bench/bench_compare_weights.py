"""Compare mode on the weights page against one model's weights page, same process, same run (issue 32's target:
with A's spectra already cached, the compare section costs under 1.5x one model's page).

One model's page ("A alone"): analysis.weights.compute_weight_spectra on the loaded model, no disk store (the
page's first visit).
Compare with A cached ("B"), what ui/compare_view.draw computes for B = --variant, in its order:
  build          analysis.variants.build_variant (the changed copy of the weights, never the cached model's)
  B spectra      variants.variant_spectra_work with A's spectra (only the matrices B replaces are decomposed)
  change         variants.relative_change (||W_B - W_A||_F / ||W_A||_F per matrix)
  delta          compare.delta_spectrum of the matrix the page selects first (the first changed one)
  outputs        variants.compare_outputs_of on the default text (A and B logits, KL, top-1; causal models also
                 continue the text by CONTINUATION_TOKENS tokens with each)
The weights part (build + B spectra + change + delta) and the whole (with outputs) are each divided by "A alone".
Runs are interleaved (A alone, then compare, --repeats times) and the medians reported.

Run: .venv/bin/python bench/bench_compare_weights.py [--model smollm2-135m] [--variant int4-g32] [--repeats 3]
Machines here are shared: the load average is printed; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from explorer.analysis import variants  # noqa: E402
from explorer.analysis.compare import CONTINUATION_TOKENS, delta_spectrum  # noqa: E402
from explorer.analysis.weights import compute_weight_spectra  # noqa: E402
from explorer.models import load_model  # noqa: E402
from explorer.models.capture import DEFAULT_MAX_TOKENS  # noqa: E402
from explorer.texts import DEFAULT_EXAMPLE, example_texts  # noqa: E402


def _clock(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def one_model_page(loaded) -> tuple[object, float]:
    return _clock(lambda: compute_weight_spectra(loaded.model, device=loaded.device))


def compare_section(loaded, spectra_a, key: str, text: str) -> dict[str, float]:
    """Seconds per step of the compare section for B = ``key`` (see the module docstring)."""
    seconds = {}
    variant, seconds["build"] = _clock(lambda: variants.build_variant(loaded, key, text))
    spec = variants.variant_spectra_spec(loaded, variant)
    work = variants.variant_spectra_work(loaded, variant, spec, spectra_a)
    _spectra_b, seconds["b_spectra"] = _clock(lambda: work(_NoTask()))
    change, seconds["change"] = _clock(lambda: variants.relative_change(loaded, variant))
    changed = np.flatnonzero(change > 0)
    name = spectra_a.names[int(changed[0])] if changed.size else spectra_a.names[0]
    _delta, seconds["delta"] = _clock(lambda: delta_spectrum(*variants.matrix_pair(loaded, variant, name)))
    n_new = CONTINUATION_TOKENS if loaded.causal else 0
    _out, seconds["outputs"] = _clock(
        lambda: variants.compare_outputs_of(loaded, variant, text, DEFAULT_MAX_TOKENS, n_new)
    )
    return seconds


class _NoTask:
    """What a task's work function is handed, outside the task layer: progress is dropped."""

    @staticmethod
    def report(*_args, **_kwargs) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--variant", default="int4-g32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    loaded = load_model(args.model, device="cpu")
    text = example_texts()[DEFAULT_EXAMPLE]
    one_model_page(loaded)  # warm-up: first-call costs (imports, allocator) out of the timed runs
    alone, parts = [], []
    for _ in range(args.repeats):
        spectra_a, seconds = one_model_page(loaded)
        alone.append(seconds)
        parts.append(compare_section(loaded, spectra_a, variants.canonical(args.variant), text))
    median = {step: statistics.median(p[step] for p in parts) for step in parts[0]}
    weights_part = [p["build"] + p["b_spectra"] + p["change"] + p["delta"] for p in parts]
    whole = [w + p["outputs"] for w, p in zip(weights_part, parts, strict=True)]
    a = statistics.median(alone)
    result = {
        "model": args.model,
        "variant": variants.canonical(args.variant),
        "repeats": args.repeats,
        "a_alone_s": a,
        "a_alone_runs_s": alone,
        "compare_steps_median_s": median,
        "compare_weights_part_s": statistics.median(weights_part),
        "compare_whole_s": statistics.median(whole),
        "ratio_weights_part": statistics.median(weights_part) / a,
        "ratio_whole": statistics.median(whole) / a,
        "load_average": os.getloadavg(),
    }
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.json is not None:
        args.json.write_text(text_out)


if __name__ == "__main__":
    main()
