"""explorer.analysis.compare against numpy and theorems (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.compare import (
    compare_hidden,
    compare_metric,
    compare_outputs,
    delta_spectrum,
    rounding_floor,
)
from explorer.analysis.teaching_models import lora_subspace
from explorer.analysis.variants import parse_key
from explorer.errors import InputError
from tests.tolerances import eps, subspace_tolerance, sum_rtol, summation_tolerance


def _rng():
    return np.random.default_rng(7)


def test_delta_zero_says_no_change():
    W = _rng().standard_normal((20, 12))
    d = delta_spectrum(W, W.copy())
    assert d.zero and d.frobenius == 0.0 and d.numerical_rank == 0
    assert np.isnan(d.energy_share).all() and np.isnan(d.amplification).all()
    assert d.effective_rank == 0.0 and d.stable_rank == 0.0


def test_energy_share_monotone_and_one_at_full_rank_square():
    rng = _rng()
    W = rng.standard_normal((16, 16))
    dW = rng.standard_normal((16, 16))
    d = delta_spectrum(W, W + dW)
    tol = sum_rtol(16 * 16)
    assert np.all(np.diff(d.energy_share) >= -tol)
    assert d.energy_share[-1] == pytest.approx(1.0, abs=tol)
    # numpy reference, two-sided projection at every r
    U, _, Vh = np.linalg.svd(W)
    ref = [np.linalg.norm(U[:, :r] @ U[:, :r].T @ dW @ Vh[:r].T @ Vh[:r]) ** 2 for r in range(1, 17)]
    # Same U, V; the two routes differ only by the rounding of products (inner length 16) and of sums of 16^2
    # squares (each share is a ratio of such sums, both <= ||dW||_F^2): sum_rtol on each, twice.
    expected = np.array(ref) / np.linalg.norm(dW) ** 2
    np.testing.assert_allclose(d.energy_share, expected, rtol=0, atol=2 * sum_rtol(16 * 16 * 16))


def test_planted_rank_r_update_found():
    """A rank-3 update planted in W's top-3 singular subspace: effective rank <= 3, numerical rank 3, share 1
    from r = 3 on."""
    rng = _rng()
    m, n, r = 40, 30, 3
    U = np.linalg.qr(rng.standard_normal((m, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    W = U @ np.diag(np.linspace(10, 1, n)) @ V.T
    dW = U[:, :r] @ rng.standard_normal((r, r)) @ V[:, :r].T
    d = delta_spectrum(W, W + dW, eps=eps())
    assert d.numerical_rank == r
    assert d.effective_rank <= r + sum_rtol(n)
    # The computed top-3 singular subspaces of W turn by at most sin(theta) <= backward error / gap (Davis-Kahan,
    # gap sigma_3 - sigma_4) on each side: the energy left outside is at most (2 sin theta)^2 of the total,
    # plus the sums' rounding.
    levels = np.linspace(10, 1, n)
    theta = subspace_tolerance(W, float(levels[r - 1] - levels[r]))
    assert d.energy_share[r - 1] == pytest.approx(1.0, abs=4 * theta**2 + sum_rtol(m * n))
    assert d.energy_share[0] < 1.0


def test_amplification_rank1_hand_computed():
    """W = diag(3, 2, 1), dW = 5 e_3 e_3^T: U'_1 = V'_1 = e_3, U'^T W V' = 1, so the factor is 5 / 1 = 5; and
    dW sits entirely outside W's top-2 subspace (share 0 at r = 1, 2; 1 at r = 3)."""
    W = np.diag([3.0, 2.0, 1.0])
    dW = np.zeros((3, 3))
    dW[2, 2] = 5.0
    d = delta_spectrum(W, W + dW)
    assert d.amplification[0] == pytest.approx(5.0, rel=10 * eps())
    np.testing.assert_allclose(d.energy_share, [0.0, 0.0, 1.0], atol=10 * eps())


def test_ratios_to_random_hand_computed():
    """W = diag(3, 2, 1), dW = 5 e_3 e_3^T (as above): share at r = 1 is 0, so 0 x random; W along dW's direction
    e_3 is 1, and random directions see ||W||_F r / sqrt(mn) = sqrt(14) / 3, so alignment 3 / sqrt(14). A dW
    along W's top pair e_1 e_1^T instead: share 1 at r = 1, mn = 9 x random; W along it is 3: 9 / sqrt(14)."""
    W = np.diag([3.0, 2.0, 1.0])
    outside = np.zeros((3, 3))
    outside[2, 2] = 5.0
    d = delta_spectrum(W, W + outside)
    assert d.share_over_random(1) == pytest.approx(0.0, abs=10 * eps())
    assert d.alignment_over_random(1) == pytest.approx(3 / np.sqrt(14), rel=10 * eps())
    inside = np.zeros((3, 3))
    inside[0, 0] = 0.5
    d = delta_spectrum(W, W + inside)
    assert d.share_over_random(1) == pytest.approx(9.0, rel=10 * eps())
    assert d.alignment_over_random(1) == pytest.approx(9 / np.sqrt(14), rel=10 * eps())


def test_random_update_is_at_random_level_on_average():
    """E[share at r] = r^2 / (mn) for a dW with uniformly random singular directions (Gaussian entries), whatever
    W: the mean of share_over_random over many draws is 1 within its standard error (5 sigma)."""
    rng = _rng()
    m, n, r = 30, 20, 4
    W = rng.standard_normal((m, n)) @ np.diag(np.linspace(5, 0.1, n))
    ratios = np.array(
        [delta_spectrum(W, W + 1e-2 * rng.standard_normal((m, n))).share_over_random(r) for _ in range(400)]
    )
    assert abs(ratios.mean() - 1.0) <= 5 * ratios.std(ddof=1) / np.sqrt(ratios.size)


def test_agrees_with_teaching_lora_subspace():
    rng = _rng()
    W, dW = rng.standard_normal((24, 18)), rng.standard_normal((24, 4)) @ rng.standard_normal((4, 18))
    d = delta_spectrum(W, W + dW)
    for r in (1, 2, 4):
        ref = lora_subspace(W, dW, r)
        assert d.energy_share[r - 1] == pytest.approx(ref.top_share**2, rel=1e-10)
        assert d.amplification[r - 1] == pytest.approx(ref.amplification, rel=1e-10)


def test_rounding_floor_bounds_float32_rank():
    """W + (exact rank-2 update) stored in float32: sigma_3 of the stored difference stays under the floor."""
    rng = _rng()
    W = rng.standard_normal((50, 40)).astype(np.float32)
    low = (rng.standard_normal((50, 2)) @ rng.standard_normal((2, 40)) * 1e-2).astype(np.float32)
    WB = (W + low).astype(np.float32)
    d = delta_spectrum(W, WB)
    assert d.sigma[2] <= rounding_floor(WB) and d.numerical_rank == 2


def test_outputs_against_numpy_and_identity():
    rng = _rng()
    za, zb = rng.standard_normal((9, 11)), rng.standard_normal((9, 11))
    ids = rng.integers(0, 11, 9)
    same = compare_outputs(za, za.copy(), ids)
    assert same.kl == 0.0 and same.top1_agreement == 1.0 and same.perplexity_a == same.perplexity_b
    out = compare_outputs(za, zb, ids)
    pa = np.exp(za[:-1]) / np.exp(za[:-1]).sum(1, keepdims=True)
    pb = np.exp(zb[:-1]) / np.exp(zb[:-1]).sum(1, keepdims=True)
    kl = (pa * np.log(pa / pb)).sum(1)
    # Both sum the same 11 terms p (log p - log q) per position (log-softmax vs the log of a ratio, each term
    # off by a few eps times log-sized quantities): the summation bound, doubled, on the largest row.
    terms = pa * np.log(pa / pb)
    bound = 2 * max(summation_tolerance(row) for row in terms) + sum_rtol(11) * np.abs(terms).sum(1).max()
    assert abs(out.kl - kl.mean()) <= bound
    assert out.top1_agreement == np.mean(pa.argmax(1) == pb.argmax(1))
    ppl = np.exp(-np.mean(np.log(pb[np.arange(8), ids[1:]])))
    # exp of a mean of 8 log-probabilities (each a log-softmax over 11 terms): the mean's absolute error
    # sum_rtol(8 * 11) * |log ppl| becomes that relative error of exp.
    assert out.perplexity_b == pytest.approx(ppl, rel=sum_rtol(8 * 11) * (1 + abs(np.log(ppl))))


def test_hidden_and_metric():
    rng = _rng()
    h = rng.standard_normal((5, 8))
    same = compare_hidden(h, h.copy())
    assert same.mean_cosine == pytest.approx(1.0, abs=10 * eps()) and same.relative_change == 0.0
    c = compare_metric(np.array([1.0, 0.0, 2.0]), np.array([1.5, 1.0, 1.0]), "alpha")
    np.testing.assert_array_equal(c.delta, [0.5, 1.0, -1.0])
    assert c.relative[0] == 0.5 and np.isnan(c.relative[1]) and c.relative[2] == -0.5


@pytest.mark.parametrize(
    "key",
    ["int8", "int4", "int4-g32", "int4-g64-asym", "rank:0.5", "rank:0.8:svdllm", "rank:0.5+int8",
     "lora:r8:s50", "lora:r4:s2:cal", "dir:/some/folder"],
)  # fmt: skip
def test_keys_round_trip(key):
    assert str(parse_key(key)) == key and parse_key(str(parse_key(key))) == parse_key(key)


def test_short_forms_and_bad_keys():
    assert str(parse_key("q4g32")) == "int4-g32" and str(parse_key("Q4G32A")) == "int4-g32-asym"
    assert str(parse_key("rank:0.5:svd+q8")) == "rank:0.5+int8"
    for bad, says in [("", "No variant"), ("int5", "bits must be"), ("q2g32", "symmetric"),
                      ("rank:2", "share"), ("rank:x", "not a share"), ("rank:0.5:pca", "unknown method"),
                      ("lora:r0:s5", "LoRA rank"), ("dir:", "no folder"), ("fp16", "Unknown variant")]:  # fmt: skip
        with pytest.raises(InputError, match=says):
            parse_key(bad)


def test_weights_page_reading_follows_the_data():
    """The compare caption's verdict comes from the ratios: an update inside W's top direction is 'well above
    random' and is not said to amplify other directions; one outside it, larger than W's component there, is."""
    from explorer.ui.compare_view import subspace_reading

    W = np.diag([3.0, 2.0, 1.0])
    inside, outside = np.zeros((3, 3)), np.zeros((3, 3))
    inside[0, 0], outside[2, 2] = 0.5, 5.0
    said = subspace_reading(delta_spectrum(W, W + inside), 1)
    assert "9x a random update's share" in said and "(well above random)" in said
    assert "amplifies directions W_A does not emphasise" not in said
    said = subspace_reading(delta_spectrum(W, W + outside), 1)
    assert "0x a random update's share" in said and "(well below random)" in said
    assert "ΔW is 5x that component" in said and "amplifies directions W_A does not emphasise" in said
