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
from explorer.spectra.quantization import INT4_SCHEMES, INT8, QuantScheme
from explorer.ui import compression_cache as cc
from explorer.ui import jobs
from explorer.ui.cache import cached_model

SCHEMES = (INT8, *INT4_SCHEMES)
RESIDUAL_SCHEME = QuantScheme(4, 32)
RESIDUAL_SHARES = (
    0.1,
    0.25,
)  # of the dense parameters kept as fp16 top directions, on top of the 4-bit residual
FACTOR_SHARES = (0.95, 0.8, 0.5)  # SVD-LLM at these shares of break-even rank, each factor in int8


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
    plan = len(SCHEMES) + len(RESIDUAL_SHARES) + len(FACTOR_SHARES)
    path = cc.measured_path("fewer-bits", model_key, kinds, calibration,
                            schemes=[s.name for s in SCHEMES], residual=[RESIDUAL_SCHEME.name, *RESIDUAL_SHARES],
                            factor_shares=list(FACTOR_SHARES), layout="recipe")  # fmt: skip

    def work(job: jobs.Job):
        ref = cc.heldout_reference(loaded, model_key, evalset)
        points, step = [], 0

        def add(point: qz.TradeoffPoint):
            nonlocal step
            points.append(point)
            job.publish(point)
            step += 1

        for scheme in SCHEMES:
            job.report(step / plan, f"{qz.series_name(scheme)}")
            add(qz.tradeoff_point(loaded, qz.quantize_weights(loaded, kinds, scheme, evalset, ref), scheme))
        for share in RESIDUAL_SHARES:
            job.report(step / plan, f"top directions ({share:.0%}) + 4-bit residual")
            out = qz.residual_split_weights(loaded, kinds, RESIDUAL_SCHEME, evalset, ref, share=share)
            recipe = qz.Recipe("residual", "svd", share, "uniform", RESIDUAL_SCHEME.name)
            add(qz.TradeoffPoint("top directions fp16 + 4-bit residual", f"{out.method}, {share:.0%} at fp16",
                                 out.bytes_model, out.after, recipe=recipe))  # fmt: skip
        factor_job = cc.factorization_job(model_key, "svdllm", kinds, calibration)
        jobs.follow(factor_job, None)
        fact = factor_job.value()
        for share in FACTOR_SHARES:
            job.report(step / plan, f"SVD-LLM factors at {share:.0%}, in int8")
            ranks = comp.choose_ranks(fact, comp.RankSetting(mode="share", share=share))
            out = qz.quantize_factored_weights(loaded, fact, ranks, INT8, evalset, ref)
            recipe = qz.Recipe("factors", "svdllm", share, "uniform", INT8.name)
            add(qz.TradeoffPoint("SVD-LLM factors in int8", f"SVD-LLM {share:.0%} of break-even, int8 factors",
                                 out.bytes_model, out.after, recipe=recipe))  # fmt: skip
        return points

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
