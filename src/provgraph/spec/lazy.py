"""Lazy fields: placeholders for values that exist only when a workflow runs.

Inside a ``@workflow.define`` constructor, the workflow's inputs and the outputs of the nodes
added so far are :class:`LazyField` objects. Setting one as an input of a task connects the two;
the types of both ends are checked at once.
"""

from __future__ import annotations

import types
import typing
from typing import Any, ClassVar

import attrs

from ..exceptions import SpecError
from .fields import type_name

__all__ = ["LazyField", "LazyOutputs", "compatible", "element_type"]


@attrs.frozen
class LazyField:
    """An output ``field`` of workflow node ``node`` (``node=None``: a workflow input)."""

    node: str | None
    field: str
    type: Any = Any

    _provgraph_lazy: ClassVar[bool] = True

    @property
    def label(self) -> str:
        """``node.field``, or ``inputs.field`` for a workflow input."""
        return f"{self.node or 'inputs'}.{self.field}"

    def __repr__(self) -> str:
        return f"<lazy {self.label}: {type_name(self.type)}>"


class LazyOutputs:
    """The outputs of a workflow node, as lazy fields: ``node.out``, ``node.<field>``."""

    def __init__(self, node: str, output_types: dict[str, Any]) -> None:
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_types", output_types)

    def __getattr__(self, name: str) -> Any:  # a LazyField, standing for a value of any type
        types_ = object.__getattribute__(self, "_types")
        node = object.__getattribute__(self, "_node")
        if name not in types_:
            raise MissingOutputError(
                f"node {node!r} has no output {name!r}; its outputs are {sorted(types_)}",
                field=name,
            )
        return LazyField(node, name, types_[name])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("lazy outputs are read-only")

    def __repr__(self) -> str:
        return f"<outputs of node {object.__getattribute__(self, '_node')!r}>"


class MissingOutputError(SpecError, AttributeError):
    """A lazy field names an output the node does not have."""


def element_type(tp: Any) -> Any:
    """The item type of a list type (``Any`` when unknown); None when ``tp`` is not a list."""
    if tp is Any:
        return Any
    origin = typing.get_origin(tp)
    if origin in (list, tuple, typing.Sequence):
        args = typing.get_args(tp)
        return args[0] if args else Any
    if tp in (list, tuple):
        return Any
    return None


def compatible(source: Any, target: Any) -> bool:
    """Can a value declared as ``source`` feed an input declared as ``target``?"""
    if source is Any or target is Any or source is object or target is object:
        return True
    from .fields import _multi_item

    item = _multi_item(target)
    if item is not None:  # one value or a list of them
        return compatible(source, item) or compatible(source, list[item])  # type: ignore[valid-type]
    s_origin = typing.get_origin(source)
    if s_origin in (typing.Union, types.UnionType):  # each kind of value it may give must fit
        return all(compatible(s, target) for s in typing.get_args(source) if s is not type(None))
    t_origin = typing.get_origin(target)
    if t_origin in (typing.Union, types.UnionType):
        return any(compatible(source, t) for t in typing.get_args(target))
    if s_origin is not None or t_origin is not None:
        s_base, t_base = s_origin or source, t_origin or target
        if not (isinstance(s_base, type) and isinstance(t_base, type)):
            return True
        if not issubclass(s_base, t_base) and not (
            issubclass(s_base, (list, tuple)) and issubclass(t_base, (list, tuple))
        ):
            return False
        s_args, t_args = typing.get_args(source), typing.get_args(target)
        if not s_args or not t_args:
            return True
        return compatible(s_args[0], t_args[0])
    if not (isinstance(source, type) and isinstance(target, type)):
        return True
    if target is float and source is int:
        return True
    if issubclass(source, target):
        return True
    from .._fileformats import is_fileset_type
    from .._filetypes import Directory, File

    paths = (File, Directory, str)
    import os
    import pathlib

    if target is str:  # a path (a file, a format's too, a user's own) given as text, as Pydra
        return issubclass(source, os.PathLike) or is_fileset_type(source)
    return issubclass(target, pathlib.PurePath) and issubclass(source, (*paths, pathlib.PurePath))
