"""Gershgorin discs: where the eigenvalues of a square matrix must lie (docs/ARCHITECTURE.md section 2).

Row disc i: centre a_ii, radius R_i = sum_{j != i} |a_ij|. Every eigenvalue lies in the union of the row
discs, and in the union of the column discs (the row discs of A^T). Stronger (Gershgorin 1931): a connected
group of k discs that touches no other disc holds exactly k eigenvalues, counted with multiplicity.
For a row-stochastic attention matrix R_i = 1 - a_ii, so every row disc reaches exactly 1 on the real axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from explorer.spectra.attention_spectra import sort_by_modulus

# Relative slack for "inside" tests: eigenvalues on a disc's rim are inside up to rounding.
DEFAULT_RTOL = 1e-9


@dataclass(frozen=True)
class Discs:
    """n discs. centers: (n,) complex128; radii: (n,) float64 (non-negative)."""

    centers: np.ndarray
    radii: np.ndarray

    def __len__(self) -> int:
        return int(self.centers.shape[0])


def gershgorin_discs(A, *, columns: bool = False) -> Discs:
    """Row discs of A (n, n), or column discs (those of A^T) when ``columns``."""
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"Gershgorin discs need a square matrix, got shape {A.shape}.")
    M = A.T if columns else A
    centers = np.diag(M).astype(np.complex128)
    radii = np.abs(M).sum(axis=1) - np.abs(np.diag(M))
    return Discs(centers, np.clip(radii.astype(np.float64), 0.0, None))


def _slack(discs: Discs, points: np.ndarray, rtol: float) -> float:
    scale = max(
        1.0, float(np.abs(discs.centers).max(initial=0.0) + discs.radii.max(initial=0.0)), *np.abs(points)
    )
    return rtol * scale


def excess(discs: Discs, points) -> np.ndarray:
    """|z - c_i| - r_i for every point and disc: (point, disc) float64; <= 0 means inside that disc."""
    points = np.asarray(points, dtype=np.complex128).reshape(-1)
    return np.abs(points[:, None] - discs.centers[None, :]) - discs.radii[None, :]


def inside_union(discs: Discs, points, rtol: float = DEFAULT_RTOL) -> np.ndarray:
    """(point,) bool: each point lies in at least one disc (up to ``rtol`` times the picture's scale)."""
    points = np.asarray(points, dtype=np.complex128).reshape(-1)
    if len(discs) == 0:
        return np.zeros(points.shape, dtype=bool)
    return excess(discs, points).min(axis=1) <= _slack(discs, points, rtol)


def connected_groups(discs: Discs) -> list[np.ndarray]:
    """Connected components of the union: discs i and j touch when |c_i - c_j| <= r_i + r_j.

    Returns a list of index arrays (ascending), ordered by the real part of their leftmost centre."""
    n = len(discs)
    if n == 0:
        return []
    distance = np.abs(discs.centers[:, None] - discs.centers[None, :])
    reach = discs.radii[:, None] + discs.radii[None, :]
    touching = distance <= reach * (1 + 1e-12) + 1e-15
    _, labels = connected_components(csr_matrix(touching), directed=False)
    groups = [np.flatnonzero(labels == root) for root in np.unique(labels)]
    return sorted(groups, key=lambda g: (float(discs.centers[g].real.min()), int(g[0])))


def assign_to_groups(discs: Discs, groups: list[np.ndarray], points) -> np.ndarray:
    """(point,) int: index into ``groups`` of the group whose discs the point is deepest inside (or nearest to)."""
    points = np.asarray(points, dtype=np.complex128).reshape(-1)
    if not groups:
        return np.full(points.shape, -1, dtype=int)
    ex = excess(discs, points)
    per_group = np.stack([ex[:, g].min(axis=1) for g in groups], axis=1)
    return per_group.argmin(axis=1)


@dataclass(frozen=True)
class GershgorinResult:
    """Discs and eigenvalues of one square matrix A (n, n).

    eigvals: (n,) complex128, numpy/LAPACK geev, sorted by modulus (decreasing).
    rows, cols: row discs and column discs.
    inside_rows, inside_cols: (n,) bool, each eigenvalue inside the row (column) union.
    row_groups, col_groups: connected groups of discs (index arrays); row_group_counts, col_group_counts:
        (group,) int, eigenvalues falling in each group (the theorem says: equal to the group's size).
    row_dominant: (n,) bool, |a_ii| > R_i (strict row diagonal dominance of row i); col_dominant likewise.
    """

    matrix: np.ndarray
    eigvals: np.ndarray
    rows: Discs
    cols: Discs
    inside_rows: np.ndarray
    inside_cols: np.ndarray
    row_groups: tuple[np.ndarray, ...]
    col_groups: tuple[np.ndarray, ...]
    row_group_counts: np.ndarray
    col_group_counts: np.ndarray
    row_dominant: np.ndarray
    col_dominant: np.ndarray

    @property
    def n(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def all_inside(self) -> bool:
        """Every eigenvalue inside the row union and inside the column union (Gershgorin: always true)."""
        return bool(self.inside_rows.all() and self.inside_cols.all())

    @property
    def diagonally_dominant(self) -> bool:
        """Strictly row diagonally dominant (every row): then A is nonsingular, as 0 lies in no row disc."""
        return bool(self.row_dominant.all())

    def discs(self, columns: bool = False) -> Discs:
        return self.cols if columns else self.rows

    def groups(self, columns: bool = False) -> tuple[np.ndarray, ...]:
        return self.col_groups if columns else self.row_groups

    def group_counts(self, columns: bool = False) -> np.ndarray:
        return self.col_group_counts if columns else self.row_group_counts

    def group_summary(self, columns: bool = False) -> list[dict]:
        """One dict per connected group: discs (indices), n_discs, n_eigenvalues, centre span, extent."""
        discs = self.discs(columns)
        out = []
        for g, count in zip(self.groups(columns), self.group_counts(columns), strict=True):
            c, r = discs.centers[g], discs.radii[g]
            out.append(
                {
                    "discs": [int(i) for i in g],
                    "n_discs": int(g.size),
                    "n_eigenvalues": int(count),
                    "real_min": float((c.real - r).min()),
                    "real_max": float((c.real + r).max()),
                }
            )
        return out


def analyse_gershgorin(A, eigvals=None, rtol: float = DEFAULT_RTOL) -> GershgorinResult:
    """Row and column discs of A (n, n) with its eigenvalues (computed with numpy's geev unless given)."""
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"Gershgorin discs need a non-empty square matrix, got shape {A.shape}.")
    if not np.isfinite(A).all():
        raise ValueError("The matrix holds NaN or infinite entries.")
    A = A.astype(np.complex128 if np.iscomplexobj(A) else np.float64)
    lam = np.linalg.eigvals(A) if eigvals is None else np.asarray(eigvals, dtype=np.complex128)
    lam = sort_by_modulus(torch.from_numpy(lam.astype(np.complex128))).numpy()
    rows, cols = gershgorin_discs(A), gershgorin_discs(A, columns=True)
    parts = {}
    for name, discs in (("row", rows), ("col", cols)):
        groups = connected_groups(discs)
        owner = assign_to_groups(discs, groups, lam)
        parts[name] = (
            inside_union(discs, lam, rtol),
            tuple(groups),
            np.bincount(owner, minlength=len(groups)).astype(int),
        )
    diag = np.abs(np.diag(A))
    return GershgorinResult(
        matrix=A,
        eigvals=lam,
        rows=rows,
        cols=cols,
        inside_rows=parts["row"][0],
        inside_cols=parts["col"][0],
        row_groups=parts["row"][1],
        col_groups=parts["col"][1],
        row_group_counts=parts["row"][2],
        col_group_counts=parts["col"][2],
        row_dominant=diag > rows.radii,
        col_dominant=diag > cols.radii,
    )
