"""The weights page's WeightWatcher section under AppTest: the per-layer chart, the per-metric sentence, the table,
the shuffled ESD and the randomized toggle, checked against numpy (SVD, eigvalsh and numpy's own shuffle of the
same seed), not against the page's code."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.stats

from explorer.analysis.matrices import weight_matrices
from tests.apptest import assert_page_ok, chart_spec, run_page, spec_titled
from tests.conftest import get_model
from tests.tolerances import gram_singular_value_tolerance

WEIGHTS = "pages/weights.py"
MODEL = "tiny-llama"


def _mats(kind: str) -> dict[int, np.ndarray]:
    """layer -> float64 copy of the (out, in) matrix of ``kind`` in that block."""
    return {
        m.layer: m.weight.detach().double().numpy()
        for m in weight_matrices(get_model(MODEL).model)
        if m.kind == kind and m.layer is not None
    }


def _numpy_rand_distance(name: str, W: np.ndarray, seed: int = 0) -> float:
    """WeightWatcher's rand_distance of W against numpy's shuffle of its entries (seed [seed, CRC-32 of name])."""
    flat = W.reshape(-1).copy()
    np.random.default_rng([seed, zlib.crc32(name.encode())]).shuffle(flat)
    p = np.sort(np.linalg.svd(W, compute_uv=False) ** 2)
    q = np.sort(np.linalg.svd(flat.reshape(W.shape), compute_uv=False) ** 2)
    m = (p + q) / 2
    return float(np.sqrt((scipy.stats.entropy(p, m) + scipy.stats.entropy(q, m)) / 2))


def _trace(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name") == name)


def _captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_ww_chart_sentence_and_table_follow_numpy(cache_home):
    at = run_page(WEIGHTS, model=MODEL, ww_metric="log_spectral_norm", randomize=1)
    assert_page_ok(at)
    assert at.session_state["weights_ww_metric"] == "log_spectral_norm"
    spec = chart_spec(at, "weights_ww")
    assert spec["layout"]["title"]["text"].startswith("log₁₀λ_max")
    down = _mats("mlp_down")
    trace = _trace(spec, "MLP down")
    expected = np.array([np.log10(np.linalg.norm(down[layer], 2) ** 2) for layer in trace["x"]])
    # sigma_1 by the float64 Gram route: off by e, so log10 sigma_1^2 by 2 e / (sigma_1 ln 10).
    allowed = [
        2
        * gram_singular_value_tolerance(down[layer], [np.linalg.norm(down[layer], 2)])[0]
        / np.linalg.norm(down[layer], 2)
        / np.log(10)
        for layer in trace["x"]
    ]
    assert np.all(np.abs(np.asarray(trace["y"], dtype=float) - expected) <= allowed)
    table = at.dataframe[0].value  # the WeightWatcher table comes before the expander's
    assert len(table) == len(weight_matrices(get_model(MODEL).model))
    assert {
        "alpha",
        "alpha_hat",
        "log_norm",
        "log_spectral_norm",
        "stable_rank",
        "rand_distance",
        "n_traps",
    } <= set(table.columns)

    # rand_distance: the chart against numpy's shuffle of the same seed; the sentence quotes the median.
    at.selectbox(key="weights_ww_metric").set_value("rand_distance").run()
    assert_page_ok(at)
    assert at.query_params["ww_metric"] in (["rand_distance"], "rand_distance")
    spec = chart_spec(at, "weights_ww")
    names = {m.layer: m.name for m in weight_matrices(get_model(MODEL).model) if m.kind == "mlp_down"}
    trace = _trace(spec, "MLP down")
    expected = [_numpy_rand_distance(names[layer], down[layer]) for layer in trace["x"]]
    np.testing.assert_allclose(np.asarray(trace["y"], dtype=float), expected, rtol=0, atol=1e-9)
    everything = np.array(
        [
            _numpy_rand_distance(m.name, m.weight.detach().double().numpy())
            for m in weight_matrices(get_model(MODEL).model)
        ]
    )
    assert f"median {np.median(everything):.3g} over {everything.size} matrices" in _captions(at)


def test_shuffled_esd_and_traps_in_the_matrix_section(cache_home):
    at = run_page(WEIGHTS, model=MODEL, kind="attn_q", layer=0, randomize=1)
    assert_page_ok(at)
    esd = spec_titled(at, "Empirical spectral density: L0")
    shuffled = _trace(esd, "ESD of W shuffled")
    W = _mats("attn_q")[0]
    name = next(
        m.name for m in weight_matrices(get_model(MODEL).model) if m.kind == "attn_q" and m.layer == 0
    )
    flat = W.reshape(-1).copy()
    np.random.default_rng([0, zlib.crc32(name.encode())]).shuffle(flat)
    lam = np.linalg.eigvalsh(flat.reshape(W.shape).T @ flat.reshape(W.shape)) / max(W.shape)
    # The step outline repeats each bin twice; its counts are in customdata[:, 2].
    counts = np.asarray(shuffled["customdata"], dtype=float)[::2, 2]
    assert counts.sum() == np.count_nonzero(lam > 0)
    text = _captions(at)
    assert f"Its largest eigenvalue is {lam.max():.4g}" in text
    value = next(m.value for m in at.metric if m.label == "rand_distance")
    assert float(value) == pytest.approx(_numpy_rand_distance(name, W), abs=1e-3)  # shown to 3 decimals


def test_randomized_comparison_can_be_switched_off(cache_home):
    at = run_page(WEIGHTS, model=MODEL, ww_metric="n_traps")  # off by default: a first visit is one pass
    assert_page_ok(at)
    assert at.toggle(key="weights_randomize").value is False
    spec = chart_spec(at, "weights_ww")
    assert spec["layout"]["title"]["text"].endswith("(not computed yet)")
    assert "once the randomized comparison is in" in _captions(at)
    esd = spec_titled(at, "Empirical spectral density")
    assert all(t.get("name") != "ESD of W shuffled" for t in esd["data"])
    at.toggle(key="weights_randomize").set_value(True).run()
    assert_page_ok(at)
    assert at.query_params["randomize"] == "1"  # on is not the default: it is in the link
    assert not chart_spec(at, "weights_ww")["layout"]["title"]["text"].endswith("(not computed yet)")


def test_nonsense_ww_params_fall_back(cache_home):
    at = run_page(WEIGHTS, model="tiny-bert", ww_metric="<script>", randomize="maybe")
    assert_page_ok(at)
    assert at.session_state["weights_ww_metric"] == "alpha_hat"
    assert at.toggle(key="weights_randomize").value is False
    assert "ww_metric" not in at.query_params and "randomize" not in at.query_params
    assert chart_spec(at, "weights_ww")["layout"]["title"]["text"].startswith("α̂")
