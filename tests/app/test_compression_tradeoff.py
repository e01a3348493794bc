"""The compression page's "low rank, fewer bits, or both" section: the chart's int8 point is the perplexity of
a hand-quantized copy, computed here by our own loop; the answer over every method names a setting that fits;
the cached model is untouched."""

import copy

import numpy as np
import pytest
import torch

from explorer.analysis import compression as comp
from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.models import load_model
from explorer.models.capture import tokenize
from explorer.spectra.quantization import INT8, fake_quantize
from tests.apptest import assert_page_ok, chart_spec, run_page
from tests.conftest import SAMPLE_TEXT

PAGE = "pages/compression.py"
BUDGET_TOKENS = 512  # the held-out passage's token cap on the page, written out


def _heldout_perplexity(model, loaded) -> float:
    ids, _n, _messages = tokenize(loaded, comp.heldout_text(), BUDGET_TOKENS)  # cut to the model's limit too
    ids = [int(i) for i in ids]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    nll = -torch.log_softmax(logits[:-1], -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return float(torch.exp(nll.mean()))


def test_tradeoff_chart_and_answer_on_tiny_gpt2():
    at = run_page(PAGE, model="tiny-gpt2", text=SAMPLE_TEXT, timeout=900)
    assert_page_ok(at)
    loaded = load_model("tiny-gpt2")
    spec = chart_spec(at, "compression_tradeoff")
    series = {trace["name"]: trace for trace in spec["data"]}
    assert {
        "int8",
        "4-bit, groups of 32",
        "top directions fp16 + 4-bit residual",
        "SVD-LLM factors in int8",
    } <= set(series)
    # The int8 point, recomputed: a deep copy whose MLP weights are overwritten with dequant(quant(W)).
    hand = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for mat in weight_matrices(hand):
            if mat.kind in comp.DEFAULT_KINDS:
                mat.weight.copy_(fake_quantize(mat.weight.detach().clone(), INT8))
    expected = _heldout_perplexity(hand, loaded)
    # Same weights, kernels in another order (Conv1D addmm against F.linear): float32 rounding of the logits,
    # through exp of a mean over ~500 tokens: relative 1e-4 is far above it and far below any quantization effect.
    assert float(np.asarray(series["int8"]["y"])[0]) == pytest.approx(expected, rel=1e-4)
    assert float(np.asarray(series["original (fp16)"]["x"])[0]) == 2 * loaded.card.n_params / 1e6
    # The answer over every method, redone from the chart's own numbers: the fewest MB whose perplexity is at
    # most 1.1 x the original's (the default budget); points on the weights' own grid would be left out.
    answer = next(
        m.value for m in at.markdown if m.value.startswith(("#### Across every method", "#### No method"))
    )
    limit = 1.1 * float(np.asarray(series["original (fp16)"]["y"])[0])
    fitting = [
        (float(x), float(y), text)  # ties in size go to the smaller perplexity
        for name, trace in series.items()
        if name != "original (fp16)" and not name.startswith("current")
        for x, y, text in zip(np.asarray(trace["x"]), np.asarray(trace["y"]), trace["text"], strict=True)
        if float(y) <= limit
    ]
    if fitting:
        assert f"**{min(fitting)[2]}**" in answer, (min(fitting), answer)
    else:
        assert answer.startswith("#### No method")
    from explorer.ui.cache import cached_model

    cached = cached_model(at.session_state["selection"].model_key)
    assert weights_checksum(cached.model) == weights_checksum(loaded.model)


def test_healing_is_an_explicit_action_with_its_result_on_the_chart():

    at = run_page(PAGE, model="tiny-gpt2", text=SAMPLE_TEXT, timeout=900, heal_steps="10", heal_lr="0.001")
    assert_page_ok(at)
    assert at.session_state["compression_heal_steps"] == 10
    assert "healed low rank" not in {t["name"] for t in chart_spec(at, "compression_tradeoff")["data"]}
    # The tiny model's healing is estimated under the task layer's foreground limit: the click's run does it.
    at.button(key="compression_heal").click().run()
    assert_page_ok(at)
    sentence = next(m.value for m in at.markdown if "training gave back" in m.value)
    assert sentence.startswith("**10 steps")
    before, after = (float(v) for v in sentence.split("calibration text: ")[1].rstrip(".").split(" → "))
    assert after < before  # the training objective went down on the data it was trained on
    healed = next(t for t in chart_spec(at, "compression_tradeoff")["data"] if t["name"] == "healed low rank")
    assert "healed (10 steps)" in healed["text"][0]
    # The healed row has its own button: the free controls take the healed factors, and the healed copy,
    # measured again on the same passage, gives the row's numbers (same copy, same tokens: see
    # test_compression_apply.SAME_MEASUREMENT for the tolerance).
    row = next(r for r in at.session_state["compression_budget_rows"] if r["series"] == "healed low rank")
    assert row["recipe"]["heal_steps"] == 10 and row["recipe"]["heal_lr"] == 0.001
    at.button(key=row["key"]).click().run()
    assert_page_ok(at)
    assert at.session_state["compression_healed"] is True and at.query_params["comp_healed"] == "1"
    free = at.session_state["compression_free_setting"]
    assert free["healed"] == {"steps": 10, "lr": 0.001} and free["evaluation"] == "heldout"
    assert free["bytes_model"] == row["bytes_model"]
    assert free["after"]["perplexity"] == pytest.approx(row["quality"]["perplexity"], rel=1e-5)
    loaded = load_model("tiny-gpt2")
    from explorer.ui.cache import cached_model

    assert weights_checksum(cached_model(at.session_state["selection"].model_key).model) == weights_checksum(
        loaded.model
    )
