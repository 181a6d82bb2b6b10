"""What a type checker (and so an IDE) sees of task definitions: real mypy over user code."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api", reason="mypy is in the test extra")

USER_CODE = """
from provgraph import Submitter, python, shell, workflow


@python.define
def Add(a: int, b: int = 1) -> int:
    return a + b


@python.define(outputs=["total"])
def Sum(xs: list[int]) -> int:
    return sum(xs)


Copy = shell.define("cp <in_file:File> <out|out_file:File>")


@workflow.define
def Pipe(x: int) -> int:
    return workflow.add(Add(a=x), name="add").out


reveal_type(Add)
reveal_type(Sum)
reveal_type(Copy)
reveal_type(Pipe)
task = Add(a=1).split(a=[1, 2]).combine("a")
reveal_type(task)
with Submitter(cache_dir="cache") as sub:
    reveal_type(sub(task))
    reveal_type(sub(task, dry_run=True))
Add(a=1).split(a=[1], overwrite="yes")  # line 32: a str for a bool
Add(a=1).combine(3)  # line 33: an int for a combiner
"""


def test_definitions_are_typed_for_editors(tmp_path: Path) -> None:
    source = tmp_path / "user_code.py"
    source.write_text(USER_CODE)
    out, _err, status = mypy_api.run(
        [
            str(source),
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / ".mypy"),
            "--no-error-summary",
        ]
    )
    revealed = [
        line.split("Revealed type is ", 1)[1] for line in out.splitlines() if "Revealed" in line
    ]
    assert revealed == [
        '"type[provgraph.spec.python.PythonTask]"',
        '"type[provgraph.spec.python.PythonTask]"',
        '"type[provgraph.spec.shell.ShellTask]"',
        '"type[provgraph.spec.workflow.WorkflowTask]"',
        '"provgraph.spec.python.PythonTask"',
        '"provgraph.engine.result.Result"',
        '"provgraph.engine.submitter.DryRun"',
    ], out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert [e.split(":")[1] for e in errors] == ["32", "33"], out  # and none in the workflow
    assert status == 1
