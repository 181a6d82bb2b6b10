"""What one submission knows at run time: nodes, their elements, and the jobs behind them.

The submitted task becomes the single node of a root *instance*; a workflow node's elements are
*composite* jobs, each of which, when it is not found in the cache, opens an instance of the
workflow's graph. So nested workflows, workflow-level splits and plain tasks run through the
same machinery, and every atomic job is scheduled on its own as soon as its inputs exist.

A node is *expanded* (its elements and their jobs created) once every upstream node is expanded
and every upstream value it splits over is known. A job is *ready* when the upstream jobs it
reads from are done; each job counts the dependencies it still waits for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import state as _state
from ..exceptions import MissingInputError, SpecError, SplitterError
from ..graph import lazy_inputs, topological_nodes
from ..hashing import H, hash_value
from ..spec.base import TaskDef
from ..spec.fields import NOTHING, check_rules, coerce, type_name
from ..spec.workflow import graph_class
from .plan import check_value, digest, job_hash, split_hash

__all__ = ["Instance", "JobRun", "NodeRun", "new_run_id"]


def new_run_id() -> str:
    """A random (version 4) UUID, as text: a job run's id. What ``str(uuid.uuid4())`` gives,
    made from the same 16 random bytes without the ``UUID`` object (0.8 us against 2 us: every
    job that runs takes one)."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]  # the two top bits of byte 8: 10 (RFC 4122)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


class JobRun:
    """One element of one node: an atomic job, or a composite one (a workflow instance)."""

    __slots__ = (
        "assign",
        "cause",
        "dependents",
        "digests",
        "environment",
        "environment_info",
        "graph",
        "index",
        "inner",
        "inputs",
        "job",
        "job_hash",
        "n_wait",
        "node",
        "outcome",
        "output_dir",
        "output_sources",
        "outputs",
        "reason",
        "replaces",
        "run_id",
        "status",
    )

    def __init__(self, node: NodeRun, index: int, assign: dict[str, Any]) -> None:
        self.node = node
        self.index = index
        self.assign = assign
        self.dependents: list[JobRun] = []
        self.n_wait = 0
        self.status = "waiting"  # waiting | ready | running | succeeded | failed | skipped
        self.outputs: dict[str, Any] | None = None
        self.inputs: dict[str, Any] | None = None
        self.digests: dict[str, bytes] | None = None
        self.job_hash: str | None = None
        self.output_dir: Path | None = None
        self.job: Any = None
        self.outcome: Any = None
        self.inner: Instance | None = None
        self.reason: str | None = None
        self.cause: JobRun | None = None
        self.run_id = ""  # the UUID of the run that computed the job's result
        self.replaces: Any = None  # a forced rerun: the saved result it replaces
        # a shell job's environment (provgraph.environments) and its description, or None
        self.environment: Any = None
        self.environment_info: dict[str, str] | None = None
        # a workflow job: for each output, the (run UUID, field) of the inner jobs behind it
        self.output_sources: dict[str, list[tuple[str, str]]] | None = None
        # a workflow job, once opened: the class whose graph it runs (a dynamic workflow's is
        # built from the job's input values)
        self.graph: Any = None

    @property
    def done(self) -> bool:
        """True once the job succeeded, failed or was skipped."""
        return self.status in ("succeeded", "failed", "skipped")

    @property
    def label(self) -> str:
        """``node path[element]`` for messages."""
        path = self.node.path
        return path if self.node.expansion_is_single else f"{path}[{self.index}]"


class NodeRun:
    """A node of one workflow instance (or the submitted task itself)."""

    def __init__(self, instance: Instance, name: str, task: TaskDef) -> None:
        self.instance = instance
        self.name = name
        self.task = task
        self.path = f"{instance.prefix}{name}"
        self.upstream: dict[str, NodeRun] = {}
        self.downstream: list[NodeRun] = []
        self.expansion: _state.Expansion | None = None
        self.space: _state.Space | None = None
        self.combined = False
        self.jobs: list[JobRun] = []
        self.n_unfinished = 0
        self.complete = False
        self.expansion_is_single = True
        self.failure: str | None = None
        self.fixed: dict[str, Any] = {}
        self.fixed_digests: dict[str, bytes] = {}
        # its inputs connected to other nodes' outputs (read once: each of its jobs asks)
        self.lazy: list[tuple[str, Any]] = list(lazy_inputs(task))
        # workflow.add(..., rerun=True) on this node, or on a workflow node around it
        parent = instance.parent
        self.rerun: bool = parent is not None and (
            parent.node.rerun or name in getattr(parent.graph, "_rerun_nodes", ())
        )

    # -- what this node passes downstream ----------------------------------------------------
    def value_at(self, key: tuple[int, ...], field: str) -> Any:
        """The output ``field`` for one key of this node's remaining space."""
        assert self.space is not None
        positions = self.space.groups.get(key, [])
        if self.combined:
            return [_output(self.jobs[p], field) for p in positions]
        return _output(self.jobs[positions[0]], field) if positions else None

    def result_value(self, field: str) -> Any:
        """The output as a workflow output or a submission result shows it (Pydra's rule)."""
        assert self.space is not None
        if not self.space.axes:
            if not self.space.keys or (not self.combined and not self.jobs):
                return []  # an empty split
            return self.value_at((), field)
        return [self.value_at(k, field) for k in self.space.keys]

    def key_for(self, job: JobRun, upstream: NodeRun) -> tuple[int, ...]:
        """The key of ``upstream``'s space that element ``job`` of this node reads."""
        assert upstream.space is not None and self.expansion is not None
        if not upstream.space.axes:
            return ()
        idx = self.expansion.index[job.index]
        dims = _dims_for(self.expansion.axes, upstream.space.axes)
        return tuple(idx[d] for d in dims)


def _output(job: JobRun, field: str) -> Any:
    return job.outputs.get(field) if job.outputs is not None else None


def _dims_for(axes: tuple[frozenset[str], ...], wanted: tuple[frozenset[str], ...]) -> list[int]:
    dims = []
    for names in wanted:
        for d, ax in enumerate(axes):
            if names <= ax:
                dims.append(d)
                break
        else:  # pragma: no cover - guarded by how splitters are completed
            raise SplitterError(f"state axis {sorted(names)} is not carried by the node")
    return dims


class Instance:
    """One run of a workflow's graph with concrete inputs (or the root of a submission)."""

    def __init__(
        self, prefix: str, inputs: dict[str, Any], parent: JobRun | None, run_id: str = ""
    ) -> None:
        self.prefix = prefix
        self.run_id = run_id  # the workflow run this instance is
        self.inputs = inputs
        self.parent = parent
        self.nodes: dict[str, NodeRun] = {}
        self.n_incomplete = 0


# -- expansion -----------------------------------------------------------------------------------


def blocked_by(node: NodeRun) -> Iterator[NodeRun]:
    """Upstream nodes that must progress before ``node`` can be expanded."""
    split = set(node.task.split_fields)
    for field, lazy in lazy_inputs(node.task):
        if lazy.node is None:
            continue
        up = node.upstream[lazy.node]
        if up.space is None or (field in split and not up.complete):
            yield up


def _qualify(names: frozenset[str], node: str) -> frozenset[str]:
    return frozenset(n if "." in n else f"{node}.{n}" for n in names)


def _full_splitter(node: NodeRun, split_sources: dict[str, NodeRun]) -> Any:
    """The node's splitter with the states of its upstream nodes added (Pydra's Left part)."""
    spaces = {f"_{n}": up.space for n, up in node.upstream.items() if up.space and up.space.axes}
    names = {t: frozenset().union(*sp.axes) for t, sp in spaces.items()}
    # an upstream whose state another upstream already carries (one lineage) adds no axis
    terms: list[str] = []
    for t in spaces:
        covered = any(
            o != t and (names[t] < names[o] or (names[t] == names[o] and o in terms))
            for o in spaces
        )
        if not covered:
            terms.append(t)
    splitter = node.task.splitter
    mentioned = set(_state.splitter_fields(splitter)) if splitter is not None else set()
    for term in mentioned:
        if term.startswith("_") and term not in node.task._input_fields and term not in spaces:
            raise SplitterError(
                f"node {node.path!r}: splitter names {term!r}, but {term[1:]!r} is not an "
                f"upstream node with state here; upstream states are {sorted(spaces)}"
            )
    scoped = {f"_{up.name}" for up in split_sources.values() if up.space and up.space.axes}
    if splitter is not None and scoped:
        splitter = _scope(splitter, {f: f"_{up.name}" for f, up in split_sources.items()})
    missing = [t for t in terms if t not in mentioned and t not in scoped]
    parts = [*missing, splitter] if splitter is not None else missing
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else parts


def _scope(splitter: Any, sources: dict[str, str], placed: set[str] | None = None) -> Any:
    """Put an upstream state just before the first field that splits over its output."""
    placed = set() if placed is None else placed
    if isinstance(splitter, str):
        term = sources.get(splitter)
        if term is None or term in placed:
            return splitter
        placed.add(term)
        return [term, splitter]
    items = [_scope(s, sources, placed) for s in splitter]
    return tuple(items) if isinstance(splitter, tuple) else items


def expand_node(node: NodeRun) -> None:
    """Work out ``node``'s elements, its remaining space and its jobs' dependencies."""
    task = node.task
    split = task.split_fields
    values: dict[str, Any] = {}
    split_sources: dict[str, NodeRun] = {}
    for field in split:
        if field.startswith("_") and field not in task._input_fields:
            continue
        value = task._values[field]
        if getattr(value, "_provgraph_lazy", False):
            if value.node is None:
                values[field] = node.instance.inputs[value.field]
            else:
                up = node.upstream[value.node]
                split_sources[field] = up
                values[field] = _split_source(node, up, value.field)
        else:
            values[field] = value
    full = _full_splitter(node, split_sources)
    if full is None:
        node.expansion = _state.Expansion((), [()], [{}])
    else:
        upstream = {f"_{n}": up.space for n, up in node.upstream.items() if up.space is not None}
        node.expansion = _state.expand(full, values, upstream)
        node.expansion_is_single = False
    combiner = _resolve_combiner(node)
    node.combined = bool(combiner)
    space = _state.remaining_space(node.expansion, combiner)
    axes = tuple(_qualify(ax, node.name) for ax in space.axes)
    groups = dict(space.groups)
    for up in node.upstream.values():
        # an upstream element whose own split was empty still has its (empty) group here
        if up.space is not None and axes and up.space.axes == axes:
            for key in up.space.keys:
                groups.setdefault(key, [])
    keys = space.keys if len(groups) == len(space.groups) else sorted(groups)
    node.space = _state.Space(axes, keys, groups)
    node.jobs = [JobRun(node, i, a) for i, a in enumerate(node.expansion.assign)]
    node.n_unfinished = len(node.jobs)
    for field, lazy in lazy_inputs(task):
        if lazy.node is None or field in split:
            continue
        up = node.upstream[lazy.node]
        for job in node.jobs:
            key = node.key_for(job, up)
            for pos in up.space.groups.get(key, []):  # type: ignore[union-attr]
                dep = up.jobs[pos]
                dep.dependents.append(job)
                if not dep.done:
                    job.n_wait += 1
                elif dep.status != "succeeded" and job.cause is None:
                    job.cause = dep.cause or dep


def _split_source(node: NodeRun, up: NodeRun, field: str) -> Any:
    if up.space is not None and up.space.axes:
        term = f"_{up.name}"

        def values_for(ctx: dict[str, Any]) -> Any:
            if term not in ctx:
                raise SplitterError(
                    f"node {node.path!r} splits over {up.name}.{field}, whose node has a state: "
                    f"that split must be part of an outer product, not a zip"
                )
            return _checked_list(node, up, field, up.value_at(ctx[term], field))

        return values_for
    return _checked_list(node, up, field, up.value_at((), field))


def _checked_list(node: NodeRun, up: NodeRun, field: str, value: Any) -> Any:
    if value is None or not isinstance(value, (list, tuple)):
        raise SplitterError(
            f"node {node.path!r} splits over {up.name}.{field}, which gave "
            f"{type(value).__name__}, not a list"
        )
    return value


def _resolve_combiner(node: NodeRun) -> list[str]:
    assert node.expansion is not None
    names = []
    all_axes = set().union(*node.expansion.axes) if node.expansion.axes else set()
    for name in node.task.combiner:
        if name.startswith(f"{node.name}."):
            name = name[len(node.name) + 1 :]
        if name not in all_axes:
            raise SplitterError(
                f"node {node.path!r}: combiner names {name!r}, which is not in its state; "
                f"state fields are {sorted(all_axes)}"
            )
        names.append(name)
    return names


# -- inputs and hashes of one job ----------------------------------------------------------------


def prepare_fixed(node: NodeRun) -> None:
    """Check and hash, once per node, the inputs that are the same for every element."""
    task = node.task
    split = set(task.split_fields)
    missing = [f for f in task._input_fields if task._values[f] is NOTHING]
    if missing:
        raise MissingInputError.of(node.path, missing)
    for field, spec in task._input_fields.items():
        value = task._values[field]
        if field in split:
            continue
        if getattr(value, "_provgraph_lazy", False):
            if value.node is not None:
                continue
            value = node.instance.inputs[value.field]
        if spec.left_implicit(value):
            continue  # a shell task's own executable, no extra arguments: as if absent
        node.fixed[field] = checked = check_value(spec, value)
        node.fixed_digests[field] = digest(field, checked)


def resolve_inputs(job: JobRun) -> None:
    """The job's inputs: fixed values, its split values and what its upstream jobs gave."""
    node = job.node
    task = node.task
    inputs = dict(node.fixed)
    digests = dict(node.fixed_digests)
    fields = task._input_fields
    for field, value in job.assign.items():
        if field in fields:
            if fields[field].left_implicit(value):
                continue
            inputs[field] = checked = check_value(fields[field], value)
            digests[field] = digest(field, checked)
    for field, lazy in node.lazy:
        if lazy.node is None or field in job.assign:
            continue
        up = node.upstream[lazy.node]
        value = up.value_at(node.key_for(job, up), lazy.field)
        inputs[field] = checked = check_value(fields[field], value)
        digests[field] = digest(field, checked)
    if task._has_rules:
        check_rules(node.path, fields, inputs, type(task)._one_of)
    job.inputs = inputs
    job.digests = digests


def definition_digest(task_cls: Any, memo: dict[int, bytes]) -> bytes:
    """A task class's definition hash; for workflows, with its graph and constant inputs."""
    if task_cls._kind != "workflow":
        return bytes(task_cls._definition_hash)
    found = memo.get(id(task_cls))
    if found is not None:
        return found
    if task_cls._graph is None:  # a dynamic workflow built per job: its job's inputs say which
        return H(b"DynamicWorkflow", bytes(task_cls._definition_hash))
    parts = [task_cls._definition_hash]
    for name in topological_nodes(task_cls._graph):
        task = task_cls._nodes[name]
        values = []
        specs = type(task)._input_fields
        for field, value in task._values.items():
            if specs[field].left_implicit(value):
                continue  # as if absent: workflows keep their hashes
            if getattr(value, "_provgraph_lazy", False):
                values.append(hash_value(("lazy", field, value.label)))
            elif value is not NOTHING:
                values.append(hash_value(field) + digest(field, value))
        parts.append(
            hash_value(name)
            + definition_digest(type(task), memo)
            + hash_value([repr(task.splitter), list(task.combiner)])
            + H(b"values", b"".join(sorted(values)))
        )
    outputs = sorted((k, v.label) for k, v in task_cls._output_map.items())
    parts.append(hash_value(outputs))
    memo[id(task_cls)] = result = H(b"WorkflowGraph", b"".join(parts))
    return result


def hash_job(job: JobRun, memo: dict[int, bytes], environment: bytes | None = None) -> str:
    """The job's hash, from its definition (and graph) and its inputs' hashes; and, when
    given, the digest of the environment it runs in (see :func:`environment_digest`)."""
    assert job.digests is not None
    digests = job.digests
    if environment is not None:  # "@" cannot start a field name, so no input collides
        digests = {**digests, "@environment": environment}
    return job_hash(definition_digest(type(job.node.task), memo), digests)


def split_name(root: NodeRun, memo: dict[int, bytes]) -> str:
    """The hash naming a split root task's own directory: every element's job hash (which
    covers its checked values; their order covers the splitter) and the state."""
    hashes = [j.job_hash or "" for j in root.jobs]
    state = (root.task.splitter, root.task.combiner)
    return split_hash(definition_digest(type(root.task), memo), hashes, state)


def root_node(task: TaskDef, run_id: str = "") -> NodeRun:
    """The node of a submitted task, alone in the root instance (the submission's workflow
    run ``run_id``)."""
    instance = Instance("", {}, None, run_id)
    root = NodeRun(instance, type(task)._task_name, task)
    instance.nodes[root.name] = root
    instance.n_incomplete = 1
    return root


def task_hash(task: TaskDef) -> str:
    """The hash that names ``task``'s directory when it is submitted (with no container in
    the hash): its job's, or, split, its split's. Its inputs are checked as a submission checks
    them (input files must exist; they are hashed by content)."""
    if any(True for _ in lazy_inputs(task)):
        raise SpecError(
            f"{type(task)._task_name}: an input is a connection to another node; its hash is "
            "known when the workflow runs",
            value=task,
        )
    root = root_node(task)
    prepare_fixed(root)
    expand_node(root)
    memo: dict[int, bytes] = {}
    for job in root.jobs:
        resolve_inputs(job)
        job.job_hash = hash_job(job, memo)
    if root.expansion_is_single:
        return root.jobs[0].job_hash or ""
    return split_name(root, memo)


def environment_digest(info: dict[str, str]) -> bytes:
    """What of an environment's description enters a job hash: runtime, image, digest."""
    return hash_value(["Environment", info["runtime"], info["image"], info["digest"]])


def tasks_within(task: TaskDef, path: str = "") -> Iterator[tuple[str, TaskDef]]:
    """``(node path, task)`` for ``task`` and, for a workflow, every node of its graph,
    nested workflows included (paths like ``inner/copy``; ``""`` for ``task`` itself)."""
    yield path, task
    if type(task)._kind == "workflow":
        for name, node in type(task)._nodes.items():  # type: ignore[attr-defined]
            yield from tasks_within(node, f"{path}/{name}" if path else name)


def open_instance(job: JobRun) -> Instance:
    """The graph of a workflow job, as nodes of a new instance with the job's inputs."""
    assert job.inputs is not None
    wf_cls: Any = graph_class(type(job.node.task), job.inputs)
    job.graph = wf_cls
    instance = Instance(f"{job.label}/", dict(job.inputs), job, job.run_id)
    for name in topological_nodes(wf_cls._graph):
        instance.nodes[name] = NodeRun(instance, name, wf_cls._nodes[name])
    for node in instance.nodes.values():
        for _, lazy in lazy_inputs(node.task):
            if lazy.node is not None and lazy.node not in node.upstream:
                up = instance.nodes[lazy.node]
                node.upstream[lazy.node] = up
                up.downstream.append(node)
    instance.n_incomplete = len(instance.nodes)
    job.inner = instance
    return instance


def instance_outputs(instance: Instance, wf_cls: Any) -> dict[str, Any]:
    """A finished instance's workflow outputs (each node's remaining state as a flat list)."""
    return {
        name: (
            instance.inputs.get(lazy.field)  # one of its inputs, passed straight through
            if lazy.node is None
            else instance.nodes[lazy.node].result_value(lazy.field)
        )
        for name, lazy in wf_cls._output_map.items()
    }


def output_type_error(instance: Instance, wf_cls: Any, outputs: dict[str, Any]) -> str | None:
    """The first workflow output whose value does not fit the type the workflow declares for
    it, or None; from a node that kept a state (or combined one), a list of fitting items
    fits too. Checked when the workflow finishes: it catches outputs whose node declared no
    type to check when the workflow was defined."""
    for name, value in outputs.items():
        field = wf_cls._output_fields.get(name)
        if field is None or field.type is Any or value is None:
            continue
        lazy = wf_cls._output_map[name]
        node = instance.nodes.get(lazy.node) if lazy.node is not None else None
        stateful = node is not None and node.space is not None
        stateful = stateful and (bool(node.space.axes) or node.combined)  # type: ignore[union-attr]
        if _fits(name, field.type, value) or (
            stateful and isinstance(value, list) and all(_fits(name, field.type, v) for v in value)
        ):
            continue
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return (
            f"Incorrect type for lazy field in {name!r} field of {wf_cls._task_name}.Outputs "
            f"interface: got {shown} ({type(value).__name__}), expected {type_name(field.type)}"
        )
    return None


def _fits(name: str, tp: Any, value: Any) -> bool:
    try:
        coerce(name, tp, value)
    except SpecError:
        return False
    return True


def input_sources(job: JobRun) -> dict[str, list[tuple[str, str]]]:
    """For each input that came from upstream jobs: ``(run id, output field)`` of each source.

    Inputs of a nested workflow's jobs that came from the workflow's own inputs are traced
    through the workflow job to the jobs that produced them.
    """
    node = job.node
    sources: dict[str, list[tuple[str, str]]] = {}
    for field, lazy in lazy_inputs(node.task):
        if lazy.node is None:
            parent = node.instance.parent
            if parent is not None:
                found = input_sources(parent).get(lazy.field)
                if found and field in job.assign:  # split over the workflow's list
                    found = _element_sources(
                        found, node.instance.inputs.get(lazy.field), job, field
                    )
                if found:
                    sources[field] = found
            continue
        up = node.upstream[lazy.node]
        assert up.space is not None
        split = field in job.assign
        key = job.assign.get(f"_{up.name}", ()) if split else node.key_for(job, up)
        positions = up.space.groups.get(key, [])
        sources[field] = [src for p in positions for src in job_sources(up.jobs[p], lazy.field)]
    return sources


def _element_sources(
    found: list[tuple[str, str]], values: Any, job: JobRun, field: str
) -> list[tuple[str, str]]:
    """Of the sources of a workflow's list input (one per element, in order), the one behind
    the element this job was given; all of them when that cannot be told."""
    given = job.assign[field]
    if not isinstance(values, list) or len(values) != len(found):
        return found
    at = [i for i, value in enumerate(values) if value is given]
    return [found[at[0]]] if len(at) == 1 else found


def job_sources(job: JobRun, field: str) -> list[tuple[str, str]]:
    """The (run UUID, field) that output ``field`` of ``job`` stands for: itself, or for a
    workflow job, the inner jobs that produced that workflow output."""
    if job.output_sources is not None:
        return list(job.output_sources.get(field, []))
    return [(job.run_id, field)]


def instance_output_sources(instance: Instance, wf_cls: Any) -> dict[str, list[tuple[str, str]]]:
    """For each workflow output, the (run UUID, field) of the inner jobs behind its value."""
    sources: dict[str, list[tuple[str, str]]] = {}
    for name, lazy in wf_cls._output_map.items():
        if lazy.node is None:  # an input passed through: the jobs behind that input, if any
            parent = instance.parent
            sources[name] = input_sources(parent).get(lazy.field, []) if parent else []
            continue
        node = instance.nodes[lazy.node]
        sources[name] = [src for j in node.jobs for src in job_sources(j, lazy.field)]
    return sources
