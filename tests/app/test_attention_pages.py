"""The attention and eigenvector pages under AppTest: they render, follow the query params both ways, and show the
selected head's numbers (checked against the capture and numpy, not against the page's own code)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.models import capture
from tests.apptest import assert_page_ok, plotly_specs, run_page, spec_titled
from tests.conftest import get_model
from tests.tolerances import eig_tolerances, pagerank_residual_tolerance

ATTENTION = "pages/attention.py"
EIGENVECTORS = "pages/eigenvectors.py"
TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."


def attention_of(model_id: str, layer: int, head: int) -> np.ndarray:
    return capture(get_model(model_id), TEXT).attentions[layer, head].astype(np.float64)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
def test_attention_page_renders_grid_and_head_views(model):
    at = run_page(ATTENTION, model=model, text=TEXT)
    assert_page_ok(at)
    assert len(at.get("plotly_chart")) == 5  # grid, spectra, symmetric/Laplacian, heatmap, complex plane
    causal_note = any("lower-triangular" in info.value for info in at.info)
    assert causal_note == (model == "tiny-gpt2")
    grid = spec_titled(at, "|λ₂| of every head")
    assert np.asarray(grid["data"][0]["z"]).shape == (2, 4)


def test_head_change_via_query_params_redraws():
    at = run_page(ATTENTION, model="tiny-bert", text=TEXT, layer=0, head=0)
    assert_page_ok(at)
    assert any(h.value == "Layer 0 · head 0" for h in at.subheader)
    at.query_params["layer"] = "1"
    at.query_params["head"] = "3"
    at.run()
    assert_page_ok(at)
    assert any(h.value == "Layer 1 · head 3" for h in at.subheader)
    heatmap = spec_titled(at, "Layer 1 · head 3: attention weights")
    # The page's own capture: float32 attention weights <= 1, so 1e-7 is about one float32 ulp (6e-8).
    np.testing.assert_allclose(
        np.asarray(heatmap["data"][0]["z"]), attention_of("tiny-bert", 1, 3), atol=1e-7
    )
    plane = spec_titled(at, "Layer 1 · head 3: eigenvalues")
    expected = np.linalg.eigvals(attention_of("tiny-bert", 1, 3))
    # Sorted moduli differ by at most the optimal matching distance: within the worst kappa(lambda) bound.
    moduli_tol = 2 * eig_tolerances(attention_of("tiny-bert", 1, 3))[1].max()
    np.testing.assert_allclose(
        np.sort(np.hypot(plane["data"][1]["x"], plane["data"][1]["y"])),
        np.sort(np.abs(expected)),
        atol=moduli_tol,
    )
    grid = spec_titled(at, "|λ₂| of every head")
    rect = grid["layout"]["shapes"][0]
    assert (rect["x0"], rect["y0"]) == (2.5, 0.5)  # the selected cell is outlined


def test_widgets_write_the_query_params():
    at = run_page(ATTENTION, model="tiny-gpt2", text=TEXT)
    assert_page_ok(at)
    at.number_input(key="attention_head").set_value(2).run()
    at.selectbox(key="attention_metric").set_value("entropy").run()
    assert_page_ok(at)
    assert at.query_params["head"] == ["2"] or at.query_params["head"] == "2"
    assert "entropy" in str(at.query_params["metric"])
    assert any(h.value == "Layer 0 · head 2" for h in at.subheader)
    spec_titled(at, "row entropy (normalised, 0–1) of every head")


def test_temperature_from_the_link_reaches_the_heatmap():
    at = run_page(ATTENTION, model="tiny-gpt2", text=TEXT, layer=1, head=1, tau=0.5)
    assert_page_ok(at)
    heatmap = spec_titled(at, "Layer 1 · head 1 · τ = 0.5: attention weights")
    A = attention_of("tiny-gpt2", 1, 1)
    logits = np.where(A > 0, np.log(np.where(A > 0, A, 1)) / 0.5, -np.inf)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    # Weights from the page's own float32 capture (<= 1): 1e-7 is about one float32 ulp (6e-8).
    np.testing.assert_allclose(
        np.asarray(heatmap["data"][0]["z"]), expected / expected.sum(-1, keepdims=True), atol=1e-7
    )


def test_nonsense_params_fall_back():
    at = run_page(ATTENTION, model="tiny-bert", text=TEXT, layer="abc", head="-7", metric="bogus", tau="nan")
    assert_page_ok(at)
    assert at.selectbox(key="attention_metric").value == "lambda2_abs"
    assert at.number_input(key="attention_layer").value == 0
    assert at.number_input(key="attention_head").value == 0  # clamped to the first head
    assert at.slider(key="attention_tau").value == 1.0
    at = run_page(EIGENVECTORS, model="tiny-bert", text=TEXT, vectors="nope", k="999", color="x", damping="2")
    assert_page_ok(at)
    assert at.selectbox(key="eigenvectors_kind").value == "right"


def test_eigenvectors_page_kinds_and_k():
    at = run_page(EIGENVECTORS, model="tiny-gpt2", text=TEXT, layer=1, head=0, vectors="singular", k=3)
    assert_page_ok(at)
    heatmap = spec_titled(at, "Layer 1 · head 0: top 3 left singular vectors")
    rows = heatmap["data"][0]["y"]
    sigma = np.linalg.svd(attention_of("tiny-gpt2", 1, 0), compute_uv=False)
    assert rows == [f"v{i + 1} · σ={s:.3f}" for i, s in enumerate(sigma[:3])]
    assert len(at.dataframe[0].value) == 3
    stationary = spec_titled(at, "Stationary distribution")
    pi = np.asarray(stationary["data"][0]["y"])
    A = attention_of("tiny-gpt2", 1, 0)
    # A solve, renormalised: the float32 rows of A sum to 1 only to ~1e-7, which the residual inherits.
    np.testing.assert_allclose(
        pi, 0.85 * pi @ A + 0.15 / len(A), atol=pagerank_residual_tolerance(A, pi, 0.85)
    )
    at.selectbox(key="eigenvectors_kind").set_value("right").run()
    assert_page_ok(at)
    assert "right" in str(at.query_params["vectors"])
    spec_titled(at, "Layer 1 · head 0: top 3 right eigenvectors")


def test_selected_head_follows_to_the_eigenvector_page():
    at = run_page(ATTENTION, model="tiny-llama", text=TEXT, layer=1, head=3)
    assert_page_ok(at)
    at.switch_page(EIGENVECTORS)
    at.run()
    assert_page_ok(at)
    assert at.number_input(key="eigenvectors_layer").value == 1
    assert at.number_input(key="eigenvectors_head").value == 3


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_both_pages_on_embedded_models(model):
    at = run_page(ATTENTION, model=model, text=TEXT, layer=2, head=1)
    assert_page_ok(at)
    assert len(at.get("plotly_chart")) == 5
    assert any(h.value == "Layer 2 · head 1" for h in at.subheader)
    heatmap = spec_titled(at, "Layer 2 · head 1: attention weights")
    # float32 attention weights <= 1: 1e-7 is about one float32 ulp (6e-8).
    np.testing.assert_allclose(np.asarray(heatmap["data"][0]["z"]), attention_of(model, 2, 1), atol=1e-7)
    at.query_params["head"] = "4"
    at.run()
    assert_page_ok(at)
    spec_titled(at, "Layer 2 · head 4: attention weights")
    at = run_page(EIGENVECTORS, model=model, text=TEXT, layer=2, head=4)
    assert_page_ok(at)
    assert len(at.get("plotly_chart")) == 2
    kind = "symmetric part" if model == "smollm2-135m" else "right eigenvectors"
    spec_titled(
        at, f"Layer 2 · head 4: top 6 {'eigenvectors of the ' + kind if kind == 'symmetric part' else kind}"
    )


@pytest.mark.parametrize(
    "page, says", [("pages/attention.py", "1 x 1 matrix"), ("pages/eigenvectors.py", "only one eigenvector")]
)
def test_single_token_text_says_what_to_do(page, says):
    at = run_page(page, model="tiny-gpt2", text="a")
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any(says in w and "Add some words" in w for w in warnings), warnings
    assert not plotly_specs(at)
