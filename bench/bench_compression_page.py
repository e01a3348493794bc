"""The compression page as a visitor meets it, per model: a first visit with no caches (a new process, an empty
factor store), a first visit after a restart (a new process, the factors and measurements on disk), the same on
a warmed-up server (explorer/ui/warmup.py: what `eigen-explorer serve` does in the background as it starts, the
app's imports and the default model, SmolLM2; timed separately), and a change of setting (the share slider,
same process). Each visit runs the page under AppTest in its own process; times are wall-clock seconds from the
start of the visit (after the warm-up where there is one) to

- "card": the budget card's answer computed (the first screen: what the browser draws next); on a cold visit
  that is the first rerun with a measured point, not the first run;
- "page drawn": the end of the first run of the page (model loading, the card's factors, its measurement, the
  figures, the greedy continuations at the bottom);
- "budget answered": until the background budget sweep is done and the answer final;
- "setting changed": moving the share slider to 80 % and the rerun that follows.

Ratios are against the no-cache visit of the same model in the same run. An empty factor store is made with a
temporary XDG_CACHE_HOME whose entries link to the real cache's (model weights, Hugging Face files) except the
factor store and the stored measurements, so nothing is downloaded and only those are cold; the restart visits
read both back. Run on a quiet machine for numbers to
quote. Usage: .venv/bin/python bench/bench_compression_page.py [--models tiny-gpt2,smollm2-135m,minilm-l6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/compression.py"
TIMEOUT = 1800


def child(model: str, warm: bool = False) -> dict:
    """One visit in this (fresh) process: the timings of the module docstring."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    warm_up_s = None
    if warm:
        from explorer.ui import warmup

        warm_up_s = sum(warmup.warm_up().values())
    from explorer.ui import compression_text
    from tests.apptest import assert_page_ok, run_page

    card = []
    headline = compression_text.tradeoff_headline

    def timed_headline(*args, **kwargs):
        card.append(time.perf_counter() - start)
        return headline(*args, **kwargs)

    compression_text.tradeoff_headline = timed_headline
    start = time.perf_counter()
    at = run_page(PAGE, model=model, timeout=TIMEOUT, comp_store="lowrank")  # the share slider is shown
    drawn = time.perf_counter() - start
    assert_page_ok(at)
    while any("Still measuring" in (p.proto.text or "") for p in at.get("progress")):
        time.sleep(1)
        at.run()
    answered = time.perf_counter() - start
    assert_page_ok(at)
    start = time.perf_counter()
    at.slider(key="compression_share").set_value(80).run()
    changed = time.perf_counter() - start
    assert_page_ok(at)
    return {
        "card_s": card[0] if card else None,
        "drawn_s": drawn,
        "answered_s": answered,
        "changed_s": changed,
        "warm_up_s": warm_up_s,
        "headline": next((m.value for m in at.markdown if m.value.startswith("#### ")), ""),
    }


def _cold_cache_home() -> Path:
    """A temporary XDG_CACHE_HOME linking every entry of the real one, and of its eigen-explorer folder only the
    model files (``models``: de-quantized checkpoints, so nothing is re-made): no stored results, factors or
    measurements, whichever layout wrote them (the one store, or the older factors/ and results/ folders)."""
    real = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = Path(tempfile.mkdtemp(prefix="bench-comp-cache-"))
    for entry in real.iterdir():
        if entry.name != "eigen-explorer":
            (home / entry.name).symlink_to(entry)
    ours = home / "eigen-explorer"
    ours.mkdir()
    for entry in (real / "eigen-explorer").iterdir() if (real / "eigen-explorer").exists() else ():
        if entry.name == "models":
            (ours / entry.name).symlink_to(entry)
    return home


def visit(model: str, cache_home: Path, warm: bool = False) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", model, *(["--warm"] if warm else [])],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _seconds(value: float | None) -> str:
    """The card's time; "-" when no run drew an answer (nothing measured yet when the visit ended)."""
    return "-" if value is None else f"{value:.1f}s"


def _ratio(value: float | None, cold: float | None) -> str:
    return "-" if value is None or not cold else f"{value / cold:.2f}"


def bench(models: list[str], log=print) -> dict:
    results = {}
    for model in models:
        home = _cold_cache_home()
        cold = visit(model, home)
        files = sorted((home / "eigen-explorer" / "factors").glob("*.safetensors"))
        size = sum(f.stat().st_size for f in files)
        try:
            restart = visit(model, home)
            warmed = visit(model, home, warm=True)
        finally:
            shutil.rmtree(home)  # links are removed, never followed
        results[model] = {
            "cold": cold,
            "restart": restart,
            "restart, warmed server": warmed,
            "factor_files": len(files),
            "factor_mb": size / 1e6,
        }
    log(
        f"{'model':14s} {'visit':23s} {'card':>6s} {'page drawn':>11s} {'answered':>9s} {'change':>7s}   "
        f"{'card/cold':>9s} {'answered/cold':>13s}"
    )
    for model, r in results.items():
        cold = r["cold"]
        for name in ("cold", "restart", "restart, warmed server"):
            v = r[name]
            log(
                f"{model:14s} {name:23s} {_seconds(v['card_s']):>6s} {v['drawn_s']:10.1f}s {v['answered_s']:8.1f}s "
                f"{v['changed_s']:6.1f}s   {_ratio(v['card_s'], cold['card_s']):>9s} "
                f"{v['answered_s'] / cold['answered_s']:13.2f}"
            )
        log(f"{model:14s} warm-up before the warmed visit: {r['restart, warmed server']['warm_up_s']:.1f} s")
        log(f"{model:14s} factors on disk: {r['factor_files']} files, {r['factor_mb']:.0f} MB")
        log(f"{model:14s} answer: {r['restart']['headline']}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m,minilm-l6")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.warm)))
        return 0
    result = bench(args.models.split(","))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
