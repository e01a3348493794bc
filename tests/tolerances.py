"""The tolerance a computed quantity deserves, from its conditioning, never from what passed on one machine.

A backward-stable algorithm (LAPACK's geev, syevd, gesdd; a Householder QR; a matrix product) returns the exact
answer for a nearby input A + E with ||E||_2 <= c * n * eps * ||A||_2. First-order perturbation theory turns that
backward error into the forward error a test may allow:

- an eigenvalue lambda of a non-symmetric A (Wilkinson):  |d lambda| <= kappa(lambda) * ||E||_2, with
  kappa(lambda) = ||x|| ||y|| / |y^H x| from the right and left eigenvectors x, y. kappa is 1 for a normal matrix
  and can be 1e8 for a non-normal one (attention matrices, Jordan-like teaching matrices): an eigenvalue then
  moves by 1e8 * eps under rounding, and which BLAS kernel ran decides the digits past that;
- an eigenvalue of a symmetric matrix, or a singular value (Weyl):  |d| <= ||E||_2;
- anything computed in float32: the same bounds with float32's eps.

``c`` covers the algorithm's modest growth factor; SAFETY = 10 leaves a wide margin over what LAPACK achieves
(measured here: the worst error is below 0.3 n eps ||A|| kappa on the teaching matrices, on every OpenBLAS
kernel). The bounds are first order: they hold while kappa * ||E|| is small next to the gaps between
eigenvalues, which every caller's matrices satisfy.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.optimize import linear_sum_assignment

SAFETY = 10.0


def eps(dtype=np.float64) -> float:
    """Unit roundoff of ``dtype`` (float64: 2.2e-16, float32: 1.2e-7)."""
    return float(np.finfo(dtype).eps)


def backward_error(A, *, dtype=np.float64, c: float = SAFETY) -> float:
    """c * n * eps * ||A||_2: the perturbation a backward-stable algorithm may make to A (n = largest dim)."""
    A = np.asarray(A)
    return c * max(A.shape) * eps(dtype) * float(np.linalg.norm(A, 2))


def eigenvalue_condition_numbers(A) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of A (n, n) and their condition numbers kappa = ||x|| ||y|| / |y^H x|, both of shape (n,).

    From scipy.linalg.eig with left and right eigenvectors (float64, or complex128 for a complex A); a defective
    eigenvalue (y^H x = 0) gets inf.
    """
    A = np.asarray(A)
    w, vl, vr = scipy.linalg.eig(A.astype(np.result_type(A.dtype, np.float64)), left=True, right=True)
    cos = np.abs(np.sum(vl.conj() * vr, axis=0)) / (np.linalg.norm(vl, axis=0) * np.linalg.norm(vr, axis=0))
    with np.errstate(divide="ignore"):
        return w, np.where(cos > 0, 1.0 / cos, np.inf)


def eig_tolerances(A, *, dtype=np.float64, c: float = SAFETY) -> tuple[np.ndarray, np.ndarray]:
    """Reference eigenvalues of A (float64 geev) and the error each may carry: kappa(lambda) * backward_error."""
    w, kappa = eigenvalue_condition_numbers(A)
    return w, kappa * backward_error(A, dtype=dtype, c=c)


def symmetric_tolerance(A, *, dtype=np.float64, c: float = SAFETY) -> float:
    """Error allowed on each eigenvalue of a symmetric A, or each singular value of any A (Weyl's bound)."""
    return backward_error(A, dtype=dtype, c=c)


def match_eigenvalues(computed, reference) -> tuple[np.ndarray, np.ndarray]:
    """Pair two multisets of (complex) eigenvalues by the assignment that minimises the total distance.

    Sorting by modulus is no pairing for ill-conditioned eigenvalues: a tiny error can swap two of nearly equal
    modulus. Returns index arrays (i, j): computed[i[k]] pairs with reference[j[k]].
    """
    computed = np.asarray(computed, dtype=np.complex128).ravel()
    reference = np.asarray(reference, dtype=np.complex128).ravel()
    if computed.shape != reference.shape:
        raise AssertionError(f"{computed.size} eigenvalues computed, {reference.size} expected")
    return linear_sum_assignment(np.abs(computed[:, None] - reference[None, :]))


def assert_eigvals_close(computed, A, *, expected=None, dtype=np.float64, c: float = SAFETY) -> None:
    """Assert that ``computed`` are the eigenvalues of A (n, n) up to what their conditioning allows.

    ``expected``: exact eigenvalues when the test knows them (then only ``computed`` carries rounding error);
    otherwise float64 geev is the reference and both sides may carry it (twice the bound). ``dtype``: the
    precision ``computed`` was obtained in.
    """
    ref, kappa = eigenvalue_condition_numbers(A)  # one eigensolve with both eigenvector sets: the costly part
    tol = kappa * backward_error(A, dtype=dtype, c=c)
    if expected is None:
        tol = tol + kappa * backward_error(A, c=c)
    else:
        # Each exact eigenvalue takes the condition number of the geev eigenvalue paired with it.
        i, j = match_eigenvalues(expected, ref)
        ref = np.asarray(expected, dtype=np.complex128).ravel()[i]
        tol = tol[j]
    computed = np.asarray(computed, dtype=np.complex128).ravel()
    i, j = match_eigenvalues(computed, ref)
    err = np.abs(computed[i] - ref[j])
    allowed = tol[j]
    bad = err > allowed
    if bad.any():
        k = int(np.argmax(err / allowed))
        raise AssertionError(
            f"{int(bad.sum())} of {err.size} eigenvalues off by more than kappa * c n eps ||A||: worst "
            f"{computed[i][k]:.6g} vs {ref[j][k]:.6g}, error {err[k]:.2e} > allowed {allowed[k]:.2e}"
        )


def defective_eigenvalue_tolerance(A, *, order: int = 2, dtype=np.float64, c: float = SAFETY) -> float:
    """Error allowed on an eigenvalue in a Jordan block of size ``order`` (where kappa is infinite).

    A perturbation E splits J = lambda I + N (||N|| <= ||A||) into eigenvalues lambda + (e ||N||^(m-1))^(1/m)
    (the leading Puiseux term; for m = 2: lambda +- sqrt(e ||N||)), e = ||E||. So a double eigenvalue of a float64
    matrix with ||A|| ~ 1 is only good to ~1e-7, whatever the kernel.
    """
    e = backward_error(A, dtype=dtype, c=c)
    return e ** (1 / order) * float(np.linalg.norm(np.asarray(A), 2)) ** (1 - 1 / order)


def subspace_tolerance(A, gap: float, *, dtype=np.float64, c: float = SAFETY) -> float:
    """sin of the angle an eigenvector of a symmetric A (or a singular vector of any A) may turn (Davis-Kahan).

    sin theta <= ||E|| / gap, with ||E|| the backward error and ``gap`` the distance from its eigenvalue (singular
    value) to the rest of the spectrum. Also bounds ||v_computed - v|| for a sign-fixed unit vector (up to sqrt 2).
    """
    if gap <= 0:
        raise ValueError("the gap must be positive: a repeated eigenvalue has no well-defined eigenvector")
    return backward_error(A, dtype=dtype, c=c) / gap


def summation_tolerance(terms, *, dtype=np.float64, c: float = SAFETY) -> float:
    """Absolute error of a floating-point sum of ``terms`` (any shape): c * n * eps * sum |terms| (Higham 4.2).

    Covers traces, means, sums of squares (pass the squares) and dot products (pass the products).
    """
    terms = np.abs(np.asarray(terms, dtype=np.float64))
    return c * max(terms.size, 1) * eps(dtype) * float(terms.sum())


def perron_root_tolerance(A, *, dtype=np.float64, c: float = SAFETY) -> float:
    """Error allowed on the eigenvalue 1 of a (numerically) row-stochastic A, from its condition number.

    A's rows sum to 1 only up to rounding: A = P + F with P exactly stochastic and ||F||_2 <= sqrt(n) max_i
    |sum_j A_ij - 1|. So |lambda - 1| <= kappa(1) (||F|| + c n eps ||A||), kappa(1) = ||pi|| ||1|| / |pi . 1| from
    the left (stationary) and right (ones) eigenvectors.
    """
    A = np.asarray(A, dtype=np.float64)
    w, kappa = eigenvalue_condition_numbers(A)
    k = int(np.argmin(np.abs(w - 1)))
    row_error = np.sqrt(A.shape[0]) * float(np.abs(A.sum(axis=1) - 1).max())
    return float(kappa[k]) * (row_error + backward_error(A, dtype=dtype, c=c))


def trace_tolerance(A, *, dtype=np.float64, c: float = SAFETY) -> float:
    """Error allowed on the sum of the computed eigenvalues of A against trace(A): well-conditioned even where
    the eigenvalues are not, since sum(eig(A + E)) = trace(A) + trace(E) and |trace E| <= n ||E||_2."""
    A = np.asarray(A)
    return A.shape[0] * backward_error(A, dtype=dtype, c=c) + summation_tolerance(
        np.diag(A), dtype=dtype, c=c
    )


def sum_rtol(n: int, *, dtype=np.float64, c: float = SAFETY) -> float:
    """Relative error of a sum of n terms of one sign (squares, probabilities, a row of a stochastic matrix):
    c * n * eps, since then sum |terms| = |sum|. Also covers a mean of such terms."""
    return c * max(int(n), 1) * eps(dtype)


def probabilistic_sum_rtol(n: int, *, dtype=np.float64, lam: float = 8.0) -> float:
    """Relative error of a sum of n terms (relative to the sum of their magnitudes) that holds with probability at
    least 1 - 2 exp(-lam^2 / 2) (2.5e-14 for lam = 8) when rounding errors are independent and of mean zero:
    lam * sqrt(n) * eps (Higham & Mary, SIAM J. Sci. Comput. 2019, Theorem 3.1). The worst case n * eps
    (``sum_rtol``) is useless for long float32 sums (0.12 at n = 2^20); this bound is what a correct summation
    achieves, and a sum that loses small terms systematically (one accumulator holding a large partial sum)
    exceeds it."""
    return lam * np.sqrt(max(int(n), 1)) * eps(dtype)


def solve_tolerance(M, *, dtype=np.float64, c: float = SAFETY) -> float:
    """Relative (normwise) forward error of x from a backward-stable solve of M x = b: cond(M) * c n eps.

    ``M``: the (n, n) matrix actually solved. Also bounds how far the solution moves when M is perturbed by
    rounding elsewhere (a null vector pinned by a normalising row, e.g. a stationary distribution).
    """
    M = np.asarray(M, dtype=np.float64)
    return float(np.linalg.cond(M, 2)) * c * M.shape[0] * eps(dtype)


def gram_singular_value_tolerance(A, sigma, *, dtype=np.float64, c: float = SAFETY, norm=None) -> np.ndarray:
    """Error allowed on singular values of A (m, n) obtained as sqrt(eigvalsh(A^T A)), per value, shape of sigma.

    Forming A^T A and solving each err by c n eps ||A||^2 (Weyl), so sigma_i^2 is off by delta = 2 c n eps
    ||A||^2 and sigma_i by min(sqrt(delta), delta / sigma_i): relative ~ eps (sigma_1 / sigma_i)^2, and the
    smallest read as noise of ~sqrt(eps) sigma_1. ``sigma``: the reference singular values; ``norm``: ||A||_2
    when known (sigma_1), to spare another SVD of a large A.
    """
    A = np.asarray(A)
    norm = float(np.linalg.norm(A, 2)) if norm is None else float(norm)
    delta = 2 * c * max(A.shape) * eps(dtype) * norm**2
    sigma = np.asarray(sigma, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.minimum(np.sqrt(delta), delta / sigma)


def nearest_eigenvalue_tolerance(A, values, *, residual: float = 0.0, c: float = SAFETY):
    """For some eigenvalues ``values`` of A (n, n), not necessarily all: the float64 geev eigenvalue nearest each
    and the error allowed between them, kappa(lambda) * (residual + 2 c n eps ||A||), both of shape (len(values),).

    ``residual``: ||A x - theta x|| of Ritz pairs (Krylov methods stop at a tolerance, not at rounding): a Ritz
    value with that residual is an exact eigenvalue of A + r x^H. The 2 covers geev's error on the reference side.
    """
    w, kappa = eigenvalue_condition_numbers(A)
    values = np.asarray(values, dtype=np.complex128).ravel()
    nearest = np.abs(values[:, None] - w[None, :]).argmin(axis=1)
    return w[nearest], kappa[nearest] * (residual + 2 * backward_error(A, c=c))


def product_tolerance(A, B, *, dtype=np.float64, c: float = SAFETY) -> float:
    """||fl(A B) - A B||_2 <= c k eps ||A||_F ||B||_F (k the inner dimension): the rounding of forming a product,
    which can exceed c n eps ||A B|| when A B is small next to its factors (a low-rank circuit)."""
    A, B = np.asarray(A), np.asarray(B)
    return c * A.shape[-1] * eps(dtype) * float(np.linalg.norm(A) * np.linalg.norm(B))


def low_rank_product_sigma_tolerance(A, B, *, c: float = SAFETY) -> float:
    """Error allowed on the singular values of A B^T (A, B: (n, k), k << n) by the Gram-root route (R_a with
    R_a^T R_a = A^T A from eigh) against a float64 SVD of the formed product.

    R_a = (A^T A + F)^(1/2) with ||F|| <= c n eps ||A||^2 is off by ||F|| / (2 sigma_min(A)) = c n eps ||A||
    cond(A) / 2; sigma(R_a R_b^T) then moves by that times ||B||, and the same for B. The reference side adds the
    product's rounding and the SVD's (Weyl); the small SVD its own.
    """
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    e = c * A.shape[0] * eps() * float(np.linalg.norm(A, 2) * np.linalg.norm(B, 2))
    return e * ((float(np.linalg.cond(A)) + float(np.linalg.cond(B))) / 2 + 3) + product_tolerance(
        A, B.T, c=c
    )


def pagerank_residual_tolerance(A, pi, damping: float, *, c: float = SAFETY) -> float:
    """Residual allowed in pi = damping pi A + (1 - damping) / n for pi from a solve of pi (I - damping A) =
    (1 - damping) / n, renormalised to sum 1.

    The solve is backward stable: c n eps ||I - damping A^T|| ||pi||. The renormalisation is exact only when A's
    rows sum to 1; with row sums 1 + e_i, |e_i| <= d (float32 attention: d ~ 1e-7), the sum s of the solved pi
    satisfies |1/s - 1| <= damping d / (1 - damping), which leaves (1 - damping)/n |1/s - 1| <= damping d / n.
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    d = float(np.abs(A.sum(axis=1) - 1).max())
    solve = backward_error(np.eye(n) - damping * A.T, c=c) * float(np.linalg.norm(pi))
    return solve + damping * d / n
