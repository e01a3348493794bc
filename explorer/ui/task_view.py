"""The one UI component that watches a task (explorer/tasks.py): progress, cancel, partial results as they arrive,
the rerun cadence, a cancelled task's "Start again", and the finished-while-you-were-away case.

Pages call ``watch`` with the task's spec and work; they hold no state machines, pollers or cancel bookkeeping
of their own (a person's cancel is kept by the task layer, process-wide, until someone starts the task again).

- ``wait=True``: the run blocks with a progress bar until the result is in (for a page that has nothing to show
  without it, e.g. weight spectra on a first visit), then returns it.
- ``wait=False``: a finished task returns its result at once; a running one draws its progress, a Cancel button
  and ``partial(items)`` (its published partial results) in a fragment that reruns every ``poll`` seconds, and
  reruns the whole page once the task is done; ``watch`` returns None meanwhile, so the page lays out what it
  has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from explorer import tasks
from explorer.errors import ExplorerError

POLL_SECONDS = 1.0


def watch(
    spec: tasks.Spec,
    work: Callable[[tasks.Task], Any],
    *,
    label: str,
    failure: str,
    wait: bool = False,
    partial: Callable[[list], None] | None = None,
    cancellable: bool = True,
    poll: float = POLL_SECONDS,
    key: str | None = None,
) -> Any | None:
    """The result of ``spec`` (computed by ``work`` if nobody has yet), or None while it runs or after a cancel.

    ``label``: what the progress bar says is running; ``failure``: what to do when it failed (shown with the
    error, the page goes on); ``key``: widget-key stem (default: the spec's kind)."""
    key = key or f"task_{spec.KIND}"
    task = tasks.get(spec, work)
    if task.done:
        return _finished(spec, task, work, label=label, failure=failure, key=key)
    if wait:
        slot = st.empty()
        while not task.wait(0.25):
            slot.progress(task.fraction, text=f"{label}: {task.message}")
        slot.empty()
        return _finished(spec, task, work, label=label, failure=failure, key=key)
    _running(spec, label=label, partial=partial, cancellable=cancellable, poll=poll, key=key)
    return None


def _finished(spec, task: tasks.Task, work, *, label: str, failure: str, key: str) -> Any | None:
    if task.succeeded:
        return task.result
    if task.cancelled:
        st.info(f"{label}: cancelled.", icon=":material/cancel:")
        st.button("Start again", key=f"{key}_restart", on_click=tasks.start, args=(spec, work))
        return None
    error = task.error
    detail = str(error) if isinstance(error, ExplorerError) else f"{type(error).__name__}: {error}"
    st.error(f"{failure} ({detail})", icon=":material/error:")
    return None


def _running(spec, *, label: str, partial, cancellable: bool, poll: float, key: str) -> None:
    @st.fragment(run_every=poll)
    def progress() -> None:
        task = tasks.peek(spec)
        if task is None or task.done:  # finished (or dropped) since the page drew: draw the page again
            st.rerun(scope="app")
        st.progress(task.fraction, text=f"{label}: {task.message}")
        if cancellable:
            st.button("Cancel", key=f"{key}_cancel", on_click=tasks.cancel, args=(spec,))
        if partial is not None and task.partial:
            partial(list(task.partial))

    progress()
