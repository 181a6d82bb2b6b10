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
            lines.append(f"  input {field!r} changed: {_show(old)} -> {_show(new)}")
        if len(lines) == 1:
            lines.append(
                "  nothing recorded differs (the earlier result was removed from the cache)"
            )
        return "\n".join(lines)


def _show(item: dict[str, str] | None) -> str:
    if item is None:
        return "(absent)"
    shown = item.get("value") or item.get("where", "")
    return f"{shown} [{item['hash']}]".strip()


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
    inputs: dict[str, dict[str, str]] = {}
    for field, digest, where, value in store.query(
        "SELECT DISTINCT ?field ?hash ?where ?value WHERE { ?run prov:qualifiedUsage ?u . "
        "?u prov:entity ?e ; prov:hadRole/rdfs:label ?field . ?e pg:contentHash ?hash . "
        "OPTIONAL { ?e prov:atLocation ?where } OPTIONAL { ?e prov:value ?value } }",
        run=iri,
    ):
        item = {"hash": str(digest)}
        if where is not None:
            item["where"] = str(where)
        if value is not None:
            item["value"] = str(value)
        key = str(field)
        if key in inputs:  # a combined input: several upstream outputs under one role
            inputs[key] = {"hash": ",".join(sorted([inputs[key]["hash"], item["hash"]]))}
        else:
            inputs[key] = item
    return {
        "task": str(task),
        "node": str(node),
        "started": started.toPython(),
        "definition": str(definition),
        "text": str(text or ""),
        "index": int(index),
        "inputs": inputs,
    }


def why(store: Any, job: str) -> Explanation:
    """Explain why ``job`` (a run IRI, job hash or job directory) ran instead of being reused."""
    import rdflib

    from .query import job_run

    run = job_run(store, job)
    this = _run_info(store, run)
    candidates = [
        str(r)
        for (r,) in store.query(
            "SELECT DISTINCT ?other WHERE { ?other a pg:JobRun ; pg:taskName ?task ; "
            "pg:nodeName ?node ; prov:startedAtTime ?t . FILTER(?t < ?started) }",
            task=rdflib.Literal(this["task"]),
            node=rdflib.Literal(this["node"]),
            started=rdflib.Literal(this["started"]),
        )
    ]
    if not candidates:  # the same task under another node name
        candidates = [
            str(r)
            for (r,) in store.query(
                "SELECT DISTINCT ?other WHERE { ?other a pg:JobRun ; pg:taskName ?task ; "
                "prov:startedAtTime ?t . FILTER(?t < ?started) }",
                task=rdflib.Literal(this["task"]),
                started=rdflib.Literal(this["started"]),
            )
        ]
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
