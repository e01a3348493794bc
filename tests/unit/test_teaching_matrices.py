"""The matrix-theory walkthroughs' maths (explorer/analysis/teaching_matrices.py) against numpy, scipy,
scikit-learn and theorems, and their exercises: the right answer (computed here from the question's own numbers)
accepted, a wrong one refused, for many seeds."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.decomposition import PCA

from explorer.analysis import teaching_matrices as tm
from explorer.analysis.matrices import weight_matrices, weights_checksum
from explorer.spectra.quantization import fake_quantize
from tests.tolerances import (
    backward_error,
    eig_tolerances,
    eigenvalue_condition_numbers,
    eps,
    symmetric_tolerance,
)

SEEDS = range(1, 41)


def _random_symmetric(n: int, seed: int) -> np.ndarray:
    G = np.random.default_rng(seed).standard_normal((n, n))
    return (G + G.T) / 2


# ------------------------------------------------------------------------------------------------ charpoly


@pytest.mark.parametrize("delta", [0.05, 0.3, 1.0])
def test_powers_through_the_eigendecomposition_match_matrix_power(delta):
    A = tm.charpoly_matrix(delta)
    res = tm.diagonalise(A, kmax=20)
    # Eigenvalues: T's diagonal, by construction (A = P T P^-1).
    want, tol = eig_tolerances(A)
    np.testing.assert_allclose(np.sort(res.eigvals.real), np.sort([2.0, 2.0 + delta, 0.5]), atol=tol.max())
    np.testing.assert_allclose(res.charpoly, np.poly([2.0, 2.0 + delta, 0.5]), atol=1e-12)
    assert res.kappa_V == pytest.approx(np.linalg.cond(res.V))
    n = A.shape[0]
    for k in (1, 5, 20):
        Ak = np.linalg.matrix_power(A, k)
        approx = (res.V * res.eigvals**k) @ np.linalg.inv(res.V)
        err = np.linalg.norm(approx - Ak) / np.linalg.norm(Ak)
        # A^k through V: each of the k powers and the two solves lose about kappa(V) eps.
        bound = tm.SAFETY * k * n * res.kappa_V * eps()
        assert err <= bound
        assert res.powers[k - 1] == pytest.approx(err, rel=1e-6, abs=bound / 100)
    assert not res.defective
    assert [m.geometric for m in res.multiplicities] == [1, 1, 1]


def test_a_defective_matrix_has_one_eigenvector_for_its_double_root():
    A = tm.charpoly_matrix(0.0)
    res = tm.diagonalise(A)
    double = next(m for m in res.multiplicities if m.algebraic == 2)
    assert double.eigval.real == pytest.approx(
        2.0, abs=1e-6
    )  # a Jordan block's eigenvalue: split by ~sqrt(eps)
    assert double.geometric == 3 - np.linalg.matrix_rank(A - 2.0 * np.eye(3)) == 1
    assert res.defective
    assert res.kappa_V > 1e6  # the two eigenvectors for 2 are (numerically) parallel
    simple = next(m for m in res.multiplicities if m.algebraic == 1)
    assert simple.eigval.real == pytest.approx(0.5) and simple.geometric == 1


def test_ov_core_has_the_nonzero_eigenvalues_of_the_full_circuit():
    rng = np.random.default_rng(0)
    W_V, W_O = rng.standard_normal((16, 4)), rng.standard_normal((4, 16))
    core = tm.ov_core(W_V, W_O)
    assert core.shape == (4, 4)
    full = np.linalg.eigvals(W_V @ W_O)
    top = full[np.argsort(-np.abs(full))][:4]
    got = np.linalg.eigvals(core)
    assert np.abs(np.sort_complex(top) - np.sort_complex(got)).max() < 1e-10 * np.abs(full).max()


# ----------------------------------------------------------------------------------------------------- psd


@pytest.mark.parametrize(
    ("abc", "kind"),
    [
        ((2.0, 0.5, 1.0), "positive definite"),
        ((1.0, 1.0, 1.0), "positive semidefinite"),
        ((1.0, 2.0, 1.0), "indefinite"),
        ((-1.0, 0.0, -2.0), "negative definite"),
        ((0.0, 0.0, -1.0), "negative semidefinite"),
    ],
)
def test_quadratic_form_follows_the_spectral_theorem(abc, kind):
    form = tm.quadratic_form(*abc)
    S = form.matrix
    lam = np.linalg.eigvalsh(S)[::-1]
    np.testing.assert_allclose(form.eigvals, lam, atol=symmetric_tolerance(S))
    np.testing.assert_allclose(form.eigvecs.T @ form.eigvecs, np.eye(2), atol=1e-14)
    np.testing.assert_allclose((form.eigvecs * form.eigvals) @ form.eigvecs.T, S, atol=1e-14)
    assert form.kind == kind
    curve = tm.ellipse_points(form)
    if kind == "positive definite":
        np.testing.assert_allclose(np.einsum("ip,ij,jp->p", curve, S, curve), 1.0, atol=1e-13)
        np.testing.assert_allclose(form.half_axes, 1 / np.sqrt(lam), rtol=1e-14)
    else:
        assert curve is None


def test_hidden_covariance_is_psd_with_the_expected_zero_eigenvalues():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 50)) * 3 + 5
    res = tm.hidden_covariance(X)
    C = np.cov(X, rowvar=False)
    lam = np.sort(np.linalg.eigvalsh(C))[::-1]
    np.testing.assert_allclose(res.cov_eigvals, lam, atol=symmetric_tolerance(C))
    # Centred, 20 points span 19 directions: 50 - 19 eigenvalues are 0 (to rounding), and the Gram matrix has the
    # same 19 nonzero ones.
    assert res.rank_bound == 19 and res.n_zero == 31 and res.n_nonzero == 19
    assert res.min_eigval >= -res.zero_tol
    np.testing.assert_allclose(res.gram_eigvals[:19], lam[:19], atol=symmetric_tolerance(C))


def test_hidden_covariance_of_a_real_capture(load):
    from explorer.models import capture

    cap = capture(load("tiny-gpt2"), "The quick brown fox jumps over the lazy dog. Then the fox sleeps.")
    X = cap.hidden_states[1].astype(np.float64)
    res = tm.hidden_covariance(X)
    C = np.cov(X, rowvar=False)
    assert res.n_zero == X.shape[1] - np.linalg.matrix_rank(C, tol=res.zero_tol)
    assert res.min_eigval >= -res.zero_tol


def test_a_single_token_has_no_covariance():
    with pytest.raises(ValueError, match="two tokens"):
        tm.hidden_covariance(np.ones((1, 4)))


# ------------------------------------------------------------------------------------------------ rayleigh


def test_courant_fischer_values_against_eigh():
    S = tm.symmetric_with_eigvals([2.5, 1.0, -1.5])
    lam = np.sort(np.linalg.eigvalsh(S))[::-1]
    tol = symmetric_tolerance(S)
    mm = tm.min_max_curve(S)
    # lambda_2 = min over u of max_{x ⊥ u} r(x) = max over u of min_{x ⊥ u} r(x).
    assert mm.upper.min() == pytest.approx(lam[1], abs=tol)
    assert mm.lower.max() == pytest.approx(lam[1], abs=tol)
    assert np.all(mm.upper >= lam[1] - tol) and np.all(mm.lower <= lam[1] + tol)
    # ... for any direction u, not only those on the curve.
    for u in np.random.default_rng(2).standard_normal((50, 3)):
        top, bottom = tm.restricted_extremes(S, u)
        assert top >= lam[1] - tol and bottom <= lam[1] + tol
    sphere = tm.rayleigh_sphere(S)
    np.testing.assert_allclose(sphere.eigvals, lam, atol=tol)
    assert sphere.values.max() <= lam[0] + tol and sphere.values.min() >= lam[2] - tol
    for i in range(3):  # r at each eigenvector's (lon, lat) is its eigenvalue
        lon, lat = sphere.eig_lonlat[i]
        x = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
        assert tm.rayleigh(S, x) == pytest.approx(lam[i], abs=tol)


@pytest.mark.parametrize("dropped", [0, 7, 29])
def test_cauchy_interlacing(dropped):
    S = _random_symmetric(30, 3)
    res = tm.interlacing(S, dropped)
    lam = np.sort(np.linalg.eigvalsh(S))[::-1]
    keep = [i for i in range(30) if i != dropped]
    mu = np.sort(np.linalg.eigvalsh(S[np.ix_(keep, keep)]))[::-1]
    tol = symmetric_tolerance(S)
    np.testing.assert_allclose(res.eigvals, lam, atol=tol)
    np.testing.assert_allclose(res.sub_eigvals, mu, atol=tol)
    assert np.all(lam[:-1] >= mu - tol) and np.all(mu >= lam[1:] - tol)
    assert res.holds and res.violations == 0


def test_interlacing_rejects_a_coordinate_out_of_range():
    with pytest.raises(ValueError, match="not in 0..2"):
        tm.interlacing(np.eye(3), 3)


# ----------------------------------------------------------------------------------------------------- pca


def _aligned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b's rows with their signs flipped to agree with a's."""
    return b * np.sign(np.sum(a * b, axis=1))[:, None]


@pytest.mark.parametrize("shape", [(40, 8), (12, 30)])
def test_pca_agrees_with_sklearn_and_the_svd(shape):
    rng = np.random.default_rng(4)
    X = rng.standard_normal(shape) @ np.diag(np.linspace(3, 0.2, shape[1])) + 7.0
    k = 5
    res = tm.pca_three_ways(X, k)
    ref = PCA(n_components=k, svd_solver="full").fit(X)
    Xc = X - X.mean(axis=0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    n = shape[0]
    scale = float(np.sum(Xc**2) / (n - 1))
    for route in res.routes.values():
        # Variances of a symmetric matrix's eigenvalues: Weyl, relative to the largest.
        np.testing.assert_allclose(route.variances, ref.explained_variance_, atol=1e-12 * scale)
        np.testing.assert_allclose(route.variances, s[:k] ** 2 / (n - 1), atol=1e-12 * scale)
        np.testing.assert_allclose(route.ratios, ref.explained_variance_ratio_, atol=1e-12)
        # Directions: the gaps between these variances are O(1), so the components are well-conditioned.
        np.testing.assert_allclose(route.components, _aligned(route.components, ref.components_), atol=1e-9)
        np.testing.assert_allclose(route.components, _aligned(route.components, Vt[:k]), atol=1e-9)
        np.testing.assert_allclose(
            route.scores, Xc @ route.components.T, atol=1e-12 * np.abs(Xc).max() * shape[1]
        )
    assert res.ratio_gap <= 1e-12 and res.min_cos >= 1 - 1e-12 and res.scores_gap <= 1e-9


def test_pca_needs_two_points():
    with pytest.raises(ValueError, match="two distinct points"):
        tm.pca_three_ways(np.ones((1, 3)), 2)


# ---------------------------------------------------------------------------------------------------- weyl


@pytest.mark.parametrize("coupling", [0.0, 0.5, 1.0, 3.0])
def test_gershgorin_discs_contain_every_eigenvalue(coupling):
    A = tm.gershgorin_matrix(coupling)
    g = tm.gershgorin_picture(A)
    lam = np.linalg.eigvals(A)
    radii = np.abs(A).sum(axis=1) - np.abs(np.diag(A))
    np.testing.assert_allclose(g.radii, radii)
    inside = [np.any(np.abs(z - np.diag(A)) <= radii + 1e-12) for z in lam]
    assert all(inside) and g.inside.all()
    assert g.real_bounds[0] <= lam.real.min() and lam.real.max() <= g.real_bounds[1]


@pytest.mark.parametrize("size", [1e-3, 0.1, 2.0])
def test_weyl_bound_on_a_small_matrix(size):
    W = np.random.default_rng(5).standard_normal((7, 4))
    E = tm.small_perturbation(W.shape, size)
    res = tm.weyl_check(W, E)
    s, s2 = np.linalg.svd(W, compute_uv=False), np.linalg.svd(W + E, compute_uv=False)
    assert res.e_norm == pytest.approx(size, rel=1e-12)
    np.testing.assert_allclose(res.shifts, np.abs(s2 - s), atol=symmetric_tolerance(W + E))
    assert np.abs(s2 - s).max() <= size + symmetric_tolerance(W + E)
    assert res.holds and 0 < res.ratio <= 1 + 1e-12


@pytest.mark.slow
def test_weyl_holds_on_smollm2_under_int8_and_4_bit(smollm2):
    before = weights_checksum(smollm2.model)
    mats = [m for m in weight_matrices(smollm2.model) if m.layer in (0, smollm2.card.n_layers - 1)]
    assert {m.kind for m in mats} >= {
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_o",
        "mlp_gate",
        "mlp_up",
        "mlp_down",
    }
    for m in mats:
        W = m.weight.detach().to(torch.float64).numpy().copy()
        s = np.linalg.svd(W, compute_uv=False)
        for scheme in tm.WEYL_SCHEMES:
            E = fake_quantize(torch.from_numpy(W.copy()), scheme).numpy() - W
            e_norm = np.linalg.norm(E, 2)
            shift = np.abs(np.linalg.svd(W + E, compute_uv=False) - s).max()
            slack = 2 * backward_error(W)  # rounding of each computed set of singular values
            assert 0 < e_norm and shift <= e_norm + slack, (m.name, scheme.name)
            res = tm.weyl_quantized(W, scheme, name=m.name, sigma=s)
            assert res.holds
            assert res.e_norm == pytest.approx(e_norm, rel=1e-10)
            assert res.max_shift == pytest.approx(shift, abs=slack)
    assert weights_checksum(smollm2.model) == before  # quantized copies only


# ------------------------------------------------------------------------------------------- conditioning


@pytest.mark.parametrize("coupling", [0.0, 0.5, 2.0])
def test_condition_numbers_against_scipy_left_and_right_vectors(coupling):
    A = tm.nonnormal_example(coupling)
    lam, kappa, V = tm.condition_numbers(A)
    want_lam, want_kappa = eigenvalue_condition_numbers(A)
    order = [int(np.argmin(np.abs(want_lam - z))) for z in lam]
    _, tol = eig_tolerances(A)
    np.testing.assert_allclose(lam, want_lam[order], atol=tol.max())
    np.testing.assert_allclose(kappa, want_kappa[order], rtol=1e-8)
    np.testing.assert_allclose(A @ V, V * lam, atol=tol.max() * 10)
    if coupling == 0.0:  # symmetric: every eigenvalue perfectly conditioned
        np.testing.assert_allclose(kappa, 1.0, atol=1e-12)


def test_perturbed_eigenvalues_move_by_about_kappa_eps():
    eps_ = 1e-6
    normal = tm.perturbation_cloud(tm.nonnormal_example(0.0), eps_, samples=60)
    # Bauer-Fike: for a normal matrix no eigenvalue moves further than ||E||_2.
    assert normal.max_shift.max() <= eps_ * (1 + 1e-6)
    skew = tm.perturbation_cloud(tm.nonnormal_example(2.0), eps_, samples=60)
    _, want_kappa = eigenvalue_condition_numbers(tm.nonnormal_example(2.0))
    assert skew.kappa.max() > 10
    # First order: |d lambda| <= kappa ||E|| + O(||E||^2); at eps 1e-6 the second-order term is far below.
    assert np.all(skew.max_shift <= skew.kappa * eps_ * 1.01)
    assert np.all(skew.max_shift >= 0.2 * skew.kappa * eps_)  # random E get close to the worst case
    np.testing.assert_allclose(np.sort(skew.kappa), np.sort(want_kappa), rtol=1e-8)


def _causal_head(n: int, seed: int) -> np.ndarray:
    """A lower-triangular row-stochastic (n, n) float32 matrix with well-separated diagonal entries (row 0 can
    attend only to itself: a_00 = 1)."""
    rng = np.random.default_rng(seed)
    diag = np.concatenate([[1.0], np.linspace(0.9, 0.2, n - 1)])
    L = np.tril(rng.random((n, n)) + 0.1, -1)
    L[1:] *= ((1 - diag[1:]) / L[1:].sum(axis=1))[:, None]
    return (L + np.diag(diag)).astype(np.float32)


def test_float32_and_float64_eigenvalues_of_a_hidden_triangle_within_the_theorem():
    A = _causal_head(12, 6)
    res = tm.precision_check(A, causal=True, rotate=True)
    n = A.shape[0]
    np.testing.assert_array_equal(res.reference, np.diag(A).astype(np.float64))
    # Orthogonal similarity keeps condition numbers: kappa of Q A Q^T equals A's (scipy, left/right vectors).
    lam, kappa = eigenvalue_condition_numbers(A.astype(np.float64))
    order = [int(np.argmin(np.abs(lam - z))) for z in res.reference]
    np.testing.assert_allclose(res.kappa, kappa[order], rtol=1e-6)
    # Each computed eigenvalue within kappa * c n eps ||A|| of the exact one, in its own precision.
    M32 = res.eig32  # sgeev's, paired
    np.testing.assert_array_less(
        np.abs(M32 - res.reference), kappa[order] * backward_error(A, dtype=np.float32)
    )
    np.testing.assert_array_less(
        np.abs(res.eig64 - res.reference), kappa[order] * backward_error(A) + 4 * kappa[order] * n * eps()
    )
    assert res.within32 == n and res.within64 == n
    assert res.err32.max() > 100 * res.err64.max()  # float32 loses what float64 keeps
    # Unrotated, LAPACK's balancing isolates every diagonal entry of a triangle: exact in both precisions.
    plain = tm.precision_check(A, causal=True, rotate=False)
    assert plain.err32.max() == 0 and plain.err64.max() == 0


def test_a_dense_head_is_compared_with_float64():
    rng = np.random.default_rng(7)
    A = rng.random((15, 15)).astype(np.float32)
    A /= A.sum(axis=1, keepdims=True)
    res = tm.precision_check(A, causal=False)
    want = scipy.linalg.eigvals(A.astype(np.float64))
    assert not res.exact and res.err64.max() == 0
    assert np.abs(np.sort_complex(res.reference) - np.sort_complex(want)).max() < 1e-12
    assert res.within32 == len(A)


# ------------------------------------------------------------------------------------------------ exercises


def _matrix(question: str) -> np.ndarray:
    """The first pmatrix in a question's LaTeX, as floats."""
    body = re.search(r"\\begin\{pmatrix\}(.*?)\\end\{pmatrix\}", question).group(1)
    return np.array([[float(x) for x in row.split("&")] for row in body.split(r"\\")])


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def _check_number(ex, right: float) -> None:
    assert ex.check(f"{right:.10g}").right, (ex.question, right, ex.answer)
    assert not ex.check(f"{right + 3 * ex.tolerance + 0.05:.10g}").right
    assert not ex.check(f"{right - 3 * ex.tolerance - 0.05:.10g}").right


def _check_choice(ex, right: int) -> None:
    assert ex.check(right).right, (ex.question, right, ex.answer)
    for wrong in set(range(len(ex.choices))) - {right}:
        assert not ex.check(wrong).right


@pytest.mark.parametrize("seed", SEEDS)
def test_charpoly_exercises(seed):
    eig, power, defect = tm.charpoly_exercises(seed)
    _check_number(eig, np.linalg.eigvals(_matrix(eig.question)).real.max())
    _check_number(power, np.trace(np.linalg.matrix_power(_matrix(power.question), 3)))
    C = _matrix(defect.question)
    lam = float(re.search(r"λ = (-?\d+)", defect.question).group(1))
    geometric = 2 - np.linalg.matrix_rank(C - lam * np.eye(2))
    _check_choice(defect, next(i for i, c in enumerate(defect.choices) if c.startswith(f"{geometric}:")))


@pytest.mark.parametrize("seed", SEEDS)
def test_psd_exercises(seed):
    kind, axis = tm.psd_exercises(seed)
    lam = np.linalg.eigvalsh(_matrix(kind.question))
    if lam.min() > 1e-9:
        word = "Positive definite"
    elif lam.max() < -1e-9:
        word = "Negative definite"
    elif lam.min() < -1e-9:
        word = "Indefinite"
    else:
        word = "Positive semidefinite"
    _check_choice(kind, kind.choices.index(word))
    _check_number(axis, 1 / np.sqrt(np.linalg.eigvalsh(_matrix(axis.question)).min()))


def test_psd_exercises_cover_every_kind():
    kinds = {tm.psd_exercises(seed)[0].answer for seed in SEEDS}
    assert kinds == {0, 1, 2, 3}


@pytest.mark.parametrize("seed", SEEDS)
def test_rayleigh_exercises(seed):
    top, interlace = tm.rayleigh_exercises(seed)
    _check_number(top, np.linalg.eigvalsh(_matrix(top.question)).max())
    l1, l2, l3 = _numbers(interlace.question.split("eigenvalues")[1].split(".")[0])
    fits = [
        i
        for i, choice in enumerate(interlace.choices)
        if (lambda m1, m2: l1 >= m1 >= l2 >= m2 >= l3)(*_numbers(choice))
    ]
    assert len(fits) == 1
    _check_choice(interlace, fits[0])


@pytest.mark.parametrize("seed", SEEDS)
def test_pca_exercises(seed):
    share, keep = tm.pca_exercises(seed)
    C = _matrix(share.question)
    _check_number(share, np.linalg.eigvalsh(C).max() / np.trace(C))
    lam = np.array(_numbers(keep.question.split("eigenvalues")[1].split(". How")[0]))
    k = int(np.searchsorted(np.cumsum(lam) / lam.sum(), 0.9 - 1e-12) + 1)
    _check_choice(keep, keep.choices.index(str(k)))


@pytest.mark.parametrize("seed", SEEDS)
def test_weyl_exercises(seed):
    disc, shift = tm.weyl_exercises(seed)
    A = _matrix(disc.question)
    radii = np.abs(A).sum(axis=1) - np.abs(np.diag(A))
    _check_number(disc, np.max(np.diag(A) + radii))
    assert np.linalg.eigvals(A).real.max() <= np.max(np.diag(A) + radii) + 1e-9  # Gershgorin, on this A
    numbers = _numbers(shift.question.replace("σ₃", "").replace("‖E‖₂", ""))
    sigma, e = numbers[:3], numbers[3]
    _check_number(shift, max(sigma[2] - e, 0.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_conditioning_exercises(seed):
    kappa_ex, move = tm.conditioning_exercises(seed)
    A = _matrix(kappa_ex.question)
    lam, kappa = eigenvalue_condition_numbers(A)
    target = float(re.search(r"λ = (-?\d+)", kappa_ex.question).group(1))
    _check_number(kappa_ex, kappa[int(np.argmin(np.abs(lam - target)))])
    digits = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
    m, k = (int(x.translate(digits)) for x in re.findall(r"10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)", move.question))
    assert k < 0 < m
    want = "about 10" + str(m + k).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    _check_choice(move, move.choices.index(want))


def test_random_positive_definite_integer_matrices():
    # b is the largest integer with b^2 < ac: one more and det = ac - b^2 <= 0.
    for a in range(1, 12):
        for c in range(1, 12):
            b = tm._max_off_diagonal(a, c)
            assert b * b < a * c <= (b + 1) ** 2
    rng = np.random.default_rng(0)
    for _ in range(200):
        S = tm._positive_definite(rng, 1, 9)
        (a, b), (b2, c) = S
        assert b == b2 and 1 <= a < 9 and 1 <= c < 9 and a * c - b * b >= 1  # integers: det >= 1, exactly
        assert np.linalg.eigvalsh(S).min() > 0
