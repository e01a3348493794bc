"""The circuits page's compare mode in a real browser: MiniLM against int8 draws the grid and the selected head's
A | B charts with no exception, and a click on a grid cell selects that head (charts and link follow)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.streamlit_page import exceptions, wait_until_settled

pytestmark = pytest.mark.e2e

HEAD_SECTION = "One head: A and B"


def _titles(page) -> list[str]:
    return [t or "" for t in page.locator(".gtitle").evaluate_all("els => els.map(e => e.textContent)")]


def test_circuits_compare_grid_click_selects_the_head(browser, server_url, screenshot_dir):
    page = browser.new_page(
        viewport={"width": 1400, "height": 5000}
    )  # tall: the whole page without scrolling
    page.goto(f"{server_url}/circuits?model=minilm-l6&vs=int8")
    deadline = time.time() + 480
    while not page.get_by_text(HEAD_SECTION).count():  # B is built and compared in the background
        assert time.time() < deadline, f"no '{HEAD_SECTION}' within 480 s"
        time.sleep(1)
    wait_until_settled(page)
    assert exceptions(page) == []
    charts = page.locator("[data-testid=stPlotlyChart]")
    assert charts.count() == 6  # one model: heatmap, eigenvalues, singular values; compare: grid and the pair
    # Click the cell of layer 2, head 7 (6 layers x 12 heads, layer 0 on top) in the grid's plot area.
    area = charts.nth(3).locator(".nsewdrag").first.bounding_box()
    n_layers, n_heads, layer, head = 6, 12, 2, 7
    page.mouse.click(
        area["x"] + (head + 0.5) / n_heads * area["width"],
        area["y"] + (layer + 0.5) / n_layers * area["height"],
    )
    time.sleep(1)
    wait_until_settled(page)
    assert exceptions(page) == []
    assert f"OV eigenvalues, layer {layer} head {head}: A ○ and B ×" in _titles(page)
    assert f"vs_layer={layer}" in page.url and f"vs_head={head}" in page.url
    page.screenshot(path=str(screenshot_dir / "circuits_compare_minilm_int8.png"))
    page.close()
