"""Every row of the compression page's "each method's answer" can be acted on: its own "Use these settings"
button sets the free controls to exactly that setting (low rank by method and allocation, int8, 4-bit by group
and offset, low-rank factors in int8, top directions + 4-bit residual), and the free result, measured again by
the free controls, equals the row's measurement on the same held-out passage. Also: a visit without free-control
settings opens on the budget's answer (within it, on the held-out passage) or says nothing fits; the card names
its scope; the words for a result match its measured ratio."""

import pytest

from explorer.analysis import compression as comp
from explorer.analysis.matrices import weight_matrices
from explorer.ui import compression_cache as cc
from explorer.ui import quantization_cache as qc
from tests.apptest import assert_page_ok, run_page
from tests.conftest import SAMPLE_TEXT

PAGE = "pages/compression.py"
STORES = {"lowrank", "bits", "factors", "residual"}
# Two forward passes of the same copy on the same tokens, one in a job's thread and one in the page's: the same
# float32 kernels on the same data. Threaded reductions may add in another order, ~1e-7 relative per logit; the
# perplexity (exp of a mean over ≤ 512 tokens) and cosines inherit that: 1e-5 is far above it and far below any
# difference between two settings on the page.
SAME_MEASUREMENT = 1e-5


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def _headline_value(q: dict) -> float:
    return q["perplexity"] if q["causal"] else q["embedding_cosine"]


def _await_budget(at, loaded, timeout=1800):
    """Big models measure in background tasks: await the fewer-bits comparison, then the sweep it starts, by
    their own completion events, and redraw the page once each is done."""
    model_key = at.session_state["selection"].model_key
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.kind_shapes(loaded.model))
    quant = qc.peek_comparison(model_key, kinds, cc.Calibration())
    if quant is not None:
        assert quant.wait(timeout), "the fewer-bits comparison did not finish"
    at.run()
    sweep = cc.peek_sweep(model_key, kinds, cc.Calibration(), cc.BUDGET_METHODS)
    if sweep is not None:
        assert sweep.wait(timeout), "the budget sweep did not finish"
    at.run()
    assert_page_ok(at)
    return _await_free_card(at, kinds, timeout)


def _await_free_card(at, kinds, timeout):
    """The free card follows the answer: factors dropped from memory (three are kept, and other tests in this
    process use them) come back from the disk store within the run; factors never computed are started in the
    background with progress drawn. Await them by their completion events and redraw, until the card's caption
    is there."""
    model_key = at.session_state["selection"].model_key
    for _ in range(4):
        captions = " ".join(c.value for c in at.caption)
        if "Opened on the budget's answer" in captions or "Nothing measured fits your budget" in captions:
            return at
        for method in cc.BUDGET_METHODS:
            job = cc.peek_factorization(model_key, method, kinds, cc.Calibration())
            if job is not None:
                assert job.wait(timeout), f"the {method} factors did not finish"
        at.run()
        assert_page_ok(at)
    return at


def _check_every_row(at):
    """Click each row's button; the free controls and the free result must be that row's setting and numbers."""
    rows = at.session_state["compression_budget_rows"]
    assert {r["recipe"]["store"] for r in rows} == STORES
    assert len({r["key"] for r in rows}) == len(rows)  # one button per row
    for row in rows:
        recipe = row["recipe"]
        at.button(key=row["key"]).click().run()
        assert_page_ok(at)
        # The press made the controls the person's: the card no longer says it follows the answer (the run of
        # the press itself drew the card after the buttons, so a note computed before them would be stale).
        assert not any("It follows the answer" in c.value for c in at.caption), row["series"]
        state = at.session_state
        assert state["compression_store"] == recipe["store"] and state["compression_eval"] == "heldout"
        free = state["compression_free_setting"]
        assert free["evaluation"] == "heldout" and free["store"] == recipe["store"]
        assert free["scheme"] == (recipe["scheme"] or None)
        if recipe["store"] in ("lowrank", "factors"):
            assert state["compression_method"] == recipe["method"] == free["method"]
            assert state["compression_alloc"] == recipe["allocation"] == free["allocation"]
        if recipe["store"] != "bits":
            assert state["compression_mode"] == "share"
            assert free["share_of_break_even"] == pytest.approx(recipe["share"], abs=0)
        # Two measurements of the same setting: bytes are counted, so equal; quality measured again.
        assert free["bytes_model"] == row["bytes_model"], row["series"]
        assert _headline_value(free["after"]) == pytest.approx(
            _headline_value(row["quality"]), rel=SAME_MEASUREMENT
        ), row["series"]
        if free["after"]["causal"]:
            assert free["after"]["kl"] == pytest.approx(row["quality"]["kl"], rel=1e-4, abs=1e-7)
            shown = float(_metrics(at)["Perplexity"].replace(",", ""))
            assert shown == pytest.approx(row["quality"]["perplexity"], rel=5e-4)  # 4 significant digits
        else:
            assert free["after"]["similarity_spearman"] == pytest.approx(
                row["quality"]["similarity_spearman"], rel=SAME_MEASUREMENT
            )
            shown = float(_metrics(at)["Embedding cosine"])
            assert shown == pytest.approx(row["quality"]["embedding_cosine"], abs=5e-4 + 1e-6)  # 3 decimals
    return rows


def _check_opened_on_the_answer(at, fits):
    """A visit without free-control settings: the free controls show a setting on the held-out passage that is
    within the budget (computed here from its measured numbers), or the page says nothing fits."""
    free = at.session_state["compression_free_setting"]
    assert free["evaluation"] == "heldout"
    before, after = free["before"], free["after"]
    within = fits(before, after)
    captions = " ".join(c.value for c in at.caption)
    # What the page was doing, for a failure's report: following or not, and what it shows instead.
    doing = (
        f"follow={at.session_state['compression_follow_answer']!r}, free={free['store']}/{free['scheme']}, "
        f"infos={[i.value[:100] for i in at.info]}, captions={captions[:1500]!r}"
    )
    if within:
        assert "Opened on the budget's answer" in captions, doing
    else:
        assert "Nothing measured fits your budget" in captions, doing
    return within


def _ppl_within(before, after):
    return after["perplexity"] <= 1.1 * before["perplexity"]


def _cos_within(_before, after):
    return after["embedding_cosine"] >= 0.99


# Written out: the ratios the page's words stand for (explorer/ui/compression_text.py states them on the page).
PPL_WORDS = ((1.02, "barely changes"), (1.10, "is slightly worse"), (1.5, "is noticeably worse"),
             (3.0, "is much worse"), (10.0, "is far worse"))  # fmt: skip


def _check_words_match_the_ratio(at):
    free = at.session_state["compression_free_setting"]
    ratio = free["after"]["perplexity"] / free["before"]["perplexity"]
    expected = next((w for limit, w in PPL_WORDS if ratio <= limit), "is broken")
    sentence = next(m.value for m in at.markdown if m.value.startswith("##### Perplexity on"))
    assert f"quality **{expected}" in sentence and f"perplexity ×{ratio:,.4g}" in sentence, sentence


def test_every_row_applies_its_own_setting_on_a_causal_lm():
    at = run_page(PAGE, model="tiny-gpt2", text=SAMPLE_TEXT, timeout=900)
    assert_page_ok(at)
    _check_opened_on_the_answer(at, _ppl_within)
    _check_words_match_the_ratio(at)
    _check_every_row(at)
    _check_words_match_the_ratio(at)
    # Once a button was pressed the controls are the person's: the primary button applies the overall answer.
    at.button(key="compression_use_best").click().run()
    assert_page_ok(at)
    rows = at.session_state["compression_budget_rows"]
    fitting = [r for r in rows if r["fits"] and not r["own_grid"]]
    smallest = min(fitting, key=lambda r: (r["bytes_model"], r["loss"]))
    assert at.session_state["compression_free_setting"]["bytes_model"] == smallest["bytes_model"]


def test_every_row_applies_its_own_setting_on_an_encoder():
    at = run_page(PAGE, model="tiny-bert", text=SAMPLE_TEXT, timeout=900)
    assert_page_ok(at)
    _check_opened_on_the_answer(at, _cos_within)
    _check_every_row(at)


def test_a_moved_control_stops_following_and_nothing_fits_is_said():
    at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT, budget_metric="kl", budget_kl="0.000001")
    assert_page_ok(at)
    # Int8 may fit even this budget on random weights: the caption must say whichever the numbers say.
    _check_opened_on_the_answer(at, lambda _b, a: a["kl"] <= 1e-6)
    at.radio(key="compression_store").set_value("bits").run()
    assert_page_ok(at)
    at.select_slider(key="compression_bits").set_value(4).run()
    assert_page_ok(at)
    assert at.session_state["compression_free_setting"]["scheme"] == "int4"
    assert at.query_params["comp_store"] == "bits" and at.query_params["comp_bits"] == "4"
    at.run()  # a rerun (a poller's) keeps the person's setting
    assert at.session_state["compression_free_setting"]["scheme"] == "int4"


def test_the_card_names_its_scope(load):
    at = run_page(PAGE, model="tiny-gpt2", text=SAMPLE_TEXT)
    assert_page_ok(at)
    loaded = load("tiny-gpt2")
    mats = [m for m in weight_matrices(loaded.model) if m.kind in comp.DEFAULT_KINDS]
    chosen = sum(m.weight.numel() for m in mats)
    total = sum(p.numel() for p in loaded.model.parameters())  # tied weights are one Parameter
    scope = next(c.value for c in at.caption if c.value.startswith("Scope:"))
    assert f"only the {len(mats)} chosen matrices" in scope and "MLP up, MLP down of all 2 blocks" in scope
    assert f"{chosen / 1e6:.1f} M of the model's {total / 1e6:.1f} M parameters" in scope
    assert "de-quantized" not in scope  # floats as built


@pytest.mark.slow
def test_smollm2_every_row_applies_its_own_setting(smollm2):
    at = _await_budget(run_page(PAGE, model="smollm2-135m", timeout=1800), smollm2)
    scope = next(c.value for c in at.caption if c.value.startswith("Scope:"))
    mlp = [p for n, p in smollm2.model.named_parameters() if ".mlp." in n]
    assert "MLP gate, MLP up, MLP down of all 30 blocks" in scope
    assert f"{sum(p.numel() for p in mlp) / 1e6:.1f} M" in scope
    assert "de-quantized from the 4-bit GGUF (Q4_1)" in scope
    _check_opened_on_the_answer(at, _ppl_within)
    _check_words_match_the_ratio(at)
    _check_every_row(at)


@pytest.mark.slow
def test_minilm_every_row_applies_its_own_setting(minilm):
    at = _await_budget(run_page(PAGE, model="minilm-l6", timeout=1800), minilm)
    _check_opened_on_the_answer(at, _cos_within)
    _check_every_row(at)


def test_a_plain_rerun_keeps_following_the_answer():
    """A first run that finds the answer already measured (a small model measures within the run; a big one
    reads it from the disk store) sets the free controls before they were ever drawn: drawing them with their
    defaults on that run is no person's move, so the reruns after it still follow the answer."""
    at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT)
    assert_page_ok(at)
    for _ in range(2):
        at.run()
        assert_page_ok(at)
        assert at.session_state["compression_follow_answer"]
        captions = " ".join(c.value for c in at.caption)
        assert "Opened on the budget's answer" in captions or "Nothing measured fits your budget" in captions
