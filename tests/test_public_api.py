"""The public door: ``provgraph/__init__.py`` exports exactly the public names, sorted."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import provgraph
from provgraph import exceptions


def test_all_is_sorted_and_complete() -> None:
    """``__all__`` is sorted, and lists every public non-module attribute."""
    assert provgraph.__all__ == sorted(provgraph.__all__)
    public = {
        name
        for name, value in vars(provgraph).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - set(provgraph.__all__) == set()
    for name in provgraph.__all__:
        assert hasattr(provgraph, name), name


def test_error_tree() -> None:
    """One root; each category also subclasses the builtin a user would catch."""
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), exceptions.ProvgraphError)
    assert issubclass(exceptions.SpecError, TypeError)
    assert issubclass(exceptions.SplitterError, ValueError)
    assert issubclass(exceptions.InputFileError, FileNotFoundError)
    assert issubclass(exceptions.InputFileError, exceptions.SpecError)
    for both in (exceptions.MissingInputError, exceptions.InputRuleError):  # as in Pydra too
        assert issubclass(both, exceptions.SpecError) and issubclass(both, ValueError)
    assert issubclass(exceptions.TaskFailedError, RuntimeError)
    assert exceptions.__all__ == sorted(exceptions.__all__)


def test_task_definition_module_is_the_design_one() -> None:
    """The decorators of DESIGN.md section 1 are reachable as ``python.define``/``shell.define``."""
    assert callable(provgraph.python.define)
    assert callable(provgraph.shell.define)
    assert provgraph.Submitter.__module__ == "provgraph.engine.submitter"


# What ``import provgraph`` leaves to the first use that needs it (issue 17: the import costs
# at most 0.1 s; each of these is 1-4 ms): worker pools, commands, the fallback pickler, the key
# maker, failure reports, and the provenance store.
_LEFT_FOR_LATER = (
    "concurrent.futures",
    "subprocess",
    "cloudpickle",
    "secrets",
    "json",
    "traceback",
    "uuid",
    "datetime",
    "rdflib",
    "pyoxigraph",
)


def test_import_leaves_heavy_modules_for_later() -> None:
    """A fresh interpreter that imports provgraph has none of them loaded."""
    code = f"""
import sys
import provgraph
print(sorted(m for m in {_LEFT_FOR_LATER!r} if m in sys.modules))
"""
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"


def test_what_is_left_for_later_is_there_when_needed(tmp_path: Path) -> None:
    """In a fresh interpreter: a failing job's error is reported with its traceback, a shell
    command runs, a task's time resource is checked, an output only cloudpickle stores is
    stored and read back, and the split's listing is written."""
    script = tmp_path / "use.py"
    script.write_text(
        f"""
import datetime
from pathlib import Path
from provgraph import Submitter, python, shell

@python.define(resources={{"time": datetime.timedelta(minutes=5)}})
def Half(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x // 2

@python.define
def Closure(x: int):
    return lambda: x

Echo = shell.define("echo hello")
cache = Path({str(tmp_path / "cache")!r})
with Submitter(cache_dir=cache, progress=False) as sub:
    failed = sub(Half().split(x=[2, 3]))
    made = sub(Closure(x=4))
    echoed = sub(Echo())
print(len(failed.errors), "ValueError: three" in failed.errors[0].traceback)
print(made.outputs.out(), echoed.outputs.stdout.strip())
print(len(list(cache.glob("*/_jobs.json"))))
"""
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:3] == ["1 True", "4 hello", "1"]
