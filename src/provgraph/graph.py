"""The workflow graph: a ``networkx.DiGraph`` of named nodes, edges from connections.

Each node's ``task`` attribute is the task instance added to the workflow; an edge ``u -> v``
carries the list of ``(output field, input field)`` pairs connecting them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

from .exceptions import SpecError

__all__ = ["build_graph", "lazy_inputs", "topological_nodes"]


def lazy_inputs(task: Any) -> Iterable[tuple[str, Any]]:
    """``(input name, lazy field)`` for each input of ``task`` set to a lazy field."""
    for name, value in task._values.items():
        if getattr(value, "_provgraph_lazy", False):
            yield name, value


def build_graph(workflow_name: str, nodes: dict[str, Any]) -> nx.DiGraph:
    """The graph of ``nodes`` (name -> task); a cycle or unknown node is a ``SpecError``."""
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
    return list(nx.lexicographical_topological_sort(graph, key=lambda n: order[n]))
