"""The Learn page's maths, checked against numpy/scipy and theorems (never against numbers from the code itself)."""

import numpy as np
import pytest
import scipy.linalg

from explorer.analysis import teaching
from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.models import capture
from tests.conftest import SAMPLE_TEXT
from tests.tolerances import (
    assert_eigvals_close,
    backward_error,
    defective_eigenvalue_tolerance,
    eig_tolerances,
    perron_root_tolerance,
    subspace_tolerance,
    sum_rtol,
    symmetric_tolerance,
    trace_tolerance,
)

RNG = np.random.default_rng(1234)


def _sorted(z):
    """Order complex numbers canonically for comparison (real part, then imaginary part)."""
    z = np.asarray(z, dtype=np.complex128)
    return z[np.lexsort((np.round(z.imag, 9), np.round(z.real, 9)))]


def _eig_tol_2x2(M, kind):
    """Error a computed eigenvalue of the 2x2 M may carry: kappa c n eps ||M||, or, for a double eigenvalue
    (kappa infinite), the sqrt(c n eps) ||M|| a Jordan block splits into."""
    if kind == "defective":
        return defective_eigenvalue_tolerance(M)
    return float(eig_tolerances(M)[1].max())


def _gd_tol(res, t):
    """Error of x_t = (I - eta H)^t x0 however it is formed (normwise, one side): t matrix-vector products
    (t + 1) c n eps ||step||; or through eigh(H), whose eigenvectors turn by ||E|| / gap (Davis-Kahan) and whose
    eigenvalues move by ||E|| (Weyl), which moves (1 - eta lambda)^t by t eta ||E|| / |1 - eta lambda| relative.
    All scaled by max(1, ||step||)^t ||x0||."""
    H, x0 = res.hessian, res.x0
    step = np.eye(2) - res.eta * H
    lam = np.linalg.eigvalsh(H)
    products = (t + 1) * backward_error(step)
    spectral = (
        2 * subspace_tolerance(H, gap=abs(lam[1] - lam[0]))
        + t * res.eta * symmetric_tolerance(H) / np.abs(1 - res.eta * lam).min()
    )
    return (products + spectral) * max(1.0, np.linalg.norm(step, 2)) ** t * np.linalg.norm(x0)


def _softmax(S):
    S = S - S.max(axis=1, keepdims=True)
    E = np.exp(S)
    return E / E.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------- 2x2

EXPECTED_KIND = {
    "rotation": "complex",
    "shear": "defective",
    "symmetric": "distinct",
    "projection": "distinct",
    "reflection": "distinct",
    "jordan": "defective",
    "stochastic": "distinct",
}


@pytest.mark.parametrize("name", list(teaching.PRESETS_2X2))
def test_presets_eigen_decomposition(name):
    M = np.array(teaching.PRESETS_2X2[name][1])
    res = teaching.plane_2x2(M)
    assert res.kind == EXPECTED_KIND[name]
    # Both sides carry error (geev, or the exact double eigenvalue trace / 2 against geev's split pair); np.roots
    # solves the companion matrix, which has its own conditioning.
    tol = _eig_tol_2x2(M, res.kind)
    companion = np.array([[res.trace, -res.det], [1.0, 0.0]])
    np.testing.assert_allclose(_sorted(res.eigvals), _sorted(np.linalg.eigvals(M)), rtol=0, atol=2 * tol)
    np.testing.assert_allclose(
        _sorted(np.roots(res.charpoly)),
        _sorted(np.linalg.eigvals(M)),
        rtol=0,
        atol=tol + _eig_tol_2x2(companion, res.kind),
    )
    assert res.trace == np.trace(M) and res.det == np.linalg.det(M)  # exact: the same calls on the same M
    # The eigenvalues are those of M + E (backward stable): their sum is trace(M + E), within trace_tolerance.
    assert res.eigvals.sum() == pytest.approx(np.trace(M), rel=0, abs=trace_tolerance(M))
    # Their product is det(M + E): off by ~2 ||M|| ||E|| ~ 1e-14 for these O(1) presets, inside the default
    # (rel 1e-6, abs 1e-12); a repeated eigenvalue is trace / 2, its square det up to plane_2x2's 1e-9 disc cut.
    assert res.eigvals.prod() == pytest.approx(np.linalg.det(M))
    for v, lam in zip(res.eigvecs, res.eigvec_values, strict=True):
        assert np.linalg.norm(v) == pytest.approx(1.0)  # a unit null vector (SVD): norm 1 to a few eps
        # A unit null vector of M - lambda I: residual <= |lambda error| + SVD backward error. For a Jordan block
        # lambda = trace / 2 is exact up to rounding and sigma_min(M - lambda I) ~ (rounding)^2.
        lam_error = 0.0 if res.kind == "defective" else float(eig_tolerances(M)[1].max())
        np.testing.assert_allclose(M @ v, lam * v, rtol=0, atol=lam_error + backward_error(M))
    expected_vectors = {"complex": 0, "defective": 1, "distinct": 2}[res.kind]
    assert len(res.eigvecs) == expected_vectors


def test_preset_label_finds_the_preset_up_to_rounding():
    for label, matrix in teaching.PRESETS_2X2.values():
        assert teaching.preset_label(np.asarray(matrix) + 1e-12) == label
    assert teaching.preset_label([[2.0, 0.0], [0.0, 3.0]]) is None


def test_preset_facts():
    rot = teaching.plane_2x2(teaching.PRESETS_2X2["rotation"][1])
    # normal: kappa = 1, so |lambda| = 1 to c n eps ||M|| ~ 1e-14
    np.testing.assert_allclose(np.abs(rot.eigvals), 1.0)  # a rotation keeps lengths
    sto = teaching.plane_2x2(teaching.PRESETS_2X2["stochastic"][1])
    assert sto.eigvec_values[0] == pytest.approx(1.0, rel=0, abs=perron_root_tolerance(sto.matrix))
    # simple eigenvalue 1 (gap 0.5, kappa 1.2): the null vector is off by ~c n eps
    np.testing.assert_allclose(np.abs(sto.eigvecs[0]), [2**-0.5, 2**-0.5])  # the all-ones direction
    sym = teaching.plane_2x2(teaching.PRESETS_2X2["symmetric"][1])
    # Orthogonal eigenvectors; each computed one turns by at most ||E|| / gap (Davis-Kahan), gap = 3 - 1.
    assert abs(sym.eigvecs[0] @ sym.eigvecs[1]) <= 2 * subspace_tolerance(sym.matrix, gap=2.0)
    proj = teaching.plane_2x2(teaching.PRESETS_2X2["projection"][1])
    assert proj.det == pytest.approx(0.0)  # 0.25 - 0.25: exact in binary
    assert proj.singular_values[1] == pytest.approx(0.0, abs=symmetric_tolerance(proj.matrix))  # Weyl


def test_scalar_and_random_matrices():
    scalar = teaching.plane_2x2([[1.5, 0], [0, 1.5]])
    assert scalar.kind == "scalar" and len(scalar.eigvecs) == 2
    for _ in range(20):
        M = RNG.normal(size=(2, 2))
        res = teaching.plane_2x2(M)
        assert_eigvals_close(res.eigvals, M)
        assert res.kind == ("complex" if np.trace(M) ** 2 < 4 * np.linalg.det(M) else "distinct")
        # Weyl, two LAPACKs
        np.testing.assert_allclose(
            res.singular_values, scipy.linalg.svdvals(M), rtol=0, atol=2 * symmetric_tolerance(M)
        )
        np.testing.assert_array_equal(res.circle_image, M @ res.circle)  # exact: the same product
        np.testing.assert_array_equal(res.grid_image[3], M @ res.grid[3])  # exact: the same product
        # The unit circle maps to an ellipse with semi-axes sigma_1, sigma_2.
        radii = np.linalg.norm(teaching.plane_2x2(M, circle_points=20001).circle_image, axis=0)
        assert radii.max() == pytest.approx(res.singular_values[0], rel=1e-6)
        assert radii.min() == pytest.approx(res.singular_values[1], abs=1e-6 * res.singular_values[0])


# ------------------------------------------------------------------------------------- power iteration


@pytest.mark.parametrize("ratio", [0.3, 0.8, 0.95])
def test_example_symmetric_spectrum(ratio):
    S = teaching.example_symmetric(40, ratio)
    np.testing.assert_array_equal(S, S.T)  # exact: (S + S^T) / 2 is symmetric in floating point
    w = np.linalg.eigvalsh(S)
    tol = 2 * symmetric_tolerance(S)  # Weyl: rounding in building S, then eigvalsh
    assert w[-1] == pytest.approx(1.0, rel=0, abs=tol) and w[-2] == pytest.approx(ratio, rel=0, abs=tol)
    assert np.abs(w[:-1]).max() == pytest.approx(ratio, rel=0, abs=tol)


@pytest.mark.parametrize("ratio", [0.5, 0.8, 0.95])
def test_power_iteration_obeys_the_symmetric_bounds(ratio):
    S = teaching.example_symmetric(40, ratio)
    res = teaching.power_iteration(S, 300)
    # |lambda_2 / lambda_1|, Weyl on both
    assert res.symmetric and res.rate == pytest.approx(ratio, rel=0, abs=4 * symmetric_tolerance(S))
    assert res.lambda1 == pytest.approx(np.linalg.eigvalsh(S)[-1], rel=0, abs=2 * symmetric_tolerance(S))
    # x^T S x of unit x, two summation orders: c n^2 eps sum |S_ij| per side
    rq_tol = 2 * sum_rtol(S.size) * np.abs(S).sum()
    np.testing.assert_allclose(
        res.rayleigh, np.einsum("ki,ij,kj->k", res.iterates, S, res.iterates), rtol=0, atol=rq_tol
    )
    # Golub & Van Loan 8.2.1: tan theta_k <= rate^k tan theta_0 and the Rayleigh bound with rate^(2k).
    # Slack: the bound lines are products of k factors (relative rounding k eps < 1e-9); past convergence the
    # errors stop at their rounding floors, the Davis-Kahan angle ||E|| / gap of the computed v1 and iterates
    # (both sides) and Weyl's c n eps ||S|| for the Rayleigh quotient and lambda_1 (both sides).
    angle_floor = 2 * subspace_tolerance(S, gap=1 - ratio)
    assert np.all(res.tan_angle <= res.vector_line * (1 + 1e-9) + angle_floor)
    assert np.all(res.value_error <= res.value_line * (1 + 1e-9) + 2 * symmetric_tolerance(S))
    # The observed asymptotic rate is |lambda2/lambda1| (eigenvector) and its square (Rayleigh quotient).
    # (Read where the error is ~1e-6 for the vector, ~1e-12 for r_k: past the transient, above rounding noise.)
    k = int(np.log(1e-6) / np.log(ratio))
    assert res.tan_angle[k + 1] / res.tan_angle[k] == pytest.approx(ratio, rel=1e-2)
    k = int(np.log(1e-12) / np.log(ratio**2))
    assert res.value_error[k + 1] / res.value_error[k] == pytest.approx(ratio**2, rel=3e-2)
    # The iterates are unit vectors and v1 is the top eigenvector of eigh.
    # Normalised every step: 1 to a few eps.
    np.testing.assert_allclose(np.linalg.norm(res.iterates, axis=1), 1.0)
    top = np.linalg.eigh(S)[1][:, -1]
    # 1 - |cos| <= theta^2 / 2, theta by Davis-Kahan (both sides, gap 1 - ratio), plus the dot product's rounding
    cos_tol = (2 * subspace_tolerance(S, gap=1 - ratio)) ** 2 + 2 * sum_rtol(len(S))
    assert abs(top @ res.v1) == pytest.approx(1.0, rel=0, abs=cos_tol)


def _attention(loaded, text=SAMPLE_TEXT):
    return capture(loaded, text).attentions


def _check_attention_power(A, causal):
    A = A.astype(np.float64)
    res = teaching.power_iteration(A.T, 200)
    assert not res.symmetric
    assert res.lambda1 == pytest.approx(1.0, abs=1e-5)  # Perron root of a row-stochastic matrix
    np.testing.assert_allclose(_sorted(res.eigvals), _sorted(np.linalg.eigvals(A.T)), atol=1e-6)
    if causal:  # lower-triangular: the eigenvalues are the diagonal
        np.testing.assert_allclose(np.sort(np.abs(res.eigvals)), np.sort(np.abs(np.diag(A))), atol=1e-6)
        np.testing.assert_allclose(
            np.abs(res.v1), np.eye(len(A))[0], atol=1e-6
        )  # everything flows to token 0
    # v1 is the stationary distribution: pi A = pi.
    pi = res.v1 / res.v1.sum()
    np.testing.assert_allclose(pi @ A, pi, atol=1e-6)
    if res.rate < 0.85:  # converged after 200 steps
        assert res.tan_angle[-1] < 1e-6 and res.rayleigh[-1] == pytest.approx(1.0, abs=1e-6)


def test_power_iteration_on_tiny_heads(tiny_model):
    att = _attention(tiny_model)
    for layer, head in [(0, 0), (1, 3)]:
        _check_attention_power(att[layer, head], tiny_model.causal)


def test_power_iteration_rejects_tiny_matrices():
    with pytest.raises(ValueError):
        teaching.power_iteration(np.ones((1, 1)), 3)


# -------------------------------------------------------------------------------------------- Lanczos


def test_lanczos_full_run_reproduces_the_spectrum():
    S = teaching.example_symmetric(30, 0.9)
    run = teaching.lanczos(S, 30)
    w = np.linalg.eigvalsh(S)
    # A full run with full reorthogonalization is backward stable: T = Q^T (S + E) Q with Q orthonormal to c n eps.
    tol = 2 * symmetric_tolerance(S)  # Weyl, both sides
    np.testing.assert_allclose(run.ritz[-1], w, rtol=0, atol=tol)
    Q = run.basis
    np.testing.assert_allclose(Q.T @ Q, np.eye(run.steps), rtol=0, atol=backward_error(np.eye(run.steps)))
    T = np.diag(run.alpha) + np.diag(run.beta, 1) + np.diag(run.beta, -1)
    np.testing.assert_allclose(Q.T @ S @ Q, T, rtol=0, atol=backward_error(S))
    np.testing.assert_array_equal(run.eigvals, w)  # the same eigvalsh call on the same S
    np.testing.assert_allclose(run.eigsh_largest, w[-3:], rtol=0, atol=tol)  # ARPACK to tol = eps
    np.testing.assert_allclose(run.eigsh_smallest, w[:3], rtol=0, atol=tol)


def _check_interlacing(run, S):
    lo, hi = run.eigvals[0], run.eigvals[-1]
    # T_j is exactly the leading block of T_(j+1), so interlacing holds for the computed alphas and betas up to
    # eigvalsh_tridiagonal's rounding (Weyl, c n eps ||T|| with ||T|| <= ||S||), on both sides.
    tol = 2 * symmetric_tolerance(S)
    for j in range(1, run.steps):
        prev, cur = run.ritz[j - 1, :j], run.ritz[j, : j + 1]
        assert np.all(cur[:-1] <= prev + tol) and np.all(prev <= cur[1:] + tol)  # Cauchy interlacing
        assert cur[0] >= lo - tol and cur[-1] <= hi + tol


def test_lanczos_ritz_values_interlace_and_converge_fast():
    S = teaching.example_symmetric(200, 0.99, seed=3)
    run = teaching.lanczos(S, 40)
    _check_interlacing(run, S)
    # Power iteration needs ~log(1e-8)/log(0.99^2) ~ 900 steps for this accuracy on lambda_1; Lanczos far fewer.
    # A convergence claim, not rounding (which is c n eps ~ 4e-13): 1e-8 is the accuracy stated above.
    assert abs(run.ritz[39, 39] - 1.0) < 1e-8


def test_largest_ritz_value_is_the_top_eigenvalue_of_the_tridiagonal():
    S = teaching.example_symmetric(30, 0.9)
    run = teaching.lanczos(S, 12)
    for m in (1, 5, run.steps):
        T = np.diag(run.alpha[:m]) + np.diag(run.beta[: m - 1], 1) + np.diag(run.beta[: m - 1], -1)
        # Two eigensolvers (eigvalsh_tridiagonal vs eigvalsh) on the same symmetric T: Weyl, both sides.
        assert run.largest_ritz(m) == pytest.approx(np.linalg.eigvalsh(T)[-1], abs=2 * symmetric_tolerance(T))


def test_lanczos_on_attention_heads(tiny_model):
    att = _attention(tiny_model)
    S = teaching.symmetric_part(att[1, 0])
    run = teaching.lanczos(S, 40)
    _check_interlacing(run, S)
    # run.eigvals is the same eigvalsh call on the same S: equal up to nothing.
    np.testing.assert_array_equal(run.eigvals, np.linalg.eigvalsh(S))
    # Convergence of the top Ritz value in 40 steps (exact once steps = n), not rounding (c n eps ~ 1e-13).
    assert run.ritz[run.steps - 1, run.steps - 1] == pytest.approx(run.eigsh_largest[-1], abs=1e-8)


# -------------------------------------------------------------------------------------- gradient descent


@pytest.mark.parametrize(
    ("l1", "l2", "eta"), [(4.0, 0.5, 0.3), (10.0, 0.1, 0.15), (1.0, 3.0, 0.7), (4.0, 0.5, 0.52)]
)
def test_gd_iterates_match_the_closed_form(l1, l2, eta):
    res = teaching.gradient_descent(l1, l2, eta, steps=40)
    # Weyl: H = V diag V^T rounded, then eigvalsh
    np.testing.assert_allclose(
        np.linalg.eigvalsh(res.hessian), sorted([l1, l2]), rtol=0, atol=2 * symmetric_tolerance(res.hessian)
    )
    step = np.eye(2) - eta * res.hessian
    for t in (0, 1, 7, 40):
        expected = np.linalg.matrix_power(step, t) @ res.x0
        tol = 2 * _gd_tol(res, t)  # both sides
        np.testing.assert_allclose(res.iterates[t], expected, rtol=0, atol=tol)
        np.testing.assert_allclose(res.closed_form[t], expected, rtol=0, atol=tol)
    # Each eigen-coordinate is multiplied by (1 - eta lambda_i) per step.
    lam, V = np.linalg.eigh(res.hessian)
    c0 = V.T @ res.x0
    for i in range(2):
        coord = res.iterates @ V[:, i]
        np.testing.assert_allclose(
            np.abs(coord),
            np.abs(c0[i] * (1 - eta * lam[i]) ** np.arange(41)),
            rtol=0,
            atol=2 * _gd_tol(res, 40),
        )
    # a positive definite quadratic form: relative error c n eps cond(H) <= 1e-12 (cond <= 100 here)
    np.testing.assert_allclose(
        res.loss, 0.5 * np.einsum("ti,ij,tj->t", res.iterates, res.hessian, res.iterates)
    )


def test_gd_divergence_threshold_and_optimal_step():
    l1, l2 = 4.0, 0.5
    base = teaching.gradient_descent(l1, l2, 0.1)
    assert base.eta_max == 2 / 4.0 and base.eta_opt == 2 / 4.5  # exact: the same divisions
    below = teaching.gradient_descent(l1, l2, 0.99 * base.eta_max, steps=3000)
    above = teaching.gradient_descent(l1, l2, 1.01 * base.eta_max, steps=300)
    assert not below.diverges and np.linalg.norm(below.iterates[-1]) < 1e-6
    # f decreases monotonically below 2/lambda_max: by a factor <= 0.98^2 per step, far above its relative
    # rounding (n eps); the slack only absorbs exact ties once f underflows towards 0.
    assert np.all(np.diff(below.loss) <= 1e-15)
    assert above.diverges and np.linalg.norm(above.iterates[-1]) > 1e2 * np.linalg.norm(above.x0)
    # The optimal step minimises max_i |1 - eta lambda_i|, with value (kappa - 1) / (kappa + 1).
    etas = np.linspace(1e-4, base.eta_max, 20001)
    rates = np.abs(1 - etas[:, None] * np.array([l1, l2])).max(axis=1)
    assert etas[np.argmin(rates)] == pytest.approx(base.eta_opt, abs=1e-3)
    best = teaching.gradient_descent(l1, l2, base.eta_opt)
    # No step on a fine grid does better (|1 - eta lambda| of O(1) numbers: rounding ~2 eps).
    assert best.rate <= rates.min() + 1e-12
    # rate: |1 - eta lambda| of O(1) numbers; rate_opt: the same (8 - 1) / (8 + 1)
    assert best.rate == pytest.approx(7 / 9, rel=sum_rtol(2)) and best.rate_opt == 7 / 9


@pytest.mark.parametrize(("l1", "l2"), [(4.0, 0.5), (0.5, 4.0), (10.0, 0.1), (2.0, 2.0)])
def test_gd_step_range_brackets_the_threshold(l1, l2):
    steps = teaching.gd_step_range(l1, l2)
    lam_max, lam_min = max(l1, l2), min(l1, l2)
    # The theorem: GD on the quadratic converges iff |1 - eta lambda_i| < 1 for both curvatures, i.e. eta < 2 /
    # lam_max. The range's threshold is where |1 - eta lam_max| = 1 (two O(1) numbers: rounding ~2 eps).
    assert abs(1 - steps.eta_max * lam_max) == pytest.approx(1.0, rel=sum_rtol(2))
    assert steps.eta_max == teaching.gradient_descent(l1, l2, 0.01).eta_max  # one definition for both
    # The optimal step balances the two factors: |1 - eta lam_max| = |1 - eta lam_min|.
    assert abs(1 - steps.eta_opt * lam_max) == pytest.approx(
        abs(1 - steps.eta_opt * lam_min), abs=sum_rtol(2)
    )
    # "Just past" diverges, the whole range shows both sides of 2/lam_max, and its resolution resolves eta*.
    assert teaching.gradient_descent(l1, l2, steps.past).diverges
    assert not teaching.gradient_descent(l1, l2, steps.eta_opt).diverges
    assert steps.resolution <= steps.eta_opt < steps.eta_max < steps.past <= steps.high
    assert steps.high == pytest.approx(1.25 * 2 / lam_max, abs=5e-5)  # rounded to 4 decimals
    assert steps.resolution == pytest.approx(steps.high / 250, abs=5e-6)  # rounded to 5 decimals


def test_gd_rejects_non_positive_curvature():
    with pytest.raises(ValueError):
        teaching.gradient_descent(1.0, 0.0, 0.1)


# ------------------------------------------------------------------------------------------ temperature


def test_temperature_softmax_equals_softmax_of_scaled_scores():
    n = 12
    scores = RNG.normal(scale=3, size=(n, n))
    for causal in (False, True):
        masked = np.where(np.tril(np.ones((n, n), bool)) | (not causal), scores, -np.inf)
        A = _softmax(masked)
        for tau in (0.1, 0.5, 1.0, 3.0, 10.0):
            At = teaching.temperature_softmax(A, tau)
            # softmax is 1-Lipschitz (inf -> inf norm): error <= that of log(A) / tau ~ eps |log a| / tau < 1e-13.
            np.testing.assert_allclose(At, _softmax(masked / tau), atol=1e-12)
            np.testing.assert_allclose(At.sum(axis=1), 1.0, rtol=sum_rtol(n))  # normalised rows: c n eps
            if causal:
                assert np.all(np.triu(At, 1) == 0)  # masked entries stay exactly zero
        # exp(log a) = a to (1 + a |log a|) eps, renormalising n = 12 entries to n eps: < 3e-15.
        np.testing.assert_allclose(teaching.temperature_softmax(A, 1.0), A, atol=1e-14)


def test_temperature_limits():
    A = _softmax(RNG.normal(scale=2, size=(8, 8)))
    cold = teaching.temperature_softmax(A, 1e-3)
    # One-hot rows: a limit, not rounding. Off-argmax entries are (a_j / a_max)^1000 = exp(-1000 log-gap).
    np.testing.assert_allclose(cold, np.eye(8)[A.argmax(axis=1)], atol=1e-12)
    hot = teaching.temperature_softmax(A, 1e4)
    np.testing.assert_allclose(hot, np.full((8, 8), 1 / 8), atol=1e-3)  # uniform, rank 1
    assert sorted(np.abs(np.linalg.eigvals(hot)))[-2] < 1e-3
    with pytest.raises(ValueError):
        teaching.temperature_softmax(A, 0.0)


def _check_sweep(A, causal):
    sweep = teaching.temperature_sweep(A, causal=causal, taus=[0.1, 1.0, 10.0, 1e4], max_tokens=40)
    block = teaching.leading_tokens(A, sweep.n)
    # renormalised rows: c n eps
    np.testing.assert_allclose(block.sum(axis=1), 1.0, rtol=sum_rtol(len(block)))
    if causal:
        np.testing.assert_allclose(block, A[: sweep.n, : sweep.n], atol=1e-6)
    for i, tau in enumerate(sweep.taus):
        At = teaching.temperature_softmax(block, tau)
        # Attention matrices are non-normal: each eigenvalue may carry kappa(lambda) c n eps ||A_tau||.
        assert_eigvals_close(sweep.eigvals[i], At)
        # trace = sum of eigenvalues (well-conditioned even where the eigenvalues are not)
        assert sweep.eigvals[i].sum() == pytest.approx(np.trace(At), abs=trace_tolerance(At))
        assert np.abs(sweep.eigvals[i][0]) == pytest.approx(1.0, abs=perron_root_tolerance(At))  # Perron root
        if causal:  # triangular: the eigenvalues are exactly the (real) diagonal
            assert_eigvals_close(sweep.eigvals[i], At, expected=np.diag(At))
    if causal:  # tau -> infinity: uniform over i + 1 visible tokens, eigenvalues 1/(i+1)
        np.testing.assert_allclose(
            np.sort(sweep.eigvals[-1].real), np.sort(1 / np.arange(1, sweep.n + 1)), atol=1e-3
        )
    else:  # rank-1 uniform limit
        assert sweep.second_modulus[-1] < 1e-3
    assert sweep.entropy[-1] == pytest.approx(1.0, abs=1e-3)
    assert sweep.entropy[0] < sweep.entropy[1] < sweep.entropy[2]
    return sweep


def test_temperature_sweep_on_tiny_heads(tiny_model):
    att = _attention(tiny_model)
    _check_sweep(att[0, 1].astype(np.float64), tiny_model.causal)


def test_sweep_truncates_and_finds_frames():
    A = _softmax(RNG.normal(size=(50, 50)))
    sweep = teaching.temperature_sweep(A, causal=False, max_tokens=20)
    assert sweep.n == 20 and sweep.n_total == 50 and sweep.eigvals.shape == (25, 20)
    # np.logspace grid points: a few ulp
    assert sweep.taus[sweep.index_of(1.0)] == pytest.approx(1.0, rel=sum_rtol(1))
    assert sweep.taus[0] == pytest.approx(0.1, rel=sum_rtol(1)) and sweep.taus[-1] == pytest.approx(
        10.0, rel=sum_rtol(1)
    )


@pytest.mark.parametrize("value", [0.1, 0.3, 0.316, 0.5, 1.0, 3.3, 10.0, 0.01, 100.0])
def test_nearest_on_log_scale_is_the_closest_ratio(value):
    taus = teaching.default_taus()
    i = teaching.nearest_on_log_scale(taus, value)
    # Closest on a log scale = smallest max(tau / value, value / tau), compared in plain arithmetic.
    ratios = np.maximum(taus / value, value / taus)
    assert ratios[i] == ratios.min()
    assert teaching.temperature_sweep(np.eye(3), causal=False).index_of(value) == i


# ------------------------------------------------------------------------------------------ non-normal


@pytest.mark.parametrize(
    ("n", "rho", "coupling"), [(2, 0.9, 1.0), (6, 0.95, 1.0), (8, 1.05, 2.0), (5, 0.7, 0.3)]
)
def test_transient_growth_bounds_and_schur(n, rho, coupling):
    J = teaching.nonnormal_matrix(n, rho, coupling)
    res = teaching.transient_growth(J, steps=50)
    expected_eigs = rho * (1 - 0.4 * np.arange(n) / (n - 1))
    # Ill-conditioned by design (kappa up to 3e8 at n=8): the allowed error is kappa * c n eps ||J||.
    assert_eigvals_close(res.eigvals, J, expected=expected_eigs)
    # eig vs eigvals: kappa c n eps ||J||
    assert res.rho == pytest.approx(
        np.abs(np.linalg.eigvals(J)).max(), rel=0, abs=2 * eig_tolerances(J)[1].max()
    )
    for t in (0, 1, 5, 50):
        direct = np.linalg.norm(np.linalg.matrix_power(J, t), 2)
        assert res.norms[t] == pytest.approx(direct, rel=1e-6)  # rounding differs from repeated squaring
    # rho^t <= ||J^t|| <= kappa(V) rho^t: tight only at t = 0 (1 = ||I||, to 2-norm rounding n eps); 1e-9 slack.
    assert np.all(res.norms >= res.rho_powers * (1 - 1e-9))  # spectral radius <= any induced norm
    _, V = np.linalg.eig(J)
    # The same eig and cond calls on the same J: equal up to nothing.
    assert res.kappa_V == pytest.approx(np.linalg.cond(V), rel=1e-9)
    assert np.all(res.norms <= res.bound * (1 + 1e-9))  # ||V Lambda^t V^-1|| <= kappa(V) rho^t
    T, Q = res.schur_T, res.schur_Q
    # Schur is backward stable: Q T Q^T = J + E and Q^T Q = I + F with ||E||, ||F|| <= c n eps (||J||, 1).
    np.testing.assert_allclose(Q @ T @ Q.T, J, rtol=0, atol=backward_error(J))
    np.testing.assert_allclose(Q.T @ Q, np.eye(n), rtol=0, atol=backward_error(np.eye(n)))
    assert np.all(np.tril(T, -1) == 0)  # real eigenvalues: LAPACK returns T exactly upper triangular
    # The Schur diagonal is the computed eigenvalues: the same conditioning as above, not a fixed 1e-8.
    assert_eigvals_close(np.diag(T), J, expected=expected_eigs)
    # Henrici: ||N||_F^2 = ||J||_F^2 - sum |lambda|^2, and it is invariant: equal to coupling^2 (n - 1).
    # T is the Schur form of J + E: ||T||_F moves by sqrt(n) ||E|| and each diagonal entry by its eigenvalue
    # tolerance, so ||N||_F^2 may be off by 2 ||J||_F sqrt(n) ||E|| + 2 sum |lambda_i| tol_i.
    w, eig_tol = eig_tolerances(J)
    allowed = 2 * np.linalg.norm(J) * np.sqrt(n) * backward_error(J) + 2 * (np.abs(w) * eig_tol).sum()
    assert res.departure**2 == pytest.approx(
        np.linalg.norm(J) ** 2 - (np.abs(expected_eigs) ** 2).sum(), abs=allowed
    )
    # |d - d0| <= |d^2 - d0^2| / d0
    assert res.departure == pytest.approx(
        coupling * np.sqrt(n - 1), rel=0, abs=allowed / (coupling * np.sqrt(n - 1))
    )
    assert res.peak_norm == res.norms.max()  # exact: the largest of the same norms


def test_normal_case_has_no_transient():
    res = teaching.transient_growth(teaching.nonnormal_matrix(6, 0.9, 0.0), steps=30)
    J = teaching.nonnormal_matrix(6, 0.9, 0.0)
    # Normal: ||J^t|| = rho^t; the t products and the 2-norm carry relative t c n eps (< 1e-12 at t = 30).
    np.testing.assert_allclose(res.norms, res.rho_powers, rtol=1e-9)
    # V orthogonal to c n eps (eigenvalues 0.9 .. 0.54, gaps >= 0.07: Davis-Kahan), so cond(V) = 1 + O(1e-13).
    assert res.kappa_V == pytest.approx(1.0, abs=1e-9)
    # The strict upper Schur part of a symmetric J is rounding: ||E||_F <= sqrt(n) c n eps ||J||.
    assert res.departure == pytest.approx(0.0, abs=np.sqrt(6) * backward_error(J))
    assert res.peak_t == 0


def test_defective_matrix_has_infinite_kappa():
    res = teaching.transient_growth(np.array([[0.8, 1.0], [0.0, 0.8]]), steps=20)
    assert np.isinf(res.kappa_V)
    assert np.all(res.norms >= res.rho_powers * (1 - 1e-9))  # tight only at t = 0: ||I|| = 1 to n eps


# -------------------------------------------------------------------------------------------------- SVD


@pytest.mark.parametrize("k", [0, 1, 4, 17, 72])
def test_eckart_young_on_the_picture(k):
    W = teaching.image_matrix()
    assert W.shape == (72, 96) and W.min() >= 0 and W.max() <= 1
    factors = teaching.svd_factors(W)
    S = scipy.linalg.svdvals(W)
    sv_tol = 2 * symmetric_tolerance(W)  # Weyl: each singular value to c n eps ||W||, on both sides
    np.testing.assert_allclose(factors.S, S, rtol=0, atol=sv_tol)
    res = teaching.best_rank_k(factors, k)
    expected = np.sqrt((S[k:] ** 2).sum())
    # sqrt(sum of the dropped sigma_i^2): each sigma_i off by sv_tol moves it by at most sqrt(r) sv_tol (r dropped);
    # the residual W - W_k is formed from U, S, V^T, backward stable to c n eps ||W||.
    drop_tol = np.sqrt(len(S) - k) * sv_tol + backward_error(W) * np.sqrt(min(W.shape))
    assert res.error_fro == pytest.approx(expected, rel=0, abs=drop_tol)
    assert res.error_eckart_young == pytest.approx(expected, rel=0, abs=drop_tol)
    assert np.linalg.norm(res.residual, 2) == pytest.approx(S[k] if k < len(S) else 0.0, rel=0, abs=drop_tol)
    assert np.linalg.matrix_rank(res.approx) == min(k, np.linalg.matrix_rank(W))
    assert res.params_low == k * (72 + 96) and res.params_full == 72 * 96
    assert res.break_even == 72 * 96 / (72 + 96)  # exact: the same m n / (m + n)
    assert res.params_change == k * (72 + 96) / (72 * 96) - 1  # exact: the same division of integers
    energy = np.cumsum(S**2) / (S**2).sum()
    assert res.k90 == int(np.argmax(energy >= 0.9 - 1e-12) + 1)  # cumulative share: n eps from 0.9 is a tie
    np.testing.assert_allclose(res.errors_by_k[k], expected, rtol=0, atol=drop_tol)


def test_no_rank_k_matrix_beats_the_truncated_svd():
    W = RNG.normal(size=(30, 20))
    factors = teaching.svd_factors(W)
    k = 5
    best = teaching.best_rank_k(factors, k).error_fro
    for _ in range(50):
        other = teaching.svd_factors(W + 0.3 * RNG.normal(size=W.shape))
        candidate = (other.U[:, :k] * other.S[:k]) @ other.Vh[:k]
        assert np.linalg.norm(W - candidate) >= best - 2 * np.sqrt(min(W.shape)) * backward_error(W)
        random = RNG.normal(size=(30, k)) @ RNG.normal(size=(k, 20))
        assert np.linalg.norm(W - random) >= best


def test_pick_weight_is_a_copy(load):
    loaded = load("tiny-llama")
    before = weights_checksum(loaded.model)
    name, W = teaching.pick_weight(loaded.model, 1, "attn_k")
    ref = next(m for m in weight_matrices(loaded.model) if m.name == name)
    np.testing.assert_array_equal(W, ref.weight.double().numpy())
    assert W.shape == (32, 64)  # 2 KV heads x d_head 16, d_model 64: (out, in)
    W[:] = 0
    assert weights_checksum(loaded.model) == before
    with pytest.raises(ValueError):
        teaching.pick_weight(loaded.model, 99, "attn_q")


# ------------------------------------------------------------------------------------- embedded models


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["minilm-l6", "smollm2-135m"])
def test_walkthroughs_on_embedded_models(load, model_id):
    loaded = load(model_id)
    att = _attention(loaded)
    layer, head = loaded.card.n_layers // 2, 1
    A = att[layer, head].astype(np.float64)
    _check_attention_power(A, loaded.causal)
    run = teaching.lanczos(teaching.symmetric_part(A), 40)
    _check_interlacing(run, teaching.symmetric_part(A))
    # Convergence of the top Ritz value in 40 steps, not rounding (c n eps ~ 1e-13).
    assert run.ritz[run.steps - 1, run.steps - 1] == pytest.approx(run.eigsh_largest[-1], abs=1e-8)
    _check_sweep(A, loaded.causal)
    name, W = teaching.pick_weight(loaded.model, layer, "attn_q")
    res = teaching.best_rank_k(teaching.svd_factors(W), 32)
    S = scipy.linalg.svdvals(W)
    dropped = S[32:]
    sv_tol = 2 * symmetric_tolerance(W)  # Weyl on both sides, float64 (W is cast to float64)
    allowed = np.sqrt(dropped.size) * sv_tol + np.sqrt(min(W.shape)) * backward_error(W)
    assert res.error_fro == pytest.approx(np.sqrt((dropped**2).sum()), rel=0, abs=allowed)


def test_example_attention_is_a_causal_row_stochastic_head():
    A = teaching.example_attention(12, causal=True, seed=0)
    assert A.shape == (12, 12)
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=0, atol=12 * np.finfo(float).eps)
    assert np.all(np.triu(A, 1) == 0) and np.all(A[np.tril_indices(12)] > 0)
    # Causal: lower-triangular, so its eigenvalues are its diagonal (and lambda = 1 from the first token); geev
    # finds a triangular matrix already in Schur form (after balancing's permutation): the diagonal to rounding.
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(A).real), np.sort(np.diag(A)), atol=1e-12)
    assert A[0, 0] == 1.0
    B = teaching.example_attention(5, causal=False, seed=1)
    assert np.all(B > 0) and np.allclose(B.sum(axis=1), 1.0, rtol=0, atol=1e-15)
