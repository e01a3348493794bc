"""The attention page's compare mode in a real browser: MiniLM against int8 draws the TV grid and the selected
head's A | B heatmaps with no exception, and a click on a grid cell selects that head (heatmaps and link follow)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.streamlit_page import exceptions, wait_until_settled

pytestmark = pytest.mark.e2e

HEAD_SECTION = "One head: A and B"
GRID_TITLE = "mean TV distance of the rows of every head"


def _titles(page) -> list[str]:
    return [t or "" for t in page.locator(".gtitle").evaluate_all("els => els.map(e => e.textContent)")]


def test_attention_compare_grid_click_selects_the_head(browser, server_url, screenshot_dir):
    page = browser.new_page(
        viewport={"width": 1400, "height": 7000}
    )  # tall: the whole page without scrolling
    page.goto(f"{server_url}/attention?model=minilm-l6&vs=int8")
    deadline = time.time() + 480
    while not page.get_by_text(HEAD_SECTION).count():  # B is built and compared in the background
        assert time.time() < deadline, f"no '{HEAD_SECTION}' within 480 s"
        time.sleep(1)
    wait_until_settled(page)
    assert exceptions(page) == []
    assert GRID_TITLE in _titles(page)
    grid = page.locator("[data-testid=stPlotlyChart]").filter(has_text=GRID_TITLE)
    area = grid.locator(".nsewdrag").first.bounding_box()
    n_layers, n_heads, layer, head = 6, 12, 4, 9  # layer 0 on top
    page.mouse.click(
        area["x"] + (head + 0.5) / n_heads * area["width"],
        area["y"] + (layer + 0.5) / n_layers * area["height"],
    )
    time.sleep(1)
    wait_until_settled(page)
    assert exceptions(page) == []
    titles = _titles(page)
    assert f"A: layer {layer} · head {head}" in titles and f"B: layer {layer} · head {head}" in titles
    assert f"vs_layer={layer}" in page.url and f"vs_head={head}" in page.url
    page.screenshot(path=str(screenshot_dir / "attention_compare_minilm_int8.png"))
    page.close()
