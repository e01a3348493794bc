"""WeightWatcher's metric set (explorer/spectra/weightwatcher.py, explorer/analysis/weights.py) against numpy and
scipy computed here, and the theorems the randomized comparison rests on."""

import zlib

import numpy as np
import pytest
import scipy.stats
import torch

from explorer.analysis.matrices import weights_checksum
from explorer.analysis.weights import (
    WW_METRICS,
    compute_randomized_spectra,
    compute_weight_spectra,
    randomized_spec,
    randomized_spectra,
    weight_spectra,
    ww_metric,
    ww_rows,
)
from explorer.spectra import weightwatcher as ww
from tests.conftest import restart_tasks
from tests.tolerances import SAFETY, gram_singular_value_tolerance, symmetric_tolerance

EPS64 = np.finfo(np.float64).eps


class _Mats(torch.nn.Module):
    """Bias-free Linear layers holding the given (out, in) matrices, named as given."""

    def __init__(self, mats: dict[str, np.ndarray]):
        super().__init__()
        for name, W in mats.items():
            layer = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
            layer.weight.data = torch.as_tensor(W, dtype=torch.float32).clone()
            setattr(self, name, layer)


def _numpy_shuffle(W: np.ndarray, name: str, seed: int) -> np.ndarray:
    """W with its entries shuffled by numpy's Generator.shuffle, seeded [seed, CRC-32 of the name]."""
    flat = W.reshape(-1).copy()
    np.random.default_rng([seed, zlib.crc32(name.encode())]).shuffle(flat)
    return flat.reshape(W.shape)


def _ww_rand_distance(lam: np.ndarray, lam_rand: np.ndarray) -> float:
    """WeightWatcher 0.7.7's jensen_shannon_distance(evals, rand_evals), as RMT_Util.py writes it."""
    p, q = np.sort(lam), np.sort(lam_rand)
    m = (p + q) / 2
    return float(np.sqrt((scipy.stats.entropy(p, m) + scipy.stats.entropy(q, m)) / 2))


def _float32_weights(model: torch.nn.Module, name: str) -> np.ndarray:
    return getattr(model, name).weight.detach().double().numpy()


@pytest.fixture(scope="module")
def random_model():
    rng = np.random.default_rng(7)
    mats = {
        "wide": rng.standard_normal((40, 90)) * 0.05,
        "tall": rng.standard_normal((120, 50)) * 0.02 + 0.001,
        "square": rng.standard_normal((60, 60)) ** 3 * 0.1,  # heavy-tailed entries
        "decay": (rng.standard_normal((80, 70)) @ np.diag(np.arange(1, 71) ** -1.0))
        @ rng.standard_normal((70, 70)),
    }
    return _Mats(mats)


def test_norm_metrics_and_alpha_hat_against_numpy(random_model):
    spectra = compute_weight_spectra(random_model)
    for i, name in enumerate(spectra.names):
        W = _float32_weights(random_model, name)
        s = np.linalg.svd(W, compute_uv=False)
        fro2, top2 = np.linalg.norm(W, "fro") ** 2, np.linalg.norm(W, 2) ** 2
        # The Gram route: each sigma_i^2 is off by delta = 2 c N eps ||W||^2 (Weyl); a log10 of a value off by a
        # relative r is off by r / ln 10.
        delta = gram_singular_value_tolerance(W, s[:1])[0] * s[0] * 2
        r_top, r_fro = delta / top2, len(s) * delta / fro2
        assert spectra.metric("log_spectral_norm")[i] == pytest.approx(np.log10(top2), abs=r_top / np.log(10))
        assert spectra.metric("log_norm")[i] == pytest.approx(np.log10(fro2), abs=r_fro / np.log(10))
        assert spectra.metric("alpha_hat")[i] == pytest.approx(
            spectra.alpha[i] * np.log10(top2), abs=abs(spectra.alpha[i]) * r_top / np.log(10)
        )
        # WeightWatcher's stable rank sum(lambda) / lambda_max is ours.
        assert spectra.stable_rank[i] == pytest.approx(fro2 / top2, rel=r_fro + r_top)
    for key in WW_METRICS:
        assert ww_metric(spectra, None, key).shape == (len(spectra),)


def test_entry_permutation_is_numpys_shuffle():
    for size, seed in [(1, 0), (17, 3), (5000, [2, 99])]:
        expected = np.random.default_rng(seed).permutation(size)
        np.testing.assert_array_equal(ww.entry_permutation(size, seed), expected)
    W = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
    perm = torch.from_numpy(ww.entry_permutation(12, 5))[None]
    flat = np.arange(12, dtype=np.float32)
    np.random.default_rng(5).shuffle(flat)
    np.testing.assert_array_equal(ww.shuffle_entries(W, perm).numpy().reshape(-1), flat)
    assert torch.equal(W, torch.arange(12, dtype=torch.float32).reshape(1, 3, 4))  # the input is untouched


@pytest.mark.parametrize("seed", [0, 11])
def test_randomized_comparison_against_numpy(random_model, seed):
    before = weights_checksum(random_model)
    spectra = compute_weight_spectra(random_model)
    rand = compute_randomized_spectra(random_model, spectra, seed=seed)
    assert weights_checksum(random_model) == before  # shuffled copies only
    assert rand.names == spectra.names and rand.seed == seed
    for i, name in enumerate(spectra.names):
        W = _float32_weights(random_model, name)
        Wr = _numpy_shuffle(W, name, seed)
        m, n = W.shape
        N, M = max(m, n), min(m, n)
        s_rand = np.linalg.svd(Wr, compute_uv=False)
        assert np.all(
            np.abs(rand.sigma[i] - s_rand)
            <= gram_singular_value_tolerance(Wr, s_rand) + symmetric_tolerance(Wr)
        )
        lam_rand = np.linalg.eigvalsh(Wr.T @ Wr if m >= n else Wr @ Wr.T)[::-1] / N
        lam = np.linalg.svd(W, compute_uv=False) ** 2 / N
        # JS distance: well conditioned in the eigenvalues (a smooth function of the normalised vectors).
        assert rand.rand_distance[i] == pytest.approx(_ww_rand_distance(lam, lam_rand), abs=1e-9)
        s2 = np.mean(W**2)
        edge = (
            s2 * (1 + np.sqrt(M / N)) ** 2
            + 4 * s2 * (np.sqrt(N) + np.sqrt(M)) * (1 / np.sqrt(N) + 1 / np.sqrt(M)) ** (1 / 3) / N
        )
        assert rand.trap_edge[i] == pytest.approx(edge, rel=1e-6)  # float32 entries squared and summed
        expected_traps = lam_rand[lam_rand > edge]
        margin = 2 * SAFETY * N * EPS64 * lam_rand[0]
        assert not np.any(
            np.abs(lam_rand - edge) < margin
        )  # no eigenvalue so close to the edge that rounding decides
        assert rand.n_traps[i] == expected_traps.size
        np.testing.assert_allclose(rand.traps(i), expected_traps, rtol=1e-9)
    rows = ww_rows(spectra, rand)
    assert [row["name"] for row in rows] == list(spectra.names)
    assert all(set(WW_METRICS) <= set(row) and row["traps"] is not None for row in rows)
    assert ww_rows(spectra, None)[0]["rand_distance"] is None


def test_heavy_tailed_entries_make_traps_and_gaussian_ones_do_not(random_model):
    spectra = compute_weight_spectra(random_model)
    rand = compute_randomized_spectra(random_model, spectra)
    # Cubed Gaussian entries z^3: kurtosis E z^12 / (E z^6)^2 = 10395 / 225 = 46, so a few entries are huge. One
    # entry w is a rank-1 spike of strength |w| wherever the shuffle puts it; past the BBP threshold
    # |w| > s (N M)^(1/4) it leaves an eigenvalue outside the bulk (here the largest has w^2 = 3.8 s^2 N).
    assert rand.n_traps[spectra.index("square")] >= 1
    assert rand.n_traps[spectra.index("wide")] == 0


def test_gaussian_matrix_has_no_trap_and_a_small_rand_distance():
    """Davidson & Szarek: for G (m, n) with i.i.d. N(0, 1) entries, P(sigma_max > sqrt m + sqrt n + t) <= e^{-t^2/2}.
    A shuffle of G is again such a matrix, so with t = 6 (failure below 2e-8) its ESD (G^T G / N) stays below
    (sqrt m + sqrt n + 6)^2 / N. The app's trap edge sits 4 Tracy-Widom widths past lambda_+, where the TW1 law
    puts about 1e-4 of the mass: no trap (fixed seeds). Both sorted spectra follow the same MP quantiles, so
    rand_distance is small; a matrix with decaying singular values (learned structure) is far from its shuffle."""
    m, n = 300, 600
    G = np.random.default_rng(1).standard_normal((m, n))
    U, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((m, m)))
    V, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((n, m)))
    structured = U @ np.diag(np.arange(1, m + 1) ** -0.8) @ V.T
    model = _Mats({"gauss": G, "structured": structured})
    spectra = compute_weight_spectra(model)
    rand = compute_randomized_spectra(model, spectra)
    g, s = spectra.index("gauss"), spectra.index("structured")
    bound = (np.sqrt(m) + np.sqrt(n) + 6) ** 2 / n
    assert rand.esd(g)[0] <= bound and spectra.esd(g)[0] <= bound
    assert rand.n_traps[g] == 0
    assert rand.rand_distance[g] < 0.05
    assert rand.rand_distance[s] > 0.3 > 6 * rand.rand_distance[g]


def test_planted_spike_is_kept_in_the_real_esd_and_lost_in_the_shuffled_one():
    """G + theta u v^T with theta / sqrt(N) = 3, past the BBP threshold Q^{-1/4}: the real ESD keeps an eigenvalue
    near (theta^2 + N)(theta^2 + M) / (theta^2 N) = 10.6, far past lambda_+ = 2.9; the shuffle spreads the spike's
    entries (each about theta / sqrt(m n)) over the whole matrix, and only the bulk remains."""
    m, n = 300, 600
    rng = np.random.default_rng(4)
    u, v = rng.standard_normal(m), rng.standard_normal(n)
    theta = 3 * np.sqrt(n)
    W = rng.standard_normal((m, n)) + theta * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    model = _Mats({"spiked": W})
    spectra = compute_weight_spectra(model)
    rand = compute_randomized_spectra(model, spectra)
    bbp = (theta**2 + n) * (theta**2 + m) / (theta**2 * n)
    assert spectra.esd(0)[0] == pytest.approx(bbp, rel=0.05)  # finite-size fluctuation O(N^{-1/2})
    assert spectra.n_spikes[0] >= 1 and spectra.esd(0)[1] < spectra.mp_edge[0] * 1.1
    assert rand.n_traps[0] == 0
    assert rand.esd(0)[0] < rand.trap_edge[0] < spectra.esd(0)[0] / 3


def test_randomized_spectra_are_kept_on_disk(load, cache_home, monkeypatch):
    model = load("tiny-llama").model
    spectra = weight_spectra(model)
    first = randomized_spectra(model, spectra)
    assert not first.from_cache and randomized_spec(spectra).entry.path.is_file()
    restart_tasks(monkeypatch)
    second = randomized_spectra(model, spectra)
    assert second.from_cache and second.names == first.names
    for a, b in zip(first.sigma, second.sigma, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.rand_distance, second.rand_distance)
    np.testing.assert_array_equal(first.n_traps, second.n_traps)
    assert randomized_spec(spectra, seed=1) != randomized_spec(spectra)
    assert randomized_spec(spectra).estimated_seconds() < 1  # a tiny model runs in the asking thread


def test_spectra_of_another_model_are_refused(load):
    spectra = compute_weight_spectra(load("tiny-gpt2").model)
    with pytest.raises(ValueError, match="another model"):
        compute_randomized_spectra(load("tiny-llama").model, spectra)


@pytest.mark.slow
def test_smollm2_matrices_against_numpy(smollm2):
    names = {
        "q0": "model.layers.0.self_attn.q_proj",
        "k15": "model.layers.15.self_attn.k_proj",
        "down29": "model.layers.29.mlp.down_proj",
    }
    params = dict(smollm2.model.named_parameters())
    model = _Mats({key: params[f"{name}.weight"].detach().float().numpy() for key, name in names.items()})
    spectra = compute_weight_spectra(model)
    rand = compute_randomized_spectra(model, spectra, seed=3)
    for i, key in enumerate(spectra.names):
        W = _float32_weights(model, key)
        s = np.linalg.svd(W, compute_uv=False)
        N = max(W.shape)
        delta = gram_singular_value_tolerance(W, s[:1])[0] * s[0] * 2
        assert spectra.metric("log_spectral_norm")[i] == pytest.approx(
            np.log10(s[0] ** 2), abs=delta / s[0] ** 2
        )
        assert spectra.metric("log_norm")[i] == pytest.approx(
            np.log10((s**2).sum()), abs=len(s) * delta / (s**2).sum()
        )
        Wr = _numpy_shuffle(W, key, 3)
        s_rand = np.linalg.svd(Wr, compute_uv=False)
        assert np.all(
            np.abs(rand.sigma[i] - s_rand)
            <= gram_singular_value_tolerance(Wr, s_rand) + symmetric_tolerance(Wr)
        )
        assert rand.rand_distance[i] == pytest.approx(_ww_rand_distance(s**2 / N, s_rand**2 / N), abs=1e-9)
        # Trained weights keep structure the shuffle destroys: their sorted ESD is far from the shuffled one.
        assert rand.rand_distance[i] > 0.02
