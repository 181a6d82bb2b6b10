"""The workflow graph: a ``networkx.DiGraph`` of named nodes, edges from connections.

Each node's ``task`` attribute is the task instance added to the workflow; an edge ``u -> v``
carries the list of ``(output field, input field)`` pairs connecting them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .exceptions import SpecError

if TYPE_CHECKING:  # networkx is imported when a graph is built, not with the package
    import networkx as nx

__all__ = ["build_graph", "lazy_inputs", "to_dot", "to_mermaid", "topological_nodes"]


def lazy_inputs(task: Any) -> Iterable[tuple[str, Any]]:
    """``(input name, lazy field)`` for each input of ``task`` set to a lazy field."""
    for name, value in task._values.items():
        if getattr(value, "_provgraph_lazy", False):
            yield name, value


def build_graph(workflow_name: str, nodes: dict[str, Any]) -> nx.DiGraph:
    """The graph of ``nodes`` (name -> task); a cycle or unknown node is a ``SpecError``."""
    import networkx as nx

    graph = nx.DiGraph(name=workflow_name)
    for name, task in nodes.items():
        graph.add_node(name, task=task)
    for name, task in nodes.items():
        for field, lazy in lazy_inputs(task):
            if lazy.node is None:
                continue
            if lazy.node not in nodes:
                raise SpecError(
                    f"workflow {workflow_name!r}: node {name!r} input {field!r} is connected to "
                    f"unknown node {lazy.node!r}; nodes are {sorted(nodes)}",
                    field=field,
                )
            if graph.has_edge(lazy.node, name):
                graph.edges[lazy.node, name]["fields"].append((lazy.field, field))
            else:
                graph.add_edge(lazy.node, name, fields=[(lazy.field, field)])
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    names = [u for u, _ in cycle] + [cycle[0][0]]
    raise SpecError(
        f"workflow {workflow_name!r} has a cycle: {' -> '.join(names)}",
        field="graph",
        value=names,
    )


def topological_nodes(graph: nx.DiGraph) -> list[str]:
    """Node names, every node after the nodes it depends on (ties in insertion order)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    import networkx as nx

    return list(nx.lexicographical_topological_sort(graph, key=lambda n: order[n]))


# -- pictures ------------------------------------------------------------------------------------


def _node_label(name: str, task: Any) -> list[str]:
    lines = [name, f"{type(task)._task_name} ({type(task)._kind})"]
    if task.splitter is not None:
        lines.append(f"split: {task.splitter!r}")
    if task.combiner:
        lines.append(f"combine: {', '.join(task.combiner)}")
    return lines


def _edges(wf_cls: Any) -> list[tuple[str, str, str]]:
    """(source, target, label) for every connection, workflow inputs and outputs included."""
    edges = []
    for name, task in wf_cls._nodes.items():
        for field, lazy in lazy_inputs(task):
            source = lazy.node if lazy.node is not None else "inputs"
            edges.append((source, name, f"{lazy.field} → {field}"))
    for out_name, lazy in wf_cls._output_map.items():
        source = lazy.node if lazy.node is not None else "inputs"
        edges.append((source, "outputs", f"{lazy.field} → {out_name}"))
    return edges


def to_dot(wf_cls: Any) -> str:
    """The workflow as Graphviz DOT text: nodes with their splitters, labelled connections."""

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {q(wf_cls._task_name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    lines.append(f"  inputs [shape=oval, label={q('inputs: ' + ', '.join(wf_cls._input_fields))}];")
    for name in topological_nodes(wf_cls._graph):
        label = "\\n".join(
            t.replace("\\", "\\\\").replace('"', '\\"')
            for t in _node_label(name, wf_cls._nodes[name])
        )
        lines.append(f'  {q(name)} [label="{label}"];')
    outputs = ", ".join(wf_cls._output_map)
    lines.append(f"  outputs [shape=oval, label={q('outputs: ' + outputs)}];")
    for source, target, label in _edges(wf_cls):
        lines.append(f"  {q(source)} -> {q(target)} [label={q(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(wf_cls: Any) -> str:
    """The workflow as Mermaid flowchart text (for Markdown viewers without Graphviz)."""

    def esc(text: str) -> str:
        return text.replace('"', "#quot;")

    ids = {"inputs": "inputs", "outputs": "outputs"}
    lines = ["flowchart LR"]
    lines.append(f'  inputs(["inputs: {esc(", ".join(wf_cls._input_fields))}"])')
    for i, name in enumerate(topological_nodes(wf_cls._graph)):
        ids[name] = f"n{i}"
        label = "<br/>".join(esc(t) for t in _node_label(name, wf_cls._nodes[name]))
        lines.append(f'  n{i}["{label}"]')
    lines.append(f'  outputs(["outputs: {esc(", ".join(wf_cls._output_map))}"])')
    for source, target, label in _edges(wf_cls):
        lines.append(f'  {ids[source]} -- "{esc(label)}" --> {ids[target]}')
    return "\n".join(lines) + "\n"
