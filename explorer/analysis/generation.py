"""Continue a text with the model itself (greedy or sampled, reproducibly), so that prompt + continuation can be
analysed as one text with the generated tokens marked.

Generation uses transformers' ``generate`` with the KV cache on the shared, cached model: it runs under
``torch.no_grad`` in eval mode and changes nothing on the model (its generation config is passed per call, not
set on the model). Sampling draws from a ``torch.Generator`` seeded by the caller's seed, inside a forked RNG, so
the same settings give the same tokens and the process-wide RNG is left as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import GenerationConfig

from explorer.errors import InputError
from explorer.models.capture import tokenize
from explorer.models.loading import LoadedModel

MAX_NEW_TOKENS = 512
GREEDY = "greedy"
SAMPLED = "sample"
MODES = {GREEDY: "Greedy (most likely token)", SAMPLED: "Sampled (temperature, top-p, seed)"}


@dataclass(frozen=True)
class GenerationSettings:
    """How to continue: ``n_new`` tokens (0 = off), ``mode`` greedy or sample; for sampling the softmax
    ``temperature`` (> 0), nucleus ``top_p`` (0-1] and the RNG ``seed``. Plain values: a cache key."""

    n_new: int = 0
    mode: str = GREEDY
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.n_new > 0

    def describe(self) -> str:
        """E.g. "32 tokens, greedy" or "32 tokens sampled at temperature 0.8, top-p 0.95, seed 3"."""
        if self.mode == GREEDY:
            return f"{self.n_new} tokens, greedy"
        return (
            f"{self.n_new} tokens sampled at temperature {self.temperature:g}, top-p {self.top_p:g}, "
            f"seed {self.seed}"
        )


@dataclass(frozen=True)
class Generation:
    """A prompt and the model's continuation of it.

    Attributes:
        token_ids: ndarray of shape (token,), int64: prompt + continuation.
        generated: ndarray of shape (token,), bool: True for the continuation's tokens.
        stopped_early: True when the model ended its text (end-of-sequence token) before ``n_new`` tokens.
    """

    token_ids: np.ndarray
    generated: np.ndarray
    stopped_early: bool

    @property
    def n_prompt(self) -> int:
        return int((~self.generated).sum())

    @property
    def n_generated(self) -> int:
        return int(self.generated.sum())


def _check(loaded: LoadedModel, settings: GenerationSettings, n_prompt: int) -> None:
    if not loaded.causal:
        raise InputError(
            f"{loaded.card.id} cannot continue a text: it is an encoder without a language-model head. "
            "Pick a causal LM such as SmolLM2 to generate tokens."
        )
    if not 0 <= settings.n_new <= MAX_NEW_TOKENS:
        raise InputError(f"Generate between 0 and {MAX_NEW_TOKENS} tokens (asked for {settings.n_new}).")
    if settings.mode not in MODES:
        raise InputError(f"Generation mode '{settings.mode}' is not one of {', '.join(MODES)}.")
    if settings.mode == SAMPLED and not (settings.temperature > 0 and 0 < settings.top_p <= 1):
        raise InputError("Sampling needs a temperature above 0 and a top-p in (0, 1].")
    room = loaded.card.max_positions - n_prompt
    if settings.n_new > room:
        raise InputError(
            f"The text already has {n_prompt:,} tokens; {loaded.card.id} reads at most "
            f"{loaded.card.max_positions:,}, so at most {max(room, 0):,} can be generated."
        )


@torch.no_grad()
def generate(loaded: LoadedModel, prompt_ids: np.ndarray, settings: GenerationSettings) -> Generation:
    """Continue ``prompt_ids`` (shape (token,)) by up to ``settings.n_new`` tokens with the KV cache.

    Raises InputError for an encoder, a prompt that leaves no room in the context, or bad settings.
    """
    prompt = np.asarray(prompt_ids, dtype=np.int64)
    _check(loaded, settings, int(prompt.shape[0]))
    if not settings.active:
        return Generation(prompt.copy(), np.zeros(prompt.shape, dtype=bool), False)
    model = loaded.model
    tokenizer = loaded.tokenizer
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = getattr(tokenizer, "eos_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = pad if pad is not None else (eos[0] if isinstance(eos, list) else eos)
    sample = settings.mode == SAMPLED
    config = GenerationConfig(
        max_new_tokens=settings.n_new,
        min_new_tokens=0,
        do_sample=sample,
        temperature=float(settings.temperature) if sample else None,
        top_p=float(settings.top_p) if sample else None,
        top_k=None,
        eos_token_id=eos,
        pad_token_id=pad,
        use_cache=True,
    )
    input_ids = torch.as_tensor(prompt, device=loaded.device)[None]
    was_training = model.training
    if was_training:  # a shared model is always in eval mode; never switch it
        raise RuntimeError("generate() needs a model in eval mode")
    devices = [loaded.device] if str(loaded.device).startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(settings.seed))
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=config,
        )
    ids = out[0].cpu().numpy().astype(np.int64)
    generated = np.zeros(ids.shape, dtype=bool)
    generated[prompt.shape[0] :] = True
    n_new = int(generated.sum())
    for array in (ids, generated):
        array.setflags(write=False)
    return Generation(ids, generated, stopped_early=n_new < settings.n_new)


def continuation_text(loaded: LoadedModel, generation: Generation) -> str:
    """The continuation as text: what the full decoded text adds after the decoded prompt (decoding the new
    tokens alone can split a character made of bytes from both sides)."""
    tokenizer = loaded.tokenizer
    ids = [int(i) for i in generation.token_ids]
    n_prompt = generation.n_prompt
    full = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    head = tokenizer.decode(ids[:n_prompt], skip_special_tokens=True, clean_up_tokenization_spaces=False)
    if full.startswith(head):
        return full[len(head) :]
    return tokenizer.decode(ids[n_prompt:], skip_special_tokens=True, clean_up_tokenization_spaces=False)


def generated_mask(token_ids: np.ndarray, prompt_ids: np.ndarray) -> np.ndarray:
    """Which of ``token_ids`` (shape (token,)) came from the model, for a text re-tokenized from prompt +
    continuation: every position from the first one where the tokens leave the prompt's own tokens (a merge
    across the seam counts as generated). Shape (token,), bool."""
    token_ids = np.asarray(token_ids)
    prompt_ids = np.asarray(prompt_ids)
    n = min(len(token_ids), len(prompt_ids))
    differs = np.nonzero(token_ids[:n] != prompt_ids[:n])[0]
    seam = int(differs[0]) if differs.size else n
    mask = np.zeros(len(token_ids), dtype=bool)
    mask[seam:] = True
    return mask


def continue_text(
    loaded: LoadedModel, text: str, max_tokens: int | None, settings: GenerationSettings
) -> tuple[tuple[int, ...], Generation, str, str]:
    """The text cut to ``max_tokens`` as every analysis cuts it, continued by the model.

    Returns (prompt ids, generation, prompt text, continuation text): the text to analyse is prompt text +
    continuation text (the prompt text is the text itself, or its cut tokens decoded when it was cut).
    """
    ids, n_original, _ = tokenize(loaded, text, max_tokens)
    generation = generate(loaded, np.asarray(ids, dtype=np.int64), settings)
    if n_original > len(ids):
        prompt_text = loaded.tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
    else:
        prompt_text = text
    return tuple(int(i) for i in ids), generation, prompt_text, continuation_text(loaded, generation)
