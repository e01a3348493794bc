"""Waiting on a Streamlit page in a real browser: the script has finished, and Plotly has drawn."""

from __future__ import annotations

import time
import weakref

BUSY_TEXTS = ("Loading ", "Running the model", "Starting eigen-explorer", "Computing")
# Spinners, charts still loading, and progress bars (long computations report progress without a spinner).
BUSY_TESTIDS = ("stSpinner", "stSkeleton", "stProgress")
# Streamlit's own end-to-end tests wait on this attribute of the app root: "initial", "running",
# "rerunRequested", ... and "notRunning" once the script run (or fragment run) has finished. Spinners alone are
# not enough: st.spinner appears only after 0.5 s, and on a loaded server the gap between one spinner going and
# the next element arriving can last seconds, which looked like a settled page with no chart.
SCRIPT_STATE_ATTR = "data-test-script-state"
SCRIPT_DONE = "notRunning"
# Each page's uncaught JavaScript errors and console errors, for the error a test raises: a page stuck in
# "running" was once the browser's own message queue stopped by an error it logged ("Cached ForwardMsg MISS").
FATAL_BROWSER_ERROR = "Websocket connection encountered fatal error"
_BROWSER_ERRORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def watch_browser_errors(page) -> None:
    """Keep ``page``'s uncaught errors and console errors (tests/e2e/conftest.py's browser does this for every
    page it opens)."""
    errors = _BROWSER_ERRORS.setdefault(page, [])
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None,
    )


def browser_errors(page) -> list[str]:
    return list(_BROWSER_ERRORS.get(page, ()))


def wait_until_settled(page, timeout: float = 480.0) -> None:
    """Wait until the script run has finished, the page's text stops changing, no spinner shows, and every
    Plotly chart is drawn."""
    page.wait_for_selector("[data-testid=stApp]", timeout=60_000)
    start, last, stable, why = time.time(), None, 0, ""
    while time.time() - start < timeout:
        fatal = [e for e in browser_errors(page) if FATAL_BROWSER_ERROR in e]
        if fatal:  # the browser takes no more messages: waiting longer cannot help
            raise RuntimeError(f"the browser's connection failed ({page.url}): {fatal[0]}")
        main = page.locator("[data-testid=stMain]")
        text = main.inner_text() if main.count() else ""
        spinners = {t: n for t in BUSY_TESTIDS if (n := page.locator(f"[data-testid={t}]").count())}
        busy_texts = [t for t in BUSY_TEXTS if t in text]
        script_state = page.locator("[data-testid=stApp]").first.get_attribute(SCRIPT_STATE_ATTR)
        charts = page.locator("[data-testid=stPlotlyChart]").count()
        drawn = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").count()
        busy = bool(spinners or busy_texts) or script_state != SCRIPT_DONE
        if text and text == last and not busy and drawn >= charts:
            stable += 1
            if stable >= 4:
                return
        else:
            stable = 0
        # What kept the page from settling, for the error: a timeout alone says nothing about the cause.
        why = (
            f"script state {script_state!r}, busy elements {spinners}, busy texts {busy_texts}, "
            f"{drawn}/{charts} charts drawn, text {'unchanged' if text == last else 'still changing'}"
        )
        last = text
        time.sleep(0.5)
    raise TimeoutError(
        f"page did not settle within {timeout:.0f} s ({page.url}): last seen {why}; "
        f"the page's text ends: {(last or '')[-600:]!r}; the browser's errors: {browser_errors(page)[-5:]!r}"
    )


def plotly_trace_data(page) -> str:
    """A fingerprint of every drawn chart's data (changes when any chart is redrawn with new data)."""
    return page.evaluate(
        "() => JSON.stringify(Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot'))"
        ".map(el => (el.data || []).map(t => [t.x, t.y, t.z, t.r, t.theta])))"
    )


def exceptions(page) -> list[str]:
    """The text of every exception box: the error and its traceback (the test server shows full details)."""
    return [e.inner_text()[:2000] for e in page.locator("[data-testid=stException]").all()]
