"""Words embedded by a model, three ways.

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

from dataclasses import dataclass

import numpy as np
import torch

from explorer.errors import InputError
from explorer.wordlists import MAX_PAIRS, MAX_WORDS

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
MAX_EMBED_WORDS = 2 * MAX_PAIRS + MAX_WORDS + 200  # pairs, targets and the control vocabulary together
MAX_TEMPLATE_CHARS = 200
_BATCH = 64


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
