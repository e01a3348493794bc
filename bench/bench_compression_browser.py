"""The compression page's budget card in a real browser (headless Chromium), per model: how long a visitor waits
for the first screen's answer on a served app, with no caches and after a server restart.

Each visit starts `eigen-explorer serve` (warm-up included) in a new process, waits until it prints "warmed up"
(the server's start: imports and the default model, SmolLM2), then opens /compression?model=<model> and times,
from the browser's `goto`:

- "sidebar": the sidebar's model picker drawn (Streamlit's frontend loaded, the entry script running);
- "card": the budget card's answer on screen ("Across every method, ...");
- "settled": the page's script finished and no spinner or progress bar left (NaN past the timeout; the
  progress bars still showing then are printed, so a visit that never settles says what it was waiting on).

Visits per model, in order: "cold" (an XDG cache with no factors and no stored measurements, a new browser
profile), "restart, new browser" (a new server on the same disk caches, a new browser profile: Streamlit's
frontend downloaded and compiled again) and "restart, returning browser" (a new server, the profile of the
visit before: the frontend from the browser's cache, as for someone who used the app before the restart).
The cache home is made as in bench_compression_page (links to the real cache's model weights, so nothing is
downloaded). Needs Debian's chromium and Playwright (`make test` installs both). Run on a quiet machine.
Usage: .venv/bin/python bench/bench_compression_browser.py [--models smollm2-135m,minilm-l6] [--visits 1|3]
       [--restarts N] (the cold visit, then N restart visits and their median card)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_compression_page import _cold_cache_home  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CARD_TEXT = "Across every method"
TIMEOUT = 900.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cache_home: Path, log_path: Path, trace_path: Path) -> tuple[subprocess.Popen, str, float]:
    """A new `serve` process on a free port, tracing its jobs to ``trace_path``; returns it, its URL and the
    seconds until it printed "warmed up"."""
    port = _free_port()
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(cache_home),
        "PYTHONUNBUFFERED": "1",
        "EIGEN_EXPLORER_JOB_TRACE": str(trace_path),
    }
    log = open(log_path, "w")  # noqa: SIM115 (the process holds it; closed with the process)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "serve", "--port", str(port), "--address", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    while "warmed up" not in log_path.read_text() and "warm-up failed" not in log_path.read_text():
        if proc.poll() is not None or time.perf_counter() - start > TIMEOUT:
            raise RuntimeError(f"the server did not warm up; see {log_path}")
        time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}", time.perf_counter() - start


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _still_busy(page) -> list[str]:
    """The text of every element that keeps wait_until_settled waiting (spinners, skeletons, progress bars)."""
    from tests.e2e.streamlit_page import BUSY_TESTIDS

    selector = ", ".join(f"[data-testid={testid}]" for testid in BUSY_TESTIDS)
    return [e.inner_text()[:200] for e in page.locator(selector).all()]


def browser_visit(playwright, profile: Path, url: str, model: str, log=print) -> dict:
    """Open the compression page in a browser with this profile directory; seconds from `goto` to each mark."""
    from tests.e2e.streamlit_page import exceptions, wait_until_settled

    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        viewport={"width": 1400, "height": 1600},
    )
    try:
        page = context.new_page()
        marks: dict[str, float] = {"goto_epoch": time.time()}
        start = time.perf_counter()
        page.goto(f"{url}/compression?model={model}")
        while "card" not in marks and time.perf_counter() - start < TIMEOUT:
            if (
                "sidebar" not in marks
                and page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").count()
            ):
                marks["sidebar"] = time.perf_counter() - start
            main = page.locator("[data-testid=stMain]")
            if main.count() and CARD_TEXT in main.inner_text():
                marks["card"] = time.perf_counter() - start
            time.sleep(0.05)
        marks.setdefault("card", float("nan"))  # never drawn within the timeout
        marks.setdefault("sidebar", marks["card"])
        log(f"  {model}: sidebar {marks['sidebar']:.1f} s, card {marks['card']:.1f} s")
        try:
            wait_until_settled(page, timeout=TIMEOUT)
            marks["settled"] = time.perf_counter() - start
        except TimeoutError:
            marks["settled"] = float("nan")
            marks["busy_at_timeout"] = _still_busy(page)
            log(f"  {model}: not settled after {TIMEOUT:.0f} s; still showing: {marks['busy_at_timeout']}")
        errors = exceptions(page)
        if errors:
            raise RuntimeError(f"{model}: the page shows an exception: {errors}")
        return marks
    finally:
        context.close()


VISITS = (
    ("cold", "profile-1"),
    ("restart, new browser", "profile-2"),
    ("restart, returning browser", "profile-2"),
)


def visit_plan(restarts: int) -> tuple[tuple[str, str], ...]:
    """The cold visit, then ``restarts`` restart visits alternating a new browser profile and a returning one
    (the first two are VISITS' own): the card after a restart moves by +-0.4 s between single visits, so a
    comparison takes the median of several."""
    plan = [VISITS[0]]
    for i in range(restarts):
        pair = 2 + i // 2
        plan.append((f"restart {i + 1}, {'returning' if i % 2 else 'new'} browser", f"profile-{pair}"))
    return tuple(plan)


def job_timeline(trace_path: Path, since_epoch: float, until_s: float) -> list[str]:
    """The server's task trace (explorer/tasks.py, EIGEN_EXPLORER_JOB_TRACE) as lines "seconds from goto  job  event", up to ``until_s``."""
    if not trace_path.exists():
        return []
    lines = []
    for row in trace_path.read_text().splitlines():
        fields = row.split("\t", 3)
        if len(fields) < 4:  # a line the server is still writing
            continue
        stamp, _thread, job, event = fields
        at = float(stamp) - since_epoch
        if at <= until_s:
            lines.append(f"{at:7.1f} s  {job}: {event}")
    return lines


def bench(models: list[str], n_visits: int = len(VISITS), log=print, restarts: int | None = None) -> dict:
    """Per model the visits' marks; with ``restarts``, visit_plan's visits (and their median card)."""
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as playwright:
        for model in models:
            home = _cold_cache_home()
            work = Path(tempfile.mkdtemp(prefix="bench-comp-browser-"))
            visits = {}
            try:
                plan = VISITS[:n_visits] if restarts is None else visit_plan(restarts)
                for name, profile in plan:
                    trace = work / f"jobs-{len(visits)}.tsv"
                    proc, url, warm_up_s = start_server(home, work / f"server-{len(visits)}.log", trace)
                    log(f"{model}, {name}: server warmed up in {warm_up_s:.1f} s")
                    try:
                        marks = browser_visit(playwright, work / profile, url, model, log)
                        until = TIMEOUT if math.isnan(marks["card"]) else marks["card"]
                        marks["jobs_until_card"] = job_timeline(trace, marks["goto_epoch"], until)
                        log("\n".join(f"    {line}" for line in marks["jobs_until_card"]))
                        visits[name] = {"warm_up_s": warm_up_s, **marks}
                    finally:
                        stop_server(proc)
            finally:
                shutil.rmtree(home)  # links are removed, never followed
                shutil.rmtree(work, ignore_errors=True)
            restart_cards = [v["card"] for name, v in visits.items() if name.startswith("restart")]
            if len(restart_cards) > 1:
                visits["restart median"] = {
                    "card": statistics.median(restart_cards),
                    "card_range": [min(restart_cards), max(restart_cards)],
                }
            results[model] = visits
    log(f"{'model':14s} {'visit':27s} {'warm-up':>8s} {'sidebar':>8s} {'card':>7s} {'settled':>8s}")
    for model, visits in results.items():
        for name, v in visits.items():
            if name == "restart median":
                low, high = v["card_range"]
                log(f"{model:14s} {name:27s} card {v['card']:.2f} s (range {low:.2f}-{high:.2f})")
                continue
            log(
                f"{model:14s} {name:27s} {v['warm_up_s']:7.1f}s {v['sidebar']:7.1f}s {v['card']:6.1f}s "
                f"{v['settled']:7.1f}s"
            )
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m,minilm-l6")
    parser.add_argument("--visits", type=int, default=len(VISITS), choices=range(1, len(VISITS) + 1),
                        help="the first N visits: 1 = cold only")  # fmt: skip
    parser.add_argument("--restarts", type=int,
                        help="the cold visit and this many restart visits (new and returning browser in turn), "
                        "with their median card; overrides --visits")  # fmt: skip
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = bench(args.models.split(","), args.visits, restarts=args.restarts)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
