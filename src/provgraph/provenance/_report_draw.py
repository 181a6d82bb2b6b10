"""The pictures of the HTML report, as inline SVG: the runs' graph and their timeline.

The graph is laid out by Graphviz's ``dot`` when it is installed, and by a layered layout
(networkx's topological generations) otherwise; each box links to its run's section. The
timeline draws one lane per worker process (host and pid), one bar per run.
"""

from __future__ import annotations

import datetime
import html
import re
import shutil
import subprocess
from typing import Any

import networkx as nx

__all__ = ["COLOURS", "graph_svg", "natural_key", "timeline_svg"]

COLOURS = {
    "succeeded": "#dcecd5",
    "failed": "#f8d0d0",
    "interrupted": "#fde7c4",
    "reused": "#eeeeee",
}


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``a[2]`` before ``a[10]``."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


def _fill(run: dict[str, Any]) -> str:
    return COLOURS["reused"] if run["reused"] else COLOURS.get(run["status"], "#e8f0fe")


def graph_svg(runs: list[dict[str, Any]], edges: list[tuple[str, str]]) -> str:
    """The runs (``run``, ``anchor``, ``label``, ``tip``, ``status``, ``reused``) and the
    edges between them (producer, user), drawn."""
    known = {r["run"] for r in runs}
    edges = sorted({e for e in edges if e[0] in known and e[1] in known})
    if shutil.which("dot"):
        drawn = _dot_svg(runs, edges)
        if drawn is not None:
            return drawn
    return _layered_svg(runs, edges)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_svg(runs: list[dict[str, Any]], edges: list[tuple[str, str]]) -> str | None:
    ids = {r["run"]: f"r{i}" for i, r in enumerate(runs)}
    lines = [
        "digraph runs {",
        'rankdir=LR; node [shape=box, style="rounded,filled", fontname="sans-serif", '
        'fontsize=11, color="#445577"]; edge [color="#555555"];',
    ]
    for run in reversed(runs):  # dot stacks left-to-right ranks bottom-up in declaration order
        attrs = {
            "label": run["label"],
            "tooltip": run["tip"],
            "URL": f"#{run['anchor']}",
            "fillcolor": _fill(run),
            "class": "run",
            "id": "box_" + run["anchor"],
        }
        if run["reused"]:
            attrs["style"] = "rounded,filled,dashed"
        lines.append(
            f"{ids[run['run']]} ["
            + ", ".join(f"{k}={_dot_quote(v)}" for k, v in attrs.items())
            + "];"
        )
    lines += [f"{ids[a]} -> {ids[b]};" for a, b in edges]
    lines.append("}")
    try:
        done = subprocess.run(
            ["dot", "-Tsvg"],
            input="\n".join(lines),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or "<svg" not in done.stdout:
        return None
    return done.stdout[done.stdout.index("<svg") :]


def _layered_svg(runs: list[dict[str, Any]], edges: list[tuple[str, str]]) -> str:
    dag = nx.DiGraph()
    dag.add_nodes_from(r["run"] for r in runs)
    dag.add_edges_from(edges)
    by_iri = {r["run"]: r for r in runs}
    width, height, gap_x, gap_y = 210, 40, 60, 16
    generations = (
        list(nx.topological_generations(dag))
        if nx.is_directed_acyclic_graph(dag)
        else [list(dag.nodes)]
    )
    position: dict[str, tuple[int, int]] = {}
    for column, generation in enumerate(generations):
        ordered = sorted(generation, key=lambda n: natural_key(by_iri[n]["label"]))
        for row, node in enumerate(ordered):
            position[node] = (10 + column * (width + gap_x), 10 + row * (height + gap_y))
    total_w = 20 + max(1, len(generations)) * (width + gap_x)
    total_h = 20 + max((len(g) for g in generations), default=1) * (height + gap_y)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
        'role="img" aria-label="runs and how their data flowed">',
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
        run = by_iri[node]
        first, *rest = run["label"].split("\n")
        dash = ' stroke-dasharray="4 3"' if run["reused"] else ""
        parts.append(
            f'<a href="#{run["anchor"]}"><g class="run" id="box_{run["anchor"]}">'
            f"<title>{html.escape(run['tip'])}</title>"
            f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" '
            f'fill="{_fill(run)}" stroke="#447"{dash}/>'
            f'<text x="{x + 8}" y="{y + 16}">{html.escape(first[:30])}</text>'
            f'<text x="{x + 8}" y="{y + 32}" class="small">{html.escape(" ".join(rest)[:34])}'
            "</text></g></a>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _seconds(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp).timestamp()


def timeline_svg(runs: list[dict[str, Any]]) -> str:
    """One lane per worker process, one bar per run that has times (reused runs left out)."""
    timed = [r for r in runs if r.get("started") and r.get("ended") and not r["reused"]]
    if not timed:
        return "<p>No run of this selection ran here (everything was reused).</p>"
    lanes = sorted({r["lane"] for r in timed}, key=natural_key)
    start = min(_seconds(r["started"]) for r in timed)
    end = max(_seconds(r["ended"]) for r in timed)
    span = max(end - start, 1e-3)
    left, plot, lane_h = 190, 700, 22
    height = 30 + lane_h * len(lanes)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + plot + 20}" height="{height}" '
        'role="img" aria-label="timeline of the runs per worker">'
    ]
    for i, lane in enumerate(lanes):
        y = 10 + i * lane_h
        parts.append(
            f'<text x="4" y="{y + 14}" class="small">{html.escape(lane[:30])}</text>'
            f'<line x1="{left}" y1="{y + lane_h - 2}" x2="{left + plot}" y2="{y + lane_h - 2}" '
            'stroke="#eee"/>'
        )
    for run in timed:
        y = 10 + lanes.index(run["lane"]) * lane_h
        x = left + plot * (_seconds(run["started"]) - start) / span
        w = max(2.0, plot * (_seconds(run["ended"]) - _seconds(run["started"])) / span)
        parts.append(
            f'<a href="#{run["anchor"]}"><rect class="bar" x="{x:.1f}" y="{y + 2}" '
            f'width="{w:.1f}" height="{lane_h - 6}" fill="{_fill(run)}" stroke="#447">'
            f"<title>{html.escape(run['label'].replace(chr(10), ' '))}: "
            f"{_seconds(run['ended']) - _seconds(run['started']):.3f} s</title></rect></a>"
        )
    y = height - 6
    parts.append(f'<text x="{left}" y="{y}" class="small">0 s</text>')
    parts.append(
        f'<text x="{left + plot}" y="{y}" class="small" text-anchor="end">{span:.3f} s</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
