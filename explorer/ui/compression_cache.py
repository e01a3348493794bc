"""Cached work behind the compression page, shared by every browser session.

Heavy, progress-reporting work (calibration statistics, factorizations, the Pareto sweep) runs as background
jobs (explorer/ui/jobs.py) on bounded boards keyed by plain values (model key tuple, method, calibration hash,
groups, ...): a session asking about a job never waits on a lock held by the work, and a second session
watches the same progress. Finished jobs keep their results (a few per board) and never a model. Cheap results keyed by
settings (one evaluated setting, one greedy generation) use st.cache_data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from explorer.analysis import compression as comp
from explorer.analysis.lowrank import METHODS, Factorization
from explorer.models import LoadedModel
from explorer.models.capture import tokenize
from explorer.ui import jobs
from explorer.ui.cache import cached_model

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
        if self.source == "shipped":
            return comp.text_hash(comp.shipped_calibration_text())
        return comp.text_hash(f"{self.max_tokens}\n{self.text}")

    def chunks(self, loaded: LoadedModel) -> list[list[int]]:
        if self.source == "shipped":
            return comp.calibration_chunks(loaded, comp.shipped_calibration_text())
        ids, _n, _messages = tokenize(loaded, self.text, self.max_tokens)
        return [list(ids)]


def factorization_job(
    model_key: tuple, method: str, kinds: tuple[str, ...], calibration: Calibration
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
        stats_job = _stats_board().submit((model_key, calibration.key(), kinds), stats_work, "calibration")
        jobs.follow(stats_job, _forward(job, 0.0, 0.3))
        stats, n_tokens = stats_job.value()
        return comp.factorize_model(loaded, method, kinds, stats, n_tokens, _forward(job, 0.3, 0.7))

    return _factors_board().submit((model_key, method, calibration.key(), kinds), work, f"{method} factors")


def factorization(
    model_key: tuple,
    method: str,
    kinds: tuple[str, ...],
    calibration: Calibration,
    progress: Progress | None = None,
) -> Factorization:
    """Factors of the chosen groups by ``method`` (waits for the job, reporting to ``progress`` meanwhile)."""
    job = factorization_job(model_key, method, kinds, calibration)
    jobs.follow(job, progress)
    return job.value()


def has_factorization(
    model_key: tuple, method: str, kinds: tuple[str, ...], calibration: Calibration
) -> bool:
    job = _factors_board().peek((model_key, method, calibration.key(), kinds))
    return job is not None and job.done


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_eval_set(model_key: tuple, text: str, max_tokens: int) -> comp.EvalSet:
    return comp.make_eval_set(cached_model(model_key), text, max_tokens)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_reference(model_key: tuple, text: str, max_tokens: int) -> comp.Reference:
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
    loaded = cached_model(model_key)
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
    loaded = cached_model(model_key)
    evalset = cached_eval_set(model_key, text, max_tokens)
    ref = cached_reference(model_key, text, max_tokens)
    n = len(METHODS)

    def work(job: jobs.Job):
        facts = {}
        for i, method in enumerate(METHODS):
            method_job = _factorization_job(loaded, model_key, method, kinds, calibration)
            jobs.follow(method_job, _forward(job, 0.6 * i / n, 0.6 / n))
            facts[method] = method_job.value()
        return comp.sweep(loaded, facts, evalset, ref, shares, _forward(job, 0.6, 0.4))

    job = _sweep_board().submit(
        _sweep_key(model_key, kinds, calibration, text, max_tokens, shares), work, "sweep"
    )
    jobs.follow(job, progress)
    return job.value()


def has_sweep(model_key, kinds, calibration: Calibration, text, max_tokens, shares=comp.SWEEP_SHARES) -> bool:
    job = _sweep_board().peek(_sweep_key(model_key, kinds, calibration, text, max_tokens, shares))
    return job is not None and job.done
