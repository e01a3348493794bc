"""Background work behind the compression page's "fewer bits" comparison and its healing action, shared by every
browser session (explorer/ui/jobs.py boards, keyed by plain values).

The comparison measures, on the same held-out passage and groups as the budget sweep: int8 per row, 4-bit in
groups of 32/64/128 (symmetric and with an offset), the top singular directions at fp16 with a 4-bit residual,
and SVD-LLM factors in int8, each point published as it is measured. Healing fine-tunes one low-rank setting's
factors on a copy. Neither touches the cached model. A finished comparison is kept on disk (explorer/ui/result_store.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from explorer.analysis import compression as comp
from explorer.analysis import healing
from explorer.analysis import quantize as qz
from explorer.models.choice import ModelChoice
from explorer.ui import compression_cache as cc
from explorer.ui import jobs
from explorer.ui.cache import cached_model


@dataclass(frozen=True)
class Healed:
    """A finished healing: its run and the healed copy (its own factors; every other tensor shared with the
    cached model, which it never changes). The board keeps a few (max_finished)."""

    run: healing.HealingRun
    model: torch.nn.Module


def _quant_board() -> jobs.JobBoard:
    return jobs.board("quantization", max_finished=4)


def _heal_board() -> jobs.JobBoard:
    return jobs.board("healing", max_finished=4)


def comparison_job(model_key: ModelChoice, kinds: tuple[str, ...], calibration: cc.Calibration) -> jobs.Job:
    """The fewer-bits comparison for these groups (started if needed); ``job.partial`` holds TradeoffPoints."""
    loaded = cached_model(model_key)
    evalset = cc.budget_evalset(model_key)
    path = cc.measured_path("fewer-bits", model_key, kinds, calibration,
                            schemes=[s.name for s in qz.FEWER_BITS_SCHEMES],
                            residual=[qz.RESIDUAL_SCHEME.name, *qz.RESIDUAL_SHARES],
                            factor_shares=list(qz.FACTOR_SHARES), layout="recipe")  # fmt: skip

    def work(job: jobs.Job):
        ref = cc.heldout_reference(loaded, model_key, evalset)

        def svdllm():
            factor_job = cc.factorization_job(model_key, "svdllm", kinds, calibration)
            jobs.follow(factor_job, None)
            return factor_job.value()

        return qz.fewer_bits_points(
            loaded, kinds, evalset, ref, svdllm, progress=job.report, publish=job.publish
        )

    key = (model_key, kinds, calibration.key(), cc.BUDGET_TOKENS)
    return cc.submit_stored(_quant_board(), key, work, "fewer bits", path, qz.TradeoffPoint)


def peek_comparison(model_key: ModelChoice, kinds, calibration: cc.Calibration) -> jobs.Job | None:
    return _quant_board().peek((model_key, kinds, calibration.key(), cc.BUDGET_TOKENS))


def comparison_points(job: jobs.Job) -> list[qz.TradeoffPoint]:
    return list(job.result) if job.done and job.error is None else list(job.partial)


def healing_job(
    model_key: ModelChoice,
    method: str,
    kinds: tuple[str, ...],
    calibration: cc.Calibration,
    setting: comp.RankSetting,
    steps: int,
    lr: float,
) -> jobs.Job:
    """Heal the factors of one setting (``steps`` Adam steps of size ``lr`` on the calibration text); the job's
    value is a Healed: the HealingRun (quality on the held-out passage before and after) and the healed copy."""
    loaded = cached_model(model_key)
    evalset = cc.budget_evalset(model_key)
    fact = cc.factorization(model_key, method, kinds, calibration)
    ranks = comp.choose_ranks(fact, setting)
    text = comp.shipped_calibration_text()

    def work(job: jobs.Job):
        ref = cc.heldout_reference(loaded, model_key, evalset)
        run, model = healing.heal(
            loaded, fact, ranks, text, evalset, ref, steps=steps, lr=lr, progress=job.report
        )
        return Healed(run, model)

    key = (model_key, method, kinds, calibration.key(), setting, steps, lr)
    return _heal_board().submit(key, work, "healing")


def peek_healing(model_key, method, kinds, calibration, setting, steps, lr) -> jobs.Job | None:
    return _heal_board().peek((model_key, method, kinds, calibration.key(), setting, steps, lr))


# ---------------------------------------------------------------- one setting of the free controls, measured
# Keyed like cc.cached_outcome: plain values, the scheme by its name. Each measures the same way the comparison
# job does (same analysis function, same evaluation tokens), so a budget row and the free result agree.


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
def cached_factor_bits_outcome(
    model_key: ModelChoice,
    method: str,
    kinds: tuple[str, ...],
    calibration: cc.Calibration,
    setting: comp.RankSetting,
    scheme: str,
    text: str,
    max_tokens: int,
) -> qz.QuantOutcome:
    """The low-rank factors of ``setting``'s ranks, each factor quantized with the scheme named ``scheme``."""
    loaded = cached_model(model_key)
    fact = cc.factorization(model_key, method, kinds, calibration)
    ranks = comp.choose_ranks(fact, setting)
    evalset = cc.cached_eval_set(model_key, text, max_tokens)
    ref = cc.cached_reference(model_key, text, max_tokens)
    return qz.quantize_factored_weights(loaded, fact, ranks, qz.scheme_named(scheme), evalset, ref)


def finished_healing(model_key, method, kinds, calibration, setting, steps, lr) -> Healed | None:
    """The finished healing of this setting (None when not run, running, failed or cancelled)."""
    job = peek_healing(model_key, method, kinds, calibration, setting, steps, lr)
    return job.result if job is not None and job.done and job.error is None else None


def healed_quality(model_key, method, kinds, calibration, setting, steps, lr, text, max_tokens):
    """The healed copy of this setting measured again on (text, max_tokens): a Quality, or None without a
    finished healing."""
    if finished_healing(model_key, method, kinds, calibration, setting, steps, lr) is None:
        return None
    return _cached_healed_quality(model_key, method, kinds, calibration, setting, steps, lr, text, max_tokens)


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_healed_quality(
    model_key: ModelChoice,
    method: str,
    kinds: tuple[str, ...],
    calibration: cc.Calibration,
    setting: comp.RankSetting,
    steps: int,
    lr: float,
    text: str,
    max_tokens: int,
) -> comp.Quality:
    healed = finished_healing(model_key, method, kinds, calibration, setting, steps, lr)
    loaded = cached_model(model_key)
    evalset = cc.cached_eval_set(model_key, text, max_tokens)
    return comp.evaluate(loaded, healed.model, evalset, cc.cached_reference(model_key, text, max_tokens))
