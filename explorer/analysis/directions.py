"""Semantic directions of a loaded model: embed the pair words, targets and control vocabulary, then combine.

The maths is in explorer.spectra.semantic, the embeddings in explorer.analysis.word_vectors, the word lists in
explorer.wordlists; this module ties them together (and checks the inputs), for the page's caches and the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explorer.analysis.word_vectors import (
    DEFAULT_METHOD,
    DEFAULT_TEMPLATE,
    METHODS,
    WordVectors,
    contextual_word_vectors,
    embed_words,
)
from explorer.errors import InputError
from explorer.spectra.ranks import energy_rank
from explorer.spectra.semantic import (
    CONTROL_SEED,
    N_CONTROL_DRAWS,
    Control,
    Debias,
    Direction,
    bias_scores,
    centre,
    debias,
    first_component_share,
    random_pair_control,
    semantic_direction,
)
from explorer.wordlists import MAX_PAIRS, MAX_WORDS, control_vocabulary


@dataclass(frozen=True)
class DirectionAnalysis:
    """The direction from one embedding of the words, with its control, bias scores and debias preview.

    Attributes:
        method: how words were embedded; layer: the layer for "contextual", else None.
        pairs: the pairs used (both words known to the tokenizer).
        direction: the Direction.
        control: random-pair control from the same embedding, shares (draw,).
        targets: the target words used; bias: ndarray (target,), cosine of each with the direction.
        debias: before/after, or None without targets.
        pieces: word -> its sub-tokens (as used by this embedding).
        messages: notes for the user (unknown words, dropped pairs).
    """

    method: str
    layer: int | None
    pairs: tuple[tuple[str, str], ...]
    direction: Direction
    control: Control
    targets: tuple[str, ...]
    bias: np.ndarray
    debias: Debias | None
    pieces: dict[str, tuple[str, ...]]
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LayerProfile:
    """The direction's share at every layer (contextual states in ``template``) against random pairs.

    ``shares``: ndarray (layer + 1,); ``control``: Control with shares (layer + 1, draw), the same random
    draws at every layer; ``pairs``: the pairs used."""

    shares: np.ndarray
    control: Control
    pairs: tuple[tuple[str, str], ...]
    template: str


def components_for_share(ratio: np.ndarray, share: float) -> int:
    """How many principal components hold at least ``share`` (0 < share <= 1) of the variance, given the
    shares of every component ``ratio`` (rank,), decreasing, summing to 1 (PCAResult.explained_variance_ratio).

    The variances are the squared singular values of the centred points, so this is the energy rank of their
    square roots (explorer.spectra.ranks.energy_rank, with its tolerance at share = 1)."""
    return int(energy_rank(np.sqrt(np.asarray(ratio, dtype=np.float64)), share))


def control_words(pairs, targets) -> list[str]:
    """The control vocabulary without the pairs' and targets' own words."""
    exclude = {w for p in pairs for w in p} | set(targets)
    return [w for w in control_vocabulary() if w not in exclude]


def direction_words(pairs, targets) -> list[str]:
    """Every word the analysis embeds: pair words, targets, then the control vocabulary."""
    pair_words = [w for p in pairs for w in p]
    return list(dict.fromkeys(pair_words + list(targets) + control_words(pairs, targets)))


def check_direction_inputs(pairs, targets) -> None:
    if not pairs:
        raise InputError("The pair list is empty: type word pairs, one a line, e.g. 'he she'.")
    if len(pairs) > MAX_PAIRS:
        raise InputError(f"Too many pairs ({len(pairs)}); use at most {MAX_PAIRS}.")
    if len(targets) > MAX_WORDS:
        raise InputError(f"Too many target words ({len(targets)}); use at most {MAX_WORDS}.")


def _usable_pairs(pairs, known: set[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Pairs whose two words are known, and notes about the rest; InputError when fewer than two remain."""
    used = [p for p in pairs if p[0] in known and p[1] in known]
    messages = []
    if len(used) < len(pairs):
        dropped = [f"{a}/{b}" for a, b in pairs if (a, b) not in used]
        messages.append("Pairs left out (a word is unknown): " + ", ".join(dropped) + ".")
    if len(used) < 2:
        raise InputError(
            "A direction needs at least two word pairs whose words the model knows; "
            f"{len(used)} usable. Add pairs, one a line, e.g. 'he she'."
        )
    return used, messages


def _rows(vectors: np.ndarray, index: dict[str, int], words) -> np.ndarray:
    return vectors[..., [index[w] for w in words], :]


def combine_directions(
    pairs: list[tuple[str, str]],
    targets: list[str],
    chosen: WordVectors,
    *,
    layer: int | None = None,
    n_draws: int = N_CONTROL_DRAWS,
    seed: int = CONTROL_SEED,
) -> DirectionAnalysis:
    """The direction analysis from word vectors already computed (pure numpy, milliseconds).

    Args:
        chosen: vectors covering the pair words, targets and control words (``direction_words``); for
            "contextual" vectors, ``layer`` picks the layer (default: the middle one).
    Raises InputError with what to do when fewer than two usable pairs remain.
    """
    check_direction_inputs(pairs, targets)
    if chosen.method == "contextual":
        n_states = chosen.vectors.shape[0]
        layer = (n_states - 1) // 2 if layer is None else int(layer)
        if not 0 <= layer < n_states:
            raise InputError(f"Layer {layer} does not exist: choose 0 (embeddings) to {n_states - 1}.")
        at = chosen.vectors[layer]
    else:
        layer, at = None, chosen.vectors[0]
    index = chosen.index()
    vocab = [w for w in control_words(pairs, targets) if w in index]
    at = centre(at, _rows(at, index, vocab))
    pair_words = list(dict.fromkeys(w for p in pairs for w in p))
    messages = []
    unknown = [w for w in dict.fromkeys(pair_words + list(targets)) if w not in index]
    if unknown:
        messages.append("Unknown to the tokenizer, left out: " + ", ".join(unknown) + ".")
    used, notes = _usable_pairs(pairs, set(index))
    messages += notes
    first = _rows(at, index, [a for a, _ in used])
    second = _rows(at, index, [b for _, b in used])
    direction = semantic_direction(first, second)
    control = random_pair_control(_rows(at, index, vocab), len(used), n_draws=n_draws, seed=seed)

    target_known = [w for w in targets if w in index]
    if target_known:
        target_vecs = _rows(at, index, target_known)
        bias = bias_scores(target_vecs, direction.vector)
        cleaned = debias(target_known, target_vecs, direction, first, second)
    else:
        bias, cleaned = np.zeros(0), None
        if not targets:
            messages.append("No target words to score: add words (one a line) to see their bias scores.")
    pieces = dict(zip(chosen.words, chosen.pieces, strict=True))
    return DirectionAnalysis(
        method=chosen.method,
        layer=layer,
        pairs=tuple(used),
        direction=direction,
        control=control,
        targets=tuple(target_known),
        bias=bias,
        debias=cleaned,
        pieces={w: pieces[w] for w in dict.fromkeys(pair_words + target_known) if w in pieces},
        messages=messages,
    )


def layer_profile(
    pairs: list[tuple[str, str]],
    targets: list[str],
    contextual: WordVectors,
    *,
    n_draws: int = N_CONTROL_DRAWS,
    seed: int = CONTROL_SEED,
) -> LayerProfile:
    """The direction's share at every layer, and the random-pair control at every layer (same draws).

    ``contextual``: contextual vectors (layer + 1, word, d_model) covering ``direction_words(pairs, targets)``.
    """
    check_direction_inputs(pairs, targets)
    index = contextual.index()
    used, _ = _usable_pairs(pairs, set(index))
    vocab = [w for w in control_words(pairs, targets) if w in index]
    v = centre(contextual.vectors, _rows(contextual.vectors, index, vocab))
    shares = first_component_share(
        _rows(v, index, [a for a, _ in used]), _rows(v, index, [b for _, b in used])
    )
    control = random_pair_control(_rows(v, index, vocab), len(used), n_draws=n_draws, seed=seed)
    return LayerProfile(shares, control, tuple(used), contextual.template or DEFAULT_TEMPLATE)


def analyse_directions(
    loaded,
    pairs: list[tuple[str, str]],
    targets: list[str],
    *,
    method: str = DEFAULT_METHOD,
    layer: int | None = None,
    template: str = DEFAULT_TEMPLATE,
    n_draws: int = N_CONTROL_DRAWS,
    seed: int = CONTROL_SEED,
    with_layers: bool = True,
) -> tuple[DirectionAnalysis, LayerProfile | None]:
    """Embed everything with ``loaded``, then combine_directions and (``with_layers``) layer_profile. For the
    report and tests; the app caches the embedding steps separately."""
    if method not in METHODS:
        raise InputError(f"Unknown embedding method '{method}'; choose one of {', '.join(METHODS)}.")
    check_direction_inputs(pairs, targets)
    words = direction_words(pairs, targets)
    contextual = None
    if with_layers or method == "contextual":
        contextual = contextual_word_vectors(loaded, words, template)
    chosen = contextual if method == "contextual" else embed_words(loaded, words, method=method)
    analysis = combine_directions(pairs, targets, chosen, layer=layer, n_draws=n_draws, seed=seed)
    profile = layer_profile(pairs, targets, contextual, n_draws=n_draws, seed=seed) if with_layers else None
    return analysis, profile
