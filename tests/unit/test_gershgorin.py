"""Gershgorin discs against their definition and the theorem (containment, eigenvalue counts per group)."""

import numpy as np
import pytest

from explorer.errors import InputError
from explorer.matrix_text import format_matrix, parse_matrix
from explorer.spectra.gershgorin import analyse_gershgorin, connected_groups, gershgorin_discs
from tests.tolerances import assert_eigvals_close, backward_error, perron_root_tolerance, sum_rtol


def softmax_rows(scores: np.ndarray, causal: bool = False) -> np.ndarray:
    if causal:
        scores = np.where(np.tril(np.ones_like(scores, dtype=bool)), scores, -np.inf)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def random_matrices():
    rng = np.random.default_rng(0)
    n = 40
    yield "gaussian", rng.standard_normal((n, n))
    yield "complex", rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    yield "attention", softmax_rows(3 * rng.standard_normal((n, n)))
    yield "causal attention", softmax_rows(3 * rng.standard_normal((n, n)), causal=True)
    W_V, W_O = rng.standard_normal((64, 8)), rng.standard_normal((8, 64))
    yield "OV core", W_O @ W_V
    yield "spread diagonal", np.diag(np.arange(n) * 4.0) + 0.5 * rng.standard_normal((n, n))


def test_discs_follow_the_definition():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((7, 7)) + 1j * rng.standard_normal((7, 7))
    rows, cols = gershgorin_discs(A), gershgorin_discs(A, columns=True)
    for i in range(7):
        assert rows.centers[i] == A[i, i] and cols.centers[i] == A[i, i]
        # sums of 6 non-negative terms, two orders: c n eps
        assert rows.radii[i] == pytest.approx(
            sum(abs(A[i, j]) for j in range(7) if j != i), rel=2 * sum_rtol(6)
        )
        assert cols.radii[i] == pytest.approx(
            sum(abs(A[j, i]) for j in range(7) if j != i), rel=2 * sum_rtol(6)
        )


@pytest.mark.parametrize("name, A", list(random_matrices()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_eigenvalue_inside_row_and_column_unions(name, A):
    result = analyse_gershgorin(A)
    assert result.inside_rows.all() and result.inside_cols.all() and result.all_inside
    # Direct check against numpy's eigenvalues, without the module's tolerance helper.
    lam = np.linalg.eigvals(A)
    d_rows = np.abs(lam[:, None] - np.diag(A)[None, :]) - (np.abs(A).sum(1) - np.abs(np.diag(A)))[None, :]
    # geev's eigenvalues are exact for A + E and lie in A + E's discs, which reach at most sum_j |e_ij| <=
    # sqrt(n) ||E||_2 beyond A's (no eigenvalue conditioning involved); plus the radii's own sums.
    slack = np.sqrt(len(A)) * backward_error(A) + sum_rtol(len(A)) * np.abs(A).sum(1).max()
    assert (d_rows.min(axis=1) <= slack).all()
    assert_eigvals_close(result.eigvals, A)  # non-normal: kappa(lambda) c n eps ||A|| each


@pytest.mark.parametrize("name, A", list(random_matrices()), ids=lambda v: v if isinstance(v, str) else "")
def test_each_isolated_group_holds_as_many_eigenvalues_as_discs(name, A):
    """Gershgorin's second theorem: a connected union of k discs, disjoint from the rest, holds k eigenvalues."""
    result = analyse_gershgorin(A)
    for columns in (False, True):
        sizes = np.array([g.size for g in result.groups(columns)])
        np.testing.assert_array_equal(result.group_counts(columns), sizes)
        assert sizes.sum() == A.shape[0]


def test_separated_blocks_give_separate_groups():
    A = np.array(
        [
            [0.0, 0.3, 0.0, 0.0],
            [0.2, 0.5, 0.0, 0.1],
            [0.0, 0.0, 10.0, 1.0],
            [0.1, 0.0, 0.5, 20.0],
        ]
    )
    result = analyse_gershgorin(A)
    groups = [list(g) for g in result.row_groups]
    assert groups == [[0, 1], [2], [3]]
    np.testing.assert_array_equal(result.row_group_counts, [2, 1, 1])


def test_touching_discs_are_one_group():
    # Centres 0 and 2 with radii 1 and 1: tangent at 1, so connected.
    A = np.array([[0.0, 1.0], [1.0, 2.0]])
    assert len(connected_groups(gershgorin_discs(A))) == 1


def test_attention_row_discs_all_reach_one():
    rng = np.random.default_rng(2)
    for causal in (False, True):
        A = softmax_rows(2 * rng.standard_normal((30, 30)), causal=causal)
        discs = gershgorin_discs(A)
        # a_ii + sum_j |a_ij| is the row sum: 1 up to the softmax's and this sum's rounding, c n eps each.
        np.testing.assert_allclose(discs.centers.real + discs.radii, 1.0, atol=2 * sum_rtol(30))
        lam = analyse_gershgorin(A).eigvals
        assert np.abs(lam).max() == pytest.approx(1.0, abs=perron_root_tolerance(A))  # Perron root


def test_diagonal_dominance():
    A = np.array([[4.0, 1.0, -2.0], [0.5, -3.0, 1.0], [1.0, 1.0, 2.5]])
    result = analyse_gershgorin(A)
    expected = [abs(A[i, i]) > sum(abs(A[i, j]) for j in range(3) if j != i) for i in range(3)]
    np.testing.assert_array_equal(result.row_dominant, expected)
    assert result.diagonally_dominant
    assert abs(np.linalg.det(A)) > 0  # Levy-Desplanques: strictly dominant implies invertible
    B = np.array([[1.0, 2.0], [0.0, 1.0]])
    assert not analyse_gershgorin(B).diagonally_dominant
    np.testing.assert_array_equal(analyse_gershgorin(B).row_dominant, [False, True])
    np.testing.assert_array_equal(analyse_gershgorin(B).col_dominant, [True, False])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 2\n3 4", [[1, 2], [3, 4]]),
        ("1, 2; 3, 4", [[1, 2], [3, 4]]),
        ("[[1, 2], [3, 4]]", [[1, 2], [3, 4]]),
        ("  -0.5 2e-1 \n\n 3   4  \n", [[-0.5, 0.2], [3, 4]]),
    ],
)
def test_parse_matrix(text, expected):
    np.testing.assert_array_equal(parse_matrix(text), np.array(expected, dtype=float))


def test_parse_complex_and_round_trip():
    M = parse_matrix("1+2j 0\n0 -1i")
    assert M.dtype == np.complex128 and M[0, 0] == 1 + 2j and M[1, 1] == -1j
    np.testing.assert_array_equal(parse_matrix(format_matrix(M)), M)
    R = np.array([[0.25, -3.0], [1e-3, 7.0]])
    np.testing.assert_array_equal(parse_matrix(format_matrix(R)), R)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("1 2\n3", "square"),
        ("1 x\n3 4", "row 1, column 2: 'x' is not a number"),
        ("1 inf\n3 4", "row 1, column 2: 'inf' is infinite"),
        ("\n".join(" ".join(["1"] * 13) for _ in range(13)), "limited to 12"),
        ("1e308 1e308\n1e308 1e308", "divide the matrix"),
    ],
)
def test_parse_errors_say_what_to_fix(text, fragment):
    with pytest.raises(InputError, match=fragment):
        parse_matrix(text)


def test_parse_names_every_bad_entry():
    """Every entry that is not a finite number is named with its row and column, not only the first."""
    with pytest.raises(InputError) as caught:
        parse_matrix("nan,1;1,inf")
    message = str(caught.value)
    assert message.startswith("2 entries to fix")
    assert "row 1, column 1: 'nan' is not a number (nan)" in message
    assert "row 2, column 2: 'inf' is infinite" in message
    with pytest.raises(InputError) as caught:
        parse_matrix("1+nanj 2 z\n-inf 1 0\nq 0 1")
    message = str(caught.value)
    assert message.startswith("4 entries to fix")
    for named in (
        "row 1, column 1",
        "row 1, column 3: 'z'",
        "row 2, column 1: '-inf'",
        "row 3, column 1: 'q'",
    ):
        assert named in message


def test_parse_takes_i_as_imaginary_unit():
    np.testing.assert_array_equal(parse_matrix("1-2i 0\n0 3i"), np.array([[1 - 2j, 0], [0, 3j]]))


def test_rejects_non_square_and_nan():
    with pytest.raises(ValueError):
        analyse_gershgorin(np.ones((2, 3)))
    with pytest.raises(ValueError):
        analyse_gershgorin(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_largest_allowed_entries_keep_discs_and_containment_finite():
    from explorer.matrix_text import MAX_TYPED_ENTRY

    M = parse_matrix(f"{MAX_TYPED_ENTRY:g} {MAX_TYPED_ENTRY:g}\n{-MAX_TYPED_ENTRY:g} {MAX_TYPED_ENTRY:g}")
    result = analyse_gershgorin(M)
    eig = np.linalg.eigvals(M)
    assert np.isfinite(result.eigvals).all() and np.isfinite(result.rows.radii).all()
    # Gershgorin (rows): every eigenvalue lies in the union of discs |z - a_ii| <= sum_{j != i} |a_ij|.
    # geev's eigenvalues lie in the discs of M + E, at most sqrt(n) ||E||_2 wider.
    inside = np.abs(eig[:, None] - np.diag(M)[None, :]) <= result.rows.radii[None, :] + np.sqrt(
        2
    ) * backward_error(M)
    assert inside.any(axis=1).all() and result.inside_rows.all()
