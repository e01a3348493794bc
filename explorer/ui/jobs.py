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

With ``EIGEN_EXPLORER_JOB_TRACE=<file>`` in the server's environment, every job's start, each new progress
message and its end are appended to that file as tab-separated lines (wall-clock seconds, thread, job, event):
the timeline of a visit, for finding what a page waited on (bench/bench_compression_browser.py prints it).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

_TRACE_PATH = os.environ.get("EIGEN_EXPLORER_JOB_TRACE")
_TRACE_LOCK = threading.Lock()


def _trace(job_name: str, event: str) -> None:
    """One line of the job timeline (see the module docstring); nothing unless the trace is switched on."""
    if not _TRACE_PATH:
        return
    line = f"{time.time():.3f}\t{threading.current_thread().name}\t{job_name}\t{event}\n"
    try:
        with _TRACE_LOCK, open(_TRACE_PATH, "a") as out:
            out.write(line)
    except OSError:  # a diagnostic: a bad path or a full disk must never fail or hang the job it traces
        pass


class Cancelled(Exception):
    """Raised inside a job's work by ``report`` after the job was cancelled."""


@dataclass(eq=False)
class Job:
    """One piece of work in a worker thread. ``fraction`` (0..1) and ``message`` are written by the work only;
    ``partial`` holds results published as they arrive (e.g. sweep points), readable while the job runs."""

    name: str
    fraction: float = 0.0
    message: str = "Starting…"
    result: Any = None
    error: BaseException | None = None
    partial: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    _cancel: threading.Event = field(default_factory=threading.Event)

    def report(self, fraction: float, message: str) -> None:
        """Progress from the work; raises Cancelled if the job was cancelled."""
        if self._cancel.is_set():
            raise Cancelled(self.name)
        if message != self.message:
            _trace(self.name, message)
        self.fraction, self.message = min(max(float(fraction), 0.0), 1.0), message

    def publish(self, item: Any) -> None:
        """Make one partial result visible to watchers (appending to a list is atomic in CPython)."""
        self.partial.append(item)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def failed(self) -> bool:
        return self.done and self.error is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finishes (True) or ``timeout`` seconds pass (False)."""
        return self._done.wait(timeout)

    def value(self):
        """The result of a finished job; re-raises its error (Cancelled for a cancelled one)."""
        if not self.done:
            raise RuntimeError(f"job {self.name!r} is still running")
        if self.error is not None:
            raise self.error
        return self.result

    def _run(self, work: Callable[[Job], Any]) -> None:
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        _trace(self.name, "started")
        try:
            self.result = work(self)
            self.fraction, self.message = 1.0, "Done"
        except BaseException as err:  # kept for the watchers; a later ask starts afresh
            self.error = err
        finally:
            self.finished = time.monotonic()
            _trace(
                self.name,
                f"finished in {self.finished - self.started:.1f} s"
                + (f" ({self.error!r})" if self.error else ""),
            )
            self._done.set()
            with _RUNNING_LOCK:
                _RUNNING.discard(self)


# Jobs whose work is running, so the process can stop them before it exits: a worker thread still inside torch
# when the interpreter finalizes aborts the process ("terminate called without an active exception", exit 134),
# which turns a finished test run or a server's clean shutdown into a crash.
_RUNNING: set[Job] = set()
_RUNNING_LOCK = threading.Lock()
EXIT_WAIT_SECONDS = 120.0


@atexit.register
def _stop_running_jobs(timeout: float = EXIT_WAIT_SECONDS) -> None:
    """Cancel every running job and wait (up to ``timeout`` seconds in all) for each to reach its next
    ``report``, where it stops."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for job in running:
        job.cancel()
    deadline = time.monotonic() + timeout
    for job in running:
        job.wait(max(0.0, deadline - time.monotonic()))


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
            if job is not None and not job.failed:
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
            return None if job is None or job.failed else job

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
