"""The server's warm-up (explorer/ui/warmup.py) loads the model a first visit uses, through the pages' own cache."""

from __future__ import annotations

import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.models.choice import ModelChoice
from explorer.ui import sidebar, warmup
from tests.apptest import APP, assert_page_ok


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
