"""The ``provgraph`` command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TASKS = """
from provgraph import python

@python.define
def AddTwo(a: int) -> int:
    return a + 2

ready = AddTwo().split(a=[1, 2])
"""


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provgraph.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_run_task_class_with_inputs(tmp_path: Path) -> None:
    """``provgraph run FILE.py:NAME -i a=3`` runs the task and prints its outputs."""
    (tmp_path / "tasks.py").write_text(TASKS)
    out = _run("run", "tasks.py:AddTwo", "-i", "a=3", "--cache-dir", "c", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "out = 5" in out.stdout and "executed 1, reused 0, failed 0" in out.stdout
    again = _run("run", "tasks.py:AddTwo", "-i", "a=3", "--cache-dir", "c", cwd=tmp_path)
    assert "executed 0, reused 1" in again.stdout


def test_run_task_instance_and_errors(tmp_path: Path) -> None:
    """A prepared instance runs as is; bad input is a one-line error with exit code 2."""
    (tmp_path / "tasks.py").write_text(TASKS)
    out = _run("run", "tasks.py:ready", "--cache-dir", "c", "--worker", "cf", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "out = [3, 4]" in out.stdout
    bad = _run("run", "tasks.py:AddTwo", "-i", 'a="x"', cwd=tmp_path)
    assert bad.returncode == 2
    assert "input 'a'" in bad.stderr and "expected int" in bad.stderr
    missing = _run("run", "tasks.py:Nope", cwd=tmp_path)
    assert missing.returncode == 2 and "Nope" in missing.stderr


WORKFLOW = """
from provgraph import python, workflow

@python.define
def AddTwo(a: int) -> int:
    return a + 2

@python.define(outputs=["mean", "n"])
def Stats(values: list[float]) -> tuple[float, int]:
    return sum(values) / len(values), len(values)

@workflow.define(outputs=["total"])
def Pipeline(xs: list[int]) -> float:
    add = workflow.add(AddTwo().split(a=xs).combine("a"), name="add")
    s = workflow.add(Stats(values=add.out), name="stats")
    return s.mean
"""


def test_graph_dot_and_mermaid(tmp_path: Path) -> None:
    """``provgraph graph`` writes DOT and Mermaid text with nodes, splitters and connections."""
    (tmp_path / "wf.py").write_text(WORKFLOW)
    out = _run("graph", "wf.py:Pipeline", "-o", "wf.dot", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    dot = (tmp_path / "wf.dot").read_text()
    assert dot.startswith('digraph "Pipeline"')
    assert "split: 'a'" in dot and "combine: a" in dot
    assert '"add" -> "stats" [label="out → values"]' in dot
    assert '"inputs" -> "add" [label="xs → a"]' in dot
    assert '"stats" -> "outputs" [label="mean → total"]' in dot
    out = _run("graph", "wf.py:Pipeline", "-o", "wf.mmd", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    mmd = (tmp_path / "wf.mmd").read_text()
    assert mmd.startswith("flowchart LR") and '-- "out → values" -->' in mmd


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' is not installed")
def test_graph_svg_with_graphviz(tmp_path: Path) -> None:
    """With Graphviz present, an SVG picture is drawn."""
    (tmp_path / "wf.py").write_text(WORKFLOW)
    out = _run("graph", "wf.py:Pipeline", "-o", "wf.svg", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    svg = (tmp_path / "wf.svg").read_text()
    assert "<svg" in svg and "stats" in svg


def test_graph_without_graphviz_falls_back_to_mermaid(tmp_path: Path) -> None:
    """Without ``dot`` on PATH, asking for SVG writes Mermaid text beside it."""
    (tmp_path / "wf.py").write_text(WORKFLOW)
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    out = subprocess.run(
        [sys.executable, "-m", "provgraph.cli", "graph", "wf.py:Pipeline", "-o", "wf.svg"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Mermaid" in out.stderr
    assert (tmp_path / "wf.mmd").read_text().startswith("flowchart LR")


def test_graph_of_a_plain_task_is_refused(tmp_path: Path) -> None:
    """Only workflows can be drawn."""
    (tmp_path / "wf.py").write_text(WORKFLOW)
    out = _run("graph", "wf.py:AddTwo", "-o", "x.dot", cwd=tmp_path)
    assert out.returncode == 2 and "not a workflow" in out.stderr


def test_run_with_worker_options(tmp_path: Path) -> None:
    """``-w NAME=VALUE`` passes options to the worker (JSON values decoded)."""
    (tmp_path / "tasks.py").write_text(TASKS)
    out = _run(
        "run", "tasks.py:ready", "--worker", "dask", "-w", "n_workers=1", "--cache-dir", "c",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "out = [3, 4]" in out.stdout
    bad = _run("run", "tasks.py:ready", "--worker", "cf", "-w", "n_procs=0", cwd=tmp_path)
    assert bad.returncode == 2 and "n_procs=0" in bad.stderr
    worse = _run("run", "tasks.py:ready", "-w", "n_procs", cwd=tmp_path)
    assert (
        worse.returncode == 2 and "--worker-option 'n_procs': expected name=value" in worse.stderr
    )


def test_python_dash_m_provgraph() -> None:
    """``python -m provgraph`` is the provgraph command."""
    done = subprocess.run(
        [sys.executable, "-m", "provgraph", "--version"], capture_output=True, text=True
    )
    from provgraph import __version__

    assert done.returncode == 0 and done.stdout.strip().endswith(__version__)


def test_run_finds_shell_tasks_too(tmp_path: Path) -> None:
    """A file's ``shell.define(...)`` tasks are found like its Python ones: run alone, or listed
    when the file has several."""
    (tmp_path / "only_shell.py").write_text(
        "from provgraph import shell\n"
        'Copy = shell.define("cp <in_file:File> <out|out_file:File>", name="Copy")\n'
    )
    (tmp_path / "a.txt").write_text("hi\n")
    done = _run("run", "only_shell.py", "-i", "in_file=a.txt", "--cache-dir", "c", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "out_file = File(" in done.stdout
    (tmp_path / "both.py").write_text(
        "from provgraph import python, shell\n"
        'Copy = shell.define("cp <in_file:File> <out|out_file:File>", name="Copy")\n\n'
        "@python.define\n"
        "def Twice(x: int) -> int:\n"
        "    return 2 * x\n"
    )
    listed = _run("run", "both.py", cwd=tmp_path)
    assert listed.returncode != 0 and "(found ['Copy', 'Twice'])" in listed.stderr


def test_bad_paths_and_names_get_one_line_errors_not_tracebacks(tmp_path: Path) -> None:
    """Each mistake below is said in one ``provgraph: error:`` line naming what was wrong
    (exit code 2), never as a Python traceback."""
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "wf.py").write_text(WORKFLOW)
    ran = _run("run", "tasks.py:AddTwo", "-i", "a=1", "--cache-dir", "c", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    job = next((tmp_path / "c").glob("AddTwo-*")).name
    (tmp_path / "a-file").write_text("")
    cases = [
        (("export", "c", "--format", "turtle", "-o", "nodir/x.ttl"), "nodir/x.ttl"),
        (("export", "c", "--format", "jsonld", "-o", "."), "is a directory"),
        (("rerun", "c", job, "--into", "a-file"), "into='a-file'"),
        (("query", "c", "-f", "missing.rq"), "missing.rq"),
        (("query", "c"), "no query"),
        (("run", "missing.py:X"), "missing.py"),
        (("run", "tasks.py:ready", "-i", "bogus=5"), "no input 'bogus'"),
        (("graph", "wf.py:Pipeline", "-o", "/proc/x.dot"), "/proc/x.dot"),
        (("runs", str(tmp_path)), "no .provenance folder"),
        (("show", str(tmp_path)), "no .provenance folder"),
    ]
    for args, said in cases:
        out = _run(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("provgraph: error:"), (args, out.stderr)
        assert said in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert not (tmp_path / ".provenance").exists()  # nothing written into a non-cache


def test_environment_settings_are_named_and_expanded(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    run = ("run", "tasks.py:AddTwo", "-i", "a=1")
    out = _run(*run, cwd=tmp_path, env={**os.environ, "PROVGRAPH_WORKER": "bogus"})
    assert out.returncode == 2 and "PROVGRAPH_WORKER='bogus'" in out.stderr
    home = {"PROVGRAPH_CACHE_DIR": "~/pgc", "HOME": str(tmp_path / "home")}
    out = _run(*run, cwd=tmp_path, env={**os.environ, **home})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "home" / "pgc").is_dir() and not (tmp_path / "~").exists()


def test_a_users_script_failing_at_import_keeps_its_traceback(tmp_path: Path) -> None:
    """``provgraph run`` of a script that fails as it loads (a missing data file): the user
    sees where, as Python tells it, not a one-line summary."""
    (tmp_path / "tasks.py").write_text(TASKS + "\nopen('missing-table.csv')\n")
    out = _run("run", "tasks.py:AddTwo", "-i", "a=1", cwd=tmp_path)
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "missing-table.csv" in out.stderr
    assert "tasks.py" in out.stderr  # the line of the user's own file
