"""The state API: settings read links and widget values the documented way, and bind them in the documented
order (link from outside > widget > session memory > default), checked in a real Streamlit script run."""

from __future__ import annotations

import math

import numpy as np
import pytest
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
