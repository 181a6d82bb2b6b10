"""The ``provgraph`` command line; it calls only the public API.

``provgraph run FILE.py[:NAME] [--input name=VALUE ...] [--worker W] [--cache-dir DIR]
[--dry-run]`` runs the task instance (or task class, with ``--input`` values) named NAME in FILE.py;
VALUE is read as JSON when it parses, else taken as a string.

``provgraph graph FILE.py:NAME -o wf.svg|.png|.pdf|.dot|.mmd`` draws a workflow: DOT and
Mermaid text are written directly; pictures use Graphviz ``dot`` when it is installed, and
fall back to Mermaid text (``.mmd`` beside the requested file) when it is not.

``provgraph query CACHE 'SPARQL' | -f q.rq [--format table|csv|json]`` asks the provenance
recorded in CACHE; ``provgraph show CACHE [JOB]`` summarises it, or one job's runs;
``provgraph index CACHE [--rebuild]`` indexes pending records (or rebuilds the index);
``provgraph why CACHE JOB`` says why a job ran: what differs from the nearest earlier run;
``provgraph diff CACHE RUN_A RUN_B [--format json]`` classifies how two runs differ;
``provgraph export CACHE [--run IRI | --of FILE] --format F -o PATH`` writes provenance out
(``--format ro-crate -o DIR|x.zip [--data copy|link|none]``: a Workflow Run RO-Crate);
``provgraph rerun CACHE JOB [--verify] [--into DIR]`` reruns a job from its record;
``provgraph serve CACHE [--host H] [--port P]`` serves the provenance as a SPARQL endpoint;
``provgraph push CACHE [URL]`` sends the records a SPARQL server has not got yet;
``provgraph runs CACHE [--limit N] [--format table|json]`` lists the submissions, newest first.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import provgraph

__all__ = ["main"]


class _ScriptError(Exception):
    """The user's script raised while it loaded (its traceback is shown, not one line)."""


def _load(target: str) -> Any:
    path, _, name = target.partition(":")
    if not os.path.isfile(path):
        raise provgraph.SpecError(
            f"{target}: no file {path!r}; expected FILE.py[:NAME]", field="FILE", value=path
        )
    try:
        namespace = runpy.run_path(path, run_name="__provgraph_run__")
    except OSError as err:  # the user's own script: where it failed, as Python tells it
        raise _ScriptError(path) from err
    if name:
        if name not in namespace:
            raise provgraph.SpecError(f"{path} defines no {name!r}", field="NAME", value=name)
        return namespace[name]
    tasks = [v for v in namespace.values() if _defined_here(v)]
    if len(tasks) != 1:
        names = sorted(t.__name__ for t in tasks)
        raise provgraph.SpecError(
            f"{path}: name the task to run as FILE.py:NAME (found {names or 'none'})",
            field="NAME",
        )
    return tasks[0]


def _defined_here(value: Any) -> bool:
    """A task class the file made: a ``@python.define`` or ``@workflow.define`` function of
    its own, or a ``shell.define(...)`` (whose class lives in no module), not one imported."""
    if not isinstance(value, type) or not hasattr(value, "_definition_hash"):
        return False
    if value.__module__ == "__provgraph_run__":
        return True
    home = sys.modules.get(value.__module__)
    return getattr(home, value.__name__, None) is not value and value.__module__.startswith(
        "provgraph."
    )


def _parse_inputs(pairs: Sequence[str], flag: str = "--input") -> dict[str, Any]:
    """``name=VALUE`` pairs; a VALUE that is JSON is decoded, any other is a string."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise provgraph.SpecError(f"{flag} {pair!r}: expected name=value", field=flag)
        try:
            inputs[name] = json.loads(text)
        except ValueError:
            inputs[name] = text
    return inputs


def _run(args: argparse.Namespace) -> int:
    target = _load(args.target)
    inputs = _parse_inputs(args.input)
    task = target(**inputs) if isinstance(target, type) else target
    if inputs and not isinstance(target, type):
        for name, value in inputs.items():
            try:
                setattr(task, name, value)
            except AttributeError as err:
                raise provgraph.SpecError(
                    f"--input {name}: {type(task).__name__} has no input {name!r}",
                    field=name,
                    value=value,
                ) from err
    options = _parse_inputs(args.worker_option, "--worker-option")
    with provgraph.Submitter(cache_dir=args.cache_dir, worker=args.worker, **options) as sub:
        if args.dry_run:
            print(sub(task, dry_run=True))
            return 0
        result = sub(task)
    for name in result.outputs:
        print(f"{name} = {result.outputs[name]!r}")
    print(f"output_dir = {result.output_dir}")
    stats = result.stats
    print(f"executed {stats['executed']}, reused {stats['reused']}, failed {stats['failed']}")
    for failure in result.errors:
        print(failure, file=sys.stderr)
    return 1 if result.errored else 0


def _graph(args: argparse.Namespace) -> int:
    target = _load(args.target)
    wf_cls = target if isinstance(target, type) else type(target)
    if getattr(wf_cls, "_kind", None) != "workflow":
        raise provgraph.SpecError(
            f"{args.target} is not a workflow; expected a @workflow.define class",
            field="NAME",
        )
    out = Path(args.output)
    if not out.absolute().parent.is_dir() or out.is_dir():
        raise provgraph.SpecError(
            f"-o {args.output}: expected a file to write in an existing folder", field="-o"
        )
    suffix = out.suffix.lower()
    if suffix == ".dot":
        out.write_text(provgraph.graph.to_dot(wf_cls))
    elif suffix in (".mmd", ".md"):
        out.write_text(provgraph.graph.to_mermaid(wf_cls))
    elif suffix in (".svg", ".png", ".pdf"):
        dot = shutil.which("dot")
        if dot is None:
            fallback = out.with_suffix(".mmd")
            fallback.write_text(provgraph.graph.to_mermaid(wf_cls))
            print(f"graphviz 'dot' not found; wrote Mermaid text to {fallback}", file=sys.stderr)
            return 0
        subprocess.run(
            [dot, f"-T{suffix[1:]}", "-o", str(out)],
            input=provgraph.graph.to_dot(wf_cls),
            text=True,
            check=True,
        )
    else:
        raise provgraph.SpecError(
            f"-o {args.output}: unknown picture type {suffix!r}; expected .svg, .png, .pdf, "
            ".dot or .mmd",
            field="-o",
        )
    print(f"wrote {out}")
    return 0


def _store(cache: str) -> Any:
    """The provenance of ``cache``; a folder with no records of provgraph is refused (nothing
    is written into it)."""
    if cache.startswith(("http:", "https:")):
        return provgraph.ProvenanceStore(cache)
    if os.path.isdir(cache) and not os.path.isdir(os.path.join(cache, ".provenance")):
        raise provgraph.ProvenanceError(
            f"{cache!r} holds no provgraph records (no .provenance folder): is it a provgraph "
            f"cache? (If its .provenance folder was removed, `provgraph index {cache} --rebuild` "
            "makes it again from the records in its job directories.)"
        )
    return provgraph.ProvenanceStore(cache)


def _query(args: argparse.Namespace) -> int:
    if args.sparql is None and args.file is None:
        raise provgraph.SpecError("no query: give it as an argument or with -f FILE")
    if args.sparql is not None and args.file is not None:
        raise provgraph.SpecError("give the query as an argument or with -f FILE, not both")
    text = Path(args.file).read_text() if args.file else args.sparql
    store = _store(args.cache)
    result = store.query(text)
    if result.type == "ASK":
        print("true" if result.askAnswer else "false")
    elif result.type in ("CONSTRUCT", "DESCRIBE"):
        sys.stdout.write(result.graph.serialize(format="turtle"))
    elif args.format in ("csv", "json"):
        sys.stdout.write(result.serialize(format=args.format).decode())
    else:
        _print_table([str(v) for v in result.vars], [[_cell(t) for t in row] for row in result])
    return 0


def _cell(term: Any) -> str:
    return "" if term is None else str(term)


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _show(args: argparse.Namespace) -> int:
    store = _store(args.cache)
    if args.job is None:
        result = store.query(
            "SELECT ?task ?status (COUNT(DISTINCT ?run) AS ?runs) WHERE { "
            "?run a pg:JobRun ; pg:taskName ?task ; pg:status ?status } "
            "GROUP BY ?task ?status ORDER BY ?task ?status"
        )
        _print_table(["task", "status", "runs"], [[str(t) for t in row] for row in result])
        subs = store.query("SELECT (COUNT(DISTINCT ?s) AS ?n) WHERE { ?s a pg:Submission }")
        print(f"submissions recorded: {next(iter(subs))[0]}")
        return 0
    from provgraph.provenance.query import directory_run, inside, show_job

    named = args.job if args.job.startswith("urn:") else directory_run(store, args.job)
    if named is not None:  # a run IRI, or a workflow's or split's directory
        whole = inside(store, named)
        if whole is not None:  # a submission or workflow run: it, then its jobs
            kind = "submission" if whole["kind"] == "Submission" else "workflow run"
            print(f"{kind} {whole['run']}")
            for key in ("task", "status", "started", "ended"):
                print(f"  {key + ':':9} {whole.get(key, '-')}")
            rows = [
                [j["node"], j["status"], j["job"], j["started"][:19].replace("T", " ")]
                for j in whole["jobs"]
            ]
            _print_table(["node", "status", "job", "started"], rows)
            failed = [j for j in whole["jobs"] if j["status"] != "succeeded"]
            for job in failed:
                print()
                _show_runs(show_job(store, job["run"]))
            return 0
    runs = show_job(store, args.job)
    if not runs:
        print(f"no recorded run of job {args.job!r}", file=sys.stderr)
        return 1
    _show_runs(runs)
    return 0


def _show_runs(runs: list[dict[str, Any]]) -> None:
    from provgraph.provenance.query import place_text

    for run in runs:
        print(f"run {run['run']}")
        for key in ("task", "node", "status", "job", "started", "ended", "dir"):
            print(f"  {key + ':':9} {run[key]}")
        for env in run["environment"]:
            print(f"  python:   {env['python']} on {env['host']} ({env['platform']})")
        for place in run["placement"]:
            print(f"  worker:   {place_text(place)}")
        for box in run["container"]:
            print(f"  container: {box['runtime']} {box['image']} {box['digest']}")
        for kind in ("inputs", "outputs"):
            print(f"  {kind}:")
            for item in run[kind]:
                shown = item.get("where") or item.get("value") or ""
                print(f"    {item['field']}: {item['hash']}  {shown}".rstrip())
        failure = run.get("failure")
        if failure:
            code = failure["exit_code"]
            print(
                f"  error:    {failure['error']}"
                + (f" (exit code {code})" if code is not None else "")
            )
            for line in failure["message"].splitlines():
                print(f"    {line}")
            if failure["traceback"]:
                print("  traceback (last lines):")
                for line in failure["traceback"]:
                    print(f"    {line}")
            for log in failure["logs"]:
                print(f"  log:      {log}")


def _index(args: argparse.Namespace) -> int:
    from provgraph.provenance.store import index_files, rebuild_index

    cache = Path(args.cache)
    if not cache.is_dir():
        raise provgraph.SpecError(f"cache directory {args.cache!r} does not exist", field="CACHE")
    if args.rebuild:
        count = rebuild_index(cache, announce=True)
    else:
        count = index_files(cache, [], announce=True)
    print(f"indexed {count} file(s)")
    return 0


def _why(args: argparse.Namespace) -> int:
    store = _store(args.cache)
    print(store.why(args.job).text())
    return 0


def _diff(args: argparse.Namespace) -> int:
    from provgraph.provenance.diff import diff_text

    report = _store(args.cache).diff(args.first, args.second)
    print(json.dumps(report, indent=2) if args.format == "json" else diff_text(report))
    return 0


def _gc(args: argparse.Namespace) -> int:
    done = _store(args.cache).gc(
        keep_last=args.keep_last,
        older_than=args.older_than,
        failed=args.failed,
        max_size=args.max_size,
        dry_run=args.dry_run,
    )
    print(done)
    return 0


def _runs(args: argparse.Namespace) -> int:
    rows = _store(args.cache).runs(args.limit)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0

    def count(row: dict[str, Any], name: str) -> str:
        return "-" if row[name] is None else str(row[name])

    table = [
        [
            row["started"][:19].replace("T", " "),
            "-" if row["seconds"] is None else f"{row['seconds']:.1f} s",
            row["task"],
            row["status"],
            count(row, "executed"),
            count(row, "reused"),
            count(row, "failed"),
            count(row, "skipped"),
            row["run"],
        ]
        for row in rows
    ]
    heads = ["started", "took", "task", "status", "ran", "reused", "failed", "skipped", "run"]
    _print_table(heads, table)
    return 0


def _push(args: argparse.Namespace) -> int:
    report = _store(args.cache).push(args.url)
    print(
        f"pushed {report.graphs} graph(s) from {report.files} record file(s); "
        f"{report.pending} record file(s) not written yet"
    )
    if report.error is not None:
        print(f"provgraph: error: push stopped: {report.error}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    store = _store(args.cache)
    store.serve(args.host, args.port, announce=lambda line: print(line, flush=True))
    print("provgraph: server stopped", flush=True)
    return 0


def _export(args: argparse.Namespace) -> int:
    store = _store(args.cache)
    options: dict[str, Any] = {}
    if args.format == "ro-crate":
        options = {
            "data": args.data,
            "agent_name": args.agent_name,
            "agent_orcid": args.agent_orcid,
            "license": args.license,
        }
    elif any(v is not None for v in (args.data, args.agent_name, args.agent_orcid, args.license)):
        raise provgraph.ProvgraphError(
            "export: --data, --agent-name, --agent-orcid and --license are options of "
            f"--format ro-crate, not of --format {args.format}"
        )
    path = store.export(args.output, args.format, run=args.run, output=args.of, **options)
    print(f"wrote {path}")
    return 0


def _rerun(args: argparse.Namespace) -> int:
    result = _store(args.cache).rerun(args.job, verify=args.verify, into=args.into)
    for job in getattr(result, "jobs", [result]):
        print(f"rerun {job.run} of {job.rerun_of}")
        if args.into is not None:
            print(f"  outputs in {job.output_dir}")
        for field, same in sorted(job.reproduced.items()):
            print(f"  {field}: {'reproduced' if same else 'NOT reproduced'}")
    return 0 if not args.verify or result.all_reproduced else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``provgraph`` command."""
    parser = argparse.ArgumentParser(prog="provgraph", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=provgraph.__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a task defined in a Python file")
    run.add_argument("target", help="FILE.py[:NAME]")
    run.add_argument("--input", "-i", action="append", default=[], help="name=VALUE")
    run.add_argument("--worker", default=None, help="serial (default), cf, dask or slurm")
    run.add_argument(
        "--worker-option",
        "-w",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a worker option, e.g. -w n_procs=4, -w address=tcp://host:8786, "
        "-w sbatch_args=--partition=short (VALUE is JSON if it parses, else text)",
    )
    run.add_argument("--cache-dir", default=None, help="cache directory")
    run.add_argument(
        "--dry-run",
        "-n",
        action="store_true",
        help="say which jobs would run and which would be reused; run and write nothing",
    )
    graph = commands.add_parser("graph", help="draw a workflow")
    graph.add_argument("target", help="FILE.py:NAME of a workflow")
    graph.add_argument("-o", "--output", required=True, help="wf.svg|.png|.pdf|.dot|.mmd")
    query = commands.add_parser("query", help="ask the recorded provenance with SPARQL")
    query.add_argument("cache", help="cache directory")
    query.add_argument("sparql", nargs="?", help="the query (or use -f)")
    query.add_argument("-f", "--file", help="read the query from a file")
    query.add_argument("--format", choices=["table", "csv", "json"], default="table")
    runs = commands.add_parser("runs", help="list the submissions recorded, newest first")
    runs.add_argument("cache", help="cache directory")
    runs.add_argument("--limit", type=int, default=None, help="at most this many")
    runs.add_argument("--format", choices=["table", "json"], default="table")
    gc = commands.add_parser(
        "gc", help="remove job directories no kept submission needs (records stay)"
    )
    gc.add_argument("cache", help="cache directory")
    gc.add_argument("--keep-last", type=int, metavar="N", help="keep the N newest submissions")
    gc.add_argument("--older-than", metavar="AGE", help="let go submissions older than 30d, 12h")
    gc.add_argument("--failed", action="store_true", help="remove failed attempts too")
    gc.add_argument("--max-size", metavar="SIZE", help="let the oldest go until under 10G, 500M")
    gc.add_argument("--dry-run", "-n", action="store_true", help="say what would go; remove none")
    push = commands.add_parser("push", help="send the records a SPARQL server lacks")
    push.add_argument("cache", help="cache directory")
    push.add_argument("url", nargs="?", help="server (default: PROVGRAPH_PROVENANCE_STORE)")
    serve = commands.add_parser("serve", help="serve the provenance as a SPARQL endpoint")
    serve.add_argument("cache", help="cache directory")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=7878, help="port (7878; 0: a free one)")
    show = commands.add_parser("show", help="summarise recorded runs, or one job's")
    show.add_argument("cache", help="cache directory")
    show.add_argument("job", nargs="?", help="job hash (or prefix), job directory or run IRI")
    index = commands.add_parser("index", help="index records not yet indexed")
    index.add_argument("cache", help="cache directory")
    index.add_argument("--rebuild", action="store_true", help="rebuild the index from files")
    why = commands.add_parser("why", help="why a job ran instead of being reused")
    why.add_argument("cache", help="cache directory")
    why.add_argument("job", help="job hash (or prefix), job directory or run IRI")
    diff = commands.add_parser("diff", help="how two recorded runs differ")
    diff.add_argument("cache", help="cache directory")
    diff.add_argument("first", help="job hash (or prefix), job directory or run IRI")
    diff.add_argument("second", help="job hash (or prefix), job directory or run IRI")
    diff.add_argument("--format", choices=["text", "json"], default="text")
    export = commands.add_parser("export", help="write recorded provenance to a file")
    export.add_argument("cache", help="cache directory")
    export.add_argument("--run", help="only this submission (its IRI)")
    export.add_argument("--of", metavar="FILE", help="only the lineage of this file or hash")
    export.add_argument(
        "--format",
        default="jsonld",
        choices=[
            "jsonld",
            "turtle",
            "trig",
            "nt",
            "provn",
            "provjson",
            "provxml",
            "html",
            "ro-crate",
        ],
    )
    export.add_argument(
        "-o", "--output", required=True, help="file to write (ro-crate: a new folder, or x.zip)"
    )
    crate = export.add_argument_group("ro-crate options")
    crate.add_argument(
        "--data",
        choices=["copy", "link", "none"],
        help="files: copied in (default with --of), linked at their location (default "
        "otherwise), or described only",
    )
    crate.add_argument("--agent-name", help="who ran it (default: PROVGRAPH_AGENT_NAME, login)")
    crate.add_argument("--agent-orcid", help="their ORCID (default: PROVGRAPH_AGENT_ORCID)")
    crate.add_argument("--license", help="the crate's licence, e.g. an SPDX URL")
    rerun = commands.add_parser("rerun", help="rerun a recorded job and check its outputs")
    rerun.add_argument("cache", help="cache directory")
    rerun.add_argument("job", help="job hash (or prefix), job directory or run IRI")
    rerun.add_argument(
        "--verify", action="store_true", help="compare outputs; exit 1 if any differ"
    )
    rerun.add_argument(
        "--into", help="folder to keep the rerun's outputs in (default: a scratch folder, removed)"
    )
    args = parser.parse_args(argv)
    handlers = {
        "rerun": _rerun,
        "export": _export,
        "diff": _diff,
        "run": _run,
        "graph": _graph,
        "query": _query,
        "gc": _gc,
        "push": _push,
        "runs": _runs,
        "serve": _serve,
        "show": _show,
        "index": _index,
        "why": _why,
    }
    try:
        return handlers[args.command](args)
    except provgraph.ProvgraphError as err:
        print(f"provgraph: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, and the shell's code for it
        print("provgraph: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``provgraph show CACHE | head``): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush cannot fail again
        return 141
    except OSError as err:  # a file or folder that cannot be read or written (named in err)
        print(f"provgraph: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
