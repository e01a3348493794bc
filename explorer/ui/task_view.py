"""The one UI component that watches a task (explorer/tasks.py): progress, cancel, partial results as they arrive,
the rerun cadence, a cancelled task's "Start again", and the finished-while-you-were-away case.

Pages call ``watch`` with the task's spec and work; they hold no state machines, pollers or cancel bookkeeping
of their own (a person's cancel is kept by the task layer, process-wide, until someone starts the task again).

- ``wait=True``: the run blocks with a progress bar until the result is in (for a page that has nothing to show
  without it, e.g. weight spectra on a first visit), then returns it; meanwhile it is in the foreground
  (``tasks.foreground``): background work nobody waits for pauses, so a person's first chart comes first. With
  ``cancellable=True`` a Cancel button beside it (a click stops the run, the next run finds the task
  cancelled), and ``partial(items)`` draws the published partial results as they arrive (e.g. a block's
  eigenvalues before its density).
- ``wait=False``: a finished task returns its result at once; a running one draws its progress, a Cancel button
  and ``partial(items)`` (its published partial results) in a fragment that reruns every ``poll`` seconds, and
  reruns the whole page once the task is done; ``watch`` returns None meanwhile, so the page lays out what it
  has. ``redraw=True``: the whole page also reruns when partial results arrived since it drew (for a page that
  lays out the partial results itself, e.g. a budget answer that improves as sweep points come in).

A cancelled task shows ``cancelled`` (default "<label>: cancelled.") and a ``restart_label`` button that starts
it again; its partial results stay on the task (``tasks.peek(spec).partial``) for the page to keep drawing.
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
    cancellable: bool | None = None,
    poll: float = POLL_SECONDS,
    key: str | None = None,
    redraw: bool = False,
    cancel_label: str = "Cancel",
    restart_label: str = "Start again",
    cancelled: str | None = None,
) -> Any | None:
    """The result of ``spec`` (computed by ``work`` if nobody has yet), or None while it runs or after a cancel.

    ``label``: what the progress bar says is running; ``failure``: what to do when it failed (shown with the
    error, the page goes on); ``key``: widget-key stem (default: the spec's kind; buttons ``<key>_cancel`` and
    ``<key>_restart``); ``cancel_label``, ``restart_label``, ``cancelled``: the words of the buttons and of the
    note after a cancel; ``cancellable``: whether a Cancel button is drawn while it runs (default: while
    watching without waiting)."""
    key = key or f"task_{spec.KIND}"
    cancellable = not wait if cancellable is None else cancellable
    ended = {"label": label, "failure": failure, "key": key, "restart_label": restart_label,
             "cancelled": cancelled}  # fmt: skip
    task = tasks.get(spec, work)
    if task.done:
        return _finished(spec, task, work, **ended)
    if wait:
        slot, stop = st.empty(), st.empty()
        if (
            cancellable
        ):  # a click reruns the page: this run ends at its next element, the next finds it cancelled
            stop.button(cancel_label, key=f"{key}_cancel", on_click=tasks.cancel, args=(spec,),
                        icon=":material/stop:")  # fmt: skip
        seen = 0
        with (
            tasks.foreground()
        ):  # a person waits for this run: other sessions' unwatched work pauses meanwhile
            while not task.wait(0.25):
                slot.progress(task.fraction, text=f"{label}: {task.message}")
                if partial is not None and len(task.partial) > seen:
                    items = list(task.partial)
                    seen = len(items)
                    partial(items)
        slot.empty()
        stop.empty()
        return _finished(spec, task, work, **ended)
    _running(spec, label=label, partial=partial, cancellable=cancellable, poll=poll, key=key,
             seen=len(task.partial) if redraw else None, cancel_label=cancel_label)  # fmt: skip
    return None


def _finished(
    spec,
    task: tasks.Task,
    work,
    *,
    label: str,
    failure: str,
    key: str,
    restart_label: str,
    cancelled: str | None,
) -> Any | None:
    if task.succeeded:
        return task.result
    if task.cancelled:
        st.info(cancelled or f"{label}: cancelled.", icon=":material/cancel:")
        st.button(restart_label, key=f"{key}_restart", on_click=tasks.start, args=(spec, work),
                  icon=":material/play_arrow:")  # fmt: skip
        return None
    error = task.error
    detail = str(error) if isinstance(error, ExplorerError) else f"{type(error).__name__}: {error}"
    st.error(f"{failure} ({detail})", icon=":material/error:")
    return None


def _running(
    spec,
    *,
    label: str,
    partial,
    cancellable: bool,
    poll: float,
    key: str,
    seen: int | None,
    cancel_label: str,
) -> None:
    @st.fragment(run_every=poll)
    def progress() -> None:
        task = tasks.peek(spec)
        if task is None or task.done:  # finished (or dropped) since the page drew: draw the page again
            st.rerun(scope="app")
        if seen is not None and len(task.partial) != seen:  # the page lays these out: draw it again
            st.rerun(scope="app")
        st.progress(task.fraction, text=f"{label}: {task.message}")
        if cancellable:
            st.button(cancel_label, key=f"{key}_cancel", on_click=tasks.cancel, args=(spec,),
                      icon=":material/stop:")  # fmt: skip
        if partial is not None and task.partial:
            partial(list(task.partial))

    progress()
