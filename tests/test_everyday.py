"""Everyday tools (issue 16, part): ``provgraph runs`` and ``provgraph show`` of a submission,
a workflow run, a failure; on real recorded runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rdflib

from provgraph import (
    ProvenanceError,
    ProvenanceStore,
    SpecError,
    Submitter,
    python,
    shell,
    workflow,
)
from provgraph.cli import main as cli

Complain = shell.define("sh -c <script:str>", name="Complain")


@python.define
def Half(x: int) -> int:
    if x % 2:
        raise ValueError(f"{x} is odd")
    return x // 2


@python.define
def Plus(a: int, b: int) -> int:
    return a + b


@workflow.define
def Chain(x: int) -> int:
    half = workflow.add(Half(x=x), name="half")
    return workflow.add(Plus(a=half.out, b=1), name="plus").out


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("everyday") / "cache"
    with Submitter(cache_dir=folder, progress=False) as sub:
        sub(Chain().split(x=[2, 3]))  # one element fails, its downstream job is skipped
        sub(Chain().split(x=[2, 4]))  # element 2 reused whole, element 4's two jobs run
        sub(Complain(script="echo out; echo bad news >&2; exit 3"))
    return folder


def test_runs_lists_submissions_newest_first(cache: Path) -> None:
    rows = ProvenanceStore(cache).runs()
    assert [r["task"] for r in rows] == ["Complain", "Chain", "Chain"]
    complain, second, first = rows
    assert (first["status"], first["executed"], first["failed"], first["skipped"]) == (
        "partial",
        2,  # the failed job counts as failed, its downstream job as skipped
        1,
        1,
    )
    # element 2's whole workflow comes from the cache: one reused job, as Result.stats says
    assert (second["status"], second["executed"], second["reused"]) == ("succeeded", 2, 1)
    assert complain["status"] == "failed" and complain["failed"] == 1
    assert all(r["run"].startswith("urn:uuid:") and r["seconds"] >= 0 for r in rows)
    assert [r["run"] for r in ProvenanceStore(cache).runs(limit=1)] == [complain["run"]]
    with pytest.raises(ProvenanceError, match=r"limit=0; expected a positive integer"):
        ProvenanceStore(cache).runs(limit=0)


def test_runs_command(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["runs", str(cache)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "started",
        "took",
        "task",
        "status",
        "ran",
        "reused",
        "failed",
        "skipped",
        "run",
    ]
    assert "Complain" in table[2] and "(3 rows)" in table[-1]
    assert cli(["runs", str(cache), "--limit", "2", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == ["Complain", "Chain"]


def test_show_a_failed_shell_job(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The error, its exit code, the stderr tail and where the logs are."""
    (complain, *_) = ProvenanceStore(cache).runs()
    assert cli(["show", str(cache), complain["run"]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"submission {complain['run']}")
    assert "error:    CommandError (exit code 3)" in out and "bad news" in out
    logs = [line.split(":", 1)[1].strip() for line in out.splitlines() if "  log:" in line]
    assert {Path(p).name for p in logs} >= {"stderr.txt", "stdout.txt"}
    assert all(Path(p).is_file() for p in logs)
    assert "bad news" in (Path(logs[0]).parent / "stderr.txt").read_text()


def test_show_a_workflow_run_with_a_python_failure(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ProvenanceStore(cache)
    ((run,),) = list(
        store.query(
            "SELECT ?w WHERE { ?w a pg:WorkflowRun ; pg:status 'failed' ; "
            "prov:qualifiedAssociation/prov:hadPlan/rdfs:label 'Chain' }"
        )
    )
    assert cli(["show", str(cache), str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"workflow run {run}")
    assert "error:    ValueError" in out and "3 is odd" in out
    assert "traceback (last lines):" in out


def test_show_a_workflow_or_split_directory(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The directory ``provgraph run`` prints for a workflow or a split names its run."""
    done = [d for d in cache.glob("Chain-*") if (d / "_result.pkl").exists()]
    assert done
    for directory in done:
        assert cli(["show", str(cache), f"{directory}/"]) == 0  # (as a shell completes it)
        out = capsys.readouterr().out
        assert out.startswith("workflow run urn:uuid:")
        assert "Half" in out or "half" in out


# -- dry runs ------------------------------------------------------------------------------------


@python.define
def Listing(n: int) -> list[int]:
    return list(range(n))


@workflow.define
def Fan(n: int) -> list[int]:
    items = workflow.add(Listing(n=n), name="items")
    return workflow.add(Half().split(x=items.out), name="halves").out


def _snapshot(root: Path) -> list[tuple[str, int]]:
    if not root.exists():
        return []
    return sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.mark.parametrize("worker", ["serial", "cf"])
def test_dry_run_plans_and_writes_nothing(tmp_path: Path, worker: str) -> None:
    """Which jobs would run, which would be reused, which wait for a job that would run; the
    cache (results, records, index, journal) is left exactly as it was."""
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, worker=worker, progress=False) as sub:
        sub(Chain().split(x=[2]))  # element 2 is in the cache, element 4 is not
        before = _snapshot(cache)
        plan = sub(Chain().split(x=[2, 4]), dry_run=True)
        assert _snapshot(cache) == before
        assert plan.counts == {"run": 1, "reuse": 1, "wait": 1, "error": 0}
        actions = {(j.node, j.action) for j in plan.jobs}
        assert ("Chain[1]/half", "run") in actions and ("Chain[1]/plus", "wait") in actions
        (waiting,) = [j for j in plan.jobs if j.action == "wait"]
        assert waiting.waits_for is not None and "half" in waiting.waits_for
        # a split over an output not known yet: how many jobs is not known either
        fan = sub(Fan(n=3), dry_run=True)
        assert fan.by_node == {
            "Fan/items": {"run": 1, "reuse": 0, "wait": 0, "error": 0},
            "Fan/halves": {"run": 0, "reuse": 0, "wait": 1, "error": 0},
        }
        assert _snapshot(cache) == before
        real = sub(Chain().split(x=[2, 4]))  # what the plan said
        assert real.stats["executed"] == 2 and real.stats["reused"] == 1
    store = ProvenanceStore(cache)
    assert len(store.runs()) == 2  # the dry runs left no submission behind


def test_dry_run_from_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "pipeline.py"
    script.write_text(
        "from provgraph import python\n\n"
        "@python.define\n"
        "def Twice(x: int) -> int:\n"
        "    return 2 * x\n\n"
        "job = Twice(x=21)\n"
    )
    command = [sys.executable, "-m", "provgraph", "run", f"{script}:job", "--cache-dir", "c"]
    dry = subprocess.run([*command, "--dry-run"], cwd=tmp_path, capture_output=True, text=True)
    assert dry.returncode == 0 and "nothing ran, nothing was written" in dry.stdout
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").glob("Twice-*"))
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and "out = 42" in done.stdout
    again = subprocess.run([*command, "-n"], cwd=tmp_path, capture_output=True, text=True)
    assert again.stdout.split("\n")[2].split()[:3] == ["Twice", "0", "1"]  # run 0, reuse 1


# -- forced reruns -------------------------------------------------------------------------------


@python.define
def Noisy(x: int) -> float:
    import random

    return x + random.random()


@workflow.define
def Measure(x: int) -> float:
    plus = workflow.add(Plus(a=x, b=1), name="plus")
    return workflow.add(Noisy(x=plus.out), name="noisy", rerun=True).out


REPRODUCED = """SELECT ?old ?same WHERE { ?run pg:rerunOf ?old ; pg:taskName ?task .
  ?out prov:wasGeneratedBy ?run ; pg:reproduced ?same }"""
ORIGINAL = """SELECT ?r WHERE { ?r a pg:JobRun ; pg:taskName 'Plus' .
  FILTER NOT EXISTS { ?r pg:rerunOf ?x } }"""


@pytest.mark.parametrize("worker", ["serial", "cf"])
def test_rerun_runs_again_and_says_if_it_reproduced(tmp_path: Path, worker: str) -> None:
    """``rerun=True`` runs a cached job again; the new run replaces the saved result and its
    record names the run it reran and whether each output came out the same."""
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, worker=worker, progress=False) as sub:
        first = sub(Plus(a=1, b=2))
        assert sub(Plus(a=1, b=2)).stats["reused"] == 1
        again = sub(Plus(a=1, b=2), rerun=True)
        assert again.stats == {"executed": 1, "reused": 0, "failed": 0, "skipped": 0}
        assert again.outputs.out == 3 and sub(Plus(a=1, b=2)).stats["reused"] == 1
        with pytest.raises(SpecError, match=r"rerun='yes'; expected True or False"):
            sub(Plus(a=1, b=2), rerun="yes")  # type: ignore[arg-type]
    store = ProvenanceStore(cache)
    found = store.query(REPRODUCED, task=rdflib.Literal("Plus"))
    ((old, same),) = [(str(old), same.toPython()) for old, same in found]
    ((original,),) = list(store.query(ORIGINAL))
    assert old == str(original) and same is True
    assert first.output_dir == again.output_dir


def test_rerun_of_one_node(tmp_path: Path) -> None:
    """``workflow.add(..., rerun=True)``: that node runs at every submission, the rest is
    reused; a result that changes is recorded as not reproduced."""
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        first = sub(Measure(x=1))
        second = sub(Measure(x=1))
    assert second.stats["executed"] == 1 and second.stats["reused"] == 1
    assert first.outputs.out != second.outputs.out  # random: this node was run again
    ((_, same),) = list(ProvenanceStore(cache).query(REPRODUCED, task=rdflib.Literal("Noisy")))
    assert same.toPython() is False
