"""Tasks for the SLURM tests: one that outlives its time limit, one to cancel, one that fails."""

from __future__ import annotations

import os
import signal
import time

from provgraph import python, shell, workflow


@python.define(resources={"time": 1})  # one minute: SLURM's smallest time limit
def Overrun(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@python.define
def Nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@python.define
def Vanish(x: int) -> int:
    """Kills its own process: the job ends without an outcome, SLURM says why."""
    os.kill(os.getpid(), signal.SIGKILL)
    return x


Complain = shell.define("sh -c <script:str>", name="Complain")


@workflow.define(outputs=["overrun", "naps", "complaint"])
def Trouble(long: int, naps: list[float], script: str) -> tuple[int, list[float], int]:
    overrun = workflow.add(Overrun(seconds=long), name="overrun")
    nap = workflow.add(Nap().split(seconds=naps), name="nap")
    complaint = workflow.add(Complain(script=script), name="complain")
    return overrun.out, nap.out, complaint.return_code


@python.define(outputs=["cpus", "time_limit"], resources={"cpus": 2})
def Allocation(x: int) -> tuple[str, str]:
    """What SLURM gave this job: CPUs per task, and its time limit as squeue shows it."""
    import subprocess

    job = os.environ["SLURM_JOB_ID"]
    limit = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%l"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return os.environ.get("SLURM_CPUS_PER_TASK", ""), limit


Sleepy = shell.define("sleep <seconds:int>", name="Sleepy", resources={"time": "00:07:00"})


@python.define(resources={"mem": "100M"})
def Hog(megabytes: int) -> int:
    """Holds more memory than its job may use."""
    block = bytearray(megabytes * 1024 * 1024)
    time.sleep(1)
    return len(block)


HogCommand = shell.define("python3 -c <code:str>", name="HogCommand", resources={"mem": "100M"})
