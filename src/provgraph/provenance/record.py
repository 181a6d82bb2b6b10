"""Events to triples: the provenance recorder.

:class:`Recorder` is a submitter hook. Before a job is sent to a worker it gathers, as plain
data, what the job's record needs (its workflow run, its inputs with their content hashes and
the upstream outputs they came from); :func:`write_job_run` then runs in the process that ran
the job and writes the run's named graph as a TriG file in the job's directory. At the end of
a submission the recorder writes the submission's own graph (its workflow runs and the earlier
runs it reused) and indexes the new files into the store.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pyoxigraph as ox
import xxhash

from .. import __version__
from .._filetypes import Directory, File
from ..cache import atomic_write
from ..engine import events
from ..engine.runtime import JobRun, input_sources
from ..exceptions import HashingError
from ..hashing import file_content_digest, hash_value
from . import vocab as V
from .environment import capture

__all__ = ["Recorder", "write_job_run"]

_SMALL_TEXT = 256
_TRIG = ox.RdfFormat.TRIG
PREFIXES = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}


def _trig(quads: list[ox.Quad]) -> bytes:
    data = ox.serialize(quads, format=_TRIG, prefixes=PREFIXES)
    assert data is not None  # no output file given: the bytes are returned
    return data


@functools.lru_cache(maxsize=4096)
def _n(iri: str) -> ox.NamedNode:
    return ox.NamedNode(iri)


A = _n(V.RDF + "type")
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


def _file_iri(path: str | os.PathLike[str]) -> ox.NamedNode:
    return _n(V.file_iri(path))


def describe_value(value: Any) -> dict[str, Any]:
    """Content hash, kind, and location/size or small value, of one input or output value.

    A list (or tuple) of files is described by its members too, so that each file has its own
    entity; a value with no content hash is hashed by its pickled bytes.
    """
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
        and all(isinstance(v, (File, Directory)) for v in value)
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


def _entity(g: ox.NamedNode, iri: ox.NamedNode, d: dict[str, Any]) -> Iterator[ox.Quad]:
    yield ox.Quad(iri, A, P("Entity"), g)
    yield ox.Quad(iri, A, G(d["kind"]), g)
    yield ox.Quad(iri, G("contentHash"), ox.Literal(f"xxh3-128:{d['hash']}"), g)
    if d.get("location"):
        yield ox.Quad(iri, P("atLocation"), _file_iri(d["location"]), g)
    if d.get("size") is not None:
        yield ox.Quad(iri, G("size"), _lit(d["size"]), g)
    if d.get("value") is not None:
        yield ox.Quad(iri, P("value"), _lit(d["value"]), g)


def _generated(
    g: ox.NamedNode,
    entity: ox.NamedNode,
    described: dict[str, Any],
    run: ox.NamedNode,
    role: ox.NamedNode,
    sources: list[ox.NamedNode],
) -> Iterator[ox.Quad]:
    """An output entity: its description, its (qualified) generation, what it derives from."""
    generation = ox.BlankNode()
    yield from _entity(g, entity, described)
    yield ox.Quad(entity, P("wasGeneratedBy"), run, g)
    yield ox.Quad(entity, P("qualifiedGeneration"), generation, g)
    yield ox.Quad(generation, A, P("Generation"), g)
    yield ox.Quad(generation, P("activity"), run, g)
    yield ox.Quad(generation, P("hadRole"), role, g)
    for source in sources:
        yield ox.Quad(entity, P("wasDerivedFrom"), source, g)


def _agents(g: ox.NamedNode, context: dict[str, Any]) -> Iterator[ox.Quad]:
    agent = _n(V.agent_iri())
    user = _n(context["user"])
    yield ox.Quad(agent, A, P("Agent"), g)
    yield ox.Quad(agent, A, P("SoftwareAgent"), g)
    yield ox.Quad(agent, LABEL, ox.Literal(f"provgraph {__version__}"), g)
    yield ox.Quad(agent, P("actedOnBehalfOf"), user, g)
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
        yield ox.Quad(plan, G("definitionFile"), _file_iri(context["definition_file"]), g)


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
        package = ox.BlankNode()
        quads += [
            ox.Quad(iri, G("package"), package, g),
            ox.Quad(package, A, G("Package"), g),
            ox.Quad(package, G("name"), ox.Literal(name), g),
            ox.Quad(package, G("version"), ox.Literal(version), g),
        ]
    if env.get("container"):
        quads += _container_quads(g, iri, env["container"])
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, _trig(quads))


_PLACEMENT = {  # what a worker says of where a job ran -> the property recording it
    "worker": "worker",
    "address": "workerAddress",
    "slurm_job_id": "slurmJobId",
    "slurm_state": "slurmState",
}


def _placement(g: ox.NamedNode, run: ox.NamedNode, placement: dict[str, str]) -> Iterator[ox.Quad]:
    """Which worker ran the job, where (Dask address, SLURM job id), and its log file."""
    for key, prop in _PLACEMENT.items():
        if placement.get(key):
            yield ox.Quad(run, G(prop), ox.Literal(str(placement[key])), g)
    log = placement.get("log")
    if log and os.path.exists(log):
        yield ox.Quad(run, G("workerLog"), _file_iri(log), g)


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
        yield ox.Quad(env, P("atLocation"), _file_iri(info["location"]), g)


def write_job_run(job: Any, outcome: Any) -> None:
    """In the process that ran ``job``: write its run's named graph beside its result."""
    context = job.context
    if context is None or not job.run_id:
        return
    run = _n(V.run_iri(job.run_id))
    g = run
    env = _with_container(capture(), context.get("container"))
    quads: list[ox.Quad] = [
        ox.Quad(run, A, P("Activity"), g),
        ox.Quad(run, A, G("JobRun"), g),
        ox.Quad(run, G("taskName"), ox.Literal(context["task_name"]), g),
        ox.Quad(run, G("nodeName"), ox.Literal(context["node"]), g),
        ox.Quad(run, G("elementIndex"), _lit(job.index), g),
        ox.Quad(run, G("jobHash"), ox.Literal(job.job_hash), g),
        ox.Quad(run, G("outputDir"), _file_iri(job.output_dir), g),
        ox.Quad(run, G("status"), ox.Literal(outcome.status), g),
        ox.Quad(run, P("startedAtTime"), _time(outcome.started), g),
        ox.Quad(run, P("endedAtTime"), _time(max(outcome.ended, outcome.started)), g),
        ox.Quad(run, G("partOf"), _n(V.run_iri(context["workflow_run"])), g),
        ox.Quad(run, G("workerHost"), ox.Literal(outcome.host), g),
        ox.Quad(run, G("workerPid"), _lit(outcome.pid), g),
    ]
    quads += _placement(g, run, getattr(outcome, "placement", None) or {})
    env_iri = _n(V.environment_iri(env["hash"]))
    quads.append(ox.Quad(run, P("used"), env_iri, g))
    quads.append(ox.Quad(env_iri, A, P("Entity"), g))
    quads.append(ox.Quad(env_iri, A, G("Environment"), g))
    agent = _n(V.agent_iri())
    plan = _n(V.definition_iri(context["definition"]))
    association = ox.BlankNode()
    quads += [
        ox.Quad(run, P("wasAssociatedWith"), agent, g),
        ox.Quad(run, P("qualifiedAssociation"), association, g),
        ox.Quad(association, A, P("Association"), g),
        ox.Quad(association, P("agent"), agent, g),
        ox.Quad(association, P("hadPlan"), plan, g),
    ]
    quads += _agents(g, context)
    quads += _plan(g, context)
    used: list[ox.NamedNode] = []
    informed: set[str] = set()
    for field, d in context["inputs"].items():
        role = _n(V.role_iri(field))
        quads += [ox.Quad(role, A, P("Role"), g), ox.Quad(role, LABEL, ox.Literal(field), g)]
        if d.get("sources"):
            entities = [_n(V.output_iri(V.run_iri(r), f)) for r, f in d["sources"] if r]
            informed.update(V.run_iri(r) for r, _ in d["sources"] if r)
        else:
            entity = _n(V.content_iri(d["hash"]))
            quads += _entity(g, entity, d)
            entities = [entity]
            for member in d.get("members", []):
                member_entity = _n(V.content_iri(member["hash"]))
                quads += _entity(g, member_entity, member)
                quads.append(ox.Quad(entity, P("hadMember"), member_entity, g))
                entities.append(member_entity)
        for entity in entities:
            usage = ox.BlankNode()
            quads += [
                ox.Quad(run, P("used"), entity, g),
                ox.Quad(run, P("qualifiedUsage"), usage, g),
                ox.Quad(usage, A, P("Usage"), g),
                ox.Quad(usage, P("entity"), entity, g),
                ox.Quad(usage, P("hadRole"), role, g),
            ]
            used.append(entity)
    for upstream in sorted(informed):
        quads.append(ox.Quad(run, P("wasInformedBy"), _n(upstream), g))
    if outcome.ok:
        for field, value in (outcome.outputs or {}).items():
            entity = _n(V.output_iri(run.value, field))
            role = _n(V.role_iri(field))
            described = describe_value(value)
            quads += [ox.Quad(role, A, P("Role"), g), ox.Quad(role, LABEL, ox.Literal(field), g)]
            quads += _generated(g, entity, described, run, role, used)
            for i, member in enumerate(described.get("members", [])):
                member_entity = _n(V.output_iri(run.value, f"{field}.{i}"))
                quads.append(ox.Quad(entity, P("hadMember"), member_entity, g))
                quads += _generated(g, member_entity, member, run, role, used)
        if context.get("rerun_of"):
            quads.append(ox.Quad(run, G("rerunOf"), _n(context["rerun_of"]), g))
            for field, same in context.get("reproduced", {}).items():
                entity = _n(V.output_iri(run.value, field))
                quads.append(ox.Quad(entity, G("reproduced"), _lit(bool(same)), g))
    elif outcome.error is not None:
        error = ox.BlankNode()
        quads += [
            ox.Quad(run, G("error"), error, g),
            ox.Quad(error, A, G("Error"), g),
            ox.Quad(error, G("errorType"), ox.Literal(outcome.error.type), g),
            ox.Quad(error, G("errorMessage"), ox.Literal(outcome.error.message), g),
            ox.Quad(error, G("traceback"), ox.Literal(outcome.error.traceback), g),
        ]
    inputs_file = job.output_dir / f"_prov-{job.run_id}.inputs.pkl"
    try:  # the input values themselves, for reruns (the record holds only small ones)
        import cloudpickle

        atomic_write(inputs_file, cloudpickle.dumps(dict(job.inputs)))
        quads.append(ox.Quad(run, G("inputsFile"), _file_iri(inputs_file), g))
    except Exception:  # values that cannot be pickled: the run cannot be rerun, but is recorded
        pass
    if getattr(job, "environment", None) is not None:  # a rerun runs in the same container
        environment_file = job.output_dir / f"_prov-{job.run_id}.environment.pkl"
        try:
            import cloudpickle

            atomic_write(environment_file, cloudpickle.dumps(job.environment))
            quads.append(ox.Quad(run, G("environmentFile"), _file_iri(environment_file), g))
        except Exception:  # recorded all the same; a rerun then says it cannot tell where
            pass
    cache_dir = Path(context["cache_dir"])
    _environment_file(cache_dir, env)
    atomic_write(job.output_dir / f"_prov-{job.run_id}.trig", _trig(quads))


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


class Recorder:
    """Submitter hook recording provenance: per-job context, submission graph, indexing."""

    def __init__(self, cache_dir: Path, *, index: bool = True) -> None:
        self.cache_dir = cache_dir
        self.index = index
        self.user, self.login = V.user_iri()
        self._definitions: set[str] = set()
        self._reset()

    def _reset(self) -> None:
        self.submission = ""
        self.started = 0.0
        self.workflow_runs: dict[str, dict[str, Any]] = {}
        self.reused: set[str] = set()
        self.new_files: list[Path] = []
        self.worker = ""

    # -- in the submitting process, before each job is sent ---------------------------------
    def prepare_job(self, job: JobRun) -> tuple[dict[str, Any], Any]:
        """The plain data the worker-side record of ``job`` needs, and the writer itself."""
        task_cls = type(job.node.task)
        sources = input_sources(job)
        inputs: dict[str, dict[str, Any]] = {}
        for field, value in (job.inputs or {}).items():
            if field in sources:
                inputs[field] = {"sources": sources[field]}
            else:
                inputs[field] = describe_value(value)
        self._workflow_run(job.node.instance.run_id, job.node.instance)
        definition_file = self._store_definition(task_cls)
        assert job.output_dir is not None
        self.new_files.append(job.output_dir / f"_prov-{job.run_id}.trig")
        context = {
            "cache_dir": str(self.cache_dir),
            "workflow_run": job.node.instance.run_id,
            "node": job.node.path,
            "task_name": task_cls._task_name,
            "definition": task_cls._definition_hash.hex(),
            "definition_text": task_cls._definition_text,
            "kind": task_cls._kind,
            "definition_file": definition_file,
            "inputs": inputs,
            "user": self.user,
            "login": self.login,
            "container": getattr(job, "environment_info", None),
        }
        return context, write_job_run

    def _store_definition(self, task_cls: Any) -> str:
        """The task class, pickled once per definition beside the index, for reruns."""
        digest = task_cls._definition_hash.hex()
        path = self.cache_dir / ".provenance" / "definitions" / f"{digest}.pkl"
        if digest not in self._definitions and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                atomic_write(path, pickle_definition(task_cls))
            except Exception:  # a definition that cannot be pickled can still be recorded
                return ""
        self._definitions.add(digest)
        return str(path)

    def _record_lost_failure(self, job: Any, outcome: Any) -> None:
        """A failure the worker could not record (its process died, or never got the job)."""
        work = job.job
        if work is None or work.context is None:
            return
        if (work.output_dir / f"_prov-{work.run_id}.trig").exists():
            return
        now = datetime.datetime.now(tz=datetime.UTC).timestamp()
        started = outcome.started or now
        ended = outcome.ended or now
        work.output_dir.mkdir(parents=True, exist_ok=True)  # it may have died before making it
        write_job_run(work, attrs.evolve(outcome, started=started, ended=max(started, ended)))

    def _workflow_run(self, run_id: str, instance: Any) -> None:
        if run_id in self.workflow_runs:
            return
        parent = instance.parent
        if parent is None:
            name, part_of = self.root_name, self.submission
        else:
            name = type(parent.node.task)._task_name
            part_of = parent.node.instance.run_id
            self._workflow_run(part_of, parent.node.instance)
        self.workflow_runs[run_id] = {"name": name, "part_of": part_of}

    # -- events ---------------------------------------------------------------------------
    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.RunStarted):
            self._reset()
            self.submission = event.run_id
            self.root_name = event.task_name
            self.started = datetime.datetime.now(tz=datetime.UTC).timestamp()
        elif isinstance(event, events.JobReused):
            run_id = getattr(event.outcome, "run_id", "")
            if run_id:
                self.reused.add(run_id)
        elif isinstance(event, events.JobFinished) and not event.outcome.executed:
            if event.outcome.run_id:
                self.reused.add(event.outcome.run_id)
        elif isinstance(event, events.JobFinished) and not event.outcome.ok:
            self._record_lost_failure(event.job, event.outcome)
        elif isinstance(event, events.WorkflowFinished) and event.job.inner is not None:
            # recorded even when every job in it came from the cache
            self._workflow_run(event.job.run_id, event.job.inner)
        elif isinstance(event, events.RunFinished):
            self._write_submission()

    def _write_submission(self) -> None:
        sub = _n(V.run_iri(self.submission))
        g = sub
        now = datetime.datetime.now(tz=datetime.UTC).timestamp()
        quads = [
            ox.Quad(sub, A, P("Activity"), g),
            ox.Quad(sub, A, G("Submission"), g),
            ox.Quad(sub, G("taskName"), ox.Literal(self.root_name), g),
            ox.Quad(sub, P("startedAtTime"), _time(self.started), g),
            ox.Quad(sub, P("endedAtTime"), _time(now), g),
            ox.Quad(sub, P("wasAssociatedWith"), _n(V.agent_iri()), g),
        ]
        quads += _agents(g, {"user": self.user, "login": self.login})
        for run_id, info in self.workflow_runs.items():
            run = _n(V.run_iri(run_id))
            quads += [
                ox.Quad(run, A, P("Activity"), g),
                ox.Quad(run, A, G("WorkflowRun"), g),
                ox.Quad(run, G("taskName"), ox.Literal(info["name"]), g),
                ox.Quad(run, G("partOf"), _n(V.run_iri(info["part_of"])), g),
            ]
        for run_id in sorted(self.reused):
            quads.append(ox.Quad(sub, G("reused"), _n(V.run_iri(run_id)), g))
        folder = self.cache_dir / ".provenance" / "submissions"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.submission.rsplit(':', 1)[-1]}.trig"
        atomic_write(path, _trig(quads))
        self.new_files.append(path)
        if self.index:
            # queued, not indexed here: the store indexes what is queued when next asked
            from .store import queue_files

            queue_files(self.cache_dir, self.new_files)
