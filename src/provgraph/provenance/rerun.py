"""Rerun a recorded job from its provenance alone, and check whether it reproduced.

The record names the task definition (pickled beside the index) and the input values (pickled
beside the job); input files are taken from their recorded location and must still have their
recorded content hash. A shell job that ran in a container reruns in it (pickled beside the
job too), and its image must still have the recorded digest. The job runs in a scratch
directory, never over the original result; the new run is recorded in the cache, beside the
original's record in its job directory, with ``pg:rerunOf`` the old one and ``pg:reproduced``
on each output. The scratch directory is removed afterwards unless ``into=`` names where it goes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import attrs

from ..cache import job_dir, job_hash_of, unlocked_job
from ..exceptions import ProvenanceError
from . import vocab as V
from .query import SEEN_AT, job_run, output_hashes

__all__ = ["RerunResult", "rerun"]


@attrs.frozen(kw_only=True)
class RerunResult:
    """What a rerun gave: its run, the outputs, and whether each matched the original."""

    run: str
    rerun_of: str
    output_dir: Path
    outputs: dict[str, Any]
    reproduced: dict[str, bool]

    @property
    def all_reproduced(self) -> bool:
        """True when every output has the content hash it had in the original run."""
        return bool(self.reproduced) and all(self.reproduced.values())


def _path(iri: Any) -> Path:
    return Path(urllib.parse.unquote(urllib.parse.urlparse(str(iri)).path))


def _recorded(store: Any, run: str) -> dict[str, Any]:
    import rdflib

    rows = list(
        store.query(
            "SELECT ?task ?node ?defile ?inputs ?envfile ?digest ?hash ?def ?inrecord WHERE { "
            "?run a pg:JobRun ; pg:taskName ?task ; pg:nodeName ?node ; pg:jobHash ?hash ; "
            "prov:qualifiedAssociation/prov:hadPlan ?plan . ?plan pg:definitionHash ?def . "
            "OPTIONAL { ?plan pg:definitionFile ?defile } "
            "OPTIONAL { ?run pg:inputsFile ?inputs } "
            "OPTIONAL { ?run pg:inputsInRecord ?inrecord } "
            "OPTIONAL { ?run pg:environmentFile ?envfile } "
            "OPTIONAL { ?run prov:used/pg:containerDigest ?digest } }",
            run=rdflib.URIRef(run),
        )
    )
    if not rows:
        raise ProvenanceError(f"no job run {run} is recorded")
    task, node, definition_file, inputs_file, environment_file, digest, job_hash, plan = rows[0][:8]
    in_record = rows[0][8] is not None and rows[0][8].toPython() is True
    if definition_file is None or (inputs_file is None and not in_record):
        raise ProvenanceError(
            f"run {run} of {task} cannot be rerun: its record has no stored definition or inputs"
        )
    files: dict[str, list[tuple[Path, str]]] = {}  # every file of an input (a list: several)
    for field, where, digest in store.query(
        "SELECT DISTINCT ?field ?where ?hash WHERE { ?run prov:qualifiedUsage ?u . "
        "?u prov:entity ?e ; prov:hadRole/rdfs:label ?field . "
        "?e a pg:File ; pg:contentHash ?hash . " + SEEN_AT + " FILTER(BOUND(?where)) }",
        run=rdflib.URIRef(run),
    ):
        files.setdefault(str(field), []).append((_path(where), str(digest)))
    return {
        "task": str(task),
        "node": str(node),
        # the job's own directory (not the run's: a rerun's was a scratch folder)
        "job_dir": job_dir(store.cache_dir, str(task), str(job_hash)),
        "definition_file": _path(definition_file),
        "definition_hash": str(plan).removeprefix("xxh3-128:"),
        "inputs_file": _path(inputs_file) if inputs_file is not None else None,
        "inputs_in_record": _literal_inputs(store, run) if inputs_file is None else None,
        "environment_file": _path(environment_file) if environment_file is not None else None,
        "container_digest": str(digest) if digest is not None else None,
        "files": files,
        "outputs": output_hashes(store, run),
    }


def _literal_inputs(store: Any, run: str) -> dict[str, Any]:
    """The input values a record holds as literals (``pg:inputsInRecord``), by field; each
    must hash to the content hash recorded for it (same value, same type)."""
    import rdflib

    from ._describe import LITERAL_TYPES, describe_value

    found: dict[str, Any] = {}
    for field, literal, digest in store.query(
        # in the run's own graph: a content entity is shared by every record that used the
        # same value, and another record may have written its literal differently
        "SELECT ?field ?v ?hash WHERE { GRAPH ?run { ?run prov:qualifiedUsage ?u . "
        "?u prov:hadRole ?role ; prov:entity ?e . ?e pg:contentHash ?hash . "
        "OPTIONAL { ?e prov:value ?v } ?role rdfs:label ?field ; pg:direction 'input' } }",
        run=rdflib.URIRef(run),
    ):
        value = None if literal is None else literal.toPython()  # (None has no literal)
        hashed = f"xxh3-128:{describe_value(value)['hash']}"
        if type(value) not in LITERAL_TYPES or hashed != str(digest):
            shown = "no value" if literal is None else literal.n3()
            raise ProvenanceError(
                f"run {run}: input {str(field)!r} is recorded as {shown}, which does not give "
                f"back the value of content hash {digest}: it cannot be rerun from its record"
            )
        found[str(field)] = value
    return found


def verified(path: Path, what: str) -> bytes:
    """The bytes of a stored pickle whose MAC verifies; else a ``ProvenanceError`` naming it
    (it is never unpickled: it could run anything)."""
    from .._signing import unseal_file

    try:
        data = unseal_file(path)
    except OSError as err:
        raise ProvenanceError(f"cannot read the stored {what} {str(path)!r}: {err}") from err
    if data is None:
        raise ProvenanceError(
            f"the stored {what} {str(path)!r} is not sealed with your key (planted, damaged, "
            "or written by a user with another key): it is not loaded; see docs/security.md"
        )
    return data


def _environment(record: dict[str, Any], run: str) -> tuple[Any, dict[str, str] | None]:
    """The container the job ran in, checked to hold the image it had (by digest)."""
    import cloudpickle

    where = record["environment_file"]
    if where is None:
        return None, None
    try:
        environment = cloudpickle.loads(verified(where, "environment"))
    except ProvenanceError:
        raise
    except Exception as err:
        raise ProvenanceError(f"cannot load the stored environment of {run}: {err}") from err
    info = environment.describe()  # a missing runtime or image raises ContainerError here
    recorded = record["container_digest"]
    if recorded is not None and info["digest"] != recorded:
        raise ProvenanceError(
            f"rerun of {record['task']}: {info['runtime']} image {info['image']!r} has changed: "
            f"recorded digest {recorded}, current {info['digest']}"
        )
    return environment, info


def _check_files(record: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Every input file as recorded (else an error naming it); the inputs' files at the
    places the record gives them now."""
    from .._filetypes import Directory, File
    from ..hashing import file_content_digest

    for field, recorded in record["files"].items():
        for where, digest in recorded:
            if not where.exists():
                raise ProvenanceError(
                    f"rerun of {record['task']}: input {field!r} file {str(where)!r} is missing "
                    f"(recorded with content hash {digest})"
                )
            current = "xxh3-128:" + file_content_digest(where).hex()
            if current != digest:
                raise ProvenanceError(
                    f"rerun of {record['task']}: input {field!r} file {str(where)!r} has "
                    f"changed: recorded content hash {digest}, current {current}"
                )
        value = inputs.get(field)
        places = [where for where, _ in recorded]
        if isinstance(value, (File, Directory)) and len(places) == 1 and Path(value) != places[0]:
            inputs[field] = type(value)(places[0])
        elif isinstance(value, (list, tuple)):  # files of a moved cache: where they are now
            inputs[field] = type(value)(_moved(item, places) for item in value)


def _moved(item: Any, places: list[Path]) -> Any:
    """A file of a list input at its recorded place when it is no longer where the inputs say
    (the cache moved): the place that ends with the same job directory and name."""
    from .._filetypes import Directory, File

    if not isinstance(item, (File, Directory)) or Path(item).exists():
        return item
    tail = Path(item).parts[-2:]
    found = [where for where in places if where.parts[-2:] == tail]
    return type(item)(found[0]) if len(found) == 1 else item


def rerun(
    store: Any,
    job: str,
    *,
    into: str | Path | None = None,
    verify: bool = True,
    part_of: str | None = None,
) -> RerunResult:
    """Rerun ``job`` (a run IRI, job hash or job directory) from its record; see the module.
    The new run is part of the workflow run ``part_of`` (a UUID) when given (a rerun of a
    whole workflow run), else of a workflow run and submission of its own, recorded with it."""
    import cloudpickle

    old_run = job_run(store, job)
    record = _recorded(store, old_run)
    try:
        task_cls = cloudpickle.loads(verified(record["definition_file"], "task definition"))
        if record["inputs_file"] is None:  # every input is a literal of the record
            inputs = dict(record["inputs_in_record"])
        else:
            inputs = dict(cloudpickle.loads(verified(record["inputs_file"], "inputs")))
    except ProvenanceError:
        raise
    except Exception as err:
        raise ProvenanceError(
            f"cannot load the stored definition or inputs of {old_run}: {err}"
        ) from err
    if task_cls._definition_hash.hex() != record["definition_hash"]:
        raise ProvenanceError(
            f"the stored task definition {str(record['definition_file'])!r} is not the one "
            f"{old_run} ran (definition hash {task_cls._definition_hash.hex()}, recorded "
            f"{record['definition_hash']}): it is not run"
        )
    _check_files(record, inputs)
    environment, environment_info = _environment(record, old_run)
    new_id = str(uuid.uuid4())
    base = (
        Path(into).absolute()
        if into is not None
        else Path(tempfile.mkdtemp(prefix="provgraph-rerun-"))
    )
    output_dir = base / f"{record['task']}-rerun-{new_id}"
    try:
        output_dir.mkdir(parents=True)
    except OSError as err:
        raise ProvenanceError(
            f"rerun: into={str(into)!r}: cannot make the rerun's folder there ({err}); expected "
            "a folder that can be written"
        ) from err
    started = time.time()
    try:
        try:
            if environment is None:
                outputs = task_cls._execute(dict(inputs), output_dir)
            else:
                outputs = task_cls._execute(dict(inputs), output_dir, environment)
        except Exception as err:
            raise ProvenanceError(
                f"rerun of {record['task']} ({old_run}) failed: {type(err).__name__}: {err}"
            ) from err
        ended = time.time()
        own = part_of is None
        part_of = part_of or str(uuid.uuid4())
        result = _record_rerun(
            store,
            record,
            old_run,
            new_id,
            part_of,
            task_cls,
            inputs,
            outputs,
            (started, ended),
            output_dir,
            environment,
            environment_info,
            verify,
        )
        if own:
            _record_rerun_runs(store, part_of, f"rerun of {record['task']}", started, 1)
        return result
    finally:
        if into is None:
            shutil.rmtree(base, ignore_errors=True)


def _record_rerun(
    store: Any,
    record: dict[str, Any],
    old_run: str,
    new_id: str,
    part_of: str,
    task_cls: Any,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    times: tuple[float, float],
    output_dir: Path,
    environment: Any,
    environment_info: dict[str, str] | None,
    verify: bool,
) -> RerunResult:
    """The rerun's record, in the original job's directory in the cache."""
    from ..engine.job import Job, Outcome
    from . import journal
    from .record import describe_value, field_types, record_path, write_job_run

    started, ended = times
    reproduced = {
        field: "xxh3-128:" + describe_value(outputs.get(field))["hash"] == digest
        for field, digest in (record["outputs"].items() if verify else ())
    }
    user, login = V.user_iri()
    context = {
        "cache_dir": str(store.cache_dir),
        "workflow_run": part_of,
        "node": record["node"],
        "task_name": task_cls._task_name,
        "definition": task_cls._definition_hash.hex(),
        "definition_text": task_cls._definition_text,
        "kind": task_cls._kind,
        "types": field_types(task_cls),
        "definition_file": str(record["definition_file"]),
        "record_dir": str(record["job_dir"]),
        "inputs": {field: describe_value(value) for field, value in inputs.items()},
        "user": user,
        "login": login,
        "rerun_of": old_run,
        "reproduced": reproduced,
        "container": environment_info,
    }
    new_job = Job(
        task_cls=task_cls,
        inputs=inputs,
        job_hash=job_hash_of(record["job_dir"]),
        output_dir=output_dir,
        run_id=new_id,
        context=context,
        environment=environment,
    )
    outcome = Outcome(
        job_hash=new_job.job_hash, status="succeeded", outputs=outputs, started=started, ended=ended
    )
    record["job_dir"].mkdir(parents=True, exist_ok=True)  # its folder may have been removed
    journal.append(store.cache_dir, [record_path(record["job_dir"], new_id)])
    with unlocked_job(record["job_dir"]):  # (a catch-up never takes it for one left aside)
        write_job_run(new_job, outcome)()
    return RerunResult(
        run=V.run_iri(new_id),
        rerun_of=old_run,
        output_dir=output_dir,
        outputs=outputs,
        reproduced=reproduced,
    )


@attrs.frozen(kw_only=True)
class WorkflowRerunResult:
    """The reruns of every job of a workflow run, in the order they first ran."""

    rerun_of: str
    jobs: list[RerunResult]

    @property
    def reproduced(self) -> dict[str, bool]:
        """For each rerun job (by its original run IRI): whether all its outputs reproduced."""
        return {r.rerun_of: r.all_reproduced for r in self.jobs}

    @property
    def all_reproduced(self) -> bool:
        """True when every job reproduced every output."""
        return bool(self.jobs) and all(r.all_reproduced for r in self.jobs)


def rerun_workflow(
    store: Any, workflow_run: str, *, into: str | Path | None = None, verify: bool = True
) -> WorkflowRerunResult:
    """Rerun every job of a recorded workflow run (or submission), in the order they ran."""
    import rdflib

    jobs = [
        str(r)
        for (r,) in store.query(
            "SELECT ?job WHERE { ?job a pg:JobRun ; pg:partOf+ ?wf ; prov:startedAtTime ?t } "
            "ORDER BY ?t",
            wf=rdflib.URIRef(workflow_run),
        )
    ]
    if not jobs:
        raise ProvenanceError(f"no job run is recorded as part of {workflow_run}")
    base = (
        Path(into).absolute()
        if into is not None
        else Path(tempfile.mkdtemp(prefix="provgraph-rerun-"))
    )
    started = time.time()
    part_of = str(uuid.uuid4())
    done: list[RerunResult] = []
    try:
        for job in jobs:
            done.append(rerun(store, job, into=base, verify=verify, part_of=part_of))
    finally:
        if done:  # (the reruns recorded: what they were part of, and how far it got)
            _record_rerun_runs(store, part_of, "rerun", started, len(done), total=len(jobs))
        if into is None:
            shutil.rmtree(base, ignore_errors=True)
    return WorkflowRerunResult(rerun_of=workflow_run, jobs=done)


def _record_rerun_runs(
    store: Any,
    workflow_run: str,
    name: str,
    started: float,
    n_jobs: int,
    total: int | None = None,
) -> None:
    """The workflow run ``workflow_run`` the reruns were part of, and the submission it is
    part of, as one record under ``.provenance/runs``: complete activities (times, status,
    the engine's association), as a submission's are. ``n_jobs`` reran, of ``total``."""
    import pyoxigraph as ox

    from .record import A, G, P, _agents, _n, _time, write_under_provenance

    submission_id = str(uuid.uuid4())
    ended = time.time()
    user, login = V.user_iri()
    complete = total is None or n_jobs == total
    status = ox.Literal("succeeded" if complete else "failed")
    quads = []
    for run_id, kind in ((submission_id, "Submission"), (workflow_run, "WorkflowRun")):
        run = _n(V.run_iri(run_id))
        quads += [
            ox.Quad(run, A, P("Activity"), run),
            ox.Quad(run, A, G(kind), run),
            ox.Quad(run, G("taskName"), ox.Literal(name), run),
            ox.Quad(run, P("startedAtTime"), _time(started), run),
            ox.Quad(run, P("endedAtTime"), _time(ended), run),
            ox.Quad(run, G("status"), status, run),
            ox.Quad(run, P("wasAssociatedWith"), _n(V.agent_iri()), run),
            *_agents(run, {"user": user, "login": login}),
        ]
        if kind == "Submission":  # (what `provgraph runs` shows)
            failed = 0 if complete else 1  # (the rerun that raised; those after it: skipped)
            skipped = max(0, total - n_jobs - failed) if total is not None else 0
            counts = {"executedJobs": n_jobs, "reusedJobs": 0, "failedJobs": failed}
            for counted, count in {**counts, "skippedJobs": skipped}.items():
                number = ox.Literal(str(count), datatype=_n(V.XSD + "integer"))
                quads.append(ox.Quad(run, G(counted), number, run))
        else:
            quads.append(ox.Quad(run, G("partOf"), _n(V.run_iri(submission_id)), run))
    path = store.cache_dir / ".provenance" / "runs" / f"{submission_id}.trig"
    write_under_provenance(store.cache_dir, path, quads)
