"""``pydra.utils.general``: the public helpers, over provgraph's equivalents.

* ``get_fields(task or class or outputs class)``: ``provgraph.get_fields`` (by name) as a
  list that also gives each field by name, as Pydra's does.
* ``task_help(task)``: provgraph's ``describe()`` text, printed and returned as lines.
* ``default_run_cache_root``: provgraph's default cache directory.
* ``plot_workflow(wf, out_dir, ...)``: ``provgraph.plot_workflow`` (``lazy=`` is not needed).
Internal helpers (``position_sort``, ``attrs_values``...) are placeholders that raise.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import provgraph
from provgraph import Config

from .._internal import placeholder

default_run_cache_root = Path(Config.from_env().cache_dir).absolute()


class _Fields(list):
    """A list of fields that also gives each by name (``get_fields(T).a``), as Pydra's."""

    def __getattr__(self, name: str) -> Any:
        for f in self:
            if f.name == name:
                return f
        raise AttributeError(name)


def get_fields(task: Any) -> list[Any]:
    # Pydra's list of field objects; provgraph.get_fields gives them by name
    return _Fields(provgraph.get_fields(task).values())


def task_help(task_type: Any, line_width: int = 79, help_indent: int = 4) -> list[str]:
    cls = task_type if inspect.isclass(task_type) else type(task_type)
    lines = cls.describe().splitlines()
    print("\n".join(lines))
    return lines


def plot_workflow(
    workflow_task: Any,
    out_dir: Path,
    plot_type: str = "simple",
    export: Any = None,
    name: str | None = None,
    lazy: Any = None,
) -> Any:
    # ``lazy`` names the inputs Pydra leaves as placeholders when it builds the graph to
    # draw; provgraph's graph is built with placeholders already, so it has no use
    return provgraph.plot_workflow(
        workflow_task, out_dir, plot_type=plot_type, export=export, name=name
    )


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return placeholder(f"pydra.utils.general.{name}")


__all__ = ["default_run_cache_root", "get_fields", "plot_workflow", "task_help"]
