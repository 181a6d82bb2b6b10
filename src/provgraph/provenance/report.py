"""A single-page HTML report of recorded provenance: the lineage drawn, and tables.

The page is self-contained (inline SVG and CSS, no scripts, nothing fetched): the runs of the
selection drawn as a graph (an arrow from a run to each run that used what it produced), then,
per run, its inputs, outputs, environment and timings.
"""

from __future__ import annotations

import html
from typing import Any

import networkx as nx

from .query import (
    RUN_CONTAINER,
    RUN_ENVIRONMENT,
    RUN_INPUTS,
    RUN_OUTPUTS,
    RUN_PLACEMENT,
    place_text,
)

__all__ = ["html_report"]

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; font-size: 0.9em; text-align: left; }
th { background: #f3f3f3; } code { font-size: 0.85em; }
.failed { color: #b00; } svg text { font-size: 12px; font-family: sans-serif; }
"""


def _rows(graph: Any, sparql: str, run: str | None = None) -> list[dict[str, str]]:
    import rdflib

    result = graph.query(
        sparql,
        initBindings={"run": rdflib.URIRef(run)} if run else None,
        initNs={
            "prov": "http://www.w3.org/ns/prov#",
            "pg": "https://w3id.org/provgraph/ns#",
            "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
        },
    )
    names = [str(v) for v in result.vars]
    return [{n: str(r[i]) for i, n in enumerate(names) if r[i] is not None} for r in result]


def _grouped(graph: Any, sparql: str) -> dict[str, list[dict[str, str]]]:
    """One query for every run (``?run`` selected too), its rows grouped by run."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in _rows(graph, sparql.replace("SELECT DISTINCT ", "SELECT DISTINCT ?run ", 1)):
        grouped.setdefault(row["run"], []).append(row)
    return grouped


def _svg(runs: list[dict[str, str]], edges: list[tuple[str, str]]) -> str:
    dag = nx.DiGraph()
    dag.add_nodes_from(r["run"] for r in runs)
    dag.add_edges_from(e for e in edges if e[0] in dag and e[1] in dag)
    label = {r["run"]: f"{r['node']} [{r['index']}]" for r in runs}
    status = {r["run"]: r["status"] for r in runs}
    width, height, gap_x, gap_y = 190, 34, 60, 16
    position: dict[str, tuple[int, int]] = {}
    generations = (
        list(nx.topological_generations(dag))
        if nx.is_directed_acyclic_graph(dag)
        else [list(dag.nodes)]
    )
    for column, generation in enumerate(generations):
        for row, node in enumerate(sorted(generation, key=lambda n: label[n])):
            position[node] = (10 + column * (width + gap_x), 10 + row * (height + gap_y))
    total_w = 20 + max(1, len(generations)) * (width + gap_x)
    total_h = 20 + max((len(g) for g in generations), default=1) * (height + gap_y)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
        'role="img" aria-label="lineage">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
    ]
    for source, target in dag.edges:
        (x1, y1), (x2, y2) = position[source], position[target]
        parts.append(
            f'<line x1="{x1 + width}" y1="{y1 + height // 2}" x2="{x2}" y2="{y2 + height // 2}" '
            'stroke="#555" marker-end="url(#arrow)"/>'
        )
    for node, (x, y) in position.items():
        colour = "#fdd" if status[node] == "failed" else "#e8f0fe"
        parts.append(
            f'<g class="run"><rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" '
            f'fill="{colour}" stroke="#447"/><text x="{x + 8}" y="{y + 21}">'
            f"{html.escape(label[node])}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td><code>{html.escape(c)}</code></td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(graph: Any, title: str) -> str:
    """The report page for the runs in ``graph`` (an rdflib graph of a selection)."""
    runs = _rows(
        graph,
        "SELECT ?run ?task ?node ?index ?status ?started ?ended ?job WHERE { ?run a pg:JobRun ; "
        "pg:taskName ?task ; pg:nodeName ?node ; pg:elementIndex ?index ; pg:status ?status ; "
        "prov:startedAtTime ?started ; prov:endedAtTime ?ended ; pg:jobHash ?job } "
        "ORDER BY ?started",
    )
    edges = [
        (e["up"], e["down"])
        for e in _rows(
            graph,
            "SELECT DISTINCT ?up ?down WHERE { ?down a pg:JobRun ; prov:used ?x . "
            "?x prov:wasGeneratedBy ?up }",
        )
    ]
    sections = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{len(runs)} job run(s). Arrows go from a run to the runs that used its outputs.</p>",
        _svg(runs, edges),
    ]
    inputs_by_run = _grouped(graph, RUN_INPUTS)
    outputs_by_run = _grouped(graph, RUN_OUTPUTS)
    env_by_run = _grouped(graph, RUN_ENVIRONMENT)
    place_by_run = _grouped(graph, RUN_PLACEMENT)
    box_by_run = _grouped(graph, RUN_CONTAINER)
    for run in runs:
        iri = run["run"]
        inputs = inputs_by_run.get(iri, [])
        outputs = outputs_by_run.get(iri, [])
        env = env_by_run.get(iri, [])
        css = ' class="failed"' if run["status"] == "failed" else ""
        sections.append(
            f"<h2 id='{html.escape(run['job'])}'{css}>{html.escape(run['node'])} "
            f"[{html.escape(run['index'])}]: {html.escape(run['task'])}, "
            f"{html.escape(run['status'])}</h2>"
        )
        sections.append(
            _table(
                ["run", "job hash", "started", "ended"],
                [[iri, run["job"], run["started"], run["ended"]]],
            )
        )
        for name, items in (("inputs", inputs), ("outputs", outputs)):
            rows = [[i["field"], i["hash"], i.get("where") or i.get("value", "")] for i in items]
            sections.append(
                f"<h3>{name}</h3>" + _table(["field", "content hash", "location or value"], rows)
            )
        if env:
            e = env[0]
            sections.append(
                "<h3>environment</h3>"
                + _table(["Python", "platform", "host"], [[e["python"], e["platform"], e["host"]]])
            )
        for place in place_by_run.get(iri, [])[:1]:
            sections.append("<h3>worker</h3>" + _table(["ran on"], [[place_text(place)]]))
        for box in box_by_run.get(iri, [])[:1]:
            sections.append(
                "<h3>container</h3>"
                + _table(
                    ["runtime", "image", "digest"], [[box["runtime"], box["image"], box["digest"]]]
                )
            )
    sections.append("</body></html>")
    return "\n".join(sections)
