"""Events to triples: the provenance recorder.

:class:`Recorder` is a submitter hook. Before a job is sent to a worker it names the job's
record in the journal and gathers, as plain data, what the record needs (its workflow run, its
inputs with their content hashes and the upstream outputs they came from); :func:`write_job_run`
then runs in the process that ran the job and writes the run's named graph *aside*
(``_prov-<run>.trig.pending``); once the result is saved, the function it returned publishes the
record under its name (``_prov-<run>.trig``). So a record that says "succeeded" always has its
result, and a run whose process died leaves a pending record that the next run of the job turns
into an "interrupted" one (:func:`recover`).

Workflow runs and the submission are recorded when they start (``.provenance/runs/<run>.trig``,
before any of their jobs runs: no ``pg:partOf`` dangles) and completed when the submission ends
(``.provenance/submissions/<submission>.trig``: end times, statuses, the earlier runs reused).
Locations inside the cache are written relative to the record's file (see
:func:`provgraph.provenance.vocab.location_iri`).
"""

from __future__ import annotations

import datetime
import functools
import itertools
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pyoxigraph as ox
import xxhash

from .. import __version__, _signing
from .._filetypes import Directory, File
from ..cache import atomic_write
from ..engine.job import ErrorInfo, Outcome
from ..exceptions import HashingError
from ..hashing import file_content_digest, hash_value
from . import journal
from . import vocab as V
from .environment import capture

__all__ = ["describe_value", "pickle_definition", "recover", "write_job_run"]

_SMALL_TEXT = 256
_TRIG = ox.RdfFormat.TRIG
PREFIXES = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}


def _trig(quads: list[ox.Quad], depth: int = 1) -> bytes:
    """TriG of ``quads`` for a file ``depth`` folders below the cache (1: a job directory)."""
    data = ox.serialize(quads, format=_TRIG, prefixes=PREFIXES)
    assert data is not None  # no output file given: the bytes are returned
    return V.relative_locations(data, depth)


@functools.lru_cache(maxsize=4096)
def _n(iri: str) -> ox.NamedNode:
    return ox.NamedNode(iri)


A = _n(V.RDF + "type")
_BLANKS = itertools.count()


@functools.lru_cache(maxsize=4096)
def _graph_tag(graph: str) -> str:
    return xxhash.xxh3_64_hexdigest(graph.encode())


def _blank(g: ox.NamedNode) -> ox.BlankNode:
    """A blank node of the record of graph ``g``, labelled from the graph's name and a counter.
    Never ``ox.BlankNode()``: its random labels repeat in processes forked from one parent (a
    ``cf`` pool), and the union of their records would join unrelated usages."""
    return ox.BlankNode(f"b{_graph_tag(g.value)}x{next(_BLANKS):x}")


LABEL = _n(V.RDFS + "label")


def P(name: str) -> ox.NamedNode:
    """A term of PROV-O."""
    return _n(V.PROV + name)


def G(name: str) -> ox.NamedNode:
    """A term of the pg: vocabulary."""
    return _n(V.PG + name)


def _lit(value: Any) -> ox.Literal:
    if isinstance(value, bool):
        return ox.Literal("true" if value else "false", datatype=_n(V.XSD + "boolean"))
    if isinstance(value, int):
        return ox.Literal(str(value), datatype=_n(V.XSD + "integer"))
    if isinstance(value, float):
        return ox.Literal(repr(value), datatype=_n(V.XSD + "double"))
    return ox.Literal(str(value))


def _time(seconds: float) -> ox.Literal:
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).isoformat()
    return ox.Literal(stamp, datatype=_n(V.XSD + "dateTime"))


def _place(path: str | os.PathLike[str], root: str) -> ox.NamedNode:
    """A file's IRI in a record of the cache ``root``: relative to it when inside it."""
    return _n(V.location_iri(path, root))


def describe_value(value: Any) -> dict[str, Any]:
    """Content hash, kind, and location/size or small value, of one input or output value.

    A list (or tuple) of files is described by its members too, so that each file has its own
    entity; a value with no content hash is hashed by its pickled bytes.
    """
    if type(value).__module__.startswith("fileformats"):
        return _describe_fileset(value)
    plain_path = isinstance(value, Path) and not isinstance(value, (File, Directory))
    if plain_path and not os.path.lexists(value):  # a path a task may create: its name
        return {"kind": "Value", "hash": hash_value(value).hex(), "value": str(value)}
    if isinstance(value, (File, Directory, Path)):
        path = Path(value)
        if path.is_dir():
            digest = hash_value(Directory(path)).hex()
            return {"kind": "Directory", "hash": digest, "location": str(path), "size": None}
        digest = file_content_digest(path).hex()
        return {"kind": "File", "hash": digest, "location": str(path), "size": path.stat().st_size}
    if (
        isinstance(value, (list, tuple))
        and value
        and all(
            isinstance(v, (File, Directory)) or type(v).__module__.startswith("fileformats")
            for v in value
        )
    ):
        members = [describe_value(v) for v in value]
        return {"kind": "Value", "hash": hash_value(value).hex(), "members": members}
    small = None
    if isinstance(value, (bool, int, float)) or (
        isinstance(value, str) and len(value) <= _SMALL_TEXT
    ):
        small = value
    try:
        digest = hash_value(value).hex()
    except HashingError:  # recorded all the same, by its pickled bytes
        import cloudpickle

        digest = xxhash.xxh3_128_hexdigest(cloudpickle.dumps(value))
    return {"kind": "Value", "hash": digest, "value": small}


def _describe_fileset(value: Any) -> dict[str, Any]:
    """A fileformats file set: a one-file set is that file, a larger set a value whose
    members are its files; both with the format's MIME-like name."""
    from .._fileformats import format_name, members

    files = [describe_value(File(p)) for p in members(value)]
    if len(files) == 1:
        return {**files[0], "format": format_name(value)}
    digest = hash_value(value).hex()
    return {"kind": "Value", "hash": digest, "members": files, "format": format_name(value)}


def _entity(g: ox.NamedNode, iri: ox.NamedNode, d: dict[str, Any], root: str) -> Iterator[ox.Quad]:
    yield ox.Quad(iri, A, P("Entity"), g)
    yield ox.Quad(iri, A, G(d["kind"]), g)
    yield ox.Quad(iri, G("contentHash"), ox.Literal(f"xxh3-128:{d['hash']}"), g)
    if d.get("location"):
        yield ox.Quad(iri, P("atLocation"), _place(d["location"], root), g)
    if d.get("size") is not None:
        yield ox.Quad(iri, G("size"), _lit(d["size"]), g)
    if d.get("value") is not None:
        yield ox.Quad(iri, P("value"), _lit(d["value"]), g)
    if d.get("format") is not None:
        yield ox.Quad(iri, G("format"), ox.Literal(d["format"]), g)


def _generated(
    g: ox.NamedNode,
    entity: ox.NamedNode,
    described: dict[str, Any],
    run: ox.NamedNode,
    role: ox.NamedNode,
    sources: list[ox.NamedNode],
    root: str,
) -> Iterator[ox.Quad]:
    """An output entity: its description, its (qualified) generation, what it derives from."""
    generation = _blank(g)
    yield from _entity(g, entity, described, root)
    yield ox.Quad(entity, P("wasGeneratedBy"), run, g)
    yield ox.Quad(entity, P("qualifiedGeneration"), generation, g)
    yield ox.Quad(generation, A, P("Generation"), g)
    yield ox.Quad(generation, P("activity"), run, g)
    yield ox.Quad(generation, P("hadRole"), role, g)
    for source in sources:
        derivation = _blank(g)
        yield ox.Quad(entity, P("wasDerivedFrom"), source, g)
        yield ox.Quad(entity, P("qualifiedDerivation"), derivation, g)
        yield ox.Quad(derivation, A, P("Derivation"), g)
        yield ox.Quad(derivation, P("entity"), source, g)
        yield ox.Quad(derivation, P("hadActivity"), run, g)


def _agents(g: ox.NamedNode, context: dict[str, Any]) -> Iterator[ox.Quad]:
    agent = _n(V.agent_iri())
    user = _n(context["user"])
    yield ox.Quad(agent, A, P("Agent"), g)
    yield ox.Quad(agent, A, P("SoftwareAgent"), g)
    yield ox.Quad(agent, LABEL, ox.Literal(f"provgraph {__version__}"), g)
    yield ox.Quad(agent, P("actedOnBehalfOf"), user, g)
    delegation = _n(V.delegation_iri(agent.value, user.value))  # one, however many records
    yield ox.Quad(agent, P("qualifiedDelegation"), delegation, g)
    yield ox.Quad(delegation, A, P("Delegation"), g)
    yield ox.Quad(delegation, P("agent"), user, g)
    yield ox.Quad(user, A, P("Agent"), g)
    yield ox.Quad(user, A, P("Person"), g)
    yield ox.Quad(user, LABEL, ox.Literal(context["login"]), g)


def _plan(g: ox.NamedNode, context: dict[str, Any]) -> Iterator[ox.Quad]:
    plan = _n(V.definition_iri(context["definition"]))
    yield ox.Quad(plan, A, P("Plan"), g)
    yield ox.Quad(plan, A, P("Entity"), g)
    yield ox.Quad(plan, A, G("TaskDefinition"), g)
    yield ox.Quad(plan, LABEL, ox.Literal(context["task_name"]), g)
    yield ox.Quad(plan, G("definitionHash"), ox.Literal(f"xxh3-128:{context['definition']}"), g)
    yield ox.Quad(plan, G("taskKind"), ox.Literal(context["kind"]), g)
    text_property = "command" if context["kind"] == "shell" else "source"
    yield ox.Quad(plan, G(text_property), ox.Literal(context["definition_text"]), g)
    if context.get("definition_file"):
        where = _place(context["definition_file"], context["cache_dir"])
        yield ox.Quad(plan, G("definitionFile"), where, g)


def _environment_file(cache_dir: Path, env: dict[str, Any]) -> None:
    """The environment's own graph, written once per environment hash."""
    folder = cache_dir / ".provenance" / "environments"
    path = folder / f"{env['hash']}.trig"
    if path.exists():
        return
    iri = _n(V.environment_iri(env["hash"]))
    g = iri
    quads = [
        ox.Quad(iri, A, P("Entity"), g),
        ox.Quad(iri, A, G("Environment"), g),
        ox.Quad(iri, G("pythonVersion"), ox.Literal(env["python_version"]), g),
        ox.Quad(iri, G("platform"), ox.Literal(env["platform"]), g),
        ox.Quad(iri, G("hostname"), ox.Literal(env["hostname"]), g),
        ox.Quad(iri, G("cpuCount"), _lit(env["cpu_count"]), g),
    ]
    for name, version in env["packages"].items():
        package = _blank(g)
        quads += [
            ox.Quad(iri, G("package"), package, g),
            ox.Quad(package, A, G("Package"), g),
            ox.Quad(package, G("name"), ox.Literal(name), g),
            ox.Quad(package, G("version"), ox.Literal(version), g),
        ]
    if env.get("container"):
        quads += _container_quads(g, iri, env["container"])
    folder.mkdir(parents=True, exist_ok=True)
    journal.append(cache_dir, [path])  # named too (the folder's mtime may be too coarse)
    atomic_write(path, _trig(quads, depth=2))


_PLACEMENT = {  # what a worker says of where a job ran -> the property recording it
    "worker": "worker",
    "address": "workerAddress",
    "slurm_job_id": "slurmJobId",
    "slurm_state": "slurmState",
}


def _placement(
    g: ox.NamedNode, run: ox.NamedNode, placement: dict[str, str], root: str
) -> Iterator[ox.Quad]:
    """Which worker ran the job, where (Dask address, SLURM job id), and its log file."""
    for key, prop in _PLACEMENT.items():
        if placement.get(key):
            yield ox.Quad(run, G(prop), ox.Literal(str(placement[key])), g)
    log = placement.get("log")
    if log and os.path.exists(log):
        yield ox.Quad(run, G("workerLog"), _place(log, root), g)


def _with_container(env: dict[str, Any], container: dict[str, str] | None) -> dict[str, Any]:
    """The host environment and the container (or sandbox) a shell command ran in, as one
    environment: one IRI per combination, named by the hash of both."""
    if not container:
        return env
    digest = xxhash.xxh3_128_hexdigest(f"{env['hash']} {sorted(container.items())!r}".encode())
    return {**env, "container": container, "hash": digest}


def _container_quads(g: ox.NamedNode, env: ox.NamedNode, info: dict[str, str]) -> Iterator[ox.Quad]:
    """The container part of an environment: runtime and version, image, tag and digest."""
    yield ox.Quad(env, A, G("ContainerEnvironment"), g)
    yield ox.Quad(env, G("containerRuntime"), ox.Literal(info["runtime"]), g)
    yield ox.Quad(env, G("runtimeVersion"), ox.Literal(info["runtime_version"]), g)
    yield ox.Quad(env, G("containerImage"), ox.Literal(info["image"]), g)
    yield ox.Quad(env, G("containerDigest"), ox.Literal(info["digest"]), g)
    if info.get("image_name"):
        yield ox.Quad(env, G("imageName"), ox.Literal(info["image_name"]), g)
    if info.get("tag"):
        yield ox.Quad(env, G("imageTag"), ox.Literal(info["tag"]), g)
    if info.get("location"):
        yield ox.Quad(env, P("atLocation"), _n(V.file_iri(info["location"])), g)


PENDING = ".pending"
INTERRUPTED = "interrupted"


def record_path(directory: str | os.PathLike[str], run_id: str) -> Path:
    """Where the record of run ``run_id`` of the job in ``directory`` is published."""
    return Path(directory) / record_name(run_id)


def record_name(run_id: str) -> str:
    """The file name of a job run's record in its job's directory."""
    return f"_prov-{run_id}.trig"


_CORE = {name: _n(V.PG + name) for name in (
    "JobRun", "taskName", "nodeName", "elementIndex", "jobHash", "outputDir", "status",
    "partOf", "workerHost", "workerPid",
)}  # fmt: skip
_ACTIVITY, _STARTED, _ENDED = (_n(V.PROV + n) for n in ("Activity", "startedAtTime", "endedAtTime"))


def _run_core(job: Any, outcome: Any, g: ox.NamedNode, root: str) -> list[ox.Quad]:
    """What a job run says about itself: task, node, job, place, status, times, workflow run.
    (On every job's path: plain list building, the terms made once.)"""
    context, quad, c, lit = job.context, ox.Quad, _CORE, ox.Literal
    quads = [
        quad(g, A, _ACTIVITY, g),
        quad(g, A, c["JobRun"], g),
        quad(g, c["taskName"], lit(context["task_name"]), g),
        quad(g, c["nodeName"], lit(context["node"]), g),
        quad(g, c["elementIndex"], _lit(job.index), g),
        quad(g, c["jobHash"], lit(job.job_hash), g),
        quad(g, c["outputDir"], _place(job.output_dir, root), g),
        quad(g, c["status"], lit(outcome.status), g),
        quad(g, _STARTED, _time(outcome.started), g),
        quad(g, _ENDED, _time(max(outcome.ended, outcome.started)), g),
        quad(g, c["partOf"], _n(V.run_iri(context["workflow_run"])), g),
        quad(g, c["workerHost"], lit(outcome.host), g),
        quad(g, c["workerPid"], _lit(outcome.pid), g),
    ]
    quads += _placement(g, g, getattr(outcome, "placement", None) or {}, root)
    quads += _consumption(g, job, outcome, root)
    return quads


_USAGE = {"cpu_user": "cpuUserTime", "cpu_system": "cpuSystemTime"}


def _consumption(g: ox.NamedNode, job: Any, outcome: Any, root: str) -> Iterator[ox.Quad]:
    """What the run consumed (CPU, peak memory), its command's exit code and executable."""
    usage = getattr(outcome, "usage", None) or {}
    for key, prop in _USAGE.items():
        if key in usage:
            yield ox.Quad(g, G(prop), _lit(round(float(usage[key]), 6)), g)
    if "peak_rss" in usage:
        yield ox.Quad(g, G("peakMemory"), _lit(int(usage["peak_rss"])), g)
    code = (outcome.outputs or {}).get("return_code") if outcome.ok else None
    if code is None and outcome.error is not None:
        code = getattr(outcome.error, "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        yield ox.Quad(g, G("exitCode"), _lit(code), g)
    task_cls: Any = getattr(job, "task_cls", None)
    if getattr(task_cls, "_kind", "") == "shell" and getattr(job, "environment", None) is None:
        words = task_cls._executable_of(getattr(job, "inputs", None) or {})
        yield from _executable(g, words, root)


def _executable(g: ox.NamedNode, words: list[str], root: str) -> Iterator[ox.Quad]:
    """The program a native shell command ran: its resolved path and content hash."""
    import shutil

    found = shutil.which(words[0]) if words else None
    if found is None:
        return
    path = os.path.realpath(found)
    try:
        digest = file_content_digest(path).hex()
    except (HashingError, OSError):
        return
    exe = _n(V.content_iri(digest))
    yield ox.Quad(g, G("executable"), exe, g)
    yield from _entity(g, exe, {"kind": "File", "hash": digest, "location": path}, root)
    yield ox.Quad(exe, A, G("Executable"), g)


_ENVIRONMENT_ROLE = _n(V.PG + "environmentRole")


def _environment_usage(g: ox.NamedNode, env: ox.NamedNode) -> Iterator[ox.Quad]:
    """The environment the run used, plainly and qualified (its role: the environment)."""
    usage = _blank(g)
    yield ox.Quad(g, P("used"), env, g)
    yield ox.Quad(env, A, P("Entity"), g)
    yield ox.Quad(env, A, G("Environment"), g)
    yield ox.Quad(g, P("qualifiedUsage"), usage, g)
    yield ox.Quad(usage, A, P("Usage"), g)
    yield ox.Quad(usage, P("entity"), env, g)
    yield ox.Quad(usage, P("hadRole"), _ENVIRONMENT_ROLE, g)
    yield ox.Quad(_ENVIRONMENT_ROLE, A, P("Role"), g)
    yield ox.Quad(_ENVIRONMENT_ROLE, LABEL, ox.Literal("environment"), g)


def _association(g: ox.NamedNode, context: dict[str, Any]) -> Iterator[ox.Quad]:
    """The engine acting with the task definition as plan, on the user's behalf."""
    agent = _n(V.agent_iri())
    association = _blank(g)
    yield ox.Quad(g, P("wasAssociatedWith"), agent, g)
    yield ox.Quad(g, P("qualifiedAssociation"), association, g)
    yield ox.Quad(association, A, P("Association"), g)
    yield ox.Quad(association, P("agent"), agent, g)
    yield ox.Quad(association, P("hadPlan"), _n(V.definition_iri(context["definition"])), g)
    yield from _agents(g, context)
    yield from _plan(g, context)


def _usages(
    g: ox.NamedNode,
    context: dict[str, Any],
    root: str,
    used: list[ox.NamedNode],
    roles: bool = True,
) -> Iterator[ox.Quad]:
    """Each input used, plainly and qualified with its role; upstream runs informing this one.
    The entities used are appended to ``used``."""
    informed: set[str] = set()
    for field, d in context["inputs"].items():
        role = _n(V.parameter_iri(context["definition"], "input", field))
        if roles:
            yield from _parameter(g, role, context, "input", field)
        if d.get("sources"):
            entities = [_n(V.output_iri(V.run_iri(r), f)) for r, f in d["sources"] if r]
            informed.update(V.run_iri(r) for r, _ in d["sources"] if r)
            for entity in entities:  # typed here too, so that this record validates alone
                yield ox.Quad(entity, A, P("Entity"), g)
        else:
            entity = _n(V.content_iri(d["hash"]))
            yield from _entity(g, entity, d, root)
            entities = [entity]
            for member in d.get("members", []):
                member_entity = _n(V.content_iri(member["hash"]))
                yield from _entity(g, member_entity, member, root)
                yield ox.Quad(entity, P("hadMember"), member_entity, g)
                entities.append(member_entity)
        for entity in entities:
            usage = _blank(g)
            yield ox.Quad(g, P("used"), entity, g)
            yield ox.Quad(g, P("qualifiedUsage"), usage, g)
            yield ox.Quad(usage, A, P("Usage"), g)
            yield ox.Quad(usage, P("entity"), entity, g)
            yield ox.Quad(usage, P("hadRole"), role, g)
            used.append(entity)
    for upstream in sorted(informed):
        communication = _blank(g)
        yield ox.Quad(g, P("wasInformedBy"), _n(upstream), g)
        yield ox.Quad(g, P("qualifiedCommunication"), communication, g)
        yield ox.Quad(communication, A, P("Communication"), g)
        yield ox.Quad(communication, P("activity"), _n(upstream), g)


@functools.lru_cache(maxsize=1024)
def field_types(task_cls: Any) -> dict[str, str]:
    """``"input:<field>"`` / ``"output:<field>"`` -> the field's type, as written in records."""

    def name(tp: Any) -> str:
        return tp.__name__ if isinstance(tp, type) else str(tp).removeprefix("typing.")

    found = {f"input:{n}": name(f.type) for n, f in task_cls._input_fields.items()}
    found.update({f"output:{n}": name(f.type) for n, f in task_cls._output_fields.items()})
    return found


def _parameter(
    g: ox.NamedNode, role: ox.NamedNode, context: dict[str, Any], direction: str, field: str
) -> Iterator[ox.Quad]:
    """A formal parameter of the task definition, as the role its value plays: labelled with
    the field's name, its direction (input or output) and its type, part of its plan."""
    yield ox.Quad(role, A, P("Role"), g)
    yield ox.Quad(role, A, G("Parameter"), g)
    yield ox.Quad(role, LABEL, ox.Literal(field), g)
    yield ox.Quad(role, G("direction"), ox.Literal(direction), g)
    yield ox.Quad(role, G("parameterOf"), _n(V.definition_iri(context["definition"])), g)
    kind = context.get("types", {}).get(f"{direction}:{field}")
    if kind:
        yield ox.Quad(role, G("parameterType"), ox.Literal(kind), g)


def workflow_structure(g: ox.NamedNode, workflow: str, nodes: dict[str, Any]) -> Iterator[ox.Quad]:
    """A workflow definition's structure (ProvONE's program, ports and channels): a step per
    node, following its task's definition, and a connection per input fed from another node's
    output or from the workflow's own input, from parameter to parameter."""
    from ..graph import lazy_inputs

    plan = _n(V.definition_iri(workflow))
    for name, task in nodes.items():
        step = _n(V.step_iri(workflow, name))
        definition = type(task)._definition_hash.hex()
        yield ox.Quad(plan, G("hasStep"), step, g)
        yield ox.Quad(step, A, G("Step"), g)
        yield ox.Quad(step, LABEL, ox.Literal(name), g)
        yield ox.Quad(step, G("stepDefinition"), _n(V.definition_iri(definition)), g)
        for field, lazy in lazy_inputs(task):
            link = _n(V.connection_iri(workflow, name, field))
            target = _n(V.parameter_iri(definition, "input", field))
            if lazy.node is None:  # from the workflow's own input
                source = _n(V.parameter_iri(workflow, "input", lazy.field))
            else:
                upstream = type(nodes[lazy.node])._definition_hash.hex()
                source = _n(V.parameter_iri(upstream, "output", lazy.field))
                yield ox.Quad(link, G("sourceStep"), _n(V.step_iri(workflow, lazy.node)), g)
            yield ox.Quad(plan, G("hasConnection"), link, g)
            yield ox.Quad(link, A, G("Connection"), g)
            yield ox.Quad(link, G("sourceParameter"), source, g)
            yield ox.Quad(link, G("targetStep"), step, g)
            yield ox.Quad(link, G("targetParameter"), target, g)


def _generations(
    g: ox.NamedNode,
    outcome: Any,
    context: dict[str, Any],
    root: str,
    used: list[ox.NamedNode],
    roles: bool = True,
) -> Iterator[ox.Quad]:
    """Each output, generated by the run and derived from every input; a rerun's checks."""
    for field, value in (outcome.outputs or {}).items():
        entity = _n(V.output_iri(g.value, field))
        role = _n(V.parameter_iri(context["definition"], "output", field))
        described = describe_value(value)
        if roles:
            yield from _parameter(g, role, context, "output", field)
        yield from _generated(g, entity, described, g, role, used, root)
        for i, member in enumerate(described.get("members", [])):
            member_entity = _n(V.output_iri(g.value, f"{field}.{i}"))
            yield ox.Quad(entity, P("hadMember"), member_entity, g)
            yield from _generated(g, member_entity, member, g, role, used, root)
    if context.get("rerun_of"):
        yield ox.Quad(g, G("rerunOf"), _n(context["rerun_of"]), g)
        reproduced = context.get("reproduced")
        if reproduced is None:  # a forced rerun (sub(task, rerun=True)): compared here
            new = outcome.outputs or {}
            reproduced = {
                field: field in new and describe_value(new[field])["hash"] == digest
                for field, digest in context.get("previous_outputs", {}).items()
            }
        for field, same in reproduced.items():
            entity = _n(V.output_iri(g.value, field))
            yield ox.Quad(entity, G("reproduced"), _lit(bool(same)), g)


def _error(g: ox.NamedNode, error: Any) -> Iterator[ox.Quad]:
    node = _blank(g)
    yield ox.Quad(g, G("error"), node, g)
    yield ox.Quad(node, A, G("Error"), g)
    yield ox.Quad(node, G("errorType"), ox.Literal(error.type), g)
    yield ox.Quad(node, G("errorMessage"), ox.Literal(error.message), g)
    yield ox.Quad(node, G("traceback"), ox.Literal(error.traceback), g)


_PLAIN = (str, int, float, bool, bytes, type(None), File, Directory, Path)


def _plain(value: Any) -> bool:
    """Values pickle loads by itself anywhere: builtins (and provgraph's files), nested in
    builtin containers; anything else goes through cloudpickle (classes of ``__main__``...)."""
    if isinstance(value, _PLAIN):
        return True
    if type(value) in (list, tuple, set, frozenset):
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return False


def _pickled_beside(
    g: ox.NamedNode, prop: str, path: Path, value: Any, root: str
) -> Iterator[ox.Quad]:
    """``value`` pickled to ``path`` for reruns, and the record's pointer to it; a value that
    cannot be pickled costs the rerun, never the record."""
    import cloudpickle

    try:  # (under the job's lock, before the record that names it is published: no rename)
        data = pickle.dumps(value) if _plain(value) else cloudpickle.dumps(value)
        with open(path, "wb") as fh:
            fh.write(_signing.seal(data))
    except Exception:
        return
    yield ox.Quad(g, G(prop), _place(path, root), g)


def _rerun_files(job: Any, outcome: Any, g: ox.NamedNode, folder: Path, root: str) -> list[ox.Quad]:
    """The job's inputs (and container) pickled beside its record, for reruns."""
    if outcome.status == INTERRUPTED:
        return []
    quads = list(
        _pickled_beside(
            g, "inputsFile", folder / f"_prov-{job.run_id}.inputs.pkl", dict(job.inputs), root
        )
    )
    if getattr(job, "environment", None) is not None:  # a rerun runs in the same container
        where = folder / f"_prov-{job.run_id}.environment.pkl"
        quads += _pickled_beside(g, "environmentFile", where, job.environment, root)
    return quads


def _static_quads(
    g: ox.NamedNode, context: dict[str, Any], env_iri: ox.NamedNode, outputs: tuple[str, ...]
) -> list[ox.Quad]:
    """What a record says that is the same for every job of a node: the environment used, the
    association with the engine and the plan, and the parameters (roles) of its fields."""
    quads = list(_environment_usage(g, env_iri))
    quads += _association(g, context)
    for field in context["inputs"]:
        role = _n(V.parameter_iri(context["definition"], "input", field))
        quads += _parameter(g, role, context, "input", field)
    for field in outputs:
        role = _n(V.parameter_iri(context["definition"], "output", field))
        quads += _parameter(g, role, context, "output", field)
    return quads


def _dynamic_quads(job: Any, outcome: Any, g: ox.NamedNode, root: str) -> list[ox.Quad]:
    """What a record says of this job alone: the run, its inputs' entities and usages, its
    outputs or its error."""
    context = job.context
    quads = list(_run_core(job, outcome, g, root))
    used: list[ox.NamedNode] = []
    quads += _usages(g, context, root, used, roles=False)
    if outcome.ok:
        quads += _generations(g, outcome, context, root, used, roles=False)
    elif outcome.error is not None:
        quads += _error(g, outcome.error)
    return quads


# -- records from a template ---------------------------------------------------------------
# The part of a job record that is the same for every job of a node is serialized once, for a
# stand-in run, and copied into each record with the stand-in's IRI and blank-node labels
# replaced by the run's; only the job's own triples are built and serialized per job.
_STAND_IN = "urn:uuid:00000000-0000-4000-8000-0000000000aa"
_STATIC: dict[tuple[Any, ...], bytes] = {}
_HEADER = b"".join(
    f"@prefix {name}: <{iri}> .\n".encode() for name, iri in sorted(PREFIXES.items())
)


def _body(data: bytes) -> bytes:
    """The triples inside the one graph block of serialized TriG."""
    return data[data.index(b"{\n") + 2 : data.rindex(b"}")]


def _static_body(context: dict[str, Any], env_hash: str, outputs: tuple[str, ...]) -> bytes:
    key = (
        context["definition"],
        context["definition_text"],
        context.get("definition_file"),
        context["cache_dir"],
        context["user"],
        context["login"],
        tuple(sorted(context.get("types", {}).items())),
        tuple(context["inputs"]),
        outputs,
        env_hash,
    )
    body = _STATIC.get(key)
    if body is None:
        g = _n(_STAND_IN)
        quads = _static_quads(g, context, _n(V.environment_iri(env_hash)), outputs)
        serialized = ox.serialize(quads, format=_TRIG, prefixes=PREFIXES)
        assert serialized is not None
        body = _body(serialized)
        if len(_STATIC) > 256:  # a long-lived process with many nodes
            _STATIC.clear()
        _STATIC[key] = body
    return body


def job_run_trig(job: Any, outcome: Any, folder: Path, depth: int = 1) -> bytes:
    """The TriG of one job run's named graph (the record file's bytes); its rerun files are
    written to ``folder``."""
    context = job.context
    root = context["cache_dir"]
    run = V.run_iri(job.run_id)
    g = _n(run)
    env = _with_container(capture(), context.get("container"))
    _environment_file(Path(root), env)
    outputs = tuple(outcome.outputs or ()) if outcome.ok else ()
    static = _static_body(context, env["hash"], outputs)
    static = static.replace(_STAND_IN.encode(), run.encode()).replace(
        f"_:b{_graph_tag(_STAND_IN)}x".encode(), f"_:b{_graph_tag(run)}s".encode()
    )
    own = _dynamic_quads(job, outcome, g, root) + _rerun_files(job, outcome, g, folder, root)
    serialized = ox.serialize(own, format=_TRIG, prefixes=PREFIXES)
    assert serialized is not None
    data = b"".join((_HEADER, b"<", run.encode(), b"> {\n", static, _body(serialized), b"}\n"))
    return V.relative_locations(data, depth)


def write_job_run(job: Any, outcome: Any) -> Any:
    """In the process that ran ``job``: write its run's named graph aside, in the job's
    directory (or ``context["record_dir"]``), and return the function that publishes it.

    The engine publishes a succeeded run's record only once its result is saved; a failed
    run's at once. Runs of this job that an earlier, killed process left unrecorded are
    recovered first (:func:`recover`).
    """
    context = job.context
    if context is None or not job.run_id:
        return None
    folder = Path(context.get("record_dir") or job.output_dir)
    if outcome.stale_lock:
        recover(folder, None, job=job, stale_lock=outcome.stale_lock)
    final = record_path(folder, job.run_id)
    pending = final.with_name(final.name + PENDING)
    data = job_run_trig(job, outcome, folder)
    with open(pending, "wb") as fh:
        fh.write(data)
    remote = (context["remote"], context["cache_dir"]) if context.get("remote") else None
    return _Pending(pending, final, remote)


@attrs.frozen
class _Pending:
    """A record written aside: called, it is published (and, given a provenance server, sent
    to it from here, the node that ran the job); discarded, it is gone."""

    pending: Path
    final: Path
    remote: tuple[str, str] | None = None  # (server URL, cache directory)

    def __call__(self) -> None:
        os.replace(self.pending, self.final)
        if self.remote is not None:
            from .remote import send_record

            send_record(self.final, *self.remote)

    def discard(self) -> None:
        self.pending.unlink(missing_ok=True)


def recover(
    folder: Path, result_run: str | None, *, job: Any = None, stale_lock: str | None = None
) -> None:
    """Finish the records that killed processes left in a job directory.

    A pending record of the run whose result is saved (``result_run``) is published: the
    process died between saving and publishing. Any other pending record becomes an
    "interrupted" one: its result was never saved. With ``stale_lock`` (what a dead holder left
    in the job's lock: pid, host, start, run and workflow run) and ``job`` (this job, run
    again), a run that died before writing anything is recorded as interrupted too.
    """
    with os.scandir(folder) as entries:
        pending = [e.path for e in entries if e.name.endswith(".trig" + PENDING)]
    for path in pending:
        final = path.removesuffix(PENDING)
        if result_run and final == str(record_path(folder, result_run)):
            os.replace(path, final)
        else:
            _interrupt(Path(path), Path(final))
    if stale_lock and job is not None:
        _record_dead_holder(folder, job, stale_lock)


_DIED = "the process running the job died before its result was saved"


def _interrupt(pending: Path, final: Path) -> None:
    """A pending record whose result was never saved, published as interrupted."""
    try:
        # relative places resolved against the stand-in, so that they are written back relative
        quads = list(ox.parse(path=pending, format=_TRIG, base_iri=V.CACHE_ROOT + "job/r.trig"))
    except (SyntaxError, ValueError, OSError):  # cut short by the death itself
        pending.unlink(missing_ok=True)
        return
    status, error = G("status"), G("error")
    run = next((q.subject for q in quads if q.predicate == status), None)
    if run is None:
        pending.unlink(missing_ok=True)
        return
    outputs = {q.subject for q in quads if q.predicate == P("wasGeneratedBy")}
    generations = {q.object for q in quads if q.predicate == P("qualifiedGeneration")}
    dropped = outputs | generations
    kept = [q for q in quads if q.subject not in dropped and q.predicate not in (status, error)]
    kept.append(ox.Quad(run, status, ox.Literal(INTERRUPTED), run))
    kept += _error(run, ErrorInfo(type="Interrupted", message=_DIED, traceback=""))
    journal.append(final.parent.parent, [final])  # named again: a withdrawal may have come
    atomic_write(final, _trig(kept))
    pending.unlink(missing_ok=True)


def _record_dead_holder(folder: Path, job: Any, stale_lock: str) -> None:
    """The run named in a dead holder's lock, if it left no record: recorded as interrupted,
    from what this run of the same job knows (same job hash: same task, plan and inputs)."""
    words = stale_lock.split()
    if len(words) < 5 or words[3] == job.run_id:
        return
    run_id, workflow_run = words[3], words[4]
    final = record_path(folder, run_id)
    if final.exists():
        return
    try:
        started = float(words[2])
    except ValueError:
        return
    error = ErrorInfo(type="Interrupted", message=_DIED, traceback="")
    dead = attrs.evolve(job, run_id=run_id, context={**job.context, "workflow_run": workflow_run})
    outcome = Outcome(
        job_hash=job.job_hash,
        status=INTERRUPTED,
        error=error,
        started=started,
        ended=started,
        host=words[1],
        executed=False,
    )
    journal.append(folder.parent, [final])  # named again: its submission may have withdrawn it
    atomic_write(final, job_run_trig(dead, outcome, folder))


def pickle_definition(task_cls: Any) -> bytes:
    """The task class pickled by value when its module is the user's own (not installed),
    so that it can be rerun where that module cannot be imported."""
    import sys
    import sysconfig

    import cloudpickle

    module = sys.modules.get(task_cls.__module__)
    installed = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"])
    path = getattr(module, "__file__", None) or ""
    by_value = module is not None and path and not path.startswith(installed)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return bytes(cloudpickle.dumps(task_cls))
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
