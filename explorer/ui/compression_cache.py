"""Cached work behind the compression page, shared by every browser session.

Heavy, progress-reporting work (calibration statistics, factorizations, the Pareto sweep) lives in bounded
process-wide stores rather than in st.cache_* functions: Streamlit replays the elements a cached function
draws, and a progress bar created outside the function cannot be replayed. The stores are created once by
st.cache_resource (so "clear cache" empties them too), keyed by plain values (model key tuple, method,
calibration hash, groups, ...), hold at most a few entries, and never hold a model. Cheap results keyed by
settings (one evaluated setting, one greedy generation) use st.cache_data.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import METHODS, Factorization
from explorer.models import LoadedModel
from explorer.models.capture import tokenize
from explorer.ui.cache import cached_model

Progress = Callable[[float, str], None]


class _Store:
    """A small LRU map with one lock: a value is computed once even when two sessions ask together."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key, compute: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = compute()
            self._items[key] = value
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
            return value

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items


@st.cache_resource(show_spinner=False)
def _stores() -> dict[str, _Store]:
    # Activation statistics hold X^T X per matrix (about 330 MB for SmolLM2's MLPs): keep one.
    # Factorizations hold U and U^T W per matrix (about 440 MB per method for SmolLM2's MLPs): keep three,
    # one per method, so the sweep and a method switch reuse them.
    return {"stats": _Store(1), "factors": _Store(3), "sweep": _Store(8)}


def _noop(_fraction: float, _message: str) -> None:
    pass


@dataclass(frozen=True)
class Calibration:
    """Where ASVD/SVD-LLM statistics come from: ``source`` "shipped" (assets/calibration) or "text" (the
    sidebar ``text``, cut to ``max_tokens``, exactly as it is evaluated)."""

    source: str = "shipped"
    text: str = ""
    max_tokens: int = 0

    def key(self) -> str:
        if self.source == "shipped":
            return comp.text_hash(comp.shipped_calibration_text())
        return comp.text_hash(f"{self.max_tokens}\n{self.text}")

    def chunks(self, loaded: LoadedModel) -> list[list[int]]:
        if self.source == "shipped":
            return comp.calibration_chunks(loaded, comp.shipped_calibration_text())
        ids, _n, _messages = tokenize(loaded, self.text, self.max_tokens)
        return [list(ids)]


def factorization(
    model_key: tuple,
    method: str,
    kinds: tuple[str, ...],
    calibration: Calibration,
    progress: Progress | None = None,
) -> Factorization:
    """Factors of the chosen groups by ``method``, computed once per (model, method, calibration, groups)."""
    progress = progress or _noop
    loaded = cached_model(*model_key)
    stores = _stores()

    def compute_stats():
        return comp.collect_activation_stats(
            loaded, calibration.chunks(loaded), kinds, lambda f, m: progress(0.3 * f, m)
        )

    def compute():
        stats, n_tokens = stores["stats"].get((model_key, calibration.key(), kinds), compute_stats)
        return comp.factorize_model(
            loaded, method, kinds, stats, n_tokens, lambda f, m: progress(0.3 + 0.7 * f, m)
        )

    return stores["factors"].get((model_key, method, calibration.key(), kinds), compute)


def has_factorization(
    model_key: tuple, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> bool:
    return (model_key, method, calibration.key(), kinds) in _stores()["factors"]


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_eval_set(model_key: tuple, text: str, max_tokens: int) -> comp.EvalSet:
    return comp.make_eval_set(cached_model(*model_key), text, max_tokens)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_reference(model_key: tuple, text: str, max_tokens: int) -> comp.Reference:
    """The original model's outputs on the evaluation tokens (log-probs are ~100 MB at 512 tokens)."""
    return comp.reference(cached_model(*model_key), cached_eval_set(model_key, text, max_tokens))


def _setting(model_key, method, kinds, calibration, setting, text, max_tokens):
    """(model, evaluation tokens, cached factors, ranks the setting chooses): what every per-setting result
    starts from."""
    loaded = cached_model(*model_key)
    fact = factorization(model_key, method, kinds, calibration)
    return loaded, cached_eval_set(model_key, text, max_tokens), fact, comp.choose_ranks(fact, setting)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_outcome(
    model_key: tuple,
    method: str,
    kinds: tuple[str, ...],
    calibration: Calibration,
    setting: comp.RankSetting,
    text: str,
    max_tokens: int,
) -> comp.Outcome:
    """One setting measured: rebuild the compressed copy from cached factors and run it (no SVD here)."""
    loaded, evalset, fact, ranks = _setting(model_key, method, kinds, calibration, setting, text, max_tokens)
    return comp.evaluate_ranks(loaded, fact, ranks, evalset, cached_reference(model_key, text, max_tokens))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_original_generation(model_key: tuple, text: str, max_tokens: int, n_prompt: int, n_new: int):
    """(prompt text, the original model's greedy continuation): independent of the compression setting."""
    loaded = cached_model(*model_key)
    prompt = cached_eval_set(model_key, text, max_tokens).ids[:n_prompt]
    return (
        loaded.tokenizer.decode(list(prompt), skip_special_tokens=True),
        comp.greedy_continuation(loaded, loaded.model, prompt, n_new),
    )


@st.cache_data(max_entries=32, show_spinner=False)
def cached_compressed_generation(
    model_key: tuple,
    method: str,
    kinds: tuple[str, ...],
    calibration: Calibration,
    setting: comp.RankSetting,
    text: str,
    max_tokens: int,
    n_prompt: int,
    n_new: int,
) -> str:
    """The compressed copy's greedy continuation of the same prompt."""
    loaded, evalset, fact, ranks = _setting(model_key, method, kinds, calibration, setting, text, max_tokens)
    compressed = comp.compressed_model(loaded, fact, ranks)
    return comp.greedy_continuation(loaded, compressed, evalset.ids[:n_prompt], n_new)


def _sweep_key(model_key, kinds, calibration: Calibration, text, max_tokens, shares) -> tuple:
    return (model_key, calibration.key(), kinds, comp.text_hash(text), max_tokens, tuple(shares))


def sweep(
    model_key: tuple,
    kinds: tuple[str, ...],
    calibration: Calibration,
    text: str,
    max_tokens: int,
    progress: Progress | None = None,
    shares: tuple[float, ...] = comp.SWEEP_SHARES,
) -> list[comp.SweepPoint]:
    """All three methods at each share of break-even rank, computed once per (model, calibration, groups, text)."""
    progress = progress or _noop
    loaded = cached_model(*model_key)
    n = len(METHODS)

    def compute():
        facts = {}
        for i, method in enumerate(METHODS):
            facts[method] = factorization(
                model_key, method, kinds, calibration, lambda f, m, i=i: progress(0.6 * (i + f) / n, m)
            )
        evalset = cached_eval_set(model_key, text, max_tokens)
        ref = cached_reference(model_key, text, max_tokens)
        return comp.sweep(loaded, facts, evalset, ref, shares, lambda f, m: progress(0.6 + 0.4 * f, m))

    return _stores()["sweep"].get(
        _sweep_key(model_key, kinds, calibration, text, max_tokens, shares), compute
    )


def has_sweep(model_key, kinds, calibration: Calibration, text, max_tokens, shares=comp.SWEEP_SHARES) -> bool:
    return _sweep_key(model_key, kinds, calibration, text, max_tokens, shares) in _stores()["sweep"]
