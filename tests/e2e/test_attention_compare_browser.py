"""The attention page's compare mode in a real browser: MiniLM against int8 draws the TV grid and the selected
head's A | B heatmaps with no exception, and a click on a grid cell selects that head (heatmaps and link follow)."""

from __future__ import annotations

import pytest

from tests.e2e.compare_pages import click_grid_cell, open_compared, titles

pytestmark = pytest.mark.e2e

GRID_TITLE = "mean TV distance of the rows of every head"


def test_attention_compare_grid_click_selects_the_head(browser, server_url, screenshot_dir):
    page = open_compared(browser, f"{server_url}/attention?model=minilm-l6&vs=int8", height=7000)
    assert GRID_TITLE in titles(page)
    grid = page.locator("[data-testid=stPlotlyChart]").filter(has_text=GRID_TITLE)
    layer, head = 4, 9
    click_grid_cell(page, grid, layer, head, n_layers=6, n_heads=12)
    shown = titles(page)
    assert f"A: layer {layer} · head {head}" in shown and f"B: layer {layer} · head {head}" in shown
    assert f"vs_layer={layer}" in page.url and f"vs_head={head}" in page.url
    page.screenshot(path=str(screenshot_dir / "attention_compare_minilm_int8.png"))
    page.close()
