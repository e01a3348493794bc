"""The task layer: the one way long work runs, for the pages, the report CLI and the benches alike.

A task is a frozen ``Spec`` dataclass (its fields are everything the result depends on: the weights'
fingerprint or model key, the text's key, device, dtype, settings) and a work function ``work(task)`` that
computes the result, reporting progress with ``task.report(fraction, message)`` (which raises
:class:`Cancelled` once the task is cancelled, so cancelling needs no code in the work) and publishing partial
results with ``task.publish(item)``. The spec is built once, by one function, and used both to start the work and
to look for it, so the two can never disagree.

Where a result lives is decided here, not by callers:

- in memory, on one process-wide board: at most one task per spec, shared by every browser session (a second
  session asking for the same spec watches the same progress); finished tasks of one kind are bounded
  (``Spec.MAX_FINISHED``, least recently asked for dropped first; running ones are never dropped);
- on disk, for specs with ``KEEP = True``, through the one store (``explorer.store``: safetensors + JSON,
  schema-versioned by ``Spec.VERSION``, under the one cache cap); a finished result is written once and read
  back after a restart.

Foreground or background is one rule: work whose ``estimated_seconds()`` is at most FOREGROUND_SECONDS runs in
the asking thread (a page draws it in the same run), anything longer in a worker thread that the page watches.

Foreground first: a person waiting for a page outranks work nobody is waiting for. A thread inside
``foreground()`` (a page blocked until its result is in: ``explorer/ui/task_view.watch(wait=True)``) makes every
worker-thread task that no foreground thread needs pause at its next ``report`` until the foreground is empty
again (at most PAUSE_MAX_SECONDS at a time; work run in the asking thread never pauses). A task is
needed while a foreground thread, or a thread running a needed task, waits on it (``Task.wait``), so work that a
waited-for task waits on is never paused (no deadlock). One process shares the cores (torch's thread pool is
process-wide), so pausing is what frees them: another session's sweep no longer halves a page's first chart.

Cancelling is sticky: a task cancelled by a person (``cancel(spec)``) stays cancelled, and ``get`` hands back the
cancelled task instead of starting it again, until someone calls ``start(spec, work)``. A failed task is kept for
its watchers and replaced by a fresh one on the next ``get``.

With ``EIGEN_EXPLORER_JOB_TRACE=<file>`` every task's start, progress messages and end are appended to that
file as tab-separated lines (wall-clock seconds, thread, task, event): the timeline of a visit.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from explorer import store

FOREGROUND_SECONDS = 1.0  # "progress for anything over a second": longer work goes to the background
Progress = Callable[[float, str], None]

_TRACE_PATH = os.environ.get("EIGEN_EXPLORER_JOB_TRACE")
_TRACE_LOCK = threading.Lock()


def _trace(name: str, event: str) -> None:
    """One line of the task timeline (see the module docstring); nothing unless the trace is switched on."""
    if not _TRACE_PATH:
        return
    line = f"{time.time():.3f}\t{threading.current_thread().name}\t{name}\t{event}\n"
    try:
        with _TRACE_LOCK, open(_TRACE_PATH, "a") as out:
            out.write(line)
    except OSError:  # a diagnostic: a bad path or a full disk must never fail or hang the task it traces
        pass


class Cancelled(Exception):
    """Raised inside a task's work by ``report`` after the task was cancelled."""


def forward(progress: Progress | None, start: float, end: float) -> Progress:
    """A progress callback that maps a sub-step's 0..1 onto ``start..end`` of ``progress`` (the one way to nest
    progress; None: a callback that does nothing)."""

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(start + (end - start) * min(max(float(fraction), 0.0), 1.0), message)

    return report


# ------------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Spec:
    """Base of every task spec: a frozen dataclass whose fields are what the result depends on.

    Class attributes a spec sets: ``KIND`` (a short name, the store's folder), ``VERSION`` (bump when the
    result's meaning or layout changes), ``KEEP`` (write finished results to the disk store), ``RESULT`` (the
    result's type, which the store reads back by), ``MAX_FINISHED`` (finished tasks of this kind kept in memory).
    """

    KIND: ClassVar[str] = "task"
    VERSION: ClassVar[int] = 1
    KEEP: ClassVar[bool] = False
    RESULT: ClassVar[Any] = Any
    MAX_FINISHED: ClassVar[int] = 16

    def estimated_seconds(self) -> float:
        """What the work is expected to take here; unknown (inf) by default, which runs it in the background."""
        return math.inf

    @property
    def label(self) -> str:
        return self.KIND

    @property
    def entry(self) -> store.Entry:
        return store.Entry(self.KIND, self.VERSION, self)

    def load(self) -> Any | None:
        """A KEEP spec's finished result from the disk store, or None (the board calls it; a spec whose work
        writes its own entry, like the factor store's, reads it back here all the same)."""
        return store.load(self.entry, self.RESULT)

    def save(self, result: Any) -> None:
        """Keep a KEEP spec's finished result in the disk store (a spec whose work already wrote its entry
        overrides this with nothing)."""
        store.save(self.entry, result)


# ------------------------------------------------------------------------------------------------- tasks


@dataclass(eq=False)
class Task:
    """One piece of work. ``fraction`` (0..1) and ``message`` are written by the work only; ``partial`` holds
    results published as they arrive (e.g. sweep points), readable while it runs. ``from_disk``: the result was
    read from the store, not computed in this process."""

    name: str
    fraction: float = 0.0
    message: str = "Starting…"
    result: Any = None
    error: BaseException | None = None
    partial: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    from_disk: bool = False
    _done: threading.Event = field(default_factory=threading.Event)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _needed_by: int = 0  # foreground or needed threads waiting on this task now (guarded by _PRIORITY)

    @property
    def needed(self) -> bool:
        """A foreground thread (or the thread of a needed task) is waiting for this task now."""
        return self._needed_by > 0

    def report(self, fraction: float, message: str) -> None:
        """Progress from the work; raises Cancelled if the task was cancelled. Pauses here while a person waits
        for other work (see ``foreground``)."""
        if self._cancel.is_set():
            raise Cancelled(self.name)
        _yield_to_foreground(self)
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
        """Done without a result: an error, or cancelled (``cancelled`` tells which)."""
        return self.done and self.error is not None

    @property
    def succeeded(self) -> bool:
        return self.done and self.error is None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the task finishes (True) or ``timeout`` seconds pass (False). Waiting from the foreground
        or from a needed task makes this task needed meanwhile (it is not paused)."""
        if not _thread_needs_priority():
            return self._done.wait(timeout)
        with _PRIORITY:
            self._needed_by += 1
            _PRIORITY.notify_all()
        try:
            return self._done.wait(timeout)
        finally:
            with _PRIORITY:
                self._needed_by -= 1

    def value(self):
        """The result of a finished task; re-raises its error (Cancelled for a cancelled one)."""
        if not self.done:
            raise RuntimeError(f"task {self.name!r} is still running")
        if self.error is not None:
            raise self.error
        return self.result

    def _finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        if error is None:
            self.fraction, self.message = 1.0, "Done"
        self.finished = time.monotonic()
        _trace(
            self.name,
            f"finished in {self.finished - self.started:.1f} s" + (f" ({error!r})" if error else ""),
        )
        self._done.set()

    def _run(self, work: Callable[[Task], Any], after: Callable[[Any], None] | None = None) -> None:
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        _trace(self.name, "started")
        stack = _thread_tasks()
        stack.append(self)
        try:
            try:
                result = work(self)
            except BaseException as err:  # kept for the watchers; a later ask starts afresh
                self._finish(error=err)
                return
            if after is not None:
                try:
                    after(result)
                except Exception:  # keeping a copy is a convenience: never fail finished work over it
                    pass
            self._finish(result)
        finally:
            stack.pop()
            with _RUNNING_LOCK:
                _RUNNING.discard(self)


# ------------------------------------------------------------------------------------------- foreground first

_PRIORITY = threading.Condition()  # guards _foreground_threads and every Task._needed_by
_foreground_threads = 0
_LOCAL = threading.local()  # per thread: .depth (foreground sections entered), .tasks (tasks running here)
PAUSE_POLL_SECONDS = 0.25  # a paused task rechecks its cancel this often
# The longest one pause lasts: work paused while it holds a lock that the foreground then waits on (a shared
# cache's, not a task's) would otherwise never resume; with the cap it is slowed, never stuck.
PAUSE_MAX_SECONDS = 15.0


def _thread_tasks() -> list[Task]:
    if not hasattr(_LOCAL, "tasks"):
        _LOCAL.tasks = []
    return _LOCAL.tasks


def _thread_needs_priority() -> bool:
    """This thread is in the foreground, or runs (possibly nested) a task someone in the foreground needs."""
    return getattr(_LOCAL, "depth", 0) > 0 or any(task.needed for task in _thread_tasks())


@contextlib.contextmanager
def foreground() -> Iterator[None]:
    """A person is waiting for what this thread does now: work nobody in the foreground needs pauses meanwhile
    (at its next ``report``). Re-entrant; leaving the outermost section wakes the paused work."""
    global _foreground_threads
    depth = getattr(_LOCAL, "depth", 0)
    _LOCAL.depth = depth + 1
    if depth == 0:
        with _PRIORITY:
            _foreground_threads += 1
    try:
        yield
    finally:
        _LOCAL.depth = depth
        if depth == 0:
            with _PRIORITY:
                _foreground_threads -= 1
                _PRIORITY.notify_all()


def foreground_active() -> bool:
    """Some thread is inside ``foreground()`` now."""
    return _foreground_threads > 0


def _yield_to_foreground(task: Task) -> None:
    """Block ``task``'s work while a person waits for other work; wake when the foreground empties, when the
    task becomes needed, after PAUSE_MAX_SECONDS, or to raise Cancelled once it is cancelled. Only work in the
    layer's own worker threads pauses: work run in the asking thread (a page's script, the CLI) is what someone
    is waiting for."""
    if not getattr(_LOCAL, "worker", False) or _foreground_threads == 0 or _thread_needs_priority():
        return
    paused = time.monotonic()
    _trace(task.name, "paused for the foreground")
    with _PRIORITY:
        while (
            _foreground_threads > 0
            and not _thread_needs_priority()
            and not task.cancelled
            and time.monotonic() - paused < PAUSE_MAX_SECONDS
        ):
            _PRIORITY.wait(PAUSE_POLL_SECONDS)
    _trace(task.name, f"resumed after {time.monotonic() - paused:.1f} s")
    if task.cancelled:
        raise Cancelled(task.name)


def _in_worker(task: Task, work: Callable[[Task], Any], after: Callable[[Any], None] | None) -> None:
    """A worker thread's body: marks the thread as the layer's (its work may pause for the foreground)."""
    _LOCAL.worker = True
    task._run(work, after)


def finished_task(name: str, result: Any, *, from_disk: bool = False) -> Task:
    """A task that is already done with ``result`` (read from the store, or computed in the foreground)."""
    task = Task(name, from_disk=from_disk)
    task._finish(result)
    return task


# Tasks whose work is running, so the process can stop them before it exits: a worker thread still inside torch
# when the interpreter finalizes aborts the process ("terminate called without an active exception", exit 134).
_RUNNING: set[Task] = set()
_RUNNING_LOCK = threading.Lock()
EXIT_WAIT_SECONDS = 120.0


@atexit.register
def _stop_running_tasks(timeout: float = EXIT_WAIT_SECONDS) -> None:
    """Cancel every running task and wait (up to ``timeout`` seconds in all) for each to reach its next
    ``report``, where it stops."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for task in running:
        task.cancel()
    deadline = time.monotonic() + timeout
    for task in running:
        task.wait(max(0.0, deadline - time.monotonic()))


# ------------------------------------------------------------------------------------------------- board


def _broken(task: Task) -> bool:
    """Failed by an error of its own (not cancelled): kept for its watchers, replaced on the next ask."""
    return task.failed and not task.cancelled


class Board:
    """At most one task per spec, process-wide. The lock guards only the dictionaries, never the work, so
    asking about a task never waits for it."""

    def __init__(self) -> None:
        self._tasks: OrderedDict[Spec, Task] = OrderedDict()
        self._stopped: set[Spec] = set()  # cancelled by a person: not restarted until start()
        self._lock = threading.Lock()

    def peek(self, spec: Spec) -> Task | None:
        """The task for ``spec`` in memory, or its result from the disk store as a finished task; never starts
        work. A failed task is not returned (the next ``get`` replaces it)."""
        with self._lock:
            task = self._tasks.get(spec)
            if task is not None and not _broken(task):
                self._tasks.move_to_end(spec)
                return task
        return self._from_disk(spec)

    def get(self, spec: Spec, work: Callable[[Task], Any], *, background: bool | None = None) -> Task:
        """The task for ``spec``: the running, finished or person-cancelled one, the stored result, or new work
        started now (in this thread when ``spec.estimated_seconds()`` <= FOREGROUND_SECONDS, else in a worker;
        ``background`` overrides the rule)."""
        found = self.peek(spec)
        # A cancel that came after the work's last report leaves a good result: keep it.
        if found is not None and (found.succeeded or not found.cancelled or spec in self._stopped):
            return found
        return self._start(spec, work, background)

    def start(self, spec: Spec, work: Callable[[Task], Any], *, background: bool | None = None) -> Task:
        """Start ``spec`` again after a person cancelled it (or return its running or finished task)."""
        with self._lock:
            self._stopped.discard(spec)
        return self.get(spec, work, background=background)

    def cancel(self, spec: Spec) -> None:
        """A person cancels ``spec``: its work stops at its next report, and it stays cancelled until start()."""
        with self._lock:
            self._stopped.add(spec)
            task = self._tasks.get(spec)
        if task is not None and not task.done:
            task.cancel()

    def stopped(self, spec: Spec) -> bool:
        with self._lock:
            return spec in self._stopped

    def forget(self, spec: Spec) -> None:
        """Drop ``spec``'s task from memory (its disk entry stays)."""
        with self._lock:
            self._tasks.pop(spec, None)
            self._stopped.discard(spec)

    def _from_disk(self, spec: Spec) -> Task | None:
        if not spec.KEEP:
            return None
        result = spec.load()
        if result is None:
            return None
        task = finished_task(spec.label, result, from_disk=True)
        with self._lock:
            current = self._tasks.get(spec)
            if current is not None and not _broken(current):  # someone started it meanwhile
                return current
            self._tasks[spec] = task
            self._evict(type(spec))
        return task

    def _start(self, spec: Spec, work: Callable[[Task], Any], background: bool | None) -> Task:
        with self._lock:
            current = self._tasks.get(spec)
            # Another session started it meanwhile; a cancelled task still winding down is not reused.
            if current is not None and not current.done and not current.cancelled:
                return current
            task = Task(spec.label)
            self._tasks[spec] = task
            self._evict(type(spec))
        after = spec.save if spec.KEEP else None
        if background is None:
            background = spec.estimated_seconds() > FOREGROUND_SECONDS
        if background:
            threading.Thread(
                target=_in_worker, args=(task, work, after), name=f"task-{spec.KIND}", daemon=True
            ).start()
        else:
            task._run(work, after)
        return task

    def _evict(self, kind: type) -> None:
        finished = [
            s for s, t in self._tasks.items() if type(s) is kind and t.done and s not in self._stopped
        ]
        for spec in finished[: max(0, len(finished) - kind.MAX_FINISHED)]:
            del self._tasks[spec]

    def clear(self) -> None:
        """Forget every task in memory and every person's cancel (the disk store stays), as a restarted server
        starts. Running work goes on in its thread, watched by nobody."""
        with self._lock:
            self._tasks.clear()
            self._stopped.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)


BOARD = Board()  # the process's one board: every session, the report CLI and the benches share it


def peek(spec: Spec) -> Task | None:
    return BOARD.peek(spec)


def get(spec: Spec, work: Callable[[Task], Any], *, background: bool | None = None) -> Task:
    return BOARD.get(spec, work, background=background)


def start(spec: Spec, work: Callable[[Task], Any], *, background: bool | None = None) -> Task:
    return BOARD.start(spec, work, background=background)


def cancel(spec: Spec) -> None:
    BOARD.cancel(spec)


def stopped(spec: Spec) -> bool:
    return BOARD.stopped(spec)


def clear() -> None:
    BOARD.clear()


def run(spec: Spec, work: Callable[[Task], Any], *, progress: Progress | None = None) -> Any:
    """The result of ``spec``, waiting for it here (the report CLI and the benches): stored results are read,
    running work is joined, new work runs in this thread; ``progress`` sees the fraction and message."""
    task = BOARD.peek(spec)
    if task is None or task.cancelled:
        task = BOARD.start(spec, _reporting(work, progress), background=False)
    while not task.wait(0.25):
        if progress is not None:
            progress(task.fraction, task.message)
    return task.value()


def _reporting(work: Callable[[Task], Any], progress: Progress | None) -> Callable[[Task], Any]:
    if progress is None:
        return work

    def wrapped(task: Task) -> Any:
        original = task.report

        def report(fraction: float, message: str) -> None:
            original(fraction, message)
            progress(task.fraction, task.message)

        task.report = report  # type: ignore[method-assign]
        return work(task)

    return wrapped
