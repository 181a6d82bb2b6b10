"""The SLURM worker on a real cluster: arrays, time limits, cancellation, failures, requeue.

Needs ``sbatch`` (a one-node cluster from ``scripts/start-slurm.sh``; ``.ci/run`` starts one).
The parsing of squeue, sacct and scontrol output is also checked on recorded text, beside.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import requires_slurm
from provgraph import ProvenanceStore, Submitter
from provgraph.exceptions import SpecError, WorkerError
from provgraph.spec.resources import check_resources
from provgraph.workers.slurm import (
    SlurmState,
    SlurmWorker,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
)
from slurm_tasks import Allocation, Hog, HogCommand, Nap, Sleepy, Trouble, Vanish

needs_slurm = requires_slurm("start a one-node cluster with scripts/start-slurm.sh")


def _squeue() -> list[tuple[str, str, str]]:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i|%j|%T"], capture_output=True, text=True, check=True
    ).stdout
    return [tuple(line.split("|")) for line in out.splitlines()]  # type: ignore[misc]


def _when_running(name: str, ids: list[str], element: str, action: list[str]) -> threading.Thread:
    """In a thread: once ``<one of ids>_<element>`` named ``name`` runs, run ``action + [id]``."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for job_id, job_name, state in _squeue():
                parent, _, task = job_id.partition("_")
                named = job_name.startswith(name + "-")  # pg-<Task>-<unique>
                if named and parent in ids and task == element and state == "RUNNING":
                    subprocess.run([*action, job_id], check=True)
                    return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@needs_slurm
def test_timeout_cancel_and_failing_command(tmp_path: Path) -> None:
    """One submission: a job over its time limit (TIMEOUT), one element cancelled with scancel
    while its siblings complete, and a failing command reported with its stderr."""
    with Submitter(cache_dir=tmp_path, worker="slurm", poll_interval=0.3, progress=False) as sub:
        watcher = _when_running("pg-Nap", sub.worker.submitted_ids, "1", ["scancel"])
        result = sub(Trouble(long=600, naps=[1.0, 300.0, 2.0], script="echo boom >&2; exit 3"))
        watcher.join(timeout=1)
    errors = {(e.node, e.index): e for e in result.errors}
    assert set(errors) == {("Trouble/overrun", 0), ("Trouble/nap", 1), ("Trouble/complain", 0)}

    timeout = errors["Trouble/overrun", 0]
    assert timeout.error_type == "SlurmJobError"
    assert "hit its time limit: TIMEOUT" in timeout.message

    cancelled = errors["Trouble/nap", 1]
    assert cancelled.error_type == "SlurmJobError"
    assert "was cancelled: CANCELLED" in cancelled.message
    assert result.node_stats["Trouble/nap"] == {
        "executed": 2,
        "reused": 0,
        "failed": 1,
        "skipped": 0,
    }

    failing = errors["Trouble/complain", 0]
    assert failing.error_type == "CommandError"
    assert "exited with code 3" in failing.message and "boom" in failing.message

    states = ProvenanceStore(tmp_path).query(
        """SELECT ?node ?state WHERE { ?run a pg:JobRun ; pg:nodeName ?node ;
             pg:status "failed" ; pg:slurmState ?state }"""
    )
    assert sorted((str(n), str(s)) for n, s in states) == [
        ("Trouble/nap", "CANCELLED"),
        ("Trouble/overrun", "TIMEOUT"),
    ]


@needs_slurm
@pytest.mark.parametrize("source", ["sacct", "scontrol"])
def test_a_job_killed_on_its_node_is_failed_with_its_state(tmp_path: Path, source: str) -> None:
    """A job whose process dies leaves no outcome: its state comes from sacct or scontrol."""
    with Submitter(
        cache_dir=tmp_path,
        worker="slurm",
        poll_interval=0.2,
        state_source=source,
        progress=False,
    ) as sub:
        result = sub(Vanish(x=1))
    [error] = result.errors
    assert error.error_type == "SlurmJobError"
    assert "failed: FAILED (exit code 0:9" in error.message  # killed by signal 9


@needs_slurm
def test_sbatch_refusal_fails_the_jobs_with_its_reason(tmp_path: Path) -> None:
    with Submitter(
        cache_dir=tmp_path,
        worker="slurm",
        sbatch_args="--partition=no-such-partition",
        progress=False,
    ) as sub:
        result = sub(Nap(seconds=0))
    [error] = result.errors
    assert "sbatch refused the job" in error.message
    assert "--partition=no-such-partition" in error.message


@needs_slurm
def test_a_job_lost_with_its_node_is_submitted_again(tmp_path: Path) -> None:
    """NODE_FAIL (the node is taken down under a running job): the worker requeues it."""
    node = socket.gethostname().split(".")[0]
    with Submitter(
        cache_dir=tmp_path,
        worker="slurm",
        poll_interval=0.3,
        sbatch_args="--no-requeue",  # SLURM's own requeue off: the worker's is tested
        resources={"time": 3},
        progress=False,
    ) as sub:
        ids = sub.worker.submitted_ids
        down = ["scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=provgraph-test"]

        def take_node_down(job_id: str) -> None:
            subprocess.run(down, check=True)
            time.sleep(1)
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"])

        def watch() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for job_id, job_name, state in _squeue():
                    if job_name.startswith("pg-Nap-") and job_id in ids and state == "RUNNING":
                        take_node_down(job_id)
                        return
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        result = sub(Nap(seconds=4.0))
        watcher.join(timeout=1)
    assert not result.errored, result.errors
    assert result.outputs.out == 4.0
    assert len(ids) == 2  # the first job, then the one that replaced it
    states = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-j", ids[0], "-o", "State"], capture_output=True, text=True
    ).stdout.split()
    assert states in (["NODE_FAIL"], [])  # [] where accounting lags or is off
    again = subprocess.run(
        ["scontrol", "show", "job", "-o", ids[1]], capture_output=True, text=True
    ).stdout
    assert "TimeLimit=00:03:00" in again  # the requeued job keeps its resources
    batch = next((tmp_path / ".slurm").iterdir())
    assert (batch / "0.1.outcome.pkl").exists()  # the second attempt has files of its own


# -- beside the real runs: the parsers on recorded output, and option checks ------------------


def test_parse_squeue_expands_array_ranges() -> None:
    text = "12_3|RUNNING\n12_[4-6,9%2]|PENDING\n15|COMPLETING\n"
    assert parse_squeue(text) == {
        "12_3": "RUNNING",
        "12_4": "PENDING",
        "12_5": "PENDING",
        "12_6": "PENDING",
        "12_9": "PENDING",
        "15": "COMPLETING",
    }


def test_parse_sacct_and_scontrol() -> None:
    sacct = "7_0|COMPLETED|0:0|vm\n7_1|CANCELLED by 0|0:15|vm\n8|TIMEOUT|0:0|vm\n"
    assert parse_sacct(sacct) == {
        "7_0": SlurmState("COMPLETED", "0:0", "vm"),
        "7_1": SlurmState("CANCELLED", "0:15", "vm"),
        "8": SlurmState("TIMEOUT", "0:0", "vm"),
    }
    scontrol = (
        "JobId=20 ArrayJobId=19 ArrayTaskId=1 JobName=pg-Nap JobState=CANCELLED "
        "Reason=None ExitCode=0:15 NodeList=vm\n"
        "JobId=19 ArrayJobId=19 ArrayTaskId=2-3 JobState=PENDING ExitCode=0:0 NodeList=(null)\n"
        "JobId=22 JobName=pg-Vanish JobState=OUT_OF_MEMORY ExitCode=0:125 NodeList=vm\n"
    )
    assert parse_scontrol(scontrol) == {
        "19_1": SlurmState("CANCELLED", "0:15", "vm"),
        "19_2": SlurmState("PENDING", "0:0", "(null)"),
        "19_3": SlurmState("PENDING", "0:0", "(null)"),
        "22": SlurmState("OUT_OF_MEMORY", "0:125", "vm"),
    }


def test_resources_are_checked_and_normalised() -> None:
    assert check_resources("T", {"time": 5, "mem": "2g", "cpus": 2}) == {
        "time": "5",
        "mem": "2G",
        "cpus": 2,
    }
    with pytest.raises(SpecError, match=r"unknown resource 'memory'.*'mem'"):
        check_resources("T", {"memory": "2G"})
    with pytest.raises(SpecError, match=r"resources\['time'\]='soon'; expected minutes"):
        check_resources("T", {"time": "soon"})
    with pytest.raises(SpecError, match=r"resources\['cpus'\]=0"):
        check_resources("T", {"cpus": 0})


@needs_slurm
def test_bad_worker_options_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(WorkerError, match=r"unknown resource 'gpu'"):
        Submitter(cache_dir=tmp_path, worker="slurm", resources={"gpu": 1})
    with pytest.raises(WorkerError, match=r"poll_interval=0; expected a number"):
        Submitter(cache_dir=tmp_path, worker="slurm", poll_interval=0)
    with pytest.raises(WorkerError, match=r"state_source='squeue'"):
        Submitter(cache_dir=tmp_path, worker="slurm", state_source="squeue")


@needs_slurm
def test_resources_of_task_and_worker_reach_sbatch(tmp_path: Path) -> None:
    """The worker's resources apply to every job; a task's own win key by key."""
    with Submitter(
        cache_dir=tmp_path,
        worker="slurm",
        poll_interval=0.2,
        resources={"cpus": 1, "time": 5},
        progress=False,
    ) as sub:
        result = sub(Allocation(x=1))
        sleepy = sub(Sleepy(seconds=0))
    assert not result.errored and not sleepy.errored, result.errors + sleepy.errors
    assert result.outputs.cpus == "2"  # the task's cpus=2 over the worker's cpus=1
    assert result.outputs.time_limit == "5:00"  # the worker's time=5 (minutes)
    _, sleepy_id = sub.worker.submitted_ids  # one sbatch per submission
    limit = subprocess.run(
        ["scontrol", "show", "job", "-o", sleepy_id], capture_output=True, text=True
    ).stdout
    assert "TimeLimit=00:07:00" in limit  # a shell task's own time limit


def _sbatch(*args: str) -> str:
    return subprocess.run(
        ["sbatch", "--parsable", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _wait_gone(job_id: str) -> None:
    for _ in range(300):
        if not subprocess.run(
            ["squeue", "-h", "-j", job_id], capture_output=True, text=True
        ).stdout.strip():
            return
        time.sleep(0.1)
    raise TimeoutError(job_id)


@needs_slurm
def test_scontrol_states_of_several_jobs(tmp_path: Path) -> None:
    """``scontrol show job`` takes one id: states of several jobs still come back."""
    ok, bad = (
        _sbatch(f"--chdir={tmp_path}", "--wrap", "true"),
        _sbatch(f"--chdir={tmp_path}", "--wrap", "exit 4"),
    )
    for job_id in (ok, bad):
        _wait_gone(job_id)
    worker = SlurmWorker(state_source="scontrol")
    states = worker.final_states([ok, bad])
    assert (states[ok].state, states[bad].state, states[bad].exit_code) == (
        "COMPLETED",
        "FAILED",
        "4:0",
    )


@needs_slurm
def test_a_job_that_can_never_start_is_cancelled_and_reported(tmp_path: Path) -> None:
    """A dependency that can never be met: the job is cancelled and fails with the reason."""
    failed = _sbatch(f"--chdir={tmp_path}", "--wrap", "exit 1")
    _wait_gone(failed)
    with Submitter(
        cache_dir=tmp_path / "cache",
        worker="slurm",
        poll_interval=0.3,
        sbatch_args=f"--dependency=afterok:{failed}",
        progress=False,
    ) as sub:
        result = sub(Nap(seconds=0))
        [job_id] = sub.worker.submitted_ids
    [error] = result.errors
    assert "could not start" in error.message and "DependencyNeverSatisfied" in error.message
    assert not subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout


@needs_slurm
def test_a_worker_used_again_after_close_follows_its_jobs(tmp_path: Path) -> None:
    worker = SlurmWorker(poll_interval=0.2)
    for x in (1.0, 2.0):
        with Submitter(cache_dir=tmp_path, worker=worker, progress=False) as sub:
            assert sub(Nap(seconds=x)).outputs.out == x
    assert len(worker.submitted_ids) == 2


@needs_slurm
def test_modules_beside_the_submitting_script_import_in_the_job(tmp_path: Path) -> None:
    """``python -c`` / a script in its folder: the job imports the user's modules from there."""
    (tmp_path / "mylib.py").write_text(
        "from provgraph import python\n\n"
        "@python.define\n"
        "def Twice(x: int) -> int:\n"
        "    return 2 * x\n"
    )
    code = (
        "from mylib import Twice\n"
        "from provgraph import Submitter\n"
        "with Submitter(cache_dir='cache', worker='slurm', poll_interval=0.2, progress=False)"
        " as sub:\n"
        "    result = sub(Twice().split(x=[1, 2]))\n"
        "assert not result.errored, result.errors\n"
        "print(result.outputs.out)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2, 4]"


def _wrapped_sbatch(folder: Path, body: str) -> Path:
    """An ``sbatch`` in ``folder`` that runs ``body`` (bash) around the real one ($REAL)."""
    import shutil

    folder.mkdir()
    script = folder / "sbatch"
    real = shutil.which("sbatch")
    script.write_text(f"#!/bin/bash\nREAL={real}\nCALLS={folder}/calls\n{body}\n")
    script.chmod(0o755)
    return folder


@needs_slurm
def test_a_busy_controller_is_asked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sbatch failing with a transient error is retried, and the job runs once."""
    bin_dir = _wrapped_sbatch(
        tmp_path / "bin",
        'echo call >> "$CALLS"\n'
        'if [ "$(wc -l < "$CALLS")" -eq 1 ]; then\n'
        '  echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv '
        'operation" >&2; exit 1\n'
        "fi\n"
        'exec "$REAL" "$@"',
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with Submitter(
        cache_dir=tmp_path / "c", worker="slurm", poll_interval=0.2, progress=False
    ) as sub:
        result = sub(Nap(seconds=0.5))
        ids = list(sub.worker.submitted_ids)
    assert not result.errored, result.errors
    assert (bin_dir / "calls").read_text().count("call") == 2 and len(ids) == 1


@needs_slurm
def test_an_sbatch_that_answers_too_late_is_found_by_its_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sbatch queues the job but its answer is lost: the job is found, not submitted twice."""
    bin_dir = _wrapped_sbatch(tmp_path / "bin", 'echo call >> "$CALLS"\n"$REAL" "$@"\nsleep 30')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with Submitter(
        cache_dir=tmp_path / "c",
        worker="slurm",
        poll_interval=0.2,
        sbatch_timeout=2,
        progress=False,
    ) as sub:
        result = sub(Nap(seconds=4.0))  # still queued when it is looked for
        ids = list(sub.worker.submitted_ids)
    assert not result.errored, result.errors
    assert result.outputs.out == 4.0
    assert (bin_dir / "calls").read_text().count("call") == 1 and len(ids) == 1


def _memory_enforced() -> bool:
    """Whether the cluster confines jobs' memory with cgroups (start-slurm.sh SLURM_CGROUP=1)."""
    import shutil

    if shutil.which("scontrol") is None:
        return False
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    return "task/cgroup" in config


@needs_slurm
def test_out_of_memory_is_reported_as_such(tmp_path: Path) -> None:
    """A Python task, and a command in a shell task, over their job's memory: OUT_OF_MEMORY."""
    if not _memory_enforced():
        if os.environ.get("PROVGRAPH_CI") == "1":
            pytest.fail("under CI the cluster confines memory (SLURM_CGROUP=1), but it does not")
        pytest.skip("the cluster does not confine memory; start it with SLURM_CGROUP=1")
    code = "x = bytearray(400 * 1024 * 1024); import time; time.sleep(1)"
    with Submitter(cache_dir=tmp_path, worker="slurm", poll_interval=0.2, progress=False) as sub:
        hog = sub(Hog(megabytes=400))
        command = sub(HogCommand(code=code))
    [error] = hog.errors
    assert error.error_type == "SlurmJobError"
    assert "ran out of memory: OUT_OF_MEMORY" in error.message
    [error] = command.errors  # the command was killed; its job wrote the CommandError
    assert error.error_type == "SlurmJobError"
    assert "ran out of memory: OUT_OF_MEMORY" in error.message
    assert "the task reported: CommandError" in error.message
