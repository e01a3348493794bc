"""Attention analyses on real captures (tiny random models and the embedded ones) against numpy per head."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from explorer.analysis import attention as an
from explorer.models import capture
from explorer.spectra import attention_spectra as spec
from explorer.spectra import ranks
from explorer.texts import example_texts
from tests.tolerances import (
    assert_eigvals_close,
    backward_error,
    nearest_eigenvalue_tolerance,
    pagerank_residual_tolerance,
    sum_rtol,
    summation_tolerance,
    symmetric_tolerance,
    trace_tolerance,
)

SHORT = "The quick brown fox jumps over the lazy dog. Then the fox sleeps."
EPS32 = np.finfo(np.float32).eps


def long_text() -> str:
    return " ".join(example_texts().values())


def assert_same_multiset(a, b, atol):
    a, b = np.asarray(a, dtype=complex), np.asarray(b, dtype=complex)
    cost = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].max() <= atol, cost[rows, cols].max()


def heads(attentions):
    n_layers, n_heads = attentions.shape[:2]
    for layer in range(n_layers):
        for head in range(n_heads):
            yield layer, head, attentions[layer, head].astype(np.float64)


def lambda2_allowed(A):
    """|lambda_2| by any route (diagonal, Arnoldi to KRYLOV_TOL, geev) against geev: kappa(lambda_2) times the
    Ritz residual and both sides' rounding."""
    w = np.linalg.eigvals(A)
    second = w[np.argsort(-np.abs(w))[1]]
    residual = spec.KRYLOV_TOL * np.abs(A).sum(axis=1).max()
    return nearest_eigenvalue_tolerance(A, [second], residual=residual)[1][0]


def stable_rank_rtol(A, S):
    """Stable rank sum(sigma^2) / sigma_1^2 from Gram singular values against an SVD: each sigma_i^2 is off by
    delta = 2 c n eps ||A||^2 (Weyl on A A^T), the sum by n delta, sigma_1^2 by delta (both sides)."""
    delta = 2 * symmetric_tolerance(A) * S[0]
    return 2 * (len(S) * delta / (S**2).sum() + delta / S[0] ** 2)


def check_grid_against_naive(cap, grid):
    """Every grid number against the naive route: numpy.linalg.eigvals / svd on each head."""
    n = cap.n_tokens
    for layer, head, A in heads(cap.attentions):
        moduli = np.sort(np.abs(np.linalg.eigvals(A)))[::-1]
        S = np.linalg.svd(A, compute_uv=False)
        lam2_tol = lambda2_allowed(A)  # non-normal heads: kappa(lambda_2) (residual + rounding)
        assert grid.lambda2_abs[layer, head] == pytest.approx(moduli[1], abs=lam2_tol)
        assert grid.spectral_gap[layer, head] == pytest.approx(1 - moduli[1], abs=lam2_tol)
        assert grid.effective_rank[layer, head] == pytest.approx(ranks.effective_rank(S), rel=1e-4)
        assert grid.stable_rank[layer, head] == pytest.approx(
            ranks.stable_rank(S), rel=stable_rank_rtol(A, S)
        )
        assert grid.numerical_rank[layer, head] == ranks.numerical_rank(S, (n, n), eps=EPS32)
        # A mean of n positive values, two summation orders.
        assert grid.sink_mass[layer, head] == pytest.approx(A[:, 0].mean(), rel=2 * sum_rtol(n))
        terms = np.where(A > 0, A * np.log(np.where(A > 0, A, 1)), 0)
        row_h = -np.sum(terms, axis=-1)
        allowed = np.arange(1, n + 1) if cap.causal else np.full(n, n)
        # Sums of the n^2 terms -a log a (each to a few eps), both sides, then a mean over n rows.
        h_tol = 2 * summation_tolerance(terms) / n
        assert grid.entropy_nats[layer, head] == pytest.approx(row_h.mean(), rel=0, abs=h_tol)
        usable = allowed >= 2
        assert grid.entropy[layer, head] == pytest.approx(
            (row_h[usable] / np.log(allowed[usable])).mean(), rel=0, abs=h_tol / np.log(2)
        )


def check_spectra_against_numpy(cap, spectra):
    for layer, head, A in heads(cap.attentions):
        lam = spectra.eigvals[layer, head]
        assert_eigvals_close(lam, A)  # non-normal: kappa(lambda) c n eps ||A|| each
        assert np.all(np.diff(np.abs(lam)) <= 1e-15)  # sorted by torch's |z|; numpy's may differ by an ulp
        assert lam[0] == pytest.approx(1.0, abs=1e-5)  # Perron root (float32 rows sum to 1 within ~1e-7)
        assert np.abs(lam).max() <= 1 + 1e-5
        assert lam.sum().real == pytest.approx(
            np.trace(A), abs=trace_tolerance(A)
        )  # trace = sum of eigenvalues
        L = np.diag(A.sum(0) / np.arange(cap.n_tokens, 0, -1)) - A
        assert_eigvals_close(spectra.laplacian_eigvals[layer, head], L)  # d's summation order is inside that


# --- tiny random models (fast) -------------------------------------------------------------------------------


def test_tiny_models_grid_and_spectra(tiny_model):
    cap = capture(tiny_model, SHORT)
    grid = an.attention_grid(cap.attentions, causal=cap.causal)
    spectra = an.attention_spectra(cap.attentions)
    check_grid_against_naive(cap, grid)
    check_spectra_against_numpy(cap, spectra)
    assert grid.triangular.all() == cap.causal
    if cap.causal:
        assert (grid.lambda2_method == spec.METHOD_DIAGONAL).all()
        for layer, head, A in heads(cap.attentions):
            # The diagonal shortcut (checked against the full eigensolver above) is a copy of the diagonal.
            assert_same_multiset(spectra.eigvals[layer, head], np.diag(A), 0.0)


def test_tiny_head_spectrum_and_eigenvectors(tiny_model):
    cap = capture(tiny_model, SHORT)
    A = cap.attentions[1, 2].astype(np.float64)
    spectrum = an.head_spectrum(cap.attentions, 1, 2, causal=cap.causal)
    assert_eigvals_close(spectrum.eigvals, A)
    sv_tol = 2 * symmetric_tolerance(A)  # Weyl, two SVDs
    np.testing.assert_allclose(
        spectrum.singular_values, np.linalg.svd(A, compute_uv=False), rtol=0, atol=sv_tol
    )
    S = (A + A.T) / 2
    np.testing.assert_allclose(
        spectrum.sym_eigvals, np.linalg.eigvalsh(S)[::-1], rtol=0, atol=2 * symmetric_tolerance(S)
    )
    pi = spectrum.stationary  # a solve, then renormalised: float32 rows sum to 1 only to ~1e-7
    residual_tol = pagerank_residual_tolerance(A, pi, 0.85)
    np.testing.assert_allclose(pi, 0.85 * pi @ A + 0.15 / len(A), rtol=0, atol=residual_tol)
    moduli = np.sort(np.abs(np.linalg.eigvals(A)))
    assert spectrum.lambda2_abs == pytest.approx(moduli[-2], abs=lambda2_allowed(A))

    right = an.head_eigenvectors(cap.attentions, 1, 2, kind="right", k=4)
    for value, v in zip(right.values, right.vectors, strict=True):
        # A v = lambda v: the geev pair is exact for A + E, so the residual is ||E v|| <= c n eps ||A||.
        np.testing.assert_allclose(A @ v, value * v, rtol=0, atol=backward_error(A))
        assert np.linalg.norm(v) == pytest.approx(1.0)  # geev's vectors have unit 2-norm: 1 to a few eps
    sym = an.head_eigenvectors(cap.attentions, 1, 2, kind="symmetric", k=4)
    # eigh is backward stable: orthonormal to c n eps, residual c n eps ||S||.
    ortho = backward_error(np.eye(len(A)))
    np.testing.assert_allclose(sym.vectors @ sym.vectors.T.conj(), np.eye(4), rtol=0, atol=ortho)
    np.testing.assert_allclose(S @ sym.vectors.T, sym.vectors.T * sym.values, rtol=0, atol=backward_error(S))
    sing = an.head_eigenvectors(cap.attentions, 1, 2, kind="singular", k=3)
    # (u, sigma) exact for A + E: A A^T u - sigma^2 u = O(2 ||A|| ||E||), plus forming A A^T u (||A|| ||E||).
    np.testing.assert_allclose(
        A @ A.T @ sing.vectors.T,
        sing.vectors.T * sing.values.real**2,
        rtol=0,
        atol=3 * np.linalg.norm(A, 2) * backward_error(A),
    )
    assert sing.is_real.all() and sym.is_real.all()
    top = np.abs(sing.vectors).argmax(-1)
    np.testing.assert_array_equal(sing.top_tokens[:, 0], top)


def test_tiny_temperature_reaches_the_head(tiny_model):
    cap = capture(tiny_model, SHORT)
    cold = an.head_spectrum(cap.attentions, 0, 0, causal=cap.causal, tau=0.5)
    A = cap.attentions[0, 0].astype(np.float64)
    logits = np.where(A > 0, np.log(np.where(A > 0, A, 1)) / 0.5, -np.inf)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    # softmax is 1-Lipschitz: the error is that of log(a) / tau, ~eps |log a| / tau ~ 1e-14 here.
    np.testing.assert_allclose(cold.attention, expected / expected.sum(-1, keepdims=True), atol=1e-12)
    same = an.head_spectrum(cap.attentions, 0, 0, causal=cap.causal, tau=1.0)
    np.testing.assert_array_equal(same.attention, A)


def test_capture_is_not_modified(tiny_model):
    cap = capture(tiny_model, SHORT)
    before = cap.attentions.copy()
    an.attention_grid(cap.attentions, causal=cap.causal)
    an.head_spectrum(cap.attentions, 0, 1, causal=cap.causal, tau=0.3)
    an.head_eigenvectors(cap.attentions, 0, 1, kind="right")
    np.testing.assert_array_equal(cap.attentions, before)
    assert not cap.attentions.flags.writeable


def test_head_index_out_of_range(tiny_model):
    cap = capture(tiny_model, SHORT)
    with pytest.raises(IndexError):
        an.head_spectrum(cap.attentions, 99, 0, causal=cap.causal)


def test_selected_heads_are_distinct_and_justified(tiny_model):
    cap = capture(tiny_model, SHORT)
    grid = an.attention_grid(cap.attentions, causal=cap.causal)
    picks = an.selected_heads(grid)
    assert len({(layer, head) for layer, head, _ in picks}) == len(picks) == 3
    layer, head, why = picks[0]
    assert "sink" in why and grid.sink_mass[layer, head] == grid.sink_mass.max()


# --- embedded models ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_grid_uses_krylov_and_equals_numpy(minilm):
    cap = capture(minilm, long_text(), max_tokens=160)
    assert cap.n_tokens >= spec.KRYLOV_MIN_N and not cap.causal
    grid = an.attention_grid(cap.attentions, causal=False)
    assert (grid.lambda2_method == spec.METHOD_KRYLOV).sum() >= 0.8 * grid.lambda2_method.size
    check_grid_against_naive(cap, grid)


@pytest.mark.slow
def test_minilm_eigvals_and_laplacian_equal_numpy(minilm):
    cap = capture(minilm, long_text(), max_tokens=160)
    check_spectra_against_numpy(cap, an.attention_spectra(cap.attentions))


@pytest.mark.slow
def test_smollm2_diagonal_equals_the_full_eigensolver(smollm2):
    cap = capture(smollm2, long_text(), max_tokens=64)
    assert cap.causal
    grid = an.attention_grid(cap.attentions, causal=True)
    assert grid.triangular.all() and (grid.lambda2_method == spec.METHOD_DIAGONAL).all()
    spectra = an.attention_spectra(cap.attentions)
    check_spectra_against_numpy(cap, spectra)
    for layer, head, A in heads(cap.attentions):
        assert_same_multiset(
            spectra.eigvals[layer, head], np.diag(A), 0.0
        )  # the shortcut copies the diagonal
        L = np.diag(A.sum(0) / np.arange(cap.n_tokens, 0, -1)) - A
        # Triangular: d_jj - a_jj, with d's column sums in torch's and numpy's summation orders.
        d_tol = 2 * sum_rtol(cap.n_tokens) * np.abs(np.diag(L)).max()
        np.testing.assert_allclose(
            np.sort(spectra.laplacian_eigvals[layer, head].real), np.sort(np.diag(L)), rtol=0, atol=d_tol
        )
    check_grid_against_naive(cap, grid)


@pytest.mark.slow
def test_smollm2_head_views(smollm2):
    cap = capture(smollm2, SHORT)
    spectrum = an.head_spectrum(cap.attentions, 5, 3, causal=True)
    assert spectrum.triangular
    np.testing.assert_allclose(  # the diagonal itself (float32 values, exact in float64)
        np.sort(spectrum.eigvals.real), np.sort(np.diag(cap.attentions[5, 3])), rtol=0, atol=0
    )
    vectors = an.head_eigenvectors(cap.attentions, 5, 3, kind="symmetric", k=5)
    ortho = backward_error(np.eye(cap.n_tokens))  # eigh: orthonormal to c n eps
    np.testing.assert_allclose(vectors.vectors @ vectors.vectors.T, np.eye(5), rtol=0, atol=ortho)
    # renormalised, non-negative: c n eps
    assert vectors.stationary.sum() == pytest.approx(1.0, rel=2 * sum_rtol(cap.n_tokens))
