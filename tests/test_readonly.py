"""Read-only caches (issue 12): a lab's cache reused but never written; a store over a cache
the user cannot write; one clear error for an unwritable cache_dir. As root, the child runs as
the unprivileged user 'nobody' (root could write anywhere); otherwise the lab cache is made
read-only with chmod."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import skip_unless_ci
from prov_tasks import Study, make_inputs
from provgraph import ProvenanceStore, Submitter, python, workflow

TESTS = str(Path(__file__).parent)
KEY = "a lab's shared key"


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A lab cache with one Study run in it, in a folder another user can read."""
    monkeypatch.setenv("PROVGRAPH_KEY", KEY)
    root = Path(tempfile.mkdtemp(prefix="provgraph-ro-"))
    root.chmod(0o755)
    inputs = make_inputs(root / "inputs")
    cache = root / "lab"
    with Submitter(cache_dir=cache, progress=False) as sub:
        assert sub(Study(files=inputs)).stats["executed"] == 7
    ProvenanceStore(cache)  # indexed while writable
    for path in [root, *root.rglob("*")]:  # readable by all
        path.chmod(0o755 if path.is_dir() else 0o644)
    mine = root / "mine"
    mine.mkdir(mode=0o777)
    mine.chmod(0o777)
    try:
        yield {"root": root, "inputs": root / "inputs", "cache": cache, "mine": mine}
    finally:
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def _as_reader(lab: dict[str, Path], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a user who cannot write the lab cache."""
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            skip_unless_ci("no setpriv to run as another user (util-linux)")
        prefix = [str(setpriv), "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        for path in [lab["cache"], *lab["cache"].rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    env = {**os.environ, "PROVGRAPH_KEY": KEY, "HOME": str(lab["mine"])}
    script = f"import sys\nsys.path.insert(0, {TESTS!r})\n" + code
    return subprocess.run(
        [*prefix, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=lab["mine"],
        timeout=300,
    )


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_results_are_reused_from_a_readonly_cache(lab: dict[str, Path]) -> None:
    """readonly_caches: nothing runs, nothing is written there, and the runs reused from it
    are in the user's own store with their workflow runs."""
    before = _snapshot(lab["cache"])
    code = f"""
import os
from provgraph import ProvenanceStore, Submitter
from prov_tasks import Copy, CountWords, Study, make_inputs
from pathlib import Path
from rdflib import URIRef
pg = lambda name: URIRef("https://w3id.org/provgraph/ns#" + name)
assert not os.access({str(lab["cache"])!r}, os.W_OK), "the lab cache must not be writable"
inputs = sorted(Path({str(lab["inputs"])!r}).glob("*.txt"))
with Submitter(cache_dir="own", readonly_caches=[{str(lab["cache"])!r}], progress=False) as sub:
    result = sub(Study(files=inputs))
    copies = sub(Copy().split(in_file=inputs))
    counted = sub(CountWords(in_file=copies.outputs.out_file[0]))  # (a run of a nested workflow)
print("STATS", result.stats["executed"], result.stats["reused"], result.outputs.out)
print("COPIES", copies.stats["executed"], copies.stats["reused"])
store = ProvenanceStore("own")
count = "SELECT (COUNT(?r) AS ?n) WHERE {{ ?r a ?kind }}"
jobs = next(iter(store.query(count, kind=pg("JobRun"))))[0]
workflows = next(iter(store.query(count, kind=pg("WorkflowRun"))))[0]
dangling = store.query(
    "SELECT ?a WHERE {{ ?a pg:partOf ?b FILTER NOT EXISTS {{ ?b a prov:Activity }} }}"
)
print("RUNS", jobs, workflows, len(list(dangling)))
print("STATUSES", *sorted(r["status"] for r in store.runs()))
print("COUNTED", counted.stats["reused"])
unended = "SELECT (COUNT(?w) AS ?n) WHERE {{ ?w a pg:WorkflowRun " + (
    "FILTER NOT EXISTS {{ ?w prov:endedAtTime ?e }} }}"
)
print("UNENDED", next(iter(store.query(unended)))[0])
"""
    done = _as_reader(lab, code)
    assert done.returncode == 0, done.stderr
    assert "STATS 0 1 6" in done.stdout  # the whole workflow, reused
    assert "COPIES 0 3" in done.stdout  # its Copy jobs, each reused
    # in the user's own store: the three Copy runs, the CountWords run, and the workflow runs
    # they and the reused workflow are part of (the lab's, imported, and this user's own), and
    # nothing dangles
    runs = done.stdout.split("RUNS ")[1].split()
    assert runs[0] == "4" and int(runs[1]) >= 2 and runs[2] == "0"
    # the lab's submission, imported, ended as it did there (not "running" for ever)
    statuses = done.stdout.split("STATUSES ")[1].split("\n")[0].split()
    assert statuses == ["succeeded"] * 4
    # every workflow run imported has its end, also one imported in a later submission
    assert "COUNTED 1" in done.stdout and "UNENDED 0" in done.stdout, done.stdout
    assert _snapshot(lab["cache"]) == before


def test_a_store_over_an_unwritable_cache_answers(lab: dict[str, Path]) -> None:
    """Queries and show work on a cache the user cannot write (no lock files needed)."""
    code = f"""
from provgraph import ProvenanceStore
store = ProvenanceStore({str(lab["cache"])!r})
print("RUNS", next(iter(store.query("SELECT (COUNT(?r) AS ?n) WHERE {{ ?r a pg:JobRun }}")))[0])
"""
    done = _as_reader(lab, code)
    assert done.returncode == 0, done.stderr
    assert "RUNS 7" in done.stdout
    shown = _as_reader(
        lab, f"from provgraph.cli import main\nmain(['show', {str(lab['cache'])!r}])"
    )
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "CountWords" in shown.stdout


def test_an_unwritable_cache_dir_is_one_clear_error(lab: dict[str, Path]) -> None:
    """Submitter(cache_dir=<not yours>) raises one CacheError saying what to do."""
    code = f"""
from provgraph import Submitter, CacheError
try:
    Submitter(cache_dir={str(lab["cache"])!r}, progress=False)
except CacheError as err:
    print("ERROR", err)
"""
    done = _as_reader(lab, code)
    assert done.returncode == 0, done.stderr
    assert "is not writable by you" in done.stdout and "readonly_caches" in done.stdout


def test_a_cache_whose_records_folder_is_not_yours_is_one_clear_error(
    lab: dict[str, Path],
) -> None:
    """A cache folder you may write whose ``.provenance`` you may not (another user's, or a
    read-only mount): one CacheError naming that folder, before anything runs (before, a
    raw OSError from the journal, once jobs were prepared)."""
    lab["cache"].chmod(0o777)  # the jobs' folder is writable, the records' is not
    if os.geteuid() != 0:  # (no other user to be: the records folder made read-only instead)
        from provgraph import CacheError, Submitter

        (lab["cache"] / ".provenance").chmod(0o555)
        with pytest.raises(CacheError, match=r"records folder .*\.provenance"):
            Submitter(cache_dir=lab["cache"], progress=False)
        return
    code = f"""
from provgraph import Submitter, CacheError
from prov_tasks import CountWords
try:
    with Submitter(cache_dir={str(lab["cache"])!r}, progress=False) as sub:
        sub(CountWords(in_file={str(next(lab["inputs"].glob("*.txt")))!r}))
except CacheError as err:
    print("ERROR", err)
"""
    done = _as_reader(lab, code)
    assert done.returncode == 0, done.stderr
    assert "records folder" in done.stdout and ".provenance" in done.stdout, done.stdout


@python.define
def AddTwo(a: int) -> int:
    return a + 2


@python.define
def Stop(a: int) -> int:
    raise KeyboardInterrupt


@workflow.define
def TwoStep(x: int) -> int:
    return workflow.add(AddTwo(a=x), name="add").out


@workflow.define
def AddThenStop(x: int) -> int:
    y = workflow.add(AddTwo(a=x), name="add").out
    return workflow.add(Stop(a=y), name="stop").out


def _lab_of_two_workflow_runs(tmp_path: Path) -> tuple[Path, Path]:
    """A lab cache holding one submission of two TwoStep workflow runs, and my cache's path."""
    lab, mine = tmp_path / "lab", tmp_path / "mine"
    with Submitter(cache_dir=lab, progress=False) as sub:
        sub(TwoStep().split(x=[1, 2]))
    return lab, mine


def _unended_workflow_runs(cache: Path) -> list[Any]:
    return list(
        ProvenanceStore(cache).query(
            "SELECT ?w WHERE { ?j a pg:JobRun ; pg:partOf ?w . "
            "FILTER NOT EXISTS { ?w prov:endedAtTime ?e } }"
        )
    )


def test_runs_imported_in_later_submissions_get_their_ends_too(tmp_path: Path) -> None:
    """Two workflow runs of one lab submission, imported by two submissions of mine: each has
    its end in my store (before, only those imported with the submission's first import)."""
    lab, mine = _lab_of_two_workflow_runs(tmp_path)
    for a in (1, 2):
        with Submitter(cache_dir=mine, readonly_caches=[lab], progress=False) as sub:
            assert sub(AddTwo(a=a)).stats["reused"] == 1
    assert _unended_workflow_runs(mine) == []


def test_an_interrupted_submission_still_copies_the_ends_of_runs_it_imported(
    tmp_path: Path,
) -> None:
    """A submission that reused a lab's job, then was interrupted: the lab's runs it imported
    have their ends all the same (before, they were copied only at a submission's normal end,
    and a later reuse never copied them)."""
    lab, mine = _lab_of_two_workflow_runs(tmp_path)
    interrupted = Submitter(cache_dir=mine, readonly_caches=[lab], progress=False)
    with pytest.raises(KeyboardInterrupt), interrupted:
        interrupted(AddThenStop(x=1))
    assert _unended_workflow_runs(mine) == []
