"""Figures for the attention page: the layer x head grid, one head's attention, and its spectra."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.analysis.attention_compare import ATTENTION_DELTAS
from explorer.analysis.attention_selection import POOLINGS, HeatView, pool_blocks  # noqa: F401 (POOLINGS: re-exported)
from explorer.figures.cells import cell_markers
from explorer.figures.common import axes_layout, circle_trace, diverging_heatmap, equal_axes

if TYPE_CHECKING:
    from explorer.analysis.attention import AttentionGrid, HeadSpectrum
    from explorer.analysis.attention_compare import AttentionComparison

# Values below this are drawn at it on logarithmic axes (exact zeros have no logarithm).
LOG_FLOOR = 1e-12
GRID_CLICK_HINT = "Click a cell to select that head."


def head_cell_markers(shape: tuple[int, int], *, customdata, text, hovertemplate: str) -> go.Scatter:
    """The clickable layer of a layer x head grid of ``shape`` (explorer.figures.cells): one invisible marker per
    head (x = head, y = layer, layer-major order) with its row of ``customdata`` (head, field) and its ``text``
    ((layer, head) or flat)."""
    layers, heads = np.indices(shape)
    return cell_markers(heads.ravel(), layers.ravel(), size=14, customdata=customdata,
                        text=np.asarray(text).ravel(), hovertemplate=hovertemplate, name="heads")  # fmt: skip


def make_attention_grid_figure(
    grid: AttentionGrid,
    metric: str,
    *,
    label: str,
    selected: tuple[int, int] | None = None,
    low_is_notable: bool = False,
) -> go.Figure:
    """Heatmap of one metric over layers (rows, layer 0 on top) and heads (columns).

    An invisible scatter point sits on every cell (heatmaps cannot be selected in plotly, scatter points can), so
    a click selects that head; it also carries the hover text. Collapsed heads are marked with x, attention sinks
    with a ring; the selected head is outlined.

    Args:
        grid: AttentionGrid; ``metric`` names one of its (layer, head) arrays; ``label`` is the colorbar title.
    """
    values = np.asarray(grid.metric(metric), dtype=float)
    n_layers, n_heads = values.shape
    layers, heads = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    collapsed, sink = np.asarray(grid.collapsed), np.asarray(grid.sink)
    notes = np.where(
        collapsed & sink, "collapsed, sink", np.where(collapsed, "collapsed", np.where(sink, "sink", ""))
    )
    custom = np.stack(
        [
            layers.ravel(),
            heads.ravel(),
            values.ravel(),
            np.asarray(grid.lambda2_abs).ravel(),
            np.asarray(grid.entropy).ravel(),
            np.asarray(grid.stable_rank).ravel(),
            np.asarray(grid.sink_mass).ravel(),
        ],
        axis=-1,
    )
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=values,
            x=np.arange(n_heads),
            y=np.arange(n_layers),
            colorscale="Viridis",
            reversescale=low_is_notable,
            colorbar=dict(title=dict(text=label, side="right")),
            hoverinfo="skip",
            name=label,
        )
    )
    fig.add_trace(
        head_cell_markers(
            values.shape,
            customdata=custom,
            text=notes,
            hovertemplate=(
                "layer %{customdata[0]:d}, head %{customdata[1]:d}<br>"
                f"{label}: %{{customdata[2]:.4g}}<br>"
                "|λ₂| %{customdata[3]:.3f} · entropy %{customdata[4]:.2f}<br>"
                "stable rank %{customdata[5]:.2f} · sink mass %{customdata[6]:.2f}"
                "<br>%{text}<extra></extra>"
            ),
        )
    )
    # White marks with a dark outline read on every colour of the scale (and in the legend).
    for mask, symbol, size, name in (
        (sink, "circle", 11, "attention sink (≥ half on token 0)"),
        (collapsed, "x", 8, "collapsed (rank ≈ 1)"),
    ):
        if mask.any():
            fig.add_trace(
                go.Scatter(
                    x=heads[mask],
                    y=layers[mask],
                    mode="markers",
                    marker=dict(symbol=symbol, size=size, color="white", line=dict(width=1, color="#212529")),
                    hoverinfo="skip",
                    name=name,
                )
            )
    if selected is not None:
        layer, head = selected
        fig.add_shape(
            type="rect",
            x0=head - 0.5,
            x1=head + 0.5,
            y0=layer - 0.5,
            y1=layer + 0.5,
            line=dict(color="#ff4b4b", width=3),
        )
    fig.update_layout(
        title=f"{label} of every head ({GRID_CLICK_HINT.lower()})",
        xaxis_title="head",
        yaxis_title="layer",
        height=max(280, min(900, 60 + 24 * n_layers)),
        margin=dict(l=50, r=20, t=50, b=40),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right", bgcolor="rgba(0,0,0,0)"),
        clickmode="event+select",
        dragmode=False,
        plot_bgcolor="white",
    )
    fig.update_xaxes(tickmode="linear", dtick=1 if n_heads <= 16 else 2, range=[-0.5, n_heads - 0.5])
    fig.update_yaxes(
        range=[n_layers - 0.5, -0.5], tickmode="linear", dtick=1 if n_layers <= 16 else 2, showgrid=False
    )
    return fig


# Auto colour: log once a query that spreads its attention evenly over its k allowed keys (1/k each) falls in
# the bottom 5 % of a linear scale from 0 to the largest weight (1 in a causal head, whose first row is [1]; near
# 1 in most others): Blues draws that 5 % within 10/255 of white. k is the mean number of allowed keys, n for a
# bidirectional head and (n + 1) / 2 for a causal one, so log from 21 tokens (bidirectional) and 40 (causal).
# Measured on the shipped texts: at 64 tokens the median nonzero weight is below 2 % of the largest in every
# SmolLM2 head and below 5 % in 97 % of MiniLM's. A rule on the size alone keeps one encoding for every head of
# a text, so heads compared one after another are coloured alike.
LOG_AUTO_SHARE = 0.05
# Log colour spans 10^-6 .. 1; weights below 10^-6 take the bottom colour, exact zeros (masked keys, or weights
# that underflowed float32) are left blank.
LOG_COLOR_DECADES = 6
# Past this many tokens a side the heatmap is drawn in blocks of b = ceil(n / DISPLAY_MAX_CELLS) tokens: a chart
# about 500 px tall has no more rows of pixels. Every cell of a 1,024-token head, with a float64 hover copy, was
# 25 MB of JSON, and one temperature step took ~20 s to redraw in Chromium on a loaded 2-core machine (4 s
# pooled; bench/bench_attention_render.py measures the server's side). At 8,192 tokens the overview is still
# 256 x 256 cells: about 0.7 MB of JSON in log colour (z and its hover copy, float32).
DISPLAY_MAX_CELLS = 256
# Token text goes on the axes when a window has at most this many tokens a side: a half-width chart (~370 px of
# plot) fits 32 upright labels of 11 px on its key axis (seen in Chromium: 31 labels at -60° overlapped); past it,
# the axes number the positions.
LABEL_FIT = 32
# The summed-attention chart draws bars up to this many tokens, a line past it (8,192 bars redraw slowly).
BAR_MAX_TOKENS = 512
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
SELECTED_COLOR = "#e03131"


def mean_allowed_keys(n_tokens: int, triangular: bool) -> float:
    """How many keys a query may attend to, on average: n, or (n + 1) / 2 for a causal (lower-triangular) head."""
    return (n_tokens + 1) / 2 if triangular else float(n_tokens)


def auto_log_color(n_tokens: int, triangular: bool) -> bool:
    """Whether the heatmap's automatic colour is log: an even row's weight 1/k is below LOG_AUTO_SHARE."""
    return 1.0 / mean_allowed_keys(n_tokens, triangular) < LOG_AUTO_SHARE


def is_lower_triangular(matrix: np.ndarray) -> bool:
    """Every entry above the diagonal is exactly zero (a causal head: its future keys are masked)."""
    return not np.triu(np.asarray(matrix), 1).any()


def display_block(n_tokens: int, max_cells: int = DISPLAY_MAX_CELLS) -> int:
    """Tokens per displayed cell: 1 up to ``max_cells`` tokens, else ceil(n / max_cells)."""
    return max(1, -(-int(n_tokens) // int(max_cells)))


def log_color_ticks() -> tuple[list[int], list[str]]:
    """The log colour bar's ticks: exponents -LOG_COLOR_DECADES .. 0 and their labels ("10⁻⁶" .. "0.001" .. "1")."""
    values = list(range(-LOG_COLOR_DECADES, 1))
    text = [f"10{str(v).translate(_SUPERSCRIPT)}" if v < -3 else f"{10.0**v:g}" for v in values]
    return values, text


def pooling_name(how: str) -> str:
    """What a pooled cell shows, in a few words ("attention mass", "mean weight", "largest weight")."""
    return {"mass": "attention mass", "mean": "mean weight", "max": "largest weight"}[how]


def _axis(start: int, stop: int, block: int) -> np.ndarray:
    """A heatmap axis in token positions: cell centres (block 1) or cell edges (block > 1, so a ragged last
    block ends exactly at stop - 0.5)."""
    if block == 1:
        return np.arange(start, stop)
    return np.append(np.arange(start, stop, block), stop) - 0.5


def make_attention_heatmap_figure(
    attention: np.ndarray,
    labels: list[str],
    *,
    title: str,
    log_color: bool | None = None,
    pooling: str = "mass",
    max_cells: int = DISPLAY_MAX_CELLS,
) -> go.Figure:
    """Attention matrix of one head, whole: pooled in blocks of display_block(n) tokens past ``max_cells``
    tokens a side (see make_attention_view_figure).

    Args:
        attention: (query, key) row-stochastic. labels: list of length ``token`` ("<position>:<text>").
        log_color: colour by log10 (10^-6 .. 1, zeros blank); None: auto_log_color of the size.
        pooling: a key of POOLINGS, used when the matrix is pooled.
    """
    A = np.asarray(attention, dtype=np.float64)
    n = A.shape[0]
    if log_color is None:
        log_color = auto_log_color(n, is_lower_triangular(A))
    block = display_block(n, max_cells)
    view = HeatView(pool_blocks(A, block, pooling) if block > 1 else A, block, pooling, (0, n), (0, n), n)
    return make_attention_view_figure(view, labels, title=title, log_color=log_color)


def make_attention_view_figure(
    view: HeatView,
    labels: list[str],
    *,
    title: str,
    log_color: bool,
    selectable: bool = False,
    outline: tuple[tuple[int, int], tuple[int, int]] | None = None,
    height: int = 560,
) -> go.Figure:
    """A window of one head's attention: queries down (row i reads from the keys along it), keys across.

    Axes are token positions (so a box selection reads back as positions); with at most LABEL_FIT tokens a
    side and no pooling, the ticks are the tokens' labels. Values go to the browser as float32 (7 digits; the
    hover shows 4): in linear colour the hover reads z itself, in log colour z holds log10 and the values ride
    along once as customdata. Pooled cells (view.block > 1) are the view's blocks, and the axis titles and colour
    bar say which pooling.

    Args:
        view: HeatView (values (query block, key block)).
        labels: the whole text's labels, length ``token`` ("<position>:<text>").
        log_color: colour by log10 of the value (10^-6 .. 1, zeros blank).
        selectable: box selection on (an invisible point on each corner makes plotly offer it).
        outline: ((q0, q1), (k0, k1)) half-open token ranges outlined on the chart (a zoom window).
    """
    values = np.asarray(view.values, dtype=np.float64)
    (q0, q1), (k0, k1), b = view.queries, view.keys, view.block
    if b > 1:
        what = pooling_name(view.how)
        # Short enough for a half-width chart: the colour bar names the pooling, the caption defines it.
        x_title = f"key (attended to), blocks of {b} tokens"
        y_title = f"query (attending), blocks of {b} tokens"
        hover = f"queries ≈ %{{y:.0f}} · keys ≈ %{{x:.0f}} (blocks of {b})<br>{what}"
    else:
        what = "attention"
        x_title, y_title = "key (attended to)", "query (attending)"
        hover = "query %{y} · key %{x}<br>attention"
    shown = values.astype(np.float32)
    if log_color:
        with np.errstate(divide="ignore"):
            z = np.where(values > 0, np.log10(values), np.nan).astype(np.float32)
        tickvals, ticktext = log_color_ticks()
        color = dict(
            colorscale="Viridis",
            zmin=-LOG_COLOR_DECADES,
            zmax=0,
            colorbar=dict(title=dict(text=f"{what}<br>(log scale)"), tickvals=tickvals, ticktext=ticktext),
            customdata=shown,
            hovertemplate=hover + " %{customdata:.4g}<extra></extra>",
        )
    else:
        z = shown
        color = dict(
            colorscale="Blues",
            zmin=0,
            zmax=max(float(values.max()), 1e-12) if values.size else 1.0,
            colorbar=dict(title=dict(text=what)),
            hovertemplate=hover + " %{z:.4f}<extra></extra>",
        )
    fig = go.Figure(go.Heatmap(z=z, x=_axis(k0, k1, b), y=_axis(q0, q1, b), name="attention", **color))
    if selectable:
        # Plotly offers box selection only over selectable traces; four transparent corner points suffice.
        fig.add_trace(
            go.Scatter(
                x=[k0, k1 - 1, k0, k1 - 1],
                y=[q0, q0, q1 - 1, q1 - 1],
                mode="markers",
                marker=dict(size=1, color="rgba(0,0,0,0)"),
                hoverinfo="skip",
                showlegend=False,
                name="select",
            )
        )
    if outline is not None:
        (oq0, oq1), (ok0, ok1) = outline
        fig.add_shape(
            type="rect",
            x0=ok0 - 0.5,
            x1=ok1 - 0.5,
            y0=oq0 - 0.5,
            y1=oq1 - 0.5,
            line=dict(color=SELECTED_COLOR, width=2),
        )
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        margin=dict(l=60, r=20, t=50, b=60),
        plot_bgcolor="white",
        dragmode="select" if selectable else "zoom",
    )
    # No grid lines: they would show through the blank (exactly zero) cells as if they were data.
    x_ticks = _ticks(k0, k1, b, labels)
    fig.update_xaxes(
        range=[k0 - 0.5, k1 - 0.5],
        showgrid=False,
        zeroline=False,
        tickangle=-90 if "ticktext" in x_ticks else 0,
        **x_ticks,
    )
    fig.update_yaxes(range=[q1 - 0.5, q0 - 0.5], showgrid=False, zeroline=False, **_ticks(q0, q1, b, labels))
    return fig


def _ticks(start: int, stop: int, block: int, labels: list[str]) -> dict:
    """Token labels as ticks when the window's tokens fit (LABEL_FIT, no pooling); else numbered positions."""
    if block == 1 and stop - start <= LABEL_FIT and len(labels) >= stop:
        positions = list(range(start, stop))
        return dict(tickmode="array", tickvals=positions, ticktext=[labels[p] for p in positions])
    return dict(tickmode="auto", tickformat="d")


def make_summed_attention_figure(
    sums: np.ndarray, labels: list[str], selected, *, over: str, title: str
) -> go.Figure:
    """Summed attention of several tokens over every token, the selected ones marked (▲ on the axis).

    Args:
        sums: (token,) float64: over="queries": entry j = sum over the selected queries i of a_ij (what they read
            from key j); over="keys": entry i = sum over the selected keys j of a_ij (what query i gives them).
        labels: length ``token`` ("<position>:<text>"), shown on hover. selected: the selected positions.
        over: "queries" (rows summed) or "keys" (columns summed).
    """
    if over not in ("queries", "keys"):
        raise ValueError(f"over must be 'queries' or 'keys', not {over!r}")
    y = np.asarray(sums, dtype=np.float64)
    x = np.arange(y.size)
    chosen = np.asarray(sorted(set(int(p) for p in selected)), dtype=int)
    hover = "%{text}<br>summed attention %{y:.4g}<extra></extra>"
    if y.size <= BAR_MAX_TOKENS:
        main = go.Bar(x=x, y=y, text=labels, textposition="none", marker_color="#4c6ef5", hovertemplate=hover)
    else:
        main = go.Scatter(
            x=x, y=y, text=labels, mode="lines", line=dict(color="#4c6ef5", width=1), hovertemplate=hover
        )
    main.update(name="summed attention", showlegend=False)
    fig = go.Figure(main)
    count = len(chosen)
    fig.add_trace(
        go.Scatter(
            x=chosen,
            y=np.zeros(count),
            mode="markers",
            marker=dict(symbol="triangle-up", size=8, color=SELECTED_COLOR),
            text=[labels[p] for p in chosen] if len(labels) == y.size else None,
            hovertemplate="selected %{text}<extra></extra>",
            name=f"selected {'queries' if over == 'queries' else 'keys'} ({count})",
        )
    )
    if over == "queries":
        x_title = "key (attended to)"
        y_title = f"attention from the {count} selected queries"
    else:
        x_title = "query (attending)"
        y_title = f"attention to the {count} selected keys"
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=340,
        margin=dict(l=60, r=20, t=60, b=40),
        bargap=0,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"),
    )
    fig.update_xaxes(range=[-0.5, y.size - 0.5])
    return fig


def make_eigenvalue_plane_figure(eigvals: np.ndarray, *, title: str, triangular: bool = False) -> go.Figure:
    """Eigenvalues in the complex plane with the unit circle (every eigenvalue of a row-stochastic matrix lies in
    the closed unit disc). Hover shows the index (by modulus) and the modulus.

    Args:
        eigvals: (token,) complex, sorted by modulus descending.
        triangular: the head is lower-triangular (eigenvalues = diagonal entries): said in the hover text.
    """
    lam = np.asarray(eigvals, dtype=complex)
    fig = go.Figure()
    fig.add_trace(circle_trace(points=361))
    what = "diagonal entry a_ii" if triangular else "eigenvalue"
    fig.add_trace(
        go.Scatter(
            x=lam.real,
            y=lam.imag,
            mode="markers",
            marker=dict(
                size=7,
                color=np.abs(lam),
                colorscale="Plasma",
                cmin=0,
                cmax=1,
                colorbar=dict(title="|λ|"),
                line=dict(width=0.5, color="#343a40"),
            ),
            customdata=np.stack([np.arange(1, lam.size + 1), np.abs(lam)], axis=-1),
            hovertemplate=(
                f"λ%{{customdata[0]:d}} ({what})<br>"
                "%{x:.4f} %{y:+.4f}i<br>|λ| = %{customdata[1]:.4f}<extra></extra>"
            ),
            name="eigenvalues",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="Re λ",
        yaxis_title="Im λ",
        height=460,
        margin=dict(l=50, r=20, t=50, b=40),
        showlegend=False,
    )
    equal_axes(fig, 1.1)
    return fig


def _log_floor(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(values, dtype=float), LOG_FLOOR)


def _side_by_side(left: str, right: str) -> go.Figure:
    """Two panels side by side titled ``left`` and ``right`` (the page's pairs of sorted spectra)."""
    return make_subplots(rows=1, cols=2, subplot_titles=(left, right), horizontal_spacing=0.1)


def _sorted_trace(
    y: np.ndarray, customdata: np.ndarray | None, color: str, name: str, hovertemplate: str
) -> go.Scatter:
    """One sorted spectrum against its index i = 1, 2, … (lines and small markers in ``color``): the trace of
    every spectrum panel on this page. y: (i,) the values drawn; customdata: (i,) shown in the hover, or None."""
    return go.Scatter(
        x=np.arange(1, len(y) + 1),
        y=y,
        customdata=customdata,
        mode="lines+markers",
        marker=dict(size=4, color=color),
        line=dict(color=color, width=1.5),
        name=name,
        hovertemplate=hovertemplate,
    )


def make_spectrum_figure(
    eigvals: np.ndarray, singular_values: np.ndarray, *, title: str, log_y: bool = True
) -> go.Figure:
    """Sorted |λ| (left) and singular values (right) against their index, side by side.

    Args:
        eigvals: (token,) complex, sorted by modulus descending. singular_values: (token,) descending.
        log_y: logarithmic y axes (values below LOG_FLOOR are drawn at it).
    """
    moduli = np.abs(np.asarray(eigvals, dtype=complex))
    sigma = np.asarray(singular_values, dtype=float)
    fig = _side_by_side("eigenvalue moduli |λᵢ|", "singular values σᵢ")
    for col, values, name, color in ((1, moduli, "|λ|", "#3b5bdb"), (2, sigma, "σ", "#e8590c")):
        shown = _log_floor(values) if log_y else values
        hover = f"i = %{{x}}<br>{name} = %{{customdata:.4g}}<extra></extra>"
        fig.add_trace(_sorted_trace(shown, values, color, name, hover), row=1, col=col)
        fig.update_xaxes(title_text="index i (sorted, descending)", row=1, col=col)
        fig.update_yaxes(
            title_text=name + (" (log scale)" if log_y else ""),
            type="log" if log_y else "linear",
            exponentformat="power",
            row=1,
            col=col,
        )
    fig.update_layout(title=title, height=380, margin=dict(l=50, r=20, t=80, b=40), showlegend=False)
    return fig


def make_symmetric_laplacian_figure(
    sym_eigvals: np.ndarray, laplacian_eigvals: np.ndarray, *, title: str
) -> go.Figure:
    """Eigenvalues of the symmetric part (A + Aᵀ)/2 (left; real) and of the attention Laplacian L = D − A (right;
    real part, imaginary part in the hover for bidirectional heads), each sorted descending.
    """
    sym = np.asarray(sym_eigvals, dtype=float)
    lap = np.asarray(laplacian_eigvals, dtype=complex)
    fig = _side_by_side("symmetric part (A + Aᵀ)/2", "Laplacian L = D − A (LapEigvals)")
    sym_hover = "i = %{x}<br>eigenvalue %{y:.4g}<extra></extra>"
    fig.add_trace(_sorted_trace(sym, None, "#2b8a3e", "S", sym_hover), row=1, col=1)
    lap_hover = "i = %{x}<br>Re %{y:.4g}<br>Im %{customdata:.3g}<extra></extra>"
    fig.add_trace(_sorted_trace(lap.real, lap.imag, "#862e9c", "L", lap_hover), row=1, col=2)
    fig.update_xaxes(title_text="index i (sorted, descending)")
    fig.update_yaxes(title_text="eigenvalue of S", row=1, col=1)
    fig.update_yaxes(title_text="Re eigenvalue of L", row=1, col=2)
    fig.update_layout(title=title, height=380, margin=dict(l=50, r=20, t=80, b=40), showlegend=False)
    return fig


def head_title(spectrum: HeadSpectrum, what: str) -> str:
    """A figure title naming the head and the temperature, e.g. "Layer 2 · head 5 · τ = 0.5: eigenvalues"."""
    tau = "" if spectrum.tau == 1 else f" · τ = {spectrum.tau:g}"
    return f"Layer {spectrum.layer} · head {spectrum.head}{tau}: {what}"


# ---------------------------------------------------------------------------------------------------------
# A against a variant B (explorer.analysis.attention_compare.AttentionComparison)


def attention_delta_label(metric: str) -> str:
    """The name of a compare-grid quantity (a key of ATTENTION_DELTAS): "Δ" before a grid metric (B − A)."""
    return ATTENTION_DELTAS[metric] if metric == "tv" else f"Δ {ATTENTION_DELTAS[metric]}"


def make_attention_delta_figure(comparison: AttentionComparison, metric: str) -> go.Figure:
    """Layer x head grid of one comparison quantity, white at 0 ("no change"): the mean TV distance (never
    negative, white to red over [0, its largest]) or B − A of a grid metric (red-blue, symmetric about 0). NaN
    cells (a metric not offered) stay blank. Hover: A's and B's values; a click selects the head (cell markers)."""
    z = comparison.delta(metric)
    finite = np.abs(z[np.isfinite(z)])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    label = attention_delta_label(metric)
    signed = metric != "tv"
    n_layers, n_heads = z.shape
    heat = diverging_heatmap(z, lim, colorbar_title="B − A" if signed else "TV")
    if not signed:  # the positive half of the same scale: white at 0, red at the largest distance
        heat.update(zmin=0.0, colorscale="Reds", reversescale=False)
    fig = go.Figure(heat.update(x=list(range(n_heads)), y=list(range(n_layers)), xgap=1, ygap=1))
    title = f"{label} of every head" + (" (B − A)" if signed else "")
    axes_layout(fig, title, "head", "layer", height=max(320, 20 * n_layers + 140), margin=(60, 20, 60, 50))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector=dict(type="heatmap"))
    a, b = comparison.values(metric) if signed else (np.zeros_like(z), z)
    layers, heads = np.indices(z.shape)
    values = np.stack([layers, heads, z, a, b], axis=-1).reshape(-1, 5)
    pair = "<br>A %{customdata[3]:.4g} → B %{customdata[4]:.4g}" if signed else ""
    fig.add_trace(
        head_cell_markers(
            z.shape,
            customdata=values,
            text=np.where(comparison.same, "attends exactly as in A", "attention differs"),
            hovertemplate=f"layer %{{customdata[0]:d}} · head %{{customdata[1]:d}}<br>{label} "
            f"%{{customdata[2]:.4g}}{pair}<br>%{{text}}<extra></extra>",
        )
    )
    return fig


def make_attention_difference_figure(
    attention_a: np.ndarray, attention_b: np.ndarray, labels: list[str], *, title: str,
    max_cells: int = DISPLAY_MAX_CELLS,
) -> go.Figure:  # fmt: skip
    """B − A of one head's attention (query, key) on a red-blue scale symmetric about 0 (white: unchanged; red:
    B attends more). Past ``max_cells`` tokens a side, pooled by attention mass in blocks of display_block(n):
    mass pooling is linear, so the pooled difference is the difference of the pooled heads (each block row of it
    sums to 0, as every row of B − A does)."""
    difference = np.asarray(attention_b, dtype=np.float64) - np.asarray(attention_a, dtype=np.float64)
    n = difference.shape[0]
    block = display_block(n, max_cells)
    if block > 1:
        difference = pool_blocks(difference, block, "mass")
    lim = float(np.abs(difference).max()) if difference.size else 0.0
    fig = go.Figure(diverging_heatmap(difference, lim if lim > 0 else 1.0, colorbar_title="B − A"))
    fig.update_traces(x=_axis(0, n, block), y=_axis(0, n, block))
    blocks = f", blocks of {block} tokens" if block > 1 else ""
    axes_layout(fig, title, f"key (attended to){blocks}", f"query (attending){blocks}", height=560,
                margin=(60, 20, 50, 60), plot_bgcolor="white")  # fmt: skip
    fig.update_xaxes(range=[-0.5, n - 0.5], showgrid=False, zeroline=False, **_ticks(0, n, block, labels))
    fig.update_yaxes(range=[n - 0.5, -0.5], showgrid=False, zeroline=False, **_ticks(0, n, block, labels))
    return fig
