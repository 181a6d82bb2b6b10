"""How two recorded runs differ: code, inputs, environment and outputs."""

from __future__ import annotations

from typing import Any

from .query import job_run, output_hashes
from .why import _changed_inputs, _run_info

__all__ = ["diff_runs"]


def _packages(store: Any, run: str) -> tuple[str | None, dict[str, str]]:
    import rdflib

    rows = list(
        store.query(
            "SELECT DISTINCT ?env ?name ?version WHERE { ?run prov:used ?env . "
            "?env a pg:Environment . OPTIONAL { ?env pg:package [ pg:name ?name ; "
            "pg:version ?version ] } }",
            run=rdflib.URIRef(run),
        )
    )
    env = str(rows[0][0]) if rows else None
    return env, {str(n): str(v) for _, n, v in rows if n is not None}


def _container(store: Any, run: str) -> dict[str, str] | None:
    """The container a shell job's command ran in (runtime, image, digest), if any."""
    import rdflib

    rows = list(
        store.query(
            "SELECT ?runtime ?image ?digest WHERE { ?run prov:used ?env . "
            "?env a pg:ContainerEnvironment ; pg:containerRuntime ?runtime ; "
            "pg:containerImage ?image ; pg:containerDigest ?digest }",
            run=rdflib.URIRef(run),
        )
    )
    if not rows:
        return None
    runtime, image, digest = rows[0]
    return {"runtime": str(runtime), "image": str(image), "digest": str(digest)}


def diff_runs(store: Any, first: str, second: str) -> dict[str, Any]:
    """The differences between two job runs, as plain data (JSON-ready)."""
    a, b = job_run(store, first), job_run(store, second)
    info_a, info_b = _run_info(store, a), _run_info(store, b)
    env_a, pkgs_a = _packages(store, a)
    env_b, pkgs_b = _packages(store, b)
    outs_a, outs_b = output_hashes(store, a), output_hashes(store, b)
    box_a, box_b = _container(store, a), _container(store, b)
    return {
        "runs": [a, b],
        "code": {
            "changed": info_a["definition"] != info_b["definition"],
            "definitions": [info_a["definition"], info_b["definition"]],
        },
        "inputs": {
            field: {"before": old, "after": new}
            for field, (old, new) in sorted(
                _changed_inputs(info_a["inputs"], info_b["inputs"]).items()
            )
        },
        "environment": {
            "changed": env_a != env_b,
            "added": {n: v for n, v in sorted(pkgs_b.items()) if n not in pkgs_a},
            "removed": {n: v for n, v in sorted(pkgs_a.items()) if n not in pkgs_b},
            "changed_versions": {
                n: [pkgs_a[n], pkgs_b[n]]
                for n in sorted(set(pkgs_a) & set(pkgs_b))
                if pkgs_a[n] != pkgs_b[n]
            },
            "container": {"changed": box_a != box_b, "before": box_a, "after": box_b},
        },
        "outputs": {
            field: [outs_a.get(field), outs_b.get(field)]
            for field in sorted(set(outs_a) | set(outs_b))
            if outs_a.get(field) != outs_b.get(field)
        },
    }


def diff_text(report: dict[str, Any]) -> str:
    """The differences as readable lines."""
    lines = [f"{report['runs'][0]}\n  vs {report['runs'][1]}"]
    code = report["code"]
    lines.append("code: " + ("changed" if code["changed"] else "same"))
    lines.append("inputs: " + ("same" if not report["inputs"] else "changed"))
    for field, change in report["inputs"].items():
        before = (change["before"] or {}).get("hash")
        after = (change["after"] or {}).get("hash")
        lines.append(f"  {field}: {before} -> {after}")
    env = report["environment"]
    lines.append("environment: " + ("changed" if env["changed"] else "same"))
    for name, version in env["added"].items():
        lines.append(f"  + {name} {version}")
    for name, version in env["removed"].items():
        lines.append(f"  - {name} {version}")
    for name, (old, new) in env["changed_versions"].items():
        lines.append(f"  ~ {name} {old} -> {new}")
    box = env["container"]
    if box["changed"]:

        def show(c: dict[str, str] | None) -> str:
            return f"{c['runtime']} {c['image']} {c['digest']}" if c else "native"

        lines.append(f"  container: {show(box['before'])} -> {show(box['after'])}")
    lines.append("outputs: " + ("same" if not report["outputs"] else "changed"))
    for field, (old, new) in report["outputs"].items():
        lines.append(f"  {field}: {old} -> {new}")
    return "\n".join(lines)
