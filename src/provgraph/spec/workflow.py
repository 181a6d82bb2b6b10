"""Workflows: ``@workflow.define`` on a constructor that adds tasks with ``workflow.add``.

The constructor runs once, when the workflow is defined, with its inputs as lazy fields; what it
adds and connects is the workflow's graph, so the graph never depends on input values. It
returns the lazy fields that become the workflow's outputs (one, or a tuple in the order of
``outputs=[...]``).
"""

from __future__ import annotations

import contextvars
import typing
from collections.abc import Callable
from pathlib import Path
from types import GenericAlias
from typing import Any

from .. import graph as _graph
from ..exceptions import MissingInputError, SpecError
from ._definition import check_task_name
from ._function_fields import input_fields, output_fields
from .base import TaskDef, _is_lazy, as_own_task
from .fields import NOTHING, UNKNOWN, OutputField, check_rules
from .lazy import LazyField, LazyOutputs
from .python import function_task_class, type_hints

__all__ = ["DynamicWorkflowTask", "WorkflowTask", "add", "built", "define", "graph_class"]

_BUILDING: contextvars.ContextVar[dict[str, TaskDef] | None] = contextvars.ContextVar(
    "provgraph_workflow_nodes", default=None
)
# the nodes added with rerun=True, while a workflow is being defined
_RERUN: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "provgraph_workflow_rerun", default=None
)


class WorkflowTask(TaskDef):
    """Base of workflow task classes."""

    _kind = "workflow"
    _nodes: dict[str, TaskDef] = {}
    _graph: Any = None  # a networkx.DiGraph, set by define
    _output_map: dict[str, Any] = {}

    @classmethod
    def _execute(cls, inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
        raise SpecError(f"workflow {cls._task_name} runs through a Submitter, not as one job")


def _lazy_output_types(task: TaskDef) -> dict[str, Any]:
    combined = bool(task.combiner)
    types: dict[str, Any] = {}
    for name, o in type(task)._output_fields.items():
        types[name] = GenericAlias(list, (o.type,)) if combined else o.type
    return types


def add(task: TaskDef, name: str | None = None, *, rerun: bool = False) -> LazyOutputs:
    """Add ``task`` as a node of the workflow being defined; return its lazy outputs.

    ``rerun=True``: the node's jobs run again at every submission, even when cached (the new
    run replaces the saved result; its record says whether the outputs came out the same).
    It is not part of any hash."""
    nodes = _BUILDING.get()
    if nodes is None:
        raise SpecError("workflow.add() is only valid inside a @workflow.define constructor")
    task = built(as_own_task(task))
    if not isinstance(task, TaskDef):
        raise SpecError(f"workflow.add() expects a task instance, got {task!r}", value=task)
    node = check_task_name(name or type(task)._task_name)
    if node in nodes:
        raise SpecError(
            f"a node named {node!r} is already in this workflow; give this one a name= of its own",
            field="name",
            value=node,
        )
    if not isinstance(rerun, bool):
        raise SpecError(f"workflow.add(rerun={rerun!r}); expected True or False", field="rerun")
    nodes[node] = task
    if rerun:
        rerun_nodes = _RERUN.get()
        if rerun_nodes is not None:
            rerun_nodes.add(node)
    return LazyOutputs(node, _lazy_output_types(task))


def _bind_outputs(wf_name: str, returned: Any, outputs: dict[str, OutputField]) -> dict[str, Any]:
    names = list(outputs)
    values = [returned] if len(names) == 1 else returned
    if len(names) > 1 and (not isinstance(values, (tuple, list)) or len(values) != len(names)):
        raise SpecError(
            f"workflow {wf_name} declares outputs {names}; its constructor must return a tuple of "
            f"{len(names)} lazy fields, got {returned!r}",
            field="outputs",
            value=returned,
        )
    bound = dict(zip(names, values, strict=True))
    for out_name, value in bound.items():
        if not isinstance(value, LazyField):
            raise SpecError(
                f"workflow {wf_name} output {out_name!r} is {value!r}; expected a node's lazy "
                "output (e.g. node.out)",
                field=out_name,
                value=value,
            )
    return bound


@typing.overload
def define(
    func: Callable[..., Any],
    *,
    outputs: list[str] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    dynamic: bool = False,
) -> type[WorkflowTask]: ...


@typing.overload
def define(
    func: None = None,
    *,
    outputs: list[str] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    dynamic: bool = False,
) -> Callable[[Callable[..., Any]], type[WorkflowTask]]: ...


def define(
    func: Callable[..., Any] | None = None,
    *,
    outputs: list[str] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    dynamic: bool = False,
) -> Any:
    """Make a workflow task class from a constructor function.

    The constructor runs once, now, with placeholders for its inputs. With ``dynamic=True``
    it runs when the workflow is submitted (or added to another workflow) with its input
    values known, once per distinct set of values: it may branch on them (choose a task, a
    command, a number of nodes), and the tasks it uses may be defined after it in the module.
    """
    if not isinstance(dynamic, bool):
        raise SpecError(f"workflow.define(dynamic={dynamic!r}); expected True or False")

    def wrap(fn: Callable[..., Any]) -> type[WorkflowTask]:
        hints = type_hints(fn)
        wf_name = check_task_name(name or fn.__name__)
        inputs = input_fields(fn, hints, owner=wf_name)
        outs = output_fields(fn, hints, outputs, owner=wf_name)
        if dynamic:
            extra = {"_constructor": fn, "_built": {}}
            cls = function_task_class(
                DynamicWorkflowTask, fn, wf_name, inputs, outs, version, extra
            )
            return typing.cast(type[WorkflowTask], cls)
        lazy_inputs = {n: LazyField(None, n, f.type) for n, f in inputs.items()}
        return _construct(fn, wf_name, inputs, outs, version, lazy_inputs)

    if func is not None:
        return wrap(func)
    return wrap


def _construct(
    fn: Callable[..., Any],
    wf_name: str,
    inputs: dict[str, Any],
    outs: dict[str, OutputField],
    version: str | None,
    arguments: dict[str, Any],
) -> type[WorkflowTask]:
    """Run the constructor with ``arguments`` (placeholders, or values) and make the class of
    the graph it builds."""
    nodes: dict[str, TaskDef] = {}
    token = _BUILDING.set(nodes)
    rerun_nodes: set[str] = set()
    rerun_token = _RERUN.set(rerun_nodes)
    try:
        returned = fn(**arguments)
    finally:
        _BUILDING.reset(token)
        _RERUN.reset(rerun_token)
    output_map = _bind_outputs(wf_name, returned, outs)
    for out_name, lazy in output_map.items():  # (an input passed straight through: node None)
        if lazy.node is not None and lazy.node not in nodes:
            raise SpecError(f"workflow {wf_name} output {out_name!r} names unknown node")
        _check_output_type(wf_name, outs[out_name], lazy)
    for node_name, task in nodes.items():
        # the xor/requires rules over what is known now (connections: when they are known)
        if task._has_rules:
            known = {f: (UNKNOWN if _is_lazy(v) else v) for f, v in task._values.items()}
            check_rules(
                f"workflow {wf_name}: node {node_name!r}",
                task._input_fields,
                known,
                type(task)._one_of,
            )
        missing = [f for f, v in task._values.items() if v is NOTHING]
        if missing:
            raise MissingInputError.of(f"workflow {wf_name}: node {node_name!r}", missing)
    graph = _graph.build_graph(wf_name, nodes)
    extra = {
        "_nodes": nodes,
        "_graph": graph,
        "_output_map": output_map,
        "_rerun_nodes": frozenset(rerun_nodes),
    }
    cls = function_task_class(WorkflowTask, fn, wf_name, inputs, outs, version, extra)
    return typing.cast(type[WorkflowTask], cls)


class DynamicWorkflowTask(WorkflowTask):
    """A workflow whose constructor runs when its input values are known (``dynamic=True``):
    at once when they are given as values (:func:`built`), else for each of its jobs, when the
    engine opens it with that job's values (a split, or inputs connected to other nodes)."""

    _constructor: Any = None
    _built: dict[bytes, type[WorkflowTask]] = {}


def built(task: Any) -> Any:
    """``task`` itself, or, for a dynamic workflow whose inputs are all values and which is
    not split, the workflow those values build (the same class for the same values). A split
    or connected dynamic workflow is returned as it is: each of its jobs is built when it
    runs (:func:`graph_class`)."""
    cls = type(task)
    if not (isinstance(cls, type) and issubclass(cls, DynamicWorkflowTask)):
        return task
    values: dict[str, Any] = {}
    for field in cls._input_fields:
        value = task._values[field]
        if value is NOTHING:
            raise MissingInputError.of(
                f"workflow {cls._task_name}",
                [field],
                " (a dynamic workflow is built from its input values)",
            )
        values[field] = value
    if task.splitter is not None or any(_is_lazy(v) for v in values.values()):
        return task  # built per job, from each job's values
    return graph_class(cls, values)(**values)


def graph_class(cls: Any, values: dict[str, Any]) -> Any:
    """The class whose graph a workflow job runs: a static workflow's own; for a dynamic
    one, the workflow its constructor builds from ``values`` (cached per values)."""
    if not (isinstance(cls, type) and issubclass(cls, DynamicWorkflowTask)):
        return cls
    from ..hashing import hash_value

    key = hash_value(sorted(values.items()))
    static = cls._built.get(key)
    if static is None:
        static = cls._built[key] = _construct(
            cls._constructor,
            cls._task_name,
            cls._input_fields,
            cls._output_fields,
            cls._version,
            values,
        )
    return static


def _check_output_type(wf_name: str, declared: OutputField, lazy: LazyField) -> None:
    """A workflow output's declared type must be able to hold what its node gives (a list of
    it, or an item of a list, where splitting and combining change the shape)."""
    from .fields import type_name
    from .lazy import compatible, element_type

    want, got = declared.type, lazy.type
    if want is Any or got is Any:
        return
    candidates = [got, element_type(got)]
    wanted = [want, element_type(want)]
    if any(
        c is not None and w is not None and compatible(c, w) for c in candidates for w in wanted
    ):
        return
    raise SpecError(
        f"workflow {wf_name}: output {declared.name!r} is declared {type_name(want)}, but "
        f"{lazy.label} gives {type_name(got)}",
        field=declared.name,
        value=lazy,
    )
