"""Attention and eigenvector figures: the data in the traces and the labels on the axes."""

import numpy as np
import plotly.graph_objects as go
import pytest
from scipy.special import softmax

from explorer.analysis import attention as an
from explorer.figures import attention as fa
from explorer.figures import eigenvectors as fe

N_LAYERS, N_HEADS, N = 3, 4, 10
LABELS = [f"{i}:tok{i}" for i in range(N)]


@pytest.fixture(scope="module")
def attentions():
    rng = np.random.default_rng(0)
    logits = 2 * rng.standard_normal((N_LAYERS, N_HEADS, N, N))
    logits[0, 0] = -10.0  # head (0, 0): everything on token 0, a collapsed attention sink
    logits[0, 0, :, 0] = 10.0
    return softmax(logits, axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def grid(attentions):
    return an.attention_grid(attentions, causal=False)


@pytest.fixture(scope="module")
def spectrum(attentions):
    return an.head_spectrum(attentions, 1, 2, causal=False)


def test_grid_figure_data_selection_and_flags(grid):
    fig = fa.make_attention_grid_figure(grid, "entropy", label="row entropy", selected=(2, 1))
    assert isinstance(fig, go.Figure)
    heatmap = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), grid.entropy)
    cells = fig.data[1]  # the clickable points: one per head, x = head, y = layer
    assert len(cells.x) == N_LAYERS * N_HEADS
    custom = np.asarray(cells.customdata)
    for x, y, row in zip(cells.x, cells.y, custom, strict=True):
        assert (row[0], row[1]) == (y, x)
        assert row[2] == grid.entropy[y, x]  # exact: a copy of the grid's value
    names = [trace.name for trace in fig.data]
    assert any("sink" in name for name in names) and any("collapsed" in name for name in names)
    flagged = next(trace for trace in fig.data if "collapsed" in trace.name)
    assert (0, 0) in set(zip(flagged.y, flagged.x, strict=True))
    rect = fig.layout.shapes[0]
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (0.5, 1.5, 1.5, 2.5)
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    assert fig.layout.clickmode == "event+select"


def test_grid_figure_rejects_unknown_metric(grid):
    with pytest.raises(KeyError):
        fa.make_attention_grid_figure(grid, "nonsense", label="x")


F32_EPS = float(np.finfo(np.float32).eps)


def random_attention(n: int, *, causal: bool, seed: int = 0) -> np.ndarray:
    """A random row-stochastic (n, n) matrix, lower-triangular when causal (rows over their allowed keys)."""
    weights = np.random.default_rng(seed).exponential(size=(n, n)) ** 4  # heavy-tailed, like real heads
    if causal:
        weights = np.tril(weights)
    return weights / weights.sum(-1, keepdims=True)


def test_attention_heatmap_linear_and_log(spectrum):
    fig = fa.make_attention_heatmap_figure(spectrum.attention, LABELS, title="t", log_color=False)
    heatmap = fig.data[0]
    # exact: the trace holds this array, rounded to float32 for the browser
    np.testing.assert_array_equal(np.asarray(heatmap.z), spectrum.attention.astype(np.float32))
    assert np.asarray(heatmap.z).dtype == np.float32 and heatmap.customdata is None  # hover reads z
    assert "%{z" in heatmap.hovertemplate
    # Axes in token positions (a box selection reads back as positions); the ticks are the tokens' labels.
    assert list(heatmap.x) == list(range(N)) and list(heatmap.y) == list(range(N))
    assert list(fig.layout.xaxis.ticktext) == LABELS and list(fig.layout.xaxis.tickvals) == list(range(N))
    assert list(fig.layout.yaxis.ticktext) == LABELS
    assert tuple(fig.layout.xaxis.range) == (-0.5, N - 0.5) and tuple(fig.layout.yaxis.range) == (
        N - 0.5,
        -0.5,
    )
    assert fig.layout.xaxis.title.text == "key (attended to)"
    assert fig.layout.yaxis.title.text == "query (attending)"
    assert heatmap.zmin == 0 and heatmap.zmax == spectrum.attention.max()  # exact: the same max
    log = fa.make_attention_heatmap_figure(spectrum.attention, LABELS, title="t", log_color=True)
    heatmap = log.data[0]
    # exact: the same log10 of the same array, rounded to float32
    np.testing.assert_array_equal(np.asarray(heatmap.z), np.log10(spectrum.attention).astype(np.float32))
    # exact: the trace holds this array (float32), and the hover shows it
    np.testing.assert_array_equal(np.asarray(heatmap.customdata), spectrum.attention.astype(np.float32))
    assert "%{customdata" in heatmap.hovertemplate
    assert (heatmap.zmin, heatmap.zmax) == (-6, 0)
    assert "log scale" in heatmap.colorbar.title.text
    assert list(heatmap.colorbar.tickvals) == [-6, -5, -4, -3, -2, -1, 0]
    assert list(heatmap.colorbar.ticktext) == ["10⁻⁶", "10⁻⁵", "10⁻⁴", "0.001", "0.01", "0.1", "1"]


def test_log_colour_leaves_exact_zeros_blank():
    A = random_attention(12, causal=True)
    z = np.asarray(
        fa.make_attention_heatmap_figure(A, LABELS + ["a", "b"], title="t", log_color=True).data[0].z
    )
    np.testing.assert_array_equal(np.isnan(z), A == 0)  # the masked future keys, and only they
    np.testing.assert_array_equal(z[A > 0], np.log10(A[A > 0]).astype(np.float32))  # exact: same log10, cast


@pytest.mark.parametrize("causal", [True, False])
def test_default_colour_is_log_past_the_washout_length(causal):
    """Auto colour is log exactly when an even row's weight 1/k (k the mean number of allowed keys, counted
    from the mask) is below 5 % of the scale; at long lengths it is log."""
    for n in range(2, 120):
        A = random_attention(n, causal=causal, seed=n)
        allowed = (np.tril(np.ones((n, n))) if causal else np.ones((n, n))).sum(-1).mean()
        expected_log = 1 / allowed < 0.05
        assert fa.auto_log_color(n, fa.is_lower_triangular(A)) == expected_log, n
    assert fa.auto_log_color(39, True) is False and fa.auto_log_color(40, True) is True
    assert fa.auto_log_color(20, False) is False and fa.auto_log_color(21, False) is True
    n = 1024
    A = random_attention(n, causal=causal)
    labels = [f"{i}:t{i}" for i in range(n)]
    heatmap = fa.make_attention_heatmap_figure(A, labels, title="t").data[0]  # log_color not given: auto
    assert "log scale" in heatmap.colorbar.title.text and heatmap.zmin == -6
    short = fa.make_attention_heatmap_figure(
        A[:8, :8] / A[:8, :8].sum(-1, keepdims=True), labels[:8], title="t"
    )
    assert short.data[0].colorscale[0][1] == "rgb(247,251,255)" and short.data[0].zmin == 0  # Blues, linear


def numpy_blocks(A: np.ndarray, block: int, how: str) -> np.ndarray:
    """Block mass (sum / queries in the block), block mean (numpy's mean of the block) or block max, one slice
    at a time."""
    n = A.shape[0]
    starts = range(0, n, block)
    out = np.empty((len(starts), len(starts)))
    for row, i0 in enumerate(starts):
        for col, j0 in enumerate(starts):
            cell = A[i0 : i0 + block, j0 : j0 + block]
            if how == "max":
                out[row, col] = cell.max()
            else:
                out[row, col] = cell.sum() / (cell.shape[0] if how == "mass" else cell.size)
    return out


@pytest.mark.parametrize("how", ["mass", "mean", "max"])
@pytest.mark.parametrize("log_color", [False, True])
def test_pooled_heatmap_equals_numpy_blocks(how, log_color):
    n = 1023  # blocks of ceil(1023 / 256) = 4 tokens, the last one 3
    A = random_attention(n, causal=True, seed=7)
    labels = [f"{i}:t{i}" for i in range(n)]
    fig = fa.make_attention_heatmap_figure(A, labels, title="t", log_color=log_color, pooling=how)
    heatmap = fig.data[0]
    expected = numpy_blocks(A, 4, how)
    assert np.asarray(heatmap.z).shape == (256, 256) == expected.shape
    # A float64 sum of at most 16 terms rounded to float32: within one float32 rounding (eps32 relative).
    shown = np.asarray(heatmap.customdata if log_color else heatmap.z, dtype=np.float64)
    np.testing.assert_allclose(shown, expected, rtol=F32_EPS, atol=0)
    if log_color:
        z = np.asarray(heatmap.z, dtype=np.float64)
        np.testing.assert_array_equal(np.isnan(z), expected == 0)  # blocks wholly above the diagonal
        # log10 turns a relative error d into an absolute one d / ln 10; then one float32 rounding of |z| <= 20.
        positive = expected > 0
        np.testing.assert_allclose(z[positive], np.log10(expected[positive]), rtol=F32_EPS, atol=F32_EPS)
    if how == "mass":
        # Mass pooling keeps the rows stochastic: each block row sums to 1 (float64 sum of n terms).
        np.testing.assert_allclose(
            fa.pool_blocks(A, 4, "mass").sum(-1), 1.0, atol=4 * n * np.finfo(float).eps
        )
    # The axes say the pooling; the labels name each block's token range.
    assert (
        "blocks of 4 tokens" in fig.layout.xaxis.title.text
        and fa.pooling_name(how) in heatmap.colorbar.title.text
    )
    assert "blocks of 4 tokens" in fig.layout.yaxis.title.text
    # Cell edges in token positions: blocks 0-3, 4-7, ..., the ragged last one 1020-1022 ends at 1022.5.
    edges = np.asarray(heatmap.x)
    np.testing.assert_array_equal(edges, np.append(np.arange(0, n, 4), n) - 0.5)
    np.testing.assert_array_equal(np.asarray(heatmap.y), edges)
    assert fig.layout.xaxis.tickmode == "auto"  # too many tokens for their text: positions


def test_no_pooling_up_to_the_display_limit():
    n = fa.DISPLAY_MAX_CELLS
    A = random_attention(n, causal=False)
    fig = fa.make_attention_heatmap_figure(A, [f"{i}:t" for i in range(n)], title="t", log_color=False)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), A.astype(np.float32))  # exact: the same cast
    assert fa.display_block(n) == 1 and fa.display_block(n + 1) == 2 and fa.display_block(1024) == 4
    with pytest.raises(ValueError, match="pooling"):
        fa.pool_blocks(A, 2, "median")


def test_eigenvalue_plane(spectrum):
    fig = fa.make_eigenvalue_plane_figure(spectrum.eigvals, title="t")
    circle, points = fig.data
    np.testing.assert_allclose(np.hypot(circle.x, circle.y), 1.0, atol=1e-12)  # cos, sin to an ulp: ~2 eps
    # exact: the trace holds the eigenvalues' real and imaginary parts
    np.testing.assert_array_equal(points.x, spectrum.eigvals.real)
    np.testing.assert_array_equal(points.y, spectrum.eigvals.imag)
    custom = np.asarray(points.customdata)
    np.testing.assert_array_equal(custom[:, 0], np.arange(1, N + 1))
    np.testing.assert_array_equal(custom[:, 1], np.abs(spectrum.eigvals))  # exact: the same np.abs
    assert "|λ|" in points.hovertemplate
    assert fig.layout.xaxis.title.text == "Re λ" and fig.layout.yaxis.scaleanchor == "x"


def test_spectrum_figure_side_by_side(spectrum):
    fig = fa.make_spectrum_figure(spectrum.eigvals, spectrum.singular_values, title="t")
    moduli, sigma = fig.data
    np.testing.assert_array_equal(moduli.customdata, np.abs(spectrum.eigvals))  # exact: the same np.abs
    # exact: the same floor
    np.testing.assert_array_equal(moduli.y, np.maximum(np.abs(spectrum.eigvals), fa.LOG_FLOOR))
    # exact: the trace holds this array
    np.testing.assert_array_equal(sigma.customdata, spectrum.singular_values)
    assert moduli.xaxis == "x" and sigma.xaxis == "x2"
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    linear = fa.make_spectrum_figure(spectrum.eigvals, spectrum.singular_values, title="t", log_y=False)
    # exact: the trace holds this array
    np.testing.assert_array_equal(linear.data[1].y, spectrum.singular_values)


def test_symmetric_laplacian_figure(spectrum):
    fig = fa.make_symmetric_laplacian_figure(spectrum.sym_eigvals, spectrum.laplacian_eigvals, title="t")
    np.testing.assert_array_equal(fig.data[0].y, spectrum.sym_eigvals)  # exact: the trace holds this array
    # exact: the trace holds this array
    np.testing.assert_array_equal(fig.data[1].y, spectrum.laplacian_eigvals.real)
    # exact: the trace holds this array
    np.testing.assert_array_equal(fig.data[1].customdata, spectrum.laplacian_eigvals.imag)
    assert "Laplacian" in fig.layout.annotations[1].text


def test_head_title_mentions_temperature(attentions):
    hot = an.head_spectrum(attentions, 0, 1, causal=False, tau=2.0)
    assert fa.head_title(hot, "x") == "Layer 0 · head 1 · τ = 2: x"


@pytest.mark.parametrize("kind", ["right", "symmetric", "singular"])
def test_eigenvector_heatmap_signed_and_magnitude(attentions, kind):
    result = an.head_eigenvectors(attentions, 2, 3, kind=kind, k=4)
    fig = fe.make_eigenvector_heatmap_figure(result, LABELS, mode="signed")
    # exact: the trace holds this array
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), result.vectors.real)
    assert fig.data[0].zmid == 0
    assert list(fig.data[0].y) == fe.vector_labels(result)
    assert list(fig.data[0].x) == LABELS
    mag = fe.make_eigenvector_heatmap_figure(result, LABELS, mode="magnitude")
    np.testing.assert_array_equal(np.asarray(mag.data[0].z), np.abs(result.vectors))  # exact: the same np.abs
    custom = np.asarray(mag.data[0].customdata)
    # exact: the same np.degrees(np.angle)
    np.testing.assert_array_equal(custom[..., 3], np.degrees(np.angle(result.vectors)))
    with pytest.raises(ValueError):
        fe.make_eigenvector_heatmap_figure(result, LABELS, mode="rainbow")


def test_vector_labels_format_complex_pairs():
    assert fe.format_value(0.5) == "0.500"
    assert fe.format_value(0.25 - 0.125j) == "0.250−0.125i"


def test_stationary_figure(attentions):
    result = an.head_eigenvectors(attentions, 1, 1, kind="symmetric", k=2)
    fig = fe.make_stationary_figure(result.stationary, LABELS, damping=0.85, top=3)
    bar = fig.data[0]
    np.testing.assert_array_equal(bar.y, result.stationary)  # exact: the trace holds this array
    colors = np.asarray(bar.marker.color)
    top = np.argsort(-result.stationary)[:3]
    assert set(np.flatnonzero(colors == colors[top[0]])) == set(top)
    assert fig.layout.shapes[0].y0 == 1 / N  # exact: the uniform level 1 / n, computed the same way
    assert "π" in fig.layout.yaxis.title.text


def test_top_tokens_table(attentions):
    result = an.head_eigenvectors(attentions, 1, 1, kind="singular", k=3, n_top=2)
    rows = fe.top_tokens_table(result, LABELS)
    assert len(rows) == 3
    for row, positions in zip(rows, result.top_tokens, strict=True):
        first, second = row["top tokens (entry)"].split(" · ")
        assert first.startswith(LABELS[positions[0]]) and second.startswith(LABELS[positions[1]])


def test_view_figure_of_a_window_in_token_positions():
    """A zoomed window: cells at the window's own positions, token text on the ticks when it fits, and the
    overview's box selection and outline."""
    from explorer.analysis.attention_selection import pooled_view

    n = 300
    A = random_attention(n, causal=True, seed=2).astype(np.float32)
    labels = [f"{i}:t{i}" for i in range(n)]
    view = pooled_view(A[None, None], 0, 0, 1, "max", queries=(100, 130), keys=(90, 120))
    fig = fa.make_attention_view_figure(view, labels, title="t", log_color=False)
    heatmap = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), A[100:130, 90:120])  # exact: the float32 weights
    assert list(heatmap.x) == list(range(90, 120)) and list(heatmap.y) == list(range(100, 130))
    assert (
        list(fig.layout.xaxis.ticktext) == labels[90:120]
        and list(fig.layout.yaxis.ticktext) == labels[100:130]
    )
    assert tuple(fig.layout.xaxis.range) == (89.5, 119.5) and tuple(fig.layout.yaxis.range) == (129.5, 99.5)
    wide = pooled_view(A[None, None], 0, 0, 1, "max", queries=(0, fa.LABEL_FIT + 1), keys=(0, 10))
    assert (
        fa.make_attention_view_figure(wide, labels, title="t", log_color=False).layout.yaxis.tickmode
        == "auto"
    )
    whole = pooled_view(A[None, None], 0, 0, fa.display_block(n), "mean")
    over = fa.make_attention_view_figure(
        whole, labels, title="t", log_color=True, selectable=True, outline=((100, 140), (90, 120))
    )
    assert over.layout.dragmode == "select"
    corners = over.data[1]  # the invisible points that make plotly offer box selection
    assert set(zip(corners.x, corners.y, strict=True)) == {(0, 0), (n - 1, 0), (0, n - 1), (n - 1, n - 1)}
    rect = over.layout.shapes[0]
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (89.5, 119.5, 99.5, 139.5)
    assert (
        "mean weight" in over.data[0].colorbar.title.text
        and "blocks of 2 tokens" in over.layout.xaxis.title.text
    )


@pytest.mark.parametrize("n", [40, 2000])
@pytest.mark.parametrize("over", ["queries", "keys"])
def test_summed_figure_marks_the_selection(n, over):
    sums = np.random.default_rng(0).random(n)
    labels = [f"{i}:t{i}" for i in range(n)]
    fig = fa.make_summed_attention_figure(sums, labels, [3, 5, 4, 30], over=over, title="t")
    main, marks = fig.data
    assert main.type == ("bar" if n <= fa.BAR_MAX_TOKENS else "scatter")
    np.testing.assert_array_equal(np.asarray(main.y), sums)  # exact: the same float64 values
    np.testing.assert_array_equal(np.asarray(main.x), np.arange(n))
    assert list(main.text) == labels
    assert list(marks.x) == [3, 4, 5, 30] and list(marks.text) == [labels[i] for i in (3, 4, 5, 30)]
    assert f"selected {over} (4)" == marks.name
    axis = "key (attended to)" if over == "queries" else "query (attending)"
    assert fig.layout.xaxis.title.text == axis and "4 selected" in fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="over must be"):
        fa.make_summed_attention_figure(sums, labels, [1], over="rows", title="t")


@pytest.mark.parametrize("log_color", [False, True])
def test_overview_at_8192_tokens_stays_small(log_color):
    """At SmolLM2's full context the overview is 256 x 256 blocks of 32 tokens: its JSON (z, and in log colour
    the hover copy, as float32) stays under 1 MB (measured: 0.37 MB linear, 0.79 MB log)."""
    from explorer.analysis.attention_selection import HeatView

    n, block = 8192, fa.display_block(8192)
    assert block == 32
    values = np.random.default_rng(0).random((256, 256))
    view = HeatView(values, block, "max", (0, n), (0, n), n)
    fig = fa.make_attention_view_figure(
        view, [f"{i}:t{i}" for i in range(n)], title="t", log_color=log_color, selectable=True
    )
    assert len(fig.to_json()) < 1_000_000
    assert np.asarray(fig.data[0].x)[-1] == n - 0.5 and len(fig.data[0].x) == 257  # cell edges
