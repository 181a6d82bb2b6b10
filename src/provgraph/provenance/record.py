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

import contextlib
import functools
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pyoxigraph as ox
import xxhash

from .. import __version__, _signing, cache
from .._filetypes import Directory, File
from ..cache import atomic_write, write_file
from ..engine.job import ErrorInfo, Job, Outcome, outcome_from_stored
from . import _triples as T
from . import journal
from . import vocab as V
from ._describe import describe_value, is_plain, recorded_value
from .environment import capture

__all__ = ["describe_value", "pickle_definition", "recover", "write_job_run"]

_TRIG = ox.RdfFormat.TRIG
PREFIXES = T.PREFIXES


def _trig(quads: list[ox.Quad], depth: int = 1) -> bytes:
    """TriG of ``quads`` for a file ``depth`` folders below the cache (1: a job directory)."""
    data = ox.serialize(quads, format=_TRIG, prefixes=PREFIXES)
    assert data is not None  # no output file given: the bytes are returned
    return V.relative_locations(data, depth)


def write_under_provenance(cache_dir: Path, path: Path, quads: list[ox.Quad]) -> None:
    """A record file of ``.provenance/<folder>/`` (a cleanup's, a rerun's submission, a run
    imported from another cache): named in the journal, then written whole."""
    journal.append(cache_dir, [path])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, _trig(quads, depth=2))


@functools.lru_cache(maxsize=4096)
def _n(iri: str) -> ox.NamedNode:
    return ox.NamedNode(iri)


A = _n(V.RDF + "type")


def _blank(g: ox.NamedNode) -> ox.BlankNode:
    """A blank node of the record of graph ``g`` (see :func:`._triples.blank_label`)."""
    return ox.BlankNode(T.blank_label(g.value))


LABEL = _n(V.RDFS + "label")


def P(name: str) -> ox.NamedNode:
    """A term of PROV-O."""
    return _n(V.PROV + name)


def G(name: str) -> ox.NamedNode:
    """A term of the pg: vocabulary."""
    return _n(V.PG + name)


def _time(seconds: float) -> ox.Literal:
    return ox.Literal(T.iso(seconds), datatype=_n(V.XSD + "dateTime"))


def _place(path: str | os.PathLike[str], root: str) -> ox.NamedNode:
    """A file's IRI in a record of the cache ``root``: relative to it when inside it."""
    return _n(V.location_iri(path, root))


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


_INTEGER = _n(V.XSD + "integer")


def _remember(memo: dict[Any, Any], key: Any, value: Any, limit: int = 1024) -> Any:
    """``value`` kept in ``memo`` under ``key``, and returned; a memo grown past ``limit``
    (a long-lived process, many runs or nodes) is emptied first."""
    if len(memo) > limit:
        memo.clear()
    memo[key] = value
    return value


_ENVIRONMENTS_SEEN: set[tuple[str, str]] = set()  # (file, workflow run) found in this process


def _environment_file(root: str, env: dict[str, Any], workflow_run: str) -> None:
    """The environment's own graph, written once per environment hash, unless its file is
    there. Looked for once per workflow run in each process, not for every job (a stat on
    every job's path, about 5 us in the serial loop); a file removed meanwhile is written
    again by the next workflow run."""
    name = f"{root}/.provenance/environments/{env['hash']}.trig"
    if (name, workflow_run) in _ENVIRONMENTS_SEEN:
        return
    if len(_ENVIRONMENTS_SEEN) > 1024:  # a long-lived process: forget the old runs
        _ENVIRONMENTS_SEEN.clear()
    if os.path.exists(name):
        _ENVIRONMENTS_SEEN.add((name, workflow_run))
        return
    cache_dir, path = Path(root), Path(name)
    folder = path.parent
    iri = _n(V.environment_iri(env["hash"]))
    g = iri
    quads = [
        ox.Quad(iri, A, P("Entity"), g),
        ox.Quad(iri, A, G("Environment"), g),
        ox.Quad(iri, G("pythonVersion"), ox.Literal(env["python_version"]), g),
        ox.Quad(iri, G("platform"), ox.Literal(env["platform"]), g),
        ox.Quad(iri, G("hostname"), ox.Literal(env["hostname"]), g),
        ox.Quad(iri, G("cpuCount"), ox.Literal(str(env["cpu_count"]), datatype=_INTEGER), g),
    ]
    for package_name, version in env["packages"].items():
        package = _blank(g)
        quads += [
            ox.Quad(iri, G("package"), package, g),
            ox.Quad(package, A, G("Package"), g),
            ox.Quad(package, G("name"), ox.Literal(package_name), g),
            ox.Quad(package, G("version"), ox.Literal(version), g),
        ]
    if env.get("container"):
        quads += _container_quads(g, iri, env["container"])
    folder.mkdir(parents=True, exist_ok=True)
    journal.append(cache_dir, [path])  # named too (the folder's mtime may be too coarse)
    atomic_write(path, _trig(quads, depth=2))
    _ENVIRONMENTS_SEEN.add((name, workflow_run))


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


@functools.lru_cache(maxsize=1024)
def field_types(task_cls: Any) -> dict[str, str]:
    """``"input:<field>"`` / ``"output:<field>"`` -> the field's type, as written in records."""

    def name(tp: Any) -> str:
        return tp.__name__ if isinstance(tp, type) else str(tp).removeprefix("typing.")

    found = {f"input:{n}": name(f.type) for n, f in task_cls._input_fields.items()}
    found.update({f"output:{n}": name(f.type) for n, f in task_cls._output_fields.items()})
    return found


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


def _pickled_beside(out: list[str], g: str, prop: str, path: str, value: Any, root: str) -> None:
    """``value`` pickled to ``path`` for reruns, and the record's pointer to it; a value that
    cannot be pickled costs the rerun, never the record."""
    try:  # (under the job's lock, before the record that names it is published: no rename)
        if _plain(value):
            data = pickle.dumps(value)
        else:
            import cloudpickle

            data = cloudpickle.dumps(value)
        write_file(path, _signing.seal(data))
    except Exception:
        return
    out.append(f"<{g}> pg:{prop} {T.place(path, root)} .\n")


def _inputs_in_record(job: Any) -> bool:
    """Whether the record holds every input exactly: each is None (an entity with no value)
    or a bool, int, float or short string written as the entity's ``prov:value`` (not a
    subclass, not NaN)."""
    described = job.context["inputs"]
    inputs = job.inputs or {}
    if inputs.keys() != described.keys():
        return False
    for field, value in inputs.items():
        if not is_plain(value):
            return False
        if "sources" in described[field] or recorded_value(described[field]) != value:
            return False  # from upstream (its entity is another record's), or NaN
    return True


def _rerun_files(out: list[str], job: Any, outcome: Any, g: str, folder: str, root: str) -> None:
    """What a rerun needs besides the record: the job's inputs pickled beside it, unless the
    record holds them all as literals (``pg:inputsInRecord``); its container, pickled."""
    if outcome.status == INTERRUPTED:
        return
    if _inputs_in_record(job):
        out.append(f"<{g}> pg:inputsInRecord true .\n")
    else:
        where = os.path.join(folder, f"_prov-{job.run_id}.inputs.pkl")
        _pickled_beside(out, g, "inputsFile", where, dict(job.inputs), root)
    if getattr(job, "environment", None) is not None:  # a rerun runs in the same container
        where = os.path.join(folder, f"_prov-{job.run_id}.environment.pkl")
        _pickled_beside(out, g, "environmentFile", where, job.environment, root)


def _static_quads(
    g: ox.NamedNode, context: dict[str, Any], env_iri: ox.NamedNode, outputs: tuple[str, ...]
) -> list[ox.Quad]:
    """What a record says that is the same for every job of a node: the environment used, the
    association with the engine and the plan, and the parameters (roles) of its fields."""
    quads = list(_environment_usage(g, env_iri))
    quads += _association(g, context)
    roles: list[str] = []
    for direction, fields in (("input", context["inputs"]), ("output", outputs)):
        for field in fields:
            role = T.iri(V.parameter_iri(context["definition"], direction, field))
            T.parameter(roles, role, context, direction, field)
    return quads + T.as_quads(roles, g.value)


# -- records from a template ---------------------------------------------------------------
# The part of a job record that is the same for every job of a node is serialized once, for a
# stand-in run, and kept as a %-template (its locations already relative to the record's
# folder) that each record fills with the run's IRI and blank-node tag; the job's own triples
# are written as text (:mod:`._triples`).
_STAND_IN = "urn:uuid:00000000-0000-4000-8000-0000000000aa"
_STATIC: dict[tuple[Any, ...], str] = {}


def _body(data: bytes) -> str:
    """The triples inside the one graph block of serialized TriG."""
    return data[data.index(b"{\n") + 2 : data.rindex(b"}")].decode()


def _static_template(
    context: dict[str, Any], env_hash: str, outputs: tuple[str, ...], depth: int
) -> str:
    """The static part of a node's job records, as a template of ``run`` and ``tag``."""
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
        depth,
    )
    template = _STATIC.get(key)
    if template is None:
        g = _n(_STAND_IN)
        quads = _static_quads(g, context, _n(V.environment_iri(env_hash)), outputs)
        serialized = ox.serialize(quads, format=_TRIG, prefixes=PREFIXES)
        assert serialized is not None
        body = V.relative_locations(_body(serialized).encode(), depth).decode()
        template = (
            body.replace("%", "%%")
            .replace(_STAND_IN, "%(run)s")
            .replace(f"_:b{T.graph_tag(_STAND_IN)}x", "_:b%(tag)ss")
        )
        _remember(_STATIC, key, template, limit=256)
    return template


def _own_lines(
    job: Any, outcome: Any, run: str, root: str, described: dict[str, Any] | None = None
) -> list[str]:
    """What a record says of this job alone: the run, its inputs' entities and usages, its
    outputs (``described`` when they were) or its error."""
    out: list[str] = []
    T.run_core(out, job, outcome, run, root)
    used: list[str] = []
    T.usages(out, run, job.context, root, used, roles=False)
    if outcome.ok:
        T.generations(out, run, outcome, job.context, root, used, False, described)
    elif outcome.error is not None:
        T.error(out, run, outcome.error)
    return out


def job_run_trig(job: Any, outcome: Any, folder: str | Path, depth: int = 1) -> bytes:
    """The TriG of one job run's named graph (the record file's bytes); its rerun files are
    written to ``folder``."""
    env_hash, extra = _in_this_process(job, outcome, folder)
    return _record_bytes(job, outcome, env_hash, extra, depth)


def _in_this_process(job: Any, outcome: Any, folder: str | Path) -> tuple[str, list[str]]:
    """What only the process that ran the job knows, for its record: the hash of the
    environment it ran in (this process's, and its container; its file written if it is not
    there), and the lines pointing to its rerun files (written to ``folder`` now)."""
    context = job.context
    env = _with_container(capture(), context.get("container"))
    _environment_file(context["cache_dir"], env, context["workflow_run"])
    extra: list[str] = []
    run = V.run_iri(job.run_id)
    _rerun_files(extra, job, outcome, run, os.fspath(folder), context["cache_dir"])
    return str(env["hash"]), extra


def _record_bytes(
    job: Any,
    outcome: Any,
    env_hash: str,
    extra: list[str],
    depth: int,
    described: dict[str, Any] | None = None,
) -> bytes:
    """The record's bytes: the node's static part, the job's own lines, then ``extra``;
    ``described``: the outputs as described when the job ended (else from ``outcome``)."""
    context = job.context
    root = context["cache_dir"]
    run = V.run_iri(job.run_id)
    names = described if described is not None else (outcome.outputs or {})
    outputs = tuple(names) if outcome.ok else ()
    static = _static_template(context, env_hash, outputs, depth)
    own = _own_lines(job, outcome, run, root, described)
    filled = static % {"run": run, "tag": T.graph_tag(run)}
    head = "".join((T.HEADER, "<", run, "> {\n", filled)).encode()
    return head + V.relative_locations("".join((*own, *extra, "}\n")).encode(), depth)


# -- records written later, from the result -------------------------------------------------
_PER_JOB = ("inputs", "rerun_of", "previous_outputs")  # what differs between a node's jobs
_NODE_PARTS: dict[tuple[Any, ...], bytes] = {}  # the rest of a context, pickled once per node
_NODE_CONTEXTS: dict[bytes, dict[str, Any]] = {}  # those bytes unpickled, where records are made


def _node_part(context: dict[str, Any]) -> bytes:
    """What a job's context says that every job of its node says (the task, its definition,
    the workflow run, the node, the user), pickled: once per node in this process."""
    key = (
        context["cache_dir"],
        context["definition"],
        context["workflow_run"],
        context["node"],
        context["user"],
    )
    remembered = context.get("container") is None  # (a container is a job's: never kept)
    found = _NODE_PARTS.get(key) if remembered else None
    if found is None:
        found = pickle.dumps(
            {k: v for k, v in context.items() if k not in _PER_JOB},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        if remembered:
            _remember(_NODE_PARTS, key, found)
    return found


def _node_context(part: bytes) -> dict[str, Any]:
    """A node's part of the context, unpickled (once per node in the writing process)."""
    found = _NODE_CONTEXTS.get(part)
    return _remember(_NODE_CONTEXTS, part, pickle.loads(part)) if found is None else found


def record_data(job: Any, outcome: Any) -> bytes:
    """What the record of a succeeded run needs besides its saved result, as bytes to store
    with the result (:func:`.cache.encode_result`); its rerun files are written now, beside it.
    The record itself is written later from both (:func:`publish_from_result`).

    Only what must be known now is worked out now: outputs that name files are described
    (hashed) at once, since a later job may remove or change them; plain outputs, and plain
    inputs (:func:`._describe.describe_later`), are kept as values and described by the
    process that writes the record. The node's part of the context is pickled once per node."""
    env_hash, extra = _in_this_process(job, outcome, job.output_dir)
    context = job.context
    outputs = outcome.outputs or {}
    plain = all(map(is_plain, outputs.values()))
    data = {
        # the run is "run": "run_id" is None, so that a provgraph before this form (which
        # needs "context") passes the data by as another run's, instead of failing on it
        "run_id": None,
        "run": job.run_id,
        "node": _node_part(context),
        "job": {k: context[k] for k in _PER_JOB if k in context},
        "outputs": outputs if plain else T.describe_outputs(outputs),
        "outputs_plain": plain,
        "index": job.index,
        "environment": env_hash,
        "extra": extra,
        "placement": outcome.placement,
        "usage": outcome.usage,
    }
    return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)


def _given_context(given: dict[str, Any]) -> dict[str, Any]:
    """The job's context as :func:`record_data` stored it (or, saved by an earlier provgraph,
    whole)."""
    if "context" in given:
        return given["context"]
    return {**_node_context(given["node"]), **given["job"]}


def _given_outputs(given: dict[str, Any]) -> dict[str, Any]:
    """The outputs as described when the job ended (plain ones: described now, the same)."""
    if given.get("outputs_plain"):
        return T.describe_outputs(given["outputs"])
    return given["outputs"]


def publish_from_result(
    directory: str | os.PathLike[str], run_id: str | None = None, saved: bytes | None = None
) -> bool:
    """Write the record of the run whose result, saved with its record data, is in
    ``directory`` (only if that run is ``run_id``, when given), unless it is written; True
    when the record is there afterwards. ``saved``: the result file's bytes, as they were
    saved (else the file is read). The data is unpickled only when its own seal verifies
    with this user's key, and used only when it names the result's run."""
    where = Path(directory)
    # (the outputs are in the record data: the result's own need not be there any more)
    found = (
        cache.read_result_and_record(where, outputs=False)
        if saved is None
        else cache.decode_result(where, saved, outputs=False)
    )
    if found is None:
        return False
    stored, sealed = found
    if sealed is None:  # (a result saved before, or by another worker: its record is its own)
        return False
    if run_id is not None and stored.run_id != run_id:
        return False
    data = _signing.unseal(sealed)  # never unpickled unless sealed with this user's key
    if data is None:
        return False
    final = os.path.join(directory, record_name(stored.run_id))
    if os.path.exists(final):
        return True
    given = pickle.loads(data)
    if given.get("run", given["run_id"]) != stored.run_id:  # (another run's: never written)
        return False
    job = Job(
        task_cls=None,
        inputs={},
        job_hash=stored.job_hash,
        output_dir=where,
        index=given["index"],
        run_id=stored.run_id,
        context=_given_context(given),
    )
    outcome = outcome_from_stored(
        stored, executed=True, placement=given["placement"], usage=given["usage"]
    )
    described = _given_outputs(given)
    data = _record_bytes(job, outcome, given["environment"], given["extra"], 1, described)
    atomic_write(final, data)
    return True


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
    folder = os.fspath(context.get("record_dir") or job.output_dir)  # (strings: the hot path)
    if outcome.stale_lock:
        recover(Path(folder), None, job=job, stale_lock=outcome.stale_lock)
    final = os.path.join(folder, record_name(job.run_id))
    pending = final + PENDING
    data = job_run_trig(job, outcome, folder)
    write_file(pending, data)
    remote = (context["remote"], context["cache_dir"]) if context.get("remote") else None
    return _Pending(pending, final, remote)


@attrs.frozen
class _Pending:
    """A record written aside: called, it is published (and, given a provenance server, sent
    to it from here, the node that ran the job); discarded, it is gone."""

    pending: str
    final: str
    remote: tuple[str, str] | None = None  # (server URL, cache directory)

    def __call__(self) -> None:
        os.replace(self.pending, self.final)
        if self.remote is not None:
            from .remote import send_record

            send_record(Path(self.final), *self.remote)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pending)


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


def finish_abandoned(final: str, cache_dir: str | os.PathLike[str]) -> None:
    """Finish the record of a job run whose process was killed before it published it, when
    no process holds the job's lock. A record written aside (``final`` + ``.pending``) is
    published if the job's saved result is that run's, else recorded as interrupted
    (:func:`recover`); with nothing aside, a saved result of that run that holds its record
    data gives the record (:func:`publish_from_result`). Only records in a job directory right
    under ``cache_dir``.

    The index calls this for the journaled records it still waits for, before it loads what
    exists: a run killed at any point is answered by the next question, not only once its job
    runs or is reused again.
    """
    folder = os.path.dirname(final)
    if os.path.dirname(folder) != os.path.abspath(cache_dir):
        return
    directory = Path(folder)
    with cache.unlocked_job(directory) as free:
        if not free:  # running now: it publishes its own
            return
        if os.path.exists(final + PENDING):
            stored = cache.read_result(directory)
            recover(directory, stored.run_id if stored is not None else None)
        else:
            run_id = os.path.basename(final).removeprefix("_prov-").removesuffix(".trig")
            if not publish_from_result(directory, run_id) and _damaged_record_data(
                directory, run_id
            ):
                # its run's record can never be written: the result is a miss from now on
                # (a reusable result always has its record), and the record is awaited no more
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / cache.RESULT_NAME)
                journal.append(directory.parent, [Path(final)], withdraw=True)


def _damaged_record_data(directory: Path, run_id: str) -> bool:
    """True when the result in ``directory`` is run ``run_id``'s, verified with this user's
    key, but the record data saved with it is not (damaged: the same key sealed both)."""
    found = cache.read_result_and_record(directory, outputs=False)
    if found is None or found[1] is None or found[0].run_id != run_id:
        return False
    return _signing.unseal(found[1]) is None


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
    lines: list[str] = []
    T.error(lines, run.value, ErrorInfo(type="Interrupted", message=_DIED, traceback=""))
    kept += T.as_quads(lines, run.value)
    journal.append(final.parent.parent, [final])  # named again: a withdrawal may have come
    atomic_write(final, _trig(kept))
    pending.unlink(missing_ok=True)


def _record_dead_holder(folder: Path, job: Any, stale_lock: str) -> None:
    """The run named in a dead holder's lock, if it left no record: recorded as interrupted,
    from what this run of the same job knows (same job hash: same task, plan and inputs)."""
    words = stale_lock.split()
    if len(words) < 5:
        return
    run_id, workflow_run = words[3], words[4]
    if run_id == job.run_id:  # an earlier attempt of this very run (a pool process, or a SLURM
        import uuid  # node, died and the job was sent again): recorded as a run of its own,

        if record_path(folder, run_id).exists():  # unless it recorded itself before it died
            return
        run_id = str(uuid.uuid4())
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
