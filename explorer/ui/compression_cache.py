"""Cached work behind the compression page, shared by every browser session.

Heavy, progress-reporting work (calibration statistics, factorizations, the budget sweep, latency) runs as
background jobs (explorer/ui/jobs.py) on bounded boards keyed by plain values (the model choice, method,
calibration hash, groups, ...): a session asking about a job never waits on a lock held by the work, and a
second session watches the same progress. Finished jobs keep their results (a few per board) and never a model.
Factors also go to disk (explorer.analysis.factor_store, cut to the ranks that save parameters), so a restarted
server reads them back instead of factoring again; so does the finished budget sweep (explorer/ui/result_store.py),
so a restarted server answers the budget without measuring. Cheap results keyed by settings (one evaluated setting, one
greedy generation) use st.cache_data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from explorer.analysis import compression as comp
from explorer.analysis.latency import Latency, matmul_macs, measure_latency
from explorer.analysis.lowrank import Factorization
from explorer.models import LoadedModel
from explorer.models.capture import tokenize
from explorer.models.choice import ModelChoice
from explorer.ui import jobs, result_store
from explorer.ui.cache import cached_fingerprint, cached_model

Progress = Callable[[float, str], None]


# Activation statistics hold X^T X per matrix (about 330 MB for SmolLM2's MLPs): keep one. Factorizations hold
# U and U^T W per matrix (about 440 MB per method for SmolLM2's MLPs): keep three, one per method, so the sweep
# and a method switch reuse them. Sweeps are small.
def _stats_board() -> jobs.JobBoard:
    return jobs.board("activation-stats", max_finished=1)


def _factors_board() -> jobs.JobBoard:
    return jobs.board("factors", max_finished=3)


def _sweep_board() -> jobs.JobBoard:
    return jobs.board("sweep", max_finished=8)


def _latency_board() -> jobs.JobBoard:
    return jobs.board("latency", max_finished=8)


# The budget sweep: every method, best first, so the likeliest answer arrives first; measured on the shipped
# held-out passage (at most BUDGET_TOKENS tokens), never on the calibration text.
BUDGET_METHODS = ("svdllm", "asvd", "svd")
BUDGET_TOKENS = 512
# Models below this many parameters measure within the page's run (seconds: the tiny test models); bigger ones
# in the background, the page drawing what it has and redrawing as results arrive.
BACKGROUND_FROM_PARAMS = 5_000_000


def _forward(job: jobs.Job, offset: float, scale: float) -> Progress:
    """A progress callback that reports into ``job``'s range [offset, offset + scale]."""
    return lambda fraction, message: job.report(offset + scale * fraction, message)


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


def in_background(loaded: LoadedModel) -> bool:
    """Whether the page measures this model's sweep, comparison and first factors in the background."""
    return loaded.card.n_params >= BACKGROUND_FROM_PARAMS


def factorization_job(
    model_key: ModelChoice, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> jobs.Job:
    """The background job computing the factors of the chosen groups by ``method``: one per (model, method,
    calibration, groups), shared by every session. Calibration statistics are a job of their own, shared by
    the three methods."""
    return _factorization_job(cached_model(model_key), model_key, method, kinds, calibration)


def _factorization_job(loaded: LoadedModel, model_key, method, kinds, calibration: Calibration) -> jobs.Job:
    # Takes the model from the caller: Streamlit's caches are read from the script thread, never from a worker.
    def stats_work(job: jobs.Job):
        return comp.collect_activation_stats(loaded, calibration.chunks(loaded), kinds, job.report)

    def work(job: jobs.Job):
        def stats():  # only on a disk-cache miss: a hit needs no calibration pass
            stats_job = _stats_board().submit(
                (model_key, calibration.key(), kinds), stats_work, "calibration"
            )
            jobs.follow(stats_job, _forward(job, 0.0, 0.3))
            return stats_job.value()

        return comp.factorize_model(
            loaded,
            method,
            kinds,
            None,
            0,
            _forward(job, 0.3, 0.7),
            calibration_key=calibration.key(),
            stats_provider=stats,
            usable_only=True,
        )

    return _factors_board().submit((model_key, method, calibration.key(), kinds), work, f"{method} factors")


def factorization(
    model_key: ModelChoice,
    method: str,
    kinds: tuple[str, ...],
    calibration: Calibration,
    progress: Progress | None = None,
) -> Factorization:
    """Factors of the chosen groups by ``method`` (waits for the job, reporting to ``progress`` meanwhile)."""
    job = factorization_job(model_key, method, kinds, calibration)
    jobs.follow(job, progress)
    return job.value()


def peek_factorization(
    model_key: ModelChoice, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> jobs.Job | None:
    """The factorization job for these arguments if one was started and kept; never starts one."""
    return _factors_board().peek((model_key, method, calibration.key(), kinds))


def has_factorization(
    model_key: ModelChoice, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> bool:
    job = peek_factorization(model_key, method, kinds, calibration)
    return job is not None and job.done


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_eval_set(model_key: ModelChoice, text: str, max_tokens: int) -> comp.EvalSet:
    return comp.make_eval_set(cached_model(model_key), text, max_tokens)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_reference(model_key: ModelChoice, text: str, max_tokens: int) -> comp.Reference:
    """The original model's outputs on the evaluation tokens (log-probs are ~100 MB at 512 tokens)."""
    return comp.reference(cached_model(model_key), cached_eval_set(model_key, text, max_tokens))


def _setting(model_key, method, kinds, calibration, setting, text, max_tokens):
    """(model, evaluation tokens, cached factors, ranks the setting chooses): what every per-setting result
    starts from."""
    loaded = cached_model(model_key)
    fact = factorization(model_key, method, kinds, calibration)
    return loaded, cached_eval_set(model_key, text, max_tokens), fact, comp.choose_ranks(fact, setting)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_outcome(
    model_key: ModelChoice,
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


@st.cache_data(max_entries=64, show_spinner=False)
def cached_macs(
    model_key: ModelChoice,
    method: str,
    kinds: tuple[str, ...],
    calibration: Calibration,
    setting: comp.RankSetting,
) -> tuple[int, int]:
    """Multiply-adds per token of the weight products, (original, compressed at the setting's ranks)."""
    loaded = cached_model(model_key)
    ranks = comp.choose_ranks(factorization(model_key, method, kinds, calibration), setting)
    return matmul_macs(loaded, 1), matmul_macs(loaded, 1, ranks)


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
def cached_compressed_generation(
    model_key: ModelChoice,
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


def _sweep_key(model_key, kinds, calibration: Calibration, methods) -> tuple:
    return (model_key, calibration.key(), kinds, tuple(methods), BUDGET_TOKENS)


def _reference_board() -> jobs.JobBoard:
    return jobs.board("heldout-reference", max_finished=1)


def budget_evalset(model_key: ModelChoice) -> comp.EvalSet:
    """The held-out passage the budget is measured on, as tokens (tokenization only)."""
    return cached_eval_set(model_key, comp.heldout_text(), BUDGET_TOKENS)


def heldout_reference(loaded: LoadedModel, model_key: ModelChoice, evalset: comp.EvalSet) -> comp.Reference:
    """The original model's outputs on the held-out passage (one forward pass; the log-probs are ~100 MB), for
    the jobs that measure against it: one job shared by them, called from their threads, never on the way to
    the page's first card."""
    job = _reference_board().submit(
        model_key, lambda _job: comp.reference(loaded, evalset), "held-out reference"
    )
    job.wait()
    return job.value()


@st.cache_resource(max_entries=4, show_spinner=False)
def budget_original(model_key: ModelChoice) -> comp.Quality:
    """The original model's quality on the held-out passage, what the budget is relative to: read from disk
    when a previous run measured it (a restarted server draws the budget card without a forward pass), else
    measured and kept there."""
    path = result_store.result_path("original", _heldout_identity(model_key))
    stored = result_store.load(path, comp.Quality)
    if stored is not None and len(stored) == 1:
        return stored[0]
    quality = heldout_reference(cached_model(model_key), model_key, budget_evalset(model_key)).quality
    result_store.save(path, [quality])
    return quality


def sweep_job(
    model_key: ModelChoice, kinds: tuple[str, ...], calibration: Calibration, methods: tuple[str, ...]
) -> jobs.Job:
    """The budget sweep (started if needed): ``methods`` (in BUDGET_METHODS order) at comp.KEPT_SHARES of
    their parameters, uniform and greedy-allocated, on the held-out passage. Each point is published on the
    job (``job.partial``) as it is measured, so the page draws what it has while the rest arrives; the job's
    value is the list of all points. One per (model, calibration, groups, methods), shared by sessions."""
    loaded = cached_model(model_key)
    evalset = budget_evalset(model_key)
    ordered = tuple(m for m in BUDGET_METHODS if m in methods)
    n = len(ordered)
    path = measured_path("sweep", model_key, kinds, calibration, methods=list(ordered),
                         shares=list(comp.KEPT_SHARES))  # fmt: skip

    def work(job: jobs.Job):
        ref = heldout_reference(loaded, model_key, evalset)
        points = []
        for i, method in enumerate(ordered):
            method_job = _factorization_job(loaded, model_key, method, kinds, calibration)
            start = i / n
            jobs.follow(method_job, _forward(job, start, 0.4 / n))
            fact = method_job.value()
            points += comp.sweep(
                loaded,
                {method: fact},
                evalset,
                ref,
                comp.KEPT_SHARES,
                _forward(job, start + 0.4 / n, 0.6 / n),
                greedy=(method,),
                on_point=job.publish,
            )
        return points

    key = _sweep_key(model_key, kinds, calibration, ordered)
    return submit_stored(_sweep_board(), key, work, "budget sweep", path, comp.SweepPoint)


def measured_path(what: str, model_key: ModelChoice, kinds, calibration: Calibration, **settings) -> Path:
    """Where a finished budget-view measurement is kept (explorer/ui/result_store.py): named by the weights,
    the device and dtype, the groups, the calibration, the held-out passage, its token count and ``settings``."""
    identity = {
        **_heldout_identity(model_key),
        "kinds": list(kinds),
        "calibration": calibration.key(),
        **settings,
    }
    return result_store.result_path(what, identity)


def _heldout_identity(model_key: ModelChoice) -> dict:
    """What every measurement on the held-out passage depends on: the weights, device, dtype and the passage."""
    return {
        "weights": cached_fingerprint(model_key),
        "device": cached_model(model_key).device,
        "dtype": model_key.dtype,
        "heldout": comp.text_hash(comp.heldout_text()),
        "tokens": BUDGET_TOKENS,
    }


def submit_stored(board: jobs.JobBoard, key, work, label: str, path: Path, cls: type) -> jobs.Job:
    """``work`` as a job on ``board`` whose finished result (a list of ``cls``) is kept at ``path``: read back
    instead of measured when it is there, written when the work finishes (a cancelled or failed job writes
    nothing). A stored result takes milliseconds to read, so the job gets a moment to finish: a restarted
    server's first run draws the stored answer instead of "still measuring"."""

    def stored_work(job: jobs.Job):
        stored = result_store.load(path, cls)
        if stored is not None:
            return stored
        result = work(job)
        result_store.save(path, result)
        return result

    job = board.submit(key, stored_work, label)
    if not job.done and path.is_file():
        job.wait(timeout=2.0)
    return job


def peek_sweep(model_key, kinds, calibration: Calibration, methods) -> jobs.Job | None:
    ordered = tuple(m for m in BUDGET_METHODS if m in methods)
    return _sweep_board().peek(_sweep_key(model_key, kinds, calibration, ordered))


def sweep_points(job: jobs.Job) -> list[comp.SweepPoint]:
    """The points measured so far (all of them once the job is done)."""
    return list(job.result) if job.done and job.error is None else list(job.partial)


def rank_comparison(
    model_key: ModelChoice, method: str, kinds: tuple[str, ...], calibration: Calibration, share: float
) -> comp.RankComparison:
    """Uniform against greedy ranks at ``share`` of break-even rank (cheap: cached factors only)."""
    return comp.rank_comparison(factorization(model_key, method, kinds, calibration), share)


def latency_job(
    model_key: ModelChoice,
    method: str,
    kinds: tuple[str, ...],
    calibration: Calibration,
    setting: comp.RankSetting,
    text: str,
    max_tokens: int,
) -> jobs.Job:
    """Honest latency of one setting (explorer.analysis.latency.measure_latency: warm-up, interleaved runs,
    medians with spread, at the text's tokens and at 256): slow, so a job started on demand."""
    loaded, evalset, fact, ranks = _setting(model_key, method, kinds, calibration, setting, text, max_tokens)

    def work(job: jobs.Job) -> Latency:
        job.report(0.1, "Timing the original and the compressed model…")
        return measure_latency(loaded, comp.compressed_model(loaded, fact, ranks), evalset.ids, ranks)

    key = (model_key, method, calibration.key(), kinds, setting, comp.text_hash(text), max_tokens)
    return _latency_board().submit(key, work, "latency")


def peek_latency(model_key, method, kinds, calibration: Calibration, setting, text, max_tokens):
    key = (model_key, method, calibration.key(), kinds, setting, comp.text_hash(text), max_tokens)
    return _latency_board().peek(key)
