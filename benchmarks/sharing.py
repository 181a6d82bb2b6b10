"""provgraph sharing benchmarks: each figure beside a baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/sharing.py [--quick]

A store of about a million quads (``--quick``: 50,000), made as ``benchmarks/provenance.py``
makes it (whose functions this script imports), then:

* a lookup (what produced this content hash) and a 10-run lineage, asked over HTTP of
  ``provgraph serve`` through ``ProvenanceStore(url)``, beside the same questions asked
  in-process of ``ProvenanceStore(cache)``; both answers are checked;
* the whole store pushed to a fresh Oxigraph server (``oxigraph serve``, PyPI ``oxigraph``) with
  ``provgraph push`` (one idempotent PUT per record graph), beside one bulk POST of the same
  quads as N-Quads.

Prints one table in the style of ``benchmarks/run.py``. The exit code is 0 whatever the figures
are; only an error (a wrong answer, a crash) makes it non-zero.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from provenance import (
    QUERY_REPEATS,
    QUICK_STORE_QUADS,
    STORE_QUADS,
    ask,
    build_store,
    pick_targets,
    verify,
)
from run import Row, check, fmt_ratio, run_suite, scratch_dir, timed

from provgraph import ProvenanceStore
from provgraph.provenance.remote import push

OXIGRAPH = Path(sys.executable).with_name("oxigraph")


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[Any]) -> None:
    for _ in range(1200):
        try:
            with urllib.request.urlopen(f"{url}/query?query=ASK%7B%7D", timeout=5):
                return
        except OSError:
            check(process.poll() is None, f"the server for {url} exited")
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def best(store: ProvenanceStore, kind: str, targets: list[dict[str, Any]]) -> float:
    """Best time of one question over the targets, each answer checked."""
    times = []
    for _ in range(QUERY_REPEATS):
        for target in targets:
            seconds, rows = timed(partial(ask, store, kind, target))
            verify(kind, target, rows)
            times.append(seconds)
    return min(times)


def bench_queries(cache: Path, targets: list[dict[str, Any]]) -> list[Row]:
    local = ProvenanceStore(cache)
    server = subprocess.Popen(
        [sys.executable, "-m", "provgraph", "serve", str(cache), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ", 1)[1].split()[0].removesuffix("/sparql")
        wait_ready(url, server)
        remote = ProvenanceStore(url)
        rows = []
        for key, kind, label in (
            ("1", "what", "lookup: what produced a content hash"),
            ("2", "used", "lineage, 10 runs upstream"),
        ):
            here, there = best(local, kind, targets), best(remote, kind, targets)
            rows.append(
                Row(
                    key,
                    f"{label}, over HTTP (provgraph serve)",
                    fmt_ms(there),
                    f"{fmt_ms(here)} in-process",
                    fmt_ratio(there, here),
                    "info",
                    "info",
                )
            )
        return rows
    finally:
        server.terminate()
        server.wait(timeout=60)


def bench_push(root: Path, cache: Path, runs: int) -> list[Row]:
    if not OXIGRAPH.exists():
        return [Row("3", f"push skipped: no {OXIGRAPH}", "-", "-", "-", "info", "info")]
    figures = {}
    for how in ("push", "bulk"):
        with scratch_dir(root, f"oxigraph-{how}") as folder:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            server = subprocess.Popen(
                [
                    str(OXIGRAPH),
                    "serve",
                    "--location",
                    str(folder),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--union-default-graph",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_ready(url, server)
                if how == "push":
                    seconds, report = timed(partial(push, cache, url))
                    check(report.error is None, f"push: {report.error}")
                    figures["graphs"] = report.graphs
                else:
                    seconds, _ = timed(partial(bulk_post, cache, url))
                found = ProvenanceStore(url).query(
                    "SELECT (COUNT(DISTINCT ?r) AS ?n) WHERE { ?r a pg:JobRun }"
                )
                check(int(next(iter(found))[0]) == runs, f"{how}: job runs missing on the server")
                figures[how] = seconds
            finally:
                server.terminate()
                server.wait(timeout=60)
    rate = figures["graphs"] / figures["push"]
    return [
        Row(
            "3",
            f"push {figures['graphs']} record graphs to oxigraph serve",
            f"{rate:.0f} graphs/s",
            f"{figures['bulk']:.2f} s one bulk POST of the N-Quads",
            fmt_ratio(figures["push"], figures["bulk"]),
            "info",
            "info",
        )
    ]


def bulk_post(cache: Path, url: str) -> None:
    """The baseline: the whole index's named graphs in one POST (not idempotent per run)."""
    import pyoxigraph as ox

    native = ProvenanceStore(cache).oxigraph()
    quads = [q for q in native if not isinstance(q.graph_name, ox.DefaultGraph)]
    data = ox.serialize(quads, format=ox.RdfFormat.N_QUADS) or b""
    request = urllib.request.Request(
        f"{url}/store", data=data, headers={"Content-Type": "application/n-quads"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=600) as answer:
        answer.read()


def bench(root: Path, quick: bool) -> list[Row]:
    with scratch_dir(root, "cache") as cache:
        info = build_store(cache, QUICK_STORE_QUADS if quick else STORE_QUADS)
        targets = pick_targets(cache, 3)
        rows = [
            Row(
                "0",
                "store:",
                f"{info.quads:,} quads",
                f"{info.job_runs:,} job runs",
                "-",
                "info",
                "info",
            )
        ]
        rows += bench_queries(cache, targets)
        return rows + bench_push(root, cache, info.job_runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a 50,000-quad store")
    args = parser.parse_args(argv)
    about = f"best of {QUERY_REPEATS} x 3 targets per question; one push, one bulk load"
    footer = "ratio = figure / baseline (row 3: push time / bulk load time)"
    return run_suite(
        "sharing benchmarks",
        args.quick,
        about,
        "provgraph-share-",
        partial(bench, quick=args.quick),
        footer,
    )


if __name__ == "__main__":
    sys.exit(main())
