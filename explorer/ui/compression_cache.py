"""Cached work behind the compression page, shared by every browser session.

Heavy, progress-reporting work (calibration statistics, factorizations, the held-out reference, the budget
sweep, latency) runs through the task layer (explorer/tasks.py): each is a frozen spec keyed by everything its
result depends on (the model choice, the weights' fingerprint, the device, the method, the calibration's key,
the groups, ...) and a work function. The layer runs it in the page's run or in the background by the spec's
``estimated_seconds`` (the one rule), shares it between sessions and keeps finished ones in memory (a few per
kind, never a model). Specs worth keeping across a restart (factors, the budget sweep, the original's quality)
are ``KEEP``: the one disk store gives them back, so a factorization dropped from memory by other work comes
back from disk within the same run. Cheap results keyed by settings (one evaluated setting, one greedy
generation) use st.cache_data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import streamlit as st

from explorer import tasks
from explorer.analysis import compression as comp
from explorer.analysis import factor_store
from explorer.analysis.latency import Latency, matmul_macs, measure_latency
from explorer.analysis.lowrank import Factorization
from explorer.models import LoadedModel
from explorer.models.capture import tokenize
from explorer.models.choice import ModelChoice
from explorer.ui.cache import cached_fingerprint, cached_model
from explorer.ui.spec_support import KeptOnDisk

Progress = Callable[[float, str], None]

# The budget sweep (compression.budget_sweep, the report's too): every method, best first, so the likeliest
# answer arrives first; measured on the shipped held-out passage (at most BUDGET_TOKENS tokens), never on the
# calibration text.
BUDGET_METHODS = comp.BUDGET_METHODS
BUDGET_TOKENS = 512
# The cost model behind this page's Spec.estimated_seconds (the task layer's one foreground/background rule):
# seconds per model parameter. Measured on a laptop CPU, one evaluation pass of a 5 M-parameter model over the
# held-out passage takes about a second and every task here is a small multiple of such passes, so the tiny
# test models (well under a million parameters) finish within a page run, while MiniLM (22 M) and SmolLM2
# (135 M), seconds to minutes, run in the background and the page draws what it has meanwhile.
SECONDS_PER_PARAM = 1.0 / 5_000_000


@dataclass(frozen=True)
class Calibration:
    """Where ASVD/SVD-LLM statistics come from: ``source`` "shipped" (assets/calibration) or "text" (the
    sidebar ``text``, cut to ``max_tokens``, exactly as it is evaluated)."""

    source: str = "shipped"
    text: str = ""
    max_tokens: int = 0

    def key(self) -> str:
        """Names the calibration data exactly (the factor store's calibration key)."""
        if self.source == "shipped":
            return comp.calibration_key_of(comp.shipped_calibration_text())
        return "text-" + comp.text_hash(f"{self.max_tokens}\n{self.text}")

    def chunks(self, loaded: LoadedModel) -> list[list[int]]:
        if self.source == "shipped":
            return comp.calibration_chunks(loaded, comp.shipped_calibration_text())
        ids, _n, _messages = tokenize(loaded, self.text, self.max_tokens)
        return [list(ids)]


# ------------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ModelSpec(tasks.Spec):
    """A compression task on one loaded model. ``n_params`` (not part of the key: it follows from the model)
    sizes ``estimated_seconds``: SECONDS_PER_PARAM per parameter."""

    LABEL: ClassVar[str] = ""  # what a watcher names the task ("": its KIND)
    model_key: ModelChoice
    n_params: int = field(default=0, compare=False, kw_only=True)

    def estimated_seconds(self) -> float:
        return self.n_params * SECONDS_PER_PARAM

    @property
    def label(self) -> str:
        return self.LABEL or self.KIND


@dataclass(frozen=True)
class StatsSpec(ModelSpec):
    """Activation statistics X^T X of the calibration data per matrix (about 330 MB for SmolLM2's MLPs: one is
    kept, in memory only), shared by the three methods' factorizations."""

    KIND: ClassVar[str] = "activation-stats"
    LABEL: ClassVar[str] = "calibration"
    MAX_FINISHED: ClassVar[int] = 1
    calibration: str = ""
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class FactorsSpec(ModelSpec):
    """One method's factors of the chosen groups, cut to the ranks that save parameters: kept on disk in the
    factor store's entry (explorer.analysis.factor_store, written by the work itself), three in memory (about
    440 MB per method for SmolLM2's MLPs: one per method, so the sweep and a method switch reuse them)."""

    KIND: ClassVar[str] = factor_store.KIND
    VERSION: ClassVar[int] = factor_store.FORMAT_VERSION
    KEEP: ClassVar[bool] = True
    RESULT: ClassVar[Any] = Factorization
    MAX_FINISHED: ClassVar[int] = 3
    fingerprint: str = ""
    method: str = "svd"
    calibration: str = ""
    kinds: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.method} factors"

    @property
    def entry(self):
        return factor_store.factor_entry(
            self.fingerprint, self.method, self.calibration, self.kinds, usable_only=True
        )

    def save(self, result: Any) -> None:
        """Nothing: the work (factor_store.cached_factorize) has already written this very entry."""


@dataclass(frozen=True)
class HeldoutSpec(ModelSpec):
    """A measurement on the held-out passage: it depends on the weights, the device, the dtype (in the model
    choice) and the passage with its token count."""

    fingerprint: str = ""
    device: str = "cpu"
    heldout: str = ""
    tokens: int = BUDGET_TOKENS


@dataclass(frozen=True)
class ReferenceSpec(ModelSpec):
    """The original model's outputs on the held-out passage (its log-probs are ~100 MB): one, in memory."""

    KIND: ClassVar[str] = "heldout-reference"
    LABEL: ClassVar[str] = "held-out reference"
    MAX_FINISHED: ClassVar[int] = 1


@dataclass(frozen=True)
class OriginalSpec(KeptOnDisk, HeldoutSpec):
    """The original model's quality on the held-out passage, what the budget is relative to (kept on disk)."""

    KIND: ClassVar[str] = "original"
    LABEL: ClassVar[str] = "the original model on the held-out passage"
    RESULT: ClassVar[Any] = comp.Quality


@dataclass(frozen=True)
class PointsSpec(HeldoutSpec):
    """Work that measures compression.Points of the chosen groups on the held-out passage, publishing each as
    it is measured (``points_so_far``); kept on disk."""

    VERSION: ClassVar[int] = 2  # 2: one point type (compression.Point) for every method
    KEEP: ClassVar[bool] = True
    RESULT: ClassVar[Any] = list[comp.Point]
    calibration: str = ""
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepSpec(PointsSpec):
    """The budget sweep (comp.budget_sweep): ``methods`` at ``shares`` of their parameters, uniform and
    greedy-allocated."""

    KIND: ClassVar[str] = "sweep"
    LABEL: ClassVar[str] = "budget sweep"
    MAX_FINISHED: ClassVar[int] = 8
    methods: tuple[str, ...] = ()
    shares: tuple[float, ...] = tuple(comp.KEPT_SHARES)


@dataclass(frozen=True)
class LatencySpec(ModelSpec):
    """Honest latency of one setting (not kept: timings belong to this machine's present load)."""

    KIND: ClassVar[str] = "latency"
    LABEL: ClassVar[str] = "latency"
    MAX_FINISHED: ClassVar[int] = 8
    method: str = "svd"
    calibration: str = ""
    kinds: tuple[str, ...] = ()
    setting: comp.RankSetting | None = None
    text: str = ""
    max_tokens: int = 0


def model_fields(model_key: ModelChoice) -> dict:
    """The fields every compression spec shares (read in the script thread: Streamlit's caches are)."""
    return {"model_key": model_key, "n_params": cached_model(model_key).card.n_params}


def heldout_fields(model_key: ModelChoice) -> dict:
    """The fields every held-out spec shares: the model's, the weights, the device and the passage."""
    return {
        **model_fields(model_key),
        "fingerprint": cached_fingerprint(model_key),
        "device": str(cached_model(model_key).device),
        "heldout": comp.text_hash(comp.heldout_text()),
        "tokens": BUDGET_TOKENS,
    }


# ------------------------------------------------------------------------------------------ factorizations


def factors_spec(
    model_key: ModelChoice, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> FactorsSpec:
    """The one spec of these factors: used to start, to peek and to wait for them."""
    return FactorsSpec(fingerprint=cached_fingerprint(model_key), method=method, calibration=calibration.key(),
                       kinds=tuple(kinds), **model_fields(model_key))  # fmt: skip


def factors_work(loaded: LoadedModel, spec: FactorsSpec, calibration: Calibration) -> Callable:
    """The work of ``spec``: the factor store's entry if another process wrote it, else the calibration
    statistics (a task of their own, shared by the three methods; run only on a miss) and the factorization.
    Takes the model from the caller: Streamlit's caches are read in the script thread, never in a worker."""
    stats_spec = StatsSpec(calibration=spec.calibration, kinds=spec.kinds, model_key=spec.model_key,
                           n_params=spec.n_params)  # fmt: skip

    def stats_work(task: tasks.Task):
        return comp.collect_activation_stats(loaded, calibration.chunks(loaded), spec.kinds, task.report)

    def work(task: tasks.Task) -> Factorization:
        def stats():  # only on a disk-cache miss: a hit needs no calibration pass
            return tasks.run(stats_spec, stats_work, progress=tasks.forward(task.report, 0.0, 0.3))

        return comp.factorize_model(loaded, spec.method, spec.kinds, None, 0, tasks.forward(task.report, 0.3, 1.0),
                                    calibration_key=spec.calibration, stats_provider=stats, usable_only=True)  # fmt: skip

    return work


def factorization_task(
    model_key: ModelChoice, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> tuple[FactorsSpec, Callable]:
    """(spec, work) of the factors of the chosen groups by ``method``, for tasks.get / task_view.watch."""
    spec = factors_spec(model_key, method, kinds, calibration)
    return spec, factors_work(cached_model(model_key), spec, calibration)


def factorization(
    model_key: ModelChoice,
    method: str,
    kinds: tuple[str, ...],
    calibration: Calibration,
    progress: Progress | None = None,
) -> Factorization:
    """Factors of the chosen groups by ``method``: from memory, from disk, or computed here (``progress``
    sees the fraction and message meanwhile)."""
    return tasks.run(*factorization_task(model_key, method, kinds, calibration), progress=progress)


def peek_factorization(
    model_key: ModelChoice, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> tasks.Task | None:
    """The factors' task if one was started (or their entry is on disk); never starts one."""
    return tasks.peek(factors_spec(model_key, method, kinds, calibration))


def has_factorization(
    model_key: ModelChoice, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> bool:
    task = peek_factorization(model_key, method, kinds, calibration)
    return task is not None and task.succeeded


# ------------------------------------------------------------------------------------ settings, measured


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_eval_set(model_key: ModelChoice, text: str, max_tokens: int) -> comp.EvalSet:
    return comp.make_eval_set(cached_model(model_key), text, max_tokens)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_reference(model_key: ModelChoice, text: str, max_tokens: int) -> comp.Reference:
    """The original model's outputs on the evaluation tokens (log-probs are ~100 MB at 512 tokens)."""
    return comp.reference(cached_model(model_key), cached_eval_set(model_key, text, max_tokens))


@dataclass(frozen=True)
class LowRank:
    """One low-rank setting on one model, what every per-setting result is keyed by: ``method``'s factors of
    ``kinds`` calibrated on ``calibration``, cut to the ranks ``rank`` chooses."""

    model_key: ModelChoice
    method: str
    kinds: tuple[str, ...]
    calibration: Calibration
    rank: comp.RankSetting

    def factors(self) -> Factorization:
        """The cached factors (from memory, from disk, or computed here)."""
        return factorization(self.model_key, self.method, self.kinds, self.calibration)

    def ranks(self) -> dict[str, int]:
        return comp.choose_ranks(self.factors(), self.rank)


def _setting(s: LowRank, text: str, max_tokens: int):
    """(model, evaluation tokens, cached factors, ranks the setting chooses): what every per-setting result
    starts from."""
    fact = s.factors()
    return (
        cached_model(s.model_key),
        cached_eval_set(s.model_key, text, max_tokens),
        fact,
        comp.choose_ranks(fact, s.rank),
    )


@st.cache_data(max_entries=64, show_spinner=False)
def cached_outcome(s: LowRank, text: str, max_tokens: int) -> comp.Outcome:
    """One setting measured: rebuild the compressed copy from cached factors and run it (no SVD here)."""
    loaded, evalset, fact, ranks = _setting(s, text, max_tokens)
    return comp.evaluate_ranks(loaded, fact, ranks, evalset, cached_reference(s.model_key, text, max_tokens))


@st.cache_data(max_entries=64, show_spinner=False)
def cached_macs(s: LowRank) -> tuple[int, int]:
    """Multiply-adds per token of the weight products, (original, compressed at the setting's ranks)."""
    loaded = cached_model(s.model_key)
    return matmul_macs(loaded, 1), matmul_macs(loaded, 1, s.ranks())


@st.cache_data(max_entries=16, show_spinner=False)
def cached_original_generation(model_key: ModelChoice, text: str, max_tokens: int, n_prompt: int, n_new: int):
    """(prompt text, the original model's greedy continuation): independent of the compression setting."""
    loaded = cached_model(model_key)
    prompt = cached_eval_set(model_key, text, max_tokens).ids[:n_prompt]
    return (
        loaded.tokenizer.decode(list(prompt), skip_special_tokens=True),
        comp.greedy_continuation(loaded, loaded.model, prompt, n_new),
    )


@st.cache_data(max_entries=32, show_spinner=False)
def cached_compressed_generation(s: LowRank, text: str, max_tokens: int, n_prompt: int, n_new: int) -> str:
    """The compressed copy's greedy continuation of the same prompt."""
    loaded, evalset, fact, ranks = _setting(s, text, max_tokens)
    compressed = comp.compressed_model(loaded, fact, ranks)
    return comp.greedy_continuation(loaded, compressed, evalset.ids[:n_prompt], n_new)


def rank_comparison(s: LowRank, share: float) -> comp.RankComparison:
    """Uniform against greedy ranks at ``share`` of break-even rank (cheap: cached factors only; the setting's
    own rank choice is not used)."""
    return comp.rank_comparison(s.factors(), share)


# ----------------------------------------------------------------------------------- the held-out passage


def budget_evalset(model_key: ModelChoice) -> comp.EvalSet:
    """The held-out passage the budget is measured on, as tokens (tokenization only)."""
    return cached_eval_set(model_key, comp.heldout_text(), BUDGET_TOKENS)


def heldout_reference(loaded: LoadedModel, model_key: ModelChoice, evalset: comp.EvalSet) -> comp.Reference:
    """The original model's outputs on the held-out passage (one forward pass), for the work that measures
    against it: one task shared by them, called from their threads (the fields are the caller's)."""
    spec = ReferenceSpec(model_key, n_params=loaded.card.n_params)
    return tasks.run(spec, lambda _task: comp.reference(loaded, evalset))


def original_task(model_key: ModelChoice) -> tuple[OriginalSpec, Callable]:
    """(spec, work) of the original model's quality on the held-out passage, what the budget is relative to:
    read from disk when a previous run measured it (a restarted server draws the budget card without a
    forward pass), else measured and kept there."""
    loaded, evalset = cached_model(model_key), budget_evalset(model_key)
    spec = OriginalSpec(**heldout_fields(model_key))
    return spec, lambda _task: heldout_reference(loaded, model_key, evalset).quality


# ----------------------------------------------------------------------------------------- the budget sweep


def ordered_methods(methods) -> tuple[str, ...]:
    return tuple(m for m in BUDGET_METHODS if m in methods)


def sweep_spec(
    model_key: ModelChoice, kinds: tuple[str, ...], calibration: Calibration, methods: tuple[str, ...]
) -> SweepSpec:
    return SweepSpec(calibration=calibration.key(), kinds=tuple(kinds), methods=ordered_methods(methods),
                     **heldout_fields(model_key))  # fmt: skip


def sweep_task(
    model_key: ModelChoice, kinds: tuple[str, ...], calibration: Calibration, methods: tuple[str, ...]
) -> tuple[SweepSpec, Callable]:
    """(spec, work) of the budget sweep (comp.budget_sweep: ``methods`` in BUDGET_METHODS order at
    comp.KEPT_SHARES of their parameters, uniform and greedy-allocated) on the held-out passage. Each point is published on the task
    (``task.partial``) as it is measured, so the page draws what it has while the rest arrives; the result is
    the list of all points."""
    loaded = cached_model(model_key)
    evalset = budget_evalset(model_key)
    spec = sweep_spec(model_key, kinds, calibration, methods)
    factors = {method: factorization_task(model_key, method, kinds, calibration) for method in spec.methods}

    def work(task: tasks.Task) -> list[comp.Point]:
        ref = heldout_reference(loaded, model_key, evalset)
        return comp.budget_sweep(loaded, spec.methods, lambda m, progress: tasks.run(*factors[m], progress=progress),
                                 evalset, ref, task.report, on_point=task.publish)  # fmt: skip

    return spec, work


def peek_sweep(model_key, kinds, calibration: Calibration, methods) -> tasks.Task | None:
    return tasks.peek(sweep_spec(model_key, kinds, calibration, methods))


def points_so_far(task: tasks.Task) -> list[comp.Point]:
    """The points a point-publishing task (the sweep, the fewer-bits comparison) has measured so far: all of
    them once it is done."""
    return list(task.result) if task.succeeded else list(task.partial)


def sweep_points(task: tasks.Task) -> list[comp.Point]:
    """The sweep's points measured so far (all of them once the task is done)."""
    return points_so_far(task)


# ------------------------------------------------------------------------------------------------ latency


def latency_spec(s: LowRank, text: str, max_tokens: int) -> LatencySpec:
    return LatencySpec(method=s.method, calibration=s.calibration.key(), kinds=tuple(s.kinds), setting=s.rank,
                       text=text, max_tokens=max_tokens, **model_fields(s.model_key))  # fmt: skip


def latency_work(s: LowRank, text: str, max_tokens: int) -> Callable:
    """The work of one setting's honest latency (explorer.analysis.latency.measure_latency: warm-up,
    interleaved runs, medians with spread, at the text's tokens and at 256). Reads the factors here, in the
    script thread."""
    loaded, evalset, fact, ranks = _setting(s, text, max_tokens)

    def work(task: tasks.Task) -> Latency:
        task.report(0.1, "Timing the original and the compressed model…")
        return measure_latency(loaded, comp.compressed_model(loaded, fact, ranks), evalset.ids, ranks)

    return work
