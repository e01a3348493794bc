"""The task layer (explorer/tasks.py): one task per spec, the store behind KEEP specs, sticky cancel, the
foreground rule, progress forwarding."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from explorer import store, tasks


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(store.CAP_ENV, raising=False)
    board = tasks.Board()
    monkeypatch.setattr(tasks, "BOARD", board)
    return board


@dataclass(frozen=True)
class Slow(tasks.Spec):
    KIND = "unit-slow"
    n: int = 0


@dataclass(frozen=True)
class Quick(tasks.Spec):
    KIND = "unit-quick"
    n: int = 0

    def estimated_seconds(self) -> float:
        return 0.01


@dataclass(frozen=True)
class Kept(tasks.Spec):
    KIND = "unit-kept"
    KEEP = True
    RESULT = np.ndarray
    n: int = 0

    def estimated_seconds(self) -> float:
        return 0.0


def _gated(gate: threading.Event, calls: list, reported: threading.Event | None = None, value=42):
    def work(task):
        calls.append(threading.current_thread().name)
        task.report(0.5, "half way")
        if reported is not None:
            reported.set()
        if not gate.wait(10):
            raise TimeoutError("gate")
        task.report(0.9, "almost")
        return value

    return work


def test_one_task_per_spec_shared_by_concurrent_askers(cache_home):
    board, gate, calls, found = cache_home, threading.Event(), [], []
    askers = [
        threading.Thread(target=lambda: found.append(board.get(Slow(1), _gated(gate, calls))))
        for _ in range(8)
    ]
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    assert len({id(task) for task in found}) == 1
    gate.set()
    assert found[0].wait(10) and found[0].value() == 42 and len(calls) == 1
    assert board.get(Slow(1), _gated(gate, calls)) is found[0] and len(calls) == 1  # finished: reused
    assert board.get(Slow(2), _gated(gate, calls)) is not found[0]  # another spec, another task


def test_the_foreground_rule_runs_quick_work_in_the_asking_thread(cache_home):
    board, gate, calls = cache_home, threading.Event(), []
    gate.set()
    task = board.get(Quick(), _gated(gate, calls))
    assert task.done and task.value() == 42 and calls == [threading.current_thread().name]
    slow = board.get(Slow(), _gated(gate, calls))
    assert slow.wait(10) and calls[-1].startswith("task-")


def test_a_cancelled_task_stays_cancelled_until_started_again(cache_home):
    board, gate, calls, reported = cache_home, threading.Event(), [], threading.Event()
    task = board.get(Slow(), _gated(gate, calls, reported))
    assert reported.wait(10)
    board.cancel(Slow())
    gate.set()
    assert task.wait(10) and task.cancelled and task.failed  # failed: done without a result
    with pytest.raises(tasks.Cancelled):
        task.value()
    for _ in range(3):  # page reruns ask again: the cancelled task comes back, no new work
        assert board.get(Slow(), _gated(gate, calls)) is task
    assert len(calls) == 1 and board.stopped(Slow())
    again = board.start(Slow(), _gated(gate, calls))
    assert again is not task and again.wait(10) and again.value() == 42 and len(calls) == 2
    assert not board.stopped(Slow())


def test_asking_never_waits_for_the_work(cache_home):
    board, gate, reported = cache_home, threading.Event(), threading.Event()
    task = board.get(Slow(), _gated(gate, [], reported))
    assert reported.wait(10)
    # Held on its gate until opened: a peek that waited on the work could only return it done.
    assert board.peek(Slow()) is task and not task.done and task.fraction == 0.5
    assert board.peek(Slow(9)) is None
    gate.set()
    assert task.wait(10)


def test_a_failed_task_is_reported_then_replaced(cache_home):
    board = cache_home

    def boom(task):
        raise ValueError("bad input")

    task = board.get(Slow(), boom)
    task.wait(10)
    assert task.failed and board.peek(Slow()) is None
    with pytest.raises(ValueError, match="bad input"):
        task.value()
    again = board.get(Slow(), lambda task: "ok")
    assert again is not task and again.wait(10) and again.value() == "ok"


def test_kept_results_are_written_once_and_read_back_after_a_restart(cache_home, monkeypatch):
    calls = []

    def work(task):
        calls.append(1)
        return np.arange(4.0) * task_factor

    task_factor = 2.0
    first = cache_home.get(Kept(3), work)
    np.testing.assert_array_equal(first.value(), [0, 2, 4, 6])
    assert store.Entry("unit-kept", 1, Kept(3)).path.exists()
    restarted = tasks.Board()  # a new process: empty memory, same disk
    task = restarted.get(Kept(3), work)
    assert task.from_disk and len(calls) == 1
    np.testing.assert_array_equal(task.value(), [0, 2, 4, 6])
    assert restarted.peek(Kept(4)) is None  # another spec: nothing stored


def test_cancelled_or_failed_work_leaves_nothing_on_disk(cache_home):
    def boom(task):
        raise ValueError("no")

    cache_home.get(Kept(5), boom)
    assert not Kept(5).entry.path.exists()


def test_finished_tasks_are_bounded_per_kind_and_running_ones_never_dropped(cache_home):
    board, gate = cache_home, threading.Event()
    running = board.get(Slow(99), _gated(gate, []))
    for i in range(Quick.MAX_FINISHED + 5):
        board.get(Quick(i), lambda task, i=i: i)
    assert board.peek(Slow(99)) is running
    assert len(board) <= Quick.MAX_FINISHED + 2  # the finished kept, the one just run, the running one
    assert (
        board.peek(Quick(0)) is None
        and board.peek(Quick(Quick.MAX_FINISHED + 4)).value() == Quick.MAX_FINISHED + 4
    )
    gate.set()
    running.wait(10)


def test_run_waits_and_forwards_progress(cache_home):
    seen = []

    def work(task):
        for i in range(3):
            task.report((i + 1) / 4, f"step {i}")
        return "done"

    assert tasks.run(Slow(7), work, progress=lambda f, m: seen.append((f, m))) == "done"
    assert seen[:3] == [(0.25, "step 0"), (0.5, "step 1"), (0.75, "step 2")]


def test_forward_maps_a_sub_step_onto_its_share():
    seen = []
    inner = tasks.forward(lambda f, m: seen.append((f, m)), 0.2, 0.6)
    inner(0.0, "a")
    inner(0.5, "b")
    inner(2.0, "c")  # clamped
    assert seen == [(0.2, "a"), (pytest.approx(0.4), "b"), (pytest.approx(0.6), "c")]
    tasks.forward(None, 0, 1)(0.5, "nothing happens")


def test_a_cancel_after_the_last_report_keeps_the_good_result(cache_home):
    board, gate, reported = cache_home, threading.Event(), threading.Event()

    def work(task):
        task.report(0.5, "last report")
        reported.set()
        gate.wait(10)
        return "good"  # no report after the cancel: the work finishes with its result

    task = board.get(Slow(), work)
    assert reported.wait(10)
    task.cancel()  # by code, not a person: the result still counts
    gate.set()
    assert task.wait(10) and task.succeeded
    assert board.get(Slow(), work) is task and task.value() == "good"


def test_start_again_does_not_reuse_a_cancelled_task_still_winding_down(cache_home):
    board, gate, reported, calls = cache_home, threading.Event(), threading.Event(), []
    old = board.get(Slow(), _gated(gate, calls, reported))
    assert reported.wait(10)
    board.cancel(Slow())  # its work is still waiting on the gate: not done yet
    again = board.start(Slow(), _gated(threading.Event(), calls))
    assert again is not old
    gate.set()
    assert old.wait(10) and old.cancelled
    again.cancel()
    again.wait(15)


def test_partial_results_arrive_while_the_task_runs(cache_home):
    board, gate, published = cache_home, threading.Event(), threading.Event()

    def work(task):
        for i in range(3):
            task.publish(i)
            task.report((i + 1) / 4, f"point {i}")
        published.set()
        gate.wait(10)
        return "done"

    task = board.get(Slow(), work)
    assert published.wait(10)
    assert task.partial == [0, 1, 2] and not task.done and (task.fraction, task.message) == (0.75, "point 2")
    gate.set()
    assert task.wait(10) and task.value() == "done"


@dataclass(frozen=True)
class SelfKept(tasks.Spec):
    """A KEEP spec whose work writes its own entry (as the factor store does): the board reads it back through
    ``load`` and writes nothing itself."""

    KIND = "unit-self-kept"
    KEEP = True
    RESULT = np.ndarray
    n: int = 0

    def estimated_seconds(self) -> float:
        return 0.0

    def save(self, result) -> None:
        pass


def test_a_spec_that_writes_its_own_entry_is_read_back_and_not_written_twice(cache_home, monkeypatch):
    written = []
    real_save = store.save
    monkeypatch.setattr(store, "save", lambda entry, value: written.append(entry) or real_save(entry, value))

    def work(task):
        store.save(SelfKept(1).entry, np.arange(3.0))  # the work's own write
        return np.arange(3.0)

    assert tasks.get(SelfKept(1), work).value().tolist() == [0.0, 1.0, 2.0]
    assert written == [SelfKept(1).entry]  # once, by the work
    tasks.clear()  # a restart: memory gone, the disk stays
    back = tasks.peek(SelfKept(1))
    assert back is not None and back.from_disk and back.value().tolist() == [0.0, 1.0, 2.0]


def test_clear_forgets_tasks_and_cancels_but_not_the_disk(cache_home):
    board = cache_home
    board.get(Kept(3), lambda task: np.ones(2))
    board.cancel(Slow())
    board.clear()
    assert len(board) == 0 and not board.stopped(Slow())
    assert board.peek(Kept(3)).from_disk  # read back from the store


def test_a_process_exiting_with_a_task_running_cancels_it_and_exits_cleanly(tmp_path):
    """A worker still inside torch when the interpreter finalizes aborts the process (exit 134): at exit, running
    tasks are cancelled and waited for, so a test run or a server stops cleanly."""
    import subprocess
    import sys
    import textwrap

    marker = tmp_path / "stopped"
    script = textwrap.dedent(
        f"""
        import time, torch
        from dataclasses import dataclass
        from explorer import tasks

        @dataclass(frozen=True)
        class Spin(tasks.Spec):
            KIND = "exit-test"

        def work(task):
            a = torch.randn(300, 300)
            try:
                while True:
                    task.report(0.5, "working")
                    a = torch.tanh(a @ a)
            except tasks.Cancelled:
                open({str(marker)!r}, "w").write("cancelled")
                raise

        task = tasks.get(Spin(), work)
        time.sleep(0.5)
        assert not task.done
        """
    )
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert marker.read_text() == "cancelled"


def test_the_trace_records_start_progress_and_end_and_never_breaks_a_task(cache_home, tmp_path, monkeypatch):
    board, gate = cache_home, threading.Event()
    gate.set()
    trace = tmp_path / "tasks.tsv"
    monkeypatch.setattr(tasks, "_TRACE_PATH", str(trace))
    task = board.get(Slow(1), _gated(gate, []))
    assert task.wait(10) and task.value() == 42
    events = [line.split("\t")[3] for line in trace.read_text().splitlines()]
    assert events[:3] == ["started", "half way", "almost"] and events[3].startswith("finished in ")
    # A path that cannot be written (a folder) leaves the task exactly as without the trace.
    monkeypatch.setattr(tasks, "_TRACE_PATH", str(tmp_path))
    task = board.get(Slow(2), _gated(gate, []))
    assert task.wait(10) and task.value() == 42


# ----------------------------------------------------------------------------------------- foreground first


def _counting(stop: threading.Event, counts: list, nested=None):
    """Work that reports in a loop (one count per report) until ``stop``; ``nested(task)`` runs first."""

    def work(task):
        if nested is not None:
            nested(task)
        while not stop.is_set():
            task.report(0.5, "working")
            counts.append(1)
            stop.wait(0.005)
        return len(counts)

    return work


def _until(condition, seconds: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return False


def test_background_work_pauses_while_a_person_waits_and_resumes_after():
    stop, counts = threading.Event(), []
    task = tasks.get(Slow(1), _counting(stop, counts), background=True)
    assert _until(lambda: len(counts) > 3)
    with tasks.foreground():
        assert tasks.foreground_active()
        # At most the report in flight when the foreground began gets through; then nothing moves.
        threading.Event().wait(0.1)
        frozen = len(counts)
        threading.Event().wait(0.3)
        assert len(counts) == frozen
    assert not tasks.foreground_active()
    assert _until(lambda: len(counts) > frozen + 3)  # resumed
    stop.set()
    assert task.wait(10) and task.succeeded


def test_work_the_foreground_waits_for_is_not_paused_nor_what_it_waits_for():
    """The page waits on A; A waits on B, already running in its own thread: both go on (no deadlock), while
    C, needed by nobody, pauses."""
    stop_b, counts_b = threading.Event(), []
    b_task = tasks.get(Slow(2), _counting(stop_b, counts_b), background=True)
    stop_c, counts_c = threading.Event(), []
    c_task = tasks.get(Slow(3), _counting(stop_c, counts_c), background=True)

    def a_work(task):
        while not b_task.wait(0.05):  # A needs B's result
            task.report(0.1, "waiting for B")
        return b_task.value() + 1

    a_task = tasks.get(Slow(4), a_work, background=True)
    with tasks.foreground():
        a_task.wait(0.2)  # the page waits on A (as task_view.watch does, in short waits)
        frozen_c, before_b = len(counts_c), len(counts_b)
        assert _until(lambda: a_task.wait(0.02) or len(counts_b) > before_b + 5)  # B works for the page's A
        assert len(counts_c) <= frozen_c + 1  # C is paused
        stop_b.set()
        assert a_task.wait(10) and a_task.value() == len(counts_b) + 1
    stop_c.set()
    assert c_task.wait(10) and c_task.succeeded


def test_a_paused_task_can_still_be_cancelled():
    stop, counts = threading.Event(), []
    task = tasks.get(Slow(5), _counting(stop, counts), background=True)
    assert _until(lambda: len(counts) > 0)
    with tasks.foreground():
        threading.Event().wait(0.1)
        tasks.cancel(Slow(5))
        assert task.wait(5), "a cancel must reach a paused task"
        assert task.cancelled and task.failed
    stop.set()


def test_foreground_is_reentrant_and_per_thread():
    with tasks.foreground():
        with tasks.foreground():
            assert tasks.foreground_active()
        assert tasks.foreground_active()
        seen = []
        thread = threading.Thread(target=lambda: seen.append(tasks._thread_needs_priority()))
        thread.start()
        thread.join()
        assert seen == [False]  # another thread is not in the foreground because this one is
    assert not tasks.foreground_active()


def test_work_in_the_asking_thread_never_pauses():
    """A page's own inline work (or the CLI's) is what someone waits for: another thread's foreground does not
    pause it (it may hold a shared cache's lock the foreground needs)."""
    entered, leave = threading.Event(), threading.Event()

    def hold_foreground():
        with tasks.foreground():
            entered.set()
            leave.wait(10)

    holder = threading.Thread(target=hold_foreground)
    holder.start()
    assert entered.wait(5)
    try:
        counts = []

        def work(task):
            for _ in range(20):
                task.report(0.5, "inline")
                counts.append(1)
            return len(counts)

        task = tasks.get(Slow(7), work, background=False)  # runs here, in this (non-worker) thread
        assert task.succeeded and task.value() == 20
    finally:
        leave.set()
        holder.join()


def test_a_pause_ends_after_its_cap(monkeypatch):
    """Work paused while it holds something the foreground waits on, other than a task, is slowed, never stuck."""
    monkeypatch.setattr(tasks, "PAUSE_MAX_SECONDS", 0.3)
    stop, counts = threading.Event(), []
    task = tasks.get(Slow(8), _counting(stop, counts), background=True)
    assert _until(lambda: len(counts) > 0)
    with tasks.foreground():
        threading.Event().wait(0.1)
        frozen = len(counts)
        assert _until(lambda: len(counts) > frozen + 1, seconds=5)  # resumed within a few caps
    stop.set()
    assert task.wait(10) and task.succeeded
