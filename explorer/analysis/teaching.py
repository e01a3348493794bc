"""The maths behind the Learn page's six walkthroughs, small and exact, each testable against numpy/scipy.

1. ``plane_2x2``: a 2x2 matrix acting on the plane (eigenvalues, real eigenvectors, trace, determinant,
   characteristic polynomial, the image of the unit circle and of a grid).
2. ``power_iteration`` and ``lanczos``: iterative eigen-solvers step by step, with the convergence theory.
3. ``gradient_descent``: GD on a 2-D quadratic against its closed form (1 - eta lambda_i)^t.
4. ``temperature_sweep``: eigenvalues of a real attention head as the softmax temperature changes.
5. ``transient_growth``: ||J^t|| of a non-normal matrix against rho^t and kappa(V) rho^t, with its Schur form.
6. ``svd_factors`` / ``best_rank_k``: the best rank-k approximation and its Eckart-Young error.
7. The exercises of these six: ``<id>_instance(seed)`` (the numbers one student is given) and
   ``<id>_exercises(seed)`` (questions, answers computed here with numpy, hints, worked solutions).

Eigenvalues follow docs/ARCHITECTURE.md section 2 (LAPACK geev, sorted by decreasing modulus). Everything is float64
numpy; results are frozen dataclasses with shapes in their docstrings.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

from explorer.analysis.exercises import Exercise, instance_rng
from explorer.analysis.matrices import weight_matrices
from explorer.spectra import attention_spectra as spec
from explorer.spectra.curvature import stability_threshold
from explorer.spectra.ranks import energy_rank


def sort_by_modulus(eigvals: np.ndarray) -> np.ndarray:
    """Eigenvalues (n,) sorted as everywhere in the app (spectra.attention_spectra.sort_by_modulus), as numpy."""
    return spec.sort_by_modulus(torch.from_numpy(np.asarray(eigvals, dtype=np.complex128))).numpy()


def _unit_sign(v: np.ndarray) -> np.ndarray:
    """Unit vector with the project's sign convention (spectra.attention_spectra.fix_signs)."""
    v = np.asarray(v, dtype=np.float64)
    v = spec.fix_signs(torch.from_numpy(v / np.linalg.norm(v))[:, None])[:, 0].numpy()
    return v + 0.0  # + 0.0 turns -0.0 into 0.0


# --------------------------------------------------------------------------------------------------------
# 1. A 2x2 matrix acting on the plane

#: name -> (label, matrix). Exact entries on the page's slider grid (multiples of 0.05): the rotation uses
#: cos = 0.8, sin = 0.6 (a 3-4-5 triangle), the reflection is across the line through (2, 1).
PRESETS_2X2: dict[str, tuple[str, tuple[tuple[float, float], tuple[float, float]]]] = {
    "rotation": ("Rotation by 36.9°", ((0.8, -0.6), (0.6, 0.8))),
    "shear": ("Shear", ((1.0, 1.0), (0.0, 1.0))),
    "symmetric": ("Symmetric", ((2.0, 1.0), (1.0, 2.0))),
    "projection": ("Projection onto a line", ((0.5, 0.5), (0.5, 0.5))),
    "reflection": ("Reflection across a line", ((0.6, 0.8), (0.8, -0.6))),
    "jordan": ("Defective (Jordan block)", ((0.8, 1.0), (0.0, 0.8))),
    "stochastic": ("Row-stochastic (like attention)", ((0.9, 0.1), (0.4, 0.6))),
}


def preset_label(matrix) -> str | None:
    """The label of the preset equal to ``matrix`` (2, 2) up to rounding (np.allclose), None when none is."""
    M = np.asarray(matrix, dtype=np.float64)
    return next((label for label, P in PRESETS_2X2.values() if np.allclose(P, M)), None)


@dataclass(frozen=True)
class Plane2x2:
    """A 2x2 matrix M and what it does to the plane.

    matrix: (2, 2) float64. eigvals: (2,) complex128, sorted by decreasing modulus.
    kind: "distinct" (two real eigenvalues), "complex" (a conjugate pair, no real eigenvector), "scalar"
    (M = lambda I: every vector is an eigenvector) or "defective" (one repeated eigenvalue, one eigenvector line).
    eigvecs: (k, 2) float64 unit real eigenvectors drawn in the plane (k = 0, 1 or 2); eigvec_values: (k,) float64.
    trace, det, discriminant (trace^2 - 4 det). charpoly: (3,) coefficients of lambda^2 - trace lambda + det.
    singular_values: (2,) float64, the semi-axes of the ellipse the unit circle is mapped to.
    circle, circle_image: (2, points) the unit circle and M @ circle.
    grid, grid_image: (lines, 2, 2) segment end points [line, xy, end] of a square grid and their images.
    """

    matrix: np.ndarray
    eigvals: np.ndarray
    kind: str
    eigvecs: np.ndarray
    eigvec_values: np.ndarray
    trace: float
    det: float
    discriminant: float
    charpoly: np.ndarray
    singular_values: np.ndarray
    circle: np.ndarray
    circle_image: np.ndarray
    grid: np.ndarray
    grid_image: np.ndarray


def _null_vector(B: np.ndarray) -> np.ndarray:
    """Unit vector spanning the (numerical) null space of a rank-1 2x2 matrix: last right singular vector."""
    return _unit_sign(np.linalg.svd(B)[2][-1])


def plane_2x2(
    matrix, *, circle_points: int = 121, grid_half_width: float = 1.5, grid_lines: int = 7
) -> Plane2x2:
    """Analyse a 2x2 real matrix. ``matrix``: (2, 2) array-like."""
    M = np.asarray(matrix, dtype=np.float64).reshape(2, 2)
    trace = float(np.trace(M))
    det = float(np.linalg.det(M))
    disc = trace**2 - 4 * det
    eigvals = sort_by_modulus(np.linalg.eigvals(M))
    scale = max(1.0, float(np.abs(M).max())) ** 2
    tol = 1e-9 * scale
    if abs(disc) <= tol:
        disc = 0.0  # a repeated eigenvalue; rounding (e.g. 2.56 - 2.56 = 4e-16) would print as noise
    if disc < -tol:
        kind, vecs, vals = "complex", np.zeros((0, 2)), np.zeros(0)
    elif disc > tol:
        kind = "distinct"
        vals = np.sort(eigvals.real)[::-1].copy()
        vecs = np.array([_null_vector(M - lam * np.eye(2)) for lam in vals])
    else:  # one repeated real eigenvalue
        lam = trace / 2
        eigvals = np.array([lam, lam], dtype=np.complex128)
        if np.abs(M - lam * np.eye(2)).max() <= 1e-9 * max(1.0, abs(lam)):
            kind, vecs, vals = "scalar", np.eye(2), np.array([lam, lam])
        else:
            kind, vecs, vals = "defective", _null_vector(M - lam * np.eye(2))[None, :], np.array([lam])
    t = np.linspace(0, 2 * np.pi, circle_points)
    circle = np.stack([np.cos(t), np.sin(t)])
    ticks = np.linspace(-grid_half_width, grid_half_width, grid_lines)
    ends = np.array([-grid_half_width, grid_half_width])
    vertical = [np.stack([np.full(2, x), ends]) for x in ticks]
    horizontal = [np.stack([ends, np.full(2, y)]) for y in ticks]
    grid = np.array(vertical + horizontal)  # (lines, 2, 2)
    return Plane2x2(
        matrix=M,
        eigvals=eigvals,
        kind=kind,
        eigvecs=vecs,
        eigvec_values=vals,
        trace=trace,
        det=det,
        discriminant=float(disc),
        charpoly=np.array([1.0, -trace, det]),
        singular_values=np.linalg.svd(M, compute_uv=False),
        circle=circle,
        circle_image=M @ circle,
        grid=grid,
        grid_image=np.einsum("ij,ljp->lip", M, grid),
    )


# --------------------------------------------------------------------------------------------------------
# 2. Power iteration and Lanczos


def random_orthogonal(n: int, seed: int = 0) -> np.ndarray:
    """A fixed random orthogonal (n, n) matrix (QR of a Gaussian matrix, signs fixed so it is Haar)."""
    rng = np.random.default_rng(seed)
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    return Q * np.sign(np.diag(R))


def example_symmetric(n: int = 40, ratio: float = 0.8, seed: int = 0) -> np.ndarray:
    """Symmetric (n, n) matrix with eigenvalues 1, ``ratio`` and n - 2 more evenly spread in
    [-0.9 ratio, 0.9 ratio], in a random orthonormal basis. So |lambda_2 / lambda_1| = ratio exactly."""
    rest = np.linspace(-0.9 * ratio, 0.9 * ratio, max(n - 2, 0))
    lam = np.concatenate([[1.0, ratio], rest])[:n]
    Q = random_orthogonal(n, seed)
    S = (Q * lam) @ Q.T
    return (S + S.T) / 2


def symmetric_part(A: np.ndarray) -> np.ndarray:
    """S = (A + A^T) / 2, float64: real eigenvalues and orthonormal eigenvectors (docs/ARCHITECTURE.md section 2)."""
    A = np.asarray(A, dtype=np.float64)
    return (A + A.T) / 2


@dataclass(frozen=True)
class PowerIteration:
    """Power iteration x_{k+1} = A x_k / ||A x_k|| from a fixed random start.

    iterates: (steps + 1, n) float64 unit vectors x_0..x_steps. rayleigh: (steps + 1,) x_k^T A x_k.
    eigvals: (n,) complex128, the reference spectrum (eigh if symmetric, else geev), sorted by modulus.
    lambda1, lambda2 (properties: eigvals[0], eigvals[1]): the two largest-modulus eigenvalues; rate =
    |lambda2 / lambda1| (1.0 when tied).
    v1: (n,) float64 unit eigenvector of lambda1, largest entry positive (iterates may point the other way).
    tan_angle: (steps + 1,) tan of the angle between x_k and v1 (inf when orthogonal).
    value_error: (steps + 1,) |rayleigh_k - lambda1|.
    vector_line (a property): (steps + 1,) tan_angle[0] * rate^k; an upper bound on tan_angle when A is
    symmetric.
    value_line: (steps + 1,) max_i |lambda1 - lambda_i| tan_angle[0]^2 rate^(2k) (symmetric: an upper bound
    on value_error), else value_error[0] * rate^k (a slope for reference only).
    """

    iterates: np.ndarray
    rayleigh: np.ndarray
    eigvals: np.ndarray
    rate: float
    v1: np.ndarray
    tan_angle: np.ndarray
    value_error: np.ndarray
    value_line: np.ndarray
    symmetric: bool

    @property
    def n(self) -> int:
        return self.iterates.shape[1]

    @property
    def lambda1(self) -> complex:
        return complex(self.eigvals[0])

    @property
    def lambda2(self) -> complex:
        return complex(self.eigvals[1])

    @property
    def vector_line(self) -> np.ndarray:
        return self.tan_angle[0] * self.rate ** np.arange(self.tan_angle.size)


def power_iteration(A: np.ndarray, steps: int, seed: int = 0) -> PowerIteration:
    """Run ``steps`` power-iteration steps on the square matrix ``A`` (n, n) from a seeded Gaussian start.

    Requires n >= 2. The theory (Golub & Van Loan, section 8.2.1) for symmetric A with x_0 = sum c_i v_i:
    tan theta_k <= |lambda2/lambda1|^k tan theta_0 and |r_k - lambda1| <= max|lambda1 - lambda_i| tan^2
    theta_0 |lambda2/lambda1|^(2k). For a non-symmetric A only the slope |lambda2/lambda1|^k survives.
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    if A.shape != (n, n) or n < 2:
        raise ValueError("power iteration needs a square matrix of size at least 2")
    symmetric = bool(np.allclose(A, A.T, rtol=0, atol=1e-12 * max(1.0, np.abs(A).max())))
    if symmetric:
        w, V = np.linalg.eigh(A)
        order = np.lexsort((-w, -np.round(np.abs(w), 12)))
        eigvals = w[order].astype(np.complex128)
        v1 = V[:, order[0]]
    else:
        w, V = np.linalg.eig(A)
        order = spec.sort_by_modulus_order(torch.from_numpy(w)).numpy()
        eigvals = w[order]
        v1 = V[:, order[0]]
        v1 = (v1 * np.exp(-1j * np.angle(v1[np.argmax(np.abs(v1))]))).real  # Perron vector: real up to phase
    v1 = _unit_sign(v1)
    lam1, lam2 = eigvals[0], eigvals[1]
    rate = float(min(1.0, abs(lam2) / abs(lam1))) if abs(lam1) > 0 else 1.0

    x = np.random.default_rng(seed).standard_normal(n)
    x /= np.linalg.norm(x)
    iterates = [x]
    for _ in range(steps):
        y = A @ x
        norm = np.linalg.norm(y)
        if norm == 0:  # x fell into the null space: the iteration cannot continue
            y, norm = x, 1.0
        x = y / norm
        iterates.append(x)
    X = np.array(iterates)
    rayleigh = np.einsum("ki,ij,kj->k", X, A, X)
    cos = np.abs(X @ v1)
    sin = np.linalg.norm(
        X - np.outer(X @ v1, v1), axis=1
    )  # not sqrt(1 - cos^2): that cancels for tiny angles
    with np.errstate(divide="ignore"):
        tan_angle = sin / cos
    value_error = np.abs(rayleigh - lam1)
    k = np.arange(steps + 1)
    if symmetric:
        spread = float(np.abs(lam1 - eigvals).max())
        value_line = spread * tan_angle[0] ** 2 * rate ** (2 * k)
    else:
        value_line = value_error[0] * rate**k
    return PowerIteration(
        iterates=X,
        rayleigh=rayleigh,
        eigvals=eigvals,
        rate=rate,
        v1=v1,
        tan_angle=tan_angle,
        value_error=value_error,
        value_line=value_line,
        symmetric=symmetric,
    )


@dataclass(frozen=True)
class LanczosRun:
    """Lanczos on a symmetric S (n, n) with full reorthogonalization.

    alpha: (m,) and beta: (m - 1,) the tridiagonal T_m (m <= steps; fewer when an invariant subspace is found).
    basis: (n, m) the orthonormal Lanczos vectors Q_m, with Q_m^T S Q_m = T_m.
    ritz (a property, from alpha and beta): (m, m) float64; row j holds the j + 1 Ritz values (eigenvalues of
    T_{j+1}) ascending, NaN-padded.
    eigvals: (n,) float64 ascending, every eigenvalue of S (eigh), for reference.
    eigsh_largest, eigsh_smallest: (k,) ascending, scipy.sparse.linalg.eigsh's k = min(3, n - 1) extreme ones.
    """

    alpha: np.ndarray
    beta: np.ndarray
    basis: np.ndarray
    eigvals: np.ndarray
    eigsh_largest: np.ndarray
    eigsh_smallest: np.ndarray

    @functools.cached_property
    def ritz(self) -> np.ndarray:
        """Derived from alpha and beta (computed once, on first use): see the class docstring."""
        m = len(self.alpha)
        ritz = np.full((m, m), np.nan)
        for j in range(m):
            ritz[j, : j + 1] = scipy.linalg.eigvalsh_tridiagonal(self.alpha[: j + 1], self.beta[:j])
        return ritz

    @property
    def steps(self) -> int:
        return len(self.alpha)

    def largest_ritz(self, steps: int) -> float:
        """The largest Ritz value after ``steps`` (1..m) steps: the largest eigenvalue of T_steps."""
        return float(self.ritz[steps - 1, steps - 1])


def _eigsh(S: np.ndarray, k: int, which: str, v0: np.ndarray) -> np.ndarray:
    """ARPACK's k extreme eigenvalues; the converged ones (NaN for the rest) if it does not converge."""
    try:
        return scipy.sparse.linalg.eigsh(S, k=k, which=which, v0=v0, return_eigenvectors=False)
    except scipy.sparse.linalg.ArpackNoConvergence as err:
        return np.concatenate([err.eigenvalues, np.full(k - len(err.eigenvalues), np.nan)])


def lanczos(S: np.ndarray, steps: int, seed: int = 0) -> LanczosRun:
    """``steps`` Lanczos steps on the symmetric (n, n) matrix S from a seeded Gaussian start.

    Plain Lanczos loses orthogonality of its basis in floating point as soon as a Ritz value converges
    (ghost copies of eigenvalues appear); full reorthogonalization (Gram-Schmidt against every previous
    basis vector, twice) removes that at O(n m^2) cost, which is nothing at these sizes.
    """
    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    if S.shape != (n, n) or n < 3:
        raise ValueError("Lanczos needs a square symmetric matrix of size at least 3")
    steps = int(min(steps, n))
    q = np.random.default_rng(seed).standard_normal(n)
    Q = np.zeros((n, steps))
    Q[:, 0] = q / np.linalg.norm(q)
    alpha, beta = [], []
    tiny = 1e-12 * max(1.0, np.abs(S).max())
    for j in range(steps):
        w = S @ Q[:, j]
        alpha.append(float(Q[:, j] @ w))
        w -= alpha[j] * Q[:, j]
        if j > 0:
            w -= beta[j - 1] * Q[:, j - 1]
        for _ in range(2):  # "twice is enough" (Kahan-Parlett)
            w -= Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)
        b = float(np.linalg.norm(w))
        if j + 1 == steps or b < tiny:  # done, or an invariant subspace: the Ritz values are exact
            break
        beta.append(b)
        Q[:, j + 1] = w / b
    alpha_arr, beta_arr = np.array(alpha), np.array(beta[: len(alpha) - 1])
    m = len(alpha_arr)
    k = min(3, n - 1)
    v0 = np.ones(n) / np.sqrt(n)  # a fixed start, so eigsh is deterministic
    largest, smallest = (_eigsh(S, k, which, v0) for which in ("LA", "SA"))
    return LanczosRun(
        alpha=alpha_arr,
        beta=beta_arr,
        basis=Q[:, :m].copy(),
        eigvals=np.linalg.eigvalsh(S),
        eigsh_largest=np.sort(largest),
        eigsh_smallest=np.sort(smallest),
    )


# --------------------------------------------------------------------------------------------------------
# 3. Gradient descent on a quadratic

GD_ROTATION_DEG = 30.0  # the quadratic's eigenvectors are the axes turned by this angle
GD_START = (-2.4, 1.6)
GD_ETA_SPAN = 1.25  # step sizes shown run from 0 to this many times 2 / lambda_max, so divergence is visible
GD_PAST = 1.04  # "just past" the threshold: a step this many times 2 / lambda_max (|1 - eta lam_max| = 1.08)


@dataclass(frozen=True)
class StepRange:
    """The step sizes that matter for GD on a 2-D quadratic with curvatures lam_max >= lam_min > 0.

    eta_max = 2 / lam_max (stability_threshold: larger steps diverge); eta_opt = 2 / (lam_max + lam_min), the
    step of the best rate; past = GD_PAST eta_max, a step that just diverges; high = GD_ETA_SPAN eta_max
    rounded to 4 decimals (the largest step offered) and resolution = high / 250 rounded to 5 decimals (the
    smallest step offered and the spacing between steps). All in the curvatures' inverse units.
    """

    eta_max: float
    eta_opt: float
    past: float
    high: float
    resolution: float


def gd_step_range(curvature_1: float, curvature_2: float) -> StepRange:
    """The step-size range for curvatures ``curvature_1``, ``curvature_2`` (> 0, either order)."""
    lam_max, lam_min = max(curvature_1, curvature_2), min(curvature_1, curvature_2)
    eta_max = stability_threshold(lam_max)
    high = round(GD_ETA_SPAN * eta_max, 4)
    return StepRange(
        eta_max=eta_max,
        eta_opt=2 / (lam_max + lam_min),
        past=eta_max * GD_PAST,
        high=high,
        resolution=round(high / 250, 5),
    )


@dataclass(frozen=True)
class GradientDescent:
    """Gradient descent x_{t+1} = x_t - eta H x_t on f(x) = x^T H x / 2, H = V diag(lam) V^T (2x2).

    hessian: (2, 2). eigvals: (2,) [lam_max, lam_min]; eigvecs: (2, 2), column i belongs to eigvals[i].
    eta: the step size. iterates: (steps + 1, 2) from running the update. closed_form: (steps + 1, 2)
    V diag((1 - eta lam_i)^t) V^T x_0. coords: (steps + 1, 2) c_i(t) = v_i^T x_t (eigen-coordinates).
    factors: (2,) 1 - eta lam_i. loss: (steps + 1,) f(x_t).
    eta_max = 2 / lam_max (divergence past it), eta_opt = 2 / (lam_max + lam_min), condition = lam_max / lam_min.
    rate = max_i |1 - eta lam_i| (error shrinks by this per step); rate_opt = (condition - 1) / (condition + 1).
    grid_x, grid_y: (g,) and grid_f: (g, g) f on a square grid (rows follow y) for contour plots.
    eta_grid: (e,) and rate_curves: (e, 2) |1 - eta lam_i| along eta, for the rate-against-step-size plot.
    """

    hessian: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    eta: float
    x0: np.ndarray
    iterates: np.ndarray
    closed_form: np.ndarray
    coords: np.ndarray
    factors: np.ndarray
    loss: np.ndarray
    eta_max: float
    eta_opt: float
    condition: float
    rate: float
    rate_opt: float
    grid_x: np.ndarray
    grid_y: np.ndarray
    grid_f: np.ndarray
    eta_grid: np.ndarray
    rate_curves: np.ndarray

    @property
    def diverges(self) -> bool:
        return self.rate > 1.0


def gradient_descent(
    curvature_1: float,
    curvature_2: float,
    eta: float,
    steps: int = 40,
    *,
    x0=GD_START,
    rotation_deg: float = GD_ROTATION_DEG,
    grid_half_width: float = 3.0,
    grid_points: int = 81,
) -> GradientDescent:
    """GD on the quadratic with Hessian eigenvalues ``curvature_1``, ``curvature_2`` (> 0), step ``eta``."""
    if curvature_1 <= 0 or curvature_2 <= 0:
        raise ValueError("curvatures must be positive")
    lam = np.array(sorted([float(curvature_1), float(curvature_2)], reverse=True))
    angle = np.deg2rad(rotation_deg)
    V = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    H = (V * lam) @ V.T
    x = np.asarray(x0, dtype=np.float64)
    iterates = [x]
    for _ in range(steps):
        x = x - eta * (H @ x)
        iterates.append(x)
    X = np.array(iterates)
    factors = 1 - eta * lam
    t = np.arange(steps + 1)[:, None]
    coords0 = V.T @ np.asarray(x0, dtype=np.float64)
    closed_coords = factors[None, :] ** t * coords0[None, :]
    g = np.linspace(-grid_half_width, grid_half_width, grid_points)
    gx, gy = np.meshgrid(g, g)
    pts = np.stack([gx, gy], axis=-1)
    grid_f = 0.5 * np.einsum("...i,ij,...j->...", pts, H, pts)
    eta_max = stability_threshold(lam[0])
    eta_grid = np.linspace(0, GD_ETA_SPAN * eta_max, 201)
    condition = lam[0] / lam[1]
    return GradientDescent(
        hessian=H,
        eigvals=lam,
        eigvecs=V,
        eta=float(eta),
        x0=np.asarray(x0, dtype=np.float64),
        iterates=X,
        closed_form=closed_coords @ V.T,
        coords=X @ V,
        factors=factors,
        loss=0.5 * np.einsum("ti,ij,tj->t", X, H, X),
        eta_max=float(eta_max),
        eta_opt=float(2 / (lam[0] + lam[1])),
        condition=float(condition),
        rate=float(np.abs(factors).max()),
        rate_opt=float((condition - 1) / (condition + 1)),
        grid_x=g,
        grid_y=g,
        grid_f=grid_f,
        eta_grid=eta_grid,
        rate_curves=np.abs(1 - eta_grid[:, None] * lam[None, :]),
    )


# --------------------------------------------------------------------------------------------------------
# 4. Softmax temperature and the attention spectrum


def leading_tokens(A: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` tokens' block of an attention matrix, rows renormalised to sum to 1 (float64).

    Renormalising is the softmax restricted to those keys; for a causal head the block is unchanged.
    """
    block = np.asarray(A, dtype=np.float64)[:n, :n]
    return block / block.sum(axis=1, keepdims=True)


def temperature_softmax(A: np.ndarray, tau: float) -> np.ndarray:
    """A_tau = row-softmax(log(A) / tau) for a row-stochastic A (query, key), float64 numpy.

    The app's one definition (spectra.attention_spectra.temperature): masked (zero) entries stay zero.
    """
    return spec.temperature(torch.from_numpy(np.asarray(A, dtype=np.float64)), tau).numpy()


def default_taus(frames: int = 25) -> np.ndarray:
    """Log-spaced temperatures from 0.1 to 10 (an odd count puts tau = 1 in the middle)."""
    return np.logspace(-1, 1, frames)


def nearest_on_log_scale(grid, value: float) -> int:
    """The index of the entry of ``grid`` (positive, shape (g,)) closest to ``value`` > 0 on a log scale."""
    return int(np.argmin(np.abs(np.log(np.asarray(grid, dtype=np.float64)) - np.log(value))))


@dataclass(frozen=True)
class TemperatureSweep:
    """Eigenvalues of A_tau for a sweep of temperatures.

    taus: (frame,). eigvals: (frame, n) complex128, each row sorted by decreasing modulus (geev).
    second_modulus: (frame,) |lambda_2|. entropy: (frame,) mean normalised row entropy in [0, 1]
    (rows with one allowed key skipped). n: tokens used; n_total: tokens in the text; causal: mask applied.
    """

    taus: np.ndarray
    eigvals: np.ndarray
    second_modulus: np.ndarray
    entropy: np.ndarray
    n: int
    n_total: int
    causal: bool

    def index_of(self, tau: float) -> int:
        """The frame whose temperature is closest to ``tau`` (on a log scale)."""
        return nearest_on_log_scale(self.taus, tau)


def temperature_sweep(A: np.ndarray, *, causal: bool, taus=None, max_tokens: int = 96) -> TemperatureSweep:
    """Eigenvalues of row-softmax(log A / tau) over ``taus`` for one head A (query, key), row-stochastic.

    Only the first ``max_tokens`` tokens are used (see ``leading_tokens``) so the sweep stays interactive.
    """
    taus = default_taus() if taus is None else np.asarray(taus, dtype=np.float64)
    n_total = A.shape[0]
    n = min(n_total, max_tokens)
    block = leading_tokens(A, n)
    eigvals, second, entropy = [], [], []
    for tau in taus:
        At = temperature_softmax(block, tau)
        lam = sort_by_modulus(np.linalg.eigvals(At))
        eigvals.append(lam)
        second.append(abs(lam[1]) if n > 1 else 0.0)
        entropy.append(float(spec.row_entropy(torch.from_numpy(At), causal)[1]))
    return TemperatureSweep(
        taus=taus,
        eigvals=np.array(eigvals),
        second_modulus=np.array(second),
        entropy=np.array(entropy),
        n=n,
        n_total=n_total,
        causal=causal,
    )


def example_attention(n: int = 12, *, causal: bool = True, seed: int = 0) -> np.ndarray:
    """A synthetic attention head (n, n) for a figure without a model (the handouts): row-softmax of seeded
    Gaussian scores (scale 2, so rows are neither one-hot nor uniform), lower-triangular when ``causal``."""
    scores = 2.0 * np.random.default_rng(seed).standard_normal((n, n))
    if causal:
        scores = np.where(np.tril(np.ones((n, n), dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------------------
# 5. Non-normal matrices and transient growth


def nonnormal_matrix(n: int, rho: float, coupling: float, seed: int = 0) -> np.ndarray:
    """J = Q T Q^T with T upper bidiagonal: diagonal rho (1 - 0.4 i / (n - 1)), i = 0..n-1 (distinct, so J is
    diagonalizable and kappa(V) is finite), superdiagonal ``coupling``; Q a fixed random orthogonal matrix so
    J looks dense. coupling = 0 gives a normal (symmetric) matrix with the same eigenvalues."""
    diag = rho * (1 - 0.4 * np.arange(n) / max(n - 1, 1))
    T = np.diag(diag) + np.diag(np.full(n - 1, float(coupling)), 1)
    Q = random_orthogonal(n, seed)
    return Q @ T @ Q.T


@dataclass(frozen=True)
class TransientGrowth:
    """Powers of a square matrix J (n, n).

    eigvals: (n,) complex128 sorted by modulus; rho: spectral radius; kappa_V: 2-norm condition number of
    the eigenvector matrix V (unit columns, numpy's eig), inf when J is defective.
    schur_T, schur_Q: (n, n) the real Schur form J = Q T Q^T (T quasi-upper-triangular; triangular when the
    eigenvalues are real). departure: Henrici's departure from normality ||strict upper part of T||_F.
    norms: (steps + 1,) ||J^t||_2. rho_powers: rho^t (a lower bound). bound: kappa_V rho^t (an upper bound).
    peak_t, peak_norm: where ||J^t|| is largest.
    """

    matrix: np.ndarray
    eigvals: np.ndarray
    rho: float
    kappa_V: float
    schur_T: np.ndarray
    schur_Q: np.ndarray
    departure: float
    norms: np.ndarray
    rho_powers: np.ndarray
    bound: np.ndarray
    peak_t: int
    peak_norm: float


def transient_growth(J: np.ndarray, steps: int = 40) -> TransientGrowth:
    """||J^t||_2 for t = 0..steps, with rho(J)^t <= ||J^t||_2 <= kappa(V) rho(J)^t (J = V Lambda V^-1)."""
    J = np.asarray(J, dtype=np.float64)
    n = J.shape[0]
    w, V = np.linalg.eig(J)
    eigvals = sort_by_modulus(w)
    rho = float(np.abs(w).max())
    kappa = float(np.linalg.cond(V))
    if not np.isfinite(kappa) or kappa > 1e15:
        kappa = float("inf")
    T, Q = scipy.linalg.schur(J, output="real")
    norms = [1.0 if n else 0.0]
    P = np.eye(n)
    for _ in range(steps):
        P = P @ J
        norms.append(float(np.linalg.norm(P, 2)))
    norms_arr = np.array(norms)
    t = np.arange(steps + 1)
    rho_powers = rho**t
    peak = int(np.argmax(norms_arr))
    return TransientGrowth(
        matrix=J,
        eigvals=eigvals,
        rho=rho,
        kappa_V=kappa,
        schur_T=T,
        schur_Q=Q,
        departure=float(np.linalg.norm(np.triu(T, 1))),
        norms=norms_arr,
        rho_powers=rho_powers,
        bound=kappa * rho_powers,
        peak_t=peak,
        peak_norm=float(norms_arr[peak]),
    )


# --------------------------------------------------------------------------------------------------------
# 6. SVD and the best rank-k approximation


def image_matrix(rows: int = 72, cols: int = 96) -> np.ndarray:
    """A picture-like (rows, cols) matrix in [0, 1]: a sky gradient (rank 1), a sun (disc), a house (rectangles
    and a triangular roof) and a field of slanted stripes. Deterministic. Axis-aligned shapes are low rank;
    round and slanted edges need many singular values."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    y /= rows - 1
    x /= cols - 1
    img = 0.55 + 0.35 * y  # the sky darkens toward the ground
    img = np.where((x - 0.78) ** 2 + ((y - 0.25) * rows / cols) ** 2 < 0.012, 0.05, img)  # sun
    house = (x > 0.18) & (x < 0.46) & (y > 0.45) & (y < 0.8)
    img = np.where(house, 0.3, img)
    roof = (y > 0.25) & (y <= 0.45) & (np.abs(x - 0.32) < (y - 0.25) * 0.9)
    img = np.where(roof, 0.15, img)
    door = (x > 0.29) & (x < 0.35) & (y > 0.62) & (y < 0.8)
    img = np.where(door, 0.8, img)
    field = y >= 0.8  # slanted square-wave stripes: full rank (vertical stripes would be rank 1)
    img = np.where(field, 0.55 + 0.3 * np.sign(np.sin(40 * (x + 0.5 * y))), img)
    return np.clip(img, 0.0, 1.0)


#: Attention projections offered as real weight matrices (small enough for an instant SVD).
WEIGHT_KINDS = ["attn_q", "attn_k", "attn_v", "attn_o"]


def pick_weight(model: torch.nn.Module, layer: int, kind: str) -> tuple[str, np.ndarray]:
    """(name, float64 copy of the (out, in) weight) of ``kind`` in ``layer``; ValueError if there is none."""
    for m in weight_matrices(model):
        if m.layer == layer and m.kind == kind:
            return m.name, m.weight.detach().to("cpu", torch.float64).numpy().copy()
    raise ValueError(f"Layer {layer} has no {kind} weight.")


@dataclass(frozen=True)
class SVDFactors:
    """W = U diag(S) Vh. matrix: (m, n); U: (m, r); S: (r,) decreasing; Vh: (r, n); r = min(m, n)."""

    matrix: np.ndarray
    U: np.ndarray
    S: np.ndarray
    Vh: np.ndarray

    @property
    def rank_max(self) -> int:
        return len(self.S)


def svd_factors(W: np.ndarray) -> SVDFactors:
    """Thin SVD (LAPACK gesdd via numpy) of a real (m, n) matrix, float64."""
    W = np.asarray(W, dtype=np.float64)
    U, S, Vh = np.linalg.svd(W, full_matrices=False)
    return SVDFactors(W, U, S, Vh)


@dataclass(frozen=True)
class LowRank:
    """The rank-k truncation W_k = U_k S_k Vh_k (Eckart-Young: the closest rank-k matrix in Frobenius and 2-norm).

    approx: (m, n). residual: W - W_k. error_fro: ||W - W_k||_F measured on the matrices; error_eckart_young:
    sqrt(sum_{i>k} sigma_i^2) from the singular values alone; error_spectral: sigma_{k+1} (0 if k = r).
    relative_error: error_fro / ||W||_F. energy_kept: sum_{i<=k} sigma_i^2 / sum sigma_i^2.
    errors_by_k: (r + 1,) the Eckart-Young error for every k = 0..r. params_full = m n, params_low = k (m + n),
    break_even = m n / (m + n) (a win only below it). k90, k99: energy ranks (explorer.spectra.ranks).
    """

    S: np.ndarray
    k: int
    matrix: np.ndarray
    approx: np.ndarray
    residual: np.ndarray
    error_fro: float
    error_eckart_young: float
    error_spectral: float
    relative_error: float
    energy_kept: float
    errors_by_k: np.ndarray
    params_full: int
    params_low: int
    break_even: float
    k90: int
    k99: int

    @property
    def params_change(self) -> float:
        """params_low / params_full - 1: the relative change in stored numbers (negative is a saving)."""
        return self.params_low / self.params_full - 1


def best_rank_k(factors: SVDFactors, k: int) -> LowRank:
    """Truncate an SVD to rank ``k`` (clamped to 0..r)."""
    S = factors.S
    r = len(S)
    k = int(min(max(k, 0), r))
    approx = (factors.U[:, :k] * S[:k]) @ factors.Vh[:k]
    residual = factors.matrix - approx
    energy = S**2
    tail = np.concatenate([np.cumsum(energy[::-1])[::-1], [0.0]])  # tail[k] = sum_{i>=k} sigma_i^2 (0-based)
    total = float(energy.sum())
    m, n = factors.matrix.shape
    norm = float(np.sqrt(total))
    return LowRank(
        S=S,
        k=k,
        matrix=factors.matrix,
        approx=approx,
        residual=residual,
        error_fro=float(np.linalg.norm(residual)),
        error_eckart_young=float(np.sqrt(tail[k])),
        error_spectral=float(S[k]) if k < r else 0.0,
        relative_error=float(np.linalg.norm(residual) / norm) if norm > 0 else 0.0,
        energy_kept=float(energy[:k].sum() / total) if total > 0 else 1.0,
        errors_by_k=np.sqrt(np.clip(tail, 0.0, None)),
        params_full=m * n,
        params_low=k * (m + n),
        break_even=m * n / (m + n),
        k90=int(energy_rank(S, 0.9)),
        k99=int(energy_rank(S, 0.99)),
    )


# --------------------------------------------------------------------------------------------------------
# 7. Exercises: one per-student instance per seed (explorer/analysis/exercises.py), answers by numpy
#
# Each walkthrough has an ``<id>_instance(seed)`` (the numbers a student is given, reproducible from the seed:
# tests recompute the answers from them with numpy, independently) and ``<id>_exercises(seed)`` (the
# questions, their answers, hints and worked solutions). Numbers in a question are exact as printed (small
# integers, one- or two-decimal values), so the answer follows from what the student reads. Tolerances are what
# a careful hand computation reaches (two decimals), never what a run happened to give.

NUMBER_TOLERANCE = 0.01  # two decimals: what a careful hand computation gives
RATE_TOLERANCE = 0.005  # a rate or a fraction, where 0.01 would let a neighbouring answer pass


def _num(x: float) -> str:
    """A number as a question prints it: exact for the values instances use (integers, two decimals)."""
    return f"{x:.4g}".replace("-", "−")


def _charpoly_text(trace: float, det: float) -> str:
    """λ² − trace·λ + det with the signs folded in: "λ² − 2λ − 2"."""
    b, c = -trace, det
    return (
        "λ²"
        + (f" {'−' if b < 0 else '+'} {abs(b):g}λ" if b else "")
        + (f" {'−' if c < 0 else '+'} {abs(c):g}" if c else "")
    )


def _matrix_text(M: np.ndarray) -> str:
    """``[[2, −1], [3, 0]]`` in code font (plain text: it reads the same on the page and in a handout)."""
    rows = ", ".join("[" + ", ".join(f"{v:g}" for v in row) + "]" for row in np.asarray(M))
    return f"`M = [{rows}]`"


# ---- 1. a 2x2 matrix

KIND_CHOICES_2X2 = (
    "two distinct real eigenvalues",
    "a complex-conjugate pair (no real eigenvector)",
    "one repeated eigenvalue with a single eigenvector line (defective)",
    "M = λI: every direction is an eigenvector",
)
_KINDS_2X2 = ("distinct", "complex", "defective")  # the kinds an instance draws (λI is too easy to spot)


@dataclass(frozen=True)
class Matrix2x2Instance:
    """largest: (2, 2) integer matrix with two distinct real eigenvalues (exercise "largest");
    kind_matrix: (2, 2) integer matrix of kind ``kind`` ("distinct", "complex" or "defective")."""

    largest: np.ndarray
    kind_matrix: np.ndarray
    kind: str


def _integer_2x2(rng: np.random.Generator, kind: str) -> np.ndarray:
    """A (2, 2) float64 matrix of small integers of the given kind (entries in -3..3 or a sheared Jordan block)."""
    if kind == "defective":
        lam, s, p = rng.integers(-2, 3), rng.choice([-2, -1, 1, 2]), rng.integers(-1, 2)
        P = np.array([[1.0, p], [0.0, 1.0]])  # integer and unimodular: P^-1 is integer too
        J = np.array([[lam, s], [0.0, lam]], dtype=np.float64)
        return P @ J @ np.linalg.inv(P).round()
    while True:
        M = rng.integers(-3, 4, size=(2, 2)).astype(np.float64)
        disc = (M[0, 0] - M[1, 1]) ** 2 + 4 * M[0, 1] * M[1, 0]  # exact in integers: trace^2 - 4 det
        if (kind == "distinct" and disc > 0 and M[0, 1] * M[1, 0] != 0) or (kind == "complex" and disc < 0):
            return M


def matrix2x2_instance(seed: int) -> Matrix2x2Instance:

    kind = _KINDS_2X2[int(instance_rng(seed, "matrix2x2", "kind_pick").integers(len(_KINDS_2X2)))]
    return Matrix2x2Instance(
        largest=_integer_2x2(instance_rng(seed, "matrix2x2", "largest"), "distinct"),
        kind_matrix=_integer_2x2(instance_rng(seed, "matrix2x2", "kind"), kind),
        kind=kind,
    )


def matrix2x2_exercises(seed: int) -> tuple[Exercise, ...]:
    """Two exercises: the larger eigenvalue of an integer 2x2 (number), and the kind of another (choice)."""

    inst = matrix2x2_instance(seed)
    M = inst.largest
    tr, det = float(np.trace(M)), float(np.linalg.det(M).round())
    lam = float(np.max(np.linalg.eigvals(M).real))
    K = inst.kind_matrix
    ktr, kdet = float(np.trace(K)), float(np.linalg.det(K).round())
    return (
        Exercise(
            "largest",
            f"{_matrix_text(M)} has two real eigenvalues. What is the larger one?",
            lam,
            hint="λ₁ + λ₂ = trace and λ₁ λ₂ = det: solve λ² − (trace) λ + det = 0.",
            solution=(
                f"trace = {_num(tr)}, det = {_num(det)}, so {_charpoly_text(tr, det)} = 0 and "
                f"λ = ({_num(tr)} ± √({_num(tr * tr - 4 * det)})) / 2. The larger is **{lam:.4f}**."
            ),
            tolerance=NUMBER_TOLERANCE,
        ),
        Exercise(
            "kind",
            f"What eigenvalues does {_matrix_text(K)} have?",
            {"distinct": 0, "complex": 1, "defective": 2}[inst.kind],
            hint="Compute the discriminant trace² − 4 det: > 0, < 0 or 0? At 0, is M − λI zero?",
            solution=(
                f"trace = {_num(ktr)}, det = {_num(kdet)}, trace² − 4 det = {_num(ktr * ktr - 4 * kdet)}. "
                + {
                    "distinct": "Positive: two distinct real eigenvalues.",
                    "complex": "Negative: a complex-conjugate pair, and no real direction is kept.",
                    "defective": (
                        f"Zero: one repeated eigenvalue λ = {_num(ktr / 2)}, and M − λI is not zero, so it has "
                        "rank 1 and only one eigenvector line: M is defective."
                    ),
                }[inst.kind]
            ),
            choices=KIND_CHOICES_2X2,
        ),
    )


# ---- 2. power iteration

POWER_RATIOS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
POWER_TARGET = 1e-3


@dataclass(frozen=True)
class PowerInstance:
    """ratio = |lambda_2 / lambda_1| of a symmetric matrix; the start has tan(theta_0) = 1."""

    ratio: float


def power_instance(seed: int) -> PowerInstance:

    rng = instance_rng(seed, "power", "ratio")
    return PowerInstance(ratio=float(POWER_RATIOS[int(rng.integers(len(POWER_RATIOS)))]))


def power_steps_needed(ratio: float, target: float = POWER_TARGET) -> int:
    """The smallest k with ratio^k <= target (0 < ratio < 1): the bound tan(theta_k) <= ratio^k tan(theta_0)
    with tan(theta_0) = 1 falls below ``target`` after this many steps."""
    return int(np.ceil(np.log(target) / np.log(ratio)))


def power_exercises(seed: int) -> tuple[Exercise, ...]:
    """Steps until the angle bound falls below 1e-3 (an integer), and the Rayleigh quotient's rate."""

    r = power_instance(seed).ratio
    k = power_steps_needed(r)
    return (
        Exercise(
            "steps",
            f"A symmetric matrix has |λ₂/λ₁| = {_num(r)}, and power iteration starts with tan θ₀ = 1. After how "
            "many steps k does the bound tan θ_k ≤ |λ₂/λ₁|^k tan θ₀ first fall below 10⁻³? (a whole number)",
            k,
            hint="Solve |λ₂/λ₁|^k ≤ 10⁻³ for k with logarithms, and round up.",
            solution=(
                f"k ≥ log(10⁻³) / log({_num(r)}) = {np.log(POWER_TARGET) / np.log(r):.3f}, so **k = {k}** "
                f"({_num(r)}^{k} = {r**k:.3g}, while {_num(r)}^{k - 1} = {r ** (k - 1):.3g})."
            ),
            tolerance=0.5,  # a whole number: the nearest integer and nothing else
        ),
        Exercise(
            "rayleigh_rate",
            f"Same matrix (|λ₂/λ₁| = {_num(r)}). By what factor does the bound on the Rayleigh quotient's error "
            "|r_k − λ₁| shrink per step?",
            r * r,
            hint="For a symmetric matrix the eigenvalue error goes with tan² θ_k: look at the exponent 2k.",
            solution=(
                f"|r_k − λ₁| ≤ max|λ₁ − λᵢ| tan²θ₀ |λ₂/λ₁|^(2k): the factor per step is "
                f"{_num(r)}² = **{r * r:.4f}**. The eigenvalue converges twice as fast (in digits) as the vector."
            ),
            tolerance=RATE_TOLERANCE,
        ),
    )


# ---- 3. gradient descent

GD_CURVATURES_MAX = (2.0, 2.5, 4.0, 5.0, 8.0, 10.0)
GD_CURVATURES_MIN = (0.5, 1.0, 1.5, 2.0)
GD_STEP_FACTORS = (0.8, 0.95, 1.05, 1.2)  # eta = factor * 2 / lambda_max: never exactly at the edge


@dataclass(frozen=True)
class GDInstance:
    """The quadratic's Hessian eigenvalues lam_max > lam_min > 0, and a step size eta (a multiple of 2 / lam_max
    that is not 1, so the iteration either converges or diverges)."""

    lam_max: float
    lam_min: float
    eta: float


def gd_instance(seed: int) -> GDInstance:

    rng = instance_rng(seed, "gd", "curvatures")
    lam_max = float(rng.choice(GD_CURVATURES_MAX))
    lam_min = float(rng.choice([c for c in GD_CURVATURES_MIN if c < lam_max]))
    factor = float(instance_rng(seed, "gd", "eta").choice(GD_STEP_FACTORS))
    return GDInstance(lam_max, lam_min, round(factor * 2 / lam_max, 4))


def gd_exercises(seed: int) -> tuple[Exercise, ...]:
    """The largest stable step 2/lambda_max, the best rate (kappa - 1)/(kappa + 1), converge or diverge."""

    g = gd_instance(seed)
    kappa = g.lam_max / g.lam_min
    setup = f"f(x) = ½ xᵀHx, where H has eigenvalues λ₁ = {_num(g.lam_max)} and λ₂ = {_num(g.lam_min)}."
    factors = np.abs(1 - g.eta * np.array([g.lam_max, g.lam_min]))
    diverges = bool(factors.max() > 1)
    return (
        Exercise(
            "eta_max",
            f"Gradient descent on {setup} What is the largest stable step size η?",
            2 / g.lam_max,
            hint="Along eigenvector i the error is multiplied by 1 − ηλᵢ each step; it must stay within (−1, 1).",
            solution=(
                f"|1 − ηλᵢ| < 1 for both curvatures needs η < 2/λ_max = 2/{_num(g.lam_max)} = "
                f"**{2 / g.lam_max:.4f}**."
            ),
            tolerance=RATE_TOLERANCE,
        ),
        Exercise(
            "best_rate",
            f"Same quadratic: {setup} With the best fixed step, by what factor does the error shrink per step?",
            (kappa - 1) / (kappa + 1),
            hint="The best step η* = 2/(λ_max + λ_min) balances |1 − ηλ_max| and |1 − ηλ_min|; use κ = λ_max/λ_min.",
            solution=(
                f"κ = {_num(g.lam_max)}/{_num(g.lam_min)} = {kappa:.4g}, and the best rate is (κ − 1)/(κ + 1) = "
                f"**{(kappa - 1) / (kappa + 1):.4f}** (at η* = {2 / (g.lam_max + g.lam_min):.4g})."
            ),
            tolerance=RATE_TOLERANCE,
        ),
        Exercise(
            "converges",
            f"Same quadratic: {setup} Does gradient descent with η = {g.eta:g} converge?",
            1 if diverges else 0,
            hint="Compare η with 2/λ_max.",
            solution=(
                f"|1 − ηλ₁| = |1 − {g.eta:g}·{_num(g.lam_max)}| = {factors[0]:.3g} and |1 − ηλ₂| = "
                f"{factors[1]:.3g}: "
                + (
                    "the first is above 1, so the error grows along the steep direction: it **diverges**."
                    if diverges
                    else "both are below 1, so it **converges**."
                )
            ),
            choices=("It converges to the minimum", "It diverges"),
        ),
    )


# ---- 4. softmax temperature


@dataclass(frozen=True)
class TemperatureInstance:
    """One attention row: weights = counts / counts.sum(), counts (4,) small positive integers (ties likely)."""

    counts: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        return self.counts / self.counts.sum()


def temperature_instance(seed: int) -> TemperatureInstance:

    return TemperatureInstance(
        instance_rng(seed, "temperature", "row").integers(1, 5, size=4).astype(np.float64)
    )


def temperature_exercises(seed: int) -> tuple[Exercise, ...]:
    """The weight of key 1 at tau = 1/2 (each weight squared, renormalised), and the entropy as tau -> 0."""

    inst = temperature_instance(seed)
    c = inst.counts
    total = int(c.sum())
    row = "(" + ", ".join(f"{int(v)}" for v in c) + f")/{total}"
    squared = c**2
    half = float(squared[0] / squared.sum())
    ties = int(np.sum(c == c.max()))
    return (
        Exercise(
            "half",
            f"An attention row has weights {row} on keys 1-4. Replayed at temperature τ = 1/2, what weight does "
            "key 1 get?",
            half,
            hint="(A_τ)ᵢⱼ = aᵢⱼ^(1/τ) / Σₖ aᵢₖ^(1/τ): at τ = 1/2 square every weight and renormalise.",
            solution=(
                "Squares (the common denominator cancels): "
                + ", ".join(f"{int(v)}" for v in squared)
                + f"; key 1 gets {int(squared[0])}/{int(squared.sum())} = **{half:.4f}**."
            ),
            tolerance=RATE_TOLERANCE,
        ),
        Exercise(
            "entropy_cold",
            f"Same row {row}. As τ → 0, what does the row's entropy −Σ aⱼ log aⱼ tend to (in nats)?",
            float(np.log(ties)),
            hint="As τ → 0 the weight goes to the largest entries only. Are there ties for the largest?",
            solution=(
                f"The largest count {int(c.max())} appears {ties} time(s); the row tends to uniform weight over "
                f"those {ties} key(s), so the entropy tends to log {ties} = **{np.log(ties):.4f}**."
            ),
            tolerance=NUMBER_TOLERANCE,
        ),
    )


# ---- 5. non-normal growth

NONNORMAL_RHOS = (0.8, 0.9, 0.95, 1.05)
NONNORMAL_COUPLINGS = (1.0, 1.5, 2.0, 3.0)
NONNORMAL_SECOND = 0.1  # the second eigenvalue is rho - 0.1: distinct, so J is diagonalizable


@dataclass(frozen=True)
class NonnormalInstance:
    """J = [[rho, s], [0, rho - 0.1]] (2, 2): upper triangular, eigenvalues on the diagonal, coupling s."""

    rho: float
    coupling: float

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.rho, self.coupling], [0.0, self.rho - NONNORMAL_SECOND]])


def nonnormal_instance(seed: int) -> NonnormalInstance:

    rng = instance_rng(seed, "nonnormal", "matrix")
    return NonnormalInstance(float(rng.choice(NONNORMAL_RHOS)), float(rng.choice(NONNORMAL_COUPLINGS)))


NONNORMAL_CHOICES = ("‖J^t‖ → 0", "‖J^t‖ → ∞", "‖J^t‖ stays bounded but does not go to 0")


def nonnormal_exercises(seed: int) -> tuple[Exercise, ...]:
    """||J||_2 of a triangular 2x2 (how much one step can stretch), and the long-run fate of ||J^t||."""

    inst = nonnormal_instance(seed)
    J = inst.matrix
    mu = inst.rho - NONNORMAL_SECOND
    gram_trace = float(np.sum(J**2))
    gram_det = float((inst.rho * mu) ** 2)
    norm = float(np.sqrt((gram_trace + np.sqrt(gram_trace**2 - 4 * gram_det)) / 2))
    text = f"`J = [[{inst.rho:g}, {inst.coupling:g}], [0, {mu:g}]]`"
    return (
        Exercise(
            "norm",
            f"{text} has spectral radius ρ = {inst.rho:g}. What is ‖J‖₂, the most one step can stretch a vector?",
            norm,
            hint="‖J‖₂² is the largest eigenvalue of JᵀJ: use its trace (sum of squared entries) and determinant "
            "(det J)².",
            solution=(
                f"JᵀJ has trace {gram_trace:.4g} and determinant (det J)² = {gram_det:.4g}; its largest eigenvalue "
                f"is ({gram_trace:.4g} + √({gram_trace:.4g}² − 4·{gram_det:.4g}))/2 = {norm**2:.4f}, so ‖J‖₂ = "
                f"**{norm:.4f}**, far above ρ = {inst.rho:g}: the coupling stretches before the powers decay."
            ),
            tolerance=NUMBER_TOLERANCE,
        ),
        Exercise(
            "long_run",
            f"Same {text}. What happens to ‖J^t‖ as t → ∞?",
            0 if inst.rho < 1 else 1,
            hint="The long run is decided by the eigenvalues alone: J^t = VΛ^tV⁻¹.",
            solution=(
                f"The eigenvalues are {inst.rho:g} and {mu:g} (the diagonal of a triangular matrix), distinct, so "
                f"‖J^t‖ ≤ κ(V) ρ^t with ρ = {inst.rho:g} "
                + (
                    "< 1: it **goes to 0**, whatever the transient growth first."
                    if inst.rho < 1
                    else "> 1, and ‖J^t‖ ≥ ρ^t: it **grows without bound**."
                )
            ),
            choices=NONNORMAL_CHOICES,
        ),
    )


# ---- 6. SVD and Eckart-Young


@dataclass(frozen=True)
class SVDInstance:
    """W (5, 4) = U diag(singular_values) V^T with random orthonormal U, V; singular_values (4,) distinct
    integers 1..9, decreasing; k the rank kept (1..3)."""

    matrix: np.ndarray
    singular_values: np.ndarray
    k: int


def svd_instance(seed: int) -> SVDInstance:

    rng = instance_rng(seed, "svd", "matrix")
    sigma = np.sort(rng.choice(np.arange(1, 10), size=4, replace=False))[::-1].astype(np.float64)
    U = np.linalg.qr(rng.standard_normal((5, 4)))[0]
    V = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    return SVDInstance((U * sigma) @ V.T, sigma, int(rng.integers(1, 4)))


def svd_exercises(seed: int) -> tuple[Exercise, ...]:
    """The Eckart-Young errors of the rank-k truncation (Frobenius and 2-norm) and the energy it keeps."""

    inst = svd_instance(seed)
    s, k = inst.singular_values, inst.k
    tail = s[k:]
    fro = float(np.sqrt(np.sum(tail**2)))
    kept = float(np.sum(s[:k] ** 2) / np.sum(s**2))
    sv = ", ".join(f"{v:g}" for v in s)
    setup = f"A 5×4 matrix W has singular values {sv}. W_{k} is its best rank-{k} approximation."
    return (
        Exercise(
            "fro_error",
            f"{setup} What is ‖W − W_{k}‖_F?",
            fro,
            hint="Eckart-Young: the error is made of the singular values you dropped: √(Σ_{i>k} σᵢ²).",
            solution=(f"√({' + '.join(f'{v:g}²' for v in tail)}) = √{np.sum(tail**2):g} = **{fro:.4f}**."),
            tolerance=NUMBER_TOLERANCE,
        ),
        Exercise(
            "spectral_error",
            f"{setup} What is ‖W − W_{k}‖₂ (the largest stretch of the error)?",
            float(s[k]),
            hint="In the 2-norm only the largest dropped singular value counts.",
            solution=f"‖W − W_k‖₂ = σ_(k+1) = σ_{k + 1} = **{s[k]:g}**.",
            tolerance=NUMBER_TOLERANCE,
        ),
        Exercise(
            "energy",
            f"{setup} What fraction of the energy ‖W‖_F² does W_{k} keep (between 0 and 1)?",
            kept,
            hint="‖W‖_F² = Σ σᵢ²; W_k keeps the first k of them.",
            solution=(
                f"({' + '.join(f'{v:g}²' for v in s[:k])}) / ({' + '.join(f'{v:g}²' for v in s)}) = "
                f"{np.sum(s[:k] ** 2):g}/{np.sum(s**2):g} = **{kept:.4f}**."
            ),
            tolerance=RATE_TOLERANCE,
        ),
    )
