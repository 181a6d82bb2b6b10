"""A job run's own triples, written straight as TriG text.

This is on every job's path. Formatting a triple as a line costs about a fifth of a microsecond;
building it as pyoxigraph terms and serializing them costs about ten times that. So the parts of a
record that differ from job to job (the run, its inputs and outputs, its error) are written here
as lines, one triple each, with the prefixes of :data:`PREFIXES` and N-Triples terms (strings are
escaped by pyoxigraph's own literal writer). :func:`as_quads` reads lines back as quads, for the
records still built as quads (workflow runs, interrupted runs), so that each writer exists once.

Every writer appends its lines to ``out``; subjects and objects are given as written terms
(``<iri>`` or ``_:label``), as :func:`iri` and :func:`blank` make them.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import math
import os
import shutil
from typing import Any

import pyoxigraph as ox
import xxhash

from ..exceptions import HashingError
from ..hashing import file_content_digest
from . import _describe
from . import vocab as V
from ._describe import describe_value

__all__ = ["HEADER", "PREFIXES", "as_quads", "blank", "iri"]

PREFIXES = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}
HEADER = "".join(f"@prefix {name}: <{iri}> .\n" for name, iri in sorted(PREFIXES.items()))


def iri(value: str) -> str:
    """An IRI as written (engine-made IRIs only: they are already percent-encoded)."""
    return f"<{value}>"


@functools.lru_cache(maxsize=4096)
def string(value: str) -> str:
    """A plain string literal, escaped (remembered: task, node and host names repeat in every
    record of a node)."""
    return str(ox.Literal(value))


def lit(value: Any) -> str:
    """A literal of a small value: booleans, integers and floats typed, anything else a string."""
    if isinstance(value, bool):
        return f'"{"true" if value else "false"}"^^xsd:boolean'
    if isinstance(value, int):  # (int() and float(): numpy scalars are written plainly)
        return f'"{int(value)}"^^xsd:integer'
    if isinstance(value, float):
        return f'"{_double(float(value))}"^^xsd:double'
    return str(ox.Literal(str(value)))


def _double(value: float) -> str:
    """The ``xsd:double`` lexical form: Python's repr, but XSD's ``NaN``, ``INF`` and ``-INF``."""
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("INF" if value > 0 else "-INF")


def iso(seconds: float) -> str:
    """A time as an ``xsd:dateTime`` lexical form (UTC)."""
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).isoformat()


def stamp(seconds: float) -> str:
    """An ``xsd:dateTime`` literal."""
    return f'"{iso(seconds)}"^^xsd:dateTime'


@functools.lru_cache(maxsize=4096)
def graph_tag(graph: str) -> str:
    return xxhash.xxh3_64_hexdigest(graph.encode())


_BLANKS = itertools.count()


def blank_label(graph: str) -> str:
    """A blank node label of the record of graph ``graph``, from the graph's name and a
    counter. Never random labels: they repeat in processes forked from one parent (a ``cf``
    pool), and the union of their records would join unrelated usages."""
    return f"b{graph_tag(graph)}x{next(_BLANKS):x}"


def blank(graph: str) -> str:
    return "_:" + blank_label(graph)


def as_quads(lines: list[str], graph: str) -> list[ox.Quad]:
    """``lines`` read back as quads of the named graph ``graph``."""
    data = "".join((HEADER, "<", graph, "> {\n", *lines, "}\n"))
    return list(ox.parse(data.encode(), format=ox.RdfFormat.TRIG))


@functools.lru_cache(maxsize=4096)
def _role(definition: str, direction: str, field: str) -> str:
    return iri(V.parameter_iri(definition, direction, field))


@functools.lru_cache(maxsize=4096)
def _content(digest: str) -> str:
    return iri(V.content_iri(digest))


def place(path: str | os.PathLike[str], root: str) -> str:
    """A file's IRI in a record of the cache ``root``: relative to it when inside it."""
    return iri(V.location_iri(path, root))


def entity(out: list[str], s: str, d: dict[str, Any], root: str) -> None:
    """An entity described by :func:`describe_value`."""
    kind, digest = d["kind"], d["hash"]
    out.append(f'{s} a prov:Entity, pg:{kind} ;\n  pg:contentHash "xxh3-128:{digest}" .\n')
    if d.get("location"):
        out.append(f"{s} prov:atLocation {place(d['location'], root)} .\n")
    if d.get("size") is not None:
        out.append(f"{s} pg:size {lit(d['size'])} .\n")
    if d.get("value") is not None:
        out.append(f"{s} prov:value {lit(d['value'])} .\n")
    if d.get("format") is not None:
        out.append(f"{s} pg:format {string(d['format'])} .\n")


def parameter(
    out: list[str], role: str, context: dict[str, Any], direction: str, field: str
) -> None:
    """A formal parameter of the task definition, as the role its value plays: labelled with
    the field's name, its direction (input or output) and its type, part of its plan."""
    plan = iri(V.definition_iri(context["definition"]))
    out.append(
        f"{role} a prov:Role, pg:Parameter ;\n  rdfs:label {string(field)} ;\n"
        f'  pg:direction "{direction}" ;\n  pg:parameterOf {plan} .\n'
    )
    kind = context.get("types", {}).get(f"{direction}:{field}")
    if kind:
        out.append(f"{role} pg:parameterType {string(kind)} .\n")


def usages(
    out: list[str], g: str, context: dict[str, Any], root: str, used: list[str], roles: bool = True
) -> None:
    """Each input used, plainly and qualified with its role; upstream runs informing this one.
    The entities used are appended to ``used``. ``g`` is the run's IRI (not written)."""
    run = iri(g)
    informed: set[str] = set()
    definition = context["definition"]
    for field, given in context["inputs"].items():
        d = _describe.described(given)
        role = _role(definition, "input", field)
        if roles:
            parameter(out, role, context, "input", field)
        # each entity used, with the place this run read it at (a content entity is shared
        # by every run and input of equal content, with all their places: the usage says which)
        places: list[str | None]
        if d.get("sources"):
            entities = [iri(V.output_iri(V.run_iri(r), f)) for r, f in d["sources"] if r]
            informed.update(V.run_iri(r) for r, _ in d["sources"] if r)
            for e in entities:  # typed here too, so that this record validates alone
                out.append(f"{e} a prov:Entity .\n")
            if "hash" in d:  # a list gathered from upstream runs: the list as one entity too
                whole = iri(V.gathered_iri(g, field))
                entity(out, whole, {"kind": "Value", "hash": d["hash"]}, root)
                out += [f"{whole} prov:hadMember {e} .\n" for e in dict.fromkeys(entities)]
                entities = [whole, *entities]
            places = [None] * len(entities)
        else:
            e = _content(d["hash"])
            entity(out, e, d, root)
            entities, places = [e], [d.get("location")]
            for member in d.get("members", []):
                member_entity = _content(member["hash"])
                entity(out, member_entity, member, root)
                out.append(f"{e} prov:hadMember {member_entity} .\n")
                entities.append(member_entity)
                places.append(member.get("location"))
        for e, where in zip(entities, places, strict=True):
            usage = blank(g)
            out.append(
                f"{run} prov:used {e} ;\n  prov:qualifiedUsage {usage} .\n"
                f"{usage} a prov:Usage ;\n  prov:entity {e} ;\n  prov:hadRole {role} .\n"
            )
            if where:
                out.append(f"{usage} prov:atLocation {place(where, root)} .\n")
            used.append(e)
    for upstream in sorted(informed):
        communication = blank(g)
        out.append(
            f"{run} prov:wasInformedBy <{upstream}> ;\n"
            f"  prov:qualifiedCommunication {communication} .\n"
            f"{communication} a prov:Communication ;\n  prov:activity <{upstream}> .\n"
        )


def generated(
    out: list[str],
    g: str,
    e: str,
    described: dict[str, Any],
    role: str,
    sources: list[str],
    root: str,
) -> None:
    """An output entity ``e`` of run ``g``: its description, its (qualified) generation, what
    it derives from."""
    run = iri(g)
    generation = blank(g)
    entity(out, e, described, root)
    out.append(
        f"{e} prov:wasGeneratedBy {run} ;\n  prov:qualifiedGeneration {generation} .\n"
        f"{generation} a prov:Generation ;\n  prov:activity {run} ;\n  prov:hadRole {role} .\n"
    )
    for source in sources:
        derivation = blank(g)
        out.append(
            f"{e} prov:wasDerivedFrom {source} ;\n  prov:qualifiedDerivation {derivation} .\n"
            f"{derivation} a prov:Derivation ;\n  prov:entity {source} ;\n"
            f"  prov:hadActivity {run} .\n"
        )


def generations(
    out: list[str],
    g: str,
    outcome: Any,
    context: dict[str, Any],
    root: str,
    used: list[str],
    roles: bool = True,
    described_outputs: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Each output, generated by the run and derived from every input; a rerun's checks.
    ``described_outputs``: the outputs as :func:`describe_value` gave them when the job ended
    (else they are described now, from ``outcome.outputs``)."""
    definition = context["definition"]
    if described_outputs is None:
        described_outputs = describe_outputs(outcome.outputs)
    for field, described in described_outputs.items():
        e = iri(V.output_iri(g, field))
        role = _role(definition, "output", field)
        if roles:
            parameter(out, role, context, "output", field)
        generated(out, g, e, described, role, used, root)
        for i, member in enumerate(described.get("members", [])):
            member_entity = iri(V.output_iri(g, f"{field}.{i}"))
            out.append(f"{e} prov:hadMember {member_entity} .\n")
            generated(out, g, member_entity, member, role, used, root)
    if context.get("rerun_of"):
        out.append(f"<{g}> pg:rerunOf <{context['rerun_of']}> .\n")
        reproduced = context.get("reproduced")
        if reproduced is None:  # a forced rerun (sub(task, rerun=True)): compared here
            reproduced = {
                field: field in described_outputs and described_outputs[field]["hash"] == digest
                for field, digest in context.get("previous_outputs", {}).items()
            }
        for field, same in reproduced.items():
            out.append(f"<{V.output_iri(g, field)}> pg:reproduced {lit(bool(same))} .\n")


def describe_outputs(outputs: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each output as :func:`describe_value` gives it (files hashed now)."""
    return {field: describe_value(value) for field, value in (outputs or {}).items()}


def error(out: list[str], g: str, info: Any) -> None:
    """The error a run failed with."""
    node = blank(g)
    out.append(
        f"<{g}> pg:error {node} .\n{node} a pg:Error ;\n"
        f"  pg:errorType {string(info.type)} ;\n  pg:errorMessage {string(info.message)} ;\n"
        f"  pg:traceback {string(info.traceback)} .\n"
    )


_PLACEMENT = {  # what a worker says of where a job ran -> the property recording it
    "worker": "worker",
    "address": "workerAddress",
    "slurm_job_id": "slurmJobId",
    "slurm_state": "slurmState",
}
_USAGE = {"cpu_user": "cpuUserTime", "cpu_system": "cpuSystemTime"}


def run_core(out: list[str], job: Any, outcome: Any, g: str, root: str) -> None:
    """What a job run says about itself: task, node, job, place, status, times, workflow run,
    where it ran and what it consumed."""
    context = job.context
    ended = max(outcome.ended, outcome.started)
    out.append(
        f"<{g}> a prov:Activity, pg:JobRun ;\n"
        f"  pg:taskName {string(context['task_name'])} ;\n"
        f"  pg:nodeName {string(context['node'])} ;\n"
        f"  pg:elementIndex {lit(job.index)} ;\n"
        f'  pg:jobHash "{job.job_hash}" ;\n'
        f"  pg:outputDir {place(job.output_dir, root)} ;\n"
        f'  pg:status "{outcome.status}" ;\n'
        f"  prov:startedAtTime {stamp(outcome.started)} ;\n"
        f"  prov:endedAtTime {stamp(ended)} ;\n"
        f"  pg:partOf <{V.run_iri(context['workflow_run'])}> ;\n"
        f"  pg:workerHost {string(outcome.host)} ;\n"
        f"  pg:workerPid {lit(outcome.pid)} .\n"
    )
    placement = getattr(outcome, "placement", None) or {}
    for key, prop in _PLACEMENT.items():
        if placement.get(key):
            out.append(f"<{g}> pg:{prop} {string(str(placement[key]))} .\n")
    log = placement.get("log")
    if log and os.path.exists(log):
        out.append(f"<{g}> pg:workerLog {place(log, root)} .\n")
    _consumption(out, job, outcome, g, root)


def _consumption(out: list[str], job: Any, outcome: Any, g: str, root: str) -> None:
    """What the run consumed (CPU, peak memory), its command's exit code and executable."""
    usage = getattr(outcome, "usage", None) or {}
    for key, prop in _USAGE.items():
        if key in usage:
            out.append(f"<{g}> pg:{prop} {lit(round(float(usage[key]), 6))} .\n")
    if "peak_rss" in usage:
        out.append(f"<{g}> pg:peakMemory {lit(int(usage['peak_rss']))} .\n")
    code = (outcome.outputs or {}).get("return_code") if outcome.ok else None
    if code is None and outcome.error is not None:
        code = getattr(outcome.error, "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        out.append(f"<{g}> pg:exitCode {lit(code)} .\n")
    task_cls: Any = getattr(job, "task_cls", None)
    if getattr(task_cls, "_kind", "") == "shell" and getattr(job, "environment", None) is None:
        _executable(out, g, task_cls._executable_of(getattr(job, "inputs", None) or {}), root)


def _executable(out: list[str], g: str, words: list[str], root: str) -> None:
    """The program a native shell command ran: its resolved path and content hash."""
    found = shutil.which(words[0]) if words else None
    if found is None:
        return
    path = os.path.realpath(found)
    try:
        digest = file_content_digest(path).hex()
    except (HashingError, OSError):
        return
    exe = _content(digest)
    out.append(f"<{g}> pg:executable {exe} .\n")
    entity(out, exe, {"kind": "File", "hash": digest, "location": path}, root)
    out.append(f"{exe} a pg:Executable .\n")
