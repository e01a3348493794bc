"""Every page in a real browser on the default model: loads with no exception box, draws at least one Plotly
chart, and one interaction per page redraws a chart. Screenshots go to tests/e2e/screenshots/."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from explorer.ui.navigation import PAGES
from tests.conftest import write_doubled_series
from tests.e2e.streamlit_page import exceptions, plotly_trace_data, wait_until_settled

pytestmark = pytest.mark.e2e

TEXT = "The cat sat on the mat because the cat was tired."


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(url)
    wait_until_settled(page)
    return page


def _type_text(page, text: str) -> None:
    area = page.locator("[data-testid=stSidebar] textarea").first
    area.fill(text)
    area.press("Control+Enter")


def _change_text(page) -> None:
    _type_text(page, "A different sentence, long enough to change every bar of the chart.")


def _nudge_first_slider(page) -> None:
    """Move the first slider of the page (not the sidebar) two steps with the keyboard."""
    slider = page.locator("[data-testid=stMain] [data-testid=stSlider] input[type=range]").first
    slider.focus()
    at_max = slider.evaluate("el => Number(el.value) >= Number(el.max)")
    key = "ArrowLeft" if at_max else "ArrowRight"  # a slider already at its end would not move
    slider.press(key)
    slider.press(key)


def _pick_gradient_descent(page) -> None:
    page.get_by_text("3 · Gradient descent", exact=True).click()


def _pick_stable_rank(page) -> None:
    page.locator("[data-testid=stMain] [data-testid=stSelectbox]").filter(has_text="Metric").first.click()
    page.get_by_role("option", name="stable rank", exact=True).click()


@pytest.fixture(scope="module")
def series_folder(tmp_path_factory):
    """A two-step series of the tiny Llama for the Checkpoint series page (tests.conftest.write_doubled_series)."""
    root = tmp_path_factory.mktemp("series")
    write_doubled_series(root)
    return root


def _url(server_url: str, info, series_folder) -> str:
    """The page with the test's text; the Checkpoint series page also gets the series folder (it draws nothing
    without one)."""
    url = f"{server_url}/{info.url_path}?text={TEXT.replace(' ', '+')}"
    return url + f"&series={quote(str(series_folder))}" if info.path == "pages/checkpoints.py" else url


# page path -> an interaction that must change a chart's data. Pages that analyse the text get a new text;
# the model-only pages (weights, circuits) get their first slider moved (Curvature: its trace probes, which
# redraws the trace estimate); Learn switches walkthrough; Checkpoint series (given a folder) its metric.
INTERACTIONS = {
    "pages/home.py": _change_text,
    "pages/attention.py": _change_text,
    "pages/eigenvectors.py": _change_text,
    "pages/directions.py": _change_text,
    "pages/gershgorin.py": _change_text,
    "pages/compression.py": _nudge_first_slider,
    "pages/curvature.py": _nudge_first_slider,
    "pages/weights.py": _nudge_first_slider,
    "pages/circuits.py": _nudge_first_slider,
    "pages/learn.py": _pick_gradient_descent,
    "pages/logit_lens.py": _nudge_first_slider,
    "pages/checkpoints.py": _pick_stable_rank,
}


@pytest.mark.parametrize("info", PAGES, ids=[p.url_path or "home" for p in PAGES])
def test_page_loads_and_draws(browser, server_url, screenshot_dir, series_folder, info):
    page = _open(browser, _url(server_url, info, series_folder))
    try:
        assert exceptions(page) == []
        assert page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").count() >= 1, (
            "no Plotly chart drawn"
        )
        page.screenshot(path=str(screenshot_dir / f"{info.url_path or 'home'}.png"), full_page=True)
    finally:
        page.close()


@pytest.mark.parametrize("info", PAGES, ids=[p.url_path or "home" for p in PAGES])
def test_one_interaction_redraws_a_chart(browser, server_url, screenshot_dir, series_folder, info):
    assert info.path in INTERACTIONS, f"no browser interaction written for {info.path}"
    page = _open(browser, _url(server_url, info, series_folder))
    try:
        before = plotly_trace_data(page)
        INTERACTIONS[info.path](page)
        wait_until_settled(page)
        assert exceptions(page) == []
        assert plotly_trace_data(page) != before, "the chart did not change after the interaction"
        page.screenshot(path=str(screenshot_dir / f"{info.url_path or 'home'}-after.png"), full_page=True)
    finally:
        page.close()
