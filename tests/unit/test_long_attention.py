"""Attention at long lengths: the layer-by-layer grid and the Krylov top of one head's spectrum, against whole
numpy decompositions on random row-stochastic heads (causal and not), with the full-decomposition length
lowered so that both routes run on the same small matrices. Tolerances come from residuals and conditioning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import attention as att
from explorer.analysis import attention_long as long
from explorer.spectra import attention_spectra as spec
from tests import tolerances as tol

N = 160


def _heads(n: int, causal: bool, scales=(0.3, 1.0, 3.0, 8.0), seed: int = 0) -> np.ndarray:
    """(head, n, n) float32 row-stochastic softmax heads, sharper with the scale; causal: lower-triangular."""
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((len(scales), n, n)) * np.asarray(scales)[:, None, None]
    L[:, :, 0] += 2.0  # a sink on token 0, as real heads have
    if causal:
        L = np.where(np.tril(np.ones((n, n))) > 0, L, -np.inf)
    A = np.exp(L - L.max(-1, keepdims=True))
    return (A / A.sum(-1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def short_full_length(monkeypatch):
    """Every N-token head takes the long routes."""
    monkeypatch.setattr(att, "FULL_DECOMPOSITION_MAX_TOKENS", 32)


@pytest.mark.parametrize("causal", [True, False])
def test_power_iteration_brackets_sigma1(causal):
    A = _heads(N, causal)
    out = spec.top_singular_value_power(torch.from_numpy(A))
    sigma1_sq = np.linalg.norm(A.astype(np.float64), 2, axis=(1, 2)) ** 2
    # Float32 products: the Rayleigh quotient carries a relative rounding error of about n eps(float32).
    slack = tol.sum_rtol(N, dtype=np.float32) * sigma1_sq
    lower, upper = out["sigma1_sq"].numpy(), out["sigma1_sq_upper"].numpy()
    assert (lower <= sigma1_sq + slack).all() and (upper >= sigma1_sq - slack).all()
    converged = (upper - lower) <= spec.POWER_RTOL * lower
    # A certified head is within the stated relative width; every head is at least within 1%.
    assert np.all(np.abs(lower - sigma1_sq) <= np.where(converged, spec.POWER_RTOL, 1e-2) * sigma1_sq + slack)
    fro = (A.astype(np.float64) ** 2).sum((1, 2))
    np.testing.assert_allclose(out["frobenius_sq"].numpy(), fro, rtol=tol.sum_rtol(N * N, dtype=np.float32))


@pytest.mark.parametrize("causal", [True, False])
def test_long_grid_matches_full_grid_where_offered(causal):
    A = _heads(N, causal)
    full = att.attention_grid(A[None], causal=causal)
    chunk = long.long_grid_chunk(torch.from_numpy(A), causal)
    rtol = tol.sum_rtol(N, dtype=np.float32) * 10  # float32 terms, float64 sums
    np.testing.assert_allclose(chunk["entropy"], full.entropy[0], rtol=rtol)
    np.testing.assert_allclose(chunk["entropy_nats"], full.entropy_nats[0], rtol=rtol)
    np.testing.assert_allclose(chunk["sink_mass"], full.sink_mass[0], rtol=rtol)
    np.testing.assert_array_equal(chunk["triangular"], full.triangular[0])
    # Stable rank: rho <= sigma_1^2 so the estimate is at or above the exact value, the certified one below.
    exact = full.stable_rank[0]
    assert (chunk["stable_rank"] >= exact * (1 - rtol)).all()
    assert (chunk["stable_rank_low"] <= exact * (1 + rtol)).all()
    np.testing.assert_allclose(chunk["stable_rank"], exact, rtol=1e-2)
    assert np.isnan(chunk["effective_rank"]).all() and np.isnan(chunk["numerical_rank"]).all()
    if causal:  # lambda_2 from the diagonal is exact: the full route's value to rounding
        np.testing.assert_allclose(
            chunk["lambda2_abs"], full.lambda2_abs[0], rtol=0, atol=4 * tol.eps(np.float32)
        )
        assert (chunk["lambda2_method"] == spec.METHOD_DIAGONAL).all()
    else:
        assert np.isnan(chunk["lambda2_abs"]).all()
        assert (chunk["lambda2_method"] == spec.METHOD_NOT_OFFERED).all()


def test_grid_by_layers_says_what_is_not_offered(short_full_length):
    A = np.stack([_heads(N, False, seed=1), _heads(N, False, seed=2)])
    grid = att.attention_grid(A, causal=False)
    assert grid.n_layers == 2 and grid.n_tokens == N
    assert set(grid.not_offered) == {"effective_rank", "numerical_rank", "lambda2_abs", "spectral_gap"}
    assert "Not offered at 160 tokens" in grid.note and "1,024" not in grid.note
    assert grid.stable_rank_low is not None and (grid.stable_rank_low <= grid.stable_rank).all()
    causal = att.attention_grid(np.stack([_heads(N, True)]), causal=True)
    assert set(causal.not_offered) == {"effective_rank", "numerical_rank"}  # lambda_2 from the diagonal


@pytest.mark.parametrize("causal", [True, False])
def test_long_head_spectrum_within_residuals_of_numpy(short_full_length, causal):
    A = _heads(N, causal)[None]
    got = att.head_spectrum(A, 0, 2, causal=causal)
    M = A[0, 2].astype(np.float64)
    assert got.partial and np.isnan(got.effective_rank) and got.note
    S = np.linalg.svd(M, compute_uv=False)
    k = len(got.singular_values)
    # Weyl: each Krylov singular value lies within its residual of a true one (plus numpy's own rounding).
    slack = tol.symmetric_tolerance(M)
    assert np.all(np.abs(got.singular_values - S[:k]) <= got.residuals["singular_values"] + slack)
    sym = np.linalg.eigvalsh((M + M.T) / 2)[::-1]
    assert np.all(np.abs(got.sym_eigvals - sym[:k]) <= got.residuals["sym_eigvals"] + slack)
    np.testing.assert_allclose(got.stable_rank, (M**2).sum() / S[0] ** 2, rtol=1e-9)
    ref = spec.stationary_distribution(torch.from_numpy(M), got.damping).numpy()
    np.testing.assert_allclose(got.stationary, ref, rtol=0, atol=1e-12)
    w, bound = tol.eig_tolerances(M)
    if causal:  # triangular: every eigenvalue is the diagonal, exactly
        assert got.triangular and len(got.eigvals) == N and "eigvals" not in got.residuals
        tol.assert_eigvals_close(got.eigvals, M)
    else:
        # Backward error r: an eigenvalue of M within kappa * r (first order) of each Krylov value.
        top = w[np.lexsort((-w.imag, -w.real, -np.abs(w)))][: len(got.eigvals)]
        allowed = got.residuals["eigvals"] * np.max(bound / tol.backward_error(M)) + bound.max()
        assert np.all(np.abs(got.eigvals - top) <= allowed)
        np.testing.assert_allclose(got.lambda2_abs, abs(top[1]), atol=allowed[1])


@pytest.mark.parametrize("kind", ["right", "symmetric", "singular"])
def test_long_head_eigenvectors_have_small_residuals(short_full_length, kind):
    A = _heads(N, False)[None]
    got = att.head_eigenvectors(A, 0, 1, kind=kind, k=4)
    M = A[0, 1].astype(np.float64)
    # "right" may return 3: a 4th value that is half of a conjugate pair is dropped with its partner missing.
    assert got.residuals is not None and got.vectors.shape[1] == N
    assert len(got.values) == len(got.vectors) == len(got.residuals) in ((3, 4) if kind == "right" else (4,))
    assert np.all(got.residuals <= 1e-8)
    if kind == "singular":
        np.testing.assert_allclose(got.values.real, np.linalg.svd(M, compute_uv=False)[:4], atol=1e-10)
    else:
        target = M if kind == "right" else (M + M.T) / 2
        for value, vector in zip(got.values, got.vectors, strict=True):
            assert np.linalg.norm(target @ vector - value * vector) <= 1e-8


def test_grid_reducer_matches_attention_grid_below_the_full_length():
    A = np.stack([_heads(64, True, seed=3), _heads(64, True, seed=4)])
    reducer = long.GridReducer(causal=True)
    for layer in range(2):
        reducer(layer, torch.from_numpy(A[layer]))
    got, want = reducer.grid(), att.attention_grid(A, causal=True)
    for name in att.GRID_METRICS:
        np.testing.assert_array_equal(got.metric(name), want.metric(name))
    assert got.not_offered == () and got.note == ""


def test_sidebar_offers_lengths_up_to_the_models_context():
    from explorer.ui.sidebar import MAX_TOKEN_CHOICES, max_tokens_setting, token_choices

    assert token_choices(8192) == MAX_TOKEN_CHOICES and MAX_TOKEN_CHOICES[-1] == 8192
    assert token_choices(512) == [64, 128, 256, 512]  # MiniLM
    assert token_choices(1000) == [64, 128, 256, 512, 1000] and token_choices(None) == MAX_TOKEN_CHOICES
    assert max_tokens_setting(128).default == 128 and max_tokens_setting(8192).default == 512
    # A link's length past the context is not offered: the default is used and the link notice says why.
    assert max_tokens_setting(512).parse("8192") is None and max_tokens_setting(8192).parse("8192") == 8192
