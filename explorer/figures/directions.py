"""Figures for hidden-state geometry (PCA, UMAP) and semantic directions. Data in, go.Figure out."""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.directions import DirectionAnalysis, LayerProfile
from explorer.figures.common import axes_layout
from explorer.spectra.projections import LayerwisePCA, PCAResult
from explorer.spectra.semantic import Control, Debias

_SEQ = "Viridis"
_FIRST = "#3b5bdb"  # first words of the pairs (positive scores)
_SECOND = "#e8590c"  # second words (negative scores)
_CONTROL = "#868e96"
MAX_LABELLED_POINTS = 40


def _hover_labels(labels: list[str], points: list[int]) -> list[str]:
    return [labels[i] for i in points]


def _colour_kwargs(labels: list[str], points: list[int], color_by: str) -> dict:
    """Marker colour by position (continuous), by token text (one colour per distinct token), or "none"."""
    if color_by == "none":
        return dict(color=_FIRST)
    if color_by == "token":
        texts = [labels[i].split(":", 1)[-1] for i in points]
        codes = {t: k for k, t in enumerate(dict.fromkeys(texts))}
        return dict(color=[codes[t] for t in texts], colorscale="Turbo", showscale=False)
    return dict(color=list(points), colorscale=_SEQ, showscale=True, colorbar=dict(title="position"))


def make_projection_figure(
    coords: np.ndarray,
    labels: list[str],
    points: list[int],
    *,
    axis_titles: list[str],
    title: str,
    color_by: str = "position",
    show_text: bool | None = None,
) -> go.Figure:
    """2-D or 3-D scatter of projected points (tokens or words).

    Args:
        coords: ndarray of shape (point, 2 or 3).
        labels: hover label of every token (indexed by ``points``), e.g. ``"3:fox"``.
        points: which labels the rows of ``coords`` belong to.
        axis_titles: one title per axis (with units, e.g. "PC1 (31.2 % of variance)").
        color_by: "position" (colour scale over token position), "token" (same token, same colour) or "none".
        show_text: write the labels beside the points (default: when there are at most 40 points).
    """
    coords = np.asarray(coords, dtype=float)
    text = _hover_labels(labels, points)
    marker = dict(size=7 if coords.shape[1] == 2 else 4, line=dict(width=0.5, color="white"))
    marker.update(_colour_kwargs(labels, points, color_by))
    # Short sets get their labels written on the plot (readable in a static screenshot); long ones on hover.
    show_text = show_text if show_text is not None else len(points) <= MAX_LABELLED_POINTS
    mode = "markers+text" if show_text else "markers"
    common = dict(
        mode=mode,
        text=[re.sub(r"^\d+:", "", t) for t in text],  # on the plot: the token alone
        hovertext=text,  # on hover: position and token
        marker=marker,
        hovertemplate="%{hovertext}<extra></extra>",
        textposition="top center",
        textfont=dict(size=10, color="#495057"),
    )
    fig = go.Figure()
    if coords.shape[1] >= 3:
        fig.add_trace(go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], **common))
        fig.update_layout(
            scene=dict(xaxis_title=axis_titles[0], yaxis_title=axis_titles[1], zaxis_title=axis_titles[2]),
            height=620,
        )
    else:
        fig.add_trace(go.Scatter(x=coords[:, 0], y=coords[:, 1], **common))
        fig.update_layout(xaxis_title=axis_titles[0], yaxis_title=axis_titles[1], height=520)
    fig.update_layout(title=title, showlegend=False, margin=dict(l=50, r=20, t=50, b=50))
    return fig


def _pc_titles(result: PCAResult, n: int) -> list[str]:
    return [f"PC{i + 1} ({100 * result.explained_variance_ratio[i]:.1f} % of variance)" for i in range(n)]


def hidden_state_name(index: int) -> str:
    """Hidden state ``index`` (0..L) in words: 0 is the embedding output, l the output of block l - 1 (layers
    are 0-based block indices everywhere in the app)."""
    return "embedding output" if index == 0 else f"after block {index - 1}"


def make_pca_scatter_figure(
    result: PCAResult,
    labels: list[str],
    *,
    dims: int = 2,
    color_by: str = "position",
    title: str | None = None,
    show_text: bool | None = None,
) -> go.Figure:
    """PCA scatter (2-D or 3-D) of a PCAResult; axis titles carry each component's share of variance."""
    dims = min(dims, result.coords.shape[1])
    where = hidden_state_name(result.layer) if result.layer is not None else ""
    default = (
        f"Hidden states {where}: first {dims} principal components"
        if result.layer is not None
        else f"Input-embedding rows: first {dims} principal components"
    )
    return make_projection_figure(
        result.coords[:, :dims],
        labels,
        result.points,
        axis_titles=_pc_titles(result, dims),
        title=title or default,
        color_by=color_by,
        show_text=show_text,
    )


def make_umap_figure(
    coords: np.ndarray, labels: list[str], points: list[int], *, layer: int, n_neighbors: int, color_by: str
) -> go.Figure:
    where = hidden_state_name(layer)
    return make_projection_figure(
        coords,
        labels,
        points,
        axis_titles=[f"UMAP {i + 1} (arbitrary units)" for i in range(coords.shape[1])],
        title=f"Hidden states {where}: UMAP (n_neighbors = {n_neighbors})",
        color_by=color_by,
    )


def make_scree_figure(result: PCAResult, *, max_components: int = 20) -> go.Figure:
    """Explained-variance scree: each component's share (bars) and the cumulative share (line), in %."""
    ratio = np.asarray(result.explained_variance_ratio, dtype=float)[:max_components] * 100
    k = np.arange(1, len(ratio) + 1)
    fig = go.Figure(
        [
            go.Bar(
                x=k,
                y=ratio,
                name="this component",
                marker_color=_FIRST,
                hovertemplate="PC%{x}: %{y:.1f} %<extra></extra>",
            ),
            go.Scatter(
                x=k,
                y=np.cumsum(ratio),
                name="cumulative",
                mode="lines+markers",
                line=dict(color=_SECOND),
                hovertemplate="PC1..PC%{x}: %{y:.1f} %<extra></extra>",
            ),
        ]
    )
    fig.update_layout(
        title="Explained variance by principal component",
        xaxis_title="principal component",
        yaxis_title="share of variance (%)",
        yaxis_range=[0, 102],
        legend=dict(x=0.98, y=0.45, xanchor="right", yanchor="middle", bgcolor="rgba(255,255,255,0.7)"),
        margin=dict(l=50, r=20, t=60, b=50),
        height=360,
    )
    fig.update_xaxes(dtick=1 if len(k) <= 12 else None, range=[0.4, len(k) + 0.6])
    return fig


def make_layer_animation_figure(
    result: LayerwisePCA, labels: list[str], *, color_by: str = "position"
) -> go.Figure:
    """2-D PCA of every layer as Plotly animation frames (play button and a layer slider).

    Each frame is that layer's own PCA (signs chained between layers); axes are rescaled per frame.
    """
    coords = result.coords
    n_layers = coords.shape[0]
    text = _hover_labels(labels, result.points)
    marker = dict(size=7, line=dict(width=0.5, color="white"))
    marker.update(_colour_kwargs(labels, result.points, color_by))

    labelled = len(text) <= MAX_LABELLED_POINTS

    def scatter(layer: int) -> go.Scatter:
        return go.Scatter(
            x=coords[layer, :, 0],
            y=coords[layer, :, 1],
            mode="markers+text" if labelled else "markers",
            text=[re.sub(r"^\d+:", "", t) for t in text],
            hovertext=text,
            textposition="top center",
            textfont=dict(size=10, color="#495057"),
            marker=marker,
            hovertemplate="%{hovertext}<extra></extra>",
        )

    def frame_layout(layer: int) -> dict:
        lim = float(np.abs(coords[layer]).max() or 1.0) * 1.1
        r = result.explained_variance_ratio[layer] * 100
        return dict(
            xaxis=dict(range=[-lim, lim], title=f"PC1 ({r[0]:.1f} % of variance)"),
            yaxis=dict(range=[-lim, lim], title=f"PC2 ({r[1]:.1f} % of variance)"),
            title=f"Hidden state {layer} ({hidden_state_name(layer)}): its own first two principal components",
        )

    frames = [go.Frame(data=[scatter(i)], name=str(i), layout=frame_layout(i)) for i in range(n_layers)]
    fig = go.Figure(data=[scatter(0)], frames=frames)
    steps = [
        dict(
            method="animate",
            label=str(i),
            args=[
                [str(i)],
                dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0)),
            ],
        )
        for i in range(n_layers)
    ]
    fig.update_layout(
        **frame_layout(0),
        height=560,
        showlegend=False,
        margin=dict(l=50, r=20, t=50, b=40),
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0,
                y=-0.12,
                xanchor="left",
                yanchor="top",
                buttons=[
                    dict(
                        label="▶ play",
                        method="animate",
                        args=[None, dict(frame=dict(duration=500, redraw=True), fromcurrent=True)],
                    ),
                    dict(
                        label="❚❚ pause",
                        method="animate",
                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))],
                    ),
                ],
            )
        ],
        sliders=[
            dict(active=0, steps=steps, x=0.15, len=0.85, y=-0.06, currentvalue=dict(prefix="hidden state "))
        ],
    )
    return fig


def _side_names(analysis: DirectionAnalysis) -> tuple[str, str]:
    a, b = analysis.pairs[0]
    return a, b


def make_bias_figure(analysis: DirectionAnalysis) -> go.Figure:
    """Sorted horizontal bars: each target word's cosine with the direction (positive = first-word side)."""
    scores = np.asarray(analysis.bias, dtype=float)
    order = np.argsort(scores)
    words = [analysis.targets[i] for i in order]
    values = scores[order]
    a, b = _side_names(analysis)
    fig = go.Figure(
        go.Bar(
            x=values,
            y=words,
            orientation="h",
            marker_color=[_FIRST if v >= 0 else _SECOND for v in values],
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    title = f"Bias scores: cosine with the {a}–{b} direction"
    x_title = f"cosine with direction  (← {b} side · {a} side →)"
    axes_layout(fig, title, x_title, "word", height=max(320, 22 * len(words) + 120), margin=(110, 20, 50, 50))
    _zero_line(fig)
    return fig


def _zero_line(fig: go.Figure) -> None:
    """A marked x = 0, the boundary between the two sides of a direction."""
    fig.update_xaxes(zeroline=True, zerolinewidth=1.5, zerolinecolor="#495057")


def _grouped_bars_layout(
    fig: go.Figure, title: str, x_title: str, y_title: str, *, height: int, left: int
) -> None:
    """Grouped bars with their legend above the plot at the right (the 70 px top margin leaves it room)."""
    legend = dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right")
    axes_layout(
        fig, title, x_title, y_title, height=height, margin=(left, 20, 70, 50), legend=legend, barmode="group"
    )


def make_debias_figure(result: Debias, *, first: str, second: str) -> go.Figure:
    """Before/after removing the direction: the similarity gap cos(w, first words) - cos(w, second words),
    and the projection on the direction (zero after)."""
    order = np.argsort(result.gap_before)
    words = [result.words[i] for i in order]
    after = "after (projection %{customdata:.1e})"
    bars = (  # gap, projection on the direction (hovered after only), name, colour, hover
        (result.gap_before, None, "before", _FIRST, "before"),
        (result.gap_after, result.after, "after removing the direction", _CONTROL, after),
    )
    fig = go.Figure(
        [
            go.Bar(
                y=words,
                x=gap[order],
                orientation="h",
                name=name,
                marker_color=color,
                customdata=None if projection is None else projection[order],
                hovertemplate=f"%{{y}}: gap %{{x:.3f}} {hover}<extra></extra>",
            )
            for gap, projection, name, color, hover in bars
        ]
    )
    title = "Debias preview: lean towards one side, before and after"
    x_title = f"lean: mean cos(word, {first}-side) − cos(word, {second}-side)"
    _grouped_bars_layout(fig, title, x_title, "word", height=max(340, 30 * len(words) + 140), left=110)
    _zero_line(fig)
    return fig


def make_direction_scree_figure(analysis: DirectionAnalysis, *, max_components: int = 10) -> go.Figure:
    """Share of each principal component of the pair differences, real pairs against the random-pair control
    (the control bar is the mean over draws with the standard deviation as error bar, first component only)."""
    ratio = np.asarray(analysis.direction.explained_ratio, dtype=float)[:max_components] * 100
    k = np.arange(1, len(ratio) + 1)
    control: Control = analysis.control
    fig = go.Figure(
        [
            go.Bar(
                x=[f"PC{i}" for i in k],
                y=ratio,
                name=f"{len(analysis.pairs)} word pairs",
                marker_color=_FIRST,
                hovertemplate="%{x}: %{y:.1f} %<extra></extra>",
            ),
            go.Bar(
                x=["PC1"],
                y=[100 * float(control.mean)],
                error_y=dict(type="data", array=[100 * float(control.std)], visible=True),
                name=f"random pairs ({control.shares.shape[-1]} draws, mean ± sd)",
                marker_color=_CONTROL,
                hovertemplate="random pairs PC1: %{y:.1f} %<extra></extra>",
            ),
        ]
    )
    title = "How one-dimensional? Components of the pair differences"
    x_title = "principal component of the pair differences"
    _grouped_bars_layout(fig, title, x_title, "share of variance (%)", height=360, left=50)
    return fig


def make_direction_by_layer_figure(profile: LayerProfile, *, chosen_layer: int | None = None) -> go.Figure:
    """The direction's explained share at every layer (contextual states) beside the random-pair control band
    (mean ± sample standard deviation over the draws)."""
    share = np.asarray(profile.shares, dtype=float) * 100
    mean = np.asarray(profile.control.mean, dtype=float) * 100
    std = np.asarray(profile.control.std, dtype=float) * 100
    layers = np.arange(len(share))
    curves = (  # values (%), mode, line, name, hover tag
        (mean, "lines", dict(color=_CONTROL, dash="dash"), "random pairs (mean)", "random"),
        (share, "lines+markers", dict(color=_FIRST, width=3), f"{len(profile.pairs)} word pairs", "pairs"),
    )
    fig = go.Figure(
        [
            go.Scatter(
                x=np.concatenate([layers, layers[::-1]]),
                y=np.concatenate([mean + std, (mean - std)[::-1]]),
                fill="toself",
                fillcolor="rgba(134,142,150,0.25)",
                mode="lines",
                line=dict(width=0),
                hoverinfo="skip",
                name="random pairs ± sd",
            ),
            *(
                go.Scatter(
                    x=layers,
                    y=y,
                    mode=mode,
                    line=line,
                    name=name,
                    hovertemplate=f"hidden state %{{x}}: %{{y:.1f}} %<extra>{tag}</extra>",
                )
                for y, mode, line, name, tag in curves
            ),
        ]
    )
    if chosen_layer is not None:
        fig.add_vline(x=chosen_layer, line=dict(color="#495057", dash="dot"))
    fig.update_layout(
        title="Where the concept emerges, layer by layer",
        xaxis_title="hidden state (0 = embedding output, l = after block l − 1; word read in the template)",
        yaxis_title="share of variance of PC1 (%)",
        yaxis_rangemode="tozero",
        legend=dict(orientation="h", y=-0.25, yanchor="top", x=0, xanchor="left"),
        margin=dict(l=50, r=20, t=50, b=50),
        height=420,
    )
    return fig
