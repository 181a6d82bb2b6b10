"""Crash safety: killed runs, concurrent submitters, dying pool processes, corrupt entries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import rdflib

from crash_tasks import OddOne, Slow, Suicidal
from provgraph import ProvenanceStore, Submitter, cache
from provgraph.provenance.store import load_trig

TESTS = str(Path(__file__).parent)

CHILD = """
import sys
sys.path.insert(0, {tests!r})
from provgraph import Submitter
from crash_tasks import Slow
options = {{"n_procs": 2}} if {worker!r} == "cf" else {{}}
with Submitter(cache_dir={cache!r}, worker={worker!r}, **options) as sub:
    result = sub(Slow(marks={marks!r}, pause={pause!r}).split(x=list(range({n!r}))))
print("OUT", result.outputs.out, result.stats["executed"], result.stats["reused"], flush=True)
"""


def _child(
    cache_dir: Path, marks: Path, worker: str, n: int, pause: float
) -> subprocess.Popen[str]:
    code = CHILD.format(
        tests=TESTS, worker=worker, cache=str(cache_dir), marks=str(marks), pause=pause, n=n
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def _completions(marks: Path) -> Counter[int]:
    log = marks / "done.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(int(line.split()[0]) for line in lines)


@pytest.mark.slow
def test_sigkill_mid_job_then_rerun(tmp_path: Path, cache_dir: Path, worker: str) -> None:
    """A run killed with SIGKILL mid-job leaves no complete-looking result; the rerun finishes."""
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "hang").touch()
    proc = _child(cache_dir, marks, worker, n=6, pause=0.05)
    try:
        _wait_for(marks / "started-3")
        time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    (hung,) = [
        d
        for d in cache_dir.glob("Slow-*")
        if (d / "_lock").exists() and cache.lock_was_abandoned(d)
    ] or [None]
    assert hung is not None, "the killed job's lock should be left, free and not empty"
    assert cache.read_result(hung) is None
    assert not (hung / cache.RESULT_NAME).exists()
    assert list(hung.glob("_prov-*")) == []  # no record of the killed run, not even half a one
    for record in cache_dir.glob("*/_prov-*.trig"):
        load_trig(rdflib.Dataset(), record)  # every record that exists is whole
    store = ProvenanceStore(cache_dir)
    assert [r["status"] for r in store.runs()] == ["died"]  # never ended, and none runs
    with cache.submitting(cache_dir):  # another submission runs: it may be that one
        assert [r["status"] for r in store.runs()] == ["running"]

    (marks / "hang").unlink()
    options = {"n_procs": 2} if worker == "cf" else {}
    with Submitter(cache_dir=cache_dir, worker=worker, **options) as sub:
        result = sub(Slow(marks=str(marks), pause=0.05).split(x=list(range(6))))
    assert not result.errored, result.errors
    assert result.outputs.out == [0, 10, 20, 30, 40, 50]
    assert result.stats["executed"] >= 1 and result.stats["executed"] + result.stats["reused"] == 6
    assert _completions(marks) == Counter(range(6))  # every job completed exactly once
    assert not cache.lock_was_abandoned(hung)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [("serial", "serial"), ("serial", "cf")])
def test_two_submitters_at_once(tmp_path: Path, cache_dir: Path, workers: tuple[str, str]) -> None:
    """Two submitters on one cache both finish; each job is executed once between them."""
    marks = tmp_path / "marks"
    marks.mkdir()
    procs = [_child(cache_dir, marks, w, n=12, pause=0.05) for w in workers]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, stderr
        assert "OUT [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]" in stdout
    executed = [int(stdout.split()[-2]) for stdout, _ in outs]
    assert sum(executed) == 12
    assert _completions(marks) == Counter(range(12))


@pytest.mark.slow
def test_pool_process_killed_mid_job_is_retried(tmp_path: Path, cache_dir: Path) -> None:
    """A pool process dying mid-job breaks no other job; the lost job is retried once."""
    marks = tmp_path / "marks"
    marks.mkdir()
    with Submitter(cache_dir=cache_dir, worker="cf", n_procs=2) as sub:
        result = sub(Suicidal(marks=str(marks)).split(x=list(range(8))))
        assert sub.worker.pools_replaced >= 1  # type: ignore[attr-defined]
    assert not result.errored, result.errors
    assert result.outputs.out == [x + 1 for x in range(8)]
    assert (marks / "killed-2").exists()
    # each execution has its record: the attempt that died, and the one that succeeded
    statuses = sorted(
        str(status)
        for (status,) in ProvenanceStore(cache_dir).query(
            "SELECT ?s WHERE { ?run a pg:JobRun ; pg:elementIndex 2 ; pg:status ?s }"
        )
    )
    assert statuses == ["interrupted", "succeeded"]


@pytest.mark.slow
def test_job_that_always_kills_its_process_fails_by_name(tmp_path: Path, cache_dir: Path) -> None:
    """A job that kills its pool process on every attempt is reported failed; others succeed."""
    marks = tmp_path / "marks"
    marks.mkdir()
    with Submitter(cache_dir=cache_dir, worker="cf", n_procs=2, max_retries=1) as sub:
        result = sub(Suicidal(marks=str(marks), always=True).split(x=list(range(6))))
    assert result.outputs.out == [1, 2, None, 4, 5, 6]
    (failure,) = result.errors
    assert failure.index == 2 and failure.output_dir.name in failure.message
    assert "died" in failure.message and "2 time(s)" in failure.message


def test_corrupt_results_are_recomputed(tmp_path: Path, cache_dir: Path) -> None:
    """A truncated or garbled result is a cache miss: recomputed, never a crash."""
    marks = tmp_path / "marks"
    marks.mkdir()
    task = Slow(marks=str(marks), pause=0.0).split(x=[0, 1, 2])
    with Submitter(cache_dir=cache_dir) as sub:
        first = sub(task)
    truncated = first.job_dirs[0] / cache.RESULT_NAME
    truncated.write_bytes(truncated.read_bytes()[:20])
    garbled = first.job_dirs[1] / cache.RESULT_NAME
    data = bytearray(garbled.read_bytes())
    data[-5] ^= 0xFF
    garbled.write_bytes(bytes(data))
    with Submitter(cache_dir=cache_dir) as sub:
        again = sub(task)
    assert again.outputs.out == [0, 10, 20]
    assert again.stats == {"executed": 2, "reused": 1, "failed": 0, "skipped": 0}
    assert _completions(marks) == Counter({0: 2, 1: 2, 2: 1})


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from provgraph.cache import JobLock
JobLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_stale_lock_is_detected_and_broken(tmp_path: Path) -> None:
    """A lock whose holder was killed is seen as abandoned and taken over, naming the holder."""
    job = tmp_path / "Job-abc"
    job.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(job)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    assert not cache.lock_was_abandoned(job)  # held by a live process
    proc.kill()
    proc.communicate()
    assert cache.lock_was_abandoned(job)
    lock = cache.JobLock(job).acquire()
    try:
        assert lock.broken_stale is not None and lock.broken_stale.startswith(f"{proc.pid} ")
    finally:
        lock.release()
    assert not cache.lock_was_abandoned(job)


def _two_runs_of_one_job(cache_dir: Path) -> tuple[Any, Any]:
    """Two runs ("first", "second") of one ``Square(x=7)`` job, as two processes would make."""
    from provgraph.engine.job import Job
    from regression_tasks import Square

    directory = cache_dir / "Square-0123456789abcdef0123456789abcdef"
    first, second = (
        Job(
            task_cls=Square,
            inputs={"x": 7},
            job_hash=directory.name[-32:],
            output_dir=directory,
            run_id=run_id,
        )
        for run_id in ("first", "second")
    )
    return first, second


def _reused_the_seconds(outcome: Any, theirs: Any, directory: Path) -> None:
    assert theirs.executed and theirs.run_id == "second"
    assert outcome.ok and not outcome.executed  # reused, not run again
    assert outcome.run_id == "second" and outcome.outputs == {"out": 49}
    stored = cache.read_result(directory)
    assert stored is not None and stored.run_id == "second"


def test_a_job_run_by_another_process_between_mkdir_and_lock_is_reused(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes meet at one job: the first makes its directory, and before it takes the
    lock the second (which found the directory made) runs the whole job and lets the lock go.
    The first then finds the lock free, but the job done: it reuses the result instead of
    running the job a second time (a race seen as a 1-in-10 flake of two pool processes given
    the same job)."""
    from provgraph.engine.job import run_job

    first, second = _two_runs_of_one_job(cache_dir)
    real_acquire = cache.JobLock.acquire
    outcomes: list[Any] = []

    def acquire(lock: cache.JobLock) -> cache.JobLock:
        if not outcomes:  # the first's: the other process runs all of the job meanwhile
            outcomes.append(None)
            outcomes[0] = run_job(second)
        return real_acquire(lock)

    monkeypatch.setattr(cache.JobLock, "acquire", acquire)
    outcome = run_job(first)
    _reused_the_seconds(outcome, outcomes[0], first.output_dir)


def test_a_job_run_by_another_process_between_lock_file_and_flock_is_reused(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same meeting, one step later: the first has made the directory and the lock file,
    and before its ``flock`` the second (which found the lock file made) takes the lock, runs
    the whole job and lets it go. The first then holds a lock it made, never waited for, with
    nothing left in it; it still reuses the result."""
    import fcntl

    from provgraph.engine.job import run_job

    first, second = _two_runs_of_one_job(cache_dir)
    real_flock = fcntl.flock
    outcomes: list[Any] = []

    def flock(fd: int, operation: int) -> None:
        if not outcomes and operation & fcntl.LOCK_EX:  # the first's lock file is made
            outcomes.append(None)
            outcomes[0] = run_job(second)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    outcome = run_job(first)
    _reused_the_seconds(outcome, outcomes[0], first.output_dir)


def test_a_task_raising_any_base_exception_fails_that_job_only(
    cache_dir: Path, worker: str
) -> None:
    """Neither an Exception nor an interrupt: that job fails, the others run, on every
    worker alike (before, on ``serial`` it ended the whole submission with no end record)."""
    options = {"n_procs": 2} if worker == "cf" else {}
    with Submitter(cache_dir=cache_dir, worker=worker, progress=False, **options) as sub:
        result = sub(OddOne().split(x=[1, 2, 3]))
    assert result.outputs.out == [1, None, 3]
    assert (result.stats["executed"], result.stats["failed"]) == (2, 1)
    assert "Odd" in str(result.errors[0])
    assert [r["status"] for r in ProvenanceStore(cache_dir).runs()] == ["partial"]


def test_an_error_escaping_the_engine_ends_the_submission_on_record(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provgraph.engine import submitter

    def broken(*args: Any) -> None:
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(submitter._Run, "_finish_atomic", broken)
    sub = Submitter(cache_dir=cache_dir, progress=False)
    with sub, pytest.raises(RuntimeError, match="a bug in the engine"):
        sub(OddOne().split(x=[1, 3]))
    monkeypatch.undo()
    assert [r["status"] for r in ProvenanceStore(cache_dir).runs()] == ["interrupted"]


def test_a_lock_that_cannot_be_written_fails_that_job_only(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk refusing one job's lock (ENOSPC) fails that job, by name, and lets its lock
    go; the other jobs run and the submission ends on record (before, it ended the whole
    submission with a raw OSError, still holding the lock)."""
    import errno

    real = os.pwrite
    refused: list[int] = []

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if not refused:
            refused.append(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(OddOne().split(x=[1, 3, 4]))
    monkeypatch.undo()
    assert result.outputs.out == [None, 3, 4]
    (failure,) = result.errors
    assert "cannot write lock" in failure.message and "No space left" in failure.message
    with cache.JobLock(failure.output_dir) as lock:  # free: the refused attempt let it go
        assert not lock.waited
    assert [r["status"] for r in ProvenanceStore(cache_dir).runs()] == ["partial"]
