"""The compression page under AppTest: the budget answer checked against an independent evaluation of that
configuration (our own perplexity / embedding loop on a dense copy with W_k written in), "use these settings"
setting the widgets and the link, a plain message when nothing fits, the free controls and their link, latency
on demand, and proof that no what-if touches the cached model."""

import copy

import numpy as np
import pytest
import torch
from transformers.pytorch_utils import Conv1D

from explorer.analysis import budget
from explorer.analysis import compression as comp
from explorer.analysis.factor_store import cached_factorize
from explorer.analysis.matrices import weights_checksum
from explorer.models import capture, load_model
from explorer.models.capture import tokenize
from explorer.ui import compression_cache as cc
from tests.apptest import assert_page_ok, chart_spec, plotly_specs, rerun_until, run_page
from tests.conftest import SAMPLE_TEXT, restart_tasks

PAGE = "pages/compression.py"
BUDGET_TOKENS = (
    512  # explorer.ui.compression_cache.BUDGET_TOKENS, written out: the test states what it expects
)


def _metrics(at):
    return {m.label: m.value for m in at.metric}


LOW_RANK = "##### Low rank alone: "


def _headline(at):
    """The low-rank budget answer (the box's first line answers over every method, fewer bits included)."""
    return next(m.value.removeprefix(LOW_RANK) for m in at.markdown if m.value.startswith(LOW_RANK))


def _wait_for_sweep(at, timeout=900):
    """Big models measure the sweep in the background: rerun until the page stops saying so."""

    def swept(at):
        return not any("Still measuring" in (p.proto.text or "") for p in at.get("progress"))

    return rerun_until(at, swept, "the budget sweep", timeout=timeout, every=5)


def _stats(loaded, kinds):
    chunks = comp.calibration_chunks(loaded, comp.shipped_calibration_text())
    return comp.collect_activation_stats(loaded, chunks, kinds)


def _dense_copy_at(loaded, method, kinds, share, allocation):
    """A deep copy of the model with each chosen matrix replaced by its rank-k product U_k B_k, written into
    the dense weight: a different code path from the page's factored modules (A_k(B_k x))."""
    # The factors may come from the disk store (SmolLM2: minutes to compute); what is checked here is the
    # evaluation of the configuration, and the store's round trip is tested bit for bit elsewhere.
    kinds = tuple(k for k in kinds if k in comp.available_kinds(loaded.model))
    key = comp.calibration_key_of(comp.shipped_calibration_text())
    fact, _ = cached_factorize(loaded.model, method, kinds, key, lambda: _stats(loaded, kinds))
    ranks = comp.choose_ranks(fact, comp.RankSetting(mode="share", share=share, allocation=allocation))
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for f in fact.matrices:
            if f.name not in ranks:
                continue
            k = ranks[f.name]
            W_k = f.U[:, :k].double() @ f.B[:k].double()
            module = model.get_submodule(f.module)
            target = W_k.T if isinstance(module, Conv1D) else W_k  # Conv1D stores (in, out)
            module.weight.copy_(target.to(module.weight.dtype))
    return model.eval()


@torch.no_grad()
def _perplexity(model, ids) -> float:
    """exp(mean next-token negative log-likelihood), our own loop in float64."""
    logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return float(torch.exp(nll.mean()))


@torch.no_grad()
def _embeddings(loaded, model, ids, sentences) -> torch.Tensor:
    """Mean-pooled last hidden states of the text and of each sentence (one at a time: no padding), float64."""
    out = [model(input_ids=torch.tensor([ids])).last_hidden_state[0].double().mean(0)]
    for sentence in sentences:
        s_ids = loaded.tokenizer(sentence, return_tensors="pt")["input_ids"]
        out.append(model(input_ids=s_ids).last_hidden_state[0].double().mean(0))
    return torch.stack(out)


def _use_best(at):
    """The low-rank answer's own button (the primary one applies the answer over every method)."""
    at.button(key="compression_use_lowrank").click().run()
    assert_page_ok(at)
    return at


def test_causal_budget_answer_holds_on_an_independent_evaluation(load):
    at = run_page(PAGE, model="tiny-gpt2", text=SAMPLE_TEXT)
    assert_page_ok(at)
    headline = _headline(at)
    assert "within your +10% perplexity budget" in headline and "Keeping" in headline
    _use_best(at)
    state = at.session_state
    method, share = state["compression_method"], state["compression_share"] / 100
    allocation = state["compression_alloc"]
    assert state["compression_mode"] == "share" and state["compression_eval"] == "heldout"
    assert at.query_params["comp_eval"] == "heldout"
    assert round(100 * share) in (25, 50, 70, 80, 90, 95)
    loaded = load("tiny-gpt2")
    ids = list(tokenize(loaded, comp.heldout_text(), BUDGET_TOKENS)[0])
    original = _perplexity(loaded.model, ids)
    compressed = _perplexity(_dense_copy_at(loaded, method, comp.DEFAULT_KINDS, share, allocation), ids)
    # The budget holds on our own evaluation...
    assert compressed <= 1.1 * original
    # ...and the card (the page's factored model, float32) shows the same perplexity: float32 logits of a
    # 2-layer model differ from our float64 product by ~1e-6 relative; 1e-4 leaves room, far below +10 %.
    card = float(_metrics(at)["Perplexity"].replace(",", ""))
    assert card == pytest.approx(compressed, rel=1e-4)
    # Every link param names what the widgets show.
    link = {k: at.query_params[k] for k in at.query_params}
    if method != "svdllm":
        assert "comp_method" in link
    if allocation != "uniform":
        assert "comp_alloc" in link


def test_encoder_budget_answer_holds_on_an_independent_evaluation(load):
    at = run_page(PAGE, model="tiny-bert", text=SAMPLE_TEXT)
    assert_page_ok(at)
    assert "embedding cosine ≥ 0.99 budget" in _headline(at)
    _use_best(at)
    state = at.session_state
    loaded = load("tiny-bert")
    model = _dense_copy_at(
        loaded,
        state["compression_method"],
        ("mlp_up", "mlp_down"),
        state["compression_share"] / 100,
        state["compression_alloc"],
    )
    ids = list(tokenize(loaded, comp.heldout_text(), BUDGET_TOKENS)[0])
    sentences = comp.sentence_set()
    ref = _embeddings(loaded, loaded.model, ids, sentences)
    out = _embeddings(loaded, model, ids, sentences)
    cosine = float(torch.nn.functional.cosine_similarity(ref, out, dim=-1).mean())
    assert cosine >= 0.99
    # The card measures the same thing with padded float32 batches (rounding ~1e-6) and shows three digits:
    # it agrees to half a unit of its last digit, 5e-4, plus that rounding.
    assert float(_metrics(at)["Embedding cosine"]) == pytest.approx(cosine, abs=6e-4)


def test_nothing_fits_is_a_plain_message_with_the_closest():
    at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT, budget_metric="kl", budget_kl="0.000001")
    assert_page_ok(at)
    assert at.session_state["compression_budget_metric"] == "kl"
    headline = _headline(at)
    assert headline.startswith("**Nothing measured fits your KL ≤ 1e-06 nats/token budget.** The closest:")
    assert "outside your" in headline
    at.button(key="compression_use_lowrank").click().run()  # the closest can still be tried
    assert_page_ok(at)
    assert at.session_state["compression_share"] == 95  # the gentlest setting is the closest in KL


def test_a_restarted_server_answers_the_budget_from_disk(tmp_path, monkeypatch):
    """The finished budget sweep, the fewer-bits comparison and the original's quality on the held-out passage
    are kept on disk: after a restart (every in-memory cache and job board gone) the page draws the same answer
    without measuring anything on the passage again."""
    import streamlit as st

    from explorer.analysis import quantize as qz

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty disk cache: this run measures
    st.cache_data.clear()
    st.cache_resource.clear()
    restart_tasks(monkeypatch)  # nor a task of an earlier test in this process
    # A free-control setting in the link: the free card stays low rank (its own measurement is not the point).
    at = _wait_for_sweep(run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT, comp_method="svd"))
    assert_page_ok(at)
    first = (
        _headline(at),
        chart_spec(at, "compression_pareto")["data"],
        chart_spec(at, "compression_tradeoff"),
    )
    # One folder per kind of result in the one disk store (explorer/store.py, the KEEP specs).
    stored = sorted(p.parent.name for p in (tmp_path / "eigen-explorer" / "store").glob("*/*") if p.is_file())
    assert [k for k in stored if k != "factors"] == ["fewer-bits", "original", "sweep"]  # factors: their own

    st.cache_data.clear()
    st.cache_resource.clear()  # the model, the tasks in memory: what a restart loses
    restart_tasks(monkeypatch)

    def measuring(*_args, **_kwargs):
        raise AssertionError("measured again although the result is on disk")

    monkeypatch.setattr(budget, "sweep", measuring)  # where budget_sweep looks it up
    monkeypatch.setattr(qz, "quantize_weights", measuring)
    monkeypatch.setattr(
        cc, "heldout_reference", measuring
    )  # the original's quality on the passage: on disk too
    at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT, comp_method="svd")
    assert_page_ok(at)
    assert not any("Still measuring" in (p.proto.text or "") for p in at.get("progress"))
    again = (
        _headline(at),
        chart_spec(at, "compression_pareto")["data"],
        chart_spec(at, "compression_tradeoff"),
    )
    assert again == first


def test_first_factors_of_a_big_model_do_not_hold_up_the_budget_answer(tmp_path, monkeypatch):
    """When the work is estimated above the task layer's foreground limit (made so here for the tiny model),
    the free controls' factors, computed the first time, come from a background task started once the
    fewer-bits comparison's first point is in: the runs draw the budget view, its first answer and a progress
    bar instead of waiting (which would also freeze the budget answer: its watchers run between script runs),
    and the headline card arrives on a later run."""
    import threading

    import streamlit as st

    from explorer.ui import quantization_cache as qc

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no factors on disk
    st.cache_data.clear()
    st.cache_resource.clear()
    restart_tasks(monkeypatch)  # no finished factorization of an earlier test
    monkeypatch.setattr(cc, "SECONDS_PER_PARAM", 1.0)  # the tiny model is treated as a big one
    entered, release = threading.Event(), threading.Event()
    real = comp.factorize_model

    def slow_factorize(*args, **kwargs):
        entered.set()
        assert release.wait(120), "the test never released the factorization"
        return real(*args, **kwargs)

    monkeypatch.setattr(comp, "factorize_model", slow_factorize)

    def factorizing(at):
        return any("Factorizing the chosen matrices" in (p.proto.text or "") for p in at.get("progress"))

    try:
        # A low-rank setting in the link (a visit without one opens on the budget's answer, maybe fewer bits).
        at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT, comp_method="svd")
        assert_page_ok(at)
        assert any("How small can it get" in h.value for h in at.subheader)
        model_key = at.session_state["selection"].model_key
        kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.kind_shapes(load_model("tiny-llama").model))
        # Fewer bits first: factors are asked for only once its first points are in (by its own SVD-LLM step
        # or the sweep that starts after them); then redraw, as its watcher would.
        assert entered.wait(120), "nothing asked for factors"
        assert qc.peek_comparison(model_key, kinds, cc.Calibration()).partial
        at.run()
        assert_page_ok(at)
        assert factorizing(at)  # the factors started in the background; the run did not wait for them
        assert any(m.value.startswith("#### Across every method") for m in at.markdown)  # answered meanwhile
        assert "Perplexity" not in _metrics(at)  # the card waits; the run did not
        factors = cc.peek_factorization(model_key, "svd", kinds, cc.Calibration())
        assert factors is not None and not factors.done
    finally:
        release.set()
    assert factors.wait(120), "the factors did not finish"
    at.run()
    assert_page_ok(at)
    assert "Perplexity" in _metrics(at)


def test_budget_sweep_chart_and_allocated_ranks():
    at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT)
    assert_page_ok(at)
    pareto = chart_spec(at, "compression_pareto")
    lines = [t for t in pareto["data"] if t["mode"] == "lines+markers"]
    assert len(lines) == 6  # three methods, uniform and greedy
    for trace in lines:
        assert len(trace["x"]) == len(comp.KEPT_SHARES)
    assert any(t["name"] == "budget limit" for t in pareto["data"])
    ranks = chart_spec(at, "compression_ranks")
    uniform, greedy = ranks["data"]
    assert np.nanmax(np.asarray(uniform["z"], dtype=float)) <= 1.0
    rows = at.session_state["compression_budget_rows"]  # each method's answer, one row per series
    lowrank = [r for r in rows if r["recipe"]["store"] == "lowrank"]
    assert len(lowrank) == 6  # three methods, uniform and greedy
    assert {(r["recipe"]["method"], r["recipe"]["allocation"]) for r in lowrank} == {
        (m, a) for m in ("svd", "asvd", "svdllm") for a in ("uniform", "greedy")
    }
    assert {r["recipe"]["scheme"] for r in rows if r["recipe"]["store"] == "bits"} == {
        "int8",
        *(f"int4-g{g}{o}" for g in (32, 64, 128) for o in ("", "-asym")),
    }
    for r in rows:
        assert at.button(key=r["key"]).label == "Use these settings"


def test_rank_mode_from_the_link_and_a_slider_change_updates_quality():
    at = run_page(
        PAGE, model="tiny-gpt2", text=SAMPLE_TEXT, comp_method="svd", comp_mode="rank", comp_rank_mlp_up=3
    )
    assert_page_ok(at)
    assert at.slider(key="compression_rank_mlp_up").value == 3
    first = _metrics(at)["Perplexity"]
    table = at.dataframe[-1].value
    assert table.query("kind == 'mlp_up'")["rank k"].tolist() == [3, 3]
    at.slider(key="compression_rank_mlp_up").set_value(40).run()
    assert_page_ok(at)
    assert at.query_params["comp_rank_mlp_up"] == "40"
    assert at.dataframe[-1].value.query("kind == 'mlp_up'")["rank k"].tolist() == [40, 40]
    assert _metrics(at)["Perplexity"] != first
    # The rank slider stops below break-even (256x64: the largest k with k(m+n) < mn is 51).
    assert at.slider(key="compression_rank_mlp_up").max == 51


def test_nonsense_params_fall_back_and_no_group_is_a_warning():
    at = run_page(
        PAGE,
        model="tiny-llama",
        comp_method="magic",
        comp_mode="x",
        comp_share="abc",
        comp_groups="nope,also",
        comp_alloc="zzz",
        budget_metric="cosine",  # an encoder's metric on a causal LM: falls back
    )
    assert_page_ok(at)
    assert at.radio(key="compression_method").value == "svdllm"
    assert at.slider(key="compression_share").value == 90
    assert at.radio(key="compression_alloc").value == "uniform"
    assert at.session_state["compression_budget_metric"] == "perplexity"
    for kind in ("mlp_gate", "mlp_up", "mlp_down"):
        at.checkbox(key=f"compression_group_{kind}").uncheck()
    at.run()
    assert_page_ok(at)
    assert any("at least one weight group" in w.value for w in at.warning)


def test_latency_on_demand_reports_spread_and_multiply_adds():
    at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT, comp_share=50)
    assert_page_ok(at)
    assert not any("ms (quartiles" in m.value for m in at.markdown)  # nothing timed until asked
    at.button(key="compression_latency").click().run()
    assert_page_ok(at)
    found = [m.value for m in at.markdown if "ms (quartiles" in m.value]
    assert len(found) == 2 and found[1].startswith(("**256 tokens.**", "**128 tokens.**"))  # 128: its context
    assert all("multiply-adds" in f for f in found)


def test_cached_model_unchanged_after_every_what_if(load):
    at = run_page(
        PAGE,
        model="tiny-gpt2",
        text=SAMPLE_TEXT,
        comp_groups="attn_q,attn_k,attn_v,attn_o,mlp_up,mlp_down,embed",
        comp_share=5,
    )
    assert_page_ok(at)
    from explorer.ui.cache import cached_model

    cached = cached_model(at.session_state["selection"].model_key)
    fresh = load_model("tiny-gpt2", device="cpu")
    reference = weights_checksum(fresh.model)
    assert weights_checksum(cached.model) == reference
    # The compression really happened (random tiny weights: perplexity barely moves, KL does).
    assert float(_metrics(at)["KL divergence (nats/token)"]) > 1e-3
    for step in (
        lambda: at.button(key="compression_use_best").click().run(),
        lambda: at.radio(key="compression_alloc").set_value("greedy").run(),
        lambda: at.radio(key="compression_method").set_value("asvd").run(),
        lambda: at.button(key="compression_latency").click().run(),
    ):
        step()
        assert_page_ok(at)
        assert weights_checksum(cached.model) == reference
    expected = capture(fresh, SAMPLE_TEXT).perplexity
    other = run_page("pages/home.py", model="tiny-gpt2", text=SAMPLE_TEXT)  # a second session
    assert_page_ok(other)
    assert float(_metrics(other)["Perplexity on this text"].replace(",", "")) == pytest.approx(
        expected, rel=1e-3
    )


@pytest.mark.slow
def test_smollm2_budget_answer_holds_on_an_independent_evaluation(smollm2):
    at = _wait_for_sweep(run_page(PAGE, model="smollm2-135m", timeout=900))
    assert_page_ok(at)
    headline = _headline(at)
    assert "budget" in headline
    _use_best(at)
    state = at.session_state
    method, share = state["compression_method"], state["compression_share"] / 100
    ids = list(tokenize(smollm2, comp.heldout_text(), BUDGET_TOKENS)[0])
    original = _perplexity(smollm2.model, ids)
    model = _dense_copy_at(smollm2, method, comp.DEFAULT_KINDS, share, state["compression_alloc"])
    compressed = _perplexity(model, ids)
    del model
    fits = "within your" in headline
    assert (compressed <= 1.1 * original) == fits
    # float32 forward of 30 layers against ours (float32 weights, float64 softmax): agree to ~1e-4 relative;
    # 1e-3 leaves room and is 100x finer than the budget's +10 %.
    card = float(_metrics(at)["Perplexity"].replace(",", ""))
    assert card == pytest.approx(compressed, rel=1e-3)
    assert len(plotly_specs(at)) >= 3


@pytest.mark.slow
def test_minilm_budget_view_answers_in_cosine():
    at = _wait_for_sweep(run_page(PAGE, model="minilm-l6", timeout=900))
    assert_page_ok(at)
    headline = _headline(at)
    assert "embedding cosine ≥ 0.99 budget" in headline
    _use_best(at)
    assert at.session_state["compression_eval"] == "heldout"
    assert "Embedding cosine" in _metrics(at)


def test_factors_dropped_from_memory_come_back_from_disk_in_the_same_run(tmp_path, monkeypatch):
    """Factors are a kept task: once other work has pushed them out of memory (three are kept) or the server
    restarted, asking for them reads the factor store's entry at once instead of waiting for a factorization."""
    import streamlit as st

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    st.cache_data.clear()
    restart_tasks(monkeypatch)
    at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT, comp_method="svd")
    assert_page_ok(at)
    model_key = at.session_state["selection"].model_key
    kinds = tuple(k for k in comp.DEFAULT_KINDS if k in comp.kind_shapes(load_model("tiny-llama").model))
    computed = cc.peek_factorization(model_key, "svd", kinds, cc.Calibration())
    assert computed is not None and computed.succeeded and not computed.from_disk
    restart_tasks(monkeypatch)  # nothing in memory
    back = cc.peek_factorization(model_key, "svd", kinds, cc.Calibration())
    assert back is not None and back.succeeded and back.from_disk
    assert cc.has_factorization(model_key, "svd", kinds, cc.Calibration())
    for mine, theirs in zip(computed.result.matrices, back.result.matrices, strict=True):
        assert mine.name == theirs.name and torch.equal(mine.U, theirs.U) and torch.equal(mine.B, theirs.B)
