"""provgraph dask worker benchmarks: each figure beside a baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/dask_worker.py [--quick]

1,000 trivial jobs (``Inc`` split over ``range(1000)``, empty cache) on the ``dask`` worker
(a ``LocalCluster`` of 2 worker processes) beside a bare ``client.map`` of the same function on
the same kind of cluster; both timed on a cluster already started, whose start-up is a row of
its own. Prints one table in the style of ``benchmarks/run.py`` (whose helpers it shares). The
exit code is 0 whatever the figures are; only an error (a wrong result, a crash) makes it
non-zero. See ``benchmarks/README.md`` for what each row measures.

(Not ``dask.py``: the script's directory is ``sys.path[0]``, so that name would shadow the
``dask`` package.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import distributed

# Shared with the engine benchmarks: this file's directory is sys.path[0] when run as a script.
from run import Row, check, fmt_ratio, run_suite, scratch_dir, timed, verdict

from provgraph import Submitter, python

N_JOBS = 1000
N_WORKERS = 2
# The bare cluster; also what Submitter(worker="dask", n_workers=2) starts (checked).
CLUSTER = {
    "n_workers": N_WORKERS,
    "threads_per_worker": 1,
    "processes": True,
    "dashboard_address": None,
}
PROVGRAPH = "provgraph"
NO_PROVENANCE = "provgraph, provenance=False"
BARE = "bare"


@python.define
def Inc(x: int) -> int:
    """The trivial task of the timed submission."""
    return x + 1


@python.define
def WarmUp(x: int) -> int:
    """The one job that starts the worker's cluster: another task, so no ``Inc`` job shares
    its hash."""
    return x


def inc(x: int) -> int:
    """``Inc``'s body, for the bare baseline."""
    return x + 1


def run_provgraph(root: Path, provenance: bool, xs: list[int]) -> tuple[float, float]:
    """In a fresh cache directory: a Submitter on the dask worker, one warm-up job (which
    starts the LocalCluster), then ``Inc`` split over ``xs`` on the same Submitter. Returns
    (seconds from making the Submitter to the warm-up job's result, seconds of the split)."""
    with scratch_dir(root, "dask-provgraph") as cache_dir:
        start = time.perf_counter()
        with Submitter(
            cache_dir=cache_dir,
            worker="dask",
            n_workers=N_WORKERS,
            progress=False,
            provenance=provenance,
        ) as sub:
            warm = sub(WarmUp(x=-1))
            startup = time.perf_counter() - start
            check(warm.outputs.out == -1, "dask warm-up job: wrong output")
            check(sub.worker.cluster is not None, "dask warm-up job started no LocalCluster")
            check(
                sub.worker.cluster_options == CLUSTER,
                f"dask worker's cluster {sub.worker.cluster_options} differs from {CLUSTER}",
            )
            seconds, result = timed(lambda: sub(Inc().split(x=xs)))
        # checked outside the timing, with the Submitter (and its cluster) closed
        check(result.outputs.out == [x + 1 for x in xs], "dask worker: wrong outputs")
        check(
            result.stats["executed"] == len(xs),
            f"dask worker: expected all {len(xs)} executed, got {dict(result.stats)}",
        )
    return startup, seconds


def run_bare(xs: list[int]) -> tuple[float, float]:
    """A bare LocalCluster and Client, one job, then ``client.gather(client.map(...))`` over
    ``xs``. Returns (seconds to start the cluster and get the first job's result, seconds of
    the map)."""
    start = time.perf_counter()
    with (
        distributed.LocalCluster(**CLUSTER) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        first = client.submit(inc, -1, pure=False).result()
        startup = time.perf_counter() - start
        check(first == 0, "bare dask first job: wrong output")
        seconds, outs = timed(lambda: client.gather(client.map(inc, xs, pure=False)))
    check(outs == [x + 1 for x in xs], "bare dask map: wrong outputs")
    return startup, seconds


def bench_dask(root: Path, repeats: int) -> list[Row]:
    xs = list(range(N_JOBS))
    kinds = [PROVGRAPH, NO_PROVENANCE, BARE]
    startups: dict[str, list[float]] = {k: [] for k in kinds}
    runs: dict[str, list[float]] = {k: [] for k in kinds}
    for repeat in range(repeats):
        # each repetition starts with another of the three, so none always runs first
        for kind in kinds[repeat % 3 :] + kinds[: repeat % 3]:
            if kind == BARE:
                startup, seconds = run_bare(xs)
            else:
                startup, seconds = run_provgraph(root, kind == PROVGRAPH, xs)
            startups[kind].append(startup)
            runs[kind].append(seconds)
    p, q, b = (min(runs[k]) for k in kinds)
    ps, bs = min(startups[PROVGRAPH]), min(startups[BARE])
    where = f"dask(n_workers={N_WORKERS})"
    bare_text = f"{b:.3f} s bare client.gather(client.map(inc, xs))"
    return [
        Row(
            "1",
            f"{where} cold, {N_JOBS:,} jobs",
            f"{p:.3f} s",
            bare_text,
            fmt_ratio(p, b),
            "<= 2x bare dask",
            verdict(p <= 2 * b),
        ),
        Row(
            "1a",
            f"  {where} cold, {N_JOBS:,} jobs, provenance=False",
            f"{q:.3f} s",
            bare_text,
            fmt_ratio(q, b),
            "none set",
            "info",
        ),
        Row(
            "1b",
            "cluster start-up and first job",
            f"{ps:.3f} s",
            f"{bs:.3f} s bare LocalCluster+Client+submit().result()",
            fmt_ratio(ps, bs),
            "none set",
            "info",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one repetition")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3
    about = (
        f"best of {repeats}; each provgraph run in a fresh cache directory with its own "
        f"LocalCluster (n_workers={N_WORKERS}, threads_per_worker=1, processes), each bare run "
        "with its own cluster of the same options; the three kinds take turns going first"
    )

    def measure(root: Path) -> list[Row]:
        return bench_dask(root, repeats)

    footer = (
        "ratio = figure / baseline. Rows 1 and 1a time sub(Inc().split(x=range(1000))) on a\n"
        "Submitter whose cluster a one-job submission already started (row 1b, from making the\n"
        "Submitter); the bare map runs on a cluster that already ran one job. For reference,\n"
        "Pydra 0.25's dask worker took 29.9 s for these 1,000 jobs, bare dask 2.1 s (14x)."
    )
    return run_suite(
        "dask worker benchmarks", args.quick, about, "provgraph-dask-bench-", measure, footer
    )


if __name__ == "__main__":
    sys.exit(main())
