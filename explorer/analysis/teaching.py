"""The maths behind the Learn page's six walkthroughs, small and exact, each testable against numpy/scipy.

1. ``plane_2x2``: a 2x2 matrix acting on the plane (eigenvalues, real eigenvectors, trace, determinant,
   characteristic polynomial, the image of the unit circle and of a grid).
2. ``power_iteration`` and ``lanczos``: iterative eigen-solvers step by step, with the convergence theory.
3. ``gradient_descent``: GD on a 2-D quadratic against its closed form (1 - eta lambda_i)^t.
4. ``temperature_sweep``: eigenvalues of a real attention head as the softmax temperature changes.
5. ``transient_growth``: ||J^t|| of a non-normal matrix against rho^t and kappa(V) rho^t, with its Schur form.
6. ``svd_factors`` / ``best_rank_k``: the best rank-k approximation and its Eckart-Young error.

Eigenvalues follow docs/ARCHITECTURE.md section 2 (LAPACK geev, sorted by decreasing modulus). Everything is float64
numpy; results are frozen dataclasses with shapes in their docstrings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

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
    lambda1, lambda2: the two largest-modulus eigenvalues; rate = |lambda2 / lambda1| (1.0 when tied).
    v1: (n,) float64 unit eigenvector of lambda1, largest entry positive (iterates may point the other way).
    tan_angle: (steps + 1,) tan of the angle between x_k and v1 (inf when orthogonal).
    value_error: (steps + 1,) |rayleigh_k - lambda1|.
    vector_line: (steps + 1,) tan_angle[0] * rate^k; an upper bound on tan_angle when A is symmetric.
    value_line: (steps + 1,) max_i |lambda1 - lambda_i| tan_angle[0]^2 rate^(2k) (symmetric: an upper bound
    on value_error), else value_error[0] * rate^k (a slope for reference only).
    """

    iterates: np.ndarray
    rayleigh: np.ndarray
    eigvals: np.ndarray
    lambda1: complex
    lambda2: complex
    rate: float
    v1: np.ndarray
    tan_angle: np.ndarray
    value_error: np.ndarray
    vector_line: np.ndarray
    value_line: np.ndarray
    symmetric: bool

    @property
    def n(self) -> int:
        return self.iterates.shape[1]


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
    vector_line = tan_angle[0] * rate**k
    if symmetric:
        spread = float(np.abs(lam1 - eigvals).max())
        value_line = spread * tan_angle[0] ** 2 * rate ** (2 * k)
    else:
        value_line = value_error[0] * rate**k
    return PowerIteration(
        iterates=X,
        rayleigh=rayleigh,
        eigvals=eigvals,
        lambda1=complex(lam1),
        lambda2=complex(lam2),
        rate=rate,
        v1=v1,
        tan_angle=tan_angle,
        value_error=value_error,
        vector_line=vector_line,
        value_line=value_line,
        symmetric=symmetric,
    )


@dataclass(frozen=True)
class LanczosRun:
    """Lanczos on a symmetric S (n, n) with full reorthogonalization.

    alpha: (m,) and beta: (m - 1,) the tridiagonal T_m (m <= steps; fewer when an invariant subspace is found).
    basis: (n, m) the orthonormal Lanczos vectors Q_m, with Q_m^T S Q_m = T_m.
    ritz: (m, m) float64; row j holds the j + 1 Ritz values (eigenvalues of T_{j+1}) ascending, NaN-padded.
    eigvals: (n,) float64 ascending, every eigenvalue of S (eigh), for reference.
    eigsh_largest, eigsh_smallest: (k,) ascending, scipy.sparse.linalg.eigsh's k = min(3, n - 1) extreme ones.
    """

    alpha: np.ndarray
    beta: np.ndarray
    basis: np.ndarray
    ritz: np.ndarray
    eigvals: np.ndarray
    eigsh_largest: np.ndarray
    eigsh_smallest: np.ndarray

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
    ritz = np.full((m, m), np.nan)
    for j in range(m):
        ritz[j, : j + 1] = scipy.linalg.eigvalsh_tridiagonal(alpha_arr[: j + 1], beta_arr[:j])
    k = min(3, n - 1)
    v0 = np.ones(n) / np.sqrt(n)  # a fixed start, so eigsh is deterministic
    largest, smallest = (_eigsh(S, k, which, v0) for which in ("LA", "SA"))
    return LanczosRun(
        alpha=alpha_arr,
        beta=beta_arr,
        basis=Q[:, :m].copy(),
        ritz=ritz,
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
