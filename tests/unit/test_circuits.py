"""QK/OV circuits against numpy on the full d_model x d_model products, and the copying score's extremes."""

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from explorer.analysis.circuits import circuit_spectra, copying_score, head_circuits, ov_core_matrix
from explorer.analysis.matrices import head_weights


def assert_same_multiset(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    """Complex eigenvalues equal up to order (optimal matching; conjugate pairs may come in either order)."""
    rows, cols = linear_sum_assignment(np.abs(a[:, None] - b[None, :]))
    assert np.abs(a[rows] - b[cols]).max() <= atol


def test_ov_and_qk_spectra_equal_numpy_on_full_products(tiny_model):
    card = tiny_model.card
    circuits = circuit_spectra(tiny_model.model, card.n_layers, card.n_heads, card.n_kv_heads)
    d = card.d_head
    assert circuits.ov_eigvals.shape == (card.n_layers, card.n_heads, d)
    for layer in range(card.n_layers):
        hw = head_weights(tiny_model.model, layer, card.n_heads, card.n_kv_heads)
        for h in range(card.n_heads):
            OV = (hw.W_V[h] @ hw.W_O[h]).numpy()  # d_model x d_model, rank <= d_head
            QK = (hw.W_Q[h] @ hw.W_K[h].T).numpy()
            lam = np.linalg.eigvals(OV)
            top = lam[np.argsort(-np.abs(lam))][:d]  # the rest are zero up to rounding
            scale = np.abs(lam).max()
            assert_same_multiset(circuits.ov_eigvals[layer, h], top, atol=1e-8 * scale)
            assert np.abs(lam[np.argsort(-np.abs(lam))][d:]).max() < 1e-8 * scale
            s_ov = np.linalg.svd(OV, compute_uv=False)[:d]
            s_qk = np.linalg.svd(QK, compute_uv=False)[:d]
            np.testing.assert_allclose(circuits.ov_sigma[layer, h], s_ov, rtol=0, atol=1e-9 * s_ov[0])
            np.testing.assert_allclose(circuits.qk_sigma[layer, h], s_qk, rtol=0, atol=1e-9 * s_qk[0])
            # Trace identity: sum of eigenvalues of the core = trace of the full OV circuit.
            assert circuits.ov_eigvals[layer, h].sum().real == pytest.approx(np.trace(OV), abs=1e-9 * scale)
    assert np.all(np.abs(circuits.copying_score) <= 1 + 1e-12)


def test_ov_core_matrix_is_w_o_w_v(load):
    loaded = load("tiny-llama")
    card = loaded.card
    hw = head_weights(loaded.model, 1, card.n_heads, card.n_kv_heads)
    core = ov_core_matrix(loaded.model, 1, 3, card.n_heads, card.n_kv_heads)
    np.testing.assert_allclose(core, (hw.W_O[3] @ hw.W_V[3]).numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("scale, expected", [(2.5, 1.0), (-0.7, -1.0)])
def test_copying_score_extremes_on_synthetic_heads(scale, expected):
    """W_OV = c U U^T (a positive / negative multiple of the identity on span U): score = sign(c)."""
    rng = np.random.default_rng(0)
    d_model, d_head = 32, 4
    U, _ = np.linalg.qr(rng.standard_normal((d_model, d_head)))
    U = torch.tensor(U)[None]  # (head=1, d_model, d_head)
    W_Q = torch.tensor(rng.standard_normal((1, d_model, d_head)))
    out = head_circuits(W_Q, W_Q, U, scale * U.mT)
    assert out["copying_score"][0] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(out["ov_eigvals"][0], scale, atol=1e-12)
    np.testing.assert_allclose(out["ov_sigma"][0], abs(scale), atol=1e-12)


def test_copying_score_in_a_real_gqa_model(load):
    """Edit a copy of tiny-llama so heads 0 and 1 (sharing K/V head 0) copy and suppress exactly."""
    loaded = load("tiny-llama")
    card = loaded.card
    model = copy.deepcopy(loaded.model)
    d, d_model = card.d_head, card.d_model
    rng = np.random.default_rng(1)
    U, _ = np.linalg.qr(rng.standard_normal((d_model, d)))
    attn = model.model.layers[0].self_attn
    with torch.no_grad():
        # v_proj rows 0..d-1 produce K/V head 0's values: v = x @ U, i.e. rows = U^T.
        attn.v_proj.weight[:d] = torch.tensor(U.T, dtype=torch.float32)
        # o_proj columns h*d..(h+1)*d take head h's output: W_O^h = +3 U^T for head 0, -2 U^T for head 1.
        attn.o_proj.weight[:, :d] = torch.tensor(3 * U, dtype=torch.float32)
        attn.o_proj.weight[:, d : 2 * d] = torch.tensor(-2 * U, dtype=torch.float32)
    circuits = circuit_spectra(model, card.n_layers, card.n_heads, card.n_kv_heads)
    assert list(circuits.kv_head) == [0, 0, 1, 1] and circuits.grouped
    assert circuits.copying_score[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert circuits.copying_score[0, 1] == pytest.approx(-1.0, abs=1e-6)
    np.testing.assert_allclose(circuits.ov_eigvals[0, 0], 3.0, atol=1e-5)
    # Heads that were not edited keep their original circuits.
    original = circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)
    np.testing.assert_array_equal(circuits.copying_score[1], original.copying_score[1])


def test_copying_score_formula():
    lam = np.array([[1 + 1j, 1 - 1j, -2, 0], [0, 0, 0, 0]])
    scores = copying_score(lam)
    assert scores[0] == pytest.approx((1 + 1 - 2) / (2 * np.sqrt(2) + 2))
    assert np.isnan(scores[1])


def test_uneven_groups_are_rejected(load):
    with pytest.raises(ValueError, match="evenly"):
        circuit_spectra(load("tiny-llama").model, 2, 4, 3)
