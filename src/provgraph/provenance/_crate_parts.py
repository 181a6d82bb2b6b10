"""The parts of a Workflow Run RO-Crate that describe what was run and with what: the crate
being built (:class:`Crate`), task definitions as tools and workflows (steps, parameters,
connections), and the values and files runs used and made. ``rocrate.py`` assembles a crate
from these and from the actions of ``_crate_runs.py``."""

from __future__ import annotations

import hashlib
import mimetypes
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from . import vocab as V
from ._facts import Facts

DATA_MODES = ("copy", "link", "none")
WORKFLOW_RUN_TERMS = "https://w3id.org/ro/terms/workflow-run"

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


class Crate:
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


def refs(identifiers: Iterable[str]) -> list[dict[str, str]]:
    seen: list[str] = []
    for identifier in identifiers:
        if identifier not in seen:
            seen.append(identifier)
    return [ref(i) for i in seen]


def _short_hash(facts: Facts, definition: str) -> str:
    digest = str(facts.one(definition, G("definitionHash"), definition))
    return digest.rsplit(":", 1)[-1][:8]


_SMALL_FILE = 1 << 20  # below this, hashing a file again costs less than remembering its hash


def _sha256(crate: Crate, path: Path) -> str:
    """A file's sha256: large files through the cache's file-hash cache (an unchanged file is
    hashed once), small ones directly."""
    if path.stat().st_size < _SMALL_FILE:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return str(crate.options.hashes.digest(path, "sha256").hex())


def _changed(crate: Crate, path: Path, digest: str) -> bool:
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


def _parameter(crate: Crate, parameter: str) -> str:
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


def _parameters_of(crate: Crate, definition: str, direction: str) -> list[str]:
    found = [
        p
        for p in crate.facts.subjects(G("parameterOf"), definition)
        if crate.facts.one(p, G("direction")) == direction
    ]
    return [_parameter(crate, p) for p in sorted(found)]


def _language(crate: Crate, kind: str) -> str:
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


def _undescribed(crate: Crate, definition: str, name: str | None) -> str:
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


def facts_label(crate: Crate, definition: str) -> str:
    return crate.facts.label(definition, definition.rsplit(":", 1)[-1][:8])


def tool(crate: Crate, definition: str, name: str | None = None) -> str:
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
            "input": refs(_parameters_of(crate, definition, "input")),
            "output": refs(_parameters_of(crate, definition, "output")),
            "pg:definitionHash": facts.one(definition, G("definitionHash")),
            "pg:taskKind": kind,
            "pg:command": command,
        }
    )
    crate.part(path)
    return path


def as_workflow(crate: Crate, definition: str, entity: dict[str, Any]) -> None:
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
                **({"connection": refs(_connection(crate, c) for c in into)} if into else {}),
            }
        )
    entity["step"] = refs(steps)
    entity["hasPart"] = refs(tools)  # pruned to the tools that ran once all runs are in
    outward = [c for c in connections if facts.one(c, G("targetStep")) is None]
    if outward:
        entity["connection"] = refs(_connection(crate, c) for c in outward)


def _connection(crate: Crate, connection: str) -> str:
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


def value_entity(crate: Crate, entity: str, parameter: str | None) -> str:
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
                "hasPart": (parts := refs(value_entity(crate, m, None) for m in members)),
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


def _data(crate: Crate, entity: str) -> str:
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
