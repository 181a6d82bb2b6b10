"""Workflow Run RO-Crate export: crates of real recorded runs, checked by the community's tools.

The crates are validated by ``rocrate-validator`` (profile provenance-run-crate-0.5, offline),
opened with ro-crate-py and ``runcrate report``; these live in their own venv made by
``scripts/setup-rocrate-validator.sh`` (they pin packages older than provgraph's), and the tests
that need them skip without it (never under CI, which runs that script). The workflow-run
competency questions are answered again on the crate's own JSON-LD.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import pyoxigraph as ox
import pytest

from conftest import skip_unless_ci
from prov_tasks import Copy, Counting, CountWords
from provgraph import (
    ContainerError,
    File,
    ProvenanceError,
    ProvenanceStore,
    Submitter,
    python,
    read_crate,
    workflow,
)
from provgraph.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("ROCRATE_VENV", ROOT / ".rcvenv"))
SETUP = "run scripts/setup-rocrate-validator.sh to install roc-validator and ro-crate-py"
PREFIXES = """
PREFIX schema: <http://schema.org/>
PREFIX wfrun: <https://w3id.org/ro/terms/workflow-run#>
PREFIX bioschemas: <https://bioschemas.org/>
PREFIX cw: <https://bioschemas.org/ComputationalWorkflow#>
PREFIX pg: <https://w3id.org/provgraph/ns#>
"""


@workflow.define
def Study(files: list[File]) -> int:
    copy = workflow.add(Copy().split(in_file=files).combine("in_file"), name="copy")
    return workflow.add(Counting(files=copy.out_file), name="counting").out


@python.define
def Strict(n: int) -> int:
    if n > 5:
        raise ValueError(f"{n} words is too many")
    return n


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A nested workflow over three files, the same again (reused), and a split with a failure."""
    base = tmp_path_factory.mktemp("rocrate")
    files = []
    for i, words in enumerate(["one two", "three four five", "six"]):
        path = base / f"text{i}.txt"
        path.write_text(words + "\n")
        files.append(path)
    cache = base / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        first = sub(Study(files=files))
        again = sub(Study(files=files))
        strict = sub(Strict().split(n=[2, 9]))
    assert first.outputs.out == 6 and again.stats["executed"] == 0 and strict.errored
    store = ProvenanceStore(cache)
    submissions = [
        str(s)
        for (s,) in store.query(
            "SELECT ?s WHERE { ?s a pg:Submission ; prov:startedAtTime ?t } ORDER BY ?t"
        )
    ]
    assert len(submissions) == 3
    return {"cache": cache, "store": store, "files": files, "submissions": submissions}


def _tool(name: str) -> Path:
    tool = VENV / "bin" / name
    if not tool.exists():
        skip_unless_ci(f"no {tool}; {SETUP}")
    return tool


def _validator(crate: Path, *options: str) -> list[str]:
    """The rocrate-validator command for ``crate``, offline, profile provenance-run-crate-0.5."""
    profile = ["-p", "provenance-run-crate-0.5", "--no-paging", "--skip-availability-check"]
    offline = ["validate", "--offline", "--cache-path", str(VENV / "http-cache")]
    return [str(_tool("rocrate-validator")), *offline, *profile, *options, str(crate)]


def validate(crate: Path, severity: str = "required") -> dict[str, Any]:
    """rocrate-validator's JSON report for ``crate`` (profile provenance-run-crate-0.5)."""
    report = crate.parent / f"{crate.name}.{severity}.report.json"
    done = subprocess.run(
        _validator(crate, "-l", severity, "-f", "json", "-o", str(report)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def _failures(report: dict[str, Any], severity: str = "REQUIRED") -> list[str]:
    return [i["message"] for i in report["issues"] if i["severity"] == severity]


def _metadata(crate: Path) -> dict[str, dict[str, Any]]:
    document = json.loads((crate / "ro-crate-metadata.json").read_text())
    return {entity["@id"]: entity for entity in document["@graph"]}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("data", ["copy", "link", "none"])
def test_submission_crate_passes_the_profile(
    recorded: dict[str, Any], tmp_path: Path, data: str
) -> None:
    """Each data mode gives a crate with no REQUIRED failure of provenance-run-crate-0.5; the
    RECOMMENDED ones are counted (printed) and none is a broken reference."""
    crate = recorded["store"].export(
        tmp_path / "crate", "ro-crate", run=recorded["submissions"][0], data=data
    )
    report = validate(crate)
    assert report["passed"], _failures(report)
    assert report["statistics"]["total_checks_by_severity"]["REQUIRED"] > 50
    recommended = validate(crate, "recommended")
    assert _failures(recommended) == []
    advice = _failures(recommended, "RECOMMENDED")
    print(f"data={data}: {len(advice)} RECOMMENDED checks not met: {sorted(set(advice))}")
    assert not [a for a in advice if "described in the same @graph" in a]


def test_crate_describes_the_run(recorded: dict[str, Any], tmp_path: Path) -> None:
    """The workflow, its steps and connections, the engine run, one action per run, each value
    an example of its parameter; files copied with their sha256 and size."""
    store = recorded["store"]
    crate = store.export(
        tmp_path / "crate", "ro-crate", run=recorded["submissions"][0], data="copy"
    )
    entities = _metadata(crate)
    root = entities["./"]
    main = entities[root["mainEntity"]["@id"]]
    assert main["name"] == "Study"
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"} <= set(main["@type"])
    assert (crate / main["@id"]).read_text().startswith("def Study(")
    steps = {entities[s["@id"]]["name"] for s in _as_list(main["step"])}
    assert steps == {"copy", "counting"}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entity in entities.values():
        for kind in _as_list(entity.get("@type")):
            by_type.setdefault(kind, []).append(entity)
    (organize,) = by_type["OrganizeAction"]
    assert organize["@id"] == recorded["submissions"][0]
    assert organize["actionStatus"] == "http://schema.org/CompletedActionStatus"
    jobs = [a for a in by_type["CreateAction"] if "pg:jobHash" in a]
    workflows = [a for a in by_type["CreateAction"] if "pg:jobHash" not in a]
    assert len(jobs) == 7 and len(workflows) == 2  # Study and the nested Counting
    assert {c["name"] for c in by_type["ControlAction"]} == {
        f"Orchestration of step {s}" for s in ("copy", "counting", "count", "total")
    }
    assert len(by_type["ParameterConnection"]) == 4
    for job in jobs:
        assert job["actionStatus"] == "http://schema.org/CompletedActionStatus"
        assert datetime.datetime.fromisoformat(job["endTime"]) >= datetime.datetime.fromisoformat(
            job["startTime"]
        )
        assert {entities[u["@id"]]["unitCode"] for u in _as_list(job["resourceUsage"])}
    inputs = {Path(f).read_bytes(): f for f in recorded["files"]}
    copied = [e for e in by_type["File"] if e["@id"].startswith("data/")]
    assert len(copied) == 6  # three inputs, three copies (same bytes, another name)
    for entity in copied:
        body = (crate / entity["@id"]).read_bytes()
        assert entity["sha256"] == hashlib.sha256(body).hexdigest()
        assert int(entity["contentSize"]) == len(body) and body in inputs
        assert entity["@id"] in {p["@id"] for p in root["hasPart"]}
    for value in by_type["PropertyValue"]:
        for parameter in _as_list(value.get("exampleOfWork", [])):
            assert "FormalParameter" in _as_list(entities[parameter["@id"]]["@type"])
    assert (crate / "provenance" / "records.trig").stat().st_size > 0


def test_crate_of_a_reused_submission_includes_the_runs_it_reused(
    recorded: dict[str, Any], tmp_path: Path
) -> None:
    """The second submission ran nothing: its crate shows the earlier runs it reused."""
    crate = recorded["store"].export(
        tmp_path / "crate", "ro-crate", run=recorded["submissions"][1], data="none"
    )
    assert validate(crate)["passed"]
    entities = _metadata(crate)
    organize = entities[recorded["submissions"][1]]
    (reused,) = _as_list(organize["pg:reused"])
    assert entities[reused["@id"]]["@type"] == "CreateAction"
    assert reused in _as_list(organize["result"])


def test_failed_runs_say_why(recorded: dict[str, Any], tmp_path: Path) -> None:
    """A split task with one failing element: a workflow of one step, the failure recorded."""
    crate = recorded["store"].export(tmp_path / "crate", "ro-crate", run=recorded["submissions"][2])
    assert validate(crate)["passed"]
    entities = _metadata(crate)
    organize = entities[recorded["submissions"][2]]
    assert organize["actionStatus"] == "http://schema.org/FailedActionStatus"
    failed = [
        e
        for e in entities.values()
        if e.get("@type") == "CreateAction"
        and e.get("actionStatus") == "http://schema.org/FailedActionStatus"
        and "pg:jobHash" in e
    ]
    assert [e["error"] for e in failed] == ["9 words is too many"]


def test_lineage_crate(recorded: dict[str, Any], tmp_path: Path) -> None:
    """The lineage of one result: its producing run and the workflow it was a step of; its files
    copied by default."""
    store = recorded["store"]
    (copied,) = [
        Path(str(w).removeprefix("file://"))
        for (w,) in store.query(
            "SELECT ?w WHERE { ?e prov:wasGeneratedBy/pg:taskName 'Copy' ; prov:atLocation ?w ; "
            "pg:contentHash ?h . ?i pg:contentHash ?h ; prov:atLocation ?src . "
            "FILTER(STRENDS(STR(?src), 'text1.txt')) }"
        )
    ]
    crate = store.export(tmp_path / "crate", "ro-crate", output=copied)
    assert validate(crate)["passed"]
    entities = _metadata(crate)
    jobs = [e for e in entities.values() if e.get("@type") == "CreateAction" and "pg:jobHash" in e]
    assert [j["pg:nodeName"] for j in jobs] == ["Study/copy"]
    names = {e["name"] for e in entities.values() if str(e["@id"]).startswith("data/")}
    assert {"text1.txt", "out_file.txt"} <= names


def test_zipped_crate(recorded: dict[str, Any], tmp_path: Path) -> None:
    """``-o x.zip`` writes the same crate zipped; it validates and reads back."""
    target = recorded["store"].export(tmp_path / "crate.zip", "ro-crate")
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
    assert {"ro-crate-metadata.json", "provenance/records.trig", "README.md"} <= names
    done = subprocess.run(
        _validator(target),
        capture_output=True,
        text=True,
        timeout=600,
    )  # (its JSON report fails on zips: the text report and exit status say it all)
    assert done.returncode == 0 and "is a valid provenance-run-crate-0.5" in done.stdout
    assert len(read_crate(target)) > 100


RO_CRATE_PY = """
import json, sys
from rocrate.rocrate import ROCrate
crate = ROCrate(sys.argv[1])
kinds = {}
for e in crate.get_entities():
    for t in (e.type if isinstance(e.type, list) else [e.type]):
        kinds[t] = kinds.get(t, 0) + 1
print(json.dumps({"main": crate.mainEntity.id, "main_type": crate.mainEntity.type,
                  "kinds": kinds, "data": sorted(d.id for d in crate.data_entities)}))
"""


def test_ro_crate_py_and_runcrate_read_it(recorded: dict[str, Any], tmp_path: Path) -> None:
    """ro-crate-py finds the workflow, the actions and the files; runcrate lists the actions."""
    crate = recorded["store"].export(
        tmp_path / "crate", "ro-crate", run=recorded["submissions"][0], data="copy"
    )
    done = subprocess.run(
        [str(_tool("python")), "-c", RO_CRATE_PY, str(crate)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    seen = json.loads(done.stdout)
    assert seen["main"].startswith("definitions/Study-")
    assert "ComputationalWorkflow" in seen["main_type"]
    assert seen["kinds"]["CreateAction"] == 9 and seen["kinds"]["OrganizeAction"] == 1
    assert len([d for d in seen["data"] if d.startswith("data/")]) == 6
    report = subprocess.run(
        [str(_tool("runcrate")), "report", str(crate)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert report.count("action: ") == 9 and "out_file.txt" in report


def test_competency_questions_on_the_crate(recorded: dict[str, Any], tmp_path: Path) -> None:
    """The eleven workflow-run questions of docs/questions.md, answered on the crate alone."""
    crate = recorded["store"].export(tmp_path / "crate", "ro-crate", data="none")
    graph = read_crate(crate)

    def ask(sparql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in graph.query(PREFIXES + sparql)]

    (study_run,) = [
        r
        for (r,) in ask(
            """SELECT ?run WHERE { ?run a schema:CreateAction ; schema:instrument ?wf .
                 ?wf a bioschemas:ComputationalWorkflow ; schema:name "Study" .
                 FILTER NOT EXISTS { ?run pg:partOf ?parent . ?parent a schema:CreateAction } }"""
        )
    ]
    steps_of = """?control a schema:ControlAction ; schema:instrument/schema:name ?step ;
                  schema:object ?job . ?job pg:jobHash ?hash ; pg:partOf* ?run ."""
    # CQ1 containers: this run ran natively
    assert ask("SELECT ?i WHERE { ?job wfrun:containerImage ?i }") == []
    # CQ2 memory and CPU
    ((cpu, peak),) = ask(
        f"""SELECT (SUM(?cpu) AS ?c) (MAX(?mem) AS ?m) WHERE {{ VALUES ?run {{ <{study_run}> }}
             {steps_of}
             ?job wfrun:resourceUsage ?u . ?u schema:value ?v ; schema:propertyID ?p .
             BIND(IF(CONTAINS(STR(?p), "Time"), ?v, 0) AS ?cpu)
             BIND(IF(CONTAINS(STR(?p), "Memory"), ?v, 0) AS ?mem) }}"""
    )
    assert float(cpu) >= 0 and int(peak) > 0
    # CQ3 files each step read, with their parameter
    read = ask(
        f"""SELECT DISTINCT ?step ?field WHERE {{ VALUES ?run {{ <{study_run}> }} {steps_of}
             ?job schema:object ?f ; schema:instrument/cw:input ?p .
             ?f a schema:MediaObject ; schema:exampleOfWork ?p . ?p schema:name ?field }}"""
    )
    assert {(str(s), str(f)) for s, f in read} == {("copy", "in_file"), ("count", "in_file")}
    # CQ4 environment of each step
    envs = ask(
        f"""SELECT DISTINCT ?step ?python WHERE {{ VALUES ?run {{ <{study_run}> }} {steps_of}
             ?job wfrun:environment [ schema:name "python_version" ; schema:value ?python ] }}"""
    )
    assert {str(s) for s, _ in envs} == {"copy", "count", "total"}
    # CQ5 time of each step; CQ6 of the whole workflow
    spans = ask(
        f"""SELECT ?step ?start ?end WHERE {{ VALUES ?run {{ <{study_run}> }} {steps_of}
             ?job schema:startTime ?start ; schema:endTime ?end }}"""
    )
    assert {str(s) for s, _, _ in spans} == {"copy", "count", "total"}
    ((start, end),) = ask(
        f"SELECT ?s ?e WHERE {{ <{study_run}> schema:startTime ?s ; schema:endTime ?e }}"
    )
    assert datetime.datetime.fromisoformat(str(end)) >= datetime.datetime.fromisoformat(str(start))
    # CQ7 did it succeed; which job failed, and why
    ((status,),) = ask(f"SELECT ?s WHERE {{ <{study_run}> schema:actionStatus ?s }}")
    assert str(status) == "http://schema.org/CompletedActionStatus"
    ((message,),) = ask(
        """SELECT ?m WHERE { ?job a schema:CreateAction ; pg:jobHash ?h ;
             schema:actionStatus "http://schema.org/FailedActionStatus" ; schema:error ?m }"""
    )
    assert str(message) == "9 words is too many"
    # CQ8 the inputs and outputs of the workflow run
    inputs = ask(
        f"""SELECT ?name WHERE {{ <{study_run}> schema:object ?f .
             ?f a schema:MediaObject ; schema:name ?name }}"""
    )
    assert sorted(str(n) for (n,) in inputs) == ["text0.txt", "text1.txt", "text2.txt"]
    ((field, value),) = ask(
        f"""SELECT ?field ?value WHERE {{ <{study_run}> schema:result ?o .
             ?o schema:value ?value ; schema:exampleOfWork/schema:name ?field }}"""
    )
    assert (str(field), int(value)) == ("out", 6)
    # CQ9 which tool (and version) ran each step, under which engine
    tools = ask(
        f"""SELECT DISTINCT ?step ?tool ?version ?engine WHERE {{ VALUES ?run {{ <{study_run}> }}
             {steps_of} ?job schema:instrument ?t . ?t schema:name ?tool ; schema:version ?version .
             ?org a schema:OrganizeAction ; schema:object ?control ;
                  schema:instrument/schema:version ?engine }}"""
    )
    assert {(str(s), str(t)) for s, t, _, _ in tools} == {
        ("copy", "Copy"),
        ("count", "CountWords"),
        ("total", "Total"),
    }
    assert all(len(str(v)) == 8 and str(e) for _, _, v, e in tools)
    # CQ10 which step fed which parameter
    links = ask(
        """SELECT ?from ?to ?param WHERE { ?wf schema:name "Counting" ; schema:step ?target .
             ?target schema:name ?to ; wfrun:connection ?c .
             ?c wfrun:targetParameter/schema:name ?param .
             OPTIONAL { ?c pg:sourceStep/schema:name ?from } }"""
    )
    assert {(str(f) if f else None, str(t), str(p)) for f, t, p in links} == {
        (None, "count", "in_file"),
        ("count", "total", "counts"),
    }
    # CQ11 who ran it, and what the second submission reused
    people = ask(f"SELECT DISTINCT ?name WHERE {{ <{study_run}> schema:agent/schema:name ?name }}")
    assert len(people) == 1 and str(people[0][0])
    reused = ask("SELECT ?r WHERE { ?org a schema:OrganizeAction ; pg:reused ?r }")
    assert [r for (r,) in reused] == [study_run]


def test_agent_and_licence(
    recorded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who ran it and the crate's licence come from options or the environment; a malformed
    ORCID is refused before anything is written."""
    monkeypatch.setenv("PROVGRAPH_AGENT_NAME", "Ana Silva")
    monkeypatch.setenv("PROVGRAPH_AGENT_ORCID", "0000-0002-1825-0097")
    crate = recorded["store"].export(
        tmp_path / "crate",
        "ro-crate",
        run=recorded["submissions"][0],
        data="none",
        license="https://spdx.org/licenses/CC-BY-4.0",
    )
    entities = _metadata(crate)
    person = entities["https://orcid.org/0000-0002-1825-0097"]
    assert person["name"] == "Ana Silva" and person["identifier"].startswith("urn:provgraph:user:")
    assert entities["./"]["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    assert entities[recorded["submissions"][0]]["agent"] == {"@id": person["@id"]}
    with pytest.raises(ProvenanceError, match=r"agent_orcid .*'12345'.* expected 0000-"):
        recorded["store"].export(tmp_path / "other", "ro-crate", agent_orcid="12345")
    assert not (tmp_path / "other").exists()


def test_bad_requests_leave_nothing(recorded: dict[str, Any], tmp_path: Path) -> None:
    """An unknown run, a non-empty target, a bad data mode, crate options on another format,
    or missing files with data='copy': a clear error, and no crate, not even a partial one."""
    store = recorded["store"]
    target = tmp_path / "crate"
    with pytest.raises(ProvenanceError, match="no recorded submission or workflow run"):
        store.export(target, "ro-crate", run="urn:uuid:00000000-0000-4000-8000-000000000000")
    with pytest.raises(ProvenanceError, match=r"data='everything'; expected one of"):
        store.export(target, "ro-crate", data="everything")
    with pytest.raises(ProvenanceError, match=r"\['data'\] are options of the ro-crate format"):
        store.export(tmp_path / "x.ttl", "turtle", data="copy")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ProvenanceError, match="exists and is not an empty folder"):
        store.export(busy, "ro-crate")
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_missing_files_with_copy(tmp_path: Path) -> None:
    """A crate that would lack a file it claims to hold is refused, naming the file."""
    source = tmp_path / "input.txt"
    source.write_text("a b c\n")
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(CountWords(in_file=source))
    source.unlink()
    store = ProvenanceStore(cache)
    with pytest.raises(ProvenanceError, match=r"1 file\(s\) of the selection are missing: .*input"):
        store.export(tmp_path / "crate", "ro-crate", data="copy")
    assert not (tmp_path / "crate").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".crate")] == []
    described = store.export(tmp_path / "crate", "ro-crate", data="none")
    entities = _metadata(described)
    (file,) = [e for e in entities.values() if e.get("@type") == "File" and "pg:location" in e]
    assert file["name"] == "input.txt" and "sha256" not in file and file["contentSize"] == "6"


def test_export_command(recorded: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    """``provgraph export CACHE --format ro-crate -o DIR`` with the crate's options."""
    target = tmp_path / "crate"
    code = cli(
        [
            "export",
            str(recorded["cache"]),
            "--run",
            recorded["submissions"][0],
            "--format",
            "ro-crate",
            "--data",
            "none",
            "--agent-name",
            "Ana",
            "-o",
            str(target),
        ]
    )
    assert code == 0 and f"wrote {target}" in capsys.readouterr().out
    people = [e for e in _metadata(target).values() if e.get("@type") == "Person"]
    assert [p["name"] for p in people] == ["Ana"]
    assert not [e for e in _metadata(target).values() if str(e["@id"]).startswith("data/")]
    code = cli(["export", str(recorded["cache"]), "--format", "trig", "--data", "copy", "-o", "x"])
    assert code != 0 and "options of --format ro-crate" in capsys.readouterr().err


def test_container_image_with_its_digest(tmp_path: Path) -> None:
    """A job run in a container names its image, with the digest it ran, as a ContainerImage."""
    from provgraph.environments import Podman

    image = Podman("localhost/localtest:latest")
    try:
        image.describe()
    except ContainerError as err:
        skip_unless_ci(f"{err} (run scripts/setup-containers.sh as root to prepare it)")
    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Copy(in_file=source), environment=image)
    crate = ProvenanceStore(cache).export(tmp_path / "crate", "ro-crate", data="copy")
    assert validate(crate)["passed"]
    entities = _metadata(crate)
    (job,) = [e for e in entities.values() if "pg:jobHash" in e]
    container = entities[job["containerImage"]["@id"]]
    assert container["@type"] == "ContainerImage"
    assert container["additionalType"] == {
        "@id": "https://w3id.org/ro/terms/workflow-run#DockerImage"
    }
    assert (container["registry"], container["name"], container["tag"]) == (
        "localhost",
        "localtest",
        "latest",
    )
    assert len(container["sha256"]) == 64


# -- regressions found by review: each failed before its fix -----------------------------------


@python.define
def Inc(x: int) -> int:
    return x + 1


@workflow.define
def Inner(x: int) -> int:
    return workflow.add(Inc(x=x), name="inc").out


@workflow.define
def TwoInners(x: int) -> int:
    one = workflow.add(Inner(x=x), name="one")
    return workflow.add(Inner(x=one.out), name="two").out


@workflow.define
def SameTwice(x: int) -> int:
    first = workflow.add(Inc(x=x), name="first")
    return workflow.add(Inc(x=first.out), name="second").out


def _named(entities: dict[str, dict[str, Any]], refs: Any) -> list[str]:
    return sorted(entities[r["@id"]]["name"] for r in _as_list(refs))


def test_same_nested_workflow_in_two_steps(tmp_path: Path) -> None:
    """Each step's ControlAction holds the run of its own node, not both."""
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        assert sub(TwoInners(x=1)).outputs.out == 3
    crate = ProvenanceStore(cache).export(tmp_path / "crate", "ro-crate", data="none")
    assert validate(crate)["passed"]
    entities = _metadata(crate)
    controls = {
        e["name"]: _named(entities, e["object"])
        for e in entities.values()
        if e.get("@type") == "ControlAction"
        and e["name"] in ("Orchestration of step one", "Orchestration of step two")
    }
    assert controls == {
        "Orchestration of step one": ["Run of TwoInners/one"],
        "Orchestration of step two": ["Run of TwoInners/two"],
    }


def test_partly_reused_submission(tmp_path: Path) -> None:
    """Jobs a workflow took from the cache are that workflow's steps, not top-level runs, and
    the submitted workflow is the main entity."""
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(SameTwice(x=1))
        second = sub(TwoInners(x=1))  # both of its Inc jobs ran in SameTwice already
    assert second.stats["reused"] == 2
    store = ProvenanceStore(cache)
    (_, submission) = [
        str(s)
        for (s,) in store.query(
            "SELECT ?s WHERE { ?s a pg:Submission ; prov:startedAtTime ?t } ORDER BY ?t"
        )
    ]
    crate = store.export(tmp_path / "crate", "ro-crate", run=submission, data="none")
    assert validate(crate)["passed"]
    entities = _metadata(crate)
    assert entities[entities["./"]["mainEntity"]["@id"]]["name"] == "TwoInners"
    organize = entities[submission]
    assert _named(entities, organize["result"]) == ["Run of TwoInners"]
    workflows = [
        e["name"] for e in entities.values() if "ComputationalWorkflow" in _as_list(e["@type"])
    ]
    assert sorted(workflows) == ["Inner", "SameTwice", "TwoInners"]  # SameTwice made the jobs
    (first,) = [
        e
        for e in entities.values()
        if e.get("@type") == "OrganizeAction" and e["@id"] != submission
    ]
    assert _named(entities, first["result"]) == ["Run of SameTwice"]


def test_run_selection_of_a_workflow_run(recorded: dict[str, Any], tmp_path: Path) -> None:
    """``run=`` a workflow run (not its submission) gives a crate of that run."""
    store = recorded["store"]
    ((study,),) = list(
        store.query(
            "SELECT ?w WHERE { ?w a pg:WorkflowRun ; "
            "prov:qualifiedAssociation/prov:hadPlan/rdfs:label 'Study' } LIMIT 1"
        )
    )
    crate = store.export(tmp_path / "crate", "ro-crate", run=str(study), data="none")
    assert validate(crate)["passed"]
    entities = _metadata(crate)
    assert entities[str(study)]["@type"] == "CreateAction"
    # its place in the submission stays whole: the chain of pg:partOf reaches the submission
    graph = read_crate(crate)
    chained = graph.query(
        PREFIXES + "ASK { ?job pg:jobHash ?h ; pg:partOf+ ?sub . ?sub a schema:OrganizeAction }"
    )
    assert chained.askAnswer


def test_special_file_names_and_changed_files(tmp_path: Path) -> None:
    """Names with spaces, %, # are percent-encoded in @id and kept on disk; a file changed
    since its run is refused with data='copy' and described without new hashes otherwise."""
    names = ["with space.txt", "pct%41.txt", "hash#1.txt"]
    sources = []
    for name in names:
        path = tmp_path / name
        path.write_text(f"{name}\n")
        sources.append(path)
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(CountWords().split(in_file=sources))
    store = ProvenanceStore(cache)
    crate = store.export(tmp_path / "crate", "ro-crate", data="copy")
    assert validate(crate)["passed"]
    entities = _metadata(crate)
    copied = {e["name"]: e["@id"] for e in entities.values() if str(e["@id"]).startswith("data/")}
    assert set(copied) == set(names)
    for name, identifier in copied.items():
        assert (crate / urllib.parse.unquote(identifier)).read_text() == f"{name}\n"
    graph = read_crate(crate)
    inputs = graph.query(
        PREFIXES
        + "SELECT ?f WHERE { ?job pg:jobHash ?h ; schema:object ?f . ?f a schema:MediaObject }"
    )
    assert len(list(inputs)) == 3  # none lost by JSON-LD parsing
    assert oct((crate).stat().st_mode & 0o777) != oct(
        0o700
    )  # readable by others, as the umask says
    sources[0].write_text("changed after the run\n")
    with pytest.raises(ProvenanceError, match=r"1 file\(s\) changed since their run"):
        store.export(tmp_path / "again", "ro-crate", data="copy")
    linked = _metadata(store.export(tmp_path / "linked", "ro-crate", data="link"))
    (changed,) = [e for e in linked.values() if e.get("pg:changedSinceRun")]
    assert changed["name"] == "with space.txt" and "sha256" not in changed


def test_crates_are_the_same_from_either_backend(recorded: dict[str, Any], tmp_path: Path) -> None:
    """The memory and Oxigraph backends give the same crate, but for its date."""
    cache = recorded["cache"]
    submission = recorded["submissions"][0]
    texts = []
    for backend in ("oxigraph", "memory"):
        crate = ProvenanceStore(cache, backend=backend).export(
            tmp_path / backend, "ro-crate", run=submission, data="none"
        )
        document = json.loads((crate / "ro-crate-metadata.json").read_text())
        for entity in document["@graph"]:
            entity.pop("datePublished", None)
        quads = list(
            ox.parse(path=str(crate / "provenance" / "records.trig"), format=ox.RdfFormat.TRIG)
        )
        graphs = sorted({str(q.graph_name) for q in quads})
        texts.append((json.dumps(document), len(quads), graphs))
    assert texts[0] == texts[1]  # (the records' blank nodes are named by each backend its way)
