"""Why did this job run? The differences from the nearest earlier run of the same task.

A job runs when no earlier job had the same hash; the hash is made of the task's definition and
its inputs' content hashes. :func:`why` finds the earlier runs of the same task (same name, the
same node when there is one), picks the nearest (fewest differences, then the latest) and says
what changed: the definition (with a diff of its source or command) and each input whose content
hash differs (old and new value or file location and hash).
"""

from __future__ import annotations

import difflib
from typing import Any

import attrs

from ..exceptions import ProvenanceError
from .query import SEEN_AT

__all__ = ["Explanation", "why"]


@attrs.frozen(kw_only=True)
class Explanation:
    """What differs between a run and the nearest earlier run of its task."""

    run: str
    task: str
    earlier: str | None
    definition_changed: bool = False
    source_diff: str = ""
    inputs: dict[str, tuple[dict[str, str] | None, dict[str, str] | None]] = attrs.Factory(dict)

    def text(self) -> str:
        """A readable account."""
        if self.earlier is None:
            return (
                f"{self.task}: no earlier run of this task is recorded; it ran for the first time"
            )
        lines = [f"{self.task}: nearest earlier run {self.earlier}"]
        if self.definition_changed:
            lines.append("  the task's definition changed:")
            lines += [f"    {line}" for line in self.source_diff.splitlines()]
        for field, (old, new) in sorted(self.inputs.items()):
            members = _members_changed(old, new)
            if members:  # a list: which of its members changed
                lines.append(f"  input {field!r} changed:")
                lines += [f"    {line}" for line in members]
            else:
                lines.append(f"  input {field!r} changed: {_show(old)} -> {_show(new)}")
        if len(lines) == 1:
            lines.append(
                "  nothing recorded differs (the earlier result was removed from the cache)"
            )
        return "\n".join(lines)


def _show(item: dict[str, Any] | None) -> str:
    if item is None:
        return "(absent)"
    if "value" in item:  # (an empty or blank string, or one with spaces around: quoted)
        value = item["value"]
        shown = value if value and value.strip() == value else repr(value)
    else:
        shown = item.get("where", "")
    return f"{shown} [{item['hash']}]".strip()


def _members_changed(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """For a list of files (or of upstream outputs), the members that differ, one line each:
    ``file -> hash`` gone, come, or changed."""
    before = (old or {}).get("members") or {}
    after = (new or {}).get("members") or {}
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"{key}: {before.get(key, '(absent)')} -> {after.get(key, '(absent)')}")
    return lines


def _run_info(store: Any, run: str) -> dict[str, Any]:
    import rdflib

    iri = rdflib.URIRef(run)
    head = list(
        store.query(
            "SELECT ?task ?node ?started ?def ?text ?index WHERE { ?run pg:taskName ?task ; "
            "pg:nodeName ?node ; prov:startedAtTime ?started ; pg:elementIndex ?index ; "
            "prov:qualifiedAssociation/prov:hadPlan ?def . "
            "OPTIONAL { ?def pg:source ?text } OPTIONAL { ?def pg:command ?text } }",
            run=iri,
        )
    )
    if not head:
        raise ProvenanceError(f"no job run {run} is recorded")
    task, node, started, definition, text, index = head[0]
    # each entity used, under its role: a list's own entity (it has members), or its members
    # (an upstream output's hash is in that run's record), or the value itself
    rows: dict[str, list[dict[str, Any]]] = {}
    for field, entity, digest, where, value, whole in store.query(
        "SELECT DISTINCT ?field ?e ?hash ?where ?value ?whole WHERE { "
        "?run prov:qualifiedUsage ?u . ?u prov:entity ?e ; prov:hadRole/rdfs:label ?field . "
        "?e pg:contentHash ?hash . " + SEEN_AT + " "  # (where this run read it)
        "OPTIONAL { ?e prov:value ?value } "
        "BIND(EXISTS { ?e prov:hadMember ?member } AS ?whole) }",
        run=iri,
    ):
        item: dict[str, Any] = {"entity": str(entity), "hash": str(digest)}
        if where is not None:
            item["where"] = str(where)
        if value is not None:
            item["value"] = str(value)
        item["whole"] = bool(whole.toPython()) if whole is not None else False
        rows.setdefault(str(field), []).append(item)
    inputs = {field: _input_item(items) for field, items in rows.items()}
    return {
        "task": str(task),
        "node": str(node),
        "started": started.toPython(),
        "definition": str(definition),
        "text": str(text or ""),
        "index": int(index),
        "inputs": inputs,
    }


def _input_item(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One input, from the entities used under its role: a single value as it is; a list as
    its own entity's hash with its members by place (or hash); a list gathered from upstream
    runs recorded before lists had their own entity, as its members' hashes."""
    if len(items) == 1:
        return {k: v for k, v in items[0].items() if k not in ("entity", "whole")}
    wholes = [item for item in items if item["whole"]]
    members = {
        item.get("where", item["entity"]): item["hash"] for item in items if not item["whole"]
    }
    if wholes:
        return {"hash": wholes[0]["hash"], "members": members}
    return {"hash": ",".join(sorted(members.values())), "members": members}


def why(store: Any, job: str) -> Explanation:
    """Explain why ``job`` (a run IRI, job hash or job directory) ran instead of being reused."""
    import rdflib

    from .query import job_run

    run = job_run(store, job)
    this = _run_info(store, run)
    # earlier runs of the task, but not those of the same workflow run (a split's other
    # elements: jobs of their own, not earlier runs of this one)
    earlier = (
        "SELECT DISTINCT ?other WHERE { ?other a pg:JobRun ; pg:taskName ?task ; %s "
        "prov:startedAtTime ?t . FILTER(?t < ?started) "
        "FILTER NOT EXISTS { ?other pg:partOf ?whole . ?this pg:partOf ?whole } }"
    )
    bound = {
        "task": rdflib.Literal(this["task"]),
        "started": rdflib.Literal(this["started"]),
        "this": rdflib.URIRef(run),
    }
    candidates = [
        str(r)
        for (r,) in store.query(
            earlier % "pg:nodeName ?node ;", node=rdflib.Literal(this["node"]), **bound
        )
    ]
    if not candidates:  # the same task under another node name
        candidates = [str(r) for (r,) in store.query(earlier % "", **bound)]
    best: tuple[tuple[int, bool, float], str, dict[str, Any]] | None = None
    for other in candidates:
        info = _run_info(store, other)
        changed = _changed_inputs(info["inputs"], this["inputs"])
        # fewest differences; then the same element of a split; then the latest
        score = (
            len(changed) + (info["definition"] != this["definition"]),
            info["index"] != this["index"],
            -info["started"].timestamp(),
        )
        if best is None or score < best[0]:
            best = (score, other, info)
    if best is None:
        return Explanation(run=run, task=this["task"], earlier=None)
    _, earlier, info = best
    definition_changed = info["definition"] != this["definition"]
    diff = ""
    if definition_changed:
        diff = "\n".join(
            difflib.unified_diff(
                info["text"].splitlines(), this["text"].splitlines(), "before", "now", lineterm=""
            )
        )
    return Explanation(
        run=run,
        task=this["task"],
        earlier=earlier,
        definition_changed=definition_changed,
        source_diff=diff,
        inputs=_changed_inputs(info["inputs"], this["inputs"]),
    )


def _changed_inputs(
    old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]
) -> dict[str, tuple[dict[str, str] | None, dict[str, str] | None]]:
    fields = set(old) | set(new)
    return {
        f: (old.get(f), new.get(f))
        for f in fields
        if (old.get(f) or {}).get("hash") != (new.get(f) or {}).get("hash")
    }
