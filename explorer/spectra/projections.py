"""PCA and UMAP of point sets (token hidden states of one layer, or word vectors): arrays in, arrays out.

PCA: scikit-learn's full SVD in float64, with the project's sign convention (each component's largest-magnitude
loading is positive), so the same points always give the same picture.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.decomposition import PCA

from explorer.errors import InputError
from explorer.spectra import attention_spectra as spec

MIN_UMAP_POINTS = 6


@dataclass(frozen=True)
class PCAResult:
    """PCA of a set of points (rows: tokens or words).

    Attributes:
        coords: ndarray of shape (point, n_components), float64: the centred points projected on the components.
        components: ndarray of shape (n_components, d_model), float64, orthonormal rows, signs fixed.
        explained_variance: ndarray of shape (rank,), float64, all nonzero-rank components (sample variance,
            ddof=1: eigenvalues of the covariance matrix), decreasing; rank = min(point - 1, d_model).
        explained_variance_ratio: ndarray of shape (rank,), shares of the total variance (sum to 1).
        mean: ndarray of shape (d_model,), the centre.
        points: list of length ``point``: the indices of the points used (token positions, or word indices).
        layer: the hidden-state layer (0 = embedding output), or None for embedding-matrix rows.
    """

    coords: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray
    points: list[int]
    layer: int | None


def fix_signs(components: np.ndarray) -> np.ndarray:
    """Rows (component, feature) with the project's sign convention (spectra.attention_spectra.fix_signs)."""
    components = np.array(components, dtype=np.float64)
    return spec.fix_signs(torch.from_numpy(components.T)).T.numpy() + 0.0


def pca(points: np.ndarray, n_components: int = 3, *, layer: int | None = None, index=None) -> PCAResult:
    """scikit-learn PCA of ``points`` (point, d_model) in float64 with fixed signs.

    Raises InputError when there are too few points for ``n_components`` axes (need point > n_components).
    """
    x = np.asarray(points, dtype=np.float64)
    n, d = x.shape
    if n - 1 < n_components or d < n_components:
        raise InputError(
            f"PCA with {n_components} axes needs at least {n_components + 1} points; there are {n}. "
            "Use a longer text (or more words), or fewer axes."
        )
    if not np.isfinite(x).all():
        raise InputError("The vectors contain NaN or infinite values; switch the dtype to float32.")
    rank = min(n - 1, d)
    model = PCA(n_components=rank, svd_solver="full").fit(x)
    components = fix_signs(model.components_)
    mean = model.mean_
    coords = (x - mean) @ components[:n_components].T
    variance = model.explained_variance_
    total = variance.sum()
    ratio = variance / total if total > 0 else np.zeros_like(variance)
    return PCAResult(
        coords=coords,
        components=components[:n_components],
        explained_variance=variance,
        explained_variance_ratio=ratio,
        mean=mean,
        points=list(range(n)) if index is None else [int(i) for i in index],
        layer=layer,
    )


def _layer_points(hidden_states: np.ndarray, layer: int, skip_first: bool) -> tuple[np.ndarray, list[int]]:
    n_layers = hidden_states.shape[0]
    if not 0 <= layer < n_layers:
        raise InputError(f"Layer {layer} does not exist: choose 0 (embeddings) to {n_layers - 1}.")
    start = 1 if skip_first else 0
    return hidden_states[layer, start:], list(range(start, hidden_states.shape[1]))


def hidden_state_pca(
    hidden_states: np.ndarray, layer: int, *, n_components: int = 3, skip_first: bool = False
) -> PCAResult:
    """PCA of the token hidden states of one layer.

    Args:
        hidden_states: ndarray of shape (layer + 1, token, d_model) (``Capture.hidden_states``).
        layer: 0 = embedding output, i = after block i.
        skip_first: leave out position 0 (in causal models its hidden state is a huge-norm outlier that
            would take the first component on its own).
    """
    x, index = _layer_points(hidden_states, layer, skip_first)
    return pca(x, n_components, layer=layer, index=index)


@dataclass(frozen=True)
class LayerwisePCA:
    """2-D (or 3-D) PCA of every layer, signs chained so consecutive layers look alike (for animation).

    Attributes:
        coords: ndarray of shape (layer + 1, point, n_components), float64.
        explained_variance_ratio: ndarray of shape (layer + 1, n_components).
        points: token positions used.
    """

    coords: np.ndarray
    explained_variance_ratio: np.ndarray
    points: list[int]


def layerwise_pca(
    hidden_states: np.ndarray, *, n_components: int = 2, skip_first: bool = False
) -> LayerwisePCA:
    """PCA per layer; each component's sign is flipped where that makes its coordinates correlate positively
    with the previous layer's (PCA signs are arbitrary; this only makes the animation smooth)."""
    coords, ratios = [], []
    index: list[int] = []
    for layer in range(hidden_states.shape[0]):
        result = hidden_state_pca(hidden_states, layer, n_components=n_components, skip_first=skip_first)
        c = result.coords.copy()
        if coords:
            flip = np.sum(c * coords[-1], axis=0) < 0
            c[:, flip] *= -1
        coords.append(c)
        ratios.append(result.explained_variance_ratio[:n_components])
        index = result.points
    return LayerwisePCA(np.stack(coords), np.stack(ratios), index)


@dataclass(frozen=True)
class UMAPResult:
    """UMAP embedding. ``coords``: (point, n_components) float64; ``n_neighbors``: the value used (clamped
    below the number of points); ``points``: token positions used; ``messages``: notes for the user."""

    coords: np.ndarray
    n_neighbors: int
    min_dist: float
    points: list[int]
    layer: int
    messages: list[str] = field(default_factory=list)


def umap_points(
    x: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, n_components: int = 2, seed: int = 0
):
    """UMAP of the rows of ``x``; returns (coords, n_neighbors used, messages). umap-learn is imported here,
    lazily, because importing it (numba) takes about ten seconds."""
    n = len(x)
    if n < MIN_UMAP_POINTS:
        raise InputError(
            f"UMAP needs at least {MIN_UMAP_POINTS} points; this text has {n} tokens. "
            "Use PCA, or a longer text."
        )
    messages = []
    used = int(min(max(2, n_neighbors), n - 1))
    if used != n_neighbors:
        messages.append(
            f"n_neighbors lowered from {n_neighbors} to {used}: it must be smaller than the number of points ({n})."
        )
    import umap  # noqa: PLC0415  (slow import: only when UMAP is asked for)

    # Spectral initialisation needs more points than dimensions plus a few; random init is safe for tiny sets.
    init = "spectral" if n > n_components + 10 else "random"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(
            n_neighbors=used,
            min_dist=float(min_dist),
            n_components=n_components,
            random_state=seed,
            init=init,
            n_jobs=1,
        )
        coords = reducer.fit_transform(np.asarray(x, dtype=np.float64))
    return np.asarray(coords, dtype=np.float64), used, messages


def hidden_state_umap(
    hidden_states: np.ndarray,
    layer: int,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_components: int = 2,
    skip_first: bool = False,
    seed: int = 0,
) -> UMAPResult:
    """UMAP of the token hidden states of one layer (fixed seed: the same text gives the same picture)."""
    x, index = _layer_points(hidden_states, layer, skip_first)
    coords, used, messages = umap_points(
        x, n_neighbors=n_neighbors, min_dist=min_dist, n_components=n_components, seed=seed
    )
    return UMAPResult(coords, used, float(min_dist), index, layer, messages)
