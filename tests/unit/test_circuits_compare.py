"""Comparing the QK/OV circuits of a model A with a variant B: the Frobenius norm of a difference of low-rank
products against numpy's dense difference, exact zeros for an unchanged model, a change planted in one head's
W_V found in that head (and its key/value group) only, and the page's figures drawing the comparison's numbers."""

import copy

import numpy as np
import pytest
import torch

from explorer.analysis import variants
from explorer.analysis.circuits import (
    CIRCUIT_DELTAS,
    PAIRED,
    circuit_spectra,
    compare_circuits,
    compare_model_circuits,
    head_metric,
    low_rank_difference_norm,
    low_rank_product_norm,
)
from explorer.analysis.matrices import head_weights, weight_matrices
from explorer.figures.circuits import (
    make_circuit_delta_heatmap_figure,
    make_circuit_singular_values_pair_figure,
    make_ov_eigenvalue_pair_figure,
)
from explorer.models.anatomy import anatomy_of
from tests.tolerances import eps, product_tolerance, sum_rtol, summation_tolerance


def _gram_route_tolerance(P_blocks: list, Q_blocks: list, computed: float) -> float:
    """Error allowed on ||P Q||_F computed as sqrt(sum_ij <P_i^T P_j, Q_i Q_j^T>_F), P = [P_1, ..., P_b] (column
    blocks, each (n, r_i)) and Q = [Q_1; ...; Q_b] (row blocks, each (r_i, m)): the Gram route, block by block
    (the (1, 2) and (2, 1) terms of a difference are one term counted twice, as the code computes it).

    Block (i, j) of the computed Gram P^T P is off entrywise by c n eps (|P_i|^T |P_j|), so the inner product
    moves by at most sum_ij c n eps ||P_i||_F ||P_j||_F ||H_ij||_F with H = Q Q^T (= product_tolerance(P_i^T,
    P_j) ||H_ij||_F); the same for Q Q^T against G = P^T P; the r^2 products G_ij H_ij and their sum add
    summation_tolerance. Blockwise, since a small block (a change dX) meets only its partner block in the other
    Gram matrix. An error e2 on the square moves the root by at most min(sqrt(e2), e2 / computed)."""
    P, Q = np.concatenate(P_blocks, axis=1), np.concatenate(Q_blocks, axis=0)
    G, H = P.T @ P, Q @ Q.T
    edges = np.cumsum([0] + [b.shape[1] for b in P_blocks])
    e2 = summation_tolerance(G * H)
    for i in range(len(P_blocks)):
        for j in range(len(P_blocks)):
            cell = (slice(edges[i], edges[i + 1]), slice(edges[j], edges[j + 1]))
            e2 += product_tolerance(P_blocks[i].T, P_blocks[j]) * np.linalg.norm(H[cell])
            e2 += product_tolerance(Q_blocks[i], Q_blocks[j].T) * np.linalg.norm(G[cell])
    return min(np.sqrt(e2), e2 / computed) if computed > 0 else np.sqrt(e2)


def _difference_tolerance(X1, Y1, X2, Y2, computed: float) -> float:
    """Error allowed between low_rank_difference_norm(X1, Y1, X2, Y2) and numpy's norm of the formed
    X1 @ Y1 - X2 @ Y2: the Gram route's (on P = [X1 - X2, X2], Q = [Y1; Y1 - Y2], whose differences are exact in
    float64 for float32 weights and rounded once otherwise) plus the dense side's: each product to
    product_tolerance, the subtraction and the norm's sum of n m squares to relative eps and sum_rtol."""
    dense = np.linalg.norm(X1 @ Y1 - X2 @ Y2)
    factors = (
        eps()
        * (np.linalg.norm(X1 - X2) + np.linalg.norm(X2))
        * (np.linalg.norm(Y1) + np.linalg.norm(Y1 - Y2))
    )
    return (
        _gram_route_tolerance([X1 - X2, X2], [Y1, Y1 - Y2], computed)
        + 2 * factors  # rounding of X1 - X2 and Y1 - Y2 (each entry to eps), times the other factor
        + product_tolerance(X1, Y1)
        + product_tolerance(X2, Y2)
        + (eps() + sum_rtol(X1.shape[0] * Y1.shape[1])) * dense
    )


def _relative_change_tolerance(X1, Y1, X2, Y2, computed: float) -> float:
    """Error allowed between a computed ||X1 Y1 - X2 Y2||_F / ||X2 Y2||_F and numpy's ratio of dense norms: the
    difference's error and the denominator's (relative), each divided by ||X2 Y2||, and the division's eps."""
    norm = np.linalg.norm(X2 @ Y2)
    change = _difference_tolerance(X1, Y1, X2, Y2, computed * norm)
    denominator = (
        _gram_route_tolerance([X2], [Y2], norm)
        + product_tolerance(X2, Y2)
        + sum_rtol(X2.shape[0] * Y2.shape[1]) * norm
    )
    return (change + computed * denominator) / norm + 2 * eps() * computed


def _dense_relative_change(X1, Y1, X2, Y2) -> float:
    return np.linalg.norm(X1 @ Y1 - X2 @ Y2) / np.linalg.norm(X2 @ Y2)


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e-8])
def test_difference_norm_equals_numpys_dense_difference(scale):
    """||X1 Y1 - X2 Y2||_F from 2k x 2k Gram matrices against the formed n x m difference, for large and for
    small changes (a small change is where subtracting ||X2 Y2||^2 from ||X1 Y1||^2 would lose every digit)."""
    rng = np.random.default_rng(7)
    n, k, m = 48, 6, 40
    X2, Y2 = rng.standard_normal((3, n, k)), rng.standard_normal((3, k, m))
    X1 = X2 + scale * rng.standard_normal((3, n, k))
    Y1 = Y2 + scale * rng.standard_normal((3, k, m))
    got = low_rank_difference_norm(*(torch.tensor(t) for t in (X1, Y1, X2, Y2))).numpy()
    assert got.shape == (3,)
    for i in range(3):
        want = np.linalg.norm(X1[i] @ Y1[i] - X2[i] @ Y2[i])
        allowed = _difference_tolerance(X1[i], Y1[i], X2[i], Y2[i], got[i])
        assert abs(got[i] - want) <= allowed
        # The bound is no vacuous test: the dense reference's own rounding limits it to ~5 digits at a change of
        # 1e-8, and the Gram route's part of it stays at c n eps relative, however small the change: no
        # cancellation (the expanded ||X1 Y1||^2 - 2<.,.> + ||X2 Y2||^2 would leave eps ||X Y||^2 / want^2 ~ 1e0).
        assert allowed <= 1e-3 * want
        gram = _gram_route_tolerance([X1[i] - X2[i], X2[i]], [Y1[i], Y1[i] - Y2[i]], got[i])
        assert gram <= 1e-9 * want
    # ||X Y||_F by the same route.
    norms = low_rank_product_norm(torch.tensor(X2), torch.tensor(Y2)).numpy()
    for i in range(3):
        want = np.linalg.norm(X2[i] @ Y2[i])
        allowed = _gram_route_tolerance([X2[i]], [Y2[i]], norms[i]) + product_tolerance(X2[i], Y2[i])
        assert abs(norms[i] - want) <= allowed + sum_rtol(n * m) * want


def test_difference_norm_is_exactly_zero_for_equal_factors_and_sees_a_rescaling_as_no_change():
    rng = np.random.default_rng(3)
    X, Y = torch.tensor(rng.standard_normal((20, 4))), torch.tensor(rng.standard_normal((4, 30)))
    assert low_rank_difference_norm(X, Y, X.clone(), Y.clone()).item() == 0.0
    # X Y = (2X)(Y/2): different factors, the same product (powers of two: exact in floating point).
    P, Q = [X.numpy(), X.numpy()], [Y.numpy() / 2, -Y.numpy() / 2]  # [X1 - X2, X2], [Y1; Y1 - Y2]
    assert low_rank_difference_norm(2 * X, Y / 2, X, Y).item() <= _gram_route_tolerance(P, Q, 0.0)


def test_an_unchanged_model_gives_exact_zeros(tiny_model):
    card = tiny_model.card
    a = circuit_spectra(tiny_model.model, card.n_layers, card.n_heads, card.n_kv_heads)
    # No matrix replaced, and every matrix replaced by an equal copy (as a folder of the same weights would).
    copies = {m.name: m.weight.clone() for m in weight_matrices(tiny_model.model)}
    for replaced in ({}, copies):
        comparison = compare_model_circuits(tiny_model.model, replaced, a)
        assert comparison.unchanged and comparison.same.all()
        for metric in CIRCUIT_DELTAS:
            assert np.all(comparison.delta(metric) == 0.0), metric
            assert comparison.most_changed(metric) is None
    # Computing B's circuits anyway gives A's numbers bit for bit (the same weights, the same batched calls).
    b = circuit_spectra(tiny_model.model, card.n_layers, card.n_heads, card.n_kv_heads, replaced=copies)
    for metric in PAIRED:
        np.testing.assert_array_equal(head_metric(a, metric), head_metric(b, metric))


def _plant_in_w_v(loaded, layer: int, kv: int, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """A copy of the model with key/value head ``kv``'s value projection in ``layer`` moved by a random matrix
    of a tenth of its size (rows kv*d_head..(kv+1)*d_head of the (out, in) W_v, written through a view into the
    copy), and the one changed matrix as a variant's ``replaced`` (name -> (out, in) weight)."""
    card = loaded.card
    model = copy.deepcopy(loaded.model)
    slot = anatomy_of(model).layer_matrices(layer)["attn_v"]
    rows = slice(kv * card.d_head, (kv + 1) * card.d_head)
    with torch.no_grad():
        W = slot.weight(model)  # (out, in) view of the copy's parameter (GPT-2: a chunk of the fused c_attn)
        noise = torch.randn(W[rows].shape, generator=torch.Generator().manual_seed(seed), dtype=W.dtype)
        W[rows] += 0.1 * W[rows].norm() / noise.norm() * noise
    return model, {slot.name: slot.weight(model)}


def test_a_change_planted_in_one_heads_w_v_shows_in_that_head_only(tiny_model):
    card = tiny_model.card
    layer, kv = card.n_layers - 1, card.n_kv_heads - 1
    b_model, replaced = _plant_in_w_v(tiny_model, layer, kv)
    a = circuit_spectra(tiny_model.model, card.n_layers, card.n_heads, card.n_kv_heads)
    comparison = compare_model_circuits(tiny_model.model, replaced, a)
    group = card.n_heads // card.n_kv_heads
    hit = np.zeros((card.n_layers, card.n_heads), dtype=bool)
    hit[layer, kv * group : (kv + 1) * group] = True  # GQA: every query head reading this K/V head
    assert not comparison.unchanged
    np.testing.assert_array_equal(comparison.same, ~hit)
    assert np.all(comparison.ov_change[hit] > 0)
    for metric in CIRCUIT_DELTAS:
        assert np.all(comparison.delta(metric)[~hit] == 0.0), metric
    assert np.all(comparison.qk_change == 0.0)  # W_V is not part of the QK circuit: exactly 0
    assert tuple(comparison.most_changed("ov_change")) in {(layer, h) for h in np.flatnonzero(hit[layer])}
    # B read through the replaced matrix (GPT-2: one part of the fused c_attn) has the circuits of the edited
    # copy itself, bit for bit.
    b = circuit_spectra(b_model, card.n_layers, card.n_heads, card.n_kv_heads)
    np.testing.assert_array_equal(comparison.b.ov_eigvals, b.ov_eigvals)
    np.testing.assert_array_equal(comparison.b.qk_sigma, b.qk_sigma)
    # The changed heads' numbers: the relative change against numpy's dense W_OV, the other deltas against
    # B's circuits computed on their own.
    hw_a = head_weights(tiny_model.model, layer, card.n_heads, card.n_kv_heads)
    hw_b = head_weights(b_model, layer, card.n_heads, card.n_kv_heads)
    for h in np.flatnonzero(hit[layer]):
        factors = [t[h].numpy() for t in (hw_b.W_V, hw_b.W_O, hw_a.W_V, hw_a.W_O)]
        got = comparison.ov_change[layer, h]
        assert abs(got - _dense_relative_change(*factors)) <= _relative_change_tolerance(*factors, got)
        for metric in PAIRED:
            expected = head_metric(b, metric)[layer, h] - head_metric(a, metric)[layer, h]
            assert comparison.delta(metric)[layer, h] == expected


def test_int8_variant_changes_every_head_as_numpy_says(load):
    """int8 rounds every attention matrix: every head changes, W_OV by what numpy's dense product says, and by
    no more than ||dX||_F ||Y1||_2 + ||X2||_2 ||dY||_F (X1 Y1 - X2 Y2 = dX Y1 + X2 dY, submultiplicativity)."""
    loaded = load("tiny-llama")
    card = loaded.card
    variant = variants.build_variant(loaded, "int8")
    a = circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)
    comparison = compare_model_circuits(loaded.model, variant.replaced, a)
    assert not comparison.same.any()
    # B as a model of its own: a copy of A with the rounded weights written into its Linear modules.
    b_model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for m in weight_matrices(b_model):
            if m.name in variant.replaced:
                b_model.get_submodule(m.module).weight.copy_(variant.replaced[m.name])
    for layer in range(card.n_layers):
        hw_a = head_weights(loaded.model, layer, card.n_heads, card.n_kv_heads)
        hw_b = head_weights(b_model, layer, card.n_heads, card.n_kv_heads)
        for h in range(card.n_heads):
            X1, Y1, X2, Y2 = factors = [t[h].numpy() for t in (hw_b.W_V, hw_b.W_O, hw_a.W_V, hw_a.W_O)]
            got = comparison.ov_change[layer, h]
            allowed = _relative_change_tolerance(*factors, got)
            assert abs(got - _dense_relative_change(*factors)) <= allowed
            bound = np.linalg.norm(X1 - X2) * np.linalg.norm(Y1, 2) + np.linalg.norm(X2, 2) * np.linalg.norm(
                Y1 - Y2
            )
            assert got <= bound / np.linalg.norm(X2 @ Y2) + allowed


def test_a_variant_of_the_mlp_alone_leaves_every_circuit_as_it_is(load):
    loaded = load("tiny-llama")
    card = loaded.card
    variant = variants.build_variant(loaded, "rank:0.5")
    assert variant.replaced  # it does change the MLP
    a = circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)
    comparison = compare_model_circuits(loaded.model, variant.replaced, a)
    assert comparison.unchanged and comparison.b is a


def test_mismatched_comparisons_are_refused(load):
    small = load("tiny-llama")
    a = circuit_spectra(small.model, 2, small.card.n_heads, small.card.n_kv_heads)
    b = circuit_spectra(small.model, 1, small.card.n_heads, small.card.n_kv_heads)
    with pytest.raises(ValueError, match="one architecture"):
        compare_circuits(a, b, {})
    with pytest.raises(ValueError, match="layer, head"):
        compare_circuits(a, a, {"ov_change": np.zeros(3), "qk_change": np.zeros(3), "same": np.zeros(3)})


def test_figures_draw_the_comparisons_numbers(load):
    loaded = load("tiny-gpt2")
    card = loaded.card
    _, replaced = _plant_in_w_v(loaded, 0, 2)
    comparison = compare_model_circuits(
        loaded.model, replaced, circuit_spectra(loaded.model, card.n_layers, card.n_heads, card.n_kv_heads)
    )
    for metric in CIRCUIT_DELTAS:
        fig = make_circuit_delta_heatmap_figure(comparison, metric)
        heat = fig.data[0]
        np.testing.assert_array_equal(np.asarray(heat.z), comparison.delta(metric))
        assert heat.zmax > 0 and heat.zmin == (-heat.zmax if metric in PAIRED else 0.0)  # white = no change
        assert np.nanmin(comparison.delta(metric)) >= heat.zmin
    plane = make_ov_eigenvalue_pair_figure(comparison, 0, 2)
    a_points, b_points = plane.data[1], plane.data[2]
    np.testing.assert_array_equal(a_points.x + 1j * a_points.y, comparison.a.ov_eigvals[0, 2])
    np.testing.assert_array_equal(b_points.x + 1j * b_points.y, comparison.b.ov_eigvals[0, 2])
    sigma = make_circuit_singular_values_pair_figure(comparison, 0, 2)
    assert [t.name for t in sigma.data] == ["A: W_QK = W_Q W_Kᵀ", "A: W_OV = W_V W_O", "B: W_QK = W_Q W_Kᵀ",
                                            "B: W_OV = W_V W_O"]  # fmt: skip
    np.testing.assert_array_equal(sigma.data[3].y, comparison.b.ov_sigma[0, 2])
