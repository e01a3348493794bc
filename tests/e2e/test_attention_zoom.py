"""The attention heatmap's zoom by box selection in a real browser: a box dragged on the overview becomes the
zoom window (range inputs, link params q_from..k_to, a zoom chart over exactly the boxed tokens), and typed
token selections draw their summed-attention charts."""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from tests.e2e.streamlit_page import exceptions, wait_until_settled

pytestmark = pytest.mark.e2e

# tiny-gpt2 reads bytes: about 60 tokens, a chart of 60 x 60 cells at full resolution.
TEXT = "The cat sat on the mat because the cat was tired, and slept."


def _titles(page) -> list[str]:
    titles = page.evaluate(
        "() => Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot'))"
        ".map(el => (el.layout && el.layout.title && el.layout.title.text) || '')"
    )
    return [re.sub(r"<[^>]+>", "", t) for t in titles]


def test_box_select_zooms_and_tokens_sum(browser, server_url, screenshot_dir):
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{server_url}/attention?{urlencode(dict(model='tiny-gpt2', text=TEXT, layer=1, head=1))}")
    wait_until_settled(page)
    assert not exceptions(page)
    chart = page.locator("[data-testid=stPlotlyChart]").filter(has_text="attention weights").first
    chart.scroll_into_view_if_needed()
    area = chart.locator(".nsewdrag").first.bounding_box()
    # The plot area spans tokens -0.5 .. T - 0.5 on both axes: a box from 25 % to 50 % of it covers the tokens
    # whose centres lie between T/4 - 0.5 and T/2 - 0.5.
    n = round(
        page.evaluate(
            "() => Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot'))"
            ".find(el => (el.layout.title.text || '').includes('attention weights')).layout.xaxis.range[1]"
        )
        + 0.5
    )
    expected = (math.ceil(n / 4 - 0.5), math.floor(n / 2 - 0.5))
    x0, x1 = area["x"] + 0.25 * area["width"], area["x"] + 0.5 * area["width"]
    y0, y1 = area["y"] + 0.25 * area["height"], area["y"] + 0.5 * area["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()
    page.wait_for_timeout(1500)
    wait_until_settled(page)
    assert not exceptions(page)
    params = {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}
    window = [int(params[p]) for p in ("q_from", "q_to", "k_from", "k_to")]
    # Pixel rounding moves an edge by at most one token either way.
    for got, want in zip(window, expected * 2, strict=True):
        assert abs(got - want) <= 1, (window, expected, params)
    q0, q1, k0, k1 = window
    assert f"Layer 1 · head 1: zoom, queries {q0}–{q1} × keys {k0}–{k1}" in _titles(page)
    box = page.locator("[data-testid=stNumberInput]").filter(has_text="Queries from").locator("input").first
    assert int(box.input_value()) == q0
    query_tokens = page.get_by_label("Query tokens (their rows summed)")
    query_tokens.fill("10-20, 35")
    query_tokens.press("Enter")
    page.wait_for_timeout(1000)
    wait_until_settled(page)
    assert not exceptions(page)
    assert "Layer 1 · head 1: summed attention: from queries 10-20, 35" in _titles(page)
    assert parse_qs(urlparse(page.url).query)["queries"] == ["10-20, 35"]
    page.screenshot(path=str(screenshot_dir / "attention-zoom.png"), full_page=True)
