"""Every bound widget is drawn with its current value as its default, not only as a one-time value.

Streamlit sends a value set through session state to the browser once (``set_value`` on the run that set it).
When that run's messages never reach the browser (a run interrupted by a rerun before its queue was flushed,
as the compression page's pollers do under load), the browser mounts the widget at its proto default: with the
library's defaults that was an empty text area on a page opened from a link (seen in CI: the concurrency test
read "" from the sidebar text on the compression page). With the value as the default the browser shows the
right value on any mount.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from explorer.models.catalogue import PICKER_IDS
from tests.apptest import run_page


def _widget_script():
    import streamlit as st

    from explorer.ui.state import Choice, Flag, Float, Int, PageState, Subset, Text

    page = PageState("t")
    page.slider(Float("tau", 1.0, 0.1, 5.0), "tau", step=0.1)
    page.number_input(Int("layer", 0, 0, 9), "layer", step=1)
    page.select_slider(Choice("tokens", 64, [64, 128, 256]), "tokens")
    page.selectbox(Choice("kind", "a", ["a", "b", "c"]), "kind")
    page.radio(Choice("mode", "x", ["x", "y"]), "mode")
    page.segmented_control(Choice("view", "one", ["one", "two"]), "view")
    page.toggle(Flag("log", False), "log")
    page.checkbox(Flag("disc", True), "disc")
    page.checkboxes(Subset("groups", ("q",), ["q", "k", "v"]), str)
    page.text_area(Text("words", "apple"), "words")
    st.text_input("plain", key="plain")


def _defaults(at: AppTest) -> dict:
    by_key = {}
    for widget in (*at.slider, *at.number_input, *at.toggle, *at.checkbox, *at.text_area):
        by_key[widget.key] = widget.proto.default
    for widget in at.select_slider:  # indices into the options
        by_key[widget.key] = [widget.options[int(i)] for i in widget.proto.default]
    for widget in (*at.selectbox, *at.radio):
        by_key[widget.key] = widget.options[widget.proto.default]
    for widget in at.button_group:
        by_key[widget.key] = [str(widget.options[i]) for i in widget.proto.default]
    return by_key


def _values(at: AppTest) -> dict:
    values = {}
    for kind in ("slider", "number_input", "select_slider", "toggle", "checkbox", "text_area"):
        for widget in getattr(at, kind):
            values[widget.key] = widget.value
    for widget in (*at.selectbox, *at.radio):
        values[widget.key] = widget.value
    for widget in at.button_group:
        values[widget.key] = [widget.value]
    return values


def _same(default, value) -> bool:
    if isinstance(default, str) or isinstance(value, (str, bool)):
        return str(default) == str(value) if not isinstance(value, bool) else bool(default) == value
    if hasattr(default, "__len__") and not isinstance(value, (list, tuple)):
        return len(default) == 1 and float(default[0]) == float(value)
    if isinstance(value, (list, tuple)):
        return [str(d) for d in default] == [str(v) for v in value]
    return float(default) == float(value)


def _check(at: AppTest) -> None:
    defaults, values = _defaults(at), _values(at)
    checked = [key for key in values if key != "plain"]
    assert len(checked) == 12, checked  # every helper drew its widget (three checkboxes for the subset)
    for key in checked:
        assert _same(defaults[key], values[key]), (key, defaults[key], values[key])


def test_every_page_state_widget_defaults_to_its_value_from_the_link_and_after_a_change():
    at = AppTest.from_function(_widget_script)
    for param, raw in {
        "tau": "2.5", "layer": "7", "tokens": "256", "kind": "c", "mode": "y", "view": "two", "log": "1",
        "disc": "0", "groups": "k,v", "words": "pears",
    }.items():  # fmt: skip
        at.query_params[param] = raw
    at.run()
    assert not at.exception
    assert at.text_area(key="t_words").value == "pears" and at.slider(key="t_tau").value == 2.5
    _check(at)
    # The reader moves widgets: the next run's defaults follow.
    at.slider(key="t_tau").set_value(0.5)
    at.selectbox(key="t_kind").set_value("b")
    at.text_area(key="t_words").set_value("plums")
    at.checkbox(key="t_disc").check()
    at.run()
    assert at.text_area(key="t_words").value == "plums" and at.selectbox(key="t_kind").value == "b"
    _check(at)


def test_sidebar_text_and_model_default_to_the_link_and_follow_edits():
    at = run_page("pages/home.py", model="tiny-bert", text="shared link text")
    area = at.sidebar.text_area(key="sidebar_text")
    assert area.value == area.proto.default == "shared link text"
    model = at.sidebar.selectbox(key="sidebar_model")
    assert model.value == "tiny-bert" and model.proto.default == list(PICKER_IDS).index("tiny-bert")
    at.sidebar.text_area(key="sidebar_text").set_value("a new text").run()
    area = at.sidebar.text_area(key="sidebar_text")
    assert area.value == area.proto.default == "a new text"
