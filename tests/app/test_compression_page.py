"""The compression page under AppTest: headline card, Pareto chart, table, query params, bad params, and proof
that compressing never touches the cached model another session sees."""

import numpy as np
import pytest

from explorer.analysis.matrices import weights_checksum
from explorer.models import capture, load_model
from tests.apptest import assert_page_ok, plotly_specs, run_page
from tests.conftest import SAMPLE_TEXT

PAGE = "pages/compression.py"


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def _pareto(at):
    return next(s for s in plotly_specs(at) if "Parameters kept against" in s["layout"]["title"]["text"])


def test_causal_page_headline_pareto_table(load):
    at = run_page(PAGE, model="tiny-llama", text=SAMPLE_TEXT)
    assert_page_ok(at)
    metrics = _metrics(at)
    for label in (
        "Parameters",
        "Memory fp16",
        "Memory fp32",
        "Perplexity",
        "Latency",
        "KL divergence (nats/token)",
    ):
        assert label in metrics, metrics
    # Defaults: SVD-LLM on the MLP matrices at half their break-even rank.
    assert at.session_state["compression_method"] == "svdllm"
    assert [k for k in ("mlp_gate", "mlp_up", "mlp_down") if at.session_state[f"compression_group_{k}"]] == [
        "mlp_gate",
        "mlp_up",
        "mlp_down",
    ]
    assert "comp_method" not in at.query_params and "comp_groups" not in at.query_params  # defaults: left out
    total = load("tiny-llama").card.n_params
    assert float(metrics["Parameters"].split()[0]) < total / 1e6
    pareto = _pareto(at)
    names = [t["name"] for t in pareto["data"]]
    assert {"Plain SVD", "ASVD (activation-aware)", "SVD-LLM (whitened)"} <= set(names)
    assert any(t.get("marker", {}).get("symbol") == "star" for t in pareto["data"])
    for trace in pareto["data"]:
        if trace["mode"] == "lines+markers":
            assert len(trace["x"]) == 4 and max(trace["x"]) == pytest.approx(100, abs=1)
    table = at.dataframe[0].value
    assert set(table["kind"]) == {"mlp_gate", "mlp_up", "mlp_down"} and len(table) == 6
    m, n = (int(v) for v in table.iloc[0]["shape"].split("×"))
    k = table.iloc[0]["rank k"]
    assert table.iloc[0]["params after"] == k * (m + n)
    assert k == int(np.floor(0.5 * m * n / (m + n)))
    assert len(at.get("download_button")) == 2
    assert "Greedy continuation" in " ".join(h.value for h in at.subheader)


def test_rank_mode_from_the_link_and_a_slider_change_updates_quality():
    at = run_page(
        PAGE, model="tiny-gpt2", text=SAMPLE_TEXT, comp_method="svd", comp_mode="rank", comp_rank_mlp_up=3
    )
    assert_page_ok(at)
    assert at.slider(key="compression_rank_mlp_up").value == 3
    first = _metrics(at)["Perplexity"]
    assert at.dataframe[0].value.query("kind == 'mlp_up'")["rank k"].tolist() == [3, 3]
    at.slider(key="compression_rank_mlp_up").set_value(40).run()
    assert_page_ok(at)
    assert at.query_params["comp_rank_mlp_up"] == "40"
    assert at.dataframe[0].value.query("kind == 'mlp_up'")["rank k"].tolist() == [40, 40]
    assert _metrics(at)["Perplexity"] != first


def test_encoder_page_reports_embedding_cosine():
    at = run_page(PAGE, model="tiny-bert", text=SAMPLE_TEXT, comp_method="asvd", comp_groups="attn_q,mlp_up")
    assert_page_ok(at)
    metrics = _metrics(at)
    assert "Embedding cosine" in metrics
    assert 0 < float(metrics["Embedding cosine"]) <= 1
    assert -1 <= float(metrics["Similarity ranking"]) <= 1
    assert "Greedy continuation" not in " ".join(h.value for h in at.subheader)
    pareto = _pareto(at)
    assert "cosine" in pareto["layout"]["yaxis"]["title"]["text"]


def test_nonsense_params_fall_back_and_no_group_is_a_warning():
    at = run_page(
        PAGE,
        model="tiny-llama",
        comp_method="magic",
        comp_mode="x",
        comp_share="abc",
        comp_groups="nope,also",
    )
    assert_page_ok(at)
    assert at.radio(key="compression_method").value == "svdllm"
    assert at.slider(key="compression_share").value == 50
    for kind in ("mlp_gate", "mlp_up", "mlp_down"):
        at.checkbox(key=f"compression_group_{kind}").uncheck()
    at.run()
    assert_page_ok(at)
    assert any("at least one weight group" in w.value for w in at.warning)


def test_cached_model_unchanged_and_a_second_session_sees_the_original(load):
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
    assert weights_checksum(cached.model) == weights_checksum(fresh.model)
    expected = capture(fresh, SAMPLE_TEXT).perplexity
    # The compression really happened in session 1 (random tiny weights: perplexity barely moves, KL does).
    assert float(_metrics(at)["KL divergence (nats/token)"]) > 1e-3
    # Session 2 (a new AppTest, same process and caches) sees the original model.
    other = run_page("pages/home.py", model="tiny-gpt2", text=SAMPLE_TEXT)
    assert_page_ok(other)
    assert float(_metrics(other)["Perplexity on this text"].replace(",", "")) == pytest.approx(
        expected, rel=1e-3
    )


@pytest.mark.slow
def test_minilm_page_with_sweep():
    at = run_page(PAGE, model="minilm-l6", timeout=900)
    assert_page_ok(at)
    assert "Embedding cosine" in _metrics(at)
    lines = [t for t in _pareto(at)["data"] if t["mode"] == "lines+markers"]
    assert len(lines) == 3


@pytest.mark.slow
def test_smollm2_page_headline_and_sweep_button():
    at = run_page(PAGE, model="smollm2-135m", comp_method="svd", comp_groups="mlp_down", timeout=900)
    assert_page_ok(at)
    metrics = _metrics(at)
    assert "Perplexity" in metrics
    assert at.button(key="compression_run_sweep")  # big model: the sweep waits for a click
    assert "Greedy continuation" in " ".join(h.value for h in at.subheader)
    assert len(at.dataframe[0].value) == 30
