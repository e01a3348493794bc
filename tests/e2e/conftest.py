"""A real server (`eigen-explorer serve` on a free port) and a real browser (Debian's chromium via Playwright)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.streamlit_page import watch_browser_errors

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_LOG = REPO_ROOT / "tests" / "e2e" / "server.log"
SERVER_LOG_TAIL_LINES = 80
SCREENSHOTS = REPO_ROOT / "tests" / "e2e" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server_url():
    port = _free_port()
    log = open(SERVER_LOG, "w")  # noqa: SIM115 (closed at teardown)
    # No file watcher: the tests edit nothing, and its "Inotify queue overflowed" lines flood the log. Full
    # error details: an exception box in a test then names the error (the app's config redacts it for users).
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
        "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "full",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "serve", "--port", str(port), "--address", "127.0.0.1"],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"the app server did not start within 60 s:\n{_server_log_tail()}")
    _SERVER["proc"] = proc
    yield url
    _SERVER.pop("proc", None)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


_SERVER: dict = {}  # the session's server process, for the failure report's stack dump
STACKS_MARK = "Thread 0x"  # how faulthandler starts each thread's stack


def _server_stacks() -> str:
    """Every thread's stack in the server now (explorer/ui/serve.py prints them on SIGUSR1): where a page that
    never settles is stuck."""
    proc = _SERVER.get("proc")
    if proc is None or proc.poll() is not None or not SERVER_LOG.exists():
        return "(no running server)"
    before = len(SERVER_LOG.read_text(errors="replace"))
    proc.send_signal(signal.SIGUSR1)
    time.sleep(2.0)
    dump = SERVER_LOG.read_text(errors="replace")[before:]
    return dump if STACKS_MARK in dump else "(the server printed no stacks)"


def _server_log_tail() -> str:
    if not SERVER_LOG.exists():
        return "(no server log)"
    lines = re.sub(r"\x1b\[[0-9;]*m", "", SERVER_LOG.read_text(errors="replace")).splitlines()
    return "\n".join(lines[-SERVER_LOG_TAIL_LINES:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test's report carries the end of the server's log (CI keeps only the report)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "server_url" in getattr(item, "fixturenames", ()):
        report.sections.append((f"server log (last {SERVER_LOG_TAIL_LINES} lines)", _server_log_tail()))
        report.sections.append(("server thread stacks at the failure", _server_stacks()))


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (make test installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield _WatchedBrowser(browser)
        browser.close()


class _WatchedBrowser:
    """The browser, whose new pages keep their JavaScript errors for a failing test's message
    (streamlit_page.browser_errors)."""

    def __init__(self, browser) -> None:
        self._browser = browser

    def new_page(self, **kwargs):
        page = self._browser.new_page(**kwargs)
        watch_browser_errors(page)
        return page

    def __getattr__(self, name: str):
        return getattr(self._browser, name)


@pytest.fixture(scope="session")
def screenshot_dir():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
