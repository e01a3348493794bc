"""The PCA & directions page under AppTest: every view, query params both ways, bad input, both embedded models."""

from __future__ import annotations

import re

import pytest

from explorer import wordlists
from tests.apptest import plotly_specs, run_page

PAGE = "pages/directions.py"


def _chart_titles(at) -> list[str]:
    return [spec["layout"]["title"]["text"] for spec in plotly_specs(at)]


def _metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def _percent(text: str) -> float:
    return float(re.match(r"\s*([\d.]+)", text).group(1))


def test_hidden_state_view_defaults():
    at = run_page(PAGE, model="tiny-gpt2")
    assert not at.exception
    titles = _chart_titles(at)
    assert any("principal components" in t for t in titles)
    assert any("Explained variance" in t for t in titles)
    assert at.slider(key="directions_state").value == 1  # the middle of 2 layers


def test_layer_and_options_from_the_link_and_back():
    at = run_page(PAGE, model="tiny-llama", layer=2, dims=3, color="token", skip0=0)
    assert not at.exception
    assert at.slider(key="directions_state").value == 2
    spec = plotly_specs(at)[0]
    assert spec["data"][0]["type"] == "scatter3d"
    assert "after block 1" in spec["layout"]["title"]["text"]  # hidden state 2: the output of block 1
    assert "layer" not in at.query_params  # the old name became `state`
    at.slider(key="directions_state").set_value(0).run()
    assert at.query_params["state"] == "0"
    assert "embedding output" in _chart_titles(at)[0]


def test_nonsense_params_fall_back():
    at = run_page(
        PAGE, model="tiny-bert", view="nope", layer="abc", proj="x", dims="7", color="?", method="bad"
    )
    assert not at.exception and not at.error
    assert at.radio(key="directions_view").value == "tokens"
    assert at.slider(key="directions_state").value == 1


def test_umap_and_animation():
    at = run_page(PAGE, model="tiny-gpt2", proj="umap")
    assert not at.exception
    assert any("UMAP" in t for t in _chart_titles(at))
    at = run_page(PAGE, model="tiny-gpt2", proj="animate")
    assert not at.exception
    assert len(plotly_specs(at)[0]["frames"]) == 3


def test_umap_on_a_too_short_text_explains_itself():
    at = run_page(PAGE, model="tiny-gpt2", text="Hi", proj="umap")
    assert not at.exception
    assert any("UMAP needs at least" in w.value for w in at.warning)


def test_embedding_view():
    at = run_page(PAGE, model="tiny-bert", view="embedding", ewords="red,green,blue,one,two,three")
    assert not at.exception
    spec = plotly_specs(at)[0]
    assert "6 words" in spec["layout"]["title"]["text"]
    assert spec["data"][0]["hovertext"] == ["red", "green", "blue", "one", "two", "three"]


def test_directions_view_defaults_and_control():
    at = run_page(PAGE, model="tiny-llama", view="directions")
    assert not at.exception and not at.error
    titles = _chart_titles(at)
    for expected in ("How one-dimensional", "Bias scores", "layer by layer", "Debias preview"):
        assert any(expected in t for t in titles), expected
    assert _metric(at, "Pairs used") == str(
        len(wordlists.parse_pairs(wordlists.preset_pairs_text("gender"))[0])
    )
    assert "±" in _metric(at, "Random pairs")


def test_directions_params_both_ways():
    at = run_page(
        PAGE, model="tiny-gpt2", view="directions", pairs="cats/cat,dogs/dog,cars/car", words="sheep,data"
    )
    assert not at.exception and not at.error
    assert at.text_area(key="directions_pairs").value.splitlines() == [
        "cats / cat",
        "dogs / dog",
        "cars / car",
    ]
    assert _metric(at, "Pairs used") == "3"
    bias = next(s for s in plotly_specs(at) if "Bias scores" in s["layout"]["title"]["text"])
    assert sorted(bias["data"][0]["y"]) == ["data", "sheep"]
    at.text_area(key="directions_targets").set_value("nurse\npilot\nchef").run()
    assert at.query_params["words"] in ("nurse,pilot,chef", ["nurse,pilot,chef"])
    at.radio(key="directions_method").set_value("static").run()
    assert not at.exception and at.query_params["method"] in ("static", ["static"])
    assert any("static input embeddings" in c.value for c in at.caption)
    at.selectbox(key="directions_preset").set_value("sentiment").run()
    assert at.text_area(key="directions_pairs").value == wordlists.preset_pairs_text("sentiment")
    assert "pairs" not in at.query_params and at.query_params["preset"] in ("sentiment", ["sentiment"])


def test_directions_bad_input_gets_a_message():
    at = run_page(PAGE, model="tiny-gpt2", view="directions", pairs="he/she")
    assert not at.exception
    assert any("at least two word pairs" in e.value for e in at.error)
    at.text_area(key="directions_pairs").set_value("he she\nthree words here\nman woman").run()
    assert not at.exception and not at.error
    assert any("three words here" in w.value for w in at.warning)
    at.text_input(key="directions_template").set_value("no placeholder").run()
    assert not at.exception
    assert any("{}" in e.value for e in at.error)  # the default (contextual) method needs the template
    at.radio(key="directions_method").set_value("static").run()
    assert not at.exception and not at.error
    assert any("{}" in w.value for w in at.warning)  # static vectors shown; only the layer curve complains


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_embedded_models(model):
    at = run_page(PAGE, model=model, timeout=600)
    assert not at.exception and not at.error
    assert len(plotly_specs(at)) == 2
    at = run_page(PAGE, model=model, view="directions", timeout=600)
    assert not at.exception and not at.error
    share = _percent(_metric(at, "Share of PC1"))
    control_mean, control_sd = (float(x) for x in re.findall(r"[\d.]+", _metric(at, "Random pairs"))[:2])
    assert share > control_mean + 5 * control_sd  # gender pairs are clearly one-dimensional
    assert len(plotly_specs(at)) == 4
