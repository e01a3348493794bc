"""The state API: settings read links and widget values the documented way, and bind them in the documented
order (link from outside > widget > session memory > default), checked in a real Streamlit script run."""

from __future__ import annotations

import math
from urllib import parse

import numpy as np
import pytest
from streamlit.runtime.state.query_params import QueryParams
from streamlit.testing.v1 import AppTest

from explorer.analysis.directions import DirectionAnalysis
from explorer.spectra.semantic import Control, Direction
from explorer.ui.state import Choice, Flag, Float, Int, Text
from explorer.ui.verdicts import ONE_DIMENSIONAL_Z, direction_verdict


def test_int_parses_clamps_and_rejects_nonsense():
    layer = Int("layer", 3, 0, 5)
    assert [layer.parse(raw) for raw in ("2", "-3", "99", "abc", "1e9", "2.5", "")] == [
        2,
        0,
        5,
        None,
        None,
        None,
        None,
    ]
    assert layer.clean(7) == 5 and layer.clean(True) is None and layer.clean(math.nan) is None
    assert Int("k", 6, 1, 2).default == 2  # a default outside a model-dependent range is clamped into it


def test_float_parses_clamps_and_rejects_nan():
    tau = Float("tau", 1.0, 0.1, 5.0)
    assert [tau.parse(raw) for raw in ("0.5", "-inf", "inf", "nan", "NaN", "x")] == [
        0.5,
        0.1,
        5.0,
        None,
        None,
        None,
    ]
    assert tau.format(0.30000000000000004) == "0.3" and tau.is_default(1.0)


def test_choice_flag_and_text():
    dims = Choice("dims", 2, (2, 3))
    assert (dims.parse("3"), dims.parse("7"), dims.format(3)) == (3, None, "3")
    assert Choice("metric", "nope", ["a", "b"]).default == "a"
    discs = Flag("discs", False, on="columns", off="rows")
    assert (discs.parse("columns"), discs.parse("rows"), discs.parse("diagonal")) == (True, False, None)
    assert discs.format(True) == "columns"
    words = Text(
        "words",
        "a\nb",
        from_link=lambda raw: raw.replace(",", "\n") or None,
        to_link=lambda t: t.replace("\n", ","),
    )
    assert words.parse("x,y") == "x\ny" and words.parse("") is None
    assert words.is_default("a\nb") and not words.is_default("a\nc")


def _script():
    import streamlit as st

    from explorer.ui.state import Float, PageState

    page = PageState("demo")
    if st.session_state.get("show", True):
        page.slider(Float("tau", 1.0, 0.1, 5.0, aliases=("temperature",)), "tau", step=0.05)


def _run(**query) -> AppTest:
    at = AppTest.from_function(_script)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_bind_order_link_widget_memory_default():
    at = _run()
    assert at.slider(key="demo_tau").value == 1.0 and "tau" not in at.query_params  # default, left out
    at = _run(tau="2.5")
    assert at.slider(key="demo_tau").value == 2.5 and at.query_params["tau"] == "2.5"  # from the link
    at.slider(key="demo_tau").set_value(3.0).run()
    assert at.slider(key="demo_tau").value == 3.0 and at.query_params["tau"] == "3"  # the widget wins over
    at.query_params["tau"] = "0.5"  # ... until the link changes from outside (a page link, an edited address)
    at.run()
    assert at.slider(key="demo_tau").value == 0.5
    at.session_state["show"] = False  # the widget leaves the page: Streamlit drops its state
    at.run()
    del at.query_params["tau"]  # and navigation clears the link
    at.session_state["show"] = True
    at.run()
    assert at.slider(key="demo_tau").value == 0.5  # session memory
    at = _run(tau="nan")
    assert at.slider(key="demo_tau").value == 1.0 and "tau" not in at.query_params  # nonsense: default
    at = _run(tau="99")
    assert at.slider(key="demo_tau").value == 5.0 and at.query_params["tau"] == "5"  # clamped, link rewritten
    at = _run(temperature="2")
    assert at.slider(key="demo_tau").value == 2.0  # an old name still opens the view
    assert "temperature" not in at.query_params and at.query_params["tau"] == "2"


class LaggingBrowser:
    """The browser's end of the link, for AppTest: each rerun request carries the URL the browser has at that
    moment, and the server's URL updates (one page_info_changed message per write to st.query_params) reach it
    only ``lag`` runs later, as when a key is pressed again before the last run's messages arrived. Streamlit
    rebuilds st.query_params from the request's URL at the start of every run, so this is what the server sees.

    ``url``: the address bar now; ``eventual_url()``: the address bar once every message on its way has
    arrived (what the reader ends up with if they stop here)."""

    def __init__(self, at: AppTest, monkeypatch, lag: int):
        self.at, self.lag = at, lag
        self.url = {k: str(v) for k, v in at.query_params.items()}
        self.in_flight: list[list[str]] = []
        self._sent: list[str] = []
        send = QueryParams._send_query_param_msg

        def record(params):
            self._sent.append(parse.urlencode(params._query_params, doseq=True))
            send(params)

        monkeypatch.setattr(QueryParams, "_send_query_param_msg", record)

    @staticmethod
    def _apply(url: dict, batches: list[list[str]]) -> dict:
        for batch in batches:
            for query in batch:
                url = dict(parse.parse_qsl(query, keep_blank_values=True))
        return url

    def run(self) -> AppTest:
        """Send a rerun request with the current URL (after the messages older than ``lag`` runs arrived)."""
        arrived = max(0, len(self.in_flight) - (self.lag - 1))
        self.url = self._apply(self.url, self.in_flight[:arrived])
        del self.in_flight[:arrived]
        self.at.query_params.clear()
        self.at.query_params.update(self.url)
        self._sent.clear()
        self.at.run()
        self.in_flight.append(list(self._sent))
        return self.at

    def eventual_url(self) -> dict:
        return self._apply(self.url, self.in_flight)


def _rapid_script():
    import streamlit as st

    from explorer.ui.state import Float, Int, PageState

    page = PageState("demo")
    layer = page.number_input(Int("layer", 0, 0, 9), "layer", step=1)

    @st.fragment
    def views():  # as on the attention page: the temperature slider reruns only this part
        tau = page.slider(Float("tau", 1.0, 0.1, 5.0), "tau", step=0.05)
        st.markdown(f"drawn with layer={layer} tau={tau:g}")

    views()


# Arrow keys on the slider (up, a wiggle back and forth, then down through the default 1.0 that leaves the link,
# then up again), with a change of the other widget (outside the fragment) in the middle: (widget key, value).
# The wiggle is the case where a request's stale URL already says the newest value while a later one is on its
# way to the browser.
RAPID_STEPS = [
    *[("demo_tau", round(1.0 + 0.05 * i, 2)) for i in range(1, 6)],
    *[("demo_tau", value) for value in (1.3, 1.25, 1.3, 1.25, 1.2)],
    ("demo_layer", 3),
    *[("demo_tau", round(1.2 - 0.05 * i, 2)) for i in range(1, 9)],
    ("demo_layer", 4),
    *[("demo_tau", round(0.85 + 0.05 * i, 2)) for i in range(1, 4)],
]


@pytest.mark.parametrize("lag", [1, 2, 3])
def test_rapid_changes_keep_widget_figure_and_link_together(monkeypatch, lag):
    """However late the browser applies the link updates, the newest widget value is the one drawn, and the
    address bar ends on it: a stale URL in a request is an echo of this session's own writes, not a link from
    outside (before the fix, the page jumped back to the value of two key presses ago)."""
    at = AppTest.from_function(_rapid_script).run()
    browser = LaggingBrowser(at, monkeypatch, lag)
    want = {"demo_layer": 0, "demo_tau": 1.0}
    for key, value in RAPID_STEPS:
        want[key] = value
        widget = at.slider(key=key) if key == "demo_tau" else at.number_input(key=key)
        widget.set_value(value)
        browser.run()
        assert not at.exception, [e.value for e in at.exception]
        layer, tau = at.number_input(key="demo_layer").value, at.slider(key="demo_tau").value
        assert (layer, tau) == (want["demo_layer"], want["demo_tau"])  # the widgets show the newest input
        assert at.markdown[0].value == f"drawn with layer={layer} tau={tau:g}"  # and that is what is drawn
        link = browser.eventual_url()
        assert link.get("tau") == (None if tau == 1.0 else f"{tau:g}"), (key, value, browser.url, link)
        assert link.get("layer") == (None if layer == 0 else str(layer)), (key, value, link)


def test_back_button_brings_an_old_link_back():
    """The back button is the one way a link this session wrote itself comes back on purpose (Streamlit marks
    the run as history navigation): it sets the widget, as a link from outside does."""
    at = _run(tau="2.5")
    at.slider(key="demo_tau").set_value(3.0).run()
    at.query_params["tau"] = "2.5"  # an echo of the first run's write: the widget keeps its value
    at.run()
    assert at.slider(key="demo_tau").value == 3.0 and at.query_params["tau"] == "3"
    from streamlit.runtime.scriptrunner_utils.script_run_context import ScriptRunContext

    reset = ScriptRunContext.reset

    def back(ctx, *args, **kwargs):
        reset(ctx, *args, **{**kwargs, "is_history_navigation": True})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ScriptRunContext, "reset", back)
        at.query_params["tau"] = "2.5"
        at.run()
    assert at.slider(key="demo_tau").value == 2.5 and at.query_params["tau"] == "2.5"


def _analysis(share: float, control_shares) -> DirectionAnalysis:
    direction = Direction(vector=None, explained=share, explained_ratio=None, pair_projections=None)
    return DirectionAnalysis(
        method="static",
        layer=None,
        pairs=(),
        direction=direction,
        control=Control(np.asarray(control_shares, dtype=float), n_pairs=3, seed=0),
        targets=(),
        bias=None,
        debias=None,
        pieces={},
    )


def test_direction_verdict_thresholds_at_three_standard_deviations():
    control = [0.1, 0.2, 0.3]  # mean 0.2, sample std 0.1
    above = direction_verdict(_analysis(0.2 + 0.1 * (ONE_DIMENSIONAL_Z + 0.5), control))
    # a few flops on O(1) numbers: rounding ~1e-15, far inside rel 1e-6
    assert above.z == pytest.approx(ONE_DIMENSIONAL_Z + 0.5)
    assert above.sentence.startswith("clearly one-dimensional") and above.ratio == pytest.approx(
        (0.2 + 0.35) / 0.2
    )
    below = direction_verdict(_analysis(0.2 + 0.1 * (ONE_DIMENSIONAL_Z - 0.5), control))
    assert below.sentence.startswith("not clearly above random pairs")
