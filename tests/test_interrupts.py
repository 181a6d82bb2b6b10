"""Interrupts (issue 12): Ctrl-C stops a cf run at once, and pool processes never outlive
their submitter. Real signals to real process trees; no timing is asserted, only that the
process ends (a hang fails through the generous timeouts) and what it leaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provgraph import ProvenanceStore

TESTS = Path(__file__).parent

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from crash_tasks import Sleepy
task = Sleepy(marks={marks!r}).split(x=list(range(200)))
"""


def _start(tmp_path: Path, cache_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    script = tmp_path / "sleepy.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), marks=str(marks)))
    command = [sys.executable, "-m", "provgraph.cli", "run", f"{script}:task", "--worker", "cf"]
    command += ["--cache-dir", str(cache_dir), "-w", "n_procs=2"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while len(list(marks.glob("pid-*"))) < 2:  # both pool processes are running a job
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(0.05)
    return proc, marks


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive


def _pool_pids(marks: Path) -> list[int]:
    return [int(p.read_text()) for p in marks.glob("pid-*")]


def _gone(pids: list[int], seconds: float = 60) -> list[int]:
    """The pids still alive after waiting up to ``seconds`` for them to end."""
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


@pytest.mark.slow
def test_ctrl_c_stops_a_cf_run(tmp_path: Path, cache_dir: Path) -> None:
    """SIGINT to the process group: one line, exit code 130, no pool process left; the
    interrupted jobs are recorded as such by the rerun, which completes."""
    proc, marks = _start(tmp_path, cache_dir)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"provgraph: interrupted" in err
    assert _gone(_pool_pids(marks)) == []
    running = {p.name for p in marks.glob("pid-*")}
    for pid_file in marks.glob("pid-*"):
        pid_file.unlink()
    (marks / "quick").touch()  # the rerun's jobs do not sleep
    rerun = subprocess.run(
        [
            sys.executable,
            "-m",
            "provgraph.cli",
            "run",
            f"{tmp_path / 'sleepy.py'}:task",
            "--worker",
            "cf",
            "--cache-dir",
            str(cache_dir),
            "-w",
            "n_procs=2",
        ],
        capture_output=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    statuses = ProvenanceStore(cache_dir).query(
        "SELECT ?status (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun ; pg:status ?status } "
        "GROUP BY ?status"
    )
    counts = {str(s): int(n) for s, n in statuses}
    assert counts["succeeded"] == 200
    assert counts.get("interrupted", 0) == len(running)  # the jobs that were running


@pytest.mark.slow
def test_pool_processes_end_with_their_submitter(tmp_path: Path, cache_dir: Path) -> None:
    """SIGKILL of the submitter alone: its pool processes end by themselves, releasing the
    pipes a parent reads."""
    proc, marks = _start(tmp_path, cache_dir)
    proc.kill()
    proc.communicate(timeout=60)  # returns only once no process holds the pipes
    assert _gone(_pool_pids(marks)) == []


COMMANDS = """
import sys
sys.path.insert(0, {tests!r})
from provgraph import shell
Hold = shell.define("sh -c <script:str> <x:int>", name="Hold")
task = Hold(script='echo $$ > {marks}/cmd-$0; exec sleep 60').split(x=[1, 2, 3, 4])
"""


@pytest.mark.slow
def test_ctrl_c_stops_the_commands_of_a_cf_run(tmp_path: Path, cache_dir: Path) -> None:
    """Ctrl-C to the process group also stops the commands shell jobs started in the pool."""
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "hold.py"
    script.write_text(COMMANDS.format(tests=str(TESTS), marks=str(marks)))
    command = [sys.executable, "-m", "provgraph.cli", "run", f"{script}:task", "--worker", "cf"]
    command += ["--cache-dir", str(cache_dir), "-w", "n_procs=2"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(marks.glob("cmd-*"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in marks.glob("cmd-*")]
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert _gone(pids) == []


AGAIN = """
import json, signal, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from crash_tasks import Sleepy
from provgraph import Submitter, python

@python.define
def Twice(x: int) -> int:
    return 2 * x

marks = Path({marks!r})
sub = Submitter(cache_dir={cache!r}, worker="cf", n_procs=2, progress=False)
signal.signal(signal.SIGUSR1, signal.default_int_handler)  # the test's Ctrl-C, for this process
try:
    sub(Sleepy(marks=str(marks)).split(x=list(range(20))))
except KeyboardInterrupt:
    pass
(marks / "quick").write_text("")  # a Sleepy job run from now on would end at once
before = sorted(p.name for p in marks.glob("pid-*"))
again = sub(Twice().split(x=list(range(4))))
after = sorted(p.name for p in marks.glob("pid-*"))
sub.close()
print(json.dumps({{"before": before, "after": after, "out": again.outputs.out}}))
"""


def test_an_interrupted_round_never_runs_in_the_next_submission(tmp_path: Path) -> None:
    """After Ctrl-C, jobs of the interrupted submission that were queued, or that the killed
    pool's recovery would send again, fail as not run: the same submitter's next submission
    runs its own jobs only (before, it ran the interrupted run's jobs first)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "again.py"
    script.write_text(
        AGAIN.format(tests=str(TESTS), marks=str(marks), cache=str(tmp_path / "cache"))
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while len(list(marks.glob("pid-*"))) < 2:  # both pool processes are running a job
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    import json

    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["out"] == [0, 2, 4, 6]
    assert seen["after"] == seen["before"]  # no Sleepy job started after the interrupt
