"""Benchmark: a page's first result while another session's background work runs, with and without the task
layer's foreground-first rule (explorer/tasks.py), in one process as the server runs them.

The foreground work is what the weights page waits for on a first visit: compute_weight_spectra of the model,
through a task watched the way task_view.watch(wait=True) watches it (a thread blocked in short waits, inside
tasks.foreground() for the "with the rule" column). The background work stands for another session's compression
sweep: a task that runs the model's forward pass on 256 tokens over and over, reporting progress between passes
(as every sweep point does). Three timings of the foreground work in the same run:

  quiet         nothing else running
  contended     the background task running, the foreground waiting outside tasks.foreground() (the old rule)
  foreground    the background task running, the foreground waiting inside tasks.foreground() (the rule)

Ratios to quiet are printed (the issue's bar: within 1.3x of quiet with a sweep running). Interleaved over
--repeat rounds, medians reported. The load average is printed: compare ratios, not seconds.

Usage: .venv/bin/python bench/bench_foreground.py [--model minilm-l6] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from explorer import tasks  # noqa: E402
from explorer.analysis.weights import compute_weight_spectra  # noqa: E402
from explorer.models import load_model  # noqa: E402


@dataclass(frozen=True)
class _Foreground(tasks.Spec):
    KIND = "bench-foreground"
    round: int = 0
    mode: str = ""


@dataclass(frozen=True)
class _Sweep(tasks.Spec):
    KIND = "bench-sweep"
    round: int = 0
    mode: str = ""


def _sweep_work(loaded, stop: threading.Event):
    ids = torch.randint(0, loaded.card.vocab_size, (1, 256))

    @torch.no_grad()
    def work(task: tasks.Task) -> int:
        passes = 0
        while not stop.is_set():
            loaded.model(input_ids=ids)
            passes += 1
            task.report(0.5, f"pass {passes}")
        return passes

    return work


def _time_foreground(loaded, spec: _Foreground, use_rule: bool) -> float:
    def work(task: tasks.Task):
        return compute_weight_spectra(loaded.model, device="cpu", progress=task.report)

    start = time.perf_counter()
    task = tasks.get(spec, work, background=True)
    if use_rule:
        with tasks.foreground():
            while not task.wait(0.25):
                pass
    else:
        while not task.wait(0.25):
            pass
    task.value()
    return time.perf_counter() - start


def bench(model_id: str, repeat: int) -> dict[str, list[float]]:
    loaded = load_model(model_id, device="cpu")
    compute_weight_spectra(loaded.model, device="cpu")  # warm-up: first-call costs out of every column
    times: dict[str, list[float]] = {"quiet": [], "contended": [], "foreground": []}
    for r in range(repeat):
        for mode in times:  # interleaved: each round measures every column once
            stop = threading.Event()
            sweep = None
            if mode != "quiet":
                sweep = tasks.get(_Sweep(r, mode), _sweep_work(loaded, stop), background=True)
                time.sleep(1.0)  # the sweep is well under way when the person arrives
            times[mode].append(_time_foreground(loaded, _Foreground(r, mode), use_rule=mode == "foreground"))
            stop.set()
            if sweep is not None:
                sweep.wait(60)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = bench(args.model, args.repeat)
    quiet = statistics.median(times["quiet"])
    print(f"{args.model}: torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    for mode, values in times.items():
        median = statistics.median(values)
        print(
            f"  {mode:<11} median {median:6.2f} s ({quiet and median / quiet:.2f}x quiet)  "
            f"runs: {', '.join(f'{v:.2f}' for v in values)}"
        )


if __name__ == "__main__":
    main()
