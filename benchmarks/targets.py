"""The per-job cost targets of issue 17, each beside its baseline measured in the same run.

Rows (each min and median of ``--repeat`` runs, 3 by default, on every scratch root given, by
default tmpfs ``/dev/shm`` and the disk under ``/var/tmp``):

1. 1,000 split ``Inc`` jobs, ``serial``, empty cache, provenance on; beside joblib.Memory
   caching the same function over the same inputs (target: faster), and provgraph with
   provenance off (target: on / off <= 1.2x). These are wall times: on ``serial``, the
   records of succeeded Python jobs are written by a process beside the submitter
   (``provgraph/provenance/deferred.py``), so the CPU both processes spend is printed too
   (information; ``/proc`` ticks of 10 ms). And the same run as a script of its own: a fresh
   interpreter importing provgraph and running the jobs once, its whole wall time, on beside
   off (information: what a process pays once, imports, the environment's description, the
   renderer's fork, is in it).
2. the same jobs again, all reused; beside the floor (per input: its hash, ``open`` and
   ``pickle.load`` of its result; target <= 2x).
3. cf (2 processes), 1,000 and 10,000 jobs, provenance off; the per-job cost at 10k over the
   cost at 1k (target: flat, <= 1.15x), and 1k beside the issue's "chunked pool+pickle floor"
   (target <= 2x): a 2-process pool mapping the floor's work (per input, a hash-named
   directory and one pickle of the result in it) in 8 chunks. The same 1k with provenance on,
   and a bare chunked ``pool.map`` of the function alone (no files), are printed beside it.
4. (``--big``) the cost per job from 1,000 to 100,000 serial jobs, the 100,000-job run's peak
   memory, and the first query after it.
5. ``import provgraph`` in a fresh interpreter, beside a bare interpreter (target <= 0.1 s),
   with the bytecode caches an installed package has.
6. A SLURM job's start-up: ``slurm_run`` on a batch written by the ``slurm`` worker's own
   writer, from the interpreter's start to ``run_job`` (target <= 0.15 s; no cluster needed),
   beside a bare interpreter.

``--big`` adds row 4 (slow: minutes).

Run from the repository root: ``.venv/bin/python benchmarks/targets.py [--quick] [--big]``.
Exit code 0 whatever the figures; non-zero only when a benchmark gives a wrong result.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from run import (  # the shared helpers of benchmarks/run.py
    Inc,
    bare_cold,
    bare_dir,
    bare_store,
    check,
    inc,
    scratch_dir,
)

from provgraph import Submitter


def _stats(samples: list[float]) -> tuple[float, float]:
    return min(samples), statistics.median(samples)


def _repeat(n: int, once: Callable[[Path], float], root: Path, name: str) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        with scratch_dir(root, name) as where:
            samples.append(once(where))
    return _stats(samples)


def _provgraph(where: Path, xs: list[int], *, provenance: bool = True, **worker: Any) -> float:
    start = time.perf_counter()
    with Submitter(cache_dir=where, progress=False, provenance=provenance, **worker) as sub:
        result = sub(Inc().split(x=xs))
    took = time.perf_counter() - start
    check(result.outputs.out == [x + 1 for x in xs], "wrong outputs")
    return took


def _writing_bytecode() -> dict[str, str]:
    """This environment for a fresh interpreter that writes (and so reads) the bytecode caches
    an installed package has, even where ``PYTHONDONTWRITEBYTECODE`` is set."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


_FRESH = """
import sys
sys.path.insert(0, sys.argv[1])
from run import Inc
from provgraph import Submitter
xs = list(range(int(sys.argv[3])))
with Submitter(cache_dir=sys.argv[2], progress=False, provenance=sys.argv[4] == "on") as sub:
    assert sub(Inc().split(x=xs)).outputs.out == [x + 1 for x in xs]
"""


def _fresh(where: Path, xs: list[int], *, provenance: bool = True) -> float:
    """A script's run as users start it: a fresh interpreter that imports provgraph and runs
    the jobs once, its whole wall time; what a process pays once (imports, the environment's
    description, the renderer's fork) is in it."""
    env = _writing_bytecode()
    argv = [str(Path(__file__).parent), str(where), str(len(xs)), "on" if provenance else "off"]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _FRESH, *argv], check=True, env=env)
    return time.perf_counter() - start


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of process ``pid`` so far (Linux ``/proc``: 10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _provgraph_cpu(where: Path, xs: list[int], *, provenance: bool = True) -> float:
    """The CPU a serial run takes: this process's, and its record renderer's (the serial
    worker's records are written by a process beside it: provenance/deferred.py)."""
    from provgraph.provenance import deferred

    def renderer() -> int | None:  # (a private name: read here, for this figure only)
        found = deferred._RENDERER
        return None if found is None or not found.alive() else found.pid_of_child

    before = renderer()
    spent_before = _cpu_seconds(before) if before else 0.0
    start = time.process_time()
    _provgraph(where, xs, provenance=provenance)
    took = time.process_time() - start
    after = renderer()
    if after is not None:
        took += _cpu_seconds(after) - (spent_before if after == before else 0.0)
    return took


def _joblib(where: Path, xs: list[int]) -> float:
    import joblib

    start = time.perf_counter()
    memory = joblib.Memory(str(where), verbose=0)
    cached = memory.cache(inc)
    outs = [cached(x) for x in xs]
    took = time.perf_counter() - start
    check(outs == [x + 1 for x in xs], "joblib: wrong outputs")
    return took


def _floor_warm(where: Path, xs: list[int]) -> float:
    bare_cold(where, xs)
    start = time.perf_counter()
    for x in xs:
        with open(bare_dir(where, x) / "_result.pkl", "rb") as fh:
            pickle.load(fh)
    return time.perf_counter() - start


def _provgraph_warm(where: Path, xs: list[int]) -> float:
    _provgraph(where, xs)
    took = _provgraph(where, xs)
    return took


def _pool(where: Path, xs: list[int], *, files: bool = True) -> float:
    """A bare 2-process pool over ``xs`` in 8 chunks: the floor's work per input (``files``),
    or the function alone."""
    work: Callable[[int], int] = partial(bare_store, where) if files else inc
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        outs = list(pool.map(work, xs, chunksize=max(1, len(xs) // 8)))
    took = time.perf_counter() - start
    check(outs == [x + 1 for x in xs], "pool: wrong outputs")
    return took


def _import_time(code: str) -> float:
    """The wall time of a fresh interpreter running ``code`` (min of 5), with the compiled
    modules cached as an installed package has them (pip compiles it; an editable install
    writes its caches on first import): one warm-up run writes them, even where
    ``PYTHONDONTWRITEBYTECODE`` is set (which would make every run compile every module)."""
    env = _writing_bytecode()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)  # writes the caches
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        samples.append(time.perf_counter() - start)
    return min(samples)


_TIMED_SLURM_RUN = """
import os, sys, time
import provgraph.workers.slurm_run as S
def timed(job, run=S.run_job):
    print(time.time() - float(os.environ["PG_T0"]), flush=True)
    return run(job)
S.run_job = timed
sys.exit(S.main(sys.argv[1:]))
"""


def _slurm_startup(where: Path, repeat: int = 7) -> tuple[float, float]:
    """What a SLURM job spends before its task runs: ``python -m
    provgraph.workers.slurm_run`` on a batch the ``slurm`` worker's own writer made (one
    ``Inc`` job, provenance on), from the interpreter's start to ``run_job``; min / median of
    ``repeat`` fresh interpreters, with bytecode caches (no cluster needed: SLURM's own
    ``srun``/``slurmstepd`` time is not provgraph's)."""
    from provgraph.engine.job import run_job
    from provgraph.workers._payload import Packer
    from provgraph.workers.base import Worker
    from provgraph.workers.slurm import write_batch

    jobs: list[Any] = []

    class Keep(Worker):  # runs in-process, keeping each job as the slurm worker gets it
        def submit(self, job: Any) -> Any:
            from concurrent.futures import Future

            jobs.append(job)
            future: Future[Any] = Future()
            future.set_result(run_job(job))
            return future

    with Submitter(cache_dir=where / "cache", worker=Keep(), progress=False) as sub:
        sub(Inc(x=1))
    batch = where / "batch"
    batch.mkdir()
    write_batch(batch, jobs, Packer(), {"worker": "slurm"})
    env = _writing_bytecode()
    samples = []
    for i in range(repeat + 1):  # the first run writes the bytecode caches
        shutil.rmtree(jobs[0].output_dir, ignore_errors=True)  # so that the job runs again
        (batch / "0.outcome.pkl").unlink(missing_ok=True)
        env["PG_T0"] = repr(time.time())
        done = subprocess.run(
            [sys.executable, "-c", _TIMED_SLURM_RUN, str(batch), "0"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        check((batch / "0.outcome.pkl").exists(), "slurm_run wrote no outcome")
        if i:
            samples.append(float(done.stdout.split()[0]))
    return _stats(samples)


def _fmt(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.3f} / {pair[1]:.3f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, smaller counts")
    parser.add_argument("--big", action="store_true", help="also 100,000 jobs and a query")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", action="append", help="scratch roots (default tmpfs, disk)")
    args = parser.parse_args(argv)
    n = 1 if args.quick else args.repeat
    roots = [Path(r) for r in args.root or ["/dev/shm", "/var/tmp"] if Path(r).is_dir()]
    xs = list(range(200 if args.quick else 1000))
    print(f"# issue 17 targets: min / median of {n} run(s); python {sys.version.split()[0]}")
    print(f"{'row':44s} {'figure':>20s} {'baseline':>20s} {'ratio':>7s}  target")

    def row(name: str, fig: tuple[float, float], base: tuple[float, float], target: str) -> None:
        ratio = fig[0] / base[0] if base[0] else float("inf")
        print(f"{name:44s} {_fmt(fig):>20s} {_fmt(base):>20s} {ratio:6.2f}x  {target}")

    for root in roots:
        print(f"## scratch under {root}")
        on = _repeat(n, lambda w: _provgraph(w, xs), root, "on")
        off = _repeat(n, lambda w: _provgraph(w, xs, provenance=False), root, "off")
        try:
            joblib = _repeat(n, lambda w: _joblib(w, xs), root, "joblib")
            row(f"1 serial {len(xs)} cold, prov on vs joblib", on, joblib, "< 1.00x")
        except ImportError:
            print("1 serial vs joblib.Memory: skipped (pip install joblib)")
        row(f"1 serial {len(xs)} cold, prov on vs off", on, off, "<= 1.20x")
        on_cpu = _repeat(n, lambda w: _provgraph_cpu(w, xs), root, "on-cpu")
        off_cpu = _repeat(n, lambda w: _provgraph_cpu(w, xs, provenance=False), root, "off-cpu")
        row(
            f"1 serial {len(xs)} cold, CPU (+ renderer) on vs off", on_cpu, off_cpu, "(information)"
        )
        _repeat(1, lambda w: _fresh(w, xs[:10]), root, "fresh")  # (writes the bytecode caches)
        fresh_on = _repeat(n, lambda w: _fresh(w, xs), root, "fresh-on")
        fresh_off = _repeat(n, lambda w: _fresh(w, xs, provenance=False), root, "fresh-off")
        row(
            f"1 serial {len(xs)} cold, fresh process, on vs off",
            fresh_on,
            fresh_off,
            "(information)",
        )
        warm = _repeat(n, lambda w: _provgraph_warm(w, xs), root, "warm")
        floor = _repeat(n, lambda w: _floor_warm(w, xs), root, "floor")
        row(f"2 serial {len(xs)} warm vs floor", warm, floor, "<= 2.00x")
        small, large = xs, list(range(len(xs) * 10))
        cf_small = _repeat(
            n,
            lambda w, s=small: _provgraph(w, s, provenance=False, worker="cf", n_procs=2),
            root,
            "cf",
        )
        cf_large = _repeat(
            1,
            lambda w, s=large: _provgraph(w, s, provenance=False, worker="cf", n_procs=2),
            root,
            "cfl",
        )
        per = (cf_large[0] / len(large), cf_large[1] / len(large))
        row(
            f"3 cf per job {len(large)} vs {len(small)} (x1e3)",
            (per[0] * 1e3, per[1] * 1e3),
            (cf_small[0] / len(small) * 1e3, cf_small[1] / len(small) * 1e3),
            "<= 1.15x",
        )
        pool = _repeat(n, lambda w, s=small: _pool(w, s), root, "pool")
        row(f"3 cf {len(small)} off vs pool+pickle floor", cf_small, pool, "<= 2.00x")
        cf_on = _repeat(
            n, lambda w, s=small: _provgraph(w, s, worker="cf", n_procs=2), root, "cfon"
        )
        row(f"3 cf {len(small)} prov on vs pool+pickle floor", cf_on, pool, "(information)")
        bare = _repeat(n, lambda w, s=small: _pool(w, s, files=False), root, "bare")
        row(f"3 cf {len(small)} off vs pool.map, no files", cf_small, bare, "(information)")
        if args.big:
            per_job = on[0] / len(xs)
            for count in (10_000, 30_000):  # the cost per job from 1k up (the curve)
                with scratch_dir(root, f"curve{count}") as where:
                    took = _provgraph(where, list(range(count)))
                print(
                    f"4 serial {count:,} cold, prov on: {took:.2f} s, "
                    f"{took / count * 1e3:.3f} ms per job ({took / count / per_job:.2f}x 1k's)"
                )
            big = list(range(100_000))
            with tempfile.TemporaryDirectory(dir=root) as where:
                took = _provgraph(Path(where), big)
                # this process's peak so far: the 100k run's (the earlier runs are smaller)
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                from provgraph import ProvenanceStore

                start = time.perf_counter()
                (count,) = next(
                    iter(
                        ProvenanceStore(where).query(
                            "SELECT (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun }"
                        )
                    )
                )
                query = time.perf_counter() - start
                check(int(count) == len(big), "big: wrong count of runs")
            print(
                f"4 serial 100,000 cold, prov on: {took:.1f} s (target <= 15 s), peak RSS "
                f"{peak:.0f} MB (target <= 500 MB), "
                f"{took / len(big) * 1e3:.3f} ms per job ({took / len(big) / per_job:.2f}x 1k's); "
                f"first query after it: {query:.1f} s (target <= 5 s)"
            )
    bare = _import_time("pass")
    imported = _import_time("import provgraph")
    row("5 import provgraph (fresh interpreter)", (imported, imported), (bare, bare), "<= 0.1 s")
    with tempfile.TemporaryDirectory(dir=roots[0] if roots else None) as where:
        startup = _slurm_startup(Path(where))
    row("6 SLURM job start-up (slurm_run to run_job)", startup, (bare, bare), "<= 0.15 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
