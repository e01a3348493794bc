"""Hidden-state geometry (PCA, UMAP) and semantic directions from word pairs (bias detection).

Hidden-state PCA: scikit-learn PCA of the token hidden states of one layer (rows = tokens), float64, with
deterministic signs (each component's largest-magnitude loading is positive).

Semantic direction (Bolukbasi et al. 2016): every word is embedded by the model, centred on the mean vector
of a shipped reference vocabulary (same embedding, same layer) and scaled to unit length; each pair (a, b)
gives a difference d = v(a) - v(b). The direction is the first principal component of the pair-centred
vectors {+d/2, -d/2} (a set with mean exactly zero), i.e. the top right singular vector of the difference
matrix without mean removal, so the order within a pair never matters for the share. Its explained share
sigma_1^2 / sum sigma_i^2 says how one-dimensional the concept is; the sign is fixed so that the first words
of the pairs score positive. A word's bias score is the cosine between its (centred) vector and the
direction; debiasing removes that component. Random-pair control: the same number of pairs drawn from the
reference vocabulary (fixed seed, several draws), same embedding, same share.

Centring matters because embedding spaces are anisotropic: all vectors share a large common component, which
would otherwise leak into the direction and shift every word's score by the same amount (measured on
SmolLM2's static embeddings with the gender pairs: mean bias score -0.12 raw, -0.07 centred).

Word embedding, three ways:
- "static": rows of the input embedding matrix for the word's sub-tokens, averaged.
- "contextual": hidden states at every layer for the word inside a short template sentence, averaged over the
  word's sub-tokens (the sentence gets the model's usual special tokens, e.g. [CLS] ... [SEP]). For causal
  models the template's common start runs once and is reused through the key/value cache (exact).
- "sentence" (encoders such as MiniLM): the model's sentence embedding of the word alone: mean pooling of the
  last hidden state over all tokens ([CLS] and [SEP] included, as sentence-transformers does), unit length.

Sub-tokens: a word is tokenized as " word" (leading space, no special tokens) and tokens that decode to pure
whitespace are dropped. Byte-level BPE (SmolLM2, GPT-2) thereby gets the mid-sentence form ("Ġnurse", one
token, instead of "n" + "urse"); WordPiece (MiniLM) ignores the space. A word that maps to the unknown token
is reported as unknown and left out.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch
from sklearn.decomposition import PCA

from explorer.errors import InputError
from explorer.paths import ASSETS_DIR
from explorer.spectra import attention_spectra as spec

WORDLIST_DIR = ASSETS_DIR / "wordlists"
METHODS = ("static", "contextual", "sentence")
METHOD_LABELS = {
    "static": "Static input embeddings (averaged over sub-tokens)",
    "contextual": "Contextual hidden states in a template sentence",
    "sentence": "Sentence embedding (mean pooling, the model's own use)",
}
DEFAULT_TEMPLATE = "This is about {}."
# Contextual states at the middle layer: clearly above random pairs on both embedded models, and computed
# anyway for the layer curve (SmolLM2's static embeddings order occupations less plausibly).
DEFAULT_METHOD = "contextual"
PRESETS = {
    "gender": "Gender (he/she, man/woman, ...)",
    "number": "Number (cats/cat, dogs/dog, ...)",
    "sentiment": "Sentiment (good/bad, happy/sad, ...)",
}
DEFAULT_PRESET = "gender"
N_CONTROL_DRAWS = 20
CONTROL_SEED = 0
MAX_WORDS = 200
MAX_PAIRS = 60
MAX_EMBED_WORDS = 2 * MAX_PAIRS + MAX_WORDS + 200  # pairs, targets and the control vocabulary together
MIN_UMAP_POINTS = 6
MAX_TEMPLATE_CHARS = 200
_BATCH = 64


# ---------------------------------------------------------------------------------------------------------
# Word lists


@cache
def load_wordlist(name: str) -> tuple[str, ...]:
    """Lines of ``assets/wordlists/<name>.txt`` (blank lines and ``#`` comments skipped)."""
    path = WORDLIST_DIR / f"{name}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def preset_pairs_text(preset: str) -> str:
    return "\n".join(load_wordlist(f"pairs_{preset}"))


def preset_targets_text(preset: str) -> str:
    return "\n".join(load_wordlist(f"targets_{preset}"))


def control_vocabulary() -> tuple[str, ...]:
    """The shipped vocabulary that random control pairs are drawn from (unique, in file order)."""
    return tuple(dict.fromkeys(load_wordlist("control_vocabulary")))


def parse_pairs(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Pairs from text, one a line: ``he she``, ``he, she``, ``he/she`` or ``he - she``.

    Returns (pairs without duplicates, the lines that are not a pair). Multi-word items need a comma or slash.
    """
    pairs: list[tuple[str, str]] = []
    bad: list[str] = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in re.split(r"\s*[,/;\t]\s*|\s+-\s+", line) if p.strip()]
        if len(parts) == 1:
            parts = line.split()
        if len(parts) != 2 or parts[0] == parts[1]:
            bad.append(line)
            continue
        pair = (parts[0], parts[1])
        if pair not in pairs:
            pairs.append(pair)
    return pairs, bad


def parse_words(text: str) -> list[str]:
    """Words from text separated by newlines or commas, without duplicates, in order."""
    items = [w.strip() for w in re.split(r"[\n,;]", text or "")]
    return list(dict.fromkeys(w for w in items if w and not w.startswith("#")))


def pairs_to_param(pairs: list[tuple[str, str]]) -> str:
    """``he/she,man/woman`` for a query param."""
    return ",".join(f"{a}/{b}" for a, b in pairs)


def pairs_from_param(value: str | None) -> str | None:
    """Inverse of pairs_to_param, as text for the pairs box (one pair a line); None when empty."""
    if not value:
        return None
    lines = [item.replace("/", " / ", 1) for item in str(value).split(",") if item.count("/") == 1]
    return "\n".join(lines) or None


def words_from_param(value: str | None) -> str | None:
    """``nurse,engineer`` from a query param as text for a words box (one a line); None when empty."""
    words = parse_words(str(value)) if value else []
    return "\n".join(words) or None


# ---------------------------------------------------------------------------------------------------------
# PCA and UMAP of hidden states


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


# ---------------------------------------------------------------------------------------------------------
# Embedding words


@dataclass(frozen=True)
class WordVectors:
    """Words embedded by a model.

    Attributes:
        words: the embedded words (unknown ones left out), length ``word``.
        vectors: ndarray of shape (layer, word, d_model), float64: layer+1 entries for "contextual" (0 =
            embedding output), one entry for "static" and "sentence".
        pieces: for each word, its sub-tokens as the tokenizer spells them.
        unknown: words the tokenizer cannot represent (unknown token or no tokens).
        method: "static", "contextual" or "sentence".
    """

    words: tuple[str, ...]
    vectors: np.ndarray
    pieces: tuple[tuple[str, ...], ...]
    unknown: tuple[str, ...]
    method: str
    template: str | None = None

    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}


def word_token_ids(tokenizer, word: str) -> list[int]:
    """Sub-token ids of ``word`` as it appears mid-sentence: " word" without special tokens, whitespace-only
    tokens dropped. Empty when the word is unknown to the tokenizer."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    ids = [i for i in ids if tokenizer.decode([i]).strip() != ""]
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and unk in ids:
        return []
    return ids


def _check_words(words) -> list[str]:
    words = list(dict.fromkeys(w.strip() for w in words if w and w.strip()))
    if not words:
        raise InputError("The word list is empty: type some words (one a line).")
    if len(words) > MAX_EMBED_WORDS:
        raise InputError(f"Too many words ({len(words)}); use at most {MAX_WORDS} per list.")
    return words


def _split_known(tokenizer, words) -> tuple[list[str], list[list[int]], list[str]]:
    known, ids, unknown = [], [], []
    for word in words:
        word_ids = word_token_ids(tokenizer, word)
        if word_ids:
            known.append(word)
            ids.append(word_ids)
        else:
            unknown.append(word)
    return known, ids, unknown


def _no_known_words(unknown: list[str]) -> InputError:
    return InputError(
        "None of the words is known to this model's tokenizer ("
        + ", ".join(unknown[:10])
        + "). Use ordinary lower-case words."
    )


@torch.no_grad()
def static_word_vectors(loaded, words) -> WordVectors:
    """Input-embedding rows averaged over each word's sub-tokens: vectors (1, word, d_model)."""
    words = _check_words(words)
    tokenizer = loaded.tokenizer
    known, ids, unknown = _split_known(tokenizer, words)
    if not known:
        raise _no_known_words(unknown)
    table = loaded.model.get_input_embeddings().weight  # (vocab, d_model), a view: read only
    rows = [table[torch.tensor(i, device=table.device)].double().mean(0).cpu().numpy() for i in ids]
    pieces = tuple(tuple(tokenizer.convert_ids_to_tokens(i)) for i in ids)
    return WordVectors(tuple(known), np.stack(rows)[None], pieces, tuple(unknown), "static")


def shared_prefix_length(sequences: list[list[int]], first_word_positions: list[int]) -> int:
    """Length of the token prefix common to every sequence and ending before every word."""
    limit = min(min(first_word_positions), min(len(s) for s in sequences))
    length = 0
    while length < limit and all(s[length] == sequences[0][length] for s in sequences):
        length += 1
    return length


def _pad_right(chunk: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in chunk)
    input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for row, seq in enumerate(chunk):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask


@torch.no_grad()
def mean_hidden_states(
    loaded, sequences: list[list[int]], spans: list[list[int]], *, shared_prefix: int = 0
) -> np.ndarray:
    """Hidden states of every layer averaged over chosen positions of each token sequence.

    Args:
        sequences: token ids of each sequence (special tokens included as wanted).
        spans: for each sequence, the positions to average (all at or after ``shared_prefix``).
        shared_prefix: for a causal model, this many leading tokens common to all sequences (the template's
            start) run once per batch and are reused through the key/value cache: exact, because no earlier
            token sees a later one, and several times less work for a template sentence. Ignored for encoders.

    Returns:
        ndarray of shape (layer + 1, sequence, d_model), float64.

    Sequences run in right-padded batches with an attention mask (right padding changes neither positions nor
    the real tokens' states).
    """
    # The bare transformer (no language-model head): logits over the vocabulary are not needed here.
    model, device = getattr(loaded.model, "base_model", loaded.model), loaded.device
    shared_prefix = shared_prefix if loaded.causal else 0
    out: list[torch.Tensor] = []
    for start in range(0, len(sequences), _BATCH):
        chunk = sequences[start : start + _BATCH]
        kwargs = {}
        if shared_prefix:
            prefix = torch.tensor([chunk[0][:shared_prefix]], dtype=torch.long, device=device)
            cache = model(input_ids=prefix, use_cache=True).past_key_values
            cache.batch_repeat_interleave(len(chunk))
            input_ids, mask = _pad_right([s[shared_prefix:] for s in chunk])
            mask = torch.cat([torch.ones((len(chunk), shared_prefix), dtype=torch.long), mask], dim=1)
            kwargs = dict(past_key_values=cache, use_cache=True)
        else:
            input_ids, mask = _pad_right(chunk)
        result = model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            output_hidden_states=True,
            **kwargs,
        )
        hidden = torch.stack(result.hidden_states, dim=1)  # (batch, layer + 1, token, d_model)
        for row, positions in enumerate(spans[start : start + _BATCH]):
            cols = torch.tensor([p - shared_prefix for p in positions], device=hidden.device)
            out.append(hidden[row].index_select(1, cols).double().mean(1).cpu())
    means = torch.stack(out, dim=1).numpy()
    if not np.isfinite(means).all():
        raise InputError("The model produced NaN or infinite values; switch the dtype to float32.")
    return means


def check_template(template: str) -> str:
    template = (template or "").strip()
    if len(template) > MAX_TEMPLATE_CHARS:
        raise InputError(f"The template sentence is too long; keep it under {MAX_TEMPLATE_CHARS} characters.")
    if template.count("{}") != 1:
        raise InputError(
            "The template sentence must contain {} exactly once, where the word goes, e.g. 'This is about {}.'"
        )
    return template


@torch.no_grad()
def contextual_word_vectors(loaded, words, template: str = DEFAULT_TEMPLATE) -> WordVectors:
    """Hidden states of every layer for each word inside ``template``, averaged over the word's sub-tokens:
    vectors (layer + 1, word, d_model). The word's tokens are found by character offsets."""
    words = _check_words(words)
    template = check_template(template)
    tokenizer = loaded.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            "This model's tokenizer cannot report character offsets (not a 'fast' tokenizer), so the word "
            "cannot be located in the template sentence: use static embeddings."
        )
    known, _ids, unknown = _split_known(tokenizer, words)
    if not known:
        raise _no_known_words(unknown)
    start = template.index("{}")
    sequences, spans, pieces, located = [], [], [], []
    for word in known:
        sentence = template.replace("{}", word)
        enc = tokenizer(sentence, add_special_tokens=True, return_offsets_mapping=True)
        lo, hi = start, start + len(word)
        # Tokens whose character span overlaps the word's (special tokens have empty spans).
        positions = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < hi and b > lo]
        ids = enc["input_ids"]
        if not positions or positions[-1] >= loaded.card.max_positions:
            unknown.append(word)
            continue
        if loaded.causal:
            ids = ids[: positions[-1] + 1]  # later tokens cannot change the word's states
        sequences.append(ids[: loaded.card.max_positions])
        spans.append(positions)
        located.append(word)
        pieces.append(tuple(tokenizer.convert_ids_to_tokens([ids[i] for i in positions])))
    if not located:
        raise _no_known_words(unknown)
    prefix = shared_prefix_length(sequences, [p[0] for p in spans]) if loaded.causal else 0
    vectors = mean_hidden_states(loaded, sequences, spans, shared_prefix=prefix)
    return WordVectors(tuple(located), vectors, tuple(pieces), tuple(unknown), "contextual", template)


@torch.no_grad()
def sentence_word_vectors(loaded, words) -> WordVectors:
    """The encoder's sentence embedding of each word alone: mean of the last hidden state over all tokens
    (with [CLS]/[SEP]), scaled to unit length (all-MiniLM-L6-v2's pipeline): vectors (1, word, d_model)."""
    if loaded.causal:
        raise InputError(
            "Sentence embeddings are for encoder models such as MiniLM; this model is causal. "
            "Use static or contextual embeddings."
        )
    words = _check_words(words)
    tokenizer = loaded.tokenizer
    known, _ids, unknown = _split_known(tokenizer, words)
    if not known:
        raise _no_known_words(unknown)
    sequences = [tokenizer(w, add_special_tokens=True)["input_ids"] for w in known]
    pooled = mean_hidden_states(loaded, sequences, [list(range(len(s))) for s in sequences])[-1]
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    pieces = tuple(tuple(tokenizer.convert_ids_to_tokens(s)) for s in sequences)
    return WordVectors(tuple(known), pooled[None], pieces, tuple(unknown), "sentence")


def merge_word_vectors(a: WordVectors, b: WordVectors) -> WordVectors:
    """The words of ``a`` then those of ``b`` not already in ``a`` (same method and layers)."""
    if a.method != b.method or a.vectors.shape[0] != b.vectors.shape[0]:
        raise ValueError("Only word vectors of the same method can be merged.")
    seen = a.index()
    extra = [i for i, w in enumerate(b.words) if w not in seen]
    return WordVectors(
        a.words + tuple(b.words[i] for i in extra),
        np.concatenate([a.vectors, b.vectors[:, extra]], axis=1),
        a.pieces + tuple(b.pieces[i] for i in extra),
        tuple(dict.fromkeys(a.unknown + b.unknown)),
        a.method,
        a.template,
    )


def embed_words(loaded, words, *, method: str = "static", template: str = DEFAULT_TEMPLATE) -> WordVectors:
    if method == "static":
        return static_word_vectors(loaded, words)
    if method == "contextual":
        return contextual_word_vectors(loaded, words, template)
    if method == "sentence":
        return sentence_word_vectors(loaded, words)
    raise InputError(f"Unknown embedding method '{method}'; choose one of {', '.join(METHODS)}.")


def embedding_matrix_pca(
    loaded, words, *, n_components: int = 3, unit: bool = True
) -> tuple[PCAResult, WordVectors]:
    """PCA of the static input-embedding vectors of a word list (points = known words).

    ``unit``: scale the rows to unit length first (cosine geometry; otherwise a few long rows, often of rare
    or frequent tokens, take the first components)."""
    vectors = static_word_vectors(loaded, words)
    rows = vectors.vectors[0]
    return pca(unit_rows(rows) if unit else rows, n_components), vectors


# ---------------------------------------------------------------------------------------------------------
# Semantic directions


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


def centre(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``vectors`` (..., word, d_model) minus the mean of ``reference`` (..., ref_word, d_model) per layer."""
    if reference.shape[-2] == 0:
        raise InputError("The control vocabulary has no word this model knows; cannot centre the vectors.")
    return vectors - reference.mean(axis=-2, keepdims=True)


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
