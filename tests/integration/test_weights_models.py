"""Weight spectra, circuits and Gershgorin discs on the embedded models, checked against numpy and theorems;
the report section's JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.analysis.circuits import circuit_spectra, ov_core_matrix
from explorer.analysis.matrices import head_weights, weight_matrices, weights_checksum
from explorer.analysis.weights import compute_weight_spectra
from explorer.models import capture
from explorer.report.build import write_report
from explorer.report.weights import WEIGHT_KEYS, weights_section
from explorer.spectra.gershgorin import analyse_gershgorin
from tests.tolerances import (
    SAFETY,
    eps,
    gram_singular_value_tolerance,
    low_rank_product_sigma_tolerance,
    product_tolerance,
    symmetric_tolerance,
    trace_tolerance,
)

pytestmark = pytest.mark.slow

TEXT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."


def gram_route_allowed(W, expected):
    """Singular values by the float64 Gram route (the default method) against numpy's float64 SVD: the Gram
    route's min(sqrt(delta), delta / sigma_i) plus the SVD's Weyl bound c n eps ||W||."""
    weyl = SAFETY * max(W.shape) * eps() * expected[0]  # symmetric_tolerance(W), without another SVD of W
    return gram_singular_value_tolerance(W, expected, norm=expected[0]) + weyl


@pytest.fixture(scope="module")
def minilm_spectra(minilm):
    return compute_weight_spectra(minilm.model)


def test_minilm_singular_values_equal_numpy_for_every_matrix(minilm, minilm_spectra):
    mats = weight_matrices(minilm.model)
    assert minilm_spectra.names == tuple(m.name for m in mats)
    assert "embed" in minilm_spectra.kinds and minilm_spectra.n_layers == 6
    for i, m in enumerate(mats):
        W = m.weight.detach().double().numpy()
        expected = np.linalg.svd(W, compute_uv=False)
        assert np.all(np.abs(minilm_spectra.sigma[i] - expected) <= gram_route_allowed(W, expected))
        # sum sigma^2 / sigma_1^2: the Gram trace moves by k delta, sigma_1^2 by delta (delta = 2 c n eps ||W||^2).
        delta = 2 * symmetric_tolerance(W) * expected[0]
        rel = 2 * (len(expected) * delta / (expected**2).sum() + delta / expected[0] ** 2)
        assert minilm_spectra.stable_rank[i] == pytest.approx((expected**2).sum() / expected[0] ** 2, rel=rel)


def test_minilm_heavy_tails_are_plausible(minilm_spectra):
    """Trained layers: the power law is fitted on every block matrix, with alpha > 1 and a sane KS distance."""
    in_blocks = minilm_spectra.layers >= 0
    alpha = minilm_spectra.alpha[in_blocks]
    assert np.isfinite(alpha).all() and (alpha > 1).all()
    assert (minilm_spectra.alpha_ks[in_blocks] < 0.25).all()
    # Training puts structure above the random-matrix bulk: most block matrices have MP spikes.
    assert (minilm_spectra.n_spikes[in_blocks] > 0).mean() > 0.8


def test_smollm2_singular_values_for_one_matrix_of_each_shape(smollm2):
    """The 49152 x 576 embedding and one matrix of every other shape, against numpy's float64 SVD."""
    mats = weight_matrices(smollm2.model)
    picked, seen = [], set()
    for m in mats:
        if m.shape not in seen:
            seen.add(m.shape)
            picked.append(m)
    assert (49152, 576) in seen
    spectra = compute_weight_spectra(smollm2.model, mats=picked)
    for i, m in enumerate(picked):
        W = m.weight.detach().double().numpy()
        expected = np.linalg.svd(W, compute_uv=False)
        assert np.all(np.abs(spectra.sigma[i] - expected) <= gram_route_allowed(W, expected))


@pytest.mark.parametrize("model_name", ["minilm", "smollm2"])
def test_gershgorin_containment_on_real_attention_and_ov(request, model_name):
    loaded = request.getfixturevalue(model_name)
    card = loaded.card
    cap = capture(loaded, TEXT)
    for layer in (0, card.n_layers // 2, card.n_layers - 1):
        for head in range(card.n_heads):
            A = cap.attentions[layer, head].astype(np.float64)
            result = analyse_gershgorin(A)
            assert result.all_inside, (layer, head)
            np.testing.assert_allclose(result.rows.centers.real + result.rows.radii, 1.0, atol=1e-5)
            np.testing.assert_array_equal(result.row_group_counts, [g.size for g in result.row_groups])
            if cap.causal:  # lower-triangular: the eigenvalues are the diagonal entries
                np.testing.assert_allclose(np.sort(result.eigvals.real), np.sort(np.diag(A)), atol=1e-6)
            core = ov_core_matrix(loaded.model, layer, head, card.n_heads, card.n_kv_heads)
            ov = analyse_gershgorin(core)
            assert ov.all_inside, ("OV", layer, head)


def test_smollm2_circuits_against_full_products_and_gqa(smollm2):
    card = smollm2.card
    assert card.n_kv_heads < card.n_heads  # grouped-query attention
    before = weights_checksum(smollm2.model)
    circuits = circuit_spectra(smollm2.model, card.n_layers, card.n_heads, card.n_kv_heads)
    assert circuits.copying_score.shape == (card.n_layers, card.n_heads)
    assert np.isfinite(circuits.copying_score).all() and (np.abs(circuits.copying_score) <= 1).all()
    for layer, head in [(0, 0), (15, 4), (29, 8)]:
        hw = head_weights(smollm2.model, layer, card.n_heads, card.n_kv_heads)
        OV = (hw.W_V[head] @ hw.W_O[head]).numpy()
        s = np.linalg.svd(OV, compute_uv=False)[: card.d_head]
        W_V, W_O = hw.W_V[head].numpy(), hw.W_O[head].numpy()
        allowed = low_rank_product_sigma_tolerance(W_V, W_O.T)  # Gram-root route vs SVD of the product
        np.testing.assert_allclose(circuits.ov_sigma[layer, head], s, rtol=0, atol=allowed)
        lam = circuits.ov_eigvals[layer, head]
        # trace = sum of eigenvalues of the core W_O W_V; each trace of a product to its rounding.
        trace_allowed = trace_tolerance(W_O @ W_V) + 2 * product_tolerance(W_V, W_O)
        assert lam.sum().real == pytest.approx(np.trace(OV), abs=trace_allowed)
        # Heads of one group share W_V exactly.
        mate = head + 1 if head % 3 < 2 else head - 1
        np.testing.assert_array_equal(hw.W_V[head].numpy(), hw.W_V[mate].numpy())
    assert weights_checksum(smollm2.model) == before


@pytest.mark.parametrize("model_name", ["minilm", "smollm2"])
def test_report_section_json(request, model_name, tmp_path):
    loaded = request.getfixturevalue(model_name)
    cap = capture(loaded, TEXT)
    metrics_path, report_path = write_report(loaded, cap, tmp_path, sections=[weights_section])
    metrics = json.loads(metrics_path.read_text())
    card = loaded.card
    rows = metrics["weights"]
    assert len(rows) == len(weight_matrices(loaded.model))
    assert all(tuple(row) == WEIGHT_KEYS for row in rows)
    embed = next(row for row in rows if row["kind"] == "embed")
    assert embed["layer"] is None and embed["shape"][1] == card.d_model
    assert all(row["k90"] <= row["k99"] <= min(row["shape"]) for row in rows)
    scores = np.array(metrics["circuits"]["copying_score"], dtype=float)
    assert scores.shape == (card.n_layers, card.n_heads)
    g = metrics["gershgorin"]
    assert g["layer"] == card.n_layers // 2 and g["head"] == 0 and g["all_inside"] is True
    assert sum(group["n_discs"] for group in g["groups"]) == cap.n_tokens
    assert all(group["n_eigenvalues"] == group["n_discs"] for group in g["groups"])
    html = report_path.read_text()
    assert "Gershgorin discs of attention layer" in html and "OV copying score" in html
