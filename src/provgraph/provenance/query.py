"""Answers to the common questions, as SPARQL over a :class:`ProvenanceStore`.

Each helper resolves what it is given (a file path, a content hash ``xxh3-128:...``, a job hash
or a run IRI) to entities or runs, then asks one query. Results are plain dicts of strings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xxhash

from ..exceptions import ProvenanceError
from . import vocab as V

__all__ = [
    "directory_run",
    "failed_runs",
    "impact",
    "inside",
    "job_run",
    "lineage",
    "output_hashes",
    "produced",
    "result_run",
    "runs_of",
    "show_job",
    "submissions",
]

_RUN_FIELDS = """
  ?run pg:taskName ?task ; pg:nodeName ?node ; pg:jobHash ?job ; pg:status ?status ;
       prov:startedAtTime ?started ; prov:endedAtTime ?ended ; pg:outputDir ?dir .
"""
_RUN_VARS = "?run ?task ?node ?job ?status ?started ?ended ?dir"

# ?where: the place run ?run read entity ?e at, through usage ?u. A usage says it (records
# since they do); else the entity's place. A content entity (a value or file named by its
# content) is one for every run and input of equal content, with all their places: for a
# record that predates usage places, ?run's own graph says which are its own (SEEN_AT), where
# there are graphs (a store; not a selection's merged graph: PLACED).
_USED_AT = "OPTIONAL { ?u prov:atLocation ?usedAt } "
PLACED = (
    _USED_AT + "OPTIONAL { ?e prov:atLocation ?entityAt . FILTER(!BOUND(?usedAt)) } "
    "BIND(COALESCE(?usedAt, ?entityAt) AS ?where)"
)
SEEN_AT = (
    _USED_AT + "OPTIONAL { ?e prov:atLocation ?entityAt . FILTER(!BOUND(?usedAt) && "
    '(!STRSTARTS(STR(?e), "urn:provgraph:content:") '
    "|| EXISTS { GRAPH ?run { ?e prov:atLocation ?entityAt } })) } "
    "BIND(COALESCE(?usedAt, ?entityAt) AS ?where)"
)
_RUN_INPUTS = (
    "SELECT DISTINCT ?field ?hash ?where ?value WHERE { ?run prov:qualifiedUsage ?u . "
    "?u prov:entity ?e ; prov:hadRole/rdfs:label ?field . ?e pg:contentHash ?hash . "
    "%s OPTIONAL { ?e prov:value ?value } } ORDER BY ?field"
)
# one run's details, with ?run bound
RUN_INPUTS = _RUN_INPUTS % PLACED
_RUN_INPUTS_SEEN = _RUN_INPUTS % SEEN_AT  # (over the store: each file where this run read it)
RUN_OUTPUTS = (
    "SELECT DISTINCT ?field ?hash ?where ?value WHERE { ?e prov:wasGeneratedBy ?run ; "
    "prov:qualifiedGeneration/prov:hadRole/rdfs:label ?field ; pg:contentHash ?hash . "
    "OPTIONAL { ?e prov:atLocation ?where } OPTIONAL { ?e prov:value ?value } } ORDER BY ?field"
)
RUN_ENVIRONMENT = (
    "SELECT DISTINCT ?python ?platform ?host WHERE { ?run prov:used ?env . "
    "?env a pg:Environment ; pg:pythonVersion ?python ; pg:platform ?platform ; "
    "pg:hostname ?host }"
)
# where it ran: the worker, its host, and by worker a Dask address or a SLURM job id and state
RUN_PLACEMENT = (
    "SELECT DISTINCT ?worker ?host ?address ?slurm ?state ?log WHERE { ?run pg:workerHost ?host . "
    "OPTIONAL { ?run pg:worker ?worker } OPTIONAL { ?run pg:workerAddress ?address } "
    "OPTIONAL { ?run pg:slurmJobId ?slurm } OPTIONAL { ?run pg:slurmState ?state } "
    "OPTIONAL { ?run pg:workerLog ?log } }"
)
# the container a shell command ran in
RUN_CONTAINER = (
    "SELECT DISTINCT ?runtime ?image ?digest WHERE { ?run prov:used ?env . "
    "?env a pg:ContainerEnvironment ; pg:containerRuntime ?runtime ; pg:containerImage ?image ; "
    "pg:containerDigest ?digest }"
)


def _rows(store: Any, sparql: str, **bindings: Any) -> list[dict[str, str]]:
    result = store.query(sparql, **bindings)
    names = [str(v) for v in result.vars]
    return [{n: str(row[i]) for i, n in enumerate(names) if row[i] is not None} for row in result]


def _entities_values(target: Any) -> str:
    """A VALUES-free SPARQL pattern binding ?e to the entities ``target`` names."""
    import rdflib

    text = str(target)
    if text.startswith("xxh3-128:"):
        return f"?e pg:contentHash {rdflib.Literal(text).n3()} ."
    if text.startswith(("urn:", "file:")):
        return f"BIND({rdflib.URIRef(text).n3()} AS ?e)"
    path = Path(os.path.abspath(text))
    if not path.is_file():
        raise ProvenanceError(
            f"{text!r} is neither an existing file, a content hash (xxh3-128:...) nor an IRI"
        )
    digest = "xxh3-128:" + xxhash.xxh3_128_hexdigest(path.read_bytes())
    where = rdflib.URIRef(V.file_iri(path)).n3()
    # the entities recorded at this path; only when none is, those with the same content
    return (
        f"{{ ?e prov:atLocation {where} }} UNION "
        f"{{ ?e pg:contentHash {rdflib.Literal(digest).n3()} . "
        f"FILTER NOT EXISTS {{ ?x prov:atLocation {where} }} }}"
    )


def _runs_reached(store: Any, target: Any, pattern: str, extra: str = "") -> list[dict[str, str]]:
    """Runs ``?run`` that ``pattern`` links to the entities ``?e`` that ``target`` names."""
    return _rows(
        store,
        f"SELECT DISTINCT {_RUN_VARS}{extra} WHERE {{ {_entities_values(target)} {pattern} "
        f"{_RUN_FIELDS} }} ORDER BY ?started",
    )


def produced(store: Any, target: Any) -> list[dict[str, str]]:
    """The job runs that generated a file (by path or content) or an entity."""
    pattern = (
        "?e prov:wasGeneratedBy ?run ; prov:qualifiedGeneration/prov:hadRole/rdfs:label ?field ."
    )
    return _runs_reached(store, target, pattern, " ?field")


def lineage(store: Any, target: Any) -> list[dict[str, str]]:
    """Every job run upstream of a file, hash or entity: what it was made from, transitively."""
    return _runs_reached(
        store, target, "?e prov:wasGeneratedBy/(prov:used/prov:wasGeneratedBy)* ?run ."
    )


def impact(store: Any, target: Any) -> list[dict[str, str]]:
    """Every job run downstream of an input file, hash or entity: what used it, transitively."""
    return _runs_reached(store, target, "?e (^prov:used/^prov:wasGeneratedBy)*/^prov:used ?run .")


def runs_of(store: Any, task_name: str) -> list[dict[str, str]]:
    """Every recorded run of the task named ``task_name``."""
    import rdflib

    return _rows(
        store,
        f"SELECT DISTINCT {_RUN_VARS} WHERE {{ ?run a pg:JobRun . {_RUN_FIELDS} }} "
        "ORDER BY ?started",
        task=rdflib.Literal(task_name),
    )


def failed_runs(store: Any) -> list[dict[str, str]]:
    """Every recorded failed run, with its error type and message."""
    return _rows(
        store,
        f"SELECT DISTINCT {_RUN_VARS} ?error ?message WHERE {{ ?run a pg:JobRun ; pg:error ?err . "
        f"?err pg:errorType ?error ; pg:errorMessage ?message . {_RUN_FIELDS} }} "
        "ORDER BY ?started",
    )


SUBMISSIONS = """SELECT ?run ?task ?status ?started ?ended
    ?executed ?reused ?failed ?skipped WHERE {
  ?run a pg:Submission .
  OPTIONAL { ?run pg:taskName ?task } OPTIONAL { ?run pg:status ?status }
  OPTIONAL { ?run prov:startedAtTime ?started } OPTIONAL { ?run prov:endedAtTime ?ended }
  OPTIONAL { ?run pg:executedJobs ?executed } OPTIONAL { ?run pg:reusedJobs ?reused }
  OPTIONAL { ?run pg:failedJobs ?failed } OPTIONAL { ?run pg:skippedJobs ?skipped }
} ORDER BY DESC(?started) ?run"""


def submissions(store: Any, limit: int | None = None) -> list[dict[str, Any]]:
    """One row per recorded submission, newest first: its IRI, top task, status, start, end,
    seconds, and counts of jobs executed, reused, failed and skipped (recorded since the counts
    were; missing before). A submission with no end is ``running`` while some submission runs
    on the cache, else ``died``: its process was killed or crashed before it could say."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ProvenanceError(f"runs: limit={limit!r}; expected a positive integer")
    rows = []
    unended: str | None = None  # what a submission with no end is: asked once
    for row in store.query(SUBMISSIONS + (f" LIMIT {limit}" if limit else "")):
        run, task, status, started, ended, *counts = row
        if status is None and unended is None:
            unended = "died" if store.remote is None and not _submitting(store) else "running"
        status = status if status is not None else unended
        seconds = None
        if started is not None and ended is not None:
            seconds = (ended.toPython() - started.toPython()).total_seconds()
        rows.append(
            {
                "run": str(run),
                "task": str(task) if task is not None else "",
                "status": str(status),
                "started": str(started) if started is not None else "",
                "ended": str(ended) if ended is not None else "",
                "seconds": seconds,
                **{
                    name: int(value) if value is not None else None
                    for name, value in zip(
                        ("executed", "reused", "failed", "skipped"), counts, strict=True
                    )
                },
            }
        )
    return rows


def _submitting(store: Any) -> bool:
    from .. import cache

    return cache.anyone_submitting(store.cache_dir)


RUN_FAILURE = (
    "SELECT ?error ?message ?traceback ?code WHERE { "
    "OPTIONAL { ?run pg:error ?e . ?e pg:errorType ?error ; pg:errorMessage ?message . "
    "OPTIONAL { ?e pg:traceback ?traceback } } OPTIONAL { ?run pg:exitCode ?code } }"
)
# files a failed job leaves beside its record, for the user to read
_LOGS = ("stderr.txt", "stdout.txt", "_error.json", "_worker.log")


def _failure(store: Any, iri: Any, directory: str) -> dict[str, Any] | None:
    """A failed run's error type, message, exit code, last 20 lines of its traceback, and the
    paths of the logs in its job directory."""
    rows = _rows(store, RUN_FAILURE, run=iri)
    row = rows[0] if rows else {}
    if "error" not in row:
        return None
    folder = V.iri_path(directory)
    return {
        "error": row["error"],
        "message": row.get("message", ""),
        "exit_code": int(row["code"]) if "code" in row else None,
        "traceback": row.get("traceback", "").splitlines()[-20:],
        "logs": [str(folder / n) for n in _LOGS if folder and (folder / n).is_file()],
    }


def inside(store: Any, run: str) -> dict[str, Any] | None:
    """A submission or workflow run: what it is, and the job runs inside it (at any depth)."""
    import rdflib

    iri = rdflib.URIRef(run)
    kinds = {str(k) for (k,) in store.query("SELECT ?k WHERE { ?r a ?k }", r=iri)}
    kind = next((k for k in ("Submission", "WorkflowRun") if f"{V.PG}{k}" in kinds), None)
    if kind is None:
        return None
    about = _rows(
        store,
        "SELECT ?task ?status ?started ?ended WHERE { OPTIONAL { ?run pg:taskName ?task } "
        "OPTIONAL { ?run pg:status ?status } OPTIONAL { ?run prov:startedAtTime ?started } "
        "OPTIONAL { ?run prov:endedAtTime ?ended } }",
        run=iri,
    )
    jobs = _rows(
        store,
        f"SELECT DISTINCT {_RUN_VARS} WHERE {{ ?run pg:partOf+ ?top . {_RUN_FIELDS} }} "
        "ORDER BY ?started",
        top=iri,
    )
    return {"run": run, "kind": kind, **(about[0] if about else {}), "jobs": jobs}


def output_hashes(store: Any, run: str) -> dict[str, str]:
    """Each output of a run and its content hash (a list's own, not its members')."""
    import rdflib

    return {
        str(field): str(digest)
        for field, digest in store.query(
            "SELECT DISTINCT ?field ?hash WHERE { ?e prov:wasGeneratedBy ?run ; "
            "prov:qualifiedGeneration/prov:hadRole/rdfs:label ?field ; pg:contentHash ?hash . "
            "FILTER NOT EXISTS { ?whole prov:hadMember ?e ; prov:wasGeneratedBy ?run } }",
            run=rdflib.URIRef(run),
        )
    }


def job_run(store: Any, job: str) -> str:
    """The job run ``job`` names. A run IRI is itself. A job hash, its first characters, or a
    job directory (its name or path) name the job's run whose result the cache holds; when
    none does (removed, or failed), the latest run that is not a rerun; else the latest.
    Refused: nothing given, a prefix of several jobs' hashes (they are listed), and a
    workflow's or split's directory (its run is named)."""
    import rdflib

    text = job.strip()
    if not text:
        raise ProvenanceError(
            "job ''; expected a run IRI, a job hash (or its first characters) or a job directory"
        )
    if text.startswith("urn:"):
        return text
    prefix = _job_prefix(text)
    found: dict[str, list[tuple[bool, Any, str, str]]] = {}
    for run, digest, started, again, where in store.query(
        "SELECT ?run ?h ?t ?again ?dir WHERE { ?run a pg:JobRun ; pg:jobHash ?h ; "
        "prov:startedAtTime ?t . OPTIONAL { ?run pg:rerunOf ?again } "
        "OPTIONAL { ?run pg:outputDir ?dir } FILTER(STRSTARTS(?h, ?prefix)) }",
        prefix=rdflib.Literal(prefix),
    ):
        found.setdefault(str(digest), []).append(
            (again is None, started.toPython(), str(run), str(where or ""))
        )
    if not found:
        whole = directory_run(store, text)
        if whole is not None:
            raise ProvenanceError(
                f"{job!r} is the directory of a workflow run or split, not of a job: its latest "
                f"run is {whole}; name that run, or one of its jobs"
            )
        raise ProvenanceError(f"no recorded run of job {job!r}")
    if len(found) > 1:
        shown = ", ".join(sorted(found)[:8]) + (", ..." if len(found) > 8 else "")
        raise ProvenanceError(
            f"job {job!r} is ambiguous: the hashes of {len(found)} recorded jobs start with "
            f"{prefix!r} ({shown}); give more of the hash"
        )
    (runs,) = found.values()
    # the job's directory, as its runs name it (a rerun's names the scratch folder it ran in)
    for where in dict.fromkeys(where for original, _, _, where in runs if original and where):
        kept = result_run(V.iri_path(where))
        if any(run == kept for _, _, run, _ in runs):
            return kept
    return max(runs)[2]  # (originals before reruns, then the latest)


def _folder_name(job: str) -> str:
    """The last part of a job's name given as a path (``cache/Task-<hash>/`` -> its folder)."""
    return job.strip().rstrip("/").rsplit("/", 1)[-1]


def _job_prefix(job: str) -> str:
    """The job hash (or its start) a job's name gives: a hash, or a directory's name or path."""
    return _folder_name(job).rsplit("-", 1)[-1]


def result_run(folder: Path | None) -> str:
    """The run IRI of the result a cache directory holds ("" when none can be read)."""
    from .. import cache

    try:  # (its outputs left out, and nothing said of a result that is not this user's)
        found = cache.read_result_and_record(folder, outputs=False, warn=False) if folder else None
    except Exception:  # a class only the user's script defines
        return ""
    return V.run_iri(found[0].run_id) if found is not None and found[0].run_id else ""


def directory_run(store: Any, job: str) -> str | None:
    """The workflow run (or split) whose result the directory ``job`` names holds (its name
    or path, under the store's cache), or None."""
    import rdflib

    name = _folder_name(job)
    if store.remote is not None or not name or name.startswith("."):
        return None  # (a server: no directories to read)
    run = result_run(store.cache_dir / name)
    if not run:
        return None
    kind = store.query("ASK { ?run a pg:WorkflowRun }", run=rdflib.URIRef(run))
    return run if kind.askAnswer else None


def show_job(store: Any, job: str) -> list[dict[str, Any]]:
    """Runs of one job (by job hash, a prefix of it, a directory name, or a run IRI); a
    failed one with its ``failure`` (see :func:`_failure`)."""
    import rdflib

    text = job.strip()
    if not text.startswith("urn:"):  # a hash, its start, or a job directory (name or path)
        text = _job_prefix(text)
    if text.startswith("urn:"):
        runs = _rows(
            store, f"SELECT DISTINCT {_RUN_VARS} WHERE {{ {_RUN_FIELDS} }}", run=rdflib.URIRef(text)
        )
    else:
        runs = _rows(
            store,
            f"SELECT DISTINCT {_RUN_VARS} WHERE {{ {_RUN_FIELDS} "
            "FILTER(STRSTARTS(?job, ?prefix)) } "
            "ORDER BY ?started",
            prefix=rdflib.Literal(text),
        )
    details = []
    for run in runs:
        iri = rdflib.URIRef(run["run"])
        inputs = _rows(store, _RUN_INPUTS_SEEN, run=iri)
        outputs = _rows(store, RUN_OUTPUTS, run=iri)
        env = _rows(store, RUN_ENVIRONMENT, run=iri)
        placement = _rows(store, RUN_PLACEMENT, run=iri)
        container = _rows(store, RUN_CONTAINER, run=iri)
        details.append(
            {
                **run,
                "inputs": inputs,
                "outputs": outputs,
                "environment": env[:1],
                "placement": placement[:1],
                "container": container[:1],
                "failure": _failure(store, iri, run["dir"])
                if run["status"] != "succeeded"
                else None,
            }
        )
    return details


def place_text(place: dict[str, str]) -> str:
    """``slurm on node7 (SLURM job 12_3, TIMEOUT), log file:///...`` from a placement row."""
    where = [f"SLURM job {place['slurm']}"] if place.get("slurm") else []
    where += [place["address"]] if place.get("address") else []
    where += [place["state"]] if place.get("state") else []
    text = f"{place.get('worker', 'worker')} on {place.get('host') or '?'}"
    text += f" ({', '.join(where)})" if where else ""
    return text + (f", log {place['log']}" if place.get("log") else "")
