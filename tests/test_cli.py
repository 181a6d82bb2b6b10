"""The ``provgraph`` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TASKS = """
from provgraph import python

@python.define
def AddTwo(a: int) -> int:
    return a + 2

ready = AddTwo().split(a=[1, 2])
"""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provgraph.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
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
