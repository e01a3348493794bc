"""Compare mode of the weights page (vs= in the link) under AppTest: it draws A | B | difference, the selected
matrix's two spectra and Delta W, and the outputs panel, on tiny and embedded models, and says what is wrong
with a key it cannot read."""

from __future__ import annotations

import pytest

from explorer.analysis import variants as V
from tests.apptest import assert_page_ok, chart_spec, rerun_until, run_page
from tests.conftest import get_model

WEIGHTS = "pages/weights.py"
TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."


def _labels(at) -> set[str]:
    return {m.label for m in at.metric}


def _compare(model: str, vs: str, timeout: float = 600):
    at = run_page(WEIGHTS, model=model, text=TEXT, vs=vs, timeout=timeout)
    done = {"mean KL(A ‖ B)", "mean cosine of the last hidden states"}
    return rerun_until(at, lambda a: bool(done & _labels(a)), f"compare {model} vs {vs}", timeout=timeout)


def test_tiny_causal_vs_int8_matches_the_analysis(cache_home):
    at = _compare("tiny-gpt2", "int8")
    assert_page_ok(at)
    for key in ("weights_vs_grid", "weights_vs_pair", "weights_vs_delta"):
        chart_spec(at, key)
    loaded = get_model("tiny-gpt2")
    expected = V.compare_outputs_of(loaded, V.build_variant(loaded, "int8"), TEXT, None)
    shown = next(m.value for m in at.metric if m.label == "mean KL(A ‖ B)")
    assert shown == f"{expected.tokens.kl:.3g} nats"
    assert at.query_params["vs"] in ("int8", ["int8"])


def test_tiny_encoder_vs_int4(cache_home):
    at = _compare("tiny-bert", "q4g32")
    assert_page_ok(at)
    assert any("encoder" in c.value for c in at.caption)


def test_nonsense_key_says_what_to_do(cache_home):
    at = run_page(WEIGHTS, model="tiny-gpt2", text=TEXT)
    assert_page_ok(at)
    at.text_input(key="weights_vs").set_value("int5").run()
    assert not at.exception
    assert any("bits must be" in w.value for w in at.warning)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_embedded_models_vs_int8(model):
    at = _compare(model, "int8", timeout=900)
    assert_page_ok(at)
    chart_spec(at, "weights_vs_grid")
    if model == "smollm2-135m":
        top1 = next(m.value for m in at.metric if m.label == "same top-1 token")
        assert float(top1.rstrip("%")) >= 90
