"""Cached model work of the Learn walkthroughs on dynamics and models (markov, laplacian, recurrent, hessian,
lora, lipschitz), keyed by plain values. Quick results: st.cache_data; the Hessian's Lanczos run and the
LoRA fine-tune go through the task layer (explorer/tasks.py), watched with explorer.ui.task_view.watch.
Models and captures come from explorer.ui.cache and are only read (what-ifs run on copies)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
import streamlit as st

from explorer import tasks
from explorer.analysis import teaching_models as tm
from explorer.analysis.curvature import make_loss
from explorer.analysis.lora import LoraRun, finetune_lora
from explorer.models.choice import ModelChoice, TextChoice
from explorer.ui import task_view
from explorer.ui.cache import cached_capture, cached_model
from explorer.ui.session import selection

MARKOV_STEPS = 40
RECURRENT_STEPS = 40
CURVATURE_TOKENS = 32  # tokens of the text the Hessian and LoRA losses see (the curvature page uses 128)


def _head(model_key: ModelChoice, text_key: TextChoice, layer: int, head: int) -> np.ndarray:
    return cached_capture(model_key, text_key).attentions[layer, head].astype(np.float64)


@st.cache_data(max_entries=16, show_spinner=False)
def markov_on_head(
    model_key: ModelChoice, text_key: TextChoice, layer: int, head: int, damping: float
) -> tm.MarkovChain:
    return tm.markov_chain(_head(model_key, text_key, layer, head), damping, MARKOV_STEPS)


@st.cache_data(max_entries=16, show_spinner=False)
def fiedler_on_head(
    model_key: ModelChoice, text_key: TextChoice, layer: int, head: int, normalized: bool
) -> tm.FiedlerSplit:
    return tm.fiedler_split(tm.token_graph(_head(model_key, text_key, layer, head)), normalized)


@st.cache_data(max_entries=16, show_spinner=False)
def recurrent_on_head(model_key: ModelChoice, layer: int, head: int, scaled: bool) -> tm.RecurrentPowers:
    """Powers of the head's OV core C (``scaled``: C / rho(C), so only the non-normal part moves the norms)."""
    C = tm.ov_core(cached_model(model_key).model, layer, head)
    if scaled:
        rho = float(np.max(np.abs(np.linalg.eigvals(C))))
        C = C / rho if rho > 0 else C
    return tm.recurrent_powers(C, RECURRENT_STEPS)


@st.cache_data(max_entries=4, show_spinner=False)
def lipschitz_of_model(model_key: ModelChoice) -> tm.ModelLipschitz:
    return tm.model_lipschitz(cached_model(model_key).model)


# ------------------------------------------------------------------------------- tasks on the sidebar text


@dataclass(frozen=True)
class _OnTheText(tasks.Spec):
    """A Learn task on the loaded model and the sidebar text. It runs in the foreground only on the tiny
    random models (``TINY_SECONDS`` each); on a real model it takes a person's patience, so in the background."""

    MAX_FINISHED: ClassVar[int] = 8
    TINY_SECONDS: ClassVar[float]
    LABEL: ClassVar[str]  # the task's label, its {fields} filled from the spec's own
    model_key: ModelChoice
    text_key: TextChoice

    def estimated_seconds(self) -> float:
        return self.TINY_SECONDS if self.model_key.model_id.startswith("tiny-") else float("inf")

    @property
    def label(self) -> str:
        return self.LABEL.format_map(vars(self))


S = TypeVar("S", bound=_OnTheText)
R = TypeVar("R")


def watch_on_text(
    make_spec: Callable[..., S],
    work: Callable[[S], Callable[[tasks.Task], R]],
    *settings: object,
    label: str,
    failure: str,
    key: str,
) -> R | None:
    """The result of the task ``make_spec(model, text, *settings)`` on the sidebar's model and text, computed by
    ``work(spec)``; None while it runs (explorer.ui.task_view.watch draws its progress, or ``failure``)."""
    sel = selection()
    spec = make_spec(sel.model_key, sel.text_key, *settings)
    return task_view.watch(spec, work(spec), label=label, failure=failure, key=key)


# ------------------------------------------------------------------------------------ the Hessian's block


@dataclass(frozen=True)
class HessianSpec(_OnTheText):
    """lambda_max and the SLQ density of one parameter block's Hessian on the loaded model."""

    KIND: ClassVar[str] = "learn-hessian"
    TINY_SECONDS: ClassVar[float] = 0.2  # ~ (matvec + density steps) products of milliseconds each
    LABEL: ClassVar[str] = "Hessian of {block}"
    block: str
    max_matvec: int = 8
    density_steps: int = 8


def hessian_spec(model_key: ModelChoice, text_key: TextChoice, block: str) -> HessianSpec:
    return HessianSpec(model_key, text_key, block)


def hessian_work(spec: HessianSpec) -> Callable[[tasks.Task], tm.BlockCurvature]:
    """The task's work function (the task layer calls ``work(task)``)."""
    return lambda task: tm.block_curvature(
        cached_model(spec.model_key),
        spec.text_key.text,
        spec.block,
        max_tokens=CURVATURE_TOKENS,
        max_matvec=spec.max_matvec,
        density_steps=spec.density_steps,
        progress=task.report,
    )


# ------------------------------------------------------------------------------------------------- LoRA


@dataclass(frozen=True)
class LoraSpec(_OnTheText):
    """A LoRA fine-tune of the loaded model: everything its result depends on."""

    KIND: ClassVar[str] = "learn-lora"
    TINY_SECONDS: ClassVar[float] = 0.5
    LABEL: ClassVar[str] = "LoRA rank {rank}"
    rank: int
    steps: int
    lr: float
    seed: int = 0


def lora_spec(model_key: ModelChoice, text_key: TextChoice, rank: int, steps: int, lr: float) -> LoraSpec:
    return LoraSpec(model_key, text_key, int(rank), int(steps), float(lr))


def lora_work(spec: LoraSpec) -> Callable[[tasks.Task], LoraRun]:
    """The task's work function (the task layer calls ``work(task)``)."""

    def work(task: tasks.Task) -> LoraRun:
        loaded = cached_model(spec.model_key)
        loss = make_loss(loaded, spec.text_key.text, CURVATURE_TOKENS)
        return finetune_lora(
            loaded.model,
            loss,
            rank=spec.rank,
            steps=spec.steps,
            lr=spec.lr,
            seed=spec.seed,
            progress=task.report,
        )

    return work
