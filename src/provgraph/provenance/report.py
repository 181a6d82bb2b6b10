"""A single-page HTML report of recorded provenance.

The page is self-contained (inline SVG and CSS, no scripts, nothing fetched). For one
submission (the newest, unless another is chosen) it shows: what was submitted and how it went;
the runs drawn as a graph (an arrow from a run to each run that used what it produced; each box
links to its run's section); a timeline of the runs per worker process; a table of every run
with its time, CPU and peak memory; each failure with its error, exit code and the end of its
stderr; then, per run, its inputs, outputs, environment and where it ran. Runs are sorted
naturally (``[2]`` before ``[10]``) and labelled with their input values; runs an earlier
submission made, reused here, are drawn dashed and grey.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from . import vocab as V
from ._report_draw import graph_svg, natural_key, timeline_svg
from .query import (
    RUN_CONTAINER,
    RUN_ENVIRONMENT,
    RUN_FAILURE,
    RUN_INPUTS,
    RUN_OUTPUTS,
    RUN_PLACEMENT,
    place_text,
)

__all__ = ["html_report"]

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
h3.run { font-size: 1.0em; margin-top: 1.6em; border-top: 1px solid #ddd; padding-top: 0.6em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; font-size: 0.9em; text-align: left; }
th { background: #f3f3f3; } code { font-size: 0.85em; }
td.num { text-align: right; }
.failed { color: #b00; } .interrupted { color: #a60; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.5em; overflow-x: auto;
      font-size: 0.8em; }
svg text { font-size: 12px; font-family: sans-serif; } svg text.small { font-size: 10px; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px;
               border: 1px solid #447; border-radius: 4px; font-size: 0.85em; }
"""

_NS = {
    "prov": "http://www.w3.org/ns/prov#",
    "pg": "https://w3id.org/provgraph/ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
}

_RUNS = """SELECT ?run ?task ?node ?index ?status ?started ?ended ?job ?dir ?host ?pid ?worker
    ?slurm ?cpu_user ?cpu_system ?memory ?code WHERE {
  ?run a pg:JobRun ; pg:taskName ?task ; pg:jobHash ?job .
  OPTIONAL { ?run pg:nodeName ?node } OPTIONAL { ?run pg:elementIndex ?index }
  OPTIONAL { ?run pg:status ?status } OPTIONAL { ?run prov:startedAtTime ?started }
  OPTIONAL { ?run prov:endedAtTime ?ended } OPTIONAL { ?run pg:outputDir ?dir }
  OPTIONAL { ?run pg:workerHost ?host } OPTIONAL { ?run pg:workerPid ?pid }
  OPTIONAL { ?run pg:worker ?worker } OPTIONAL { ?run pg:slurmJobId ?slurm }
  OPTIONAL { ?run pg:cpuUserTime ?cpu_user } OPTIONAL { ?run pg:cpuSystemTime ?cpu_system }
  OPTIONAL { ?run pg:peakMemory ?memory } OPTIONAL { ?run pg:exitCode ?code }
}"""


def _rows(graph: Any, sparql: str, run: str | None = None) -> list[dict[str, str]]:
    import rdflib

    result = graph.query(
        sparql, initBindings={"run": rdflib.URIRef(run)} if run else None, initNs=_NS
    )
    names = [str(v) for v in result.vars]
    return [{n: str(r[i]) for i, n in enumerate(names) if r[i] is not None} for r in result]


def _grouped(graph: Any, sparql: str) -> dict[str, list[dict[str, str]]]:
    """One query for every run (``?run`` selected too), its rows grouped by run."""
    grouped: dict[str, list[dict[str, str]]] = {}
    select = sparql.replace("SELECT DISTINCT ", "SELECT DISTINCT ?run ", 1)
    if select == sparql:
        select = sparql.replace("SELECT ", "SELECT ?run ", 1)
    for row in _rows(graph, select):
        grouped.setdefault(row["run"], []).append(row)
    return grouped


def _table(header: list[str], rows: list[list[str]], raw: int = -1) -> str:
    """A table; cells are escaped, except column ``raw`` (already HTML)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{c}</td>" if i == raw else f"<td><code>{html.escape(c)}</code></td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _short(value: str, width: int = 18) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def _input_text(item: dict[str, str]) -> str:
    if "value" in item:
        return f"{item['field']}={_short(item['value'])}"
    if "where" in item:
        return f"{item['field']}={_short(item['where'].rsplit('/', 1)[-1])}"
    return f"{item['field']}=#{item['hash'].rsplit(':', 1)[-1][:8]}"


def _tail(path: Path, lines: int = 20) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _seconds(run: dict[str, Any]) -> str:
    import datetime

    if not run.get("started") or not run.get("ended"):
        return ""
    took = datetime.datetime.fromisoformat(run["ended"]) - datetime.datetime.fromisoformat(
        run["started"]
    )
    return f"{took.total_seconds():.3f} s"


def _mib(value: str | None) -> str:
    return f"{int(value) / 2**20:.1f} MiB" if value else ""


def _cpu(value: str | None) -> str:
    return f"{float(value):.3f} s" if value else ""


def _collect_runs(graph: Any, submission: str | None) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _rows(graph, _RUNS)
    inside: set[str] = set()
    if submission is not None:
        import rdflib

        inside = {
            str(r)
            for (r,) in graph.query(
                "SELECT ?run WHERE { ?run a pg:JobRun ; pg:partOf+ ?top }",
                initBindings={"top": rdflib.URIRef(submission)},
                initNs=_NS,
            )
        }
    inputs = _grouped(graph, RUN_INPUTS)
    for run in runs:
        run["reused"] = submission is not None and run["run"] not in inside
        run["status"] = run.get("status", "")
        node = run.get("node", run["task"])
        values = [_input_text(i) for i in inputs.get(run["run"], [])]
        run["title"] = f"{node} [{run.get('index', '0')}]"
        run["label"] = run["title"] + ("\n" + ", ".join(values[:2]) if values else "")
        run["tip"] = f"{run['title']}: {run['task']}, {run['status']}" + (
            f" ({', '.join(values)})" if values else ""
        )
        if run["reused"]:
            run["tip"] += ", reused from an earlier submission"
        lane = run.get("host", "?") + (f" pid {run['pid']}" if run.get("pid") else "")
        if run.get("slurm"):
            lane = f"{run.get('host', '?')} SLURM {run['slurm']}"
        run["lane"] = lane
    runs.sort(key=lambda r: (natural_key(r.get("node", r["task"])), int(r.get("index", 0))))
    for i, run in enumerate(runs):
        run["anchor"] = f"run_{i}"
    return runs


def _summary(info: dict[str, Any] | None, n_runs: int, n_reused: int) -> str:
    if info is None:
        return f"<p>{n_runs} job run(s).</p>"
    counts = ", ".join(
        f"{info[k]} {k}" for k in ("executed", "reused", "failed", "skipped") if info.get(k)
    )
    rows = [
        [
            info["task"],
            info["status"],
            info["started"][:19].replace("T", " "),
            f"{info['seconds']:.3f} s" if info.get("seconds") is not None else "",
            counts or "-",
        ]
    ]
    return (
        _table(["task", "status", "started", "took", "jobs"], rows)
        + f"<p>{n_runs} job run(s) shown, {n_reused} of them reused from earlier submissions.</p>"
    )


def _failures(graph: Any, runs: list[dict[str, Any]]) -> list[str]:
    parts: list[str] = []
    for run in runs:
        if run["reused"] or run["status"] not in ("failed", "interrupted"):
            continue
        rows = _rows(graph, RUN_FAILURE, run["run"])
        row = rows[0] if rows else {}
        folder = V.iri_path(run.get("dir", ""))
        stderr = _tail(folder / "stderr.txt") if folder is not None else []
        lines = stderr or row.get("traceback", "").splitlines()[-20:]
        what = "stderr (last lines)" if stderr else "traceback (last lines)"
        code = f", exit code {row['code']}" if "code" in row else ""
        logs = [
            str(folder / n)
            for n in ("stderr.txt", "stdout.txt", "_error.json", "_worker.log")
            if folder is not None and (folder / n).is_file()
        ]
        parts.append(
            f"<h3 class='{run['status']}'><a href='#{run['anchor']}'>"
            f"{html.escape(run['title'])}</a>: {html.escape(row.get('error', run['status']))}"
            f"{html.escape(code)}</h3>"
            f"<p>{html.escape(row.get('message', ''))}</p>"
            + (f"<p>{what}:</p><pre>{html.escape(chr(10).join(lines))}</pre>" if lines else "")
            + (f"<p>logs: {', '.join(f'<code>{html.escape(x)}</code>' for x in logs)}</p>")
        )
    return parts


def _resources(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        link = f"<a href='#{run['anchor']}'>{html.escape(run['title'])}</a>"
        rows.append(
            [
                link,
                run["task"],
                "reused" if run["reused"] else run["status"],
                run.get("started", "")[11:23],
                _seconds(run),
                _cpu(run.get("cpu_user")),
                _cpu(run.get("cpu_system")),
                _mib(run.get("memory")),
                run.get("code", ""),
                run["lane"],
            ]
        )
    fresh = [r for r in runs if not r["reused"]]
    total_cpu = sum(float(r.get("cpu_user", 0)) + float(r.get("cpu_system", 0)) for r in fresh)
    peak = max((int(r["memory"]) for r in fresh if r.get("memory")), default=0)
    head = [
        "run",
        "task",
        "status",
        "started",
        "took",
        "CPU user",
        "CPU system",
        "peak memory",
        "exit",
        "worker",
    ]
    return _table(head, rows, raw=0) + (
        f"<p>CPU time of the runs here: {total_cpu:.3f} s; largest peak memory: "
        f"{_mib(str(peak)) if peak else 'not recorded'}.</p>"
    )


def _run_section(graph: Any, run: dict[str, Any], by_run: dict[str, Any]) -> list[str]:
    iri = run["run"]
    css = f" {run['status']}" if run["status"] in ("failed", "interrupted") else ""
    reused = " (reused from an earlier submission)" if run["reused"] else ""
    parts = [
        f"<h3 id='{run['anchor']}' class='run{css}'>{html.escape(run['title'])}: "
        f"{html.escape(run['task'])}, {html.escape(run['status'])}{reused}</h3>",
        _table(
            ["run", "job hash", "started", "ended"],
            [[iri, run["job"], run.get("started", ""), run.get("ended", "")]],
        ),
    ]
    for name in ("inputs", "outputs"):
        items = by_run[name].get(iri, [])
        rows = [[i["field"], i["hash"], i.get("where") or i.get("value", "")] for i in items]
        if rows:
            parts.append(
                f"<h4>{name}</h4>" + _table(["field", "content hash", "location or value"], rows)
            )
    for env in by_run["environment"].get(iri, [])[:1]:
        parts.append(
            "<h4>environment</h4>"
            + _table(
                ["Python", "platform", "host"], [[env["python"], env["platform"], env["host"]]]
            )
        )
    for place in by_run["placement"].get(iri, [])[:1]:
        parts.append("<h4>worker</h4>" + _table(["ran on"], [[place_text(place)]]))
    for box in by_run["container"].get(iri, [])[:1]:
        parts.append(
            "<h4>container</h4>"
            + _table(
                ["runtime", "image", "digest"], [[box["runtime"], box["image"], box["digest"]]]
            )
        )
    return parts


def html_report(
    graph: Any,
    title: str,
    *,
    submission: str | None = None,
    info: dict[str, Any] | None = None,
    others: list[dict[str, Any]] | None = None,
) -> str:
    """The report page for the runs in ``graph`` (an rdflib graph of a selection). With
    ``submission`` (its IRI) and ``info`` (its row of ``store.runs()``), the page is that
    submission's, runs of earlier submissions it reused marked so; ``others`` lists the other
    submissions, to choose from."""
    runs = _collect_runs(graph, submission)
    index = {r["run"]: r for r in runs}
    edges = [
        (e["up"], e["down"])
        for e in _rows(
            graph,
            "SELECT DISTINCT ?up ?down WHERE { ?down a pg:JobRun ; prov:used ?x . "
            "?x prov:wasGeneratedBy ?up }",
        )
        if e["up"] in index and e["down"] in index
    ]
    n_reused = sum(1 for r in runs if r["reused"])
    legend = "".join(
        f"<span style='background:{c}'>{k}</span>"
        for k, c in (
            ("succeeded", "#dcecd5"),
            ("failed", "#f8d0d0"),
            ("interrupted", "#fde7c4"),
            ("reused", "#eeeeee"),
        )
    )
    sections = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        _summary(info, len(runs), n_reused),
        "<h2>Graph</h2><p>Arrows go from a run to the runs that used its outputs; click a box "
        f"for its details.</p><p class='legend'>{legend}</p>",
        graph_svg(runs, edges),
        "<h2>Timeline</h2><p>One lane per worker process.</p>",
        timeline_svg(runs),
        "<h2>Runs</h2>",
        _resources(runs),
    ]
    failures = _failures(graph, runs)
    if failures:
        sections.append(f"<h2 class='failed'>Failures ({len(failures)})</h2>")
        sections += failures
    by_run = {
        "inputs": _grouped(graph, RUN_INPUTS),
        "outputs": _grouped(graph, RUN_OUTPUTS),
        "environment": _grouped(graph, RUN_ENVIRONMENT),
        "placement": _grouped(graph, RUN_PLACEMENT),
        "container": _grouped(graph, RUN_CONTAINER),
    }
    sections.append("<h2>Details</h2>")
    for run in runs:
        sections += _run_section(graph, run, by_run)
    if others:
        sections.append(
            "<h2>Other submissions</h2><p>Their reports: <code>provgraph export CACHE "
            "--format html --run IRI -o report.html</code>.</p>"
        )
        sections.append(
            _table(
                ["started", "task", "status", "run"],
                [
                    [o["started"][:19].replace("T", " "), o["task"], o["status"], o["run"]]
                    for o in others
                ],
            )
        )
    sections.append("</body></html>")
    return "\n".join(sections)
