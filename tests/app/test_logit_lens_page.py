"""The logit lens page: its charts carry the lens of the sidebar's text (checked against a direct computation in
the test), a cell click selects that layer and position, generated tokens are marked, and an encoder gets a
plain message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.generation import generated_mask
from explorer.figures.tokens import GENERATED_MARK
from explorer.ui.lens_cache import lens_summary
from tests.apptest import assert_page_ok, chart_spec, rerun_until, run_page
from tests.conftest import get_model

PAGE = "pages/logit_lens.py"
TEXT = "The cat sat on the mat. The cat"


def _direct(loaded, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank, KL) of shape (layer, token), computed here: the final norm's input by a pre-hook, every block's
    residual through norm and lm_head, softmax in float64."""
    model = loaded.model
    base = model.transformer if hasattr(model, "transformer") else model.model
    norm = base.ln_f if hasattr(base, "ln_f") else base.norm
    grabbed = []
    handle = norm.register_forward_pre_hook(lambda _m, args: grabbed.append(args[0][0]))
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids)[None], output_hidden_states=True)
        handle.remove()
        residuals = [h[0] for h in out.hidden_states[1:-1]] + [grabbed[0]]
        logps = torch.stack(
            [torch.log_softmax((norm(r) @ model.lm_head.weight.T).double(), -1) for r in residuals]
        )
    final = logps[-1]
    target = final.argmax(-1)
    probs = logps.exp()
    p_target = probs[:, torch.arange(len(ids)), target]
    rank = 1 + (probs > p_target[..., None] * (1 + 1e-5)).sum(-1)
    kl = (final.exp() * (final - logps)).sum(-1)
    return rank.numpy(), kl.numpy()


@pytest.mark.parametrize("model_id", ["tiny-gpt2", "tiny-llama"])
def test_heatmap_is_the_lens(model_id):
    at = run_page(PAGE, model=model_id, text=TEXT)
    assert_page_ok(at)
    loaded = get_model(model_id)
    ids = np.asarray(loaded.tokenizer(TEXT)["input_ids"])
    rank, kl = _direct(loaded, ids)
    heat = chart_spec(at, "lens_heatmap")["data"][0]
    np.testing.assert_allclose(np.asarray(heat["z"]), np.log10(rank), atol=1e-12)
    assert at.session_state["lens_layer"] == loaded.card.n_layers - 1
    assert at.session_state["lens_pos"] == len(ids) - 1
    at.segmented_control(key="lens_metric").set_value("kl").run()
    assert_page_ok(at)
    heat = chart_spec(at, "lens_heatmap")["data"][0]
    eps = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(np.asarray(heat["z"]), kl, atol=1e3 * eps * (1 + kl.max()), rtol=1e-5)
    assert at.query_params["metric"] == "kl"


def test_summary_sentence_is_computed_from_the_figure_data():
    at = run_page(PAGE, model="tiny-llama", text=TEXT)
    loaded = get_model("tiny-llama")
    ids = np.asarray(loaded.tokenizer(TEXT)["input_ids"])
    rank, _ = _direct(loaded, ids)
    # First layer from which rank stays 1, per position, from the test's own ranks.
    first = [
        next(layer for layer in range(rank.shape[0]) if (rank[layer:, t] == 1).all()) for t in range(len(ids))
    ]
    captions = [c.value for c in at.caption]
    summary = next(c for c in captions if c.startswith("Across the"))
    assert f"Across the {len(ids)} positions" in summary
    assert f"for good at layer {float(np.median(first)):g} (median" in summary
    half = rank.shape[0] // 2
    assert f"top-1 at {int((rank[half] == 1).sum())} of {len(ids)} positions" in summary


def test_link_selects_the_cell_and_the_top_k_follows():
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, layer=0, pos=3, k=4)
    assert_page_ok(at)
    bars = chart_spec(at, "lens_top_k")["data"][0]
    assert len(bars["x"]) == 4
    loaded = get_model("tiny-gpt2")
    ids = np.asarray(loaded.tokenizer(TEXT)["input_ids"])
    with torch.no_grad():
        out = loaded.model(input_ids=torch.tensor(ids)[None], output_hidden_states=True)
        model = loaded.model
        probs = torch.softmax(
            (model.transformer.ln_f(out.hidden_states[1][0]) @ model.lm_head.weight.T).double(), -1
        )
    np.testing.assert_allclose(bars["x"], torch.sort(probs[3], descending=True).values[:4].numpy(), atol=1e-5)
    # The attention page link carries the layer (the attention page has no position setting), not this page's own
    # settings, and names the row to look at.
    link = next(e for e in at.get("page_link"))
    assert "layer=0" in str(link.proto) and "metric=" not in str(link.proto) and "pos=" not in str(link.proto)
    assert "row 3 of each head's heatmap" in link.proto.label


@pytest.mark.parametrize(
    "customdata",
    # As a list, and as the browser sends a typed array (seen in Chromium): {"0": layer, "1": position, ...}.
    [[0, 2, 1, 0.5, 0.1], {"0": 0, "1": 2, "2": 1, "3": 0.5, "4": 0.1}],
)
def test_cell_click_selects_layer_and_position(customdata):
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT)
    at.session_state["lens_heatmap"] = {"selection": {"points": [{"customdata": customdata}]}}
    at.run()
    assert_page_ok(at)
    assert at.session_state["lens_layer"] == 0 and at.session_state["lens_pos"] == 2
    assert at.query_params["layer"] == "0" and at.query_params["pos"] == "2"


def test_generated_tokens_are_marked():
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, gen=4)
    assert_page_ok(at)
    sel = at.session_state["selection"]
    loaded = get_model("tiny-gpt2")
    assert sel.prompt_text == TEXT and sel.text.startswith(TEXT) and len(sel.text) > len(TEXT)
    ids = np.asarray(loaded.tokenizer(sel.text)["input_ids"])
    mask = generated_mask(ids, np.asarray(sel.prompt_ids))
    spec = chart_spec(at, "lens_heatmap")
    labels = list(spec["data"][0]["x"])
    assert [label.endswith(GENERATED_MARK) for label in labels] == mask.tolist()
    assert mask.sum() >= 1 and not mask[: len(sel.prompt_ids)].any()
    assert any("continuation by the model" in c.value for c in at.sidebar.caption)


def test_encoder_gets_a_plain_message():
    at = run_page(PAGE, model="tiny-bert", text=TEXT)
    assert_page_ok(at)
    assert any("no logit lens" in i.value and "encoder" in i.value for i in at.info)
    assert not at.get("plotly_chart")


@pytest.mark.slow
def test_smollm2_lens_page():
    at = run_page(PAGE, model="smollm2-135m", text=TEXT, gen=3, timeout=600)
    # SmolLM2's lens may run in the background (estimated over a second): the page draws it on a later run.
    rerun_until(at, lambda at: bool(at.get("plotly_chart")), "the SmolLM2 lens")
    assert_page_ok(at)
    spec = chart_spec(at, "lens_heatmap")
    z = np.asarray(spec["data"][0]["z"])
    assert z.shape[0] == 30 and np.all(z[-1] == 0)  # rank 1 at the last layer: log10(1) = 0
    assert sum(label.endswith(GENERATED_MARK) for label in spec["data"][0]["x"]) >= 1


@pytest.mark.slow
def test_minilm_gets_a_plain_message():
    at = run_page(PAGE, model="minilm-l6", text=TEXT, timeout=600)
    assert_page_ok(at)
    assert any("no logit lens" in i.value for i in at.info)


def test_lens_summary_mentions_generated_positions():
    from explorer.analysis.logit_lens import logit_lens

    loaded = get_model("tiny-gpt2")
    ids = np.asarray(loaded.tokenizer(TEXT)["input_ids"])
    mask = np.zeros(len(ids), dtype=bool)
    mask[-3:] = True
    text = lens_summary(logit_lens(loaded, ids, generated=mask))
    assert "The last 3 positions" in text


def test_nonsense_in_the_link_falls_back_and_is_named():
    at = run_page(PAGE, model="tiny-gpt2", text=TEXT, metric="zz", layer="999", pos="-3", k="99")
    at = rerun_until(at, lambda at: bool(at.session_state["lens_layer"] is not None), "the lens")
    assert_page_ok(at)
    n_layers = get_model("tiny-gpt2").card.n_layers
    state = at.session_state
    assert (state["lens_metric"], state["lens_layer"], state["lens_pos"]) == ("rank", n_layers - 1, 0)
    assert state["lens_k"] == 10  # out of range: the nearest allowed value
    notices = " ".join(i.value for i in at.info if i.value.startswith("Link:"))
    for named in ("metric 'zz'", "layer 999", "pos -3", "k 99"):
        assert named in notices, notices
