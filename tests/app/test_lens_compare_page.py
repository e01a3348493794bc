"""Compare mode of the logit lens page (vs= in the link) under AppTest: the per-layer lines of mean KL(A ‖ B) and
top-1 agreement equal a direct computation (the analysis on the two models), the caption's last-layer numbers
are the plotted ones, and the same model from a folder says "No change"."""

from __future__ import annotations

import re

import numpy as np

from explorer.analysis import variants as V
from explorer.analysis.lens_compare import compare_lens
from explorer.models.capture import tokenize
from explorer.models.tiny import build_tiny_model, byte_tokenizer
from tests.apptest import assert_page_ok, chart_spec, rerun_until, run_page
from tests.conftest import get_model

LENS = "pages/logit_lens.py"
TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."
LAST = re.compile(r"mean KL\(A ‖ B\) ([0-9.e+-]+) nats, same top-1 token at ([0-9.]+)%")


def _compare(vs: str):
    at = run_page(LENS, model="tiny-llama", text=TEXT, vs=vs)
    return rerun_until(at, _drawn, f"lens tiny-llama vs {vs}")


def _drawn(at) -> bool:
    try:
        chart_spec(at, "lens_vs_lines")
    except AssertionError:
        return False
    return True


def test_tiny_model_vs_int8_lines_are_the_analysis(cache_home):
    at = _compare("int8")
    assert_page_ok(at)
    loaded = get_model("tiny-llama")
    ids = np.asarray(tokenize(loaded, TEXT)[0])
    expected = compare_lens(loaded, V.build_variant(loaded, "int8").loaded(loaded), ids)
    spec = chart_spec(at, "lens_vs_lines")
    kl, agree = (np.asarray(trace["y"], dtype=float) for trace in spec["data"][:2])
    # The same computation on the same models (the page's lines are float64 values sent as they are).
    assert np.array_equal(kl, expected.mean_kl)
    assert np.array_equal(agree, 100 * expected.top1_agreement)
    caption = next(c.value for c in at.caption if LAST.search(c.value))
    shown_kl, shown_agree = (float(g) for g in LAST.search(caption).groups())
    assert f"{shown_kl:.3g}" == f"{expected.mean_kl[-1]:.3g}"
    assert f"{shown_agree:.1f}" == f"{100 * expected.top1_agreement[-1]:.1f}"


def test_the_same_model_from_a_folder_says_no_change(cache_home, tmp_path):
    build_tiny_model("llama").save_pretrained(tmp_path)
    byte_tokenizer().save_pretrained(tmp_path)
    at = _compare(f"dir:{tmp_path}")
    assert_page_ok(at)
    assert any("No change" in info.value for info in at.info)
    kl = np.asarray(chart_spec(at, "lens_vs_lines")["data"][0]["y"], dtype=float)
    assert np.all(kl == 0.0)
