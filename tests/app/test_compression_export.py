"""The compression page's "Download this decision": for low rank, int8 and 4-bit, the three download buttons
exist (the report and the weights built on click); the weights, written to a file and loaded back through
``load_model(path)``, give the quality the free card shows, measured again here on the same passage and tokens
against a freshly computed reference of the base model; the report is standalone (no script src) and states
the setting and the measured numbers; the table's rows are the card's and the budget's numbers."""

import csv
import html
import io

import pytest
import torch

from explorer.analysis import compression as comp
from explorer.models import load_model
from explorer.models.capture import tokenize
from explorer.report.decision import format_value
from tests.apptest import assert_page_ok, run_page
from tests.conftest import SAMPLE_TEXT

PAGE = "pages/compression.py"
BUDGET_TOKENS = 512  # the held-out passage's token cap on the page, written out
BUTTONS = ("compression_decision_html", "compression_decision_csv", "compression_decision_zip")
# The page measured the compressed copy in its own modules (A (B x) for factors, Conv1D's addmm for GPT-2) and
# the loaded-back model computes with dense weights (A B, or the same de-quantized codes) through F.linear:
# float32 rounding of the logits in another order, ~1e-6 relative, through exp of a mean over <= 512 tokens
# (perplexity) or a mean of cosines: 1e-4 relative is far above that and far below any difference between two
# settings. KL and cosine losses are small numbers: their error is absolute, ~1e-6.
SAME = 1e-4
SAME_ABS = 1e-5


def _open(model: str, **params):
    at = run_page(PAGE, model=model, text=SAMPLE_TEXT, timeout=900, comp_eval="heldout", **params)
    assert_page_ok(at)
    return at


def _set_store(at, store: str, **controls):
    at.radio(key="compression_store").set_value(store).run()
    for key, value in controls.items():
        at.select_slider(key=f"compression_{key}").set_value(value).run()
    assert_page_ok(at)
    return at


def _heldout_perplexity(loaded) -> float:
    """exp(mean next-token cross-entropy) of ``loaded`` on the held-out passage's first 512 tokens."""
    ids, _n, _messages = tokenize(loaded, comp.heldout_text(), BUDGET_TOKENS)
    ids = [int(i) for i in ids]
    with torch.no_grad():
        logits = loaded.model(torch.tensor([ids], device=loaded.device)).logits[0].double().cpu()
    nll = -torch.log_softmax(logits[:-1], -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return float(torch.exp(nll.mean()))


def _check_buttons(at):
    buttons = {b.key: b for b in at.get("download_button")}
    assert set(BUTTONS) <= set(buttons), sorted(buttons)
    for key in ("compression_decision_html", "compression_decision_zip"):  # built on click, not on draw
        assert buttons[key].proto.deferred_file_id, key
    captions = " ".join(c.value for c in at.caption)
    assert "give the path of the unzipped folder or the .zip" in captions


def _check_round_trip(at, tmp_path, name: str):
    """The .zip's weights, loaded back from a file, measured here against the base model's own reference."""
    decision = at.session_state["compression_decision"]
    free = at.session_state["compression_free_setting"]
    assert free["evaluation"] == "heldout"
    path = tmp_path / f"{name}.zip"
    path.write_bytes(decision.zip_bytes())
    back = load_model(str(path))
    base = load_model(decision.base.id)
    evalset = comp.make_eval_set(base, comp.heldout_text(), BUDGET_TOKENS)
    assert evalset.n_tokens == free["n_tokens"]
    quality = comp.evaluate(base, back.model, evalset, comp.reference(base, evalset))
    after = free["after"]
    if base.causal:
        assert _heldout_perplexity(back) == pytest.approx(after["perplexity"], rel=SAME)
        assert quality.kl == pytest.approx(after["kl"], rel=SAME, abs=SAME_ABS)
    else:
        assert quality.embedding_cosine == pytest.approx(after["embedding_cosine"], abs=SAME_ABS)
        assert quality.similarity_spearman == pytest.approx(after["similarity_spearman"], abs=SAME_ABS)
    # What the page promised was stored: the manifest's setting is the card's.
    manifest = decision_manifest(path)
    assert manifest["setting"]["store"] == free["store"] and manifest["setting"]["scheme"] == free["scheme"]
    assert manifest["quality"]["tokens"] == free["n_tokens"]
    return decision, free


def decision_manifest(path):
    import json
    import zipfile

    from explorer.analysis.export import MANIFEST

    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(MANIFEST))


def _check_report(decision, free):
    page = decision.html()
    assert "script src" not in page.lower().replace("'", "").replace('"', "")
    assert "<script" in page  # plotly.js inlined
    assert html.escape(decision.setting["decision"]) in page
    names = ("perplexity", "kl") if free["after"]["causal"] else ("embedding_cosine", "similarity_spearman")
    for name in names:
        assert f">{format_value(free['after'][name])}<" in page, name
        assert f">{format_value(free['before'][name])}<" in page, name
    assert f">{free['n_tokens']}<" in page  # tokens, in "how it was measured"
    if free["scheme"]:
        assert f">{free['scheme']}<" in page


def _check_table(at, decision, free):
    rows = list(csv.DictReader(io.StringIO(decision.csv())))
    budget = at.session_state["compression_budget_rows"]
    assert len(rows) == 1 + len(budget)
    names = ("perplexity", "kl") if free["after"]["causal"] else ("embedding_cosine", "similarity_spearman")
    first = rows[0]
    assert first["row"] == "this decision" and int(first["bytes_model"]) == free["bytes_model"]
    for name in names:  # written to 6 significant digits
        assert float(first[name]) == pytest.approx(free["after"][name], rel=1e-5, abs=1e-12)
    for written, row in zip(rows[1:], budget, strict=True):
        assert written["series"] == row["series"] and int(written["bytes_model"]) == row["bytes_model"]
        assert written["within budget"] == ("yes" if row["fits"] else "no")
        assert written["shipped grid"] == ("yes" if row["own_grid"] else "no")
        for name in names:
            assert float(written[name]) == pytest.approx(row["quality"][name], rel=1e-5, abs=1e-12)


def _check_all(at, tmp_path, name):
    _check_buttons(at)
    decision, free = _check_round_trip(at, tmp_path, name)
    _check_report(decision, free)
    _check_table(at, decision, free)
    return free


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
def test_low_rank_int8_and_4bit_decisions_round_trip(model, tmp_path):
    at = _open(model, comp_store="lowrank", comp_share=50)
    free = _check_all(at, tmp_path, "lowrank")
    assert free["store"] == "lowrank" and free["scheme"] is None
    free = _check_all(_set_store(at, "bits", bits=8), tmp_path, "int8")
    assert free["scheme"] == "int8"
    free = _check_all(_set_store(at, "bits", bits=4, qgroup=32), tmp_path, "int4")
    assert free["scheme"] == "int4-g32"


@pytest.mark.slow
def test_smollm2_int8_decision_round_trips(tmp_path):
    at = _open("smollm2-135m", comp_store="bits", comp_bits=8)
    free = _check_all(at, tmp_path, "smollm2-int8")
    assert free["scheme"] == "int8" and free["groups"] == list(comp.DEFAULT_KINDS)
