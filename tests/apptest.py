"""Run a page of the real app (streamlit_app.py with its sidebar and navigation) under AppTest."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from explorer.ui.streamlit_internals import use_navigation_in_apptest

# The app always calls st.navigation; AppTest would otherwise start every run in the legacy pages/ mode.
use_navigation_in_apptest()

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = str(REPO_ROOT / "streamlit_app.py")


def run_page(
    page: str, *, model: str = "tiny-gpt2", text: str | None = None, timeout: float = 180, **query_params
) -> AppTest:
    """Open ``page`` (e.g. "pages/attention.py") as a link with these query params would, run it, return it.

    ``at.exception`` holds uncaught exceptions; ``at.error`` the st.error boxes.
    """
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.query_params["model"] = model
    if text is not None:
        at.query_params["text"] = text
    for key, value in query_params.items():
        at.query_params[key] = str(value)
    at.run()  # the entry point first: it registers the pages (st.navigation) and draws the sidebar
    if page != "pages/home.py":
        at.switch_page(page)
        at.run()
    return at


def _decode_typed_arrays(value):
    """Plotly 7 serializes numeric arrays as {"dtype": "f8", "bdata": base64, "shape": "r, c"}: decode them to
    numpy arrays so tests read numbers, not encodings."""
    import base64

    import numpy as np

    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            if "shape" in value:
                array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
            return array
        return {key: _decode_typed_arrays(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_typed_arrays(item) for item in value]
    return value


def plotly_specs(at: AppTest) -> list[dict]:
    """The Plotly figure JSON of every chart on the page (data and layout), in page order, with numeric
    arrays decoded to numpy."""
    import json

    return [_decode_typed_arrays(json.loads(chart.proto.spec)) for chart in at.get("plotly_chart")]


def assert_page_ok(at: AppTest) -> None:
    """The run raised nothing and drew no st.error box (each is listed if it did)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def rerun_until(
    at: AppTest, done: Callable[[AppTest], bool], what: str, *, timeout: float = 600, every: float = 2.0
) -> AppTest:
    """Rerun the page, as its pollers do in a browser, until ``done(at)``: work a page hands to a background
    job (e.g. the compression page's first measurement on a cold cache) is drawn by a later run, not the first.
    Every run must be free of exceptions and error boxes; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert_page_ok(at)
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s of reruns"
        time.sleep(every)
        at.run()
    return at


def spec_titled(at: AppTest, start: str) -> dict:
    """The decoded Plotly JSON of the first chart whose title starts with ``start``."""
    for spec in plotly_specs(at):
        if spec["layout"].get("title", {}).get("text", "").startswith(start):
            return spec
    raise AssertionError(f"no chart titled {start!r}: {[s['layout'].get('title') for s in plotly_specs(at)]}")


def chart_spec(at: AppTest, key: str) -> dict:
    """The decoded Plotly JSON of the chart drawn with widget key ``key`` (st.plotly_chart(..., key=key))."""
    import json

    for chart in at.get("plotly_chart"):
        if chart.proto.id and key in chart.proto.id:
            return _decode_typed_arrays(json.loads(chart.proto.spec))
    raise AssertionError(f"no chart with key {key!r}")
