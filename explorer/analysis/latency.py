"""Honest latency of the original against a compressed model: warm-up, then interleaved repeated runs, the
median with its spread, at the page's token count and at a fixed 256-token input, beside the multiply-add
counts that say what the timing should show.

Timing: each model runs ``warmup`` times (first calls allocate and pick kernels), then ``runs`` rounds in which
both run once, the order alternating (original first in even rounds), so a slow spell of a shared machine hits
both alike. Reported: median, quartiles, min and max of the wall-clock milliseconds of one forward pass.

Multiply-adds (``matmul_macs``): of the products with weight matrices, per token: m n for a dense (m, n) matrix,
k(m + n) for one factored at rank k; an embedding lookup is free when dense and k d_model when factored
(A_k[ids] @ B_k); a tied output layer costs vocab x d_model, or k(vocab + d_model) when its embedding is
factored. Every Linear is counted once per token (a BERT pooler runs once per sequence: it is overcounted
alike in both models). Attention's token-by-token products (T^2 d per layer) are not counted: they are the
same in both models.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from explorer.analysis.compression import heldout_text
from explorer.analysis.matrices import weight_matrices
from explorer.analysis.surgery import sync_device, tied_output_module
from explorer.models.loading import LoadedModel

FIXED_TOKENS = 256
DEFAULT_RUNS = 7
DEFAULT_WARMUP = 2


@dataclass(frozen=True)
class Timing:
    """Wall-clock milliseconds of one forward pass over ``runs`` runs after warm-up: median, first and third
    quartile (q1_ms, q3_ms), min_ms and max_ms."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    runs: int

    @classmethod
    def of(cls, samples_ms: list[float]) -> Timing:
        q1, q3 = np.percentile(samples_ms, [25, 75])
        return cls(
            float(statistics.median(samples_ms)),
            float(q1),
            float(q3),
            float(min(samples_ms)),
            float(max(samples_ms)),
            len(samples_ms),
        )

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms


@dataclass(frozen=True)
class LatencyComparison:
    """Original against compressed at ``n_tokens`` tokens. macs_*: multiply-adds of the weight products of
    one forward pass (``matmul_macs``). ``distinguishable``: the interquartile ranges do not overlap, i.e. the
    difference of the medians is larger than the noise of these runs."""

    n_tokens: int
    original: Timing
    compressed: Timing
    macs_original: int
    macs_compressed: int

    @property
    def ratio(self) -> float:
        """compressed median / original median."""
        return self.compressed.median_ms / self.original.median_ms

    @property
    def mac_ratio(self) -> float:
        return self.macs_compressed / self.macs_original if self.macs_original else 1.0

    @property
    def distinguishable(self) -> bool:
        a, b = self.original, self.compressed
        return a.q3_ms < b.q1_ms or b.q3_ms < a.q1_ms


@dataclass(frozen=True)
class Latency:
    """The comparison at the page's token count (``at_text``) and at FIXED_TOKENS (``at_fixed``; fewer when
    the model's context is shorter), and the warm-up runs each model had."""

    at_text: LatencyComparison
    at_fixed: LatencyComparison
    warmup: int


def matmul_macs(loaded: LoadedModel, n_tokens: int, ranks: dict[str, int] | None = None) -> int:
    """Multiply-adds of the weight products of one forward pass over ``n_tokens`` tokens, with the matrices in
    ``ranks`` (name -> k) factored at rank k (see the module docstring for what is counted)."""
    ranks = ranks or {}
    model = loaded.model
    per_token = 0
    for mat in weight_matrices(model):
        m, n = mat.shape
        k = ranks.get(mat.name)
        module = model.get_submodule(mat.module)
        if isinstance(module, torch.nn.Embedding):
            per_token += 0 if k is None else k * n  # lookup of A_k's row, then times B_k (k, d_model)
            tied = tied_output_module(model, mat.module) if mat.kind == "embed" else None
            if tied is not None:
                per_token += m * n if k is None else k * (m + n)
        else:
            per_token += m * n if k is None else k * (m + n)
    return int(per_token) * int(n_tokens)


def _time_once(loaded: LoadedModel, module: torch.nn.Module, ids: torch.Tensor) -> float:
    sync_device(loaded.device)
    start = time.perf_counter()
    module(input_ids=ids)
    sync_device(loaded.device)
    return (time.perf_counter() - start) * 1e3


@torch.inference_mode()
def compare_latency(
    loaded: LoadedModel,
    compressed: torch.nn.Module,
    ids: list[int] | tuple[int, ...],
    ranks: dict[str, int],
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
) -> LatencyComparison:
    """Time the original model and ``compressed`` (built with ``ranks``) on the token ids ``ids``."""
    if runs < 1:
        raise ValueError("At least one timed run is needed.")
    x = torch.tensor([list(ids)], device=loaded.device)
    for _ in range(warmup):
        _time_once(loaded, loaded.model, x)
        _time_once(loaded, compressed, x)
    original: list[float] = []
    factored: list[float] = []
    for i in range(runs):
        order = ((loaded.model, original), (compressed, factored))
        for module, samples in order if i % 2 == 0 else order[::-1]:
            samples.append(_time_once(loaded, module, x))
    n = len(ids)
    return LatencyComparison(
        n, Timing.of(original), Timing.of(factored), matmul_macs(loaded, n), matmul_macs(loaded, n, ranks)
    )


def fixed_input(loaded: LoadedModel, n_tokens: int = FIXED_TOKENS) -> list[int]:
    """``n_tokens`` token ids of the shipped held-out passage (fewer when the context is shorter)."""
    limit = min(n_tokens, loaded.card.max_positions)
    ids = loaded.tokenizer(heldout_text(), verbose=False)["input_ids"]
    while len(ids) < limit:  # a very short passage for a byte-level tokenizer cannot happen, but be safe
        ids = ids + ids
    return list(ids[:limit])


def measure_latency(
    loaded: LoadedModel,
    compressed: torch.nn.Module,
    text_ids: list[int] | tuple[int, ...],
    ranks: dict[str, int],
    **timing: int,
) -> Latency:
    """Both comparisons: at the text's tokens and at the fixed 256-token input. ``timing``: ``runs`` and
    ``warmup``, passed to both ``compare_latency`` calls (their defaults are its own)."""
    return Latency(
        compare_latency(loaded, compressed, text_ids, ranks, **timing),
        compare_latency(loaded, compressed, fixed_input(loaded), ranks, **timing),
        timing.get("warmup", DEFAULT_WARMUP),
    )
