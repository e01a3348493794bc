"""Every page of the navigation renders under AppTest on a tiny model and on both embedded models."""

import pytest

from explorer.ui.navigation import PAGES
from tests.apptest import plotly_specs, run_page

PAGE_PATHS = [page.path for page in PAGES]


@pytest.mark.parametrize("page", PAGE_PATHS)
@pytest.mark.parametrize("model", ["tiny-llama", "tiny-bert"])
def test_page_renders_on_tiny_models(page, model):
    at = run_page(page, model=model)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGE_PATHS)
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_page_renders_on_embedded_models(page, model):
    # A cold compression page calibrates and factorizes SmolLM2 (about a minute on a quiet 2-core machine): the
    # limit leaves room for a machine shared with other work, and for a shuffled order that runs it first.
    at = run_page(page, model=model, timeout=600)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_navigation_lists_home_first_and_every_listed_file_exists():
    from pathlib import Path

    assert PAGES[0].path == "pages/home.py"
    for page in PAGES:
        assert Path(page.file).is_file()
    assert len({p.url_path for p in PAGES}) == len(PAGES)


@pytest.mark.slow
def test_home_shows_smollm2_card_and_tokens():
    at = run_page("pages/home.py", model="smollm2-135m", text="Hello world, this is a test.")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Layers"] == "30" and metrics["Heads"] == "9" and metrics["KV heads"] == "3"
    assert metrics["Attention"] == "causal"
    assert "Perplexity on this text" in metrics
    bars = plotly_specs(at)[0]["data"][0]
    assert bars["type"] == "bar" and len(bars["y"]) == 7  # 8 tokens -> 7 next-token losses
    assert any("de-quantized" in i.value for i in at.info)
