"""Compare mode of the attention page (vs= in the link) under AppTest: the layer x head grid of the mean TV distance
between A's and B's attention rows, a caption whose head and number are numpy's (from A's and B's captures of the
same text), the selected head's A | B heatmaps; a variant equal to A says "no change", and an MLP-only variant
leaves the first layer's attention exactly as it was but not the later ones'."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis import variants as V
from explorer.models.capture import capture
from explorer.models.tiny import build_tiny_model, byte_tokenizer
from tests.app.compare_pages import TEXT, changed_most, open_compare, three_digits
from tests.apptest import assert_page_ok, chart_spec
from tests.conftest import get_model
from tests.tolerances import sum_rtol

ATTENTION = "pages/attention.py"


def _numpy_tv(model: str, vs: str) -> tuple[np.ndarray, int]:
    """numpy's mean TV distance per head, from A's and B's own captures of TEXT, and the token count."""
    loaded = get_model(model)
    a = np.asarray(capture(loaded, TEXT).attentions, dtype=np.float64)
    b = np.asarray(capture(V.build_variant(loaded, vs).loaded(loaded), TEXT).attentions, dtype=np.float64)
    return 0.5 * np.abs(a - b).sum(axis=-1).mean(axis=-1), a.shape[-1]


def _check_caption_against_numpy(at, model: str, vs: str) -> None:
    tv, n = _numpy_tv(model, vs)
    # float64 sums of n terms then a mean of n rows, each of one sign: sum_rtol(n) twice, relative.
    tol = 2 * sum_rtol(n) * tv
    layer, head, shown = changed_most(at)
    assert (
        tv[layer, head] >= tv.max() - 2 * tol.max()
    )  # numpy's largest (unless two heads tie within rounding)
    assert abs(shown - tv[layer, head]) <= tol[layer, head] + three_digits(tv[layer, head])
    z = np.asarray(chart_spec(at, "attention_vs_grid")["data"][0]["z"], dtype=float)
    assert z.shape == tv.shape
    assert np.all(np.abs(z - tv) <= tol)


def test_tiny_model_vs_int8_caption_is_numpys(cache_home):
    at = open_compare(ATTENTION, "tiny-llama", "int8")
    assert_page_ok(at)
    _check_caption_against_numpy(at, "tiny-llama", "int8")
    layer, head, _ = changed_most(at)
    for who in ("a", "b"):
        title = chart_spec(at, f"attention_vs_heat_{who}")["layout"]["title"]["text"]
        assert title == f"{who.upper()}: layer {layer} · head {head}"
    assert at.query_params["vs"] in ("int8", ["int8"])
    # B − A of the selected head: numpy's difference of the two captures (float64 from float32: exact).
    loaded = get_model("tiny-llama")
    a = np.asarray(capture(loaded, TEXT).attentions[layer, head], dtype=np.float64)
    b_cap = capture(V.build_variant(loaded, "int8").loaded(loaded), TEXT)
    difference = chart_spec(at, "attention_vs_diff")
    assert np.array_equal(
        np.asarray(difference["data"][0]["z"]), np.asarray(b_cap.attentions[layer, head]) - a
    )
    assert difference["layout"]["title"]["text"] == f"B − A: layer {layer} · head {head}"
    # A change of the quantity redraws the grid as B - A of the entropy.
    at.selectbox(key="attention_vs_attn").set_value("entropy").run()
    assert_page_ok(at)
    assert chart_spec(at, "attention_vs_grid")["layout"]["title"]["text"].startswith("Δ row entropy")


def test_the_same_model_from_a_folder_says_no_change(cache_home, tmp_path):
    build_tiny_model("llama").save_pretrained(tmp_path)
    byte_tokenizer().save_pretrained(tmp_path)
    at = open_compare(ATTENTION, "tiny-llama", f"dir:{tmp_path}")
    assert_page_ok(at)
    assert any("No change" in info.value for info in at.info)
    z = np.asarray(chart_spec(at, "attention_vs_grid")["data"][0]["z"], dtype=float)
    assert np.all(z == 0.0)


def test_an_mlp_variant_changes_the_later_layers_only(cache_home):
    """rank:0.5 factors the MLP matrices alone: layer 0's attention is computed before any MLP and stays exactly
    A's; every later layer reads a changed residual stream."""
    at = open_compare(ATTENTION, "tiny-gpt2", "rank:0.5")
    assert_page_ok(at)
    assert not any("No change" in info.value for info in at.info)
    z = np.asarray(chart_spec(at, "attention_vs_grid")["data"][0]["z"], dtype=float)
    assert np.all(z[0] == 0.0) and np.all(z[1:] > 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_embedded_models_vs_int8(model):
    at = open_compare(ATTENTION, model, "int8", timeout=900)
    assert_page_ok(at)
    for key in ("attention_vs_grid", "attention_vs_heat_a", "attention_vs_heat_b"):
        chart_spec(at, key)
    _check_caption_against_numpy(at, model, "int8")
