"""Forward capture: one call turns a text into tokens, attention weights, hidden states and losses.

All arrays come back as read-only float32 numpy on CPU, so a cached capture can be shared by every
browser session without any of them changing it.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.errors import InputError
from explorer.models.loading import LoadedModel

# Pasted text beyond this many characters is cut before tokenizing (keeps tokenization instant).
MAX_TEXT_CHARS = 100_000
DEFAULT_MAX_TOKENS = 512
# Attention of every layer is kept whole (a plain ndarray, the fastest for every consumer) up to this many bytes
# of float32: SmolLM2 (30 layers x 9 heads) up to 512 tokens (283 MiB), MiniLM at its whole 512-token context
# (75 MiB). Longer texts keep no layer whole: at 8,192 tokens SmolLM2's would be 72 GB.
FULL_ATTENTION_BYTES = 320 * 2**20
# Recomputed layers of long captures kept for reuse, process-wide (least recently used dropped first); the newest
# layer is always kept, whatever its size (one SmolLM2 layer at 8,192 tokens is 2.4 GB).
LAYER_CACHE_BYTES = 1536 * 2**20
_NAN_MESSAGE = (
    "The model produced NaN or infinite values on this text (often a half-precision overflow). "
    "Switch the dtype to float32 or shorten the text."
)
LayerCallback = Callable[[int, torch.Tensor], None]
Progress = Callable[[float, str], None]


def attention_bytes(n_layers: int, n_heads: int, n_tokens: int) -> int:
    """Bytes of float32 attention for every layer and head of an ``n_tokens`` text: layer * head * T^2 * 4."""
    return 4 * n_layers * n_heads * n_tokens * n_tokens


@dataclass(frozen=True)
class Capture:
    """What a model does with one text.

    Attributes:
        tokens: list of length ``token``: token strings as the tokenizer shows them (e.g. ``Ġthe``).
        token_texts: list of length ``token``: each token decoded on its own (what a reader sees).
        token_ids: ndarray of shape (token,), int64.
        attentions: (layer, head, query, key) float32, every row summing to 1: a read-only ndarray when all
            layers fit in FULL_ATTENTION_BYTES, else a LazyAttentions (same ``shape``, ``[layer]``,
            ``[layer, head]``, ``[layer, head, i:j, k:l]``; each layer recomputed on demand).
        hidden_states: ndarray of shape (layer + 1, token, d_model), float32; index 0 is the embedding output.
        token_losses: ndarray of shape (token - 1,), nats, next-token loss at each position (causal LMs), else None.
        n_tokens_original: number of tokens before truncation (``truncated``: more than were kept).
        messages: notes for the user (truncation and the like).
    """

    model_id: str
    text: str
    tokens: list[str]
    token_texts: list[str]
    token_ids: np.ndarray
    attentions: np.ndarray | LazyAttentions
    hidden_states: np.ndarray
    token_losses: np.ndarray | None
    causal: bool
    n_tokens_original: int
    messages: list[str] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def truncated(self) -> bool:
        """True when the text had more tokens than ``max_tokens`` and was cut."""
        return self.n_tokens_original > self.n_tokens

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


def _weights_of(output, layer: int) -> torch.Tensor:
    """The attention weights (batch, head, query, key) an eager attention module returns as output[1]."""
    weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
    if weights is None:
        raise RuntimeError(f"layer {layer}'s attention module returned no weights (needs eager attention)")
    return weights


# Recomputed layers of every long capture in the process, least recently used first: {(capture, layer): array}.
_LAYER_CACHE: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
_LAYER_CACHE_LOCK = threading.Lock()
_LAZY_IDS = itertools.count()


class _Stop(Exception):
    """Ends a forward pass once the layer it was run for has produced its attention."""


class LazyAttentions:
    """The attention of a long capture, (layer, head, query, key) float32, one layer at a time.

    No layer is stored by the capture: ``[layer]`` runs that layer's block again from its kept input (the
    hidden state entering the block and the block's other arguments: mask, rotary tables) and stops once the
    attention module has produced its weights (so the MLP is not run): one layer's attention instead of a
    forward pass. The result is bit-for-bit what the capture's pass computed (same inputs, same kernels; tested).
    Recent layers are kept in one least-recently-used cache shared by every long capture of the process
    (LAYER_CACHE_BYTES in all; the newest layer is always kept, whatever its size).

    Thread safe (captures are shared by every browser session): one lock serialises recomputation, so two
    sessions asking for the same layer compute it once. Returned arrays are read-only views.
    """

    def __init__(self, loaded, blocks: dict, modules: dict, inputs: dict, shape: tuple[int, int, int, int]):
        missing = sorted(set(range(shape[0])) - set(inputs))
        if missing:
            raise RuntimeError(f"the capture saw no input for layer(s) {missing}")
        self._loaded = loaded
        self._blocks = blocks
        self._modules = modules
        self._inputs = inputs
        self.shape = tuple(int(s) for s in shape)
        self._token = next(_LAZY_IDS)  # this capture's key in the shared layer cache
        self._lock = threading.Lock()
        self.recomputed = 0  # layers computed again so far (for tests and benches)
        # What the analysis layer reduced from every layer during the capture's own pass (e.g. the attention
        # grid, explorer.analysis.attention_long.capture_with_grid), so nobody recomputes it; None if nothing.
        self.summary = None

    dtype = np.dtype(np.float32)
    ndim = 4

    @property
    def layer_bytes(self) -> int:
        return 4 * self.shape[1] * self.shape[2] * self.shape[3]

    @property
    def nbytes(self) -> int:
        """What the whole array would take (it is never held)."""
        return self.shape[0] * self.layer_bytes

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"This capture's attention ({self.nbytes / 2**30:.1f} GB for all layers) is never held whole: "
            "read one layer at a time, attentions[layer] or attentions[layer, head]."
        )

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if not key or isinstance(key[0], (slice, np.ndarray, list)) or key[0] is Ellipsis:
            raise TypeError("A long capture's attention is read one layer at a time: attentions[layer, ...].")
        layer = int(key[0])
        if layer < 0:
            layer += self.shape[0]
        if not 0 <= layer < self.shape[0]:
            raise IndexError(f"layer {key[0]} is outside 0..{self.shape[0] - 1}")
        array = self.layer(layer)
        return array[key[1:]] if len(key) > 1 else array

    def layer(self, layer: int) -> np.ndarray:
        """(head, query, key) float32, read-only: layer ``layer``'s attention."""
        key = (self._token, int(layer))
        with self._lock:  # one computation per capture at a time: a second asker finds it cached
            with _LAYER_CACHE_LOCK:
                if key in _LAYER_CACHE:
                    _LAYER_CACHE.move_to_end(key)
                    return _LAYER_CACHE[key]
            array = _frozen(self._compute(int(layer)))
            self.recomputed += 1
            with _LAYER_CACHE_LOCK:
                _LAYER_CACHE[key] = array
                # Bounded across every capture of the process; the newest layer always stays.
                while (
                    len(_LAYER_CACHE) > 1 and sum(a.nbytes for a in _LAYER_CACHE.values()) > LAYER_CACHE_BYTES
                ):
                    _LAYER_CACHE.popitem(last=False)
            return array

    @torch.no_grad()
    def _compute(self, layer: int) -> np.ndarray:
        hidden, args, kwargs = self._inputs[layer]
        owner, got = threading.get_ident(), {}

        def hook(_module, _args, output):
            if threading.get_ident() == owner:
                got["weights"] = _weights_of(output, layer)[0].float().cpu().numpy()
                raise _Stop

        handle = self._modules[layer].register_forward_hook(hook)
        try:
            self._blocks[layer](hidden, *args, **kwargs)
        except _Stop:
            pass
        finally:
            handle.remove()
        if "weights" not in got:
            raise RuntimeError(f"layer {layer}'s block ran without calling its attention module")
        return got["weights"]


@torch.no_grad()
def capture(
    loaded: LoadedModel,
    text: str,
    max_tokens: int | None = None,
    *,
    on_layer: LayerCallback | None = None,
    progress: Progress | None = None,
    keep_bytes: int = FULL_ATTENTION_BYTES,
) -> Capture:
    """Run the model once on ``text``, with its attention weights and hidden states.

    Every layer's attention (head, query, key) is handed, as the model produces it, to ``on_layer(layer,
    weights)`` (a torch tensor on the model's device, in the model's dtype; valid during the call only): that is
    where a caller reduces it, e.g. to the attention grid's metrics. When all layers together take at most
    ``keep_bytes`` (float32), they are also kept whole and ``Capture.attentions`` is a read-only ndarray;
    otherwise it is a LazyAttentions that recomputes a layer when one is asked for, so memory never holds every
    layer at once. ``progress(fraction, message)`` is called after each layer (it may raise to cancel).

    Raises InputError for unusable text or when the model produces NaN/inf.
    """
    ids, n_original, messages = tokenize(loaded, text, max_tokens)
    input_ids = torch.tensor([ids], dtype=torch.long, device=loaded.device)
    anatomy = loaded.anatomy
    n_layers, n_heads, n = anatomy.n_layers, anatomy.n_heads, len(ids)
    keep_all = attention_bytes(n_layers, n_heads, n) <= keep_bytes
    kept: dict[int, np.ndarray] = {}
    inputs: dict[int, tuple] = {}
    owner = threading.get_ident()
    blocks = {b.index: loaded.model.get_submodule(b.block) for b in anatomy.blocks}
    modules = anatomy.attention_modules(loaded.model)

    def remember_inputs(layer):
        # The block's input and its other arguments (mask, rotary tables: shared tensors, referenced not copied):
        # enough to run this one block again later (LazyAttentions).
        def hook(_module, args, kwargs):
            if threading.get_ident() == owner and args:
                inputs[layer] = (args[0].detach(), args[1:], dict(kwargs))

        return hook

    def reduce(layer):
        def hook(_module, _args, output):
            if threading.get_ident() != owner:  # another session's forward on the same cached model
                return
            weights = _weights_of(output, layer)[0]
            if not bool(torch.isfinite(weights).all()):
                raise InputError(_NAN_MESSAGE)
            if on_layer is not None:
                on_layer(layer, weights)
            if keep_all:
                kept[layer] = weights.float().cpu().numpy()
            if progress is not None:
                progress((layer + 1) / n_layers, f"layer {layer + 1} of {n_layers}")

        return hook

    handles = [modules[layer].register_forward_hook(reduce(layer)) for layer in sorted(modules)]
    if not keep_all:
        handles += [
            blocks[layer].register_forward_pre_hook(remember_inputs(layer), with_kwargs=True)
            for layer in sorted(blocks)
        ]
    try:
        out = loaded.model(input_ids=input_ids, output_hidden_states=True, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()  # the cached model must come out exactly as it went in

    hidden = torch.stack([h[0] for h in out.hidden_states]).float().cpu().numpy()
    if not np.isfinite(hidden).all():
        raise InputError(_NAN_MESSAGE)
    if keep_all:
        if len(kept) != n_layers:
            raise RuntimeError(f"captured {len(kept)} of {n_layers} layers' attention")
        attentions = _frozen(np.stack([kept[layer] for layer in range(n_layers)]))
    else:
        attentions = LazyAttentions(loaded, blocks, modules, inputs, (n_layers, n_heads, n, n))
    token_losses = None
    logits = getattr(out, "logits", None)
    if loaded.causal and logits is not None:
        token_losses = _frozen(_token_losses(logits[0], input_ids[0]))

    tokenizer = loaded.tokenizer
    return Capture(
        model_id=loaded.id,
        text=text,
        tokens=list(tokenizer.convert_ids_to_tokens(ids)),
        token_texts=[_display_text(tokenizer, i) for i in ids],
        token_ids=_frozen(np.asarray(ids, dtype=np.int64)),
        attentions=attentions,
        hidden_states=_frozen(hidden),
        token_losses=token_losses,
        causal=loaded.causal,
        n_tokens_original=n_original,
        messages=messages,
    )


def _token_losses(logits: torch.Tensor, ids: torch.Tensor, rows: int = 1024) -> np.ndarray:
    """(token - 1,) float32 next-token losses, in blocks of rows (a float32 log-softmax of 8,192 x 49,152 logits
    would be 1.6 GB at once)."""
    out = []
    for start in range(0, logits.shape[0] - 1, rows):
        stop = min(start + rows, logits.shape[0] - 1)
        logprobs = torch.log_softmax(logits[start:stop].float(), dim=-1)
        out.append(-logprobs.gather(-1, ids[start + 1 : stop + 1, None])[:, 0])
    if not out:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(out).cpu().numpy().astype(np.float32)
