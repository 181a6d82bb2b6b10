"""provgraph workflow benchmarks: each figure beside a baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/workflows.py [--quick]

Three workloads: a 100-node linear chain, two chained 1,000-element nodes in one workflow, and
one 100,000-element split (wall time and peak memory, in a child process). Prints one table in
the style of ``benchmarks/run.py`` (whose helpers it shares): the figure, its baseline, their
ratio, the target and PASS/MISS. The exit code is 0 whatever the figures are; only an error (a
wrong result, a crash) makes it non-zero. See ``benchmarks/README.md`` for what each row
measures.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import xxhash

# Shared with the engine benchmarks: this file's directory is sys.path[0] when run as a script.
from run import (
    Row,
    check,
    fmt_ratio,
    run_suite,
    scratch_dir,
    timed,
    verdict,
)

from provgraph import Submitter, python, workflow

CHAIN_LENGTH = 100
PAIR_SIZE = 1000
BIG_SPLIT = 100_000
QUICK_BIG_SPLIT = 10_000
N_PROCS = 2
RESULT_FILE = "_result.pkl"  # a job directory's result (provgraph.cache.RESULT_NAME)
GIB = 1024**3
MIB = 1024**2


def fmt_s(seconds: float) -> str:
    """Seconds, or milliseconds below 0.1 s (warm runs take well under one)."""
    return f"{seconds:.3f} s" if seconds >= 0.1 else f"{seconds * 1e3:.2f} ms"


# -- tasks and workflows ------------------------------------------------------------------------


@python.define
def Inc(x: int) -> int:
    """The trivial task of the chain, of the first split node and of the big split."""
    return x + 1


@python.define
def Double(x: int) -> int:
    """The second node of the pair: another task, so no job shares a hash with one of ``Inc``'s
    (``Inc(x=a.out)`` would reuse 999 of the first node's 1,000 results)."""
    return 2 * x


@workflow.define
def Chain(x: int) -> int:
    """``CHAIN_LENGTH`` ``Inc`` nodes, each reading the one before."""
    node = workflow.add(Inc(x=x), name="n0")
    for i in range(1, CHAIN_LENGTH):
        node = workflow.add(Inc(x=node.out), name=f"n{i}")
    return node.out


@workflow.define
def SplitPair(x: list[int]) -> list[int]:
    """``Inc`` split over ``x``, then ``Double`` of each element (it inherits the state)."""
    a = workflow.add(Inc().split(x=x), name="a")
    return workflow.add(Double(x=a.out), name="b").out


def inc(x: int) -> int:
    """``Inc``'s body, for the bare baselines."""
    return x + 1


def double(x: int) -> int:
    """``Double``'s body, for the bare baselines."""
    return 2 * x


# -- bare baselines -----------------------------------------------------------------------------


def bare_dir(root: Path, name: str, x: int) -> Path:
    """``<root>/<name>-<xxh3 of the input>``, as a job directory is named."""
    return root / f"{name}-{xxhash.xxh3_128_hexdigest(repr(x).encode())}"


def bare_store(root: Path, name: str, func: Callable[[int], int], x: int) -> int:
    """One bare job: a hash-named directory, made, with one pickle of the result in it."""
    directory = bare_dir(root, name, x)
    directory.mkdir()
    out = func(x)
    with open(directory / RESULT_FILE, "wb") as fh:
        pickle.dump({"out": out}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def bare_load(root: Path, name: str, x: int) -> int:
    """One bare lookup: the hash-named directory's pickle, read back."""
    with open(bare_dir(root, name, x) / RESULT_FILE, "rb") as fh:
        return int(pickle.load(fh)["out"])


def bare_chain_cold(root: Path, n: int) -> int:
    """``n`` sequential ``bare_store`` calls, each on the previous one's result."""
    x = 1
    for _ in range(n):
        x = bare_store(root, "Inc", inc, x)
    return x


def bare_chain_warm(root: Path, n: int) -> int:
    """The same ``n`` steps, each reading the stored result back."""
    x = 1
    for _ in range(n):
        x = bare_load(root, "Inc", x)
    return x


def bare_chain_pool(root: Path, n: int) -> int:
    """``bare_chain_cold`` with each step sent to a bare pool of ``N_PROCS`` processes and
    waited for (pool startup and shutdown included)."""
    x = 1
    with ProcessPoolExecutor(N_PROCS) as pool:
        for _ in range(n):
            x = pool.submit(bare_store, root, "Inc", inc, x).result()
    return x


def bare_pair_cold(root: Path, xs: list[int]) -> list[int]:
    """``bare_store`` for each input with ``inc``, then for each of those results with
    ``double``."""
    firsts = [bare_store(root, "Inc", inc, x) for x in xs]
    return [bare_store(root, "Double", double, y) for y in firsts]


def bare_pair_warm(root: Path, xs: list[int]) -> list[int]:
    """Both nodes' stored results, read back."""
    firsts = [bare_load(root, "Inc", x) for x in xs]
    return [bare_load(root, "Double", y) for y in firsts]


def bare_pair_pool(root: Path, xs: list[int]) -> list[int]:
    """``bare_pair_cold`` as two ``pool.map`` calls (``chunksize`` about 4 chunks per process)
    on a bare pool of ``N_PROCS`` processes, startup and shutdown included."""
    chunk = math.ceil(len(xs) / (4 * N_PROCS))
    with ProcessPoolExecutor(N_PROCS) as pool:
        firsts = list(pool.map(partial(bare_store, root, "Inc", inc), xs, chunksize=chunk))
        return list(pool.map(partial(bare_store, root, "Double", double), firsts, chunksize=chunk))


def bare_load_one(path: Path) -> int:
    """One ``open`` and ``pickle.load``: what a whole-workflow cache hit has to do at least."""
    with open(path, "rb") as fh:
        return int(pickle.load(fh)["out"])


# -- provgraph runs -----------------------------------------------------------------------------


@dataclass
class Submission:
    """What one timed submission gave."""

    outputs: Any
    stats: dict[str, int]
    output_dir: Path


def submit(cache_dir: Path, task: Any, worker: str) -> Submission:
    """Make a ``Submitter``, run ``task`` and close it (all of it timed by the caller)."""
    options: dict[str, Any] = {"n_procs": N_PROCS} if worker == "cf" else {}
    # progress=False: a terminal would get a live table (a refresh thread); off a terminal
    # the default only counts events, which costs next to nothing.
    with Submitter(cache_dir=cache_dir, worker=worker, progress=False, **options) as sub:
        result = sub(task)
    return Submission(result.outputs.out, dict(result.stats), result.output_dir)


@dataclass
class Timings:
    """Best-of-N seconds of one workload on one worker, and of its bare baselines."""

    cold: float
    warm_nodes: float
    warm_whole: float
    bare_cold: float
    bare_warm: float
    bare_one: float
    bare_pool: float


def bench_workflow(
    root: Path,
    worker: str,
    task: Any,
    expected: Any,
    n_jobs: int,
    bare: tuple[Callable[[Path], Any], Callable[[Path], Any], Callable[[Path], Any]],
    repeats: int,
) -> Timings:
    """Cold, warm (whole-workflow hit) and warm (every node looked up) runs of ``task``, each
    cold one in a fresh cache directory, and the bare cold / warm / pool loops."""
    bare_cold, bare_warm, bare_pool = bare
    runs: dict[str, list[float]] = {k: [] for k in Timings.__dataclass_fields__}
    for _ in range(repeats):
        with scratch_dir(root, f"{worker}-{type(task).__name__}") as cache_dir:
            seconds, sub = timed(partial(submit, cache_dir, task, worker))
            check(sub.outputs == expected, f"{worker} cold: wrong outputs")
            check(sub.stats["executed"] == n_jobs, f"{worker} cold: not all executed {sub.stats}")
            runs["cold"].append(seconds)

            seconds, sub = timed(partial(submit, cache_dir, task, worker))
            check(sub.outputs == expected, f"{worker} warm: wrong outputs")
            check(sub.stats["reused"] == 1, f"{worker} warm: expected one reuse, {sub.stats}")
            runs["warm_whole"].append(seconds)

            # Only the workflow's own result goes: each node's job is looked up again.
            (sub.output_dir / RESULT_FILE).unlink()
            seconds, sub = timed(partial(submit, cache_dir, task, worker))
            check(sub.outputs == expected, f"{worker} warm nodes: wrong outputs")
            check(
                sub.stats["reused"] == n_jobs and sub.stats["executed"] == 0,
                f"{worker} warm nodes: expected all {n_jobs} reused, {sub.stats}",
            )
            runs["warm_nodes"].append(seconds)

        with scratch_dir(root, "bare") as bare_root:
            seconds, out = timed(partial(bare_cold, bare_root))
            check(out == expected, "bare cold loop: wrong outputs")
            runs["bare_cold"].append(seconds)
            seconds, out = timed(partial(bare_warm, bare_root))
            check(out == expected, "bare warm loop: wrong outputs")
            runs["bare_warm"].append(seconds)
            last = next(bare_root.iterdir()) / RESULT_FILE
            runs["bare_one"].append(timed(partial(bare_load_one, last))[0])
        with scratch_dir(root, "bare-pool") as bare_root:
            seconds, out = timed(partial(bare_pool, bare_root))
            check(out == expected, "bare pool: wrong outputs")
            runs["bare_pool"].append(seconds)
    return Timings(**{k: min(v) for k, v in runs.items()})


def workflow_rows(
    keys: list[str],
    label: str,
    worker: str,
    t: Timings,
    bare_text: tuple[str, str, str],
    targets: tuple[float | None, float | None],
) -> list[Row]:
    """Three rows (``keys``) for one workload on one worker: cold, warm (every node looked
    up), warm (whole-workflow hit)."""
    cold_text, warm_text, pool_text = bare_text
    cold_target, warm_target = targets
    where = f"cf(n_procs={N_PROCS})" if worker == "cf" else worker
    # cf sends each cache miss to its pool: compare with a bare pool doing the same work.
    cold_base, cold_base_text = (
        (t.bare_pool, pool_text) if worker == "cf" else (t.bare_cold, cold_text)
    )

    def target(limit: float | None) -> tuple[str, str]:
        return ("none set", "info") if limit is None else (f"<= {limit:g} s", "")

    rows = []
    for key, measure, figure, base, base_text, limit in (
        (keys[0], "cold", t.cold, cold_base, cold_base_text, cold_target),
        (keys[1], "warm, every node looked up", t.warm_nodes, t.bare_warm, warm_text, warm_target),
        (
            keys[2],
            "warm, whole-workflow hit",
            t.warm_whole,
            t.bare_one,
            "one open+pickle.load",
            None,
        ),
    ):
        target_text, result = target(limit)
        rows.append(
            Row(
                key,
                f"{label} {where} {measure}",
                fmt_s(figure),
                f"{fmt_s(base)} {base_text}",
                fmt_ratio(figure, base),
                target_text,
                result or verdict(limit is not None and figure <= limit),
            )
        )
    return rows


def bench_chain(root: Path, repeats: int) -> list[Row]:
    n = CHAIN_LENGTH
    bare = (
        partial(bare_chain_cold, n=n),
        partial(bare_chain_warm, n=n),
        partial(bare_chain_pool, n=n),
    )
    texts = (
        f"bare loop: {n} x (xxh3 name+mkdir+pickle.dump)",
        f"bare loop: {n} x (xxh3 name+open+pickle.load)",
        f"bare pool: {n} x submit().result() of the loop body",
    )
    rows = []
    for worker, keys in (("serial", ["1a", "1b", "1c"]), ("cf", ["1d", "1e", "1f"])):
        t = bench_workflow(root, worker, Chain(x=1), n + 1, n, bare, repeats)
        rows += workflow_rows(keys, f"chain of {n},", worker, t, texts, (0.3, 0.05))
    return rows


def bench_pair(root: Path, repeats: int) -> list[Row]:
    xs = list(range(PAIR_SIZE))
    bare = (
        partial(bare_pair_cold, xs=xs),
        partial(bare_pair_warm, xs=xs),
        partial(bare_pair_pool, xs=xs),
    )
    n = 2 * PAIR_SIZE
    texts = (
        f"bare loop: {n} x (xxh3 name+mkdir+pickle.dump)",
        f"bare loop: {n} x (xxh3 name+open+pickle.load)",
        f"bare pool: 2 pool.map of the loop body, chunksize={math.ceil(PAIR_SIZE / 8)}",
    )
    expected = [2 * (x + 1) for x in xs]
    rows = []
    for worker, keys in (("serial", ["2a", "2b", "2c"]), ("cf", ["2d", "2e", "2f"])):
        t = bench_workflow(root, worker, SplitPair(x=xs), expected, n, bare, repeats)
        targets = (2.0, None) if worker == "serial" else (None, None)
        rows += workflow_rows(keys, f"{n} jobs, 2 nodes,", worker, t, texts, targets)
    return rows


# -- 3: a big split, in a child process ---------------------------------------------------------


def peak_rss_bytes() -> int:
    """This process's peak resident set: ``VmHWM`` (Linux), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def child(kind: str, n: int, cache_dir: Path) -> None:
    """In a child process: one big split (``provgraph``) or its bare loop (``bare``); print
    one JSON line with the seconds it took and the process's peak resident set."""
    xs = list(range(n))
    start = time.perf_counter()
    if kind == "provgraph":
        with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
            result = sub(Inc().split(x=xs))
        outs, executed = result.outputs.out, result.stats["executed"]
    else:
        outs, executed = [bare_store(cache_dir, "Inc", inc, x) for x in xs], n
    seconds = time.perf_counter() - start
    check(outs == [x + 1 for x in xs] and executed == n, f"{kind} big split: wrong result")
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss_bytes()}))


def run_child(kind: str, n: int, cache_dir: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(n), str(cache_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    check(proc.returncode == 0, f"{kind} big split child failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def bench_big(root: Path, n: int) -> list[Row]:
    with scratch_dir(root, "big") as cache_dir:
        figure = run_child("provgraph", n, cache_dir)
    with scratch_dir(root, "big-bare") as cache_dir:
        bare = run_child("bare", n, cache_dir)
    rss, bare_rss = figure["peak_rss"], bare["peak_rss"]
    return [
        Row(
            "3a",
            f"{n:,} split jobs, serial, wall time",
            fmt_s(figure["seconds"]),
            f"{fmt_s(bare['seconds'])} bare loop: {n:,} x (xxh3 name+mkdir+pickle.dump)",
            fmt_ratio(figure["seconds"], bare["seconds"]),
            "none set",
            "info",
        ),
        Row(
            "3b",
            f"{n:,} split jobs, serial, peak RSS",
            f"{rss / MIB:.0f} MiB",
            f"{bare_rss / MIB:.0f} MiB the bare loop's process",
            fmt_ratio(rss, bare_rss),
            "< 2 GiB",
            verdict(rss < 2 * GIB),
        ),
    ]


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: one repetition, a {QUICK_BIG_SPLIT:,}-element big split",
    )
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, n, directory = args.child
        child(kind, int(n), Path(directory))
        return 0
    repeats = 1 if args.quick else 3
    big = QUICK_BIG_SPLIT if args.quick else BIG_SPLIT

    about = (
        f"best of {repeats} for rows 1 and 2 (cold runs each in a fresh cache directory); "
        f"rows 3 once, in child processes"
    )

    def measure(root: Path) -> list[Row]:
        return bench_chain(root, repeats) + bench_pair(root, repeats) + bench_big(root, big)

    footer = (
        "ratio = figure / baseline. The warm targets (rows 1b, 1e) are for every node looked\n"
        "up (the workflow's own result deleted first); whole-workflow hits are information."
    )
    return run_suite(
        "workflow benchmarks", args.quick, about, "provgraph-wf-bench-", measure, footer
    )


if __name__ == "__main__":
    sys.exit(main())
