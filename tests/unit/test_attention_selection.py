"""Pooled overview, exact windows and summed attention of several tokens, against numpy one block / slice / sum
at a time; token-selection parsing; and that nothing reads more of the capture than a head or a window."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from explorer.analysis import attention_selection as sel
from tests.tolerances import eps, sum_rtol


def random_heads(n_layers: int, n_heads: int, n: int, *, causal: bool, seed: int = 0) -> np.ndarray:
    """(layer, head, n, n) float32 row-stochastic, heavy-tailed like real heads; lower-triangular when causal."""
    logits = 3 * np.random.default_rng(seed).standard_normal((n_layers, n_heads, n, n))
    if causal:
        logits = np.where(np.tril(np.ones((n, n), bool)), logits, -np.inf)
    return softmax(logits, axis=-1).astype(np.float32)


class WindowOnly:
    """A capture's attention that answers only [layer, head] and [layer, head, i:j, k:l] (the forms a long
    capture supports), counting the cells it hands out; np.asarray of the whole raises."""

    def __init__(self, array: np.ndarray):
        self._array = array
        self.shape = array.shape
        self.cells_read = 0

    def __getitem__(self, index):
        if not isinstance(index, tuple) or len(index) not in (2, 4):
            raise TypeError(f"unsupported index {index!r}")
        if len(index) == 4 and not all(isinstance(i, slice) for i in index[2:]):
            raise TypeError("a window is two slices")
        out = self._array[index]
        self.cells_read += out.size
        return out

    def __array__(self, *args, **kwargs):
        raise AssertionError("read the whole capture")


def numpy_blocks(A: np.ndarray, block: int, how: str) -> np.ndarray:
    """Each block of a (rows, cols) matrix by numpy, one slice at a time (the last blocks ragged)."""
    rows, cols = A.shape
    out = np.empty((-(-rows // block), -(-cols // block)))
    for r, i in enumerate(range(0, rows, block)):
        for c, j in enumerate(range(0, cols, block)):
            cell = A[i : i + block, j : j + block].astype(np.float64)
            out[r, c] = {"max": cell.max(), "mean": cell.mean(), "mass": cell.sum() / cell.shape[0]}[how]
    return out


@pytest.mark.parametrize("how", ["mass", "mean", "max"])
@pytest.mark.parametrize("shape, block", [((10, 10), 3), ((37, 23), 5), ((64, 64), 8), ((7, 7), 1)])
def test_pool_blocks_is_numpy_block_by_block(how, shape, block):
    A = np.random.default_rng(1).random(shape).astype(np.float32)
    got = sel.pool_blocks(A, block, how)
    expected = numpy_blocks(A, block, how)
    assert got.shape == expected.shape and got.dtype == np.float64
    if how == "max":
        np.testing.assert_array_equal(got, expected)  # exact: the same float32 values
    else:
        # float64 sums of at most block^2 nonnegative terms, in another order: sum_rtol of that many.
        np.testing.assert_allclose(got, expected, rtol=sum_rtol(block * block), atol=0)


def test_mass_pooling_keeps_rows_stochastic_and_mean_is_mass_over_width():
    A = random_heads(1, 1, 50, causal=True)[0, 0]
    mass, mean = sel.pool_blocks(A, 7, "mass"), sel.pool_blocks(A, 7, "mean")
    # Each pooled row is a sum of 50 float32 row entries that sum to 1 within 50 eps32 (float32 softmax).
    np.testing.assert_allclose(mass.sum(axis=1), 1.0, rtol=0, atol=sum_rtol(50, dtype=np.float32))
    widths = np.minimum(7, 50 - np.arange(0, 50, 7))  # the last block is 1 token wide
    np.testing.assert_allclose(mean * widths[None, :], mass, rtol=4 * eps(), atol=0)


def test_pool_rejects_unknown_pooling_and_block():
    with pytest.raises(ValueError, match="pooling must be one of"):
        sel.pool_blocks(np.eye(3), 2, "median")
    with pytest.raises(ValueError, match="block"):
        sel.pool_blocks(np.eye(3), 0, "max")


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("how", ["mass", "mean", "max"])
def test_pooled_whole_head_reads_one_head_in_chunks(causal, how):
    """T > POOL_CHUNK_ROWS with a block that does not divide the chunk: the chunked pooling equals numpy's
    blocks of the whole matrix, and only that head's T x T cells are read."""
    T, block = sel.POOL_CHUNK_ROWS + 77, 7
    heads = random_heads(2, 2, T, causal=causal, seed=3)
    capture = WindowOnly(heads)
    view = sel.pooled_view(capture, 1, 0, block, how)
    assert capture.cells_read == T * T
    expected = numpy_blocks(heads[1, 0], block, how)
    assert view.values.shape == expected.shape == (-(-T // block),) * 2
    rtol = 0 if how == "max" else sum_rtol(block * block)
    np.testing.assert_allclose(view.values, expected, rtol=rtol, atol=0)
    assert view.whole and view.block == block and view.queries == view.keys == (0, T)
    if causal:  # blocks wholly above the diagonal hold masked keys only: exactly 0
        rows, cols = np.indices(view.values.shape)
        assert (view.values[cols > rows] == 0).all()


def test_window_is_the_exact_slice_and_reads_only_it():
    heads = random_heads(2, 3, 40, causal=True, seed=4)
    capture = WindowOnly(heads)
    window = sel.head_window(capture, 1, 2, (5, 17), (3, 30))
    np.testing.assert_array_equal(window, heads[1, 2, 5:17, 3:30].astype(np.float64))  # exact
    assert capture.cells_read == 12 * 27
    view = sel.pooled_view(capture, 1, 2, 1, "max", queries=(5, 17), keys=(3, 30))
    np.testing.assert_array_equal(view.values, heads[1, 2, 5:17, 3:30])
    assert not view.whole and view.queries == (5, 17) and view.keys == (3, 30)
    pooled = sel.pooled_view(capture, 1, 2, 4, "mean", queries=(5, 17), keys=(3, 30))
    np.testing.assert_allclose(
        pooled.values, numpy_blocks(heads[1, 2, 5:17, 3:30], 4, "mean"), rtol=sum_rtol(16), atol=0
    )


def test_window_at_a_temperature_renormalises_whole_rows():
    """A_tau = row-softmax(log A / tau) over every key of the row, then sliced (numpy's own softmax)."""
    heads = random_heads(1, 1, 30, causal=True, seed=5)
    A = heads[0, 0].astype(np.float64)
    tau = 0.5
    with np.errstate(divide="ignore"):
        expected = softmax(np.log(A) / tau, axis=-1)
    window = sel.head_window(heads, 0, 0, (10, 20), (0, 15), tau=tau)
    # Two softmaxes of the same float64 logits over 30 keys: sum_rtol(30) relative, on entries <= 1.
    np.testing.assert_allclose(window, expected[10:20, :15], rtol=0, atol=sum_rtol(30))
    np.testing.assert_array_equal(window[:, 10:][np.triu(np.ones((10, 5), bool), 1)], 0)  # masked stays 0


@pytest.mark.parametrize("queries, keys", [((5, 3), (0, 4)), ((0, 41), (0, 4)), ((0, 4), (-1, 3))])
def test_bad_window_names_the_range(queries, keys):
    heads = random_heads(1, 1, 40, causal=False)
    with pytest.raises(ValueError, match=r"range .* is not inside the text's tokens 0\.\.39"):
        sel.head_window(heads, 0, 0, queries, keys)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_summed_rows_and_columns_are_numpy_sums(causal, tau):
    T = 60
    heads = random_heads(2, 2, T, causal=causal, seed=6)
    A = heads[1, 1].astype(np.float64)
    if tau != 1:
        with np.errstate(divide="ignore"):
            A = softmax(np.log(A) / tau, axis=-1)
    positions = sel.parse_positions("10-20, 35, 36, 50", T)
    rows = sel.summed_over_queries(WindowOnly(heads), 1, 1, positions, tau=tau)
    cols = sel.summed_over_keys(WindowOnly(heads), 1, 1, positions, tau=tau)
    index = list(positions)
    count = len(index)
    # Sums of nonnegative terms (count rows, or count columns) of entries each within sum_rtol(T) of numpy's.
    np.testing.assert_allclose(rows, A[index].sum(axis=0), rtol=sum_rtol(count + T), atol=0)
    np.testing.assert_allclose(cols, A[:, index].sum(axis=1), rtol=sum_rtol(count + T), atol=0)
    # Theorems: the selected rows' sums total |Q| (each row sums to 1); a column sum is a share, at most 1.
    np.testing.assert_allclose(rows.sum(), count, rtol=sum_rtol(count * T, dtype=np.float32))
    assert (cols <= 1 + sum_rtol(T, dtype=np.float32)).all()
    if causal:  # causal masking: nothing reaches keys after the last query; no query before the first key
        assert (rows[max(index) + 1 :] == 0).all() and rows[max(index)] > 0
        assert (cols[: min(index)] == 0).all() and cols[min(index)] > 0


def test_summed_columns_read_only_the_selected_columns():
    heads = random_heads(1, 2, 50, causal=True, seed=7)
    capture = WindowOnly(heads)
    sel.summed_over_keys(capture, 0, 1, (3, 4, 5, 40), tau=1.0)
    assert capture.cells_read == 50 * 4
    capture = WindowOnly(heads)
    sel.summed_over_queries(capture, 0, 1, (3, 4, 5, 40))
    assert capture.cells_read == 4 * 50
    # A scattered selection (more runs than WINDOW_RUNS) reads the head once, not once per run.
    scattered = tuple(range(0, 2 * sel.WINDOW_RUNS + 2, 2))
    for summed in (sel.summed_over_queries, sel.summed_over_keys):
        capture = WindowOnly(heads)
        got = summed(capture, 0, 1, scattered)
        assert capture.cells_read == 50 * 50
        axis = 0 if summed is sel.summed_over_queries else 1
        expected = heads[0, 1].astype(np.float64).take(scattered, axis=axis).sum(axis=axis)
        np.testing.assert_allclose(got, expected, rtol=sum_rtol(len(scattered)), atol=0)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10-20, 35", (*range(10, 21), 35)),
        ("35,10–12", (10, 11, 12, 35)),
        ("3..5; 4", (3, 4, 5)),
        (" 7 ", (7,)),
        ("0-99", tuple(range(100))),
    ],
)
def test_parse_positions(text, expected):
    assert sel.parse_positions(text, 100) == expected
    assert sel.parse_positions(sel.format_positions(expected), 100) == expected


@pytest.mark.parametrize(
    "text, says",
    [
        ("20-10", "'20-10': the start 20 is after the end 10"),
        ("5, 100", "'100' goes beyond the last token, 99"),
        ("90-120", "'90-120' goes beyond the last token, 99"),
        ("abc", "'abc' is not a token position or a range"),
        ("-3", "'-3' is not a token position or a range"),
        ("1.5", "'1.5' is not a token position or a range"),
        (" , ", "no tokens given"),
    ],
)
def test_bad_positions_name_the_value(text, says):
    with pytest.raises(ValueError) as error:
        sel.parse_positions(text, 100)
    assert says in str(error.value)


def test_runs_and_format():
    assert sel.runs([9, 3, 4, 5, 4]) == [(3, 6), (9, 10)]
    assert sel.format_positions([9, 3, 4, 5]) == "3-5, 9"


@pytest.mark.parametrize(
    "xs, ys, expected",
    [
        ([2.6, 7.4], [-3.0, 4.2], ((0, 5), (3, 8))),  # token centres inside the box; clipped at 0
        ([7.4, 2.6], [4.2, -3.0], ((0, 5), (3, 8))),  # either drag direction
        ([10.2, 10.4], [5.1, 5.3], ((5, 6), (10, 11))),  # between two centres: the nearest token
        ([90, 200], [95, 120], ((95, 100), (90, 100))),  # clipped at T
    ],
)
def test_box_window(xs, ys, expected):
    assert sel.box_window(xs, ys, 100) == expected


def test_box_window_rejects_nonsense():
    with pytest.raises(ValueError):
        sel.box_window([float("nan"), 3], [0, 1], 10)


def test_head_cards_and_the_krylov_note():
    """A metric not offered at a length (NaN) is said so, never shown as 'nan'; the note carries each Krylov
    spectrum's largest residual."""
    from types import SimpleNamespace

    from explorer.ui.attention_view import card_value, spectrum_note

    assert card_value(float("nan"), ".1f") == "not at this length"
    assert card_value(0.123456, ".3f") == "0.123"
    spectrum = SimpleNamespace(
        note="Top 8 by ARPACK.",
        residuals={"singular values": np.array([1e-15, 3e-14]), "empty": np.array([])},
    )
    assert spectrum_note(spectrum) == "Top 8 by ARPACK. singular values: largest residual 3.0e-14."
    assert spectrum_note(SimpleNamespace(note="Exact.", residuals=None)) == "Exact."


def test_krylov_vectors_note_names_the_largest_residual():
    from types import SimpleNamespace

    from explorer.analysis.attention import FULL_DECOMPOSITION_MAX_TOKENS
    from explorer.ui.attention_view import vectors_note

    note = vectors_note(SimpleNamespace(residuals=np.array([2e-15, 7e-13, 1e-14])))
    assert f"Past {FULL_DECOMPOSITION_MAX_TOKENS} tokens these 3 vectors" in note
    assert note.endswith("is 7.0e-13 (0 would be exact).")
    assert vectors_note(SimpleNamespace(residuals=None)) is None
