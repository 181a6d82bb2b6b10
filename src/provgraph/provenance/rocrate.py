"""Workflow Run RO-Crate export: a selection of the store as a Provenance Run Crate 0.5.

The crate is a folder (or a zip of one) with ``ro-crate-metadata.json``, in RO-Crate 1.1 with
the Workflow Run terms, describing the selection the PROV way round: the submission is the
engine's ``OrganizeAction``, each workflow run and job run a ``CreateAction`` (with the inputs
it used as ``object``, what it generated as ``result``, each value ``exampleOfWork`` its
``FormalParameter``), each step of a workflow run a ``ControlAction``. Task definitions are the
tools (their source or command line is a file of the crate), workflow definitions are
``ComputationalWorkflow``s with ``HowToStep``s and ``ParameterConnection``s. Actions, parameters,
steps and values keep the IRIs the store names them by, so a crate and the store can be queried
together; provgraph's own facts that RO-Crate has no term for (``pg:jobHash``, ``pg:reused``,
``pg:rerunOf``...) are kept under the ``pg:`` prefix. The TriG records of the selection come
along in ``provenance/records.trig``. See docs/exports.md and docs/design/provenance.md.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import mimetypes
import os
import re
import shutil
import tempfile
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from .. import __version__
from ..exceptions import ProvenanceError
from . import vocab as V
from ._facts import Facts

__all__ = ["DATA_MODES", "PROFILES", "read_crate", "write_crate"]

DATA_MODES = ("copy", "link", "none")
RO_CRATE = "https://w3id.org/ro/crate/1.1"
WORKFLOW_RUN_TERMS = "https://w3id.org/ro/terms/workflow-run"
PROFILES = {  # the profiles a crate conforms to: IRI -> (name, version)
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
CONTEXT = [f"{RO_CRATE}/context", f"{WORKFLOW_RUN_TERMS}/context", {"pg": V.PG}]
_CONTEXT_FILES = {  # the published contexts, shipped so that a crate can be read offline
    f"{RO_CRATE}/context": "ro-crate-1.1.jsonld",
    f"{WORKFLOW_RUN_TERMS}/context": "workflow-run.jsonld",
    WORKFLOW_RUN_TERMS: "workflow-run.jsonld",
}
_NO_LICENSE = "#no-licence-chosen"
_COMPLETED = "http://schema.org/CompletedActionStatus"
_FAILED = "http://schema.org/FailedActionStatus"
_UNITS = {  # resource usage recorded per job run: property -> (name, QUDT unit)
    "cpuUserTime": ("CPU time in user mode", "https://qudt.org/vocab/unit/SEC"),
    "cpuSystemTime": ("CPU time in system mode", "https://qudt.org/vocab/unit/SEC"),
    "peakMemory": ("peak resident memory", "https://qudt.org/vocab/unit/BYTE"),
}
_ENVIRONMENT = {  # environment facts written as PropertyValues of each action's environment
    "pythonVersion": "python_version",
    "platform": "platform",
    "hostname": "hostname",
    "cpuCount": "cpu_count",
}
_RUN_FACTS = (
    "jobHash",
    "nodeName",
    "workflowNode",
    "taskName",
    "status",
    "worker",
    "workerHost",
    "elementIndex",
)
_LINKS = ("reused", "rerunOf", "reproduced", "partOf")
_SIMPLE_TYPES = {
    "int": "Integer",
    "float": "Float",
    "str": "Text",
    "bool": "Boolean",
    "File": "File",
    "Directory": "Dataset",
}


def P(name: str) -> str:
    return V.PROV + name


def G(name: str) -> str:
    return V.PG + name


@attrs.frozen(kw_only=True)
class CrateOptions:
    """What the caller chose: data handling, who ran it, the licence of the crate."""

    data: str = attrs.field(default="copy", validator=attrs.validators.in_(DATA_MODES))
    agent_name: str | None = None
    agent_orcid: str | None = None
    license: str | None = None
    name: str | None = None
    hashes: Any = None  # the FileHashCache sha256 digests go through


@attrs.define
class _Placement:
    """A file or folder the crate holds a copy of."""

    source: Path
    target: str  # relative to the crate's root


class _Crate:
    """The crate being built: its entities by ``@id`` and the files to copy into it."""

    def __init__(self, facts: Facts, options: CrateOptions) -> None:
        self.facts = facts
        self.options = options
        self.entities: dict[str, dict[str, Any]] = {}
        self.parts: list[str] = []  # data entities, for the root's hasPart
        self.mentions: list[str] = []  # actions, for the root's mentions
        self.copies: list[_Placement] = []
        self.texts: dict[str, str] = {}  # files generated for the crate: path -> text
        self.missing: list[str] = []  # files data="copy" cannot copy
        self.changed: list[str] = []  # files whose bytes are no longer those the run saw
        self._tools: dict[str, str] = {}
        self.main = ""  # the main workflow's @id
        self.agent = ""  # the person's @id

    def add(self, entity: dict[str, Any]) -> dict[str, Any]:
        """Add an entity, or merge its properties into the one with the same ``@id``."""
        known = self.entities.get(entity["@id"])
        if known is None:
            self.entities[entity["@id"]] = entity
            return entity
        for key, value in entity.items():
            if key not in known:
                known[key] = value
            elif isinstance(known[key], list) and isinstance(value, list):
                known[key].extend(v for v in value if v not in known[key])
        return known

    def part(self, identifier: str) -> None:
        if identifier not in self.parts:
            self.parts.append(identifier)


def ref(identifier: str) -> dict[str, str]:
    return {"@id": identifier}


def _refs(identifiers: Iterable[str]) -> list[dict[str, str]]:
    seen: list[str] = []
    for identifier in identifiers:
        if identifier not in seen:
            seen.append(identifier)
    return [ref(i) for i in seen]


def _short_hash(facts: Facts, definition: str) -> str:
    digest = str(facts.one(definition, G("definitionHash"), definition))
    return digest.rsplit(":", 1)[-1][:8]


_SMALL_FILE = 1 << 20  # below this, hashing a file again costs less than remembering its hash


def _sha256(crate: _Crate, path: Path) -> str:
    """A file's sha256: large files through the cache's file-hash cache (an unchanged file is
    hashed once), small ones directly."""
    if path.stat().st_size < _SMALL_FILE:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return str(crate.options.hashes.digest(path, "sha256").hex())


def _changed(crate: _Crate, path: Path, digest: str) -> bool:
    """Whether a file's bytes differ from the content hash its run recorded."""
    if not digest or not path.is_file():
        return False
    try:
        return bool(crate.options.hashes.digest(path).hex() != digest)
    except OSError:
        return True


def _media_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def _path_of(location: str) -> Path:
    return Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))


# ---------------------------------------------------------------------------------------------
# definitions: tools, workflows, steps, parameters, connections


def _parameter(crate: _Crate, parameter: str) -> str:
    facts = crate.facts
    declared = str(facts.one(parameter, G("parameterType"), ""))
    simple = declared.rsplit(".", 1)[-1]
    inner = declared.removesuffix("]").rsplit(".", 1)[-1]
    if simple in _SIMPLE_TYPES:
        kind = _SIMPLE_TYPES[simple]
    elif declared.split("[", 1)[0] in ("list", "tuple", "typing.List") and inner in _SIMPLE_TYPES:
        kind = "Collection" if inner in ("File", "Directory") else "PropertyValue"
    else:
        kind = "PropertyValue"
    crate.add(
        {
            "@id": parameter,
            "@type": "FormalParameter",
            "conformsTo": ref("https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"),
            "name": facts.label(parameter, parameter.rsplit(":", 1)[-1]),
            "additionalType": kind,
            "valueRequired": True,
            "pg:direction": facts.one(parameter, G("direction")),
            "pg:parameterType": declared or None,
        }
    )
    return parameter


def _parameters_of(crate: _Crate, definition: str, direction: str) -> list[str]:
    found = [
        p
        for p in crate.facts.subjects(G("parameterOf"), definition)
        if crate.facts.one(p, G("direction")) == direction
    ]
    return [_parameter(crate, p) for p in sorted(found)]


def _language(crate: _Crate, kind: str) -> str:
    if kind == "shell":
        return crate.add(
            {
                "@id": "#shell",
                "@type": "ComputerLanguage",
                "name": "Shell command line",
                "alternateName": "sh",
                "url": ref("https://pubs.opengroup.org/onlinepubs/9799919799/utilities/sh.html"),
                "version": "POSIX.1-2024",
            }
        )["@id"]
    return crate.add(
        {
            "@id": "#python",
            "@type": "ComputerLanguage",
            "name": "Python",
            "url": ref("https://www.python.org/"),
            "version": "3",
        }
    )["@id"]


def _undescribed(crate: _Crate, definition: str, name: str | None) -> str:
    """A task definition the selection names (as a workflow step) but no record describes:
    named only, by its IRI; it ran nowhere in the crate."""
    crate._tools[definition] = definition
    crate.add(
        {
            "@id": definition,
            "@type": "SoftwareApplication",
            "name": name or facts_label(crate, definition),
            "description": "a task definition no record of this crate describes: it did not run",
            "identifier": definition,
        }
    )
    return definition


def facts_label(crate: _Crate, definition: str) -> str:
    return crate.facts.label(definition, definition.rsplit(":", 1)[-1][:8])


def tool(crate: _Crate, definition: str, name: str | None = None) -> str:
    """The crate entity of a task definition: a file holding its source (or its command line),
    typed ``SoftwareSourceCode``, with its parameters. A workflow that ran in the crate becomes
    a ``ComputationalWorkflow`` when its run is described (:func:`_orchestrate`)."""
    if definition in crate._tools:
        return crate._tools[definition]
    facts = crate.facts
    if facts.one(definition, G("source")) is None and facts.one(definition, G("command")) is None:
        return _undescribed(crate, definition, name)
    label = facts.label(definition, "task")
    kind = str(
        facts.one(
            definition, G("taskKind"), "shell" if facts.one(definition, G("command")) else "python"
        )
    )
    source = facts.one(definition, G("source"))
    command = facts.one(definition, G("command"))
    suffix, text = (".py", str(source)) if source is not None else (".txt", str(command or ""))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    path = f"definitions/{safe}-{_short_hash(facts, definition)}{suffix}"
    crate._tools[definition] = path
    crate.texts[path] = text + "\n"
    crate.add(
        {
            "@id": path,
            "@type": ["File", "SoftwareSourceCode"],
            "name": label,
            "description": f"provgraph {kind} task definition {label}",
            "identifier": definition,
            "version": _short_hash(facts, definition),
            "encodingFormat": "text/x-python" if suffix == ".py" else "text/plain",
            "programmingLanguage": ref(_language(crate, "shell" if command else "python")),
            "input": _refs(_parameters_of(crate, definition, "input")),
            "output": _refs(_parameters_of(crate, definition, "output")),
            "pg:definitionHash": facts.one(definition, G("definitionHash")),
            "pg:taskKind": kind,
            "pg:command": command,
        }
    )
    crate.part(path)
    return path


def _as_workflow(crate: _Crate, definition: str, entity: dict[str, Any]) -> None:
    """Make a tool a ``ComputationalWorkflow``: its steps, the tools they run, its connections.
    A task that is not a workflow (run split over inputs, or on its own, as a submission) is
    described as a workflow of one step, the task itself."""
    facts = crate.facts
    entity["@type"] = ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"]
    entity["conformsTo"] = ref("https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE")
    steps = facts.all(definition, G("hasStep"))
    connections = facts.all(definition, G("hasConnection"))
    if not steps:
        step = f"{definition}#step"
        crate.add(
            {
                "@id": step,
                "@type": "HowToStep",
                "name": entity["name"],
                "workExample": ref(entity["@id"]),
            }
        )
        entity["step"] = [ref(step)]
        entity["hasPart"] = [ref(entity["@id"])]
        return
    tools: list[str] = []
    for step in sorted(steps):
        runs = facts.one(step, G("stepDefinition"))
        used = tool(crate, runs, facts.label(step)) if runs is not None else None
        if used is not None:
            tools.append(used)
        into = [c for c in connections if facts.one(c, G("targetStep")) == step]
        crate.add(
            {
                "@id": step,
                "@type": "HowToStep",
                "name": facts.label(step, "step"),
                **({"workExample": ref(used)} if used is not None else {}),
                **({"connection": _refs(_connection(crate, c) for c in into)} if into else {}),
            }
        )
    entity["step"] = _refs(steps)
    entity["hasPart"] = _refs(tools)  # pruned to the tools that ran once all runs are in
    outward = [c for c in connections if facts.one(c, G("targetStep")) is None]
    if outward:
        entity["connection"] = _refs(_connection(crate, c) for c in outward)


def _connection(crate: _Crate, connection: str) -> str:
    facts = crate.facts
    entity: dict[str, Any] = {"@id": connection, "@type": "ParameterConnection"}
    source = facts.one(connection, G("sourceParameter"))
    target = facts.one(connection, G("targetParameter"))
    if source is not None:
        entity["sourceParameter"] = ref(_parameter(crate, source))
    if target is not None:
        entity["targetParameter"] = ref(_parameter(crate, target))
    for side in ("sourceStep", "targetStep"):
        step = facts.one(connection, G(side))
        if step is not None:
            entity[f"pg:{side}"] = ref(step)
    crate.add(entity)
    return connection


# ---------------------------------------------------------------------------------------------
# values and files


def _value(crate: _Crate, entity: str, parameter: str | None) -> str:
    """The crate entity of a value a run used or generated (file, folder, list, value)."""
    facts = crate.facts
    members = facts.all(entity, P("hadMember"))
    if facts.is_a(entity, G("File")) or facts.is_a(entity, G("Directory")):
        identifier = _data(crate, entity)
    elif members:
        identifier = entity
        crate.add(
            {
                "@id": entity,
                "@type": "Collection",
                "name": crate.facts.label(parameter, "values") if parameter else "values",
                "hasPart": (parts := _refs(_value(crate, m, None) for m in members)),
                "mainEntity": parts[0] if parts else None,
                "pg:contentHash": facts.one(entity, G("contentHash")),
            }
        )
        crate.mentions.append(entity)
    else:
        identifier = entity
        value = facts.one(entity, P("value"))
        crate.add(
            {
                "@id": entity,
                "@type": "PropertyValue",
                "name": crate.facts.label(parameter, "value") if parameter else "value",
                **({"value": value} if value is not None else {}),
                "pg:contentHash": facts.one(entity, G("contentHash")),
            }
        )
    if parameter is not None:
        crate.add({"@id": identifier, "exampleOfWork": [ref(_parameter(crate, parameter))]})
    return identifier


def _data(crate: _Crate, entity: str) -> str:
    """A file or folder as a data entity: copied in, linked at its location, or described."""
    facts = crate.facts
    folder = facts.is_a(entity, G("Directory"))
    location = facts.one(entity, P("atLocation"))
    digest = str(facts.one(entity, G("contentHash"), "")).rsplit(":", 1)[-1]
    path = _path_of(location) if location is not None else None
    mode = crate.options.data
    changed = path is not None and not folder and _changed(crate, path, digest)
    if mode == "copy":
        if path is None or not path.exists():
            crate.missing.append(str(path) if path is not None else entity)
            return entity
        if changed:
            crate.changed.append(str(path))
            return entity
        where = f"data/{digest[:16] or 'unhashed'}/{path.name}"
        identifier = urllib.parse.quote(where) + ("/" if folder else "")
        crate.copies.append(_Placement(path, where))
    elif mode == "link" and location is not None:
        identifier = str(location) + ("/" if folder and not str(location).endswith("/") else "")
    else:
        identifier = entity
    size = facts.one(entity, G("size"))
    name = path.name if path is not None else entity
    described: dict[str, Any] = {
        "@id": identifier,
        "@type": "Dataset" if folder else "File",
        "name": name,
        **({} if folder else {"encodingFormat": _media_type(name)}),
        "pg:contentHash": facts.one(entity, G("contentHash")),
    }
    if path is not None and not folder and path.is_file() and not changed:
        described["contentSize"] = str(path.stat().st_size)
        described["sha256"] = _sha256(crate, path)
    elif size is not None:
        described["contentSize"] = str(size)
    if changed:
        described["description"] = "changed since the run used it: its bytes are not described"
        described["pg:changedSinceRun"] = True
    if location is not None and mode != "link":
        described["pg:location"] = ref(str(location))
    crate.add(described)
    crate.part(identifier)
    return identifier


# ---------------------------------------------------------------------------------------------
# actions


def _iso(when: str) -> str:
    """A recorded time as the profiles write it: milliseconds and a ``+hh:mm`` offset."""
    try:
        moment = datetime.datetime.fromisoformat(str(when))
    except ValueError:
        return str(when)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("Z", "+00:00")


def _times(facts: Facts, run: str) -> dict[str, Any]:
    times = {}
    start, end = facts.one(run, P("startedAtTime")), facts.one(run, P("endedAtTime"))
    if start is not None:
        times["startTime"] = _iso(start)
    if end is not None:
        times["endTime"] = _iso(end)
    return times


def _status(facts: Facts, run: str) -> dict[str, Any]:
    status = facts.one(run, G("status"))
    if status is None:
        return {}
    if status == "succeeded":
        return {"actionStatus": _COMPLETED}
    messages = [str(facts.one(e, G("errorMessage"), "")) for e in facts.all(run, G("error"))]
    error = "; ".join(m for m in messages if m) or f"the run ended {status}"
    return {"actionStatus": _FAILED, "error": error}


def _pg_facts(facts: Facts, run: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in _RUN_FACTS:
        value = facts.one(run, G(name))
        if value is not None:
            found[f"pg:{name}"] = value
    for name in _LINKS:
        targets = facts.all(run, G(name))
        if name == "partOf":  # through the runs that only group a split's elements
            targets = [t for t in (_described_parent(facts, t) for t in targets) if t]
        if targets:
            found[f"pg:{name}"] = _refs(targets)
    return found


def _described_parent(facts: Facts, run: str) -> str | None:
    """The nearest run at or above ``run`` that the crate describes as an action."""
    seen: set[str] = set()
    while run and run not in seen and facts.has(run):
        seen.add(run)
        if not (facts.is_a(run, G("WorkflowRun")) and facts.plan(run) is None):
            return run
        run = facts.one(run, G("partOf"))
    return None


def _inputs_outputs(crate: _Crate, run: str) -> dict[str, Any]:
    facts = crate.facts
    usages = [
        (facts.one(u, P("entity")), facts.one(u, P("hadRole")))
        for u in facts.all(run, P("qualifiedUsage"))
    ]
    usages = sorted(  # by entity, not by usage node: blank node labels differ by backend
        (entity, role if facts.is_a(role, G("Parameter")) else None)
        for entity, role in usages
        if entity is not None
        and role != G("environmentRole")
        and not facts.is_a(entity, G("Environment"))
    )
    # the members of a list a run used are used too (and listed), but the parameter is the list's
    members = {(m, role) for entity, role in usages for m in facts.all(entity, P("hadMember"))}
    used = [
        _value(crate, entity, None if (entity, role) in members else role)
        for entity, role in usages
    ]
    made: list[str] = []
    for entity in facts.subjects(P("wasGeneratedBy"), run):
        roles = [facts.one(g, P("hadRole")) for g in facts.all(entity, P("qualifiedGeneration"))]
        role = next((r for r in roles if r is not None), None)
        made.append(_value(crate, entity, role))
    return {"object": _refs(used), "result": _refs(made)}


def _environment(crate: _Crate, run: str) -> dict[str, Any]:
    """The environment(s) a run used: PropertyValues, and the container image if any."""
    facts = crate.facts
    found: dict[str, Any] = {}
    values: list[str] = []
    for env in facts.all(run, P("used")):
        if not facts.is_a(env, G("Environment")):
            continue
        for prop, name in _ENVIRONMENT.items():
            value = facts.one(env, G(prop))
            if value is not None:
                identifier = f"{env}#{prop}"
                crate.add(
                    {"@id": identifier, "@type": "PropertyValue", "name": name, "value": value}
                )
                values.append(identifier)
        image = facts.one(env, G("containerImage"))
        if image is not None:
            found["containerImage"] = ref(_image(crate, env, str(image)))
    if values:
        found["environment"] = _refs(values)
    return found


def _image(crate: _Crate, env: str, image: str) -> str:
    facts = crate.facts
    runtime = str(facts.one(env, G("containerRuntime"), ""))
    digest = str(facts.one(env, G("containerDigest"), ""))
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    registry, _, short = name.partition("/") if "/" in name else ("docker.io", "", name)
    kind = "SIFImage" if runtime == "apptainer" else "DockerImage"
    identifier = f"{env}#image"
    crate.add(
        {
            "@id": identifier,
            "@type": "ContainerImage",
            "additionalType": ref(f"{WORKFLOW_RUN_TERMS}#{kind}"),
            "name": short if kind == "DockerImage" else image,
            "registry": registry if kind == "DockerImage" else "local file",
            **({"tag": tag} if tag else {}),
            **({"sha256": digest.removeprefix("sha256:")} if digest else {}),
            "pg:containerRuntime": runtime or None,
            "pg:containerImage": image,
        }
    )
    return identifier


def _resources(crate: _Crate, run: str) -> dict[str, Any]:
    usage: list[str] = []
    for prop, (name, unit) in _UNITS.items():
        value = crate.facts.one(run, G(prop))
        if value is None:
            continue
        identifier = f"{run}#{prop}"
        crate.add(
            {
                "@id": identifier,
                "@type": "PropertyValue",
                "propertyID": G(prop),
                "name": name,
                "value": value,
                "unitCode": unit,
            }
        )
        usage.append(identifier)
    return {"resourceUsage": _refs(usage)} if usage else {}


def _run_action(crate: _Crate, run: str) -> str:
    """A job run or workflow run as a ``CreateAction`` whose instrument is its definition."""
    facts = crate.facts
    plan = facts.plan(run)
    label = str(
        facts.one(run, G("nodeName"))
        or facts.one(run, G("workflowNode"))
        or facts.one(run, G("taskName"))
        or "task"
    )
    kind = "workflow" if facts.is_a(run, G("WorkflowRun")) else "job"
    crate.add(
        {
            "@id": run,
            "@type": "CreateAction",
            "name": f"Run of {label}",
            "description": f"provgraph {kind} run of {label}",
            **({"instrument": ref(tool(crate, plan))} if plan is not None else {}),
            "agent": ref(_person(crate, run)),
            **_times(facts, run),
            **_status(facts, run),
            **_inputs_outputs(crate, run),
            **_environment(crate, run),
            **_resources(crate, run),
            **_pg_facts(facts, run),
        }
    )
    if run not in crate.mentions:
        crate.mentions.append(run)
    return run


# ---------------------------------------------------------------------------------------------
# the run tree: submissions, workflow runs and the steps they ran


def _children(facts: Facts, run: str, seen: set[str] | None = None) -> list[str]:
    """The runs directly inside ``run`` (or reused by it), looking through the plan-less runs
    that only group the elements of a split. A job a workflow run reused is that workflow
    run's, not also its submission's (which lists it too)."""
    seen = set() if seen is None else seen
    found: list[str] = []
    reused = [
        r
        for r in facts.all(run, G("reused"))
        if facts.is_a(r, G("WorkflowRun"))
        or not [
            w
            for w in facts.subjects(G("reused"), r)
            if w != run and facts.is_a(w, G("WorkflowRun"))
        ]
    ]
    for child in [*facts.subjects(G("partOf"), run), *reused]:
        if child in seen or not facts.has(child):
            continue
        seen.add(child)
        if facts.is_a(child, G("WorkflowRun")) and facts.plan(child) is None:
            found.extend(_children(facts, child, seen))
        elif facts.is_a(child, G("JobRun")) or facts.is_a(child, G("WorkflowRun")):
            found.append(child)
    return sorted(found, key=lambda r: (str(facts.one(r, P("startedAtTime"), "")), r))


def _step_of(crate: _Crate, definition: str, run: str) -> str | None:
    """Which step of a workflow definition a run inside one of its runs ran: by its node name,
    else by the step's definition. A workflow whose structure was never recorded (its run was
    interrupted) gets its steps from the node names of the runs inside it."""
    facts = crate.facts
    steps = facts.all(definition, G("hasStep"))
    node = facts.one(run, G("nodeName")) or facts.one(run, G("workflowNode"))
    name = str(node).rsplit("/", 1)[-1] if node is not None else None
    for step in steps:
        if name is not None and facts.label(step) == name:
            return str(step)
    plan = facts.plan(run)
    for step in steps:
        if name is None and facts.one(step, G("stepDefinition")) == plan:
            return str(step)
    if steps or name is None:
        return None
    digest = str(facts.one(definition, G("definitionHash"), "")).rsplit(":", 1)[-1]
    step = V.step_iri(digest, name)
    entity: dict[str, Any] = {"@id": step, "@type": "HowToStep", "name": name}
    if plan is not None:
        entity["workExample"] = ref(tool(crate, plan))
    crate.add(entity)
    workflow = crate.entities[tool(crate, definition)]
    workflow.setdefault("step", [])
    if ref(step) not in workflow["step"]:
        workflow["step"].append(ref(step))
        if plan is not None:
            workflow.setdefault("hasPart", []).append(ref(tool(crate, plan)))
    return step


def _orchestrate(crate: _Crate, run: str) -> list[str]:
    """The run as an action, its steps as ControlActions (returned), recursively."""
    facts = crate.facts
    _run_action(crate, run)
    plan = facts.plan(run)
    if plan is None:
        return []
    definition = tool(crate, plan)
    workflow = crate.entities[definition]
    if "ComputationalWorkflow" not in workflow["@type"]:
        _as_workflow(crate, plan, workflow)
    by_step: dict[str, list[str]] = {}
    if facts.is_a(run, G("JobRun")):  # a task submitted alone
        by_step[f"{plan}#step"] = [run]
    elif facts.one(plan, G("taskKind")) != "workflow":  # a task split over inputs
        for child in _children(facts, run):
            by_step.setdefault(f"{plan}#step", []).append(child)
    else:
        for child in _children(facts, run):
            step = _step_of(crate, plan, child)
            if step is not None:
                by_step.setdefault(step, []).append(child)
    controls: list[str] = []
    for step, runs in by_step.items():
        for child in runs:
            if child == run:
                continue
            if facts.is_a(child, G("WorkflowRun")):
                controls.extend(_orchestrate(crate, child))
            else:
                _run_action(crate, child)
        controls.append(_control(crate, run, step, runs))
    action = crate.entities[run]
    if not action.get("result") and facts.one(plan, G("taskKind")) != "workflow":
        # the run of a task submitted alone or split made what its jobs made
        made = [
            r
            for child in by_step.get(f"{plan}#step", [])
            if child != run
            for r in crate.entities[child].get("result", [])
        ]
        action["result"] = made
    return controls


def _control(crate: _Crate, run: str, step: str, runs: list[str]) -> str:
    facts = crate.facts
    name = str(crate.entities.get(step, {}).get("name") or facts.label(step, "step"))
    identifier = f"{run}#control:{urllib.parse.quote(name, safe='')}"
    failed = [r for r in runs if facts.one(r, G("status")) != "succeeded"]
    starts = [s for r in runs if (s := facts.one(r, P("startedAtTime"))) is not None]
    ends = [e for r in runs if (e := facts.one(r, P("endedAtTime"))) is not None]
    problem = f"{len(failed)} of {len(runs)} runs did not succeed (or never ended)"
    crate.add(
        {
            "@id": identifier,
            "@type": "ControlAction",
            "name": f"Orchestration of step {name}",
            "instrument": ref(step),
            "object": _refs(runs),
            **({"startTime": _iso(min(starts))} if starts else {}),
            **({"endTime": _iso(max(ends))} if ends else {}),
            "actionStatus": _FAILED if failed else _COMPLETED,
            **({"error": problem} if failed else {}),
        }
    )
    return identifier


def _organize(crate: _Crate, submission: str) -> list[str]:
    """A submission as the engine's OrganizeAction; returns its top-level runs."""
    facts = crate.facts
    tops = _children(facts, submission)
    controls: list[str] = []
    for top in tops:
        controls.extend(_orchestrate(crate, top))
    crate.add(
        {
            "@id": submission,
            "@type": "OrganizeAction",
            "name": f"provgraph submission of {facts.one(submission, G('taskName'), 'a task')}",
            "instrument": ref(_engine(crate, submission, tops)),
            "agent": ref(_person(crate, submission)),
            "object": _refs(controls),
            "result": _refs(tops),
            **_times(facts, submission),
            **_status(facts, submission),
            **_pg_facts(facts, submission),
        }
    )
    crate.mentions.append(submission)
    return tops


def _software_agent(facts: Facts, run: str) -> str | None:
    agents = [
        a for a in facts.all(run, P("wasAssociatedWith")) if facts.is_a(a, P("SoftwareAgent"))
    ]
    return agents[0] if agents else None


def _engine(crate: _Crate, submission: str, tops: list[str]) -> str:
    """The provgraph that ran a submission (the agent its runs were associated with)."""
    facts = crate.facts
    engine = _software_agent(facts, submission)
    for top in tops:
        engine = engine or _software_agent(facts, top)
    engine = engine or V.agent_iri()
    label = facts.label(engine, f"provgraph {__version__}")
    crate.add(
        {
            "@id": engine,
            "@type": "SoftwareApplication",
            "name": "provgraph",
            "description": "provgraph, a dataflow engine recording W3C PROV",
            "version": label.rsplit(" ", 1)[-1],
            "url": ref("https://pypi.org/project/provgraph/"),
        }
    )
    return engine


_ORCID = re.compile(r"(https://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])")


def _orcid(value: str) -> str:
    """An ORCID as its https IRI; anything else is refused, saying what was expected."""
    match = _ORCID.fullmatch(value.strip())
    if match is None:
        raise ProvenanceError(
            f"export ro-crate: agent_orcid (or PROVGRAPH_AGENT_ORCID) {value!r} is not an ORCID; "
            "expected 0000-0002-1825-0097 or https://orcid.org/0000-0002-1825-0097"
        )
    return f"https://orcid.org/{match.group(2)}"


def _person(crate: _Crate, run: str) -> str:
    """Who ran ``run``: the person its engine acted for (login@host), or, when the exporter
    says who that is (name, ORCID), that person."""
    facts = crate.facts
    engine = _software_agent(facts, run)
    login = facts.one(engine, P("actedOnBehalfOf")) if engine is not None else None
    if login is None:
        people = facts.of_type(P("Person"))
        login = people[0] if people else V.user_iri()[0]
    options = crate.options
    identifier = _orcid(options.agent_orcid) if options.agent_orcid else str(login)
    crate.add(
        {
            "@id": identifier,
            "@type": "Person",
            "name": options.agent_name or facts.label(login, "unknown"),
            **({"identifier": [str(login)]} if identifier != login else {}),
        }
    )
    if not crate.agent:
        crate.agent = identifier
    return identifier


# ---------------------------------------------------------------------------------------------
# the crate as a whole


def crate_metadata(facts: Facts, options: CrateOptions, records: str) -> _Crate:
    """Build every entity of the crate from the selected facts."""
    crate = _Crate(facts, options)
    submissions = sorted(
        facts.of_type(G("Submission")), key=lambda s: (str(facts.one(s, P("startedAtTime"), "")), s)
    )
    if not submissions:
        raise ProvenanceError("export ro-crate: the selection holds no submission")
    main: str | None = None
    for submission in submissions:  # the main workflow: the latest submission's first task
        plans = [p for top in _organize(crate, submission) if (p := facts.plan(top)) is not None]
        if plans:
            main = tool(crate, plans[0])
    if main is None:
        raise ProvenanceError("export ro-crate: no run of the selection says what task it ran")
    crate.add(
        {
            "@id": records,
            "@type": "File",
            "name": "provenance records (W3C PROV, one named graph per run)",
            "encodingFormat": "application/trig",
            "conformsTo": ref("http://www.w3.org/TR/trig/"),
            "about": _refs(submissions),
        }
    )
    crate.add(
        {"@id": "http://www.w3.org/TR/trig/", "@type": "CreativeWork", "name": "RDF 1.1 TriG"}
    )
    crate.part(records)
    crate.main = main
    _prune_parts(crate)
    crate.texts["README.md"] = _readme(crate)
    crate.add(
        {
            "@id": "README.md",
            "@type": "File",
            "name": "README",
            "about": ref("./"),
            "encodingFormat": "text/markdown",
        }
    )
    crate.part("README.md")
    return crate


def _prune_parts(crate: _Crate) -> None:
    """A workflow's ``hasPart`` names the tools it orchestrated in this crate: those some
    action ran (a lineage or a failed run may not have run every step)."""
    ran = set()
    for entity in crate.entities.values():
        if entity.get("@type") == "CreateAction" and "instrument" in entity:
            ran.add(entity["instrument"]["@id"])
    for entity in crate.entities.values():
        if isinstance(entity.get("@type"), list) and "ComputationalWorkflow" in entity["@type"]:
            entity["hasPart"] = [p for p in entity.get("hasPart", []) if p["@id"] in ran]


def _readme(crate: _Crate) -> str:
    """A short human guide to the crate."""
    facts = crate.facts
    lines = [
        f"# provgraph run of {crate.entities[crate.main]['name']}",
        "",
        "A Workflow Run RO-Crate (Provenance Run Crate 0.5) written by provgraph "
        f"{__version__}. `ro-crate-metadata.json` describes the runs; `definitions/` holds "
        "each task's source or command line, `provenance/records.trig` the W3C PROV records.",
        "",
        "| submission | task | status | started | ended |",
        "| --- | --- | --- | --- | --- |",
    ]
    for submission in sorted(facts.of_type(G("Submission"))):
        task = facts.one(submission, G("taskName"), "")
        status = facts.one(submission, G("status"), "")
        start = facts.one(submission, P("startedAtTime"), "")
        end = facts.one(submission, P("endedAtTime"), "")
        lines.append(f"| `{submission}` | {task} | {status} | {start} | {end} |")
    return "\n".join(lines)


def _document(crate: _Crate, title: str) -> dict[str, Any]:
    options = crate.options
    license_id = options.license or _NO_LICENSE
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    root = {
        "@id": "./",
        "@type": "Dataset",
        "name": options.name or title,
        "description": f"{title}, exported by provgraph {__version__} as a Provenance Run Crate",
        "datePublished": now,
        "license": ref(license_id),
        "conformsTo": _refs(PROFILES),
        "mainEntity": ref(crate.main),
        "author": ref(crate.agent),
        "hasPart": _refs(crate.parts),
        "mentions": _refs(crate.mentions),
    }
    descriptor = {
        "@id": "ro-crate-metadata.json",
        "@type": "CreativeWork",
        "conformsTo": [ref(RO_CRATE), ref("https://w3id.org/workflowhub/workflow-ro-crate/1.0")],
        "about": ref("./"),
    }
    profiles = [
        {"@id": iri, "@type": "CreativeWork", "name": name, "version": version}
        for iri, (name, version) in PROFILES.items()
    ]
    licence = {
        "@id": license_id,
        "@type": "CreativeWork",
        "name": "no licence chosen" if license_id == _NO_LICENSE else license_id.rsplit("/", 1)[-1],
        "description": "The person exporting this crate chose no licence for it (provgraph's "
        "license= option or PROVGRAPH_CRATE_LICENSE)"
        if license_id == _NO_LICENSE
        else f"The licence of this crate: {license_id}",
    }
    entities = [_clean(e) for e in crate.entities.values()]
    return {"@context": CONTEXT, "@graph": [descriptor, root, *profiles, licence, *entities]}


def _clean(entity: dict[str, Any]) -> dict[str, Any]:
    """Drop empty properties (None, empty lists), which JSON-LD would keep as nothing anyway,
    and write a list of one value as that value, as RO-Crate 1.1 recommends."""
    return {
        k: (v[0] if isinstance(v, list) and len(v) == 1 else v)
        for k, v in entity.items()
        if v is not None and v != []
    }


def write_crate(
    store: Any,
    path: str | os.PathLike[str],
    *,
    run: str | None = None,
    output: Any = None,
    data: str | None = None,
    agent_name: str | None = None,
    agent_orcid: str | None = None,
    license: str | None = None,
    name: str | None = None,
) -> Path:
    """Write the selection as a Provenance Run Crate: a folder, or a zip file if ``path`` ends
    in ``.zip``. Nothing is left at ``path`` if the export fails."""
    from ..config import Config
    from ..hashing import FileHashCache
    from .export import crate_quads

    config = Config.from_env()
    mode = data if data is not None else ("copy" if output is not None else "link")
    if mode not in DATA_MODES:
        raise ProvenanceError(f"export ro-crate: data={mode!r}; expected one of {list(DATA_MODES)}")
    orcid = agent_orcid or config.agent_orcid
    if orcid:
        _orcid(orcid)
    target = Path(path)
    _check_target(target)
    quads = crate_quads(store, run, output)
    hashes = FileHashCache(store.cache_dir / ".file-hashes" if _writable(store) else None)
    options = CrateOptions(
        data=mode,
        agent_name=agent_name or config.agent_name,
        agent_orcid=orcid,
        license=license or config.crate_license,
        name=name,
        hashes=hashes,
    )
    records = "provenance/records.trig"
    crate = crate_metadata(Facts(quads), options, records)
    _refuse_unfaithful(crate)
    title = f"provgraph run of {_title(crate)}" if output is None else f"lineage of {output}"
    document = _document(crate, title)
    _write(target, crate, document, records, _trig(quads))
    return target


def _check_target(target: Path) -> None:
    if not target.parent.is_dir():
        raise ProvenanceError(f"export ro-crate: folder {str(target.parent)!r} does not exist")
    if target.suffix == ".zip" and target.exists():
        raise ProvenanceError(
            f"export ro-crate: {str(target)!r} already exists; give a new zip file"
        )
    if (
        target.suffix != ".zip"
        and target.exists()
        and (not target.is_dir() or any(target.iterdir()))
    ):
        raise ProvenanceError(
            f"export ro-crate: target {str(target)!r} exists and is not an empty folder"
        )


def _refuse_unfaithful(crate: _Crate) -> None:
    """A crate that says it holds the files its runs used must hold exactly those bytes."""
    if crate.missing:
        listed = ", ".join(sorted(set(crate.missing))[:5])
        raise ProvenanceError(
            f"export ro-crate: data='copy' but {len(set(crate.missing))} file(s) of the selection "
            f"are missing: {listed}; export with data='link' or data='none' to describe them only"
        )
    if crate.changed:
        listed = ", ".join(sorted(set(crate.changed))[:5])
        raise ProvenanceError(
            f"export ro-crate: data='copy' but {len(set(crate.changed))} file(s) changed since "
            f"their run used or made them (their content hash differs): {listed}; export with "
            "data='link' or data='none' to describe them only"
        )


def _trig(quads: list[Any]) -> bytes:
    """The selection's records, in a stable order whatever the backend."""
    import pyoxigraph as ox

    prefixes = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}
    ordered = sorted(
        quads, key=lambda q: (str(q.graph_name), str(q.subject), str(q.predicate), str(q.object))
    )
    return ox.serialize(ordered, format=ox.RdfFormat.TRIG, prefixes=prefixes) or b""


def _write(
    target: Path, crate: _Crate, document: dict[str, Any], records: str, trig: bytes
) -> None:
    """Fill a scratch folder beside the target, then rename it (or its zip) into place."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    partial = target.with_name(f".{target.name}.partial")
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(scratch, 0o777 & ~mask)  # mkdtemp's 0700 would keep a shared crate private
        _fill(scratch, crate, document, records, trig)
        if target.suffix == ".zip":
            _zip(scratch, partial)
            os.replace(partial, target)
        else:
            if target.exists():
                target.rmdir()
            os.replace(scratch, target)
    except (OSError, shutil.Error) as err:
        raise ProvenanceError(f"export ro-crate: cannot write {str(target)!r}: {err}") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        partial.unlink(missing_ok=True)


def _title(crate: _Crate) -> str:
    return str(crate.entities[crate.main]["name"])


def _writable(store: Any) -> bool:
    return os.access(store.cache_dir, os.W_OK)


def _fill(folder: Path, crate: _Crate, document: dict[str, Any], records: str, trig: bytes) -> None:
    for relative, text in crate.texts.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    for placement in crate.copies:
        destination = folder / placement.target
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if placement.source.is_dir():
            shutil.copytree(placement.source, destination, symlinks=True)
        else:
            shutil.copy2(placement.source, destination)
    (folder / records).parent.mkdir(parents=True, exist_ok=True)
    (folder / records).write_bytes(trig)
    (folder / "ro-crate-metadata.json").write_text(_json(document), encoding="utf-8")


def _json(document: dict[str, Any]) -> str:
    """The metadata file: one entity per line (readable, diffable, and written by the json
    module's C encoder, which an indented dump would not use)."""
    entities = ",\n    ".join(json.dumps(e, ensure_ascii=False) for e in document["@graph"])
    context = json.dumps(document["@context"])
    return f'{{\n  "@context": {context},\n  "@graph": [\n    {entities}\n  ]\n}}\n'


def _zip(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in sorted(folder.rglob("*")):
            archive.write(item, item.relative_to(folder).as_posix())


def read_crate(path: str | os.PathLike[str]) -> Any:
    """A crate's ``ro-crate-metadata.json`` (in a folder or a zip) as an rdflib Graph, read
    offline: the RO-Crate 1.1 and Workflow Run contexts come from provgraph's own copies."""
    import rdflib

    source = Path(path)
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as archive:
            document = json.loads(archive.read("ro-crate-metadata.json").decode("utf-8"))
    else:
        folder = source.parent if source.name == "ro-crate-metadata.json" else source
        document = json.loads((folder / "ro-crate-metadata.json").read_text(encoding="utf-8"))
    document["@context"] = _local_context(document.get("@context"))
    graph = rdflib.Graph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # rdflib's own JSON-LD parser
        graph.parse(
            data=json.dumps(document), format="json-ld", base=source.resolve().as_uri() + "/"
        )
    return graph


def _local_context(context: Any) -> Any:
    here = Path(__file__).parent / "contexts"
    items = context if isinstance(context, list) else [context]
    local = []
    for item in items:
        if isinstance(item, str) and item in _CONTEXT_FILES:
            text = (here / _CONTEXT_FILES[item]).read_text(encoding="utf-8")
            local.append(json.loads(text)["@context"])
        else:
            local.append(item)
    return local
