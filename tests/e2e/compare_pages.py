"""What the compare-mode browser tests share: open a page with ``vs=`` until B is built and compared, and click
one cell of a layer x head grid."""

from __future__ import annotations

import time

from tests.e2e.streamlit_page import exceptions, wait_until_settled

HEAD_SECTION = "One head: A and B"


def open_compared(browser, url: str, height: int):
    """A new page at ``url`` (a tall viewport: the whole page without scrolling), once the comparison's one-head
    section is drawn (B is built and compared in the background) and the page has settled with no exception."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url)
    deadline = time.time() + 480
    while not page.get_by_text(HEAD_SECTION).count():
        assert time.time() < deadline, f"no '{HEAD_SECTION}' within 480 s"
        time.sleep(1)
    wait_until_settled(page)
    assert exceptions(page) == []
    return page


def click_grid_cell(page, chart, layer: int, head: int, n_layers: int, n_heads: int) -> None:
    """Click cell (layer, head) of a layer x head grid ``chart`` (layer 0 on top), then wait for the rerun."""
    area = chart.locator(".nsewdrag").first.bounding_box()
    page.mouse.click(
        area["x"] + (head + 0.5) / n_heads * area["width"],
        area["y"] + (layer + 0.5) / n_layers * area["height"],
    )
    time.sleep(1)
    wait_until_settled(page)
    assert exceptions(page) == []


def titles(page) -> list[str]:
    """Every Plotly title text on the page."""
    return [t or "" for t in page.locator(".gtitle").evaluate_all("els => els.map(e => e.textContent)")]
