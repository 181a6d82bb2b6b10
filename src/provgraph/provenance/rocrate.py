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
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

from .. import __version__
from ..exceptions import ProvenanceError
from . import vocab as V
from ._crate_parts import DATA_MODES, WORKFLOW_RUN_TERMS, Crate, CrateOptions, G, P, ref, refs, tool
from ._crate_runs import orcid as check_orcid
from ._crate_runs import organize
from ._facts import Facts

__all__ = ["DATA_MODES", "PROFILES", "read_crate", "write_crate"]

RO_CRATE = "https://w3id.org/ro/crate/1.1"
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

# ---------------------------------------------------------------------------------------------
# the crate as a whole


def crate_metadata(facts: Facts, options: CrateOptions, records: str) -> Crate:
    """Build every entity of the crate from the selected facts."""
    crate = Crate(facts, options)
    submissions = sorted(
        facts.of_type(G("Submission")), key=lambda s: (str(facts.one(s, P("startedAtTime"), "")), s)
    )
    if not submissions:
        raise ProvenanceError("export ro-crate: the selection holds no submission")
    main: str | None = None
    for submission in submissions:  # the main workflow: the latest submission's first task
        plans = [p for top in organize(crate, submission) if (p := facts.plan(top)) is not None]
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
            "about": refs(submissions),
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


def _prune_parts(crate: Crate) -> None:
    """A workflow's ``hasPart`` names the tools it orchestrated in this crate: those some
    action ran (a lineage or a failed run may not have run every step)."""
    ran = set()
    for entity in crate.entities.values():
        if entity.get("@type") == "CreateAction" and "instrument" in entity:
            ran.add(entity["instrument"]["@id"])
    for entity in crate.entities.values():
        if isinstance(entity.get("@type"), list) and "ComputationalWorkflow" in entity["@type"]:
            entity["hasPart"] = [p for p in entity.get("hasPart", []) if p["@id"] in ran]


def _readme(crate: Crate) -> str:
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


def _document(crate: Crate, title: str) -> dict[str, Any]:
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
        "conformsTo": refs(PROFILES),
        "mainEntity": ref(crate.main),
        "author": ref(crate.agent),
        "hasPart": refs(crate.parts),
        "mentions": refs(crate.mentions),
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
        check_orcid(orcid)
    target = Path(path)
    _check_target(target)
    quads = crate_quads(store, run, output)
    from .store import _writable

    hashes = FileHashCache(store.cache_dir / ".file-hashes" if _writable(store.cache_dir) else None)
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


def _refuse_unfaithful(crate: Crate) -> None:
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
    """The selection's records, as TriG."""
    import pyoxigraph as ox

    prefixes = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}
    return ox.serialize(quads, format=ox.RdfFormat.TRIG, prefixes=prefixes) or b""


def _write(target: Path, crate: Crate, document: dict[str, Any], records: str, trig: bytes) -> None:
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


def _title(crate: Crate) -> str:
    return str(crate.entities[crate.main]["name"])


def _fill(folder: Path, crate: Crate, document: dict[str, Any], records: str, trig: bytes) -> None:
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
