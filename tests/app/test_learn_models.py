"""The Learn walkthroughs on dynamics and models (markov, laplacian, recurrent, hessian, lora, lipschitz) under
AppTest: each renders on the small example and on the model, its charts carry numbers that numpy recomputes from
the model's capture or weights, controls write the link, an exercise is answered right and wrong, and the LoRA
fine-tune leaves the cached model's weights as they were."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.csgraph
import torch

from explorer import tasks
from explorer.models.capture import capture
from tests.apptest import assert_page_ok, chart_spec, plotly_specs, run_page
from tests.conftest import SAMPLE_TEXT, get_model

PAGE = "pages/learn.py"
#: walkthrough -> (param that puts it on the model, its value, charts on the example, charts on the model)
RECORDS = {
    "markov": ("mk_on", "head", 2, 2),
    "laplacian": ("lp_on", "head", 2, 2),
    "recurrent": ("rc_on", "head", 2, 2),
    "hessian": ("hs_on", "model", 3, 1),
    "lora": ("lr_on", "model", 1, 1),
    "lipschitz": ("lz_on", "model", 1, 2),
}


def _model_capture(at, model_id: str):
    text_key = at.session_state["selection"].text_key
    return capture(get_model(model_id), text_key.text, text_key.max_tokens)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
@pytest.mark.parametrize("walkthrough", list(RECORDS))
def test_renders_on_the_example_and_on_tiny_models(walkthrough, model):
    param, value, n_example, n_model = RECORDS[walkthrough]
    at = run_page(PAGE, model=model, walkthrough=walkthrough)
    assert_page_ok(at)
    assert len(plotly_specs(at)) == n_example
    at = run_page(PAGE, model=model, walkthrough=walkthrough, **{param: value})
    assert_page_ok(at)
    assert len(plotly_specs(at)) == n_model  # tiny models: the Hessian and the LoRA run in the page's own run
    assert at.query_params[param] == value


def test_markov_head_stationary_distribution_matches_numpy():
    at = run_page(
        PAGE, model="tiny-bert", text=SAMPLE_TEXT, walkthrough="markov", mk_on="head", layer=1, head=2
    )
    assert_page_ok(at)
    A = _model_capture(at, "tiny-bert").attentions[1, 2].astype(np.float64)
    n = A.shape[0]
    P = 0.85 * A + 0.15 / n
    pi = np.full(n, 1 / n)
    for _ in range(400):  # power iteration: error <= 0.85^k
        pi = pi @ P
    bars = np.asarray(chart_spec(at, "learn_mk_pi")["data"][0]["y"], float)
    np.testing.assert_allclose(bars, pi, atol=1e-6)  # the capture is float32: its rows sum to 1 within ~1e-7
    at.slider(key="learn_mk_d").set_value(0.9).run()
    assert at.query_params["mk_d"] == "0.9"
    lam2 = next(m for m in at.metric if m.label == "|λ₂|")
    assert float(lam2.value) <= 0.9


def test_laplacian_head_fiedler_vector_matches_scipy():
    from explorer.ui.learn import laplacian

    at = run_page(
        PAGE, model="tiny-gpt2", text=SAMPLE_TEXT, walkthrough="laplacian", lp_on="head", layer=0, head=1
    )
    assert_page_ok(at)
    A = _model_capture(at, "tiny-gpt2").attentions[0, 1].astype(np.float64)
    W = (A + A.T) / 2
    np.fill_diagonal(W, 0)
    vals, vecs = scipy.linalg.eigh(scipy.sparse.csgraph.laplacian(W))
    bars = np.asarray(chart_spec(at, "learn_lp_fiedler")["data"][0]["y"], float)
    assert abs(abs(bars @ vecs[:, 1]) - 1) < 1e-6 / (vals[2] - vals[1])  # float32 capture, Davis-Kahan
    # The tokens are coloured by the sign of the same vector.
    coloured = next(m.value for m in at.markdown if ":blue[" in m.value or ":orange[" in m.value)
    colours = re.findall(r":(blue|orange)\[", coloured)
    shown = min(len(bars), laplacian.MAX_SHOWN_WORDS)
    assert colours == ["blue" if b >= 0 else "orange" for b in bars[:shown]]


def test_recurrent_head_norms_match_numpy_powers():
    at = run_page(PAGE, model="tiny-gpt2", walkthrough="recurrent", rc_on="head", layer=1, head=3)
    assert_page_ok(at)
    loaded = get_model("tiny-gpt2")
    hw = loaded.anatomy.head_weights(loaded.model, 1)
    C = (hw.W_O[3] @ hw.W_V[3]).numpy()
    norms = np.asarray(chart_spec(at, "learn_rc_powers")["data"][0]["y"], float)
    for t in (0, 1, 5, 20):
        assert norms[t] == pytest.approx(np.linalg.norm(np.linalg.matrix_power(C, t), 2), rel=1e-8)
    at.segmented_control(key="learn_rc_scale").set_value("scaled").run()
    assert_page_ok(at)
    assert at.query_params["rc_scale"] == "scaled"
    assert float(next(m for m in at.metric if m.label == "ρ(W)").value) == pytest.approx(1.0)


def test_lipschitz_model_sigma_matches_numpy_svd():
    at = run_page(PAGE, model="tiny-bert", walkthrough="lipschitz", lz_on="model")
    assert_page_ok(at)
    loaded = get_model("tiny-bert")
    fig = chart_spec(at, "learn_lz_sigma")
    wv = next(trace for trace in fig["data"] if trace["name"] == "W_V")
    expected = [
        np.linalg.norm(
            loaded.anatomy.layer_matrices(layer)["attn_v"].weight(loaded.model).double().numpy(), 2
        )
        for layer in range(loaded.anatomy.n_layers)
    ]
    np.testing.assert_allclose(np.asarray(wv["y"], float), expected, rtol=1e-10)


def test_hessian_example_reports_the_step_limit_and_divergence():
    at = run_page(PAGE, walkthrough="hessian", hs_lo=2, hs_hi=8, hs_eta=1.1)
    assert not at.exception  # no assert_page_ok: an st.error box is the point here, the step diverges
    limit = next(m for m in at.metric if m.label == "limit 2/λ_max")
    assert float(limit.value) == pytest.approx(2 / np.linalg.eigvalsh(np.diag([2.0, 8.0]))[-1])
    assert any("2/λ_max" in e.value for e in at.error)
    at.slider(key="learn_hs_eta").set_value(0.5).run()
    assert_page_ok(at)


def test_exercise_answered_right_and_wrong():
    at = run_page(PAGE, walkthrough="recurrent", seed=17)
    assert_page_ok(at)
    box = next(m.value for m in at.markdown if m.value.startswith("**Exercise 1"))
    a, s, zero, b = (float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", box.split("W =")[1])[:4])
    rho = np.abs(np.linalg.eigvals(np.array([[a, s], [zero, b]]))).max()
    answer = at.text_input(key="learn_ex_recurrent_radius_answer")
    answer.set_value(f"{rho + 0.2:g}").run()
    at.button(key="learn_ex_recurrent_radius_check").click().run()
    assert at.error and not at.success
    assert any(i.value.startswith("Hint") for i in at.info)
    at.text_input(key="learn_ex_recurrent_radius_answer").set_value(f"{rho:g}").run()
    at.button(key="learn_ex_recurrent_radius_check").click().run()
    assert any(s.value.startswith("Right") for s in at.success)


def test_lora_on_the_page_leaves_the_cached_model_unchanged():
    from explorer.ui.cache import cached_model

    at = run_page(PAGE, model="tiny-gpt2", walkthrough="lora")
    assert_page_ok(at)
    cached = cached_model(at.session_state["selection"].model_key)
    before = {n: p.detach().clone() for n, p in cached.model.named_parameters()}
    at.segmented_control(key="learn_lr_on").set_value("model").run()
    assert_page_ok(at)
    assert len(plotly_specs(at)) == 1
    amplification = chart_spec(at, "learn_lr_model")["data"][0]["y"]
    assert len(amplification) == cached.anatomy.n_layers and np.all(np.asarray(amplification, float) > 0)
    after = dict(cached.model.named_parameters())
    assert set(after) == set(before) and all(torch.equal(before[n], after[n]) for n in before)
    assert not any("lora" in name for name, _ in cached.model.named_modules())


def _cancel_background_work(at, model: str) -> None:
    """Cancel the background task a real model's Hessian or LoRA view started with its default settings (the
    specs are built by the same functions the page uses), so no work outlives the test."""
    from explorer.ui.learn import lora, models_cache

    sel = at.session_state["selection"]
    block = f"layer:{get_model(model).anatomy.n_layers // 2}:attention"
    tasks.cancel(models_cache.hessian_spec(sel.model_key, sel.text_key, block))
    rate = lora.RATE.default
    tasks.cancel(
        models_cache.lora_spec(sel.model_key, sel.text_key, lora.RANK.default, lora.STEPS.default, rate)
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
@pytest.mark.parametrize("walkthrough", list(RECORDS))
def test_renders_on_embedded_models(walkthrough, model):
    param, value, n_example, n_model = RECORDS[walkthrough]
    at = run_page(PAGE, model=model, walkthrough=walkthrough, timeout=300, **{param: value})
    try:
        assert_page_ok(at)
        charts = len(plotly_specs(at))
        if walkthrough in ("hessian", "lora"):  # background work: progress first, the chart when it is done
            assert charts == n_model or at.get("progress")
        else:
            assert charts == n_model
    finally:
        _cancel_background_work(at, model)


def test_hessian_model_sentence_is_computed_from_the_result():
    from explorer.ui.learn import hessian, models_cache

    at = run_page(PAGE, model="tiny-gpt2", walkthrough="hessian", hs_on="model")
    assert_page_ok(at)
    sel = at.session_state["selection"]
    spec = models_cache.hessian_spec(sel.model_key, sel.text_key, "layer:1:attention")
    result = tasks.peek(spec).value()
    lam, w = result.nodes.ravel(), result.weights.ravel()
    share = w[np.abs(lam) <= hessian.FLAT_WIDTH * result.lambda_max].sum() / w.sum()
    caption = next(c.value for c in at.caption if "of the spectral weight" in c.value)
    assert f"{100 * share:.1f} % of the spectral weight" in caption
    assert next(m for m in at.metric if m.label == "λ_max").value == f"{result.lambda_max:.4g}"
    star = chart_spec(at, "learn_hs_model_density")["data"][-1]
    assert float(np.ravel(star["y"])[0]) == pytest.approx(result.kde0)


def test_lipschitz_example_bound_matches_numpy():
    at = run_page(PAGE, walkthrough="lipschitz", lz_depth=5, lz_scale=1.5)
    assert_page_ok(at)
    rng = np.random.default_rng(0)  # the example's stack: N(0, scale^2 / width) entries, seed 0
    mats = [1.5 * rng.standard_normal((16, 16)) / 4.0 for _ in range(5)]
    bound = np.prod([np.linalg.norm(M, 2) for M in mats])
    assert next(m for m in at.metric if m.label == "bound ∏σ_max").value == f"{bound:.3g}"
    exact = np.linalg.norm(np.linalg.multi_dot(mats[::-1]), 2)
    assert next(m for m in at.metric if m.label == "‖W_L⋯W_1‖₂").value == f"{exact:.3g}"
    at.toggle(key="learn_lz_sn").set_value(True).run()
    assert at.query_params["lz_sn"] == "1"
    assert next(m for m in at.metric if m.label == "bound ∏σ_max").value == "1"
