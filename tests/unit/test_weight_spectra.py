"""Whole-model weight spectra on the tiny models and on layers with known spectra; the disk cache."""

import copy

import numpy as np
import pytest
import torch

from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.analysis.weights import (
    METRICS,
    WeightSpectraSpec,
    compute_weight_spectra,
    model_fingerprint,
    weight_spectra,
)
from tests.conftest import restart_tasks
from tests.tolerances import gram_singular_value_tolerance, sum_rtol, symmetric_tolerance


@pytest.mark.parametrize("method", ["gram", "svd"])
def test_singular_values_equal_numpy_for_every_matrix(tiny_model, method):
    model = tiny_model.model
    before = weights_checksum(model)
    spectra = compute_weight_spectra(model, method=method)
    mats = weight_matrices(model)
    assert spectra.names == tuple(m.name for m in mats)
    for i, m in enumerate(mats):
        W = m.weight.detach().double().numpy()
        expected = np.linalg.svd(W, compute_uv=False)
        assert spectra.sigma[i].shape == expected.shape
        # float64 Gram route (squares: min(sqrt(delta), delta / sigma_i)) or a float32 SVD (Weyl with float32's
        # eps); the float64 SVD reference adds its own c n eps ||W||.
        if method == "gram":
            allowed = gram_singular_value_tolerance(W, expected)
        else:
            allowed = symmetric_tolerance(W, dtype=np.float32)
        assert np.all(np.abs(spectra.sigma[i] - expected) <= allowed + symmetric_tolerance(W))
        assert tuple(spectra.shapes[i]) == W.shape
        assert spectra.spectral_norm[i] == pytest.approx(np.linalg.norm(W, 2), rel=1e-6)
        assert spectra.frobenius_norm[i] == pytest.approx(np.linalg.norm(W), rel=1e-6)
        # Numerical rank as numpy defines it, with float32's epsilon (the weights are float32).
        tol_rank = expected[0] * max(W.shape) * np.finfo(np.float32).eps
        assert spectra.numerical_rank[i] == np.linalg.matrix_rank(W, tol=tol_rank)
    assert weights_checksum(model) == before  # nothing was modified


def test_conv1d_orientation_is_out_by_in(load):
    gpt2 = load("tiny-gpt2")
    spectra = compute_weight_spectra(gpt2.model)
    i = spectra.index("transformer.h.0.mlp.c_fc")
    assert tuple(spectra.shapes[i]) == (256, 64)  # Conv1D stores (64, 256)
    assert spectra.break_even_rank(i) == 256 * 64 / (256 + 64)  # exact: the same formula


class _Known(torch.nn.Module):
    """Linear layers whose singular values are chosen: W = U diag(s) V^T with random orthogonal U, V."""

    def __init__(self, spectra: dict[str, tuple[tuple[int, int], np.ndarray]]):
        super().__init__()
        rng = np.random.default_rng(0)
        for name, ((m, n), s) in spectra.items():
            U, _ = np.linalg.qr(rng.standard_normal((m, m)))
            V, _ = np.linalg.qr(rng.standard_normal((n, n)))
            W = U[:, : len(s)] @ np.diag(s) @ V[:, : len(s)].T
            layer = torch.nn.Linear(n, m, bias=False)
            layer.weight.data = torch.tensor(W, dtype=torch.float32)
            setattr(self, name, layer)


def test_metrics_on_known_spectra():
    flat = np.full(20, 3.0)
    decaying = np.array([4.0, 2.0, 1.0, 1.0] + [0.0] * 16)
    model = _Known({"flat": ((40, 20), flat), "decay": ((20, 30), decaying[:20])})
    spectra = compute_weight_spectra(model)
    f, d = spectra.index("flat"), spectra.index("decay")
    # Equal singular values: every rank is the full rank, condition number 1.
    assert spectra.stable_rank[f] == pytest.approx(20, rel=1e-5)
    assert spectra.effective_rank[f] == pytest.approx(20, rel=1e-5)
    assert spectra.condition_number[f] == pytest.approx(1, rel=1e-5)
    assert spectra.k90[f] == 18 and spectra.k99[f] == 20  # ceil(0.9 * 20), ceil(0.99 * 20)
    # sigma = (4, 2, 1, 1, 0...): stable rank 22/16; effective rank exp(H(p)), p = (4, 2, 1, 1)/8.
    p = np.array([4, 2, 1, 1]) / 8
    assert spectra.stable_rank[d] == pytest.approx(22 / 16, rel=1e-5)
    assert spectra.effective_rank[d] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-5)
    assert spectra.numerical_rank[d] == 4
    assert spectra.condition_number[d] == pytest.approx(4, rel=1e-4)
    assert spectra.k90[d] == 2  # (16 + 4) / 22 = 0.909
    assert spectra.k99[d] == 4


def test_mp_edge_and_spikes_against_numpy(load):
    model = load("tiny-bert").model
    spectra = compute_weight_spectra(model)
    for i, m in enumerate(weight_matrices(model)):
        W = m.weight.detach().double().numpy()
        big, small = max(W.shape), min(W.shape)
        lam = np.linalg.eigvalsh((W.T @ W if W.shape[0] >= W.shape[1] else W @ W.T) / big)
        edge = np.mean(W**2) * (1 + np.sqrt(small / big)) ** 2
        # The edge scales mean(W^2), here sum(sigma^2) / (m n) from the Gram eigenvalues: the trace of the formed
        # W^T W, off by n delta at most (delta = 2 c n eps ||W||^2), against a sum of m n squares.
        delta = 2 * symmetric_tolerance(W) * np.linalg.norm(W, 2)
        rel = small * delta / np.sum(W**2) + sum_rtol(W.size)
        assert spectra.mp_edge[i] == pytest.approx(edge, rel=rel)
        np.testing.assert_allclose(np.sort(spectra.esd(i)), lam, rtol=0, atol=2 * delta / big)  # Weyl, both
        # A count: no eigenvalue of these weights lies within rounding (~1e-13 relative) of the edge, so the
        # 1e-9 only states which side an exact tie would count on.
        assert spectra.n_spikes[i] == (lam > edge * (1 + 1e-9)).sum()


def test_progress_is_monotone_and_finishes(load, cache_home):
    seen = []
    weight_spectra(load("tiny-llama").model, progress=lambda f, msg: seen.append((f, msg)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] < 1.0
    assert all(isinstance(msg, str) and msg for _, msg in seen)


def test_disk_cache_round_trip(load, cache_home, monkeypatch):
    model = load("tiny-gpt2").model
    first = weight_spectra(model)
    assert not first.from_cache
    path = WeightSpectraSpec(first.fingerprint, "gram").entry.path
    assert path.is_file() and str(cache_home) in str(path)
    assert weight_spectra(model) is first  # the same process: the task's result in memory
    restart_tasks(monkeypatch)
    second = weight_spectra(model)
    assert second.from_cache and second.names == first.names and second.kinds == first.kinds
    for a, b in zip(first.sigma, second.sigma, strict=True):
        np.testing.assert_array_equal(a, b)
    for key in METRICS:
        np.testing.assert_array_equal(first.metric(key), second.metric(key))
    np.testing.assert_array_equal(first.layers, second.layers)
    assert not second.sigma[0].flags.writeable


def test_corrupt_cache_file_is_recomputed(load, cache_home, monkeypatch):
    model = load("tiny-bert").model
    first = weight_spectra(model)
    WeightSpectraSpec(first.fingerprint, "gram").entry.path.write_bytes(b"not a safetensors file")
    restart_tasks(monkeypatch)
    again = weight_spectra(model)
    assert not again.from_cache
    np.testing.assert_array_equal(again.sigma[3], first.sigma[3])


def test_fingerprint_changes_with_any_weight(load):
    model = load("tiny-llama").model
    base = model_fingerprint(model)
    assert model_fingerprint(model) == base
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.model.layers[1].mlp.down_proj.weight[3, 5] += 1e-3  # one entry, not on the sample grid
    assert model_fingerprint(changed) != base
    assert model_fingerprint(load("tiny-gpt2").model) != base


def test_unknown_method_is_rejected(load):
    with pytest.raises(ValueError, match="method"):
        compute_weight_spectra(load("tiny-gpt2").model, method="qr")
