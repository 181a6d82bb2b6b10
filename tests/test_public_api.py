"""The public door: ``provgraph/__init__.py`` exports exactly the public names, sorted."""

from __future__ import annotations

import types

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
