"""Heavy-tail statistics against known distributions, scipy's KS test and random-matrix theory."""

import numpy as np
import pytest
from scipy import integrate, stats

from explorer.spectra.heavy_tail import (
    element_variance,
    esd,
    fit_power_law,
    mp_bulk_edge,
    mp_density,
    power_law_ks,
)
from tests.tolerances import sum_rtol, symmetric_tolerance


def pareto_tailed(alpha: float, n_tail: int, n_bulk: int, seed: int) -> np.ndarray:
    """A spectrum with a uniform bulk below 1 and a Pareto tail p(x) ~ x^-alpha above x_min = 1."""
    rng = np.random.default_rng(seed)
    tail = rng.random(n_tail) ** (-1.0 / (alpha - 1.0))  # inverse CDF of the Pareto law, x_min = 1
    bulk = rng.uniform(0.05, 1.0, n_bulk)
    return rng.permutation(np.concatenate([bulk, tail]))


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_alpha_recovered_on_pareto_tailed_spectra(alpha, seed):
    fit = fit_power_law(pareto_tailed(alpha, n_tail=1500, n_bulk=2500, seed=seed))
    assert abs(float(fit.alpha) - alpha) < 0.15
    # x_min lands at the start of the tail (1.0), not deep in the bulk or far out in the tail.
    assert 0.8 < float(fit.xmin) < 1.6
    assert fit.n_tail > 500


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.0])
def test_alpha_recovered_on_pure_pareto(alpha):
    rng = np.random.default_rng(7)
    x = 0.3 * rng.random(3000) ** (-1.0 / (alpha - 1.0))
    fit = fit_power_law(x)
    assert abs(float(fit.alpha) - alpha) < 0.15


def test_ks_distance_matches_scipy_kstest():
    x = pareto_tailed(2.5, n_tail=400, n_bulk=300, seed=3)
    fit = fit_power_law(x)
    tail = x[x >= fit.xmin]
    assert tail.size == fit.n_tail
    reference = stats.kstest(
        tail, stats.pareto(b=float(fit.alpha) - 1.0, scale=float(fit.xmin)).cdf
    ).statistic
    # KS distance: a max of |F_emp - F| over O(1) values, each power (x / x_min)^(1 - alpha) rounded to
    # (1 + |(alpha - 1) log(x / x_min)|) eps < 1e-13: well-conditioned.
    assert float(fit.ks) == pytest.approx(reference, abs=1e-12)
    assert power_law_ks(tail, float(fit.alpha), float(fit.xmin)) == pytest.approx(reference, abs=1e-12)


def test_xmin_is_the_ks_minimiser_over_every_candidate():
    """Brute force: for every candidate x_min, the MLE alpha and scipy's KS distance; the fit picks the min."""
    x = np.sort(pareto_tailed(3.0, n_tail=80, n_bulk=70, seed=5))
    best = (np.inf, None, None)
    for j in range(x.size - 10 + 1):  # tails of at least 10 points (the default min_tail)
        tail = x[j:]
        alpha = 1.0 + tail.size / np.log(tail / x[j]).sum()
        D = stats.kstest(tail, stats.pareto(b=alpha - 1.0, scale=x[j]).cdf).statistic
        if D < best[0]:
            best = (D, alpha, x[j])
    fit = fit_power_law(x)
    assert float(fit.ks) == pytest.approx(best[0], abs=1e-12)  # KS: O(1) values to ~1e-13 (as above)
    # alpha = 1 + n / sum log(x / x_min): a sum of n non-negative logs, c n eps relative on each side.
    assert float(fit.alpha) == pytest.approx(best[1], rel=2 * sum_rtol(x.size))
    assert float(fit.xmin) == best[2]


def test_weightwatcher_variant_matches_its_published_loop():
    """WeightWatcher's WWFit loop (one-sided D, every x_min but the last), re-implemented from its source."""
    x = np.sort(pareto_tailed(2.2, n_tail=60, n_bulk=60, seed=9))
    logs = np.log(x)
    alphas, Ds = [], []
    for i in range(x.size - 1):
        n = x.size - i
        alpha = 1 + n / (np.sum(logs[i:]) - n * logs[i])
        alphas.append(alpha)
        Ds.append(np.max(np.abs(1 - (x[i:] / x[i]) ** (-alpha + 1) - np.arange(n) / n)))
    i = int(np.argmin(Ds))
    fit = fit_power_law(x, ks="weightwatcher", min_tail=2)
    # sum(logs) - n log x_i cancels: its relative error is c n eps (sum |logs| + n |log x_i|) / |difference|.
    n = x.size - i
    cancellation = (np.abs(logs[i:]).sum() + n * abs(logs[i])) / abs(np.sum(logs[i:]) - n * logs[i])
    assert float(fit.alpha) == pytest.approx(alphas[i], rel=2 * sum_rtol(n) * cancellation)
    # KS: a max of O(1) values to ~1e-13, as above.
    assert float(fit.xmin) == x[i] and float(fit.ks) == pytest.approx(Ds[i], abs=1e-12)
    with pytest.raises(ValueError, match="KS variant"):
        fit_power_law(x, ks="two-ish")


def test_batched_fit_equals_row_by_row_and_ignores_zeros():
    rows = [pareto_tailed(a, 200, 200, seed=i) for i, a in enumerate([2.0, 2.5, 3.0, 3.5, 4.0, 5.0])]
    data = np.stack(rows).reshape(2, 3, -1)
    data[0, 0, :50] = 0.0  # rank-deficient spectrum: zero eigenvalues are never part of the tail
    fit = fit_power_law(data)
    assert fit.alpha.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            single = fit_power_law(data[i, j])
            # The same sums, batched or not (summation order may differ): c n eps relative each.
            assert float(fit.alpha[i, j]) == pytest.approx(
                float(single.alpha), rel=2 * sum_rtol(data.shape[-1])
            )
            assert float(fit.xmin[i, j]) == float(single.xmin)
    assert fit.xmin[0, 0] > 0


def test_too_few_points_give_nan():
    fit = fit_power_law(np.array([1.0, 2.0, 3.0]))
    assert np.isnan(fit.alpha) and np.isnan(fit.ks)
    assert np.isnan(fit_power_law(np.zeros(50)).alpha)


@pytest.mark.parametrize("shape", [(300, 120), (120, 300)])
def test_esd_equals_eigenvalues_of_gram_over_n(shape):
    rng = np.random.default_rng(0)
    W = rng.standard_normal(shape)
    S = np.linalg.svd(W, compute_uv=False)
    expected = np.sort(np.linalg.eigvalsh(W.T @ W / max(shape)))[::-1][: min(shape)]
    # sigma_i^2 / N from an SVD vs eigvalsh of the formed Gram matrix: Weyl, 2 c n eps ||W||^2 on each route.
    delta = 4 * symmetric_tolerance(W) * np.linalg.norm(W, 2) / max(shape)
    np.testing.assert_allclose(esd(S, shape), expected, rtol=0, atol=delta)
    # sum sigma^2 = ||W||_F^2: each sigma off by c n eps ||W||, so the sum by 2 sqrt(r) ||W||_F that; and the sums.
    rel = (
        2 * np.sqrt(S.size) * symmetric_tolerance(W) / np.linalg.norm(W) + sum_rtol(S.size) + sum_rtol(W.size)
    )
    assert float(element_variance(S, shape)) == pytest.approx(np.mean(W**2), rel=rel)


def test_marchenko_pastur_edge_bounds_a_random_matrix():
    """Random-matrix theory: the top ESD eigenvalue of an i.i.d. matrix converges to lambda_+."""
    rng = np.random.default_rng(1)
    shape, s2 = (2000, 500), 0.3
    W = rng.normal(0.0, np.sqrt(s2), shape)
    lam = esd(np.linalg.svd(W, compute_uv=False), shape)
    edge = float(mp_bulk_edge(shape, s2))
    assert edge == pytest.approx(s2 * (1 + np.sqrt(500 / 2000)) ** 2, rel=sum_rtol(4))  # a few flops: c n eps
    assert lam.max() == pytest.approx(edge, rel=0.03)
    assert (lam > edge * 1.01).sum() == 0
    # The estimated element variance gives (almost) the same edge.
    assert float(mp_bulk_edge(shape, element_variance(np.sqrt(lam * 2000), shape))) == pytest.approx(
        edge, rel=0.01
    )


@pytest.mark.parametrize("shape", [(1000, 250), (500, 500)])
def test_marchenko_pastur_density_integrates_to_one(shape):
    s2 = 0.7
    hi = float(mp_bulk_edge(shape, s2))
    lo = s2 * (1 - np.sqrt(min(shape) / max(shape))) ** 2
    total, _ = integrate.quad(lambda x: float(mp_density(x, shape, s2)), lo, hi, limit=200)
    assert total == pytest.approx(1.0, abs=1e-3)
