"""Calibration for compression: the shipped texts (calibration, held-out passage, sentence set), activation
statistics collected with hooks on a structural copy (never on the cached model), and each method's
factorization of the chosen weight groups (kept in the one store, explorer.analysis.factor_store)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import torch

from explorer.analysis.factor_store import cached_factorize
from explorer.analysis.lowrank import (
    METHODS,
    ActivationStats,
    Factorization,
    factorize,
)
from explorer.analysis.matrices import weight_matrices
from explorer.analysis.rank_allocation import GROUP_KINDS
from explorer.analysis.surgery import (
    structural_copy,
    tied_output_module,
)
from explorer.errors import InputError
from explorer.models.loading import LoadedModel
from explorer.paths import ASSETS_DIR

CALIBRATION_CHUNK_TOKENS = 256


CALIBRATION_FILE = ASSETS_DIR / "calibration" / "calibration.txt"


HELDOUT_FILE = ASSETS_DIR / "calibration" / "heldout.txt"


SENTENCES_FILE = ASSETS_DIR / "sentences" / "sentences.txt"


def shipped_calibration_text() -> str:
    """About 900 words of plain English (several topics, some dialogue and code), written for this app."""
    return CALIBRATION_FILE.read_text(encoding="utf-8").strip()


def heldout_text() -> str:
    """About 500 words of plain English never used for calibration: an honest evaluation passage."""
    return HELDOUT_FILE.read_text(encoding="utf-8").strip()


def sentence_set() -> tuple[str, ...]:
    """32 short sentences in topical groups (music, cooking, weather, ...), for the encoder similarity check."""
    lines = SENTENCES_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def available_kinds(model: torch.nn.Module) -> tuple[str, ...]:
    present = {m.kind for m in weight_matrices(model)}
    return tuple(k for k in GROUP_KINDS if k in present)


def calibration_chunks(loaded: LoadedModel, text: str, chunk_tokens: int = CALIBRATION_CHUNK_TOKENS):
    """Token-id lists of at most ``chunk_tokens`` (and the model's limit): paragraphs packed greedily."""
    limit = max(2, min(chunk_tokens, loaded.card.max_positions))
    chunks: list[list[int]] = []
    current: list[int] = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        ids = loaded.tokenizer(paragraph, add_special_tokens=True, verbose=False)["input_ids"]
        for start in range(0, len(ids), limit):
            piece = ids[start : start + limit]
            if current and len(current) + len(piece) > limit:
                chunks.append(current)
                current = []
            current = current + piece
    if current:
        chunks.append(current)
    if not chunks:
        raise InputError(
            "The calibration text is empty: choose the shipped calibration set or type some text."
        )
    return chunks


@torch.no_grad()
def collect_activation_stats(
    loaded: LoadedModel,
    chunks: list[list[int]],
    kinds,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[dict[str, ActivationStats], int]:
    """Run the calibration chunks and gather, per chosen matrix's module, mean |x| and X^T X of its input.

    An embedding's statistics come from the input of its tied output layer (the final hidden states), the
    one place where it multiplies activations; without a tied output layer it has none. Modules that read the
    same tensor (q/k/v, gate/up) share one accumulator. Returns (module name -> stats, tokens seen).
    """
    model = structural_copy(loaded.model)
    targets: dict[str, str] = {}  # module whose input we hook -> module name the stats belong to
    for mat in weight_matrices(model):
        if mat.kind not in kinds:
            continue
        if mat.kind == "embed":
            tied = tied_output_module(model, mat.module)
            if tied is not None:
                targets[tied] = mat.module
        else:
            targets[mat.module] = mat.module

    accs: dict[str, dict] = {}  # first hooked module reading a tensor -> float64 sums over tokens
    alias: dict[str, str] = {}  # hooked module -> the accumulator it shares
    seen: dict[tuple, str] = {}  # (data_ptr, shape) -> accumulator, within one forward pass
    keep_alive: list[torch.Tensor] = []  # hold the inputs so no address is reused within a pass

    def hook_for(hooked: str):
        def hook(_module, args):
            x = args[0].detach()
            key = (x.data_ptr(), tuple(x.shape))
            first = seen.get(key)
            if first is None:
                seen[key] = first = hooked
                keep_alive.append(x)
                x2 = x.reshape(-1, x.shape[-1]).to("cpu", torch.float32)
                acc = accs.get(hooked)
                if acc is None:
                    n = x2.shape[1]
                    accs[hooked] = acc = {
                        "abs": torch.zeros(n, dtype=torch.float64),
                        "gram": torch.zeros(n, n, dtype=torch.float64),
                        "n": 0,
                    }
                acc["abs"] += x2.abs().sum(0).to(torch.float64)
                acc["gram"] += (x2.T @ x2).to(torch.float64)  # float32 per chunk, float64 across chunks
                acc["n"] += x2.shape[0]
            alias[hooked] = first

        return hook

    handles = [model.get_submodule(name).register_forward_pre_hook(hook_for(name)) for name in targets]
    # When every hooked module lies in the transformer body, run the body only: a causal LM's output layer
    # (SmolLM2: 49152 x 576, a fifth of its multiply-adds) would compute logits nobody reads.
    body = getattr(model, "base_model", model)
    inside = {id(m) for m in body.modules()}
    runner = body if all(id(model.get_submodule(name)) in inside for name in targets) else model
    n_tokens = 0
    try:
        for i, chunk in enumerate(chunks):
            if progress is not None:
                progress(i / len(chunks), f"Calibration activations: chunk {i + 1} of {len(chunks)}")
            seen.clear()
            keep_alive.clear()
            runner(input_ids=torch.tensor([chunk], device=loaded.device))
            n_tokens += len(chunk)
    finally:
        for handle in handles:
            handle.remove()
        keep_alive.clear()
    shared = {
        key: ActivationStats((acc["abs"] / acc["n"]).numpy(), acc["gram"].to(torch.float32), int(acc["n"]))
        for key, acc in accs.items()
        if acc["n"] > 0
    }
    accs.clear()
    stats = {owner: shared[alias[hooked]] for hooked, owner in targets.items() if alias.get(hooked) in shared}
    if progress is not None:
        progress(1.0, "Calibration activations: done")
    return stats, n_tokens


def factorize_model(
    loaded: LoadedModel,
    method: str,
    kinds,
    stats: dict[str, ActivationStats] | None,
    calibration_tokens: int = 0,
    progress: Callable[[float, str], None] | None = None,
    calibration_key: str | None = None,
    stats_provider: Callable[[], tuple[dict[str, ActivationStats], int]] | None = None,
    usable_only: bool = False,
) -> Factorization:
    """Factor the chosen groups. With ``calibration_key`` (naming the calibration data that gave ``stats``,
    e.g. ``calibration_key_of(text)``) the disk store (explorer.analysis.factor_store) is read first and
    written after a computation; ``stats_provider`` (called only on a miss) may then replace ``stats``.
    ``usable_only``: keep only the ranks that save parameters (factor_store.usable_factors)."""
    if calibration_key is None:
        return factorize(
            loaded.model, method, kinds, stats, calibration_tokens=calibration_tokens, progress=progress
        )
    provider = stats_provider or (lambda: (stats, calibration_tokens))
    fact, _from_disk = cached_factorize(
        loaded.model, method, kinds, calibration_key, provider, progress=progress, usable_only=usable_only
    )
    return fact


def shipped_factorizations(
    loaded: LoadedModel,
    kinds: tuple[str, ...],
    methods=METHODS,
    log: Callable[[str], None] | None = None,
) -> dict[str, Factorization]:
    """Each method's factors of ``kinds`` calibrated on the shipped calibration set, full rank: from the disk
    store, or computed (the calibration pass runs once, only on a miss). For the report and the benches."""
    text = shipped_calibration_text()
    gathered: dict = {}

    def stats():
        if "stats" not in gathered:
            gathered["stats"] = collect_activation_stats(loaded, calibration_chunks(loaded, text), kinds)
        return gathered["stats"]

    facts = {}
    for method in methods:
        start = time.perf_counter()
        facts[method], hit = cached_factorize(loaded.model, method, kinds, calibration_key_of(text), stats)
        if log is not None:
            log(f"{method}: factors {'read' if hit else 'computed'} in {time.perf_counter() - start:.1f} s")
    return facts


def calibration_key_of(text: str, chunk_tokens: int = CALIBRATION_CHUNK_TOKENS) -> str:
    """Names calibration data for the factor store: the text's hash and how ``calibration_chunks`` cuts it."""
    return f"{text_hash(text)}-{chunk_tokens}"
