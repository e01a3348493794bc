"""Cached wrappers around loading and capture, shared by every browser session.

Models: st.cache_resource (one copy per process; never mutate it). Captures: tasks on the process-wide task board
(explorer/tasks.py), so a long text is captured in the background with progress per layer and a Cancel button,
and every session asking for the same text shares one capture (read-only arrays; a long capture's attention is a
LazyAttentions that recomputes a layer on demand). Both are keyed by the frozen choices of
explorer.models.choice (the sidebar's Selection builds them).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import explorer.analysis.export  # noqa: F401 (registers the reader of exported compression decisions with load_model)
from explorer import tasks
from explorer.analysis.attention_long import CaptureCost, capture_with_grid, estimate_capture_cost
from explorer.analysis.weights import model_fingerprint
from explorer.models import Capture, LoadedModel
from explorer.models.capture import tokenize
from explorer.models.choice import ModelChoice, TextChoice


@st.cache_resource(max_entries=3, show_spinner=False)
def cached_model(model_key: ModelChoice) -> LoadedModel:
    return model_key.load()


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_fingerprint(model_key: ModelChoice) -> str:
    """The loaded weights' fingerprint (explorer.analysis.weights.model_fingerprint): what disk caches are keyed
    by, so a changed weight is a cache miss."""
    return model_fingerprint(cached_model(model_key).model)


@dataclass(frozen=True)
class CaptureSpec(tasks.Spec):
    """One text through one model (explorer.analysis.attention_long.capture_with_grid). ``n_tokens`` and
    ``cost`` only set the time estimate and the words of the progress bar."""

    KIND = "capture"
    # Finished captures kept: at 512 tokens on SmolLM2 one holds 283 MB of attention; a long one holds its hidden
    # states and block inputs (1.2 GB at 8,192 tokens; its recomputed layers live in one process-wide cache).
    MAX_FINISHED = 6

    model_key: ModelChoice
    text_key: TextChoice
    n_tokens: int
    cost: CaptureCost

    def estimated_seconds(self) -> float:
        return self.cost.seconds

    @property
    def label(self) -> str:
        return f"capture of {self.n_tokens} tokens"


def _work(spec: CaptureSpec, task: tasks.Task) -> Capture:
    cap, _grid = capture_with_grid(
        cached_model(spec.model_key), spec.text_key.text, spec.text_key.max_tokens, progress=task.report
    )
    return cap


@st.cache_data(max_entries=64, show_spinner=False)
def _n_tokens(model_key: ModelChoice, text_key: TextChoice) -> int:
    """Tokens the capture will have (the text cut to the limit); raises InputError for an unusable text."""
    return len(tokenize(cached_model(model_key), text_key.text, text_key.max_tokens)[0])


def capture_spec(model_key: ModelChoice, text_key: TextChoice) -> CaptureSpec:
    """The one place a capture spec is built (to start the work and to look for it)."""
    n = _n_tokens(model_key, text_key)
    return CaptureSpec(model_key, text_key, n, estimate_capture_cost(cached_model(model_key), n))


def capture_cost(model_key: ModelChoice, n_tokens: int) -> CaptureCost:
    """What capturing ``n_tokens`` would cost on this model (an estimate, for the sidebar)."""
    return estimate_capture_cost(cached_model(model_key), n_tokens)


def cached_capture(model_key: ModelChoice, text_key: TextChoice) -> Capture:
    """The capture of the text: at once when it is done (or quick: it then runs in this run), else a progress
    bar per layer with a Cancel button until it is. Errors (an unusable text, NaN) are raised as the capture
    raised them; after a cancel the page stops under the note and its "Start again" button."""
    spec = capture_spec(model_key, text_key)
    task = tasks.get(spec, lambda task: _work(spec, task))
    if not task.done:
        from explorer.ui import task_view  # here: task_view is only needed for a long capture

        with st.container():
            st.caption(f"Capturing this text: {spec.cost.describe()}.")
            result = task_view.watch(
                spec,
                lambda task: _work(spec, task),
                label=f"Running {model_key.model_id} on {spec.n_tokens:,} tokens",
                failure="The capture failed; try a shorter text.",
                wait=True,
                cancellable=True,
                key="capture_task",
            )
        if result is not None:
            return result
        task = tasks.peek(spec) or task
    if task.succeeded:
        return task.result
    if task.failed and not task.cancelled:
        raise task.error
    if task.cancelled and task.done:
        from explorer.ui import task_view

        # Draws the cancelled note and its "Start again" button.
        task_view.watch(spec, lambda task: _work(spec, task), label="The capture", failure="", wait=True,
                        key="capture_task")  # fmt: skip
    st.stop()
