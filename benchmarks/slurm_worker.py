"""provgraph SLURM worker benchmarks: each figure beside a baseline measured in the same run.

Usage (from the repository root, with a SLURM cluster up: ``scripts/start-slurm.sh``)::

    .venv/bin/python benchmarks/slurm_worker.py [--quick]

200 trivial jobs (``Inc`` split over ``range(200)``, empty cache) on the ``slurm`` worker, as
one job array and as one ``sbatch`` per job (``array=False``), each beside the same number of
bare ``sbatch`` jobs of a trivial ``python -c``, waited for until ``squeue`` lists none of
them. Prints one table in the style of ``benchmarks/run.py`` (whose helpers it shares); with no
``sbatch`` on PATH it prints why it measured nothing instead. The exit code is 0 whatever the
figures are; only an error (a wrong result, a crash) makes it non-zero. See
``benchmarks/README.md`` for what each row measures.

(Not ``slurm.py``: the script's directory is ``sys.path[0]``, so any module of that name
would be shadowed too.)
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Shared with the engine benchmarks: this file's directory is sys.path[0] when run as a script.
from run import Row, check, fmt_ratio, run_suite, scratch_dir

from provgraph import Submitter, python

N_JOBS = 200
QUICK_N_JOBS = 40
POLL_INTERVAL = 0.2  # seconds, for the slurm worker and the bare baselines' squeue loop
WAIT_LIMIT = 1800.0  # seconds a bare baseline may wait for its jobs before the run fails
HOW = "start a one-node cluster with scripts/start-slurm.sh"


@python.define
def Inc(x: int) -> int:
    """The trivial task every job runs."""
    return x + 1


def rate(n: int, seconds: float) -> str:
    """``<seconds> s, <jobs/s> jobs/s``."""
    return f"{seconds:.3f} s, {n / seconds:.1f} jobs/s"


# -- provgraph ----------------------------------------------------------------------------------


def run_provgraph(root: Path, n: int, array: bool) -> float:
    """Seconds from making ``Submitter(worker="slurm", ...)`` to closing it, around
    ``sub(Inc().split(x=range(n)))`` in a fresh cache directory; outputs checked after."""
    xs = list(range(n))
    with scratch_dir(root, "slurm-array" if array else "slurm-per-job") as cache_dir:
        start = time.perf_counter()
        with Submitter(
            cache_dir=cache_dir,
            worker="slurm",
            poll_interval=POLL_INTERVAL,
            array=array,
            progress=False,
        ) as sub:
            result = sub(Inc().split(x=xs))
            submitted = list(sub.worker.submitted_ids)
        seconds = time.perf_counter() - start
    what = "slurm array" if array else "slurm per job"
    check(result.outputs.out == [x + 1 for x in xs], f"{what}: wrong outputs {result.errors}")
    check(result.stats["executed"] == n, f"{what}: expected all {n} executed, {result.stats}")
    expected = 1 if array else n
    check(len(submitted) == expected, f"{what}: {len(submitted)} sbatch calls, not {expected}")
    return seconds


# -- bare baselines -----------------------------------------------------------------------------


def sbatch(argv: list[str]) -> str:
    """Run ``sbatch --parsable ...``; return the job id."""
    proc = subprocess.run(
        ["sbatch", "--parsable", *argv], capture_output=True, text=True, check=False
    )
    check(proc.returncode == 0, f"sbatch failed: {proc.stderr.strip()}\n  {shlex.join(argv)}")
    return proc.stdout.strip().split(";")[0]


def wait_gone(job_ids: list[str]) -> None:
    """Poll ``squeue`` every ``POLL_INTERVAL`` until it lists none of ``job_ids`` (other
    users' jobs on the cluster do not count)."""
    deadline = time.monotonic() + WAIT_LIMIT
    argv = ["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(job_ids)]
    while True:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            # every job listed has left the controller's memory: none is queued
            check("Invalid job id" in proc.stderr, f"squeue failed: {proc.stderr.strip()}")
            return
        if not proc.stdout.strip():
            return
        check(time.monotonic() < deadline, f"bare jobs still queued after {WAIT_LIMIT:g} s")
        time.sleep(POLL_INTERVAL)


def job_argv(folder: Path, name: str, output: str, code: str) -> list[str]:
    """The ``sbatch`` options of one bare job: a trivial ``python -c`` with the interpreter
    the slurm worker uses (``sys.executable``), its stdout in ``folder``."""
    command = shlex.join([sys.executable, "-c", code])
    return [
        f"--job-name={name}",
        f"--chdir={folder}",
        f"--output={folder}/{output}.out",
        f"--error={folder}/{output}.err",
        "--wrap",
        f"exec {command}",
    ]


def read_outputs(folder: Path, n: int) -> list[int]:
    return [int((folder / f"{i}.out").read_text()) for i in range(n)]


def bare_array(folder: Path, n: int) -> None:
    """One ``sbatch --array=0-<n-1>`` whose element ``i`` prints ``i + 1``, waited for."""
    code = 'import os; print(int(os.environ["SLURM_ARRAY_TASK_ID"]) + 1)'
    wait_gone([sbatch([f"--array=0-{n - 1}", *job_argv(folder, "bare-array", "%a", code)])])


def bare_per_job(folder: Path, n: int) -> None:
    """``n`` ``sbatch`` calls, job ``i`` printing ``i + 1``, all waited for."""
    ids = [sbatch(job_argv(folder, "bare-job", str(i), f"print({i} + 1)")) for i in range(n)]
    wait_gone(ids)


def run_bare(root: Path, n: int, bare: Callable[[Path, int], None]) -> float:
    """Seconds from the first ``sbatch`` to ``squeue`` listing none of the jobs; the jobs'
    outputs checked after."""
    with scratch_dir(root, "slurm-bare") as folder:
        start = time.perf_counter()
        bare(folder, n)
        seconds = time.perf_counter() - start
        check(read_outputs(folder, n) == [x + 1 for x in range(n)], "bare sbatch: wrong outputs")
    return seconds


# -- the rows -----------------------------------------------------------------------------------


def bench_slurm(root: Path, n: int) -> list[Row]:
    bare_a = run_bare(root, n, bare_array)
    array = run_provgraph(root, n, array=True)
    bare_j = run_bare(root, n, bare_per_job)
    per_job = run_provgraph(root, n, array=False)
    return [
        Row(
            "1",
            f"slurm, {n} jobs, one job array",
            rate(n, array),
            f"{rate(n, bare_a)} bare sbatch --array=0-{n - 1} of python -c",
            fmt_ratio(array, bare_a),
            "none set",
            "info",
        ),
        Row(
            "2",
            f"slurm, {n} jobs, one sbatch per job (array=False)",
            rate(n, per_job),
            f"{rate(n, bare_j)} bare: {n} sbatch of python -c",
            fmt_ratio(per_job, bare_j),
            "none set",
            "info",
        ),
        Row(
            "3",
            f"slurm, {n} jobs, job array vs one sbatch per job",
            f"{array:.3f} s",
            f"{per_job:.3f} s one sbatch per job (row 2)",
            fmt_ratio(array, per_job),
            "none set",
            "info",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK_N_JOBS} jobs instead of {N_JOBS}"
    )
    args = parser.parse_args(argv)
    if shutil.which("sbatch") is None:
        print(f"provgraph SLURM worker benchmarks: SLURM rows skipped: no sbatch on PATH; {HOW}")
        return 0
    n = QUICK_N_JOBS if args.quick else N_JOBS
    about = (
        f"{n} jobs per row, each measured once, in this order: bare array, provgraph array, "
        f"bare per job, provgraph per job; poll interval {POLL_INTERVAL:g} s for provgraph "
        "and the bare squeue loops"
    )

    def measure(root: Path) -> list[Row]:
        return bench_slurm(root, n)

    footer = (
        "ratio = figure / baseline. A provgraph figure runs from making the Submitter to closing\n"
        "it, cache directory empty; a bare one from the first sbatch to squeue listing none of\n"
        "its jobs. The SLURM jobs share this machine (and its cores) with the submitting process."
    )
    return run_suite(
        "SLURM worker benchmarks", args.quick, about, "provgraph-slurm-bench-", measure, footer
    )


if __name__ == "__main__":
    sys.exit(main())
