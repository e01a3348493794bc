"""QK/OV circuits against numpy on the full d_model x d_model products, and the copying score's extremes."""

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from explorer.analysis.circuits import circuit_spectra, copying_score, head_circuits, ov_core_matrix
from explorer.analysis.matrices import head_weights
from tests.tolerances import (
    SAFETY,
    backward_error,
    eigenvalue_condition_numbers,
    eps,
    low_rank_product_sigma_tolerance,
    product_tolerance,
    sum_rtol,
    trace_tolerance,
)


def nearest_kappa(M, values):
    """Condition numbers of M's eigenvalues nearest each of ``values``."""
    w, kappa = eigenvalue_condition_numbers(M)
    return kappa[np.abs(np.asarray(values)[:, None] - w[None, :]).argmin(axis=1)]


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
            W_V, W_O = hw.W_V[h].numpy(), hw.W_O[h].numpy()
            core = W_O @ W_V
            lam = np.linalg.eigvals(OV)
            top = lam[np.argsort(-np.abs(lam))][:d]  # the rest are zero up to rounding
            # Each nonzero eigenvalue, in the full OV (geev reference) and in the core (computed), moves by its
            # condition number there times the rounding of the product and of geev.
            e_ov = product_tolerance(W_V, W_O) + backward_error(OV)
            e_core = product_tolerance(W_O, W_V) + backward_error(core)
            allowed = nearest_kappa(OV, top) * e_ov + nearest_kappa(core, top) * e_core
            # Optimal matching: conjugate pairs may come in either order.
            rows, cols = linear_sum_assignment(np.abs(circuits.ov_eigvals[layer, h][:, None] - top[None, :]))
            assert np.all(np.abs(circuits.ov_eigvals[layer, h][rows] - top[cols]) <= allowed[cols])
            # The zero eigenvalue of OV is semisimple (null space of W_O, dimension d_model - d_head): it moves by
            # at most ||P|| e_ov, P = I - W_V core^-1 W_O its spectral projector.
            P = np.eye(len(OV)) - W_V @ np.linalg.solve(core, W_O)
            assert np.abs(lam[np.argsort(-np.abs(lam))][d:]).max() <= np.linalg.norm(P, 2) * e_ov
            s_ov = np.linalg.svd(OV, compute_uv=False)[:d]
            s_qk = np.linalg.svd(QK, compute_uv=False)[:d]
            np.testing.assert_allclose(
                circuits.ov_sigma[layer, h], s_ov, rtol=0, atol=low_rank_product_sigma_tolerance(W_V, W_O.T)
            )
            np.testing.assert_allclose(
                circuits.qk_sigma[layer, h],
                s_qk,
                rtol=0,
                atol=low_rank_product_sigma_tolerance(hw.W_Q[h].numpy(), hw.W_K[h].numpy()),
            )
            # Trace identity: sum of eigenvalues of the core = trace of the full OV circuit (well-conditioned:
            # the core's trace_tolerance, and each trace of a product to its rounding).
            trace_allowed = trace_tolerance(core) + 2 * product_tolerance(W_V, W_O)
            assert circuits.ov_eigvals[layer, h].sum().real == pytest.approx(np.trace(OV), abs=trace_allowed)
    # |sum Re lambda| <= sum |lambda| exactly; the two sums of d_head terms round to c n eps.
    assert np.all(np.abs(circuits.copying_score) <= 1 + 2 * sum_rtol(d))


def test_ov_core_matrix_is_w_o_w_v(load):
    loaded = load("tiny-llama")
    card = loaded.card
    hw = head_weights(loaded.model, 1, card.n_heads, card.n_kv_heads)
    core = ov_core_matrix(loaded.model, 1, 3, card.n_heads, card.n_kv_heads)
    W_O, W_V = hw.W_O[3].numpy(), hw.W_V[3].numpy()
    # The same product, batched in one place and not in the other: each entry to c k eps (|W_O| |W_V|)_ij.
    allowed = 2 * SAFETY * W_V.shape[0] * eps() * (np.abs(W_O) @ np.abs(W_V))
    assert np.all(np.abs(core - W_O @ W_V) <= allowed)


@pytest.mark.parametrize("scale, expected", [(2.5, 1.0), (-0.7, -1.0)])
def test_copying_score_extremes_on_synthetic_heads(scale, expected):
    """W_OV = c U U^T (a positive / negative multiple of the identity on span U): score = sign(c)."""
    rng = np.random.default_rng(0)
    d_model, d_head = 32, 4
    U, _ = np.linalg.qr(rng.standard_normal((d_model, d_head)))
    U = torch.tensor(U)[None]  # (head=1, d_model, d_head)
    W_Q = torch.tensor(rng.standard_normal((1, d_model, d_head)))
    out = head_circuits(W_Q, W_Q, U, scale * U.mT)
    # The core is scale U^T U = scale (I + F) with ||F|| <= c n eps (U orthonormal from QR), rounded once more.
    allowed = 2 * abs(scale) * backward_error(np.eye(d_model))
    assert out["copying_score"][0] == pytest.approx(expected, abs=allowed + 2 * sum_rtol(d_head))
    np.testing.assert_allclose(out["ov_eigvals"][0], scale, atol=allowed)
    np.testing.assert_allclose(out["ov_sigma"][0], abs(scale), atol=allowed)


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
    assert scores[0] == (1 + 1 - 2) / (2 * np.sqrt(2) + 2)  # exact: 1 + 1 - 2 = 0
    assert np.isnan(scores[1])


def test_uneven_groups_are_rejected(load):
    with pytest.raises(ValueError, match="evenly"):
        circuit_spectra(load("tiny-llama").model, 2, 4, 3)
