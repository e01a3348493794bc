"""The attention and eigenvector pages under AppTest: they render, follow the query params both ways, and show the
selected head's numbers (checked against the capture and numpy, not against the page's own code)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.models import capture
from explorer.texts import example_texts
from tests.apptest import assert_page_ok, plotly_specs, run_page, spec_titled
from tests.conftest import get_model
from tests.tolerances import eig_tolerances, eps, pagerank_residual_tolerance, sum_rtol

ATTENTION = "pages/attention.py"
EIGENVECTORS = "pages/eigenvectors.py"
TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."


# Every example text, repeated: over 2,000 SmolLM2 tokens, cut by the max-tokens setting.
LONG_TEXT = " ".join([" ".join(example_texts().values())] * 12)


def attention_of(
    model_id: str, layer: int, head: int, text: str = TEXT, max_tokens: int | None = None
) -> np.ndarray:
    return capture(get_model(model_id), text, max_tokens).attentions[layer, head].astype(np.float64)


def assert_log_of(z, A: np.ndarray) -> None:
    """z is log10(A) rounded to float32, blank (NaN) where A is exactly 0. The page's capture and the test's are
    the same float32 weights; an ulp of difference (relative eps32) moves log10 by eps32 / ln 10, and the float32
    rounding of z adds one relative eps32."""
    z = np.asarray(z, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(z), A == 0)
    np.testing.assert_allclose(z[A > 0], np.log10(A[A > 0]), rtol=eps(np.float32), atol=eps(np.float32))


def block_mass(A: np.ndarray, block: int) -> np.ndarray:
    """Sum of each block of ``block`` queries x ``block`` keys, divided by the block's number of queries."""
    starts = range(0, len(A), block)
    return np.array(
        [[A[i : i + block, j : j + block].sum() / len(A[i : i + block]) for j in starts] for i in starts]
    )


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
    # tiny-bert reads bytes: TEXT is over 21 tokens, so the heatmap is in log colour by default.
    assert "log scale" in heatmap["data"][0]["colorbar"]["title"]["text"]
    assert_log_of(heatmap["data"][0]["z"], attention_of("tiny-bert", 1, 3))
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
    at = run_page(ATTENTION, model="tiny-gpt2", text=TEXT, layer=1, head=1, tau=0.5, heat="linear")
    assert_page_ok(at)
    assert at.segmented_control(key="attention_heat_color").value == "linear"
    heatmap = spec_titled(at, "Layer 1 · head 1 · τ = 0.5: attention weights")
    A = attention_of("tiny-gpt2", 1, 1)
    logits = np.where(A > 0, np.log(np.where(A > 0, A, 1)) / 0.5, -np.inf)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    # Weights <= 1 from the page's own float32 capture, then rounded to float32 for the browser: one float32 ulp
    # (6e-8) and half of one (3e-8), under 1e-7.
    np.testing.assert_allclose(
        np.asarray(heatmap["data"][0]["z"]), expected / expected.sum(-1, keepdims=True), atol=1e-7
    )
    assert heatmap["data"][0]["colorbar"]["title"]["text"] == "attention"
    assert at.query_params["heat"] in (
        "linear",
        ["linear"],
    )  # a choice that is not the default stays in the link
    caption = next(c.value for c in at.caption if c.value.startswith("Colour:"))
    assert (
        caption == "Colour: the attention on a linear scale from 0 to its largest value."
    )  # no blocks: 65 bytes


def test_nonsense_params_fall_back():
    at = run_page(
        ATTENTION,
        model="tiny-bert",
        text=TEXT,
        layer="abc",
        head="-7",
        metric="bogus",
        tau="nan",
        heat="x",
        pool="y",
    )
    assert_page_ok(at)
    assert at.segmented_control(key="attention_heat_color").value == "auto"
    assert "heat" not in at.query_params and "pool" not in at.query_params  # defaults leave the link
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


# 512 tokens on both (MiniLM's maximum): SmolLM2's grid at 1,024 tokens costs a minute of CPU in this tier, and
# the figure tests pool a 1,023-token matrix in blocks of 4.
@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
def test_long_text_heatmap_is_log_and_pooled_by_default(model):
    max_tokens, block = 512, 2
    at = run_page(ATTENTION, model=model, text=LONG_TEXT, max_tokens=max_tokens, layer=2, head=1)
    assert_page_ok(at)
    assert at.segmented_control(key="attention_heat_color").value == "auto"
    assert "heat" not in at.query_params
    spec = spec_titled(at, "Layer 2 · head 1: attention weights")
    heatmap = spec["data"][0]
    cells = max_tokens // block
    assert np.asarray(heatmap["z"]).shape == (cells, cells) == (256, 256)
    assert "log scale" in heatmap["colorbar"]["title"]["text"]
    assert f"blocks of {block} tokens" in spec["layout"]["xaxis"]["title"]["text"]
    assert f"blocks of {block} tokens" in spec["layout"]["yaxis"]["title"]["text"]
    A = attention_of(model, 2, 1, LONG_TEXT, max_tokens)
    assert A.shape == (max_tokens, max_tokens)
    mass = block_mass(A, block)
    assert_log_of(heatmap["z"], mass)
    # The caption under it says what is drawn, with the numbers of this figure.
    caption = next(c.value for c in at.caption if "Drawn in blocks" in c.value)
    assert f"blocks of {block} tokens: {cells} × {cells} cells for the {max_tokens} × {max_tokens}" in caption
    assert "log₁₀ of the block mass" in caption
    # The reader can switch: linear colour and the largest weight per block, both written to the link.
    at.segmented_control(key="attention_heat_color").set_value("linear").run()
    at.segmented_control(key="attention_pool").set_value("max").run()
    assert_page_ok(at)
    assert at.query_params["heat"] in ("linear", ["linear"]) and at.query_params["pool"] in ("max", ["max"])
    spec = spec_titled(at, "Layer 2 · head 1: attention weights")
    assert "largest weight" in spec["data"][0]["colorbar"]["title"]["text"]
    starts = range(0, max_tokens, block)
    largest = np.array([[A[i : i + block, j : j + block].max() for j in starts] for i in starts])
    # exact: the largest of the same float32 weights, rounded back to float32
    np.testing.assert_array_equal(np.asarray(spec["data"][0]["z"]), largest.astype(np.float32))


@pytest.mark.parametrize(
    "page, says", [("pages/attention.py", "1 x 1 matrix"), ("pages/eigenvectors.py", "only one eigenvector")]
)
def test_single_token_text_says_what_to_do(page, says):
    at = run_page(page, model="tiny-gpt2", text="a")
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any(says in w and "Add some words" in w for w in warnings), warnings
    assert not plotly_specs(at)


# ------------------------------------------------------------------------ zoom and several tokens at once


def n_tokens_of(model_id: str, text: str = TEXT, max_tokens: int | None = None) -> int:
    return capture(get_model(model_id), text, max_tokens).n_tokens


def check_zoom_and_sums(at, model: str, layer: int, head: int, text: str = TEXT, max_tokens=None) -> None:
    """The zoom window is the exact slice of the capture, and the summed charts are numpy's sums of its rows
    and columns (the page opened with q_from=3, q_to=9, k_from=1, k_to=6, queries=2-4, 7 and keys=0, 5-6)."""
    A = attention_of(model, layer, head, text, max_tokens)
    zoom = spec_titled(at, f"Layer {layer} · head {head}: zoom, queries 3–9 × keys 1–6")
    z = np.asarray(zoom["data"][0]["z"])
    if "log scale" in zoom["data"][0]["colorbar"]["title"]["text"]:
        np.testing.assert_array_equal(
            np.asarray(zoom["data"][0]["customdata"]), A[3:10, 1:7].astype(np.float32)
        )
        assert_log_of(z, A[3:10, 1:7])
    else:
        np.testing.assert_array_equal(z, A[3:10, 1:7].astype(np.float32))  # exact: the same float32 weights
    assert list(zoom["data"][0]["x"]) == list(range(1, 7)) and list(zoom["data"][0]["y"]) == list(
        range(3, 10)
    )
    labels = capture(get_model(model), text, max_tokens).labels()
    assert list(zoom["layout"]["xaxis"]["ticktext"]) == labels[1:7]  # the tokens fit: their text on the axis
    overview = spec_titled(at, f"Layer {layer} · head {head}: attention weights")
    rect = overview["layout"]["shapes"][0]
    assert (rect["x0"], rect["x1"], rect["y0"], rect["y1"]) == (0.5, 6.5, 2.5, 9.5)
    rows = spec_titled(at, f"Layer {layer} · head {head}: summed attention")
    cols = spec_titled(at, f"Layer {layer} · head {head}: attention received")
    queries, keys = [2, 3, 4, 7], [0, 5, 6]
    # float64 sums of 4 (3) nonnegative float32 weights, in another order than numpy's: sum_rtol of that many.
    np.testing.assert_allclose(np.asarray(rows["data"][0]["y"]), A[queries].sum(0), rtol=sum_rtol(4), atol=0)
    np.testing.assert_allclose(np.asarray(cols["data"][0]["y"]), A[:, keys].sum(1), rtol=sum_rtol(3), atol=0)
    assert list(rows["data"][1]["x"]) == queries and list(cols["data"][1]["x"]) == keys
    if capture(get_model(model), text, max_tokens).causal:  # masked keys after the last query get nothing
        assert (np.asarray(rows["data"][0]["y"])[8:] == 0).all()
    captions = " ".join(c.value for c in at.caption)
    assert (
        "over the 4 selected queries i (2-4, 7)" in captions
        and "over the 3 selected keys j (0, 5-6)" in captions
    )


ZOOM_AND_SUMS = dict(q_from=3, q_to=9, k_from=1, k_to=6, queries="2-4, 7", keys="0, 5-6")


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-bert"])
def test_zoom_and_summed_tokens_from_the_link(model):
    at = run_page(ATTENTION, model=model, text=TEXT, layer=1, head=2, **ZOOM_AND_SUMS)
    assert_page_ok(at)
    check_zoom_and_sums(at, model, 1, 2)
    assert (
        len(at.get("plotly_chart")) == 8
    )  # grid, spectra, symmetric/Laplacian, overview, zoom, 2 sums, plane
    # The widgets write the link: a new range and a new selection.
    at.number_input(key="attention_q_to").set_value(12).run()
    at.text_input(key="attention_key_tokens").set_value("1-2").run()
    assert_page_ok(at)
    assert str(at.query_params["q_to"]) in ("12", "['12']") and "1-2" in str(at.query_params["keys"])
    spec_titled(at, "Layer 1 · head 2: zoom, queries 3–12 × keys 1–6")
    spec_titled(at, "Layer 1 · head 2: attention received: to keys 1-2")
    # "Whole matrix" drops the zoom: no zoom chart, and the range leaves the link.
    at.button(key="attention_zoom_reset").click().run()
    assert_page_ok(at)
    assert not any(
        s["layout"]["title"]["text"].startswith("Layer 1 · head 2: zoom") for s in plotly_specs(at)
    )
    assert all(p not in at.query_params for p in ("q_from", "q_to", "k_from", "k_to"))


def test_a_new_text_forgets_the_zoom_and_the_selection():
    """They name positions of the old text; a longer text must not open zoomed on the old one's length."""
    at = run_page(ATTENTION, model="tiny-gpt2", text=TEXT, **ZOOM_AND_SUMS)
    assert_page_ok(at)
    spec_titled(at, "Layer 0 · head 0: zoom")
    longer = TEXT + " The end came quietly, and everyone went home to sleep for a long while."
    at.query_params["text"] = longer
    at.run()
    assert_page_ok(at)
    T = n_tokens_of("tiny-gpt2", longer)
    assert (
        at.number_input(key="attention_q_to").value == T - 1
        and at.number_input(key="attention_k_from").value == 0
    )
    assert at.text_input(key="attention_query_tokens").value == ""
    assert not any(p in at.query_params for p in ("q_from", "q_to", "k_from", "k_to", "queries", "keys"))
    titles = [s["layout"]["title"]["text"] for s in plotly_specs(at)]
    assert not any(": zoom" in t or "summed attention" in t or "attention received" in t for t in titles)
    # Never zoomed: the shorter text's last token (the "to" inputs' default then) is no zoom on the longer one.
    at = run_page(ATTENTION, model="tiny-gpt2", text=TEXT)
    at.query_params["text"] = longer
    at.run()
    assert_page_ok(at)
    assert not any(": zoom" in s["layout"]["title"]["text"] for s in plotly_specs(at))


@pytest.mark.parametrize(
    "params, says",
    [
        (dict(q_from=9, q_to=3), "Queries from 9 is after queries to 3"),
        (dict(k_from=6, k_to=2), "Keys from 6 is after keys to 2"),
        (dict(queries="5-2"), "'5-2': the start 5 is after the end 2"),
        (dict(keys="abc"), "'abc' is not a token position or a range"),
        (dict(queries="3, 999"), "'999' goes beyond the last token"),
    ],
)
def test_bad_ranges_say_which_value(params, says):
    at = run_page(ATTENTION, model="tiny-gpt2", text=TEXT, **params)
    assert_page_ok(at)
    warnings = [w.value for w in at.warning]
    assert any(says in w for w in warnings), warnings
    titles = [s["layout"]["title"]["text"] for s in plotly_specs(at)]
    assert not any(": zoom" in t or "summed attention" in t or "attention received" in t for t in titles)


def test_out_of_range_and_nonsense_zoom_links_are_named():
    T = n_tokens_of("tiny-gpt2")
    at = run_page(ATTENTION, model="tiny-gpt2", text=TEXT, q_to=99999, k_from="abc", k_to="7")
    assert_page_ok(at)
    notice = " ".join(i.value for i in at.info)
    assert f"q_to 99999 is out of range (0-{T - 1})" in notice and "k_from 'abc' is not a number" in notice
    assert (
        at.number_input(key="attention_q_to").value == T - 1
        and at.number_input(key="attention_k_from").value == 0
    )
    spec_titled(at, f"Layer 0 · head 0: zoom, queries 0–{T - 1} × keys 0–7")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_zoom_sums_and_bad_ranges_on_embedded_models(model):
    at = run_page(ATTENTION, model=model, text=TEXT, layer=2, head=1, **ZOOM_AND_SUMS)
    assert_page_ok(at)
    check_zoom_and_sums(at, model, 2, 1)
    T = n_tokens_of(model)
    at.number_input(key="attention_k_from").set_value(6).run()
    at.number_input(key="attention_k_to").set_value(2).run()
    at.text_input(key="attention_query_tokens").set_value(f"1, {T}").run()
    at.text_input(key="attention_key_tokens").set_value("x-2").run()
    assert_page_ok(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "Keys from 6 is after keys to 2" in warnings
    assert f"'{T}' goes beyond the last token, {T - 1}" in warnings
    assert "'x-2' is not a token position or a range" in warnings


# The overview of a long text at 512 tokens pooled by the block mean (the other poolings: the test above).
@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
def test_long_text_overview_mean_and_a_zoomed_window(model):
    max_tokens, block = 512, 2
    at = run_page(
        ATTENTION,
        model=model,
        text=LONG_TEXT,
        max_tokens=max_tokens,
        layer=2,
        head=1,
        pool="mean",
        heat="linear",
        q_from=300,
        q_to=499,
        k_from=100,
        k_to=399,
    )
    assert_page_ok(at)
    A = attention_of(model, 2, 1, LONG_TEXT, max_tokens)
    overview = spec_titled(at, "Layer 2 · head 1: attention weights")
    starts = range(0, max_tokens, block)
    mean = np.array([[A[i : i + block, j : j + block].mean() for j in starts] for i in starts])
    # float64 means of 4 nonnegative float32 weights, rounded to float32: sum_rtol(4) and one float32 rounding.
    np.testing.assert_allclose(
        np.asarray(overview["data"][0]["z"]), mean, rtol=sum_rtol(4) + eps(np.float32), atol=0
    )
    assert "mean weight" in overview["data"][0]["colorbar"]["title"]["text"]
    assert "mean weight in the block (block sum ÷ its cells)" in " ".join(c.value for c in at.caption)
    # The window is 200 x 300 tokens: its longer side is past the display limit (256), so it is pooled in
    # blocks of 2 too, each cell numpy's mean of its block of the slice.
    zoom = spec_titled(at, "Layer 2 · head 1: zoom, queries 300–499 × keys 100–399")
    window = A[300:500, 100:400]
    expected = np.array(
        [[window[i : i + 2, j : j + 2].mean() for j in range(0, 300, 2)] for i in range(0, 200, 2)]
    )
    np.testing.assert_allclose(
        np.asarray(zoom["data"][0]["z"]), expected, rtol=sum_rtol(4) + eps(np.float32), atol=0
    )
    caption = " ".join(c.value for c in at.caption)
    assert "100 × 150 cells for the 200 × 300 weights" in caption
