"""Background jobs with progress, shared by every browser session: the one way the app runs long work.

A job is keyed by plain values (what the result depends on). The first session to ask starts it in a worker
thread; a second session that asks for the same key gets the same job and watches the same progress; a later
visit finds it finished. The board's lock guards only its dictionary, never the work, so asking about a job
never waits for a factorization. Work reports progress through ``job.report(fraction, message)``, which raises
:class:`Cancelled` once someone cancels the job, so cancellation needs no extra code in the work itself.

Why not ``st.cache_*`` around the work: Streamlit replays the elements a cached function draws, so a progress
bar cannot be drawn from inside one, and a second session would wait on the cache's lock with no progress.

Boards are bounded: each keeps at most ``max_finished`` finished jobs (least recently asked for are dropped
first; running jobs are never dropped). Failed or cancelled jobs are replaced by a fresh one on the next ask.

A job is an ``explorer.tasks.Task`` (the task layer's one task type: its progress, cancel, trace and clean exit).
New work goes through ``explorer.tasks`` directly (specs, the disk store, sticky cancel); these named boards
remain for the pages that have not moved to it yet.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import streamlit as st

from explorer.tasks import Cancelled, Task

Job = Task  # one task type: a job is a task on a named board
__all__ = ["Cancelled", "Job", "JobBoard", "board", "follow", "result_with_progress"]


def _replaceable(job: Job | None) -> bool:
    """Failed or cancelled: the next ask starts afresh."""
    return job is None or (job.done and job.error is not None)


class JobBoard:
    """At most one job per key, process-wide; keeps at most ``max_finished`` finished jobs."""

    def __init__(self, name: str, max_finished: int):
        self.name = name
        self.max_finished = max_finished
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, key: Hashable, work: Callable[[Job], Any], label: str | None = None) -> Job:
        """The job for ``key``: the running or finished one, or a new one started now in a worker thread."""
        with self._lock:
            job = self._jobs.get(key)
            if not _replaceable(job):
                self._jobs.move_to_end(key)
                return job
            job = Job(label or self.name)
            self._jobs[key] = job
            self._evict()
        threading.Thread(target=job._run, args=(work,), name=f"job-{self.name}", daemon=True).start()
        return job

    def peek(self, key: Hashable) -> Job | None:
        """The job for ``key`` if one was started and has not failed or been dropped; never starts one."""
        with self._lock:
            job = self._jobs.get(key)
            return None if _replaceable(job) else job

    def _evict(self) -> None:
        finished = [key for key, job in self._jobs.items() if job.done]
        for key in finished[: max(0, len(finished) - self.max_finished)]:
            del self._jobs[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)


@st.cache_resource(show_spinner=False)
def _boards() -> dict[str, JobBoard]:
    return {}


def board(name: str, max_finished: int) -> JobBoard:
    """The process-wide board ``name`` (created on first use; st.cache_resource so "Clear cache" empties it)."""
    boards = _boards()
    if name not in boards:
        boards.setdefault(name, JobBoard(name, max_finished))
    return boards[name]


def follow(job: Job, on_progress: Callable[[float, str], None] | None, poll_seconds: float = 0.25) -> None:
    """Wait until ``job`` is done, calling ``on_progress(fraction, message)`` meanwhile from the caller's thread."""
    while not job.wait(poll_seconds):
        if on_progress is not None:
            on_progress(job.fraction, job.message)


def result_with_progress(job: Job, label: str, *, failure: str) -> Any:
    """Draw a progress bar while ``job`` runs, then return its result; on failure show ``failure`` (what to do)
    with the error and stop the page."""
    if not job.done:
        slot = st.empty()
        follow(job, lambda fraction, message: slot.progress(fraction, text=f"{label}: {message}"))
        slot.empty()
    if job.error is not None:
        st.error(f"{failure} ({type(job.error).__name__}: {job.error})", icon=":material/error:")
        st.stop()
    return job.result
