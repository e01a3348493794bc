"""Forward capture: one call turns a text into tokens, attention weights, hidden states and losses.

All arrays come back as read-only float32 numpy on CPU, so a cached capture can be shared by every
browser session without any of them changing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.errors import InputError
from explorer.models.loading import LoadedModel

# Pasted text beyond this many characters is cut before tokenizing (keeps tokenization instant).
MAX_TEXT_CHARS = 100_000
DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class Capture:
    """What a model does with one text.

    Attributes:
        tokens: list of length ``token``: token strings as the tokenizer shows them (e.g. ``Ġthe``).
        token_texts: list of length ``token``: each token decoded on its own (what a reader sees).
        token_ids: ndarray of shape (token,), int64.
        attentions: ndarray of shape (layer, head, query, key), float32; every row sums to 1.
        hidden_states: ndarray of shape (layer + 1, token, d_model), float32; index 0 is the embedding output.
        token_losses: ndarray of shape (token - 1,), nats, next-token loss at each position (causal LMs), else None.
        truncated: True when the text had more tokens than ``max_tokens`` and was cut.
        n_tokens_original: number of tokens before truncation.
        messages: notes for the user (truncation and the like).
    """

    model_id: str
    text: str
    tokens: list[str]
    token_texts: list[str]
    token_ids: np.ndarray
    attentions: np.ndarray
    hidden_states: np.ndarray
    token_losses: np.ndarray | None
    causal: bool
    truncated: bool
    n_tokens_original: int
    messages: list[str] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def loss(self) -> float | None:
        """Mean next-token loss in nats (causal LMs with at least two tokens), else None."""
        if self.token_losses is None or self.token_losses.size == 0:
            return None
        return float(self.token_losses.mean())

    @property
    def perplexity(self) -> float | None:
        loss = self.loss
        return None if loss is None else float(np.exp(loss))

    def labels(self) -> list[str]:
        """Unique, readable axis labels: ``"<position>:<text>"`` (plotly merges duplicate categories)."""
        return [f"{i}:{t}" for i, t in enumerate(self.token_texts)]


def validate_text(text: str | None) -> tuple[str, list[str]]:
    """Return the text to analyse and notes, or raise InputError with what to do."""
    if text is None or not str(text).strip():
        raise InputError(
            "The text is empty. Type or paste some text in the sidebar, or pick an example text."
        )
    text = str(text)
    messages = []
    if len(text) > MAX_TEXT_CHARS:
        messages.append(
            f"The text was cut to its first {MAX_TEXT_CHARS:,} characters (it had {len(text):,})."
        )
        text = text[:MAX_TEXT_CHARS]
    return text, messages


def _display_text(tokenizer, token_id: int) -> str:
    text = tokenizer.decode([token_id], clean_up_tokenization_spaces=False)
    # Make whitespace and invisible characters visible in labels.
    text = (
        text.replace(" ", "\u2423" if text.strip() == "" else " ")
        .replace("\n", "\u21b5")
        .replace("\t", "\u21e5")
    )
    return text if text else "\u2205"


def max_tokens_for(loaded: LoadedModel, requested: int | None) -> int:
    limit = loaded.card.max_positions
    return max(2, min(limit, requested or DEFAULT_MAX_TOKENS))


def tokenize(
    loaded: LoadedModel, text: str, max_tokens: int | None = None
) -> tuple[list[int], int, list[str]]:
    """Token ids (truncated to the limit), the untruncated count, and notes."""
    text, messages = validate_text(text)
    limit = max_tokens_for(loaded, max_tokens)
    ids = loaded.tokenizer(text, add_special_tokens=True)["input_ids"]
    n_original = len(ids)
    if n_original == 0:
        raise InputError("The tokenizer produced no tokens for this text. Try ordinary words.")
    if n_original > limit:
        ids = ids[:limit]
        messages.append(
            f"The text has {n_original:,} tokens; only the first {limit:,} are analysed "
            f"(limit: {'the model maximum' if limit == loaded.card.max_positions else 'the max-tokens setting'})."
        )
    return ids, n_original, messages


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@torch.no_grad()
def capture(loaded: LoadedModel, text: str, max_tokens: int | None = None) -> Capture:
    """Run the model once on ``text`` with attention and hidden-state outputs.

    Raises InputError for unusable text or when the model produces NaN/inf.
    """
    ids, n_original, messages = tokenize(loaded, text, max_tokens)
    input_ids = torch.tensor([ids], dtype=torch.long, device=loaded.device)
    out = loaded.model(input_ids=input_ids, output_attentions=True, output_hidden_states=True)

    attentions = torch.stack([a[0] for a in out.attentions]).float().cpu().numpy()
    hidden = torch.stack([h[0] for h in out.hidden_states]).float().cpu().numpy()
    if not (np.isfinite(attentions).all() and np.isfinite(hidden).all()):
        raise InputError(
            "The model produced NaN or infinite values on this text (often a half-precision overflow). "
            "Switch the dtype to float32 or shorten the text."
        )
    token_losses = None
    logits = getattr(out, "logits", None)
    if loaded.causal and logits is not None:
        logprobs = torch.log_softmax(logits[0, :-1].float(), dim=-1)
        target = input_ids[0, 1:]
        token_losses = _frozen((-logprobs.gather(-1, target[:, None])[:, 0]).cpu().numpy().astype(np.float32))

    tokenizer = loaded.tokenizer
    return Capture(
        model_id=loaded.id,
        text=text,
        tokens=list(tokenizer.convert_ids_to_tokens(ids)),
        token_texts=[_display_text(tokenizer, i) for i in ids],
        token_ids=_frozen(np.asarray(ids, dtype=np.int64)),
        attentions=_frozen(attentions),
        hidden_states=_frozen(hidden),
        token_losses=token_losses,
        causal=loaded.causal,
        truncated=n_original > len(ids),
        n_tokens_original=n_original,
        messages=messages,
    )
