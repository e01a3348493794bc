"""The maths of six Learn walkthroughs on matrix theory, each on a small matrix and on the loaded model's arrays.

charpoly: characteristic polynomial, diagonalisation A = V Λ V⁻¹, powers, multiplicities, defective matrices.
psd: the spectral theorem, quadratic forms as ellipses, the covariance / Gram of hidden states.
rayleigh: the Rayleigh quotient over the sphere, Courant-Fischer, Cauchy interlacing.
pca: PCA three ways (eigh of the covariance, SVD of the centred data, scikit-learn).
weyl: Gershgorin discs; Weyl's bound on singular values under quantization error.
conditioning: eigenvalue condition numbers, perturbation clouds, float32 against float64 eigenvalues.

Pure numpy / scipy / torch (no Streamlit, no plotly). Every function takes arrays (float64 unless said) and
returns a frozen dataclass whose docstring gives shapes. Eigenvalues of non-symmetric matrices are sorted by
decreasing modulus as everywhere in the app (docs/ARCHITECTURE.md section 2). The exercise builders at the end
make each student's instance from their seed (explorer.analysis.exercises.instance_rng).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import PCA

from explorer.analysis.exercises import Exercise, instance_rng
from explorer.analysis.teaching import random_orthogonal, sort_by_modulus
from explorer.spectra.gershgorin import gershgorin_discs, inside_union
from explorer.spectra.quantization import INT8, QuantScheme, fake_quantize

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)
#: The margin over a backward-stable algorithm's c·n·eps·‖A‖ (tests/tolerances.py uses the same).
SAFETY = 10.0
#: Quantization schemes the weyl walkthrough applies: int8 per output row, 4-bit symmetric in groups of 32.
WEYL_SCHEMES: tuple[QuantScheme, ...] = (INT8, QuantScheme(4, 32, True))


def _sort_desc(values: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=np.float64))[::-1]


def _match(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` reordered so that other[i] is the value paired with reference[i] (the assignment that
    minimises the total distance: eigenvalues of two nearby matrices come in no common order)."""
    cost = np.abs(np.asarray(reference)[:, None] - np.asarray(other)[None, :])
    rows, cols = linear_sum_assignment(cost)
    out = np.empty_like(np.asarray(other))
    out[rows] = np.asarray(other)[cols]
    return out


def condition_numbers(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eigvals (n,) complex128 by decreasing modulus, kappa (n,), V (n, n) unit right eigenvectors).

    kappa(λ) = ‖x‖‖y‖ / |yᴴx| from the right and left eigenvectors (scipy.linalg.eig, LAPACK geev, float64);
    a defective eigenvalue (yᴴx = 0 to rounding) gets a huge or infinite kappa."""
    A = np.asarray(A, dtype=np.float64)
    w, vl, vr = scipy.linalg.eig(A, left=True, right=True)
    cos = np.abs(np.sum(vl.conj() * vr, axis=0)) / (np.linalg.norm(vl, axis=0) * np.linalg.norm(vr, axis=0))
    with np.errstate(divide="ignore"):
        kappa = np.where(cos > 0, 1.0 / cos, np.inf)
    order = np.lexsort((-w.imag, -w.real, -np.abs(w)))
    V = vr[:, order] / np.linalg.norm(vr[:, order], axis=0)
    return w[order].astype(np.complex128), kappa[order], V


# ------------------------------------------------------------------------------------------------ charpoly

#: A unimodular matrix (integer entries, det 1, so an integer inverse): A = P T P⁻¹ keeps T's eigenvalues while
#: hiding them from the diagonal.
_P3 = np.array([[1.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
CHARPOLY_BASE = 2.0  # T's first two diagonal entries are BASE and BASE + delta; the third is 0.5


def charpoly_matrix(delta: float) -> np.ndarray:
    """A (3, 3) = P T P⁻¹ with T = [[2, 1, 0], [0, 2 + delta, 1], [0, 0, 0.5]]: eigenvalues 2, 2 + delta, 0.5.

    delta = 0 makes 2 a double root with a single eigenvector line (a Jordan block: A is defective)."""
    T = np.array([[CHARPOLY_BASE, 1.0, 0.0], [0.0, CHARPOLY_BASE + delta, 1.0], [0.0, 0.0, 0.5]])
    return _P3 @ T @ np.linalg.inv(_P3)


@dataclass(frozen=True)
class Multiplicity:
    """One distinct eigenvalue (a cluster of computed ones within the tolerance): algebraic multiplicity (how
    many roots of the characteristic polynomial) and geometric (dim null(A − λI) = n − rank(A − λI))."""

    eigval: complex
    algebraic: int
    geometric: int

    @property
    def defective(self) -> bool:
        return self.geometric < self.algebraic


@dataclass(frozen=True)
class Diagonalisation:
    """A (n, n) = V diag(eigvals) V⁻¹, as far as it exists.

    eigvals: (n,) complex128, by decreasing modulus. V: (n, n) unit right eigenvectors (columns). kappa_V:
    cond₂(V), inf when V is singular. charpoly: (n + 1,) coefficients of det(λI − A), highest power first
    (real for real A). multiplicities: one per distinct eigenvalue (cluster tolerance ``tol`` · max(1, ‖A‖₂)).
    powers: (kmax,) relative error ‖V Λᵏ V⁻¹ − Aᵏ‖_F / ‖Aᵏ‖_F for k = 1..kmax, Aᵏ by repeated multiplication
    (inf when V cannot be inverted)."""

    matrix: np.ndarray
    eigvals: np.ndarray
    V: np.ndarray
    kappa_V: float
    charpoly: np.ndarray
    multiplicities: tuple[Multiplicity, ...]
    powers: np.ndarray

    @property
    def defective(self) -> bool:
        return any(m.defective for m in self.multiplicities)


def multiplicities(A: np.ndarray, eigvals: np.ndarray, tol: float = 1e-6) -> tuple[Multiplicity, ...]:
    """Distinct eigenvalues of A with their multiplicities: computed eigenvalues within tol · max(1, ‖A‖₂) of
    each other are one (a double root comes out of geev split by about √eps, a Jordan block's defect); the
    geometric multiplicity is n − rank(A − λI) with rank counted above the same tolerance."""
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    scale = tol * max(1.0, float(np.linalg.norm(A, 2)))
    left = list(range(len(eigvals)))
    out = []
    while left:
        first = left[0]
        group = [i for i in left if abs(eigvals[i] - eigvals[first]) <= scale]
        lam = complex(np.mean(eigvals[group]))
        lam = complex(lam.real, 0.0) if abs(lam.imag) <= scale else lam
        rank = np.linalg.matrix_rank(A - lam * np.eye(n), tol=scale)
        out.append(Multiplicity(lam, len(group), int(n - rank)))
        left = [i for i in left if i not in group]
    return tuple(out)


def power_errors(A: np.ndarray, eigvals: np.ndarray, V: np.ndarray, kmax: int) -> np.ndarray:
    """(kmax,) relative Frobenius error of V Λᵏ V⁻¹ against Aᵏ (repeated products), k = 1..kmax."""
    A = np.asarray(A, dtype=np.float64)
    try:
        V_inv = np.linalg.inv(V)
    except np.linalg.LinAlgError:
        return np.full(kmax, np.inf)
    errors = np.empty(kmax)
    Ak = np.eye(A.shape[0])
    for k in range(1, kmax + 1):
        Ak = Ak @ A
        approx = (V * eigvals**k) @ V_inv
        norm = np.linalg.norm(Ak)
        diff = np.linalg.norm(approx - Ak)
        errors[k - 1] = diff / norm if norm > 0 else diff
    return errors


def diagonalise(A: np.ndarray, kmax: int = 20, *, with_multiplicities: bool = True) -> Diagonalisation:
    """Eigen-decomposition of a real square A (float64 geev), its characteristic polynomial, multiplicities
    (skipped for large matrices: ``with_multiplicities`` False) and the accuracy of Aᵏ = V Λᵏ V⁻¹."""
    A = np.asarray(A, dtype=np.float64)
    eigvals, _, V = condition_numbers(A)
    kappa_V = float(np.linalg.cond(V))
    mult = multiplicities(A, eigvals) if with_multiplicities else ()
    return Diagonalisation(
        matrix=A,
        eigvals=eigvals,
        V=V,
        kappa_V=kappa_V if np.isfinite(kappa_V) else np.inf,
        charpoly=np.real_if_close(np.poly(A)),
        multiplicities=mult,
        powers=power_errors(A, eigvals, V, kmax),
    )


def ov_core(W_V: np.ndarray, W_O: np.ndarray) -> np.ndarray:
    """The (d_head, d_head) core W_O W_V of one head's OV circuit (row convention, W_V: (d_model, d_head), W_O:
    (d_head, d_model)): it has the nonzero eigenvalues of W_V W_O (d_model, d_model)."""
    return np.asarray(W_O, dtype=np.float64) @ np.asarray(W_V, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------- psd


def classify_symmetric(eigvals: np.ndarray, tol: float) -> str:
    """'positive definite', 'positive semidefinite', 'negative definite', 'negative semidefinite',
    'indefinite' or 'zero', with eigenvalues within ``tol`` of 0 counted as 0."""
    lam = np.asarray(eigvals, dtype=np.float64)
    pos, neg = bool(np.any(lam > tol)), bool(np.any(lam < -tol))
    zero = bool(np.any(np.abs(lam) <= tol))
    if pos and neg:
        return "indefinite"
    if pos:
        return "positive semidefinite" if zero else "positive definite"
    if neg:
        return "negative semidefinite" if zero else "negative definite"
    return "zero"


@dataclass(frozen=True)
class QuadraticForm:
    """q(x) = xᵀ S x for a symmetric (2, 2) S = Q diag(eigvals) Qᵀ (spectral theorem).

    eigvals: (2,) descending; eigvecs: (2, 2) orthonormal columns. kind: classify_symmetric's word.
    half_axes: (2,) 1/√λ for λ > 0 (the half-lengths of the ellipse q(x) = 1 along each eigenvector), inf
    otherwise (the level set is not bounded that way)."""

    matrix: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    kind: str
    half_axes: np.ndarray


def quadratic_form(a: float, b: float, c: float) -> QuadraticForm:
    """S = [[a, b], [b, c]], decomposed with eigh (real eigenvalues, orthonormal eigenvectors)."""
    S = np.array([[a, b], [b, c]], dtype=np.float64)
    lam, Q = np.linalg.eigh(S)
    lam, Q = lam[::-1], Q[:, ::-1]
    Q = Q * np.where(Q[np.argmax(np.abs(Q), axis=0), range(2)] < 0, -1.0, 1.0)
    tol = SAFETY * 2 * EPS64 * max(float(np.abs(lam).max()), 1e-300)
    with np.errstate(divide="ignore"):
        half = np.where(lam > tol, 1.0 / np.sqrt(np.maximum(lam, tol)), np.inf)
    return QuadraticForm(S, lam, Q, classify_symmetric(lam, tol), half)


def ellipse_points(form: QuadraticForm, points: int = 181) -> np.ndarray | None:
    """(2, points) the curve q(x) = 1 when S is positive definite (x = Q diag(1/√λ) (cos t, sin t)), else None."""
    if form.kind != "positive definite":
        return None
    t = np.linspace(0.0, 2.0 * np.pi, points)
    return form.eigvecs @ (form.half_axes[:, None] * np.vstack([np.cos(t), np.sin(t)]))


@dataclass(frozen=True)
class HiddenCovariance:
    """The covariance of one layer's hidden states X (token, d_model), and its Gram twin.

    cov_eigvals: (d_model,) descending, eigenvalues of C = Xcᵀ Xc / (n − 1) (Xc: X minus its token mean).
    gram_eigvals: (token,) descending, eigenvalues of G = Xc Xcᵀ / (n − 1): the same nonzero eigenvalues.
    zero_tol: SAFETY · max(n, d) · eps · λ₁, rounding's reach; n_zero: eigenvalues of C with |λ| ≤ zero_tol.
    rank_bound: min(n − 1, d), the most nonzero eigenvalues C can have (n tokens, centred). min_eigval: the
    smallest eigenvalue of C (≥ −zero_tol: C is positive semidefinite). n_tokens, d_model: the shape of X."""

    cov_eigvals: np.ndarray
    gram_eigvals: np.ndarray
    zero_tol: float
    n_zero: int
    rank_bound: int
    min_eigval: float
    n_tokens: int
    d_model: int

    @property
    def n_nonzero(self) -> int:
        return self.d_model - self.n_zero


def centred(X: np.ndarray) -> np.ndarray:
    """X (n, d) minus its row mean, float64."""
    X = np.asarray(X, dtype=np.float64)
    return X - X.mean(axis=0, keepdims=True)


def hidden_covariance(X: np.ndarray) -> HiddenCovariance:
    """Covariance (eigh) and centred Gram (eigh) of hidden states X (token, d_model); needs n ≥ 2 tokens."""
    Xc = centred(X)
    n, d = Xc.shape
    if n < 2:
        raise ValueError("A covariance needs at least two tokens.")
    C = Xc.T @ Xc / (n - 1)
    G = Xc @ Xc.T / (n - 1)
    cov = _sort_desc(np.linalg.eigvalsh(C))
    gram = _sort_desc(np.linalg.eigvalsh(G))
    tol = SAFETY * max(n, d) * EPS64 * max(float(cov[0]), 0.0)
    return HiddenCovariance(
        cov_eigvals=cov,
        gram_eigvals=gram,
        zero_tol=tol,
        n_zero=int(np.sum(np.abs(cov) <= tol)),
        rank_bound=min(n - 1, d),
        min_eigval=float(cov[-1]),
        n_tokens=n,
        d_model=d,
    )


def covariance(X: np.ndarray) -> np.ndarray:
    """C = Xcᵀ Xc / (n − 1), (d, d) float64."""
    Xc = centred(X)
    return Xc.T @ Xc / (Xc.shape[0] - 1)


# ------------------------------------------------------------------------------------------------ rayleigh


def symmetric_with_eigvals(eigvals, seed: int = 3) -> np.ndarray:
    """S = Q diag(eigvals) Qᵀ (n, n) with a fixed random rotation Q (so S looks dense), symmetrised exactly."""
    lam = np.asarray(eigvals, dtype=np.float64)
    Q = random_orthogonal(len(lam), seed)
    S = (Q * lam) @ Q.T
    return (S + S.T) / 2


def rayleigh(S: np.ndarray, x: np.ndarray) -> np.ndarray:
    """r(x) = xᵀSx / xᵀx for x (n,) or a batch (m, n) of nonzero vectors; (m,) or a scalar."""
    x = np.asarray(x, dtype=np.float64)
    return np.einsum("...i,ij,...j->...", x, S, x) / np.einsum("...i,...i->...", x, x)


@dataclass(frozen=True)
class RayleighSphere:
    """r(x) over the unit sphere of a symmetric (3, 3) S, x = (cos lat cos lon, cos lat sin lon, sin lat).

    lon: (L,) radians in [−π, π]; lat: (M,) in [−π/2, π/2]; values: (M, L). eigvals: (3,) descending (eigh);
    eigvecs: (3, 3) columns; eig_lonlat: (3, 2) (lon, lat) of each +v_i, where r = λ_i."""

    lon: np.ndarray
    lat: np.ndarray
    values: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    eig_lonlat: np.ndarray


def _lonlat(v: np.ndarray) -> tuple[float, float]:
    v = v / np.linalg.norm(v)
    return float(np.arctan2(v[1], v[0])), float(np.arcsin(np.clip(v[2], -1.0, 1.0)))


def rayleigh_sphere(S: np.ndarray, n_lon: int = 121, n_lat: int = 61) -> RayleighSphere:
    S = np.asarray(S, dtype=np.float64)
    lam, Q = np.linalg.eigh(S)
    lam, Q = lam[::-1], Q[:, ::-1]
    lon = np.linspace(-np.pi, np.pi, n_lon)
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat)
    LA, LO = np.meshgrid(lat, lon, indexing="ij")
    X = np.stack([np.cos(LA) * np.cos(LO), np.cos(LA) * np.sin(LO), np.sin(LA)], axis=-1)
    values = rayleigh(S, X.reshape(-1, 3)).reshape(n_lat, n_lon)
    return RayleighSphere(lon, lat, values, lam, Q, np.array([_lonlat(Q[:, i]) for i in range(3)]))


@dataclass(frozen=True)
class MinMax:
    """Courant-Fischer for λ₂ of a symmetric (3, 3) S, along the directions u(t) = cos t v₁ + sin t v₃.

    t: (T,) radians in [0, π/2]; upper: (T,) max of r(x) over x ⊥ u(t); lower: (T,) min of r(x) over x ⊥ u(t)
    (both the eigenvalues of S restricted to the plane u(t)^⊥). eigvals: (3,) descending. The theorem:
    upper ≥ λ₂ ≥ lower for every u, with upper = λ₂ at u = v₁ (t = 0) and lower = λ₂ at u = v₃ (t = π/2)."""

    t: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    eigvals: np.ndarray


def restricted_extremes(S: np.ndarray, u: np.ndarray) -> tuple[float, float]:
    """(max, min) of r(x) over unit x ⊥ u: the extreme eigenvalues of S compressed to u's orthogonal complement."""
    u = np.asarray(u, dtype=np.float64)
    basis = scipy.linalg.null_space(u[None, :])  # (n, n − 1) orthonormal
    mu = np.linalg.eigvalsh(basis.T @ S @ basis)
    return float(mu[-1]), float(mu[0])


def min_max_curve(S: np.ndarray, points: int = 91) -> MinMax:
    S = np.asarray(S, dtype=np.float64)
    lam, Q = np.linalg.eigh(S)
    lam, Q = lam[::-1], Q[:, ::-1]
    t = np.linspace(0.0, np.pi / 2, points)
    pairs = [restricted_extremes(S, np.cos(s) * Q[:, 0] + np.sin(s) * Q[:, 2]) for s in t]
    upper, lower = (np.array(v) for v in zip(*pairs, strict=True))
    return MinMax(t, upper, lower, lam)


@dataclass(frozen=True)
class Interlacing:
    """Cauchy interlacing for a symmetric S (n, n) and its principal submatrix without row and column ``dropped``.

    eigvals: (n,) descending λ; sub_eigvals: (n − 1,) descending μ. The theorem: λ_i ≥ μ_i ≥ λ_{i+1} for all i.
    tol: SAFETY · n · eps · ‖S‖₂ (rounding's reach on each eigenvalue); violations: how many of the 2(n − 1)
    inequalities fail by more than tol (0 when the theorem holds as computed)."""

    eigvals: np.ndarray
    sub_eigvals: np.ndarray
    dropped: int
    tol: float
    violations: int

    @property
    def holds(self) -> bool:
        return self.violations == 0


def interlacing(S: np.ndarray, dropped: int) -> Interlacing:
    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    if not 0 <= dropped < n:
        raise ValueError(f"coordinate {dropped} is not in 0..{n - 1}")
    keep = np.delete(np.arange(n), dropped)
    lam = _sort_desc(np.linalg.eigvalsh(S))
    mu = _sort_desc(np.linalg.eigvalsh(S[np.ix_(keep, keep)]))
    tol = SAFETY * n * EPS64 * max(float(np.abs(lam).max()), 0.0)
    bad = int(np.sum(mu > lam[:-1] + tol) + np.sum(mu < lam[1:] - tol))
    return Interlacing(lam, mu, int(dropped), tol, bad)


# ----------------------------------------------------------------------------------------------------- pca


def point_cloud(angle_deg: float, ratio: float, n: int = 200, seed: int = 0) -> np.ndarray:
    """(n, 2) Gaussian points: standard deviation 1 along the direction at ``angle_deg`` and ``ratio`` across
    it, centred at (1, 0.5) (so centring matters)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2)) * np.array([1.0, ratio])
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return z @ R.T + np.array([1.0, 0.5])


@dataclass(frozen=True)
class PCAResult:
    """Principal components of X (n, d), k of them.

    mean: (d,); components: (k, d) orthonormal rows, each signed so its largest-|·| entry is positive;
    variances: (k,) the variance along each (eigenvalues of the covariance, divisor n − 1); total_variance:
    trace of the covariance; ratios: (k,) variances / total_variance; scores: (n, k) (X − mean) componentsᵀ."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    total_variance: float
    scores: np.ndarray

    @property
    def ratios(self) -> np.ndarray:
        return self.variances / self.total_variance


def _signed(components: np.ndarray) -> np.ndarray:
    rows = np.arange(components.shape[0])
    signs = np.sign(components[rows, np.argmax(np.abs(components), axis=1)])
    return components * np.where(signs == 0, 1.0, signs)[:, None]


def _pca(X: np.ndarray, components: np.ndarray, variances: np.ndarray) -> PCAResult:
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    comps = _signed(np.asarray(components, dtype=np.float64))
    total = float(np.sum((X - mean) ** 2) / (X.shape[0] - 1))
    return PCAResult(mean, comps, np.asarray(variances, dtype=np.float64), total, (X - mean) @ comps.T)


def pca_by_covariance(X: np.ndarray, k: int) -> PCAResult:
    """From scratch: eigh of the covariance C = Xcᵀ Xc / (n − 1); the top k eigenvectors are the components."""
    lam, Q = np.linalg.eigh(covariance(X))
    return _pca(X, Q[:, ::-1][:, :k].T, lam[::-1][:k])


def pca_by_svd(X: np.ndarray, k: int) -> PCAResult:
    """The SVD of the centred data Xc = U Σ Vᵀ: components are the rows of Vᵀ, variances σ² / (n − 1)."""
    Xc = centred(X)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    return _pca(X, Vt[:k], s[:k] ** 2 / (Xc.shape[0] - 1))


def pca_by_sklearn(X: np.ndarray, k: int) -> PCAResult:
    """scikit-learn's PCA (full SVD solver), float64."""
    model = PCA(n_components=k, svd_solver="full").fit(np.asarray(X, dtype=np.float64))
    return _pca(X, model.components_, model.explained_variance_)


@dataclass(frozen=True)
class PCAComparison:
    """PCA of one X three ways. routes: name -> PCAResult ("covariance", "svd", "sklearn"). ratio_gap: the
    largest |ratio difference| of any route from the covariance route over the k components; min_cos: the
    smallest |cos| between a component and the covariance route's same component (1: the same direction);
    scores_gap: the largest |score difference| (signs aligned), relative to the largest |score|."""

    routes: dict[str, PCAResult]
    ratio_gap: float
    min_cos: float
    scores_gap: float


PCA_ROUTES = {
    "covariance": "eigh of the covariance",
    "svd": "SVD of the centred data",
    "sklearn": "scikit-learn",
}


def pca_three_ways(X: np.ndarray, k: int) -> PCAComparison:
    X = np.asarray(X, dtype=np.float64)
    k = int(min(k, X.shape[0] - 1, X.shape[1]))
    if k < 1:
        raise ValueError("PCA needs at least two distinct points.")
    routes = {"covariance": pca_by_covariance(X, k), "svd": pca_by_svd(X, k), "sklearn": pca_by_sklearn(X, k)}
    base = routes["covariance"]
    scale = max(float(np.abs(base.scores).max()), 1e-300)
    ratio_gap = max(float(np.abs(r.ratios - base.ratios).max()) for r in routes.values())
    min_cos = min(
        float(np.abs(np.sum(r.components * base.components, axis=1)).min()) for r in routes.values()
    )
    scores_gap = max(float(np.abs(r.scores - base.scores).max()) / scale for r in routes.values())
    return PCAComparison(routes, ratio_gap, min_cos, scores_gap)


# ---------------------------------------------------------------------------------------------------- weyl

#: The small matrix of the Gershgorin part: a diagonal (the disc centres) plus coupling · a fixed pattern.
GERSHGORIN_DIAGONAL = np.array([4.0, 1.5, -1.0, -3.0])
_GERSHGORIN_PATTERN = np.array(
    [[0.0, 0.6, -0.3, 0.2], [0.4, 0.0, 0.5, -0.2], [-0.3, 0.6, 0.0, 0.4], [0.2, -0.1, 0.5, 0.0]]
)


def gershgorin_matrix(coupling: float) -> np.ndarray:
    """(4, 4) diag(4, 1.5, −1, −3) + coupling · a fixed off-diagonal pattern (row sums of |pattern| ≤ 1.5)."""
    return np.diag(GERSHGORIN_DIAGONAL) + coupling * _GERSHGORIN_PATTERN


@dataclass(frozen=True)
class GershgorinPicture:
    """matrix: (n, n); centers: (n,) complex; radii: (n,) row-disc radii Σ_{j≠i}|a_ij|; eigvals: (n,) complex
    by decreasing modulus; inside: (n,) bool, each eigenvalue in the union of the discs (the theorem: all True);
    real_bounds: (lowest, highest) real part the discs allow, min(c − R) and max(c + R)."""

    matrix: np.ndarray
    centers: np.ndarray
    radii: np.ndarray
    eigvals: np.ndarray
    inside: np.ndarray
    real_bounds: tuple[float, float]


def gershgorin_picture(A: np.ndarray) -> GershgorinPicture:
    A = np.asarray(A, dtype=np.float64)
    discs = gershgorin_discs(A)
    lam = sort_by_modulus(np.linalg.eigvals(A))
    c, r = discs.centers, discs.radii
    bounds = (float(np.min(c.real - r)), float(np.max(c.real + r)))
    return GershgorinPicture(A, c, r, lam, inside_union(discs, lam), bounds)


@dataclass(frozen=True)
class WeylCheck:
    """Weyl's bound for W (m, n) and W + E: |σ_i(W + E) − σ_i(W)| ≤ ‖E‖₂ for every i.

    name: what W is; scheme: the quantization's name (E = dequant(quant(W)) − W), or "" for a given E.
    sigma, sigma_perturbed: (min(m, n),) descending; e_norm: ‖E‖₂; shifts: (min(m, n),) |Δσ_i|; max_shift:
    their maximum; slack: rounding's reach on the computed singular values (SAFETY · max(m, n) · eps ·
    (‖W‖₂ + ‖W + E‖₂)); holds: max_shift ≤ e_norm + slack."""

    name: str
    scheme: str
    shape: tuple[int, int]
    sigma: np.ndarray
    sigma_perturbed: np.ndarray
    e_norm: float
    shifts: np.ndarray
    max_shift: float
    slack: float

    @property
    def holds(self) -> bool:
        return self.max_shift <= self.e_norm + self.slack

    @property
    def ratio(self) -> float:
        """max |Δσ_i| / ‖E‖₂ (≤ 1 by Weyl; 0 when E = 0)."""
        return self.max_shift / self.e_norm if self.e_norm > 0 else 0.0


def weyl_check(
    W: np.ndarray, E: np.ndarray, *, name: str = "W", scheme: str = "", sigma: np.ndarray | None = None
) -> WeylCheck:
    """``sigma``: W's singular values when already known (one SVD fewer per further E)."""
    W = np.asarray(W, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    s = np.linalg.svd(W, compute_uv=False) if sigma is None else np.asarray(sigma, dtype=np.float64)
    s2 = np.linalg.svd(W + E, compute_uv=False)
    e_norm = float(np.linalg.svd(E, compute_uv=False)[0]) if E.size else 0.0
    shifts = np.abs(s2 - s)
    slack = SAFETY * max(W.shape) * EPS64 * (float(s[0]) + float(s2[0]))
    return WeylCheck(
        name, scheme, (int(W.shape[0]), int(W.shape[1])), s, s2, e_norm, shifts, float(shifts.max()), slack
    )


def quantization_error(W: np.ndarray, scheme: QuantScheme) -> np.ndarray:
    """E = dequant(quant(W)) − W for a copy of W (m, n), float64 (explorer.spectra.quantization)."""
    w = torch.from_numpy(np.array(W, dtype=np.float64, copy=True))
    return (fake_quantize(w, scheme) - w).numpy()


def weyl_quantized(
    W: np.ndarray, scheme: QuantScheme, *, name: str = "W", sigma: np.ndarray | None = None
) -> WeylCheck:
    """Weyl's bound with E the error of quantizing W with ``scheme`` (W itself is never modified)."""
    return weyl_check(W, quantization_error(W, scheme), name=name, scheme=scheme.name, sigma=sigma)


def small_perturbation(shape: tuple[int, int], size: float, seed: int = 1) -> np.ndarray:
    """A fixed random (m, n) matrix scaled to spectral norm ``size``."""
    G = np.random.default_rng(seed).standard_normal(shape)
    return G * (size / np.linalg.norm(G, 2))


# ------------------------------------------------------------------------------------------- conditioning

CONDITIONING_DIAGONAL = np.array([1.0, 0.75, 0.5, 0.25])


def nonnormal_example(coupling: float, seed: int = 2) -> np.ndarray:
    """(4, 4) Q T Qᵀ with T upper triangular, diagonal 1, 0.75, 0.5, 0.25 and every entry above it equal to
    ``coupling``; Q a fixed rotation. coupling 0: symmetric (every kappa = 1)."""
    n = len(CONDITIONING_DIAGONAL)
    T = np.diag(CONDITIONING_DIAGONAL) + coupling * np.triu(np.ones((n, n)), 1)
    Q = random_orthogonal(n, seed)
    return Q @ T @ Q.T


@dataclass(frozen=True)
class PerturbationCloud:
    """Eigenvalues of A + E for ``samples`` random E with ‖E‖₂ = eps.

    eigvals: (n,) of A by decreasing modulus; kappa: (n,) their condition numbers; perturbed: (samples, n)
    complex, column i the eigenvalue of A + E paired with eigvals[i]; max_shift: (n,) the largest |Δλ_i| seen;
    first-order theory says max_shift ≲ kappa · eps (the ratio max_shift / (kappa eps) is ≤ 1 to first order)."""

    eigvals: np.ndarray
    kappa: np.ndarray
    eps: float
    perturbed: np.ndarray
    max_shift: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        return self.max_shift / (self.kappa * self.eps)


def perturbation_cloud(A: np.ndarray, eps: float, samples: int = 200, seed: int = 0) -> PerturbationCloud:
    A = np.asarray(A, dtype=np.float64)
    lam, kappa, _ = condition_numbers(A)
    rng = np.random.default_rng(seed)
    out = np.empty((samples, len(lam)), dtype=np.complex128)
    for s in range(samples):
        G = rng.standard_normal(A.shape)
        out[s] = _match(lam, np.linalg.eigvals(A + G * (eps / np.linalg.norm(G, 2))))
    return PerturbationCloud(lam, kappa, float(eps), out, np.abs(out - lam).max(axis=0))


@dataclass(frozen=True)
class PrecisionCheck:
    """A head's eigenvalues in float32 and float64 against the exact ones, and what theory allows.

    rotated: whether the matrix analysed is M = Q A Qᵀ (Q a fixed random rotation, formed in float64: the same
    eigenvalues and condition numbers as A, with A's triangle hidden) rather than A itself. reference: (n,)
    complex, the diagonal of A for a causal (triangular) head, exact; else float64 geev. exact: whether the
    reference is the diagonal. eig64, eig32: (n,) LAPACK geev of M in float64 (dgeev) and of M rounded to
    float32 (sgeev), each paired with reference. kappa: (n,) condition numbers. norm: ‖M‖₂. err64, err32: (n,)
    |computed − reference|. bound64, bound32: (n,) κ(λ) · n · eps · ‖M‖₂ in each precision (first order, c = 1);
    within64, within32: how many errors are within SAFETY times their bound."""

    rotated: bool
    reference: np.ndarray
    exact: bool
    eig64: np.ndarray
    eig32: np.ndarray
    kappa: np.ndarray
    norm: float
    err64: np.ndarray
    err32: np.ndarray
    bound64: np.ndarray
    bound32: np.ndarray

    @property
    def within64(self) -> int:
        return int(np.sum(self.err64 <= SAFETY * self.bound64))

    @property
    def within32(self) -> int:
        return int(np.sum(self.err32 <= SAFETY * self.bound32))


def precision_check(A: np.ndarray, *, causal: bool, rotate: bool = False, seed: int = 0) -> PrecisionCheck:
    """A (n, n) attention matrix as captured (float32). ``rotate``: analyse Q A Qᵀ instead (LAPACK's balancing
    permutes a triangular matrix into triangular form and reads its diagonal exactly in any precision; the
    rotation takes that shortcut away and shows what conditioning does)."""
    A64 = np.asarray(A, dtype=np.float32).astype(np.float64)
    n = A64.shape[0]
    if rotate:
        Q = random_orthogonal(n, seed)
        M64 = Q @ A64 @ Q.T
    else:
        M64 = A64
    M32 = M64.astype(np.float32)
    lam, kappa, _ = condition_numbers(M64)
    reference = np.diag(A64).astype(np.complex128) if causal else lam
    # Pair every eigenvalue with its reference; kappa follows lam, which is paired the same way.
    eig64 = _match(reference, lam)
    kappa = _match_values(reference, lam, kappa)
    eig32 = _match(reference, scipy.linalg.eigvals(M32).astype(np.complex128))
    norm = float(np.linalg.norm(M64, 2))
    return PrecisionCheck(
        rotated=rotate,
        reference=reference,
        exact=causal,
        eig64=eig64,
        eig32=eig32,
        kappa=kappa,
        norm=norm,
        err64=np.abs(eig64 - reference),
        err32=np.abs(eig32 - reference),
        bound64=kappa * n * EPS64 * norm,
        bound32=kappa * n * EPS32 * norm,
    )


def _match_values(reference: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values reordered as _match(reference, keys) reorders keys."""
    cost = np.abs(np.asarray(reference)[:, None] - np.asarray(keys)[None, :])
    rows, cols = linear_sum_assignment(cost)
    out = np.empty_like(np.asarray(values))
    out[rows] = np.asarray(values)[cols]
    return out


# ------------------------------------------------------------------------------------------------ exercises


def _pmatrix(M) -> str:
    """A small matrix as inline LaTeX for an exercise's markdown."""
    rows = [" & ".join(_num(x) for x in row) for row in np.asarray(M)]
    return r"$\begin{pmatrix}" + r" \\ ".join(rows) + r"\end{pmatrix}$"


def _num(x: float) -> str:
    x = float(x)
    return str(int(round(x))) if abs(x - round(x)) < 1e-12 else f"{x:.4g}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def pow10(p: int) -> str:
    """10 to an integer power, written with superscripts: pow10(-3) == "10⁻³"."""
    return "10" + str(int(p)).translate(_SUPERSCRIPT)


def _unimodular(rng: np.random.Generator) -> np.ndarray:
    """A 2x2 integer matrix with det 1 (so its inverse is an integer matrix too)."""
    k, m = rng.integers(1, 3) * rng.choice([-1, 1]), rng.integers(-1, 2)
    return np.array([[1, k], [0, 1]]) @ np.array([[1, 0], [m, 1]])


def _similar(rng: np.random.Generator, T: np.ndarray) -> np.ndarray:
    P = _unimodular(rng)
    P_inv = np.round(np.linalg.inv(P))
    return np.round(P @ T @ P_inv)


def charpoly_exercises(seed: int) -> tuple[Exercise, ...]:
    rng = instance_rng(seed, "charpoly", "eig")
    l1, l2 = rng.choice(np.arange(-3, 6), size=2, replace=False)
    A = _similar(rng, np.diag([l1, l2]).astype(float))
    lam = np.sort(np.linalg.eigvals(A).real)
    tr, det = np.trace(A), np.linalg.det(A)
    eig = Exercise(
        id="eig",
        question=f"A = {_pmatrix(A)}. What is its **largest eigenvalue**?",
        answer=float(lam[-1]),
        tolerance=0.01,
        hint="The roots of det(λI − A) = λ² − (tr A) λ + det A, with tr A = a + d and det A = ad − bc.",
        solution=(
            f"tr A = {_num(tr)}, det A = {_num(det)}, so det(λI − A) = λ² − ({_num(tr)})λ + ({_num(det)}), whose "
            f"roots are {_num(lam[0])} and {_num(lam[1])}. The largest is **{_num(lam[-1])}**."
        ),
    )
    rng = instance_rng(seed, "charpoly", "power")
    l1, l2 = rng.choice([-3, -2, -1, 1, 2, 3], size=2, replace=False)
    B = _similar(rng, np.diag([l1, l2]).astype(float))
    mu = np.linalg.eigvals(B).real
    power = Exercise(
        id="power",
        question=f"B = {_pmatrix(B)}. Without multiplying matrices: what is **tr(B³)**?",
        answer=float(np.sum(mu**3)),
        tolerance=0.5,
        hint="B = VΛV⁻¹ gives B³ = VΛ³V⁻¹, and the trace does not change under similarity: tr(B³) = λ₁³ + λ₂³.",
        solution=(
            f"The eigenvalues of B are {_num(mu[0])} and {_num(mu[1])} (roots of λ² − {_num(np.trace(B))}λ + "
            f"{_num(np.linalg.det(B))}). tr(B³) = tr(VΛ³V⁻¹) = tr(Λ³) = {_num(mu[0])}³ + {_num(mu[1])}³ = "
            f"**{_num(np.sum(mu**3))}**."
        ),
    )
    rng = instance_rng(seed, "charpoly", "defect")
    lam0 = int(rng.integers(-3, 4))
    coupling = int(rng.choice([0, 1, 2, -1]))
    C = _similar(rng, np.array([[lam0, coupling], [0, lam0]], dtype=float))
    geometric = 2 - int(np.linalg.matrix_rank(C - lam0 * np.eye(2)))
    defect = Exercise(
        id="defect",
        question=(
            f"C = {_pmatrix(C)} has the double eigenvalue λ = {lam0}. What is its **geometric multiplicity** "
            "(the dimension of its eigenspace)?"
        ),
        answer=geometric - 1,
        choices=("1: one eigenvector line, C is defective", "2: every vector is an eigenvector, C = λI"),
        hint="The eigenspace is the null space of C − λI: its dimension is 2 − rank(C − λI).",
        solution=(
            f"C − {lam0}I = {_pmatrix(C - lam0 * np.eye(2))} has rank {2 - geometric}, so the eigenspace has "
            f"dimension 2 − {2 - geometric} = **{geometric}**."
            + (" C cannot be diagonalised (V would be singular)." if geometric == 1 else " C is λI.")
        ),
    )
    return eig, power, defect


def _max_off_diagonal(a: int, c: int) -> int:
    """The largest integer b with b² < ac (a, c >= 1 integers): [[a, b], [b, c]] is positive definite for
    every |b| up to it and for none beyond."""
    return int(np.floor(np.sqrt(a * c - 0.5)))


def _positive_definite(rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    """A random positive-definite [[a, b], [b, c]] of integers (float64), a and c in [low, high), low >= 1.
    Draws a, c, the sign of b and |b| in this order (an exercise's seed keeps its numbers)."""
    a, c = int(rng.integers(low, high)), int(rng.integers(low, high))
    b = int(rng.integers(-1, 2)) * int(rng.integers(0, _max_off_diagonal(a, c) + 1))
    return np.array([[a, b], [b, c]], dtype=float)


def psd_exercises(seed: int) -> tuple[Exercise, ...]:
    rng = instance_rng(seed, "psd", "kind")
    kinds = ("positive definite", "positive semidefinite", "indefinite", "negative definite")
    want = int(rng.integers(0, 4))
    p, q = int(rng.integers(1, 4)), int(rng.integers(-3, 4))
    a, c = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    if want == 0:
        b = int(rng.integers(-1, 2)) * _max_off_diagonal(a, c)
        S = np.array([[a, b], [b, c]])
    elif want == 1:
        S = np.array([[p * p, p * q], [p * q, q * q]])
    elif want == 2:
        b = int(np.floor(np.sqrt(a * c))) + int(rng.integers(1, 3))
        S = np.array([[a, b], [b, c]])
    else:
        b = int(rng.integers(-1, 2)) * _max_off_diagonal(a, c)
        S = -np.array([[a, b], [b, c]])
    lam = np.linalg.eigvalsh(S.astype(float))
    kind = classify_symmetric(lam, 1e-9)
    kind_ex = Exercise(
        id="kind",
        question=f"S = {_pmatrix(S)}. Which is it?",
        answer=kinds.index(kind),
        choices=tuple(k.capitalize() for k in kinds),
        hint="For a symmetric 2×2: det S = λ₁λ₂ and tr S = λ₁ + λ₂. The signs of det and trace give the signs "
        "of both eigenvalues.",
        solution=(
            f"det S = {_num(np.linalg.det(S))}, tr S = {_num(np.trace(S))}; the eigenvalues are "
            f"{_num(lam[1])} and {_num(lam[0])}, so S is **{kind}**."
        ),
    )
    rng = instance_rng(seed, "psd", "axis")
    T = _positive_definite(rng, 2, 7)
    mu = np.linalg.eigvalsh(T)
    axis = Exercise(
        id="axis",
        question=(
            f"The ellipse xᵀ S x = 1 for S = {_pmatrix(T)}: how long is its **longest half-axis** (centre to "
            "the farthest point)?"
        ),
        answer=float(1 / np.sqrt(mu[0])),
        tolerance=0.01,
        hint="Along an eigenvector v (unit), xᵀSx = λ t² for x = t v, so the curve meets it at t = 1/√λ. "
        "Which eigenvalue makes that longest?",
        solution=(
            f"The eigenvalues of S are {mu[0]:.4g} and {mu[1]:.4g}; the smaller gives the longer half-axis "
            f"1/√{mu[0]:.4g} = **{1 / np.sqrt(mu[0]):.4g}**."
        ),
    )
    return kind_ex, axis


def rayleigh_exercises(seed: int) -> tuple[Exercise, ...]:
    rng = instance_rng(seed, "rayleigh", "max")
    a, c = int(rng.integers(-3, 5)), int(rng.integers(-3, 5))
    b = int(rng.integers(-3, 4))
    S = np.array([[a, b], [b, c]], dtype=float)
    lam = np.linalg.eigvalsh(S)
    top = Exercise(
        id="max",
        question=f"S = {_pmatrix(S)}. What is the **largest value of xᵀSx over unit vectors x**?",
        answer=float(lam[-1]),
        tolerance=0.01,
        hint="The Rayleigh quotient's maximum over the unit circle is an eigenvalue of S: which one?",
        solution=(
            f"max r(x) = λ_max (Courant-Fischer, k = 1). λ = ((a + c) ± √((a − c)² + 4b²)) / 2 = "
            f"{lam[0]:.4g}, {lam[1]:.4g}, so the maximum is **{lam[1]:.4g}**, at the top eigenvector."
        ),
    )
    rng = instance_rng(seed, "rayleigh", "interlace")
    l3 = int(rng.integers(-3, 2))
    l2 = l3 + int(rng.integers(2, 4))
    l1 = l2 + int(rng.integers(2, 4))
    mid1, mid2 = (l1 + l2) / 2, (l2 + l3) / 2
    candidates = [
        (mid1, mid2),  # interlaces
        (l1 + 1, mid2),  # μ₁ above λ₁
        (mid1, l3 - 1),  # μ₂ below λ₃
        (l1 - 0.5, mid1),  # both above λ₂
    ]

    def interlaces(mu) -> bool:
        return l1 >= mu[0] >= l2 >= mu[1] >= l3

    order = rng.permutation(len(candidates))
    shown = [candidates[i] for i in order]
    answer = next(i for i, mu in enumerate(shown) if interlaces(mu))
    interlace = Exercise(
        id="interlace",
        question=(
            f"A symmetric 3×3 S has eigenvalues {l1}, {l2}, {l3}. Delete its first row and column: which pair "
            "**can** be the eigenvalues of the 2×2 that is left?"
        ),
        answer=answer,
        choices=tuple(f"{_num(m1)} and {_num(m2)}" for m1, m2 in shown),
        hint="Cauchy interlacing: λ₁ ≥ μ₁ ≥ λ₂ ≥ μ₂ ≥ λ₃.",
        solution=(
            f"Interlacing needs {l1} ≥ μ₁ ≥ {l2} ≥ μ₂ ≥ {l3}; only **{_num(shown[answer][0])} and "
            f"{_num(shown[answer][1])}** fits (every such pair happens for some S)."
        ),
    )
    return top, interlace


def pca_exercises(seed: int) -> tuple[Exercise, ...]:
    rng = instance_rng(seed, "pca", "share")
    C = _positive_definite(rng, 1, 9)
    lam = np.linalg.eigvalsh(C)
    share = Exercise(
        id="share",
        question=(
            f"Data in the plane has covariance C = {_pmatrix(C)}. What **share of the variance** does the first "
            "principal component explain (a number between 0 and 1)?"
        ),
        answer=float(lam[-1] / lam.sum()),
        tolerance=0.01,
        hint="The variance along PC1 is C's largest eigenvalue; the total variance is the trace of C.",
        solution=(
            f"λ₁ = {lam[-1]:.4g}, total = tr C = {_num(np.trace(C))}, share = {lam[-1]:.4g} / {_num(np.trace(C))} "
            f"= **{lam[-1] / lam.sum():.4g}**."
        ),
    )
    rng = instance_rng(seed, "pca", "keep")
    lam4 = np.sort(rng.integers(1, 30, size=4))[::-1].astype(float)
    lam4[0] += 20
    cum = np.cumsum(lam4) / lam4.sum()
    k = int(np.argmax(cum >= 0.9 - 1e-12)) + 1
    keep = Exercise(
        id="keep",
        question=(
            "A covariance has eigenvalues " + ", ".join(_num(x) for x in lam4) + ". How many principal "
            "components do you need to keep **at least 90 %** of the variance?"
        ),
        answer=k - 1,
        choices=("1", "2", "3", "4"),
        hint="Add the eigenvalues from the largest until the sum reaches 90 % of the total.",
        solution=(
            f"Total {_num(lam4.sum())}; the cumulative shares are "
            + ", ".join(f"{100 * x:.1f} %" for x in cum)
            + f", so **{k}** component(s)."
        ),
    )
    return share, keep


def weyl_exercises(seed: int) -> tuple[Exercise, ...]:
    rng = instance_rng(seed, "weyl", "disc")
    A = rng.integers(-3, 4, size=(3, 3)).astype(float)
    A[np.diag_indices(3)] = rng.integers(-6, 7, size=3)
    radii = np.abs(A).sum(axis=1) - np.abs(np.diag(A))
    bound = float(np.max(np.diag(A) + radii))
    disc = Exercise(
        id="disc",
        question=(
            f"A = {_pmatrix(A)}. From the Gershgorin row discs alone: what is the **largest real part** an "
            "eigenvalue of A can have?"
        ),
        answer=bound,
        tolerance=0.01,
        hint="Disc i has centre a_ii and radius Σ_{j≠i} |a_ij|; its rightmost point is a_ii + radius.",
        solution=(
            "Rightmost points a_ii + R_i: "
            + ", ".join(
                f"{_num(d)} + {_num(r)} = {_num(d + r)}" for d, r in zip(np.diag(A), radii, strict=True)
            )
            + f". The bound is the largest, **{_num(bound)}**."
        ),
    )
    rng = instance_rng(seed, "weyl", "shift")
    sigma = np.round(np.sort(rng.uniform(0.5, 6.0, size=3))[::-1], 1)
    e = float(np.round(rng.uniform(0.05, 0.45), 2))
    low = float(max(sigma[2] - e, 0.0))
    shift = Exercise(
        id="shift",
        question=(
            "W has singular values " + ", ".join(f"{s:.1f}" for s in sigma) + f" and a quantization error E "
            f"with ‖E‖₂ = {e:.2f}. What is the **smallest σ₃(W + E) can be**?"
        ),
        answer=low,
        tolerance=0.01,
        hint="Weyl: |σ_i(W + E) − σ_i(W)| ≤ ‖E‖₂ for every i.",
        solution=f"σ₃(W + E) ≥ σ₃(W) − ‖E‖₂ = {sigma[2]:.1f} − {e:.2f} = **{low:.4g}** (and E = −{e:.2f}·u₃v₃ᵀ "
        "reaches it).",
    )
    return disc, shift


def conditioning_exercises(seed: int) -> tuple[Exercise, ...]:
    rng = instance_rng(seed, "conditioning", "kappa")
    a = int(rng.integers(1, 5))
    d = a - int(rng.choice([1, 2]))
    b = int(rng.integers(1, 6)) * int(rng.choice([-1, 1]))
    A = np.array([[a, b], [0, d]], dtype=float)
    kappa = float(np.sqrt(1 + (b / (a - d)) ** 2))
    kappa_ex = Exercise(
        id="kappa",
        question=f"A = {_pmatrix(A)}. What is the **condition number κ(λ) of its eigenvalue λ = {a}**?",
        answer=kappa,
        tolerance=0.01,
        hint="κ(λ) = ‖x‖‖y‖ / |yᵀx|: x = (1, 0) is the right eigenvector; solve yᵀA = λyᵀ for the left one.",
        solution=(
            f"x = (1, 0); yᵀA = {a}yᵀ gives y = (1, b/(a − d)) = (1, {_num(b / (a - d))}). yᵀx = 1, so κ = √(1 + "
            f"{_num((b / (a - d)) ** 2)}) = **{kappa:.4g}**."
        ),
    )
    rng = instance_rng(seed, "conditioning", "move")
    m = int(rng.integers(2, 7))
    k = int(rng.integers(m + 3, m + 9))
    options = [-k, m - k, -k - m, m]
    order = rng.permutation(4)
    shown = [options[i] for i in order]
    move = Exercise(
        id="move",
        question=(
            f"An eigenvalue has condition number κ ≈ {pow10(m)}. The matrix is perturbed by E with ‖E‖₂ = "
            f"{pow10(-k)}. About **how far can the eigenvalue move**?"
        ),
        answer=shown.index(m - k),
        choices=tuple(f"about {pow10(p)}" for p in shown),
        hint="To first order |Δλ| ≤ κ(λ) ‖E‖.",
        solution=f"|Δλ| ≈ κ ‖E‖ = {pow10(m)} · {pow10(-k)} = **{pow10(m - k)}**.",
    )
    return kappa_ex, move
