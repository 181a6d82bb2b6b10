"""Workflow drawings as Pydra 1.0 users know them: ``plot_workflow`` writes a Graphviz DOT
file in one of three kinds, and may export it with Graphviz's ``dot``.

* ``simple``: one line per node (``name``; a nested workflow ``name [shape=box]``) and per
  connection (``a -> b``);
* ``nested``: a nested workflow drawn as a cluster of its own nodes (``subgraph cluster_name``);
* ``detailed``: one record per node with its input and output ports, the workflow's inputs
  and outputs as red records, and each connection from port to port
  (``struct_a:out -> struct_b:x;``).

A node that runs over a state (it is split, or its inputs come from a split node and are not
combined yet) is drawn blue, and so is each connection carrying that state.
``provgraph graph`` and :func:`provgraph.graph.to_dot` draw the same graph with labels.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .exceptions import SpecError
from .graph import lazy_inputs, topological_nodes

__all__ = ["PLOT_TYPES", "plot_workflow", "workflow_dot"]

PLOT_TYPES = ("simple", "nested", "detailed")
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _id(name: str) -> str:
    """A DOT identifier: the name itself when it is one, else quoted."""
    if _ID.match(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _splitter_fields(splitter: Any) -> set[str]:
    if splitter is None:
        return set()
    if isinstance(splitter, str):
        return set() if splitter.startswith("_") else {splitter}
    found: set[str] = set()
    for part in splitter:
        found |= _splitter_fields(part)
    return found


def _states(wf_cls: Any) -> tuple[dict[str, bool], dict[str, bool]]:
    """Per node: whether it runs over a state, and whether its outputs still carry one.
    A state is a set of axes (``node.field`` split over); a combiner removes its axes."""
    axes_out: dict[str, set[str]] = {}
    runs: dict[str, bool] = {}
    for name in topological_nodes(wf_cls._graph):
        task = wf_cls._nodes[name]
        axes: set[str] = set()
        for _, lazy in lazy_inputs(task):
            if lazy.node is not None:
                axes |= axes_out.get(lazy.node, set())
        axes |= {f if "." in f else f"{name}.{f}" for f in _splitter_fields(task.splitter)}
        combined = {c if "." in c else f"{name}.{c}" for c in task.combiner}
        runs[name] = bool(axes)
        axes_out[name] = axes - combined
    return runs, {n: bool(a) for n, a in axes_out.items()}


def _workflow_class(workflow: Any) -> Any:
    cls: Any = workflow if isinstance(workflow, type) else type(workflow)
    if getattr(cls, "_kind", None) != "workflow":
        raise SpecError(
            f"plot_workflow: got {workflow!r}; expected a workflow (made with "
            "@workflow.define) or one of its tasks",
            field="workflow",
            value=workflow,
        )
    if getattr(cls, "_graph", None) is None:
        raise SpecError(
            f"plot_workflow: workflow {cls._task_name} is dynamic: its graph is built from "
            "its input values when it runs, so there is none to draw before",
            field="workflow",
        )
    return cls


def _is_workflow(task: Any) -> bool:
    return type(task)._kind == "workflow" and getattr(type(task), "_graph", None) is not None


def _attrs(*items: str) -> str:
    shown = [i for i in items if i]
    return f" [{', '.join(shown)}]" if shown else ""


def _simple_lines(wf_cls: Any) -> list[str]:
    runs, carries = _states(wf_cls)
    lines = []
    for name in topological_nodes(wf_cls._graph):
        shape = "shape=box" if _is_workflow(wf_cls._nodes[name]) else ""
        lines.append(_id(name) + _attrs(shape, "color=blue" if runs[name] else ""))
    for source, target in wf_cls._graph.edges:
        blue = "color=blue" if carries[source] else ""
        lines.append(f"{_id(source)} -> {_id(target)}" + _attrs(blue))
    return lines


def _paths(wf_cls: Any, prefix: str = "") -> list[str]:
    """The path of every node of a nested drawing (``inner.add``), clusters included."""
    found = []
    for name, task in wf_cls._nodes.items():
        found.append(prefix + name)
        if _is_workflow(task):
            found += _paths(type(task), f"{prefix}{name}.")
    return found


def _entries(wf_cls: Any, field: str, prefix: str) -> list[str]:
    """The paths of the plain nodes that take ``wf_cls``'s input ``field``, looking into
    the workflows inside it."""
    found = []
    for name, task in wf_cls._nodes.items():
        for inner_field, lazy in lazy_inputs(task):
            if lazy.node is not None or lazy.field != field:
                continue
            if _is_workflow(task):
                found += _entries(type(task), inner_field, f"{prefix}{name}.")
            else:
                found.append(prefix + name)
    return found


def _exit(wf_cls: Any, output: str, prefix: str) -> str | None:
    """The path of the plain node that gives ``wf_cls``'s output ``output`` (None when it is
    one of the workflow's inputs), looking into the workflows inside it."""
    lazy = wf_cls._output_map.get(output)
    if lazy is None or lazy.node is None:
        return None
    task = wf_cls._nodes[lazy.node]
    if _is_workflow(task):
        return _exit(type(task), lazy.field, f"{prefix}{lazy.node}.")
    return prefix + lazy.node


def _nested_lines(wf_cls: Any, prefix: str, show: dict[str, str]) -> list[str]:
    """Lines of a nested drawing; ``show`` maps a node's path to its id in the drawing."""
    runs, carries = _states(wf_cls)
    lines: list[str] = []
    for name in topological_nodes(wf_cls._graph):
        task, path = wf_cls._nodes[name], prefix + name
        if _is_workflow(task):
            lines.append(f"subgraph {_id('cluster_' + show[path])} {{")
            if runs[name]:
                lines.append("color=blue")
            lines.append(f"label={_id(name)}")
            lines.extend(_nested_lines(type(task), path + ".", show))
            lines.append("}")
        else:
            lines.append(_id(show[path]) + _attrs("color=blue" if runs[name] else ""))
    for source, target in wf_cls._graph.edges:
        blue = "color=blue" if carries[source] else ""
        for out_field, in_field in wf_cls._graph.edges[source, target]["fields"]:
            tail: str | None = prefix + source
            ltail = ""
            if _is_workflow(wf_cls._nodes[source]):
                ltail = "ltail=" + _id("cluster_" + show[prefix + source])
                tail = _exit(type(wf_cls._nodes[source]), out_field, f"{prefix}{source}.")
            heads = [prefix + target]
            lhead = ""
            if _is_workflow(wf_cls._nodes[target]):
                lhead = "lhead=" + _id("cluster_" + show[prefix + target])
                heads = _entries(type(wf_cls._nodes[target]), in_field, f"{prefix}{target}.")
            if tail is None:  # (an input passed straight through: no node to start from)
                continue
            for head in heads:
                lines.append(f"{_id(show[tail])} -> {_id(show[head])}" + _attrs(blue, ltail, lhead))
    return lines


def _nested_ids(wf_cls: Any) -> dict[str, str]:
    """Each node's id in a nested drawing: its own name where no other node has it, else
    its path (``inner.add``)."""
    paths = _paths(wf_cls)
    last = [p.rsplit(".", 1)[-1] for p in paths]
    return {p: n if last.count(n) == 1 else p for p, n in zip(paths, last, strict=True)}


def _ports(names: Any) -> str:
    return " | ".join(f"<{n}> {n}" for n in names)


def _record_label(text: str) -> str:
    """Text inside a record label: its special characters escaped."""
    return re.sub(r'([{}|<>"\\ ])', r"\\\1", text)


def _detailed_lines(wf_cls: Any) -> list[str]:
    wf = wf_cls._task_name
    start, end = _id(f"struct_{wf}"), _id(f"struct_{wf}_out")
    inputs = _ports(wf_cls._input_fields)
    lines = [f'{start} [color=red, label="{{WORKFLOW INPUT: | {{{inputs}}}}}"];']
    runs, _ = _states(wf_cls)
    for name in topological_nodes(wf_cls._graph):
        task_cls = type(wf_cls._nodes[name])
        ins = [n for n in task_cls._input_fields if not task_cls._input_fields[n].implicit]
        color = "color=blue, " if runs[name] else ""
        lines.append(
            f'{_id("struct_" + name)} [{color}label="{{INPUT: | {{{_ports(ins)}}}}} | '
            f'{_record_label(name)} | {{OUTPUT: | {{{_ports(task_cls._output_fields)}}}}}"];'
        )
    outputs = _ports(wf_cls._output_map)
    lines.append(f'{end} [color=red, label="{{WORKFLOW OUTPUT: | {{{outputs}}}}}"];')
    for name, task in wf_cls._nodes.items():
        for field, lazy in lazy_inputs(task):
            source = _id(f"struct_{lazy.node}") if lazy.node is not None else start
            lines.append(f"{source}:{lazy.field} -> {_id('struct_' + name)}:{field};")
    for output, lazy in wf_cls._output_map.items():
        source = _id(f"struct_{lazy.node}") if lazy.node is not None else start
        lines.append(f"{source}:{lazy.field} -> {end}:{output};")
    return lines


def workflow_dot(workflow: Any, plot_type: str = "simple") -> str:
    """The DOT text of a workflow (a class made by ``@workflow.define`` or one of its
    tasks), of the kind ``plot_type`` (``"simple"``, ``"nested"`` or ``"detailed"``)."""
    cls = _workflow_class(workflow)
    if plot_type == "simple":
        body, head = _simple_lines(cls), [f"digraph {_id(cls._task_name)} {{"]
    elif plot_type == "nested":
        body = _nested_lines(cls, "", _nested_ids(cls))
        head = [f"digraph {_id(cls._task_name)} {{", "compound=true"]
    elif plot_type == "detailed":
        body, head = _detailed_lines(cls), ["digraph structs {", "node [shape=record];"]
    else:
        raise SpecError(
            f"plot_workflow(plot_type={plot_type!r}): expected one of {list(PLOT_TYPES)}",
            field="plot_type",
            value=plot_type,
        )
    return "\n".join([*head, *body, "}"]) + "\n"


def plot_workflow(
    workflow: Any,
    out_dir: str | Path,
    plot_type: str = "simple",
    export: bool | str | list[str] | None = None,
    name: str | None = None,
) -> Any:
    """Write a drawing of ``workflow`` to ``<out_dir>/<name>.dot`` (``name`` defaults to
    ``graph_<plot_type>``) and return its path. With ``export`` (``True`` for PNG, a format
    such as ``"pdf"``, or a list of them), Graphviz's ``dot`` also renders each format next
    to it, and ``(dot file, [rendered files])`` is returned, as Pydra's function does."""
    text = workflow_dot(workflow, plot_type)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dot_file = folder / f"{name or 'graph_' + plot_type}.dot"
    dot_file.write_text(text)
    if not export:
        return dot_file
    formats = ["png"] if export is True else [export] if isinstance(export, str) else export
    program = shutil.which("dot")
    if program is None:
        raise FileNotFoundError(
            f"plot_workflow(export={export!r}): Graphviz's 'dot' is not on PATH; install "
            "graphviz, or leave export out to write the .dot file alone"
        )
    made = []
    for fmt in formats:
        target = dot_file.with_suffix("." + fmt)
        done = subprocess.run(
            [program, f"-T{fmt}", "-o", str(target), str(dot_file)], capture_output=True
        )
        if done.returncode != 0:
            raise SpecError(
                f"plot_workflow(export={fmt!r}): dot failed: {done.stderr.decode().strip()}",
                field="export",
                value=fmt,
            )
        made.append(target)
    return dot_file, made
