"""provgraph export benchmarks: each figure beside a baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/exports.py [--quick]

A store of about a million quads, made by running the engine exactly as
``benchmarks/provenance.py`` makes it (whose functions this script imports), then:

* the whole store exported to JSON-LD, Turtle and N-Triples through ``ProvenanceStore.export``,
  each in its own child process (seconds and peak resident set), beside pyoxigraph's own serializer
  dumping the same index's default graph (the union of every run) to Turtle, N-Triples and
  JSON-LD, each in its own child process too: the ratio is what going through rdflib costs;
* one result's report, ``store.export(path, "jsonld", output=<a final output>)``, beside the
  same selection made and written by pyoxigraph alone.

Prints one table in the style of ``benchmarks/run.py`` (whose helpers it shares). The exit code
is 0 whatever the figures are; only an error (a wrong export, a crash) makes it non-zero. See
``benchmarks/README.md`` for what each row measures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pyoxigraph as ox

# Shared with the provenance and engine benchmarks: this file's directory is sys.path[0] when
# run as a script.
from provenance import (
    CHAIN,
    QUERY_REPEATS,
    QUICK_STORE_QUADS,
    STORE_QUADS,
    build_store,
    fmt_mib,
    fmt_s,
    pick_targets,
    rss,
)
from run import Row, check, fmt_ratio, run_suite, scratch_dir, timed, verdict

from provgraph import ProvenanceStore
from provgraph.provenance import vocab as V

ONE_RESULT_LIMIT = 1.0  # seconds: the target for one result's report
EXPORT_RATIO = 2.0  # issue 17: a whole-store export within 2x pyoxigraph's writer (time, memory)
ISSUE_RDFLIB_SECONDS = "36-44 s"  # what the issue measured rdflib taking for 1 M triples
PREFIXES = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}
SPARQL_PREFIXES = "".join(f"PREFIX {p}: <{ns}>\n" for p, ns in PREFIXES.items())

# provgraph's whole-store exports (format given to store.export) and the native baselines
EXPORTS = {"jsonld": "jsonld", "turtle": "turtle", "nt": "nt"}
NATIVE = {
    "native-turtle": ox.RdfFormat.TURTLE,
    "native-nt": ox.RdfFormat.N_TRIPLES,
    "native-jsonld": ox.RdfFormat.JSON_LD,
}
# how to read each output back, to check it holds the whole store
READ_AS = {
    "jsonld": ox.RdfFormat.JSON_LD,
    "turtle": ox.RdfFormat.TURTLE,
    "nt": ox.RdfFormat.N_TRIPLES,
    **NATIVE,
}

# The native one-result baseline: the selection ``export(output=...)`` makes (every run upstream
# of the output, the submissions they are part of, the environments they used), by SPARQL on
# the Oxigraph store itself.
NATIVE_LINEAGE = (
    SPARQL_PREFIXES
    + """SELECT DISTINCT ?run WHERE {
  %s prov:wasGeneratedBy/(prov:used/prov:wasGeneratedBy)* ?run . ?run a pg:JobRun }"""
)
NATIVE_GRAPHS = (
    SPARQL_PREFIXES
    + """SELECT DISTINCT ?g WHERE { VALUES ?r { %s }
  { ?r prov:used ?g . ?g a pg:Environment } UNION { ?r pg:partOf+ ?g . ?g a pg:Submission } }"""
)
NATIVE_QUADS = "SELECT ?s ?p ?o WHERE { VALUES ?g { %s } GRAPH ?g { ?s ?p ?o } }"


def index_path(cache_dir: Path) -> Path:
    """The Oxigraph index of a cache (``ProvenanceStore``'s, under ``.provenance``)."""
    from provgraph.provenance.index import Index

    path = Index(cache_dir).store_path()
    check(path is not None, f"no index in {cache_dir}")
    assert path is not None
    return path


def count_triples(path: Path, fmt: ox.RdfFormat) -> int:
    """Triples (as a set) in an output file, read back with pyoxigraph."""
    return len(set(ox.parse(path=str(path), format=fmt)))


# -- in a child process: one whole-store export, or the one-result reports ----------------------


def measured(work: Callable[[], Any]) -> dict[str, float]:
    """Run ``work`` once: its seconds, and this process's peak resident set during it (the
    growth of ``VmHWM`` over ``VmRSS`` just before, and ``VmHWM`` itself)."""
    before = rss()
    seconds, _ = timed(work)
    peak = rss("VmHWM")
    return {"seconds": seconds, "peak": peak - before, "hwm": peak}


def child_export(fmt: str, cache_dir: Path, out: Path) -> dict[str, float]:
    """``store.export(out, fmt)`` of the whole store, the store opened first (untimed)."""
    store = ProvenanceStore(cache_dir)
    return measured(partial(store.export, out, EXPORTS[fmt]))


def native_dump(cache_dir: Path, out: Path, fmt: ox.RdfFormat) -> None:
    """The baseline: pyoxigraph opens the index and dumps its default graph (the union of every
    run, as a set: what ``export`` writes) with its own serializer."""
    store = ox.Store.read_only(str(index_path(cache_dir)))
    prefixes = None if fmt == ox.RdfFormat.N_TRIPLES else PREFIXES
    store.dump(str(out), fmt, from_graph=ox.DefaultGraph(), prefixes=prefixes)


def child_native(kind: str, cache_dir: Path, out: Path) -> dict[str, float]:
    return measured(partial(native_dump, cache_dir, out, NATIVE[kind]))


def select(store: ox.Store, sparql: str) -> ox.QuerySolutions:
    """A SELECT query's solutions, asked of the Oxigraph store directly."""
    solutions = store.query(sparql)
    if not isinstance(solutions, ox.QuerySolutions):
        raise RuntimeError(f"not a SELECT query: {sparql}")
    return solutions


def native_report(cache_dir: Path, final: str, out: Path) -> int:
    """The one-result baseline: the same selection as ``export(output=final)``, asked of the
    Oxigraph store directly, its triples written as JSON-LD by pyoxigraph; returns the
    triples written."""
    store = ox.Store.read_only(str(index_path(cache_dir)))
    runs = [row["run"] for row in select(store, NATIVE_LINEAGE % ox.NamedNode(final))]
    check(len(runs) == CHAIN, f"native lineage of {final}: {len(runs)} runs")
    values = " ".join(str(r) for r in runs)
    graphs = [*runs, *(row["g"] for row in select(store, NATIVE_GRAPHS % values))]
    rows = select(store, NATIVE_QUADS % " ".join(str(g) for g in graphs))
    triples = dict.fromkeys(ox.Triple(row["s"], row["p"], row["o"]) for row in rows)
    ox.serialize(triples, str(out), ox.RdfFormat.JSON_LD, prefixes=PREFIXES)
    return len(triples)


def child_one(cache_dir: Path, work: Path) -> dict[str, Any]:
    """One result's report for each target (the first one in this fresh process), then the
    native baseline for each; every report is read back and checked against the baseline."""
    targets = json.loads((work / "targets.json").read_text())
    open_seconds, store = timed(partial(ProvenanceStore, cache_dir))
    ours: list[float] = []
    native: list[float] = []
    sizes: list[int] = []
    counts: list[int] = []
    for i, target in enumerate(targets):
        out = work / f"one-{i}.jsonld"
        seconds, _ = timed(partial(store.export, out, "jsonld", output=target["final"]))
        ours.append(seconds)
        sizes.append(out.stat().st_size)
    for i, target in enumerate(targets):
        out = work / f"one-{i}-native.jsonld"
        seconds, written = timed(partial(native_report, cache_dir, target["final"], out))
        native.append(seconds)
        got = count_triples(work / f"one-{i}.jsonld", ox.RdfFormat.JSON_LD)
        check(got == written, f"report of {target['final']}: {got} triples, native {written}")
        counts.append(got)
        subjects = {str(q.subject) for q in ox.parse(path=str(out), format=ox.RdfFormat.JSON_LD)}
        runs = {r["run"] for r in store.lineage(target["final"])}
        check(
            len(runs) == CHAIN and runs <= {s.strip("<>") for s in subjects},
            f"report of {target['final']}: runs missing",
        )
    lineage_times = [timed(partial(store.lineage, t["final"]))[0] for t in targets]
    return {
        "open": open_seconds,
        "ours": ours,
        "native": native,
        "lineage": min(lineage_times),
        "triples": max(counts),
        "bytes": max(sizes),
    }


def run_child(kind: str, cache_dir: Path, out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(cache_dir), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    check(proc.returncode == 0, f"child {kind} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def child_main(kind: str, cache_dir: Path, out: Path) -> None:
    if kind in EXPORTS:
        result: dict[str, Any] = child_export(kind, cache_dir, out)
    elif kind in NATIVE:
        result = child_native(kind, cache_dir, out)
    elif kind == "one":
        result = child_one(cache_dir, out)
    else:
        raise SystemExit(f"unknown child {kind!r}")
    print(json.dumps(result))


# -- the rows -----------------------------------------------------------------------------------


def bench_exports(root: Path, target: int) -> list[Row]:
    with scratch_dir(root, "store") as cache_dir, scratch_dir(root, "out") as work:
        info = build_store(cache_dir, target)
        (work / "targets.json").write_text(json.dumps(pick_targets(cache_dir, QUERY_REPEATS)))
        results: dict[str, dict[str, Any]] = {}
        sizes: dict[str, int] = {}
        triples: dict[str, int] = {}
        for kind in [*NATIVE, *EXPORTS]:  # the fast native dumps first: they warm the index
            out = work / f"whole-{kind}"
            results[kind] = run_child(kind, cache_dir, out)
            sizes[kind] = out.stat().st_size
            triples[kind] = count_triples(out, READ_AS[kind])
            out.unlink()
        one = run_child("one", cache_dir, work)
    expected = triples["native-nt"]
    for kind, count in triples.items():
        check(count == expected, f"{kind}: {count:,} triples, the default graph has {expected:,}")

    base = results["native-turtle"]
    rows = [
        Row(
            "1",
            f"store: {info.quads:,} quads, {expected:,} distinct triples",
            fmt_s(info.seconds),
            f"to run {info.submissions} Lineage submissions ({info.job_runs:,} job runs); "
            f"{info.files:,} TriG files, {fmt_mib(info.trig_bytes)}",
            "-",
            "none set",
            "info",
        )
    ]
    for key, kind, name in (("a", "jsonld", "JSON-LD"), ("b", "turtle", "Turtle")):
        ratio = results[kind]["seconds"] / base["seconds"]
        rows.append(
            Row(
                f"2{key}",
                f"whole store to {name}: store.export",
                fmt_s(results[kind]["seconds"]),
                f"{fmt_s(base['seconds'])} pyoxigraph Store.dump, Turtle",
                fmt_ratio(results[kind]["seconds"], base["seconds"]),
                f"<= {EXPORT_RATIO:g}x",
                verdict(ratio <= EXPORT_RATIO),
            )
        )
    for key, kind, name in (("c", "native-nt", "N-Triples"), ("d", "native-jsonld", "JSON-LD")):
        rows.append(
            Row(
                f"2{key}",
                f"whole store to {name}: pyoxigraph Store.dump",
                fmt_s(results[kind]["seconds"]),
                f"{fmt_s(base['seconds'])} pyoxigraph Store.dump, Turtle",
                fmt_ratio(results[kind]["seconds"], base["seconds"]),
                "none set",
                "info",
            )
        )
    rows.append(
        Row(
            "2e",
            "whole store: output sizes",
            f"JSON-LD {fmt_mib(sizes['jsonld'])}, Turtle {fmt_mib(sizes['turtle'])}, "
            f"N-Triples {fmt_mib(sizes['nt'])}",
            f"pyoxigraph: Turtle {fmt_mib(sizes['native-turtle'])}, "
            f"N-Triples {fmt_mib(sizes['native-nt'])}, JSON-LD {fmt_mib(sizes['native-jsonld'])}",
            "-",
            "none set",
            "info",
        )
    )
    native_nt = results["native-nt"]
    rows.append(
        Row(
            "2f",
            "whole store to N-Triples: store.export",
            fmt_s(results["nt"]["seconds"]),
            f"{fmt_s(native_nt['seconds'])} pyoxigraph Store.dump, N-Triples",
            fmt_ratio(results["nt"]["seconds"], native_nt["seconds"]),
            f"<= {EXPORT_RATIO:g}x",
            verdict(results["nt"]["seconds"] <= EXPORT_RATIO * native_nt["seconds"]),
        )
    )
    for key, kind, name in (("a", "jsonld", "JSON-LD"), ("b", "turtle", "Turtle")):
        data = results[kind]
        rows.append(
            Row(
                f"3{key}",
                f"whole store to {name}: peak RSS growth",
                f"+{fmt_mib(data['peak'])} (peak {fmt_mib(data['hwm'])})",
                f"+{fmt_mib(base['peak'])} (peak {fmt_mib(base['hwm'])}) pyoxigraph, Turtle",
                fmt_ratio(data["peak"], base["peak"]),
                f"<= {EXPORT_RATIO:g}x",
                verdict(data["peak"] <= EXPORT_RATIO * base["peak"]),
            )
        )
    nt = results["nt"]
    rows.append(
        Row(
            "3c",
            "whole store to N-Triples: peak RSS growth",
            f"+{fmt_mib(nt['peak'])} (peak {fmt_mib(nt['hwm'])})",
            f"+{fmt_mib(native_nt['peak'])} (peak {fmt_mib(native_nt['hwm'])}) pyoxigraph, "
            "N-Triples",
            fmt_ratio(nt["peak"], native_nt["peak"]),
            f"<= {EXPORT_RATIO:g}x",
            verdict(nt["peak"] <= EXPORT_RATIO * native_nt["peak"]),
        )
    )
    first, rest = one["ours"][0], min(one["ours"][1:] or one["ours"])
    native_first, native_rest = one["native"][0], min(one["native"][1:] or one["native"])
    limit = f"<= {ONE_RESULT_LIMIT:g} s"
    rows += [
        Row(
            "4a",
            "one result's report: export(jsonld, output=), first in process",
            fmt_s(first),
            f"{fmt_s(native_first)} the same selection, pyoxigraph alone",
            fmt_ratio(first, native_first),
            limit,
            verdict(first <= ONE_RESULT_LIMIT),
        ),
        Row(
            "4b",
            f"one result's report: best of the next {max(1, len(one['ours']) - 1)}",
            fmt_s(rest),
            f"{fmt_s(native_rest)} the same selection, pyoxigraph alone",
            fmt_ratio(rest, native_rest),
            limit,
            verdict(rest <= ONE_RESULT_LIMIT),
        ),
        Row(
            "4c",
            "one result's report: size",
            f"{one['triples']:,} triples, {one['bytes'] / 1024:,.0f} KiB",
            f"store.lineage(output) alone {fmt_s(one['lineage'])}; "
            f"ProvenanceStore() {fmt_s(one['open'])}",
            "-",
            "none set",
            "info",
        ),
    ]
    return rows


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: a store of about {QUICK_STORE_QUADS:,} quads",
    )
    parser.add_argument("--child", nargs=3, metavar=("KIND", "DIR", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, directory, out = args.child
        child_main(kind, Path(directory), Path(out))
        return 0
    target = QUICK_STORE_QUADS if args.quick else STORE_QUADS

    about = (
        f"pyoxigraph {ox.__version__}; a store of about {target:,} quads made by the engine "
        "(as benchmarks/provenance.py); each whole-store export and dump once, in its own child "
        f"process; one-result reports for {QUERY_REPEATS} final outputs, in one child"
    )
    footer = (
        "ratio = figure / baseline. Whole-store baselines: pyoxigraph's own serializer dumping\n"
        "the index's default graph (the union of every run's graph, as a set: the triples the\n"
        "exports write; rows 2 check that every output holds the same number). Peak RSS: the\n"
        "growth of VmHWM over VmRSS just before the export, in the export's child process.\n"
        f"For reference, the issue measured rdflib at {ISSUE_RDFLIB_SECONDS} for 1 M triples."
    )
    return run_suite(
        "export benchmarks",
        args.quick,
        about,
        "provgraph-export-bench-",
        lambda root: bench_exports(root, target),
        footer,
    )


if __name__ == "__main__":
    sys.exit(main())
