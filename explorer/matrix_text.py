"""Small matrices as people type them (rows on lines or separated by ';', entries by spaces or commas) and as
links carry them; the Gershgorin page's "type a matrix" source."""

from __future__ import annotations

import re

import numpy as np

from explorer.errors import InputError

MAX_TYPED_SIZE = 12
MAX_TYPED_ENTRY = 1e150  # largest |entry| of a typed matrix: squares and row sums stay far from overflow

_ROW_SPLIT = re.compile(r"[;\n]+")
_ENTRY_SPLIT = re.compile(r"[,\s]+")


def parse_matrix(text: str, max_size: int = MAX_TYPED_SIZE) -> np.ndarray:
    """A small square matrix typed by hand: rows separated by new lines or ';', entries by spaces or commas.

    Entries are real numbers (``1``, ``-0.5``, ``2e-3``) or complex ones in Python's notation (``1+2j``).
    Brackets are ignored, so ``[[1, 2], [3, 4]]`` works too. Raises InputError saying what to fix.
    """
    cleaned = (text or "").replace("[", " ").replace("]", ";").replace("(", " ").replace(")", " ")
    rows = [r.strip().strip(",") for r in _ROW_SPLIT.split(cleaned)]
    rows = [r for r in rows if r.strip(" ,")]
    if not rows:
        raise InputError("The matrix is empty. Type one row per line, e.g. `2 1` then `1 3`.")
    values: list[list[complex]] = []
    bad: list[str] = []  # every entry that is not a finite number, named by row and column
    for number, row in enumerate(rows, start=1):
        entries = [e for e in _ENTRY_SPLIT.split(row.strip(" ,")) if e]
        parsed = []
        for column, entry in enumerate(entries, start=1):
            try:
                value = _complex(entry)
            except ValueError:
                bad.append(f"row {number}, column {column}: '{entry}' is not a number")
                value = 0j
            else:
                if not (np.isfinite(value.real) and np.isfinite(value.imag)):
                    bad.append(f"row {number}, column {column}: '{entry}' is {_non_finite_word(value)}")
            parsed.append(value)
        values.append(parsed)
    if bad:
        raise InputError(
            f"{len(bad)} entr{'y' if len(bad) == 1 else 'ies'} to fix: "
            + "; ".join(bad)
            + ". Use finite plain numbers like 0.5, -2, 1e-3 or 1+2j."
        )
    n = len(values)
    widths = {len(r) for r in values}
    if widths != {n}:
        detail = ", ".join(f"row {i + 1}: {len(r)}" for i, r in enumerate(values))
        raise InputError(f"The matrix must be square: {n} rows, so every row needs {n} entries ({detail}).")
    if n > max_size:
        raise InputError(f"Typed matrices are limited to {max_size} x {max_size}; this one is {n} x {n}.")
    M = np.array(values, dtype=np.complex128)
    if np.abs(M).max() > MAX_TYPED_ENTRY:
        # Radii (row sums) and LAPACK's balancing overflow near 1e308; eigenvalues scale with the matrix.
        raise InputError(
            f"Entries are limited to |a| ≤ {MAX_TYPED_ENTRY:.0e} so that radii and eigenvalues stay finite; "
            "divide the matrix by a constant (its eigenvalues and discs scale by the same factor)."
        )
    return M.real.copy() if np.all(M.imag == 0) else M


def _complex(entry: str) -> complex:
    """Python's complex(), also taking ``i`` for the imaginary unit (``1-2i``) without breaking ``inf``."""
    try:
        return complex(entry)
    except ValueError:
        return complex(entry.replace("i", "j").replace("J", "j"))


def _non_finite_word(value: complex) -> str:
    parts = (value.real, value.imag)
    return "not a number (nan)" if any(np.isnan(p) for p in parts) else "infinite"


def format_matrix(A) -> str:
    """The inverse of parse_matrix for display and links: one row per line, entries separated by spaces."""
    A = np.asarray(A)

    def fmt(z) -> str:
        z = complex(z)
        if z.imag == 0:
            return f"{z.real:g}"
        return f"{z.real:g}{z.imag:+g}j"

    return "\n".join(" ".join(fmt(v) for v in row) for row in A)
