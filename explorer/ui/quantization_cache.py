"""Background work behind the compression page's "fewer bits" comparison and its healing action, shared by every
browser session through the task layer (explorer/tasks.py: frozen specs, one board, the disk store).

The comparison measures, on the same held-out passage and groups as the budget sweep: int8 per row, 4-bit in
groups of 32/64/128 (symmetric and with an offset), the top singular directions at fp16 with a 4-bit residual,
and SVD-LLM factors in int8, each point published as it is measured; a finished comparison is kept on disk.
Healing fine-tunes one low-rank setting's factors on a copy (kept in memory only: it holds a model). Neither
touches the cached model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import streamlit as st
import torch

from explorer import tasks
from explorer.analysis import compression as comp
from explorer.analysis import healing
from explorer.analysis import quantize as qz
from explorer.models.choice import ModelChoice
from explorer.ui import compression_cache as cc
from explorer.ui.cache import cached_model


@dataclass(frozen=True)
class Healed:
    """A finished healing: its run and the healed copy (its own factors; every other tensor shared with the
    cached model, which it never changes). The board keeps a few (HealingSpec.MAX_FINISHED)."""

    run: healing.HealingRun
    model: torch.nn.Module


@dataclass(frozen=True)
class ComparisonSpec(cc.PointsSpec):
    """The fewer-bits comparison of the chosen groups (quantize.fewer_bits_points): every scheme, residual
    share and factor share it measures is part of its key."""

    KIND: ClassVar[str] = "fewer-bits"
    LABEL: ClassVar[str] = "fewer bits"
    MAX_FINISHED: ClassVar[int] = 4
    schemes: tuple[str, ...] = tuple(s.name for s in qz.FEWER_BITS_SCHEMES)
    residual: tuple = (qz.RESIDUAL_SCHEME.name, *qz.RESIDUAL_SHARES)
    factor_shares: tuple[float, ...] = tuple(qz.FACTOR_SHARES)


@dataclass(frozen=True)
class HealingSpec(cc.ModelSpec):
    """Healing one low-rank setting's factors: ``steps`` Adam steps of size ``lr`` (in memory only)."""

    KIND: ClassVar[str] = "healing"
    LABEL: ClassVar[str] = "healing"
    MAX_FINISHED: ClassVar[int] = 4
    method: str = "svd"
    kinds: tuple[str, ...] = ()
    calibration: str = ""
    setting: comp.RankSetting | None = None
    steps: int = 0
    lr: float = 0.0


def comparison_spec(
    model_key: ModelChoice, kinds: tuple[str, ...], calibration: cc.Calibration
) -> ComparisonSpec:
    return ComparisonSpec(calibration=calibration.key(), kinds=tuple(kinds), **cc.heldout_fields(model_key))


def comparison_task(
    model_key: ModelChoice, kinds: tuple[str, ...], calibration: cc.Calibration
) -> tuple[ComparisonSpec, Callable]:
    """(spec, work) of the fewer-bits comparison for these groups; the task's ``partial`` holds Points."""
    loaded = cached_model(model_key)
    evalset = cc.budget_evalset(model_key)
    f_spec, f_work = cc.factorization_task(model_key, "svdllm", kinds, calibration)

    def work(task: tasks.Task) -> list[comp.Point]:
        ref = cc.heldout_reference(loaded, model_key, evalset)
        return qz.fewer_bits_points(loaded, kinds, evalset, ref, lambda: tasks.run(f_spec, f_work),
                                    progress=task.report, publish=task.publish)  # fmt: skip

    return comparison_spec(model_key, kinds, calibration), work


def peek_comparison(model_key: ModelChoice, kinds, calibration: cc.Calibration) -> tasks.Task | None:
    return tasks.peek(comparison_spec(model_key, kinds, calibration))


def comparison_points(task: tasks.Task) -> list[comp.Point]:
    """The points measured so far (all of them once the task is done)."""
    return cc.points_so_far(task)


def healing_spec(s: cc.LowRank, steps: int, lr: float) -> HealingSpec:
    return HealingSpec(method=s.method, kinds=tuple(s.kinds), calibration=s.calibration.key(), setting=s.rank,
                       steps=int(steps), lr=float(lr), **cc.model_fields(s.model_key))  # fmt: skip


def healing_task(s: cc.LowRank, steps: int, lr: float) -> tuple[HealingSpec, Callable]:
    """(spec, work) healing the factors of one setting (``steps`` Adam steps of size ``lr`` on the calibration
    text); the result is a Healed: the HealingRun (quality on the held-out passage before and after) and the
    healed copy. Reads the factors here, in the script thread."""
    loaded = cached_model(s.model_key)
    evalset = cc.budget_evalset(s.model_key)
    fact = s.factors()
    ranks = comp.choose_ranks(fact, s.rank)
    text = comp.shipped_calibration_text()

    def work(task: tasks.Task) -> Healed:
        ref = cc.heldout_reference(loaded, s.model_key, evalset)
        run, model = healing.heal(
            loaded, fact, ranks, text, evalset, ref, steps=steps, lr=lr, progress=task.report
        )
        return Healed(run, model)

    return healing_spec(s, steps, lr), work


# ---------------------------------------------------------------- one setting of the free controls, measured
# Keyed like cc.cached_outcome: plain values (a cc.LowRank), the scheme by its name. Each measures the same way the comparison
# task does (same analysis function, same evaluation tokens), so a budget row and the free result agree.


@st.cache_data(max_entries=32, show_spinner=False)
def cached_bits_outcome(
    model_key: ModelChoice, kinds: tuple[str, ...], scheme: str, text: str, max_tokens: int
) -> qz.QuantOutcome:
    """The chosen groups quantized with the scheme named ``scheme`` (round to nearest), measured."""
    loaded = cached_model(model_key)
    evalset = cc.cached_eval_set(model_key, text, max_tokens)
    ref = cc.cached_reference(model_key, text, max_tokens)
    return qz.quantize_weights(loaded, kinds, qz.scheme_named(scheme), evalset, ref)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_residual_outcome(
    model_key: ModelChoice, kinds: tuple[str, ...], scheme: str, share: float, text: str, max_tokens: int
) -> qz.QuantOutcome:
    """Each chosen matrix's top plain-SVD directions at fp16 (rank floor(share · mn/(m+n))), the rest quantized
    with the scheme named ``scheme``, measured."""
    loaded = cached_model(model_key)
    evalset = cc.cached_eval_set(model_key, text, max_tokens)
    ref = cc.cached_reference(model_key, text, max_tokens)
    return qz.residual_split_weights(loaded, kinds, qz.scheme_named(scheme), evalset, ref, share=share)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_factor_bits_outcome(s: cc.LowRank, scheme: str, text: str, max_tokens: int) -> qz.QuantOutcome:
    """The low-rank factors of the setting's ranks, each factor quantized with the scheme named ``scheme``."""
    loaded = cached_model(s.model_key)
    fact = s.factors()
    evalset = cc.cached_eval_set(s.model_key, text, max_tokens)
    ref = cc.cached_reference(s.model_key, text, max_tokens)
    return qz.quantize_factored_weights(loaded, fact, comp.choose_ranks(fact, s.rank), qz.scheme_named(scheme),
                                        evalset, ref)  # fmt: skip


def finished_healing(s: cc.LowRank, steps: int, lr: float) -> Healed | None:
    """The finished healing of this setting (None when not run, running, failed or cancelled)."""
    return _finished(healing_spec(s, steps, lr))


def _finished(spec: HealingSpec) -> Healed | None:
    task = tasks.peek(spec)
    return task.result if task is not None and task.succeeded else None


def healed_quality(s: cc.LowRank, steps: int, lr: float, text: str, max_tokens: int) -> comp.Quality | None:
    """The healed copy of this setting measured again on (text, max_tokens): a Quality, or None without a
    finished healing."""
    spec = healing_spec(s, steps, lr)
    return None if _finished(spec) is None else _cached_healed_quality(spec, text, max_tokens)


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_healed_quality(spec: HealingSpec, text: str, max_tokens: int) -> comp.Quality:
    loaded = cached_model(spec.model_key)
    evalset = cc.cached_eval_set(spec.model_key, text, max_tokens)
    ref = cc.cached_reference(spec.model_key, text, max_tokens)
    return comp.evaluate(loaded, _finished(spec).model, evalset, ref)
