"""Semantic directions from word pairs (Bolukbasi et al. 2016): pure maths on word vectors.

Every word vector is centred on the mean vector of a reference vocabulary (same embedding, same layer) and scaled
to unit length; each pair (a, b) gives a difference d = v(a) - v(b). The direction is the first principal
component of the pair-centred vectors {+d/2, -d/2} (a set with mean exactly zero), i.e. the top right singular
vector of the difference matrix without mean removal, so the order within a pair never matters for the share.
Its explained share sigma_1^2 / sum sigma_i^2 says how one-dimensional the concept is; the sign is fixed so that
the first words of the pairs score positive. A word's bias score is the cosine between its (centred) vector and
the direction; debiasing removes that component. Random-pair control: the same number of pairs drawn from the
reference vocabulary (fixed seed, several draws), same embedding, same share.

Centring matters because embedding spaces are anisotropic: all vectors share a large common component, which
would otherwise leak into the direction and shift every word's score by the same amount (measured on
SmolLM2's static embeddings with the gender pairs: mean bias score -0.12 raw, -0.07 centred).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.errors import InputError

N_CONTROL_DRAWS = 20
CONTROL_SEED = 0


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows (last axis) scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


@dataclass(frozen=True)
class Direction:
    """A semantic direction from word pairs.

    Attributes:
        vector: ndarray of shape (d_model,), unit length; the first words of the pairs score positive.
        explained: share of the pair-difference variance along ``vector`` (sigma_1^2 / sum sigma^2), in [0, 1].
        explained_ratio: ndarray of shape (rank,), every component's share (decreasing, sums to 1).
        pair_projections: ndarray of shape (pair,), each pair's (unit-vector) difference projected on ``vector``.
    """

    vector: np.ndarray
    explained: float
    explained_ratio: np.ndarray
    pair_projections: np.ndarray


def direction_from_differences(differences: np.ndarray) -> Direction:
    """First principal component of the pair-centred set {+d/2, -d/2} (mean zero by construction), computed
    as the top right singular vector of the difference matrix D (the covariance of that set is D^T D / (2 pair - 1)).

    Args:
        differences: ndarray of shape (pair, d_model), at least two pairs.
    """
    diff = np.asarray(differences, dtype=np.float64)
    if diff.ndim != 2 or len(diff) < 2:
        raise InputError("A direction needs at least two word pairs.")
    _u, sigma, vh = np.linalg.svd(diff, full_matrices=False)
    power = sigma**2
    total = power.sum()
    ratio = power / total if total > 0 else np.zeros_like(power)
    vector = vh[0]
    if vector @ diff.sum(0) < 0:  # orient towards the first words of the pairs
        vector = -vector
    return Direction(vector, float(ratio[0]), ratio, diff @ vector)


def semantic_direction(first: np.ndarray, second: np.ndarray) -> Direction:
    """Direction from the vectors of the pairs' first and second words, each (pair, d_model); scaled to unit
    length here, so that frequent words with long embedding vectors do not dominate."""
    return direction_from_differences(unit_rows(first) - unit_rows(second))


def first_component_share(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The share ``semantic_direction(...).explained`` for many pair sets at once.

    first, second: (..., pair, d_model). Returns (...). Uses the pair x pair Gram matrix D D^T, whose
    eigenvalues are the sigma^2 of D: lambda_max / trace. Cheap for thousands of sets.
    """
    diff = unit_rows(first) - unit_rows(second)
    gram = diff @ np.swapaxes(diff, -1, -2)
    eig = np.linalg.eigvalsh(gram)
    trace = eig.sum(-1)
    return np.divide(eig[..., -1], trace, out=np.zeros_like(trace), where=trace > 0)


def bias_scores(vectors: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``vectors`` (word, d_model) with the unit ``direction``: (word,)."""
    return unit_rows(vectors) @ np.asarray(direction, dtype=np.float64)


def remove_direction(vectors: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Debias ("neutralise", Bolukbasi et al.): x - (x . g) g on the unit-scaled rows x, for unit g;
    (word, d_model)."""
    g = np.asarray(direction, dtype=np.float64)
    g = g / np.linalg.norm(g)
    x = unit_rows(vectors)
    return x - np.outer(x @ g, g)


@dataclass(frozen=True)
class Debias:
    """Before/after removing the direction, per target word (all arrays (word,)).

    ``before``/``after``: projection on the direction (after: zero up to rounding). ``gap_before``/
    ``gap_after``: mean over pairs of cos(w, first word) - cos(w, second word), how much closer the word sits
    to one side of the pairs; removing the direction shrinks it but need not zero it (the pairs' own
    differences are not exactly parallel to the direction)."""

    words: tuple[str, ...]
    before: np.ndarray
    after: np.ndarray
    gap_before: np.ndarray
    gap_after: np.ndarray


def debias(words, vectors: np.ndarray, direction: Direction, first: np.ndarray, second: np.ndarray) -> Debias:
    """Debias preview for target ``vectors`` (word, d_model) given the pairs' ``first``/``second`` vectors."""
    x = unit_rows(vectors)
    cleaned = remove_direction(x, direction.vector)
    a, b = unit_rows(first), unit_rows(second)

    def gap(v: np.ndarray) -> np.ndarray:
        v = unit_rows(v)
        return (v @ a.T - v @ b.T).mean(1)

    return Debias(tuple(words), x @ direction.vector, cleaned @ direction.vector, gap(x), gap(cleaned))


@dataclass(frozen=True)
class Control:
    """First-component share for random word pairs (as many pairs as the real list).

    ``shares``: ndarray of shape (draw,), or (layer, draw) by layer (the same draws at every layer).
    """

    shares: np.ndarray
    n_pairs: int
    seed: int

    @property
    def mean(self):
        return self.shares.mean(-1)

    @property
    def std(self):
        """Sample standard deviation over draws (ddof = 1)."""
        return self.shares.std(-1, ddof=1) if self.shares.shape[-1] > 1 else np.zeros_like(self.mean)

    def z_score(self, share):
        """How many standard deviations ``share`` lies above the random-pair mean; +inf (or -inf, or NaN for a
        share equal to the mean) when the draws do not vary."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.asarray(share, dtype=np.float64) - self.mean) / self.std


def random_pair_indices(n_words: int, n_pairs: int, n_draws: int, seed: int = CONTROL_SEED) -> np.ndarray:
    """(draw, pair, 2) indices of distinct words (no word twice within a draw), from a fixed seed."""
    if n_words < 2 * n_pairs:
        raise InputError(
            f"The control vocabulary has {n_words} usable words; {n_pairs} random pairs need {2 * n_pairs}. "
            "Use fewer pairs."
        )
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.choice(n_words, size=2 * n_pairs, replace=False).reshape(n_pairs, 2) for _ in range(n_draws)]
    )


def random_pair_control(
    vectors: np.ndarray, n_pairs: int, *, n_draws: int = N_CONTROL_DRAWS, seed: int = CONTROL_SEED
) -> Control:
    """Shares for ``n_draws`` sets of ``n_pairs`` random pairs from ``vectors`` (word, d_model), or
    (layer, word, d_model) for every layer at once."""
    v = np.asarray(vectors, dtype=np.float64)
    idx = random_pair_indices(v.shape[-2], n_pairs, n_draws, seed)
    shares = first_component_share(v[..., idx[..., 0], :], v[..., idx[..., 1], :])
    return Control(shares, n_pairs, seed)


def share_by_layer(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The direction's explained share at every layer: first/second (layer, pair, d_model) -> (layer,)."""
    return first_component_share(first, second)


def centre(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``vectors`` (..., word, d_model) minus the mean of ``reference`` (..., ref_word, d_model) per layer."""
    if reference.shape[-2] == 0:
        raise InputError("The control vocabulary has no word this model knows; cannot centre the vectors.")
    return vectors - reference.mean(axis=-2, keepdims=True)
