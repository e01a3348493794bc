"""The compression page's budget card in a real browser (headless Chromium), per model: how long a visitor waits
for the first screen's answer on a served app, with no caches and after a server restart.

Each visit starts `eigen-explorer serve` (warm-up included) in a new process, waits until it prints "warmed up"
(the server's start: imports and the default model, SmolLM2), then opens /compression?model=<model> and times,
from the browser's `goto`:

- "sidebar": the sidebar's model picker drawn (Streamlit's frontend loaded, the entry script running);
- "card": the budget card's answer on screen ("Across every method, ...");
- "settled": the page's script finished and no spinner or progress bar left.

Visits per model, in order: "cold" (an XDG cache with no factors and no stored measurements, a new browser
profile), "restart, new browser" (a new server on the same disk caches, a new browser profile: Streamlit's
frontend downloaded and compiled again) and "restart, returning browser" (a new server, the profile of the
visit before: the frontend from the browser's cache, as for someone who used the app before the restart).
The cache home is made as in bench_compression_page (links to the real cache's model weights, so nothing is
downloaded). Needs Debian's chromium and Playwright (`make test` installs both). Run on a quiet machine.
Usage: .venv/bin/python bench/bench_compression_browser.py [--models smollm2-135m,minilm-l6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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


def start_server(cache_home: Path, log_path: Path) -> tuple[subprocess.Popen, str, float]:
    """A new `serve` process on a free port; returns it, its URL and the seconds until it printed "warmed up"."""
    port = _free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONUNBUFFERED": "1"}
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


def browser_visit(playwright, profile: Path, url: str, model: str) -> dict:
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
        marks: dict[str, float] = {}
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
        wait_until_settled(page, timeout=TIMEOUT)
        marks["settled"] = time.perf_counter() - start
        errors = exceptions(page)
        if errors:
            raise RuntimeError(f"{model}: the page shows an exception: {errors}")
        return marks
    finally:
        context.close()


def bench(models: list[str], log=print) -> dict:
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as playwright:
        for model in models:
            home = _cold_cache_home()
            work = Path(tempfile.mkdtemp(prefix="bench-comp-browser-"))
            visits = {}
            try:
                for name, profile in (
                    ("cold", work / "profile-1"),
                    ("restart, new browser", work / "profile-2"),
                    ("restart, returning browser", work / "profile-2"),
                ):
                    proc, url, warm_up_s = start_server(home, work / f"server-{len(visits)}.log")
                    try:
                        visits[name] = {
                            "warm_up_s": warm_up_s,
                            **browser_visit(playwright, profile, url, model),
                        }
                    finally:
                        stop_server(proc)
            finally:
                shutil.rmtree(home)  # links are removed, never followed
                shutil.rmtree(work, ignore_errors=True)
            results[model] = visits
    log(f"{'model':14s} {'visit':27s} {'warm-up':>8s} {'sidebar':>8s} {'card':>7s} {'settled':>8s}")
    for model, visits in results.items():
        for name, v in visits.items():
            log(
                f"{model:14s} {name:27s} {v['warm_up_s']:7.1f}s {v['sidebar']:7.1f}s {v['card']:6.1f}s "
                f"{v['settled']:7.1f}s"
            )
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m,minilm-l6")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = bench(args.models.split(","))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
