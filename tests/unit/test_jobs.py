"""Background jobs (explorer/ui/jobs.py): one job per key, progress visible, asking never waits on the work."""

import threading
import time

import pytest

from explorer.ui.jobs import Cancelled, JobBoard, follow


def _gated(gate: threading.Event, calls: list, value=42, reported: threading.Event | None = None):
    """Work that reports half way (setting ``reported``), then waits for ``gate``."""

    def work(job):
        calls.append(1)
        job.report(0.5, "half way")
        if reported is not None:
            reported.set()
        gate.wait(10)
        return value

    return work


def test_one_job_per_key_shared_by_concurrent_askers():
    board, gate, calls = JobBoard("t", max_finished=4), threading.Event(), []
    found = []
    askers = [
        threading.Thread(target=lambda: found.append(board.submit("k", _gated(gate, calls))))
        for _ in range(8)
    ]
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    assert len({id(job) for job in found}) == 1
    gate.set()
    assert found[0].wait(10) and found[0].value() == 42 and sum(calls) == 1
    assert board.submit("k", _gated(gate, calls)) is found[0] and sum(calls) == 1  # finished: reused


def test_asking_about_a_job_does_not_wait_for_its_work():
    board, gate, reported = JobBoard("t", max_finished=4), threading.Event(), threading.Event()
    job = board.submit("k", _gated(gate, [], reported=reported))
    assert reported.wait(10)
    # The work is held on its gate until we open it: had peek waited on the work (a lock held across it), it
    # could only return after the gate's 10 s timeout, with the job done. So "not done" is the check, not a clock.
    assert board.peek("k") is job and not job.done and job.fraction == 0.5
    assert board.peek("other") is None
    gate.set()
    job.wait(10)


def test_a_failed_job_is_reported_then_replaced():
    board = JobBoard("t", max_finished=4)

    def boom(job):
        raise ValueError("bad input")

    job = board.submit("k", boom)
    job.wait(10)
    assert job.failed and board.peek("k") is None
    with pytest.raises(ValueError, match="bad input"):
        job.value()
    again = board.submit("k", lambda job: "ok")
    assert again is not job and again.wait(10) and again.value() == "ok"


def test_cancel_stops_the_work_at_its_next_report():
    board, steps, third = JobBoard("t", max_finished=4), [], threading.Event()

    def long_work(job):
        for i in range(1000):
            job.report(i / 1000, f"step {i}")
            steps.append(i)
            if i == 2:
                third.set()
            time.sleep(0.005)
        return "finished"

    job = board.submit("k", long_work)
    assert third.wait(10)
    job.cancel()
    assert job.wait(10) and job.cancelled
    with pytest.raises(Cancelled):
        job.value()
    assert len(steps) < 1000


def test_eviction_keeps_finished_jobs_bounded_and_never_drops_running_ones():
    board, gate = JobBoard("t", max_finished=2), threading.Event()
    running = board.submit("running", _gated(gate, []))
    for i in range(5):
        board.submit(i, lambda job, i=i: i).wait(10)
        board.submit(("touch", i), lambda job: None).wait(10)
    assert board.peek("running") is running
    assert len(board) <= 2 + 2  # two finished kept, the running one, and the one just submitted
    gate.set()


def test_follow_reports_progress_and_partial_results_arrive_while_running():
    board, gate, seen, published = JobBoard("t", max_finished=2), threading.Event(), [], threading.Event()

    def work(job):
        for i in range(3):
            job.publish(i)
            job.report((i + 1) / 4, f"point {i}")
        published.set()
        gate.wait(10)
        return "done"

    job = board.submit("k", work)
    assert published.wait(10)
    assert job.partial == [0, 1, 2] and not job.done
    threading.Timer(0.3, gate.set).start()
    follow(job, lambda fraction, message: seen.append((fraction, message)), poll_seconds=0.05)
    assert job.value() == "done" and seen and seen[-1] == (0.75, "point 2")


def test_a_process_exiting_with_a_job_running_cancels_it_and_exits_cleanly(tmp_path):
    """A worker still inside torch when the interpreter finalizes aborts the process (exit 134): at exit, running
    jobs are cancelled and waited for, so a test run or a server stops cleanly."""
    import subprocess
    import sys
    import textwrap

    marker = tmp_path / "stopped"
    script = textwrap.dedent(
        f"""
        import time, torch
        from explorer.ui.jobs import Cancelled, JobBoard

        def work(job):
            a = torch.randn(300, 300)
            try:
                while True:
                    job.report(0.5, "working")
                    a = torch.tanh(a @ a)
            except Cancelled:
                open({str(marker)!r}, "w").write("cancelled")
                raise

        job = JobBoard("exit-test", 1).submit("key", work)
        time.sleep(0.5)
        assert not job.done
        """
    )
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert marker.read_text() == "cancelled"


def test_the_trace_records_start_progress_and_end_and_never_breaks_a_job(tmp_path, monkeypatch):
    from explorer import tasks

    trace = tmp_path / "jobs.tsv"
    monkeypatch.setattr(tasks, "_TRACE_PATH", str(trace))
    gate = threading.Event()
    gate.set()
    job = JobBoard("t", max_finished=4).submit("k", _gated(gate, []), "traced")
    assert job.wait(10) and job.value() == 42
    events = [line.split("\t")[3] for line in trace.read_text().splitlines()]
    assert events[0] == "started" and events[1] == "half way" and events[2].startswith("finished in ")
    # A path that cannot be written (a folder) leaves the job exactly as without the trace.
    monkeypatch.setattr(tasks, "_TRACE_PATH", str(tmp_path))
    job = JobBoard("t", max_finished=4).submit("k", _gated(gate, []), "untraceable")
    assert job.wait(10) and job.value() == 42
