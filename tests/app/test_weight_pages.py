"""The weight spectra, QK/OV circuits and Gershgorin pages under AppTest: they render on the tiny and the
embedded models, follow the query params both ways, survive nonsense in the link, and draw the numbers that
numpy gives (not numbers copied from the page's own code)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.matrices import head_weights, weight_matrices
from explorer.models import capture
from tests.apptest import assert_page_ok, plotly_specs, run_page, spec_titled
from tests.conftest import get_model
from tests.tolerances import (
    gram_singular_value_tolerance,
    nearest_eigenvalue_tolerance,
    product_tolerance,
    symmetric_tolerance,
)

WEIGHTS = "pages/weights.py"
CIRCUITS = "pages/circuits.py"
GERSHGORIN = "pages/gershgorin.py"
PAGES = [WEIGHTS, CIRCUITS, GERSHGORIN]
TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."


def metric_value(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_on_a_tiny_model(page, cache_home):
    at = run_page(page, model="tiny-gpt2", text=TEXT)
    assert_page_ok(at)
    assert len(plotly_specs(at)) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
@pytest.mark.parametrize("page", PAGES)
def test_pages_render_on_embedded_models(page, model):
    at = run_page(page, model=model, text=TEXT, timeout=600)
    assert_page_ok(at)
    card = get_model(model).card
    if page == WEIGHTS:
        heat = spec_titled(at, "power-law α of every weight matrix")
        assert len(heat["data"][0]["y"]) == card.n_layers + 1  # the blocks, plus the embeddings row
        assert len(plotly_specs(at)) == 5  # heatmap, scree, ESD, one kind across layers, WeightWatcher's set
    elif page == CIRCUITS:
        heat = spec_titled(at, "OV copying score")
        assert np.asarray(heat["data"][0]["z"]).shape == (card.n_layers, card.n_heads)
        assert any("Grouped-query" in info.value for info in at.info) == (card.n_kv_heads < card.n_heads)
    else:
        assert metric_value(at, "eigenvalues inside the union").split(" / ")[0] == str(
            len(capture(get_model(model), TEXT).tokens)
        )
        assert any("touches 1" in info.value for info in at.info)
        assert any("lower-triangular" in info.value for info in at.info) == card.causal


def test_weights_page_draws_numpy_singular_values_and_follows_params(cache_home):
    at = run_page(WEIGHTS, model="tiny-llama", kind="mlp_down", layer=1)
    assert_page_ok(at)
    scree = spec_titled(at, "Scree plot: L1 MLP down")
    W = next(
        m for m in weight_matrices(get_model("tiny-llama").model) if m.kind == "mlp_down" and m.layer == 1
    )
    expected = np.linalg.svd(W.weight.double().numpy(), compute_uv=False)
    # The page's singular values come by the float64 Gram route: min(sqrt(delta), delta / sigma) + the SVD's Weyl.
    Wd = W.weight.double().numpy()
    allowed = gram_singular_value_tolerance(Wd, expected) + symmetric_tolerance(Wd)
    assert np.all(np.abs(np.asarray(scree["data"][0]["y"], dtype=float) - expected) <= allowed)
    # A widget change is written back to the link and redraws the heatmap.
    at.selectbox(key="weights_metric").set_value("stable_rank").run()
    assert_page_ok(at)
    assert at.query_params["metric"] == ["stable_rank"] or at.query_params["metric"] == "stable_rank"
    spec_titled(at, "stable rank of every weight matrix")
    # The embedding (no layer) can be chosen too.
    at.selectbox(key="weights_kind").set_value("embed").run()
    assert_page_ok(at)
    spec_titled(at, "Scree plot: token embedding")


def test_weights_page_survives_nonsense_params(cache_home):
    at = run_page(WEIGHTS, model="tiny-bert", metric="nope", kind="nope", layer="999", compare="<script>")
    assert_page_ok(at)
    spec_titled(at, "power-law α of every weight matrix")  # the default metric
    assert at.select_slider(key="weights_layer").value == 1  # clamped to the last layer


def test_circuits_page_head_from_params_matches_numpy():
    at = run_page(CIRCUITS, model="tiny-llama", layer=1, head=3)
    assert_page_ok(at)
    plane = spec_titled(at, "OV eigenvalues, layer 1 head 3")
    card = get_model("tiny-llama").card
    hw = head_weights(get_model("tiny-llama").model, 1, card.n_heads, card.n_kv_heads)
    core = (hw.W_O[3] @ hw.W_V[3]).numpy()
    drawn = np.asarray(plane["data"][1]["x"]) + 1j * np.asarray(plane["data"][1]["y"])
    # The page forms the same product batched: kappa(lambda) (product rounding + both geevs).
    residual = 2 * product_tolerance(hw.W_O[3].numpy(), hw.W_V[3].numpy())
    nearest, allowed = nearest_eigenvalue_tolerance(core, drawn, residual=residual)
    assert np.all(np.abs(drawn - nearest) <= allowed)
    assert any("key/value head 1" in c.value for c in at.caption)  # GQA: head 3 reads K/V head 1
    nonsense = run_page(CIRCUITS, model="tiny-llama", layer="x", head="-7")
    assert_page_ok(nonsense)
    assert nonsense.slider(key="circuits_head").value == 0


def test_gershgorin_attention_head_matches_capture():
    at = run_page(GERSHGORIN, model="tiny-bert", text=TEXT, layer=1, head=2)
    assert_page_ok(at)
    A = capture(get_model("tiny-bert"), TEXT).attentions[1, 2].astype(np.float64)
    fig = spec_titled(at, "Attention layer 1 head 2")
    centres = next(t for t in fig["data"] if "centres" in t.get("name", ""))
    # float32 attention weights <= 1: 1e-7 is about one float32 ulp (6e-8).
    np.testing.assert_allclose(centres["x"], np.diag(A), atol=1e-7)
    radii = np.asarray(centres["customdata"])[:, 0]
    np.testing.assert_allclose(radii, 1 - np.diag(A), atol=1e-6)  # row-stochastic: R_i = 1 - a_ii
    assert not any("lower-triangular" in info.value for info in at.info)  # BERT is bidirectional
    # Column discs via the toggle.
    at.toggle(key="gershgorin_columns").set_value(True).run()
    assert_page_ok(at)
    fig = spec_titled(at, "Attention layer 1 head 2: column discs")
    centres = next(t for t in fig["data"] if "centres" in t.get("name", ""))
    np.testing.assert_allclose(np.asarray(centres["customdata"])[:, 0], A.sum(0) - np.diag(A), atol=1e-6)


def test_gershgorin_ov_core_and_typed_matrix():
    at = run_page(GERSHGORIN, model="tiny-llama", source="ov", layer=0, head=1)
    assert_page_ok(at)
    assert metric_value(at, "eigenvalues inside the union") == "16 / 16"  # d_head = 16
    typed = run_page(GERSHGORIN, model="tiny-llama", source="matrix", matrix="2 1\n1 -3")
    assert_page_ok(typed)
    assert metric_value(typed, "connected groups") == "2"
    assert metric_value(typed, "diagonally dominant rows") == "2 / 2"
    fig = spec_titled(typed, "Gershgorin row discs of the typed 2×2 matrix")
    eig = next(t for t in fig["data"] if t.get("name") == "eigenvalues λ")
    # symmetric: Weyl, the page's solver vs eigvalsh
    M = np.array([[2.0, 1.0], [1.0, -3.0]])
    np.testing.assert_allclose(
        sorted(eig["x"]), sorted(np.linalg.eigvalsh(M)), rtol=0, atol=2 * symmetric_tolerance(M)
    )


def test_gershgorin_bad_matrix_shows_a_clear_error():
    at = run_page(GERSHGORIN, model="tiny-llama", source="matrix", matrix="1 2\n3 four")
    assert not at.exception
    assert any("'four' is not a number" in e.value for e in at.error)
    at.text_area(key="gershgorin_matrix").set_value("1 0\n0 2").run()
    assert_page_ok(at)
    assert metric_value(at, "eigenvalues inside the union") == "2 / 2"
    bad_source = run_page(GERSHGORIN, model="tiny-llama", source="weird", discs="sideways", layer="1e9")
    assert_page_ok(bad_source)
    assert bad_source.radio(key="gershgorin_source").value == "attention"
