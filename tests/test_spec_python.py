"""Python task definitions: fields, type checks, outputs and definition hashes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provgraph import File, SpecError, Submitter, python


@python.define
def AddTwo(a: int) -> int:
    return a + 2


@python.define(outputs=["mean", "n"])
def Stats(values: list[float]) -> tuple[float, int]:
    return sum(values) / len(values), len(values)


@python.define
def Scale(x: float, factor: float = 2.0) -> float:
    return x * factor


def test_single_output_is_out(cache_dir: Path) -> None:
    """One return value becomes output ``out``."""
    assert list(AddTwo._output_fields) == ["out"]
    assert AddTwo(a=3)(cache_dir=cache_dir).out == 5


def test_several_named_outputs(cache_dir: Path) -> None:
    """``outputs=[...]`` names each element of the returned tuple, typed from the annotation."""
    outputs = Stats(values=[1, 2, 3])(cache_dir=cache_dir)
    assert (outputs.mean, outputs.n) == (2.0, 3)
    assert Stats._output_fields["n"].type is int


def test_defaults_are_honoured(cache_dir: Path) -> None:
    """Inputs with defaults are optional; ints given to float fields become floats."""
    task = Scale(x=3)
    assert task.x == 3.0 and isinstance(task.x, float)
    assert task.factor == 2.0
    assert task(cache_dir=cache_dir).out == 6.0


def test_wrong_type_names_field_value_and_type() -> None:
    """A value of the wrong type fails at construction with field, value and expected type."""
    with pytest.raises(SpecError) as info:
        AddTwo(a="x")
    message = str(info.value)
    assert "'a'" in message and "'x'" in message and "int" in message
    assert isinstance(info.value, TypeError)
    assert info.value.field == "a"


def test_unknown_input_is_rejected() -> None:
    """Naming an input the task does not have lists the inputs it has."""
    with pytest.raises(SpecError, match=r"no input 'b'.*\['a'\]"):
        AddTwo(b=1)


def test_setting_inputs_is_checked() -> None:
    """Inputs can be read and set as attributes or through ``.inputs``, with the same checks."""
    task = AddTwo(a=1)
    task.inputs.a = 5
    assert task.a == 5 and task.inputs.a == 5
    with pytest.raises(SpecError):
        task.inputs.a = "five"
    with pytest.raises(AttributeError):
        task.not_an_input = 3


def test_missing_mandatory_input_reported_before_running(cache_dir: Path) -> None:
    """Submitting without a mandatory input raises and creates no job directory."""
    with (
        Submitter(cache_dir=cache_dir) as sub,
        pytest.raises(SpecError, match=r"Mandatory field .a. is not set"),
    ):
        sub(AddTwo())
    assert [p for p in cache_dir.iterdir() if not p.name.startswith(".")] == []


def test_wrong_number_of_returned_values_fails_the_job(cache_dir: Path) -> None:
    """A function returning the wrong shape fails its job with a message naming the outputs."""

    @python.define(outputs=["a", "b"])
    def Bad(x: int) -> tuple[int, int]:
        return x  # type: ignore[return-value]

    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(Bad(x=1))
    assert result.errored
    assert "['a', 'b']" in result.errors[0].message


def test_varargs_are_rejected() -> None:
    """Tasks need named parameters."""
    with pytest.raises(SpecError, match="args"):

        @python.define
        def Many(*args: int) -> int:
            return sum(args)


def _load_module(path: Path, name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _definition_hash(tmp_path: Path, body: str, tag: str) -> bytes:
    source = "from provgraph import python\n\n@python.define\n" + textwrap.dedent(body)
    path = tmp_path / f"mod_{tag}.py"
    path.write_text(source)
    module = _load_module(path, f"mod_{tag}")
    return module.Func._definition_hash  # type: ignore[attr-defined, no-any-return]


def test_definition_hash_follows_source_not_layout(tmp_path: Path) -> None:
    """Editing the code changes the definition hash; comments, docstrings and layout do not."""
    base = _definition_hash(tmp_path, "def Func(a: int) -> int:\n    return a + 1\n", "base")
    layout = _definition_hash(
        tmp_path,
        'def Func(a: int) -> int:\n    """Doc."""\n    # comment\n    return (a +\n        1)\n',
        "layout",
    )
    edited = _definition_hash(tmp_path, "def Func(a: int) -> int:\n    return a + 2\n", "edited")
    retyped = _definition_hash(
        tmp_path, "def Func(a: float) -> int:\n    return a + 1\n", "retyped"
    )
    assert base == layout
    assert len({base, edited, retyped}) == 3


def test_version_changes_definition_hash() -> None:
    """A declared version is part of the definition hash."""

    def f(a: int) -> int:
        return a

    v1 = python.define(f, name="F", version="1")
    v2 = python.define(f, name="F", version="2")
    assert v1._definition_hash != v2._definition_hash


def test_rerun_does_not_call_the_function(tmp_path: Path, cache_dir: Path) -> None:
    """A second run with identical inputs reuses the result without calling the function."""
    log = tmp_path / "calls.log"

    @python.define
    def Logged(a: int, log: str) -> int:
        with open(log, "a") as fh:
            fh.write(f"{a}\n")
        return a * 10

    for _ in range(2):
        with Submitter(cache_dir=cache_dir) as sub:
            result = sub(Logged(a=4, log=str(log)))
        assert result.outputs.out == 40
    assert log.read_text() == "4\n"
    assert result.stats == {"executed": 0, "reused": 1, "failed": 0, "skipped": 0}


_JOB_HASH_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from provgraph import Submitter
from test_spec_python import AddTwo
with Submitter(cache_dir={cache!r}) as sub:
    result = sub(AddTwo(a=40))
print(result.output_dir.name, result.stats["executed"])
"""


def test_same_job_hash_in_another_process(cache_dir: Path) -> None:
    """A job run in another interpreter lands in the same directory, so it is reused here."""
    code = _JOB_HASH_CHILD.format(tests=str(Path(__file__).parent), cache=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    child_dir, executed = out.stdout.split()
    assert executed == "1"
    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(AddTwo(a=40))
    assert result.output_dir.name == child_dir
    assert result.stats["reused"] == 1


def test_task_name_option_and_bad_name() -> None:
    """``name=`` renames the task; a name unusable as a directory name is refused."""

    def f(a: int) -> int:
        return a

    assert python.define(f, name="Renamed")._task_name == "Renamed"
    with pytest.raises(SpecError, match="task name"):
        python.define(f, name="bad/name")


def test_relative_file_output_resolves_in_job_dir(tmp_path: Path, cache_dir: Path) -> None:
    """A relative path returned as a File means the file the task wrote in its job dir."""

    @python.define
    def Upper(text: str) -> File:
        Path("upper.txt").write_text(text.upper())
        return File("upper.txt")

    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(Upper(text="abc"))
    assert Path(result.outputs.out) == result.output_dir / "upper.txt"
    assert Path(result.outputs.out).read_text() == "ABC"


def test_lambdas_define_tasks() -> None:
    """A lambda, even spread over lines, makes a task; its hash follows its code."""
    first = python.define(
        lambda a: a + 1,
        name="Inc",
    )
    second = python.define(lambda a: a + 2, name="Inc")
    assert first._definition_hash != second._definition_hash


def test_unstorable_output_fails_the_job(cache_dir: Path, worker: str) -> None:
    """Outputs that cannot be pickled fail their job cleanly, with an error file."""
    import threading

    @python.define
    def Locky(x: int) -> object:
        return threading.Lock()

    with Submitter(cache_dir=cache_dir, worker=worker) as sub:
        result = sub(Locky().split(x=[1, 2]))
    assert result.stats["failed"] == 2
    assert "cannot be stored" in result.errors[0].message
    assert (result.errors[0].output_dir / "_error.json").exists()


def test_resources_are_not_part_of_the_definition() -> None:
    """Asking for more memory computes the same thing: same definition hash, same job."""
    from provgraph import python, shell

    def body(x: int) -> int:
        return x

    plain = python.define(body)
    hungry = python.define(body, resources={"mem": "64G", "cpus": 8})
    assert plain._definition_hash == hungry._definition_hash
    assert hungry._resources == {"mem": "64G", "cpus": 8} and plain._resources == {}
    a = shell.define("echo <x:int>", name="Echo")
    b = shell.define("echo <x:int>", name="Echo", resources={"time": 10})
    assert a._definition_hash == b._definition_hash and b._resources == {"time": "10"}
