"""The circuits page's compare mode in a real browser: MiniLM against int8 draws the grid and the selected head's
A | B charts with no exception, and a click on a grid cell selects that head (charts and link follow)."""

from __future__ import annotations

import pytest

from tests.e2e.compare_pages import click_grid_cell, open_compared, titles

pytestmark = pytest.mark.e2e


def test_circuits_compare_grid_click_selects_the_head(browser, server_url, screenshot_dir):
    page = open_compared(browser, f"{server_url}/circuits?model=minilm-l6&vs=int8", height=5000)
    charts = page.locator("[data-testid=stPlotlyChart]")
    assert charts.count() == 6  # one model: heatmap, eigenvalues, singular values; compare: grid and the pair
    layer, head = 2, 7
    click_grid_cell(page, charts.nth(3), layer, head, n_layers=6, n_heads=12)
    assert f"OV eigenvalues, layer {layer} head {head}: A ○ and B ×" in titles(page)
    assert f"vs_layer={layer}" in page.url and f"vs_head={head}" in page.url
    page.screenshot(path=str(screenshot_dir / "circuits_compare_minilm_int8.png"))
    page.close()
