"""Compare mode of the QK/OV circuits page (vs= in the link) under AppTest: the layer x head grid of a change, the
selected head's A | B charts, and a caption whose head and number are numpy's (tiny models: the dense
d_model x d_model circuits) or the analysis's (embedded models); a variant that leaves every attention weight as
it is says "no change"."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis import variants as V
from explorer.analysis.circuits import circuit_spectra, compare_model_circuits
from explorer.analysis.matrices import head_weights
from tests.app.compare_pages import TEXT, changed_most, drawn, open_compare, three_digits
from tests.apptest import assert_page_ok, chart_spec, rerun_until, run_page
from tests.conftest import get_model
from tests.tolerances import eps, product_tolerance, sum_rtol

CIRCUITS = "pages/circuits.py"


def test_tiny_model_vs_int8_caption_is_numpys(cache_home):
    at = open_compare(CIRCUITS, "tiny-llama", "int8")
    assert_page_ok(at)
    grid = chart_spec(at, "circuits_vs_grid")
    for key in ("circuits_vs_eig", "circuits_vs_sigma"):
        chart_spec(at, key)
    assert at.query_params["vs"] in ("int8", ["int8"])
    # The default quantity is ||W_OV^B - W_OV^A||_F / ||W_OV^A||_F: numpy's, from the formed circuits of A and B.
    loaded = get_model("tiny-llama")
    card = loaded.card
    variant = V.build_variant(loaded, "int8")
    dense = np.zeros((card.n_layers, card.n_heads))
    norm_ab = np.zeros_like(dense)  # ||X1|| ||Y1|| + ||X2|| ||Y2|| (Frobenius), for the rounding allowed
    for layer in range(card.n_layers):
        ha = head_weights(loaded.model, layer, card.n_heads, card.n_kv_heads)
        # B's head weights, split from its rounded matrices exactly as A's (the variant's module holds them).
        hb_o = variant.replaced[f"model.layers.{layer}.self_attn.o_proj"].double()
        hb_v = variant.replaced[f"model.layers.{layer}.self_attn.v_proj"].double()
        d, dh = card.d_model, card.d_head
        W_O_b = hb_o.reshape(d, card.n_heads, dh).permute(1, 2, 0).numpy()
        W_V_b = hb_v.reshape(card.n_kv_heads, dh, d).transpose(1, 2).numpy()
        for h in range(card.n_heads):
            X2, Y2 = ha.W_V[h].numpy(), ha.W_O[h].numpy()
            X1, Y1 = W_V_b[h // (card.n_heads // card.n_kv_heads)], W_O_b[h]
            dense[layer, h] = np.linalg.norm(X1 @ Y1 - X2 @ Y2) / np.linalg.norm(X2 @ Y2)
            norm_ab[layer, h] = (product_tolerance(X1, Y1) + product_tolerance(X2, Y2)) / np.linalg.norm(
                X2 @ Y2
            )
    layer, head, shown = changed_most(at)
    # The head numpy finds largest (unless two heads tie within rounding, which the grid's values would show).
    assert dense[layer, head] >= dense.max() - 2 * norm_ab.max()
    # The reference's rounding: each product to product_tolerance, the norms' sums to sum_rtol; then .3g.
    allowed = norm_ab[layer, head] + (sum_rtol(card.d_model**2) + 2 * eps()) * dense[layer, head]
    assert abs(shown - dense[layer, head]) <= allowed + three_digits(dense[layer, head])
    # The grid holds every head's value (the page's own numbers, the same as the caption's).
    z = np.asarray(grid["data"][0]["z"], dtype=float)
    assert z.shape == (card.n_layers, card.n_heads)
    assert np.all(np.abs(z - dense) <= norm_ab + (sum_rtol(card.d_model**2) + 2 * eps()) * dense)
    # The table of the selected head (it opens on the head that changed most): A's numbers are A's circuits'.
    a = circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)
    table = at.dataframe[0].value
    row = table[table["quantity"] == "copying score"].iloc[0]
    assert row["A"] == f"{a.copying_score[layer, head]:.4g}"
    assert chart_spec(at, "circuits_vs_eig")["layout"]["title"]["text"].startswith(
        f"OV eigenvalues, layer {layer} head {head}"
    )
    # A change of the quantity of the quantity redraws the grid as B - A of the copying score.
    at.selectbox(key="circuits_vs_circuit").set_value("copying_score").run()
    assert_page_ok(at)
    assert chart_spec(at, "circuits_vs_grid")["layout"]["title"]["text"].startswith("Δ copying score")


def test_the_head_follows_the_link(cache_home):
    loaded = get_model("tiny-llama")
    card = loaded.card
    a = circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)
    top = compare_model_circuits(loaded.model, V.build_variant(loaded, "int8").replaced, a).most_changed(
        "ov_change"
    )
    layer, head = (1, 2) if top != (1, 2) else (0, 1)  # not the default head, which the link leaves out
    at = run_page(CIRCUITS, model="tiny-llama", text=TEXT, vs="int8", vs_layer=layer, vs_head=head)
    at = rerun_until(at, drawn, f"circuits tiny-llama vs int8 at layer {layer} head {head}")
    assert_page_ok(at)
    title = chart_spec(at, "circuits_vs_sigma")["layout"]["title"]["text"]
    assert f"layer {layer} head {head}" in title
    for param, value, default in (("vs_layer", layer, top[0]), ("vs_head", head, top[1])):
        if value != default:  # the link keeps what differs from the default (the head that changed most)
            assert at.query_params[param] in (str(value), [str(value)])


def test_a_variant_of_the_mlp_alone_says_no_change(cache_home):
    at = open_compare(CIRCUITS, "tiny-gpt2", "rank:0.5")
    assert_page_ok(at)
    assert any("No change" in info.value for info in at.info)
    z = np.asarray(chart_spec(at, "circuits_vs_grid")["data"][0]["z"], dtype=float)
    assert np.all(z == 0.0)


def test_nonsense_key_says_what_to_do(cache_home):
    at = run_page(CIRCUITS, model="tiny-bert")
    assert_page_ok(at)
    at.text_input(key="circuits_vs").set_value("int5").run()
    assert not at.exception
    assert any("bits must be" in w.value for w in at.warning)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_embedded_models_vs_int8(model):
    at = open_compare(CIRCUITS, model, "int8", timeout=900)
    assert_page_ok(at)
    for key in ("circuits_vs_grid", "circuits_vs_eig", "circuits_vs_sigma"):
        chart_spec(at, key)
    loaded = get_model(model)
    card = loaded.card
    a = circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)
    comparison = compare_model_circuits(loaded.model, V.build_variant(loaded, "int8").replaced, a)
    layer, head, shown = changed_most(at)
    assert (layer, head) == comparison.most_changed("ov_change")
    assert f"{shown:.3g}" == f"{comparison.ov_change[layer, head]:.3g}"
    assert not comparison.same.any()  # int8 rounds every attention matrix
