"""The server's warm-up (explorer/ui/warmup.py) loads the model a first visit uses, through the pages' own cache."""

from __future__ import annotations

import subprocess
import sys
import threading

import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.models.choice import ModelChoice
from explorer.ui import sidebar, warmup
from tests.apptest import APP, REPO_ROOT, assert_page_ok


def test_the_warm_up_loads_the_model_a_first_visit_without_a_link_finds(monkeypatch):
    monkeypatch.setattr(sidebar, "DEFAULT_MODEL_ID", "tiny-llama")  # what the default is does not matter here
    st.cache_resource.clear()
    times = warmup.warm_up()
    assert set(times) == {"imports", "model"} and min(times.values()) >= 0

    def load_again(self):
        raise AssertionError(f"{self.model_id} was loaded again: the warm-up's model was not found")

    monkeypatch.setattr(ModelChoice, "load", load_again)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()  # no model in the link: the sidebar's default
    at.switch_page("pages/attention.py")
    at.run()
    assert_page_ok(at)
    assert at.session_state["selection"].model_key == sidebar.default_model_key()


def test_a_failed_warm_up_is_only_logged(monkeypatch, caplog):
    def broken():
        raise RuntimeError("no model here")

    monkeypatch.setattr(warmup, "warm_up", broken)
    warmup.start(wait_for_runtime=False).join(timeout=30)
    assert "warm-up failed" in caplog.text


def test_a_script_run_waits_for_whoever_is_importing_the_app():
    """streamlit_app.py imports the app under the warm-up's lock: while another thread holds it, a run blocks."""
    holding, release = threading.Event(), threading.Event()

    def importer():
        with warmup.IMPORT_LOCK:
            holding.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=importer, daemon=True)
    holder.start()
    holding.wait(timeout=10)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["model"] = "tiny-gpt2"
    runner = threading.Thread(target=at.run, daemon=True)
    try:
        runner.start()
        runner.join(timeout=3)
        assert runner.is_alive(), "the script ran while another thread held the import lock"
    finally:
        release.set()
    runner.join(timeout=120)
    assert not runner.is_alive()
    assert_page_ok(at)


# A fresh interpreter (nothing imported yet), started the way the server is: the warm-up thread first, then a
# script run importing the app as streamlit_app.py does. Without the lock one of the two failed every time on
# a 2-core machine: "ImportError: cannot import name 'AutoConfig' from 'transformers'".
RACE_PROBE = """
import logging, sys
logging.basicConfig(level=logging.WARNING)
from explorer.ui import warmup
assert "transformers" not in sys.modules, "transformers imported before the warm-up: the probe proves nothing"
thread = warmup.start(wait_for_runtime=False)
with warmup.IMPORT_LOCK:
    from explorer.ui.sidebar import render_sidebar  # noqa: F401
thread.join(timeout=300)
print("script imported the app")
"""


def test_a_first_visit_during_the_warm_up_imports_the_app_in_a_fresh_interpreter():
    result = subprocess.run(
        [sys.executable, "-c", RACE_PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0 and "script imported the app" in result.stdout, result.stderr[-3000:]
    assert "warm-up failed" not in result.stderr, result.stderr[-3000:]
    assert "warmed up" in result.stderr, result.stderr[-3000:]
