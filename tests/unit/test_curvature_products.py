"""The two ways CurvatureOperator takes a product (METHODS) against each other and against exact matrices.

- forward-mode (Hessian: jvp over grad; Gauss-Newton: one JVP of the scores, the closed-form softmax
  cross-entropy Hessian, one VJP) equals double backward on the tiny models in their own float32 and in float64;
- both equal the exact Hessian (torch.autograd.functional.hessian) of small blocks;
- both Gauss-Newton products equal J^T H_ce J built explicitly from the Jacobian of the scores, which is PSD.

Tolerances. A product (A v)_i = sum_j A_ij v_j evaluated by any backward-stable sequence of operations is off by
at most gamma_n (|A| |v|)_i, so normwise by gamma_n ||A||_F ||v||, with n the parameter count (the length of the
sum); with independent, zero-mean rounding errors gamma_n = lam sqrt(n) eps (Higham & Mary 2019:
``probabilistic_sum_rtol``). Two methods each carry that error, so they may differ by twice it. ||A||_F is
estimated by Hutchinson on A^2: E ||A z||^2 = ||A||_F^2 for Rademacher z (``_frobenius``), and taken at twice the
estimate (three probes of a sum of n squares are within a factor of 2 here: the spread is reported on failure).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from explorer.analysis import curvature as C
from explorer.errors import InputError
from explorer.spectra.curvature import rademacher, seeded_generator
from tests.conftest import SAMPLE_TEXT, TINY_IDS, get_model
from tests.tolerances import probabilistic_sum_rtol
from tests.unit.test_curvature import _precision, _small_block

F64 = torch.float64


def _spec(loaded):
    # Encoders: 16 tokens per sentence keep the 32-sentence contrastive loss cheap.
    return C.make_loss(loaded, SAMPLE_TEXT, max_tokens=128 if loaded.causal else 16)


def _frobenius(op: C.CurvatureOperator, probes: int = 3) -> float:
    """An estimate of ||A||_F: sqrt(mean ||A z||^2) over Rademacher probes z."""
    gen = seeded_generator("cpu", 5)
    squares = [float(op(rademacher(op.n, dtype=op.dtype, device="cpu", generator=gen)).double().norm() ** 2)
               for _ in range(probes)]  # fmt: skip
    return float(np.sqrt(np.mean(squares)))


def _methods(model, spec, block, kind):
    return [C.CurvatureOperator(model, spec, block, kind, method) for method in C.METHODS]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("kind", C.KINDS)
@pytest.mark.parametrize("model_id", TINY_IDS)
def test_forward_mode_equals_double_backward(model_id, kind, dtype):
    """Every parameter of the model (the largest block), at the model's float32 and in float64."""
    loaded = get_model(model_id)
    model = copy.deepcopy(loaded.model).to(dtype)
    block = C.select_block(model, "all")
    slow, fast = _methods(model, _spec(loaded), block, kind)
    assert fast.loss == slow.loss  # the same forward
    v = rademacher(block.n_params, dtype=dtype, device="cpu", generator=seeded_generator("cpu", 1))
    a, b = slow(v).double(), fast(v).double()
    # tiny-llama's RMSNorm computes in float32 whatever the model's dtype (test_curvature's _precision)
    eps_dtype = np.float32 if dtype == torch.float32 or model_id == "tiny-llama" else np.float64
    frob = _frobenius(slow)
    tol = 2 * probabilistic_sum_rtol(block.n_params, dtype=eps_dtype) * 2 * frob * float(v.double().norm())
    assert float((a - b).norm()) <= tol, (float((a - b).norm()), tol, frob)
    # The same plain backward in both for Gauss-Newton (the Hessian's double backward keeps a graph).
    if kind == "gauss-newton":
        assert torch.equal(fast.gradient(), slow.gradient())


@pytest.fixture(scope="module", params=TINY_IDS)
def small(request):
    """(model id, float64 model copy, spec, small block, flat parameters, loss of flat parameters, exact H)."""
    loaded = get_model(request.param)
    model = copy.deepcopy(loaded.model).to(F64)
    spec = _spec(loaded)
    block = _small_block(model)
    params = dict(model.named_parameters())
    base = torch.cat([params[n].detach().reshape(-1) for n in block.names])
    numels = [params[n].numel() for n in block.names]

    def scores(flat):
        parts = [p.view(params[n].shape) for p, n in zip(flat.split(numels), block.names, strict=True)]
        return C.scores_and_targets(model, spec, dict(zip(block.names, parts, strict=True)))

    def loss(flat):
        return torch.nn.functional.cross_entropy(*scores(flat))

    H = torch.autograd.functional.hessian(loss, base).numpy()
    return request.param, model, spec, block, base, scores, H


def _columns(op: C.CurvatureOperator, count: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(V, A V): ``count`` random unit columns V of shape (n, count) and the operator's products."""
    V = torch.tensor(np.random.default_rng(21).standard_normal((op.n, count)), dtype=op.dtype)
    V /= V.norm(dim=0)
    return V.numpy(), torch.stack([op(V[:, i]) for i in range(count)], dim=1).numpy()


@pytest.mark.parametrize("method", C.METHODS)
def test_both_methods_are_the_exact_hessian_of_a_small_block(small, method):
    model_id, model, spec, block, _base, _scores, H = small
    op = C.CurvatureOperator(model, spec, block, "hessian", method)
    V, HV = _columns(op)
    # Each unit column: the rounding of ~1e3 float64 operations per entry, normwise (as test_curvature's
    # exact-Hessian test); float32 for tiny-llama's norm.
    np.testing.assert_allclose(HV, H @ V, rtol=0, atol=1e3 * _precision(model_id) * np.linalg.norm(H, 2))


@pytest.mark.parametrize("method", C.METHODS)
def test_gauss_newton_is_j_transpose_h_ce_j_and_psd(small, method):
    """G = J^T H_ce J with J = dz/dtheta the Jacobian of the scores (rows, classes) and H_ce the mean softmax
    cross-entropy Hessian, block-diagonal over rows: (diag(p_r) - p_r p_r^T) / rows. Built explicitly here; the
    operator's products equal G's; G is PSD (eigenvalues >= 0 up to Weyl's bound on its rounding) and so are the
    operator's quadratic forms (the 4 x 4 projection V^T G V)."""
    model_id, model, spec, block, base, scores, _H = small
    z, _y = scores(base)
    rows, classes = z.shape
    J = torch.autograd.functional.jacobian(lambda flat: scores(flat)[0], base).reshape(rows, classes, -1)
    p = torch.softmax(z.detach(), dim=-1)
    Hce = (torch.diag_embed(p) - p[:, :, None] * p[:, None, :]) / rows  # (rows, classes, classes)
    G = torch.einsum("rcn,rcd,rdm->nm", J, Hce, J).numpy()
    op = C.CurvatureOperator(model, spec, block, "gauss-newton", method)
    V, GV = _columns(op)
    atol = 1e3 * _precision(model_id) * np.linalg.norm(G, 2)
    np.testing.assert_allclose(GV, G @ V, rtol=0, atol=atol)
    assert np.linalg.eigvalsh(G).min() >= -atol
    projected = V.T @ GV
    np.testing.assert_allclose(projected, projected.T, rtol=0, atol=atol)
    assert np.linalg.eigvalsh((projected + projected.T) / 2).min() >= -atol


def test_an_unknown_method_is_refused_with_the_choices():
    loaded = get_model("tiny-gpt2")
    spec = _spec(loaded)
    block = C.select_block(loaded.model, "layer:0")
    with pytest.raises(InputError, match="forward-mode"):
        C.CurvatureOperator(loaded.model, spec, block, "hessian", "finite-differences")
