"""The shared sidebar: model and text come from the link, survive page switches, and bad input is explained."""

import pytest

from explorer.texts import example_texts
from tests.apptest import run_page


def test_query_params_restore_model_and_text():
    at = run_page("pages/home.py", model="tiny-bert", text="shared link text")
    assert at.sidebar.selectbox(key="sidebar_model").value == "tiny-bert"
    assert at.sidebar.text_area(key="sidebar_text").value == "shared link text"
    assert at.metric[0].value == "2"


def test_selection_is_mirrored_into_query_params():
    at = run_page("pages/home.py", model="tiny-gpt2")
    at.sidebar.text_area(key="sidebar_text").set_value("a new text").run()
    assert at.query_params["text"] == "a new text" and "example" not in at.query_params
    at.sidebar.selectbox(key="sidebar_model").set_value("tiny-bert").run()
    assert "tiny-bert" in str(at.query_params["model"])


def test_example_text_by_name():
    at = run_page("pages/home.py", model="tiny-gpt2", example="code")
    assert at.sidebar.text_area(key="sidebar_text").value == example_texts()["code"]


def test_empty_text_gives_a_message_not_a_traceback():
    at = run_page("pages/home.py", model="tiny-gpt2")
    at.sidebar.text_area(key="sidebar_text").set_value("   ").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)
    # The sidebar still works: a real text brings the page back.
    at.sidebar.text_area(key="sidebar_text").set_value("back again").run()
    assert not at.error and at.metric


def test_unknown_model_in_link_falls_back_with_a_notice(monkeypatch):
    monkeypatch.setenv("EIGEN_EXPLORER_ALLOW_EXTERNAL", "0")
    at = run_page("pages/home.py", model="no-such-model")
    assert not at.exception
    notices = [i.value for i in at.info if i.value.startswith("Link:")]
    assert len(notices) == 1 and "model 'no-such-model' is not available here" in notices[0], notices


def test_bad_local_path_explained_and_recoverable():
    at = run_page("pages/home.py", model="/no/such/folder")
    assert not at.exception
    assert any("not a directory" in e.value for e in at.error)
    at.sidebar.selectbox(key="sidebar_model").set_value("tiny-llama").run()
    assert not at.error


def test_long_text_truncation_is_announced():
    at = run_page("pages/home.py", model="tiny-gpt2", text="many words " * 300)
    assert any("only the first" in i.value for i in at.info)


def test_text_longer_than_the_size_limit_is_cut_with_a_notice(monkeypatch):
    monkeypatch.setenv("EIGEN_EXPLORER_MAX_TEXT_CHARS", "500")
    at = run_page("pages/home.py", model="tiny-gpt2", text="word " * 20_000)
    assert not at.exception
    assert len(at.sidebar.text_area(key="sidebar_text").value) == 500
    notices = [i.value for i in at.info if i.value.startswith("Link:")]
    assert len(notices) == 1 and "text has 100,000 characters" in notices[0], notices
    assert "showing the first 500" in notices[0]


@pytest.mark.slow
def test_length_cost_is_drawn_after_the_page_also_when_the_page_stops():
    """The cost caption under "Max tokens" waits for the page's model load (sidebar._defer, drawn by
    session.require_model) and is there also when the page then stops (an empty text)."""
    at = run_page("pages/home.py", model="smollm2-135m", max_tokens=8192)
    assert not at.exception

    def cost_captions():
        return [c.value for c in at.sidebar.caption if c.value.startswith(":material/timer: At 8,192 tokens")]

    assert len(cost_captions()) == 1
    at.sidebar.text_area(key="sidebar_text").set_value("   ").run()
    assert not at.exception and any("empty" in e.value for e in at.error)
    assert len(cost_captions()) == 1
