"""Benchmark: what the attention page's head views cost to re-render (the @st.fragment a temperature step reruns),
before and after the heatmap was pooled for display, in the same run.

A re-render computes the head's full spectrum at the new temperature (explorer.analysis.attention.head_spectrum)
and draws four figures: the attention heatmap, the complex plane, the sorted spectra, the symmetric part and
Laplacian. Each figure is timed as st.plotly_chart handles it: built, validated
(plotly.tools.return_figure_from_figure_or_data) and serialised (plotly.io.to_json); the JSON's size is what goes
to the browser, which then parses and draws it.

"Before" is the heatmap builder of commit --before (read with `git show` into a temporary module), called as the
page called it then (linear colour, the full n x n matrix with a per-cell hover copy). "After" is this checkout's
builder called as the page calls it now (automatic colour, blocks of ceil(n / 256) tokens, attention mass). The
other three figures and the spectrum are the same code on both sides and are timed once. The pooled values are
checked against numpy's block sums.

Usage: .venv/bin/python bench/bench_attention_render.py [--model smollm2-135m] [--tokens 256 512 1024]
       [--head 0 0] [--repeat 3] [--before e4407e8]

Seconds are the best of --repeat; the machine may be shared, so compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import plotly
import plotly.io as pio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.analysis.attention import head_spectrum  # noqa: E402
from explorer.figures import attention as fa  # noqa: E402
from explorer.models import capture, load_model  # noqa: E402
from explorer.texts import example_texts  # noqa: E402

# The last commit with the old heatmap (linear colour by default, every cell drawn, a float64 hover copy).
BEFORE = "e4407e8a588539ecab9c9d1eea65f0f5705545e6"
TAU_STEP = 0.95  # one step of the page's temperature slider from 1


def builder_at(rev: str):
    """explorer/figures/attention.py as it was at ``rev``, imported as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{rev}:explorer/figures/attention.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "attention_before.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("attention_before", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def shipped_text() -> str:
    """Every example text, repeated: longer than any token count asked for."""
    return " ".join([" ".join(example_texts().values())] * 20)


def best(fn, repeat: int) -> tuple[object, float]:
    """fn's result and its fastest wall time over ``repeat`` calls."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return result, min(seconds)


def drawn(build, repeat: int) -> tuple[object, float, float, float]:
    """A figure as st.plotly_chart handles it: (figure, build s, validate + to_json s, JSON MB)."""
    fig, build_s = best(build, repeat)

    def serialise():
        return pio.to_json(
            plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True), validate=False
        )

    spec, serialise_s = best(serialise, repeat)
    return fig, build_s, serialise_s, len(spec) / 1e6


def numpy_block_mass(A: np.ndarray, block: int) -> np.ndarray:
    starts = range(0, len(A), block)
    return np.array(
        [[A[i : i + block, j : j + block].sum() / len(A[i : i + block]) for j in starts] for i in starts]
    )


def bench(loaded, n_tokens: int, layer: int, head: int, *, repeat: int, old) -> dict:
    """One row: spectrum, heatmap before/after and the other figures at ``n_tokens`` tokens."""
    cap = capture(loaded, shipped_text(), n_tokens)
    att, labels = cap.attentions, cap.labels()
    spectrum, spectrum_s = best(
        lambda: head_spectrum(att, layer, head, causal=cap.causal, tau=TAU_STEP), repeat
    )
    A = spectrum.attention
    _, old_build, old_ser, old_mb = drawn(
        lambda: old.make_attention_heatmap_figure(A, labels, title="t"), repeat
    )
    new_fig, new_build, new_ser, new_mb = drawn(
        lambda: fa.make_attention_heatmap_figure(A, labels, title="t", pooling="mass"), repeat
    )
    others = [
        lambda: fa.make_eigenvalue_plane_figure(spectrum.eigvals, title="t", triangular=spectrum.triangular),
        lambda: fa.make_spectrum_figure(spectrum.eigvals, spectrum.singular_values, title="t"),
        lambda: fa.make_symmetric_laplacian_figure(
            spectrum.sym_eigvals, spectrum.laplacian_eigvals, title="t"
        ),
    ]
    other_s = other_mb = 0.0
    for build in others:
        _, b, s, mb = drawn(build, repeat)
        other_s, other_mb = other_s + b + s, other_mb + mb
    # The drawn numbers: the pooled heatmap's values are numpy's block mass, to float32 rounding.
    block = fa.display_block(cap.n_tokens)
    heatmap = new_fig.data[0]
    values = np.asarray(heatmap.customdata if heatmap.customdata is not None else heatmap.z, dtype=np.float64)
    expected = numpy_block_mass(A, block) if block > 1 else A
    exact = bool(np.allclose(values, expected, rtol=float(np.finfo(np.float32).eps), atol=0))
    before = spectrum_s + old_build + old_ser + other_s
    after = spectrum_s + new_build + new_ser + other_s
    return {
        "tokens": cap.n_tokens,
        "spectrum_s": spectrum_s,
        "old_heatmap_s": old_build + old_ser,
        "old_mb": old_mb,
        "new_heatmap_s": new_build + new_ser,
        "new_mb": new_mb,
        "cells": heatmap.z.shape[0],
        "log": "log scale" in heatmap.colorbar.title.text,
        "other_s": other_s,
        "other_mb": other_mb,
        "before_s": before,
        "after_s": after,
        "mb_ratio": (old_mb + other_mb) / (new_mb + other_mb),
        "time_ratio": before / after,
        "exact": exact,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--head", nargs=2, type=int, default=[0, 0], metavar=("LAYER", "HEAD"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", default=BEFORE, help="commit whose heatmap builder is 'before'")
    args = parser.parse_args()
    old = builder_at(args.before)
    loaded = load_model(args.model, device="cpu")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.model}, layer {args.head[0]} head {args.head[1]}, τ = {TAU_STEP}; best of {args.repeat}; "
        f"{os.cpu_count()} CPUs, load {load:.1f}; before = {args.before[:10]}"
    )
    header = (
        f"{'tokens':>6}{'spectrum s':>11}{'heatmap s before':>17}{'MB':>7}{'after':>8}{'MB':>7}{'cells':>6}"
        f"{' colour':>7}{'other figs s':>13}{'MB':>6}{'fragment s before':>18}{'after':>7}{'x time':>7}{'x MB':>7}"
        "  pooled = numpy"
    )
    print(header)
    print("-" * len(header))
    all_exact = True
    for n in args.tokens:
        r = bench(loaded, n, *args.head, repeat=args.repeat, old=old)
        all_exact &= r["exact"]
        print(
            f"{r['tokens']:>6}{r['spectrum_s']:>11.3f}{r['old_heatmap_s']:>17.3f}{r['old_mb']:>7.1f}"
            f"{r['new_heatmap_s']:>8.3f}{r['new_mb']:>7.2f}{r['cells']:>6}{'log' if r['log'] else 'linear':>7}"
            f"{r['other_s']:>13.3f}{r['other_mb']:>6.2f}{r['before_s']:>18.3f}{r['after_s']:>7.3f}"
            f"{r['time_ratio']:>7.1f}{r['mb_ratio']:>7.1f}  {'yes' if r['exact'] else 'NO'}",
            flush=True,
        )
    print(
        "\nheatmap s: build + validate + to_json (what st.plotly_chart does); MB: the JSON sent to the browser, "
        "which parses and draws it (not timed here). fragment = spectrum + every figure of the head views."
    )
    return 0 if all_exact else 1


if __name__ == "__main__":
    sys.exit(main())
