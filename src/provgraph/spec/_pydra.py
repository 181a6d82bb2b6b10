"""Task objects defined with Pydra 1.0's ``pydra.compose.shell`` or ``pydra.compose.python``
(from any pydra-tasks-* package), run by provgraph unchanged: each Pydra class is translated
once, from its field metadata, into a provgraph class (a shell class with the same command
line, or a Python task of the same function); each task object into an instance of it with
the same input values, splitter and combiner.

Used only when such an object is given (``pip install provgraph[pydra]``); a Pydra feature
the translation cannot honour is refused with an error naming the field and the feature.
"""

from __future__ import annotations

import sys
import typing
import weakref
from collections.abc import Sequence
from typing import Any

import attrs

from ..exceptions import SpecError
from . import shell
from .base import TaskDef
from .fields import NOTHING, MultiInputObj

__all__ = ["as_own_task", "from_pydra", "is_pydra_task"]

_TRANSLATED: weakref.WeakKeyDictionary[type, type[TaskDef]] = weakref.WeakKeyDictionary()
_SHELL_OUTPUTS = ("return_code", "stdout", "stderr")


def is_pydra_task(value: Any) -> bool:
    """True for a task object made from a ``pydra.compose`` definition."""
    base = getattr(sys.modules.get("pydra.compose.base"), "Task", None)
    return base is not None and isinstance(value, base)


def as_own_task(task: Any) -> Any:
    """``task`` itself, or, for a Pydra task object, its provgraph translation."""
    return from_pydra(task) if is_pydra_task(task) else task


def from_pydra(task: Any) -> Any:
    """The provgraph task for a Pydra task object (same inputs, splitter and combiner), or
    the provgraph class for a Pydra task class: one whose inputs may be connected to other
    nodes' outputs in a provgraph workflow."""
    if isinstance(task, type):
        return translate(task)
    cls = translate(type(task))
    values: dict[str, Any] = {}
    for name, field in cls._input_fields.items():
        value = getattr(task, name, NOTHING)
        if value is NOTHING or _unset(value):
            continue
        if type(value).__name__ == "StateArray":
            value = list(value)
        if field.implicit and name == "append_args" and value == []:
            continue
        values[name] = value
    splitter = getattr(task, "_splitter", None)
    combiner = getattr(task, "_combiner", None) or []
    if splitter is None:
        own = cls(**values)
    else:
        split_names = _names(splitter)
        own = cls(**{k: v for k, v in values.items() if k not in split_names})
        own = own.split(splitter, **{k: v for k, v in values.items() if k in split_names})
    if combiner:
        own = own.combine(list(combiner))
    return own


def _names(splitter: Any) -> set[str]:
    if isinstance(splitter, str):
        return {splitter.split(".")[-1]}
    found: set[str] = set()
    for part in splitter:
        found |= _names(part)
    return found


def translate(pydra_cls: type) -> type[TaskDef]:
    """The provgraph class of a Pydra task class (made once, then cached)."""
    found = _TRANSLATED.get(pydra_cls)
    if found is None:
        found = _TRANSLATED[pydra_cls] = _translate(pydra_cls)
    return found


def _translate(pydra_cls: type) -> type[TaskDef]:
    from pydra.compose import python as pydra_python
    from pydra.compose import shell as pydra_shell

    name = pydra_cls.__name__
    if issubclass(pydra_cls, pydra_python.Task):
        return _translate_python(pydra_cls)
    if not issubclass(pydra_cls, pydra_shell.Task):
        raise SpecError(
            f"Pydra task {name}: only shell and python definitions (pydra.compose.shell, "
            f"pydra.compose.python) are translated; this is a "
            f"{pydra_cls.__mro__[1].__module__} definition",
            field="task",
            value=name,
        )
    return _translate_shell(pydra_cls)


def _translate_python(pydra_cls: type) -> type[TaskDef]:
    """A Pydra Python task: its function, with the inputs and outputs Pydra declares."""
    from pydra.utils.general import get_fields

    from . import python

    name = pydra_cls.__name__
    inputs: dict[str, Any] = {}
    function = None
    for f in get_fields(pydra_cls):
        if f.name == "function":
            function = f.default  # the function is the default of a field of that name
            continue
        _refuse_unsupported(name, f)
        inputs[f.name] = python.arg(
            type=_own_type(f.type), default=_default(f.default), help=f.help or ""
        )
    outputs = {
        o.name: python.out(type=_own_type(o.type), help=o.help or "")
        for o in get_fields(pydra_cls.Outputs)  # type: ignore[attr-defined]
    }
    if not callable(function):
        _unsupported(name, "function", "no function to run")
    made: type[TaskDef] = python.define(
        typing.cast(Any, function), inputs=inputs, outputs=outputs, name=name
    )
    return made


def _translate_shell(pydra_cls: type) -> type[TaskDef]:
    from pydra.compose import shell as pydra_shell
    from pydra.utils.general import get_fields

    name = pydra_cls.__name__
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__doc__": pydra_cls.__doc__}
    outargs = {f.name for f in get_fields(pydra_cls) if isinstance(f, pydra_shell.outarg)}
    for f in get_fields(pydra_cls):
        if f.name == "executable":
            if not f.default:
                _unsupported(name, "executable", "no executable (is the class decorated?)")
            namespace["executable"] = f.default
            continue
        if f.name == "append_args" or f.name in outargs:
            continue
        _refuse_unsupported(name, f)
        annotations[f.name] = _own_type(f.type)
        namespace[f.name] = shell.arg(
            default=_default(f.default),
            argstr=f.argstr,
            position=f.position,
            sep=f.sep,
            help=f.help or "",
            formatter=f.formatter,
            allowed_values=f.allowed_values,
            copy_mode=getattr(getattr(f, "copy_mode", None), "name", None),
        )
    if "executable" not in namespace:
        _unsupported(name, "executable", "no executable (is the class decorated?)")
    out_annotations: dict[str, Any] = {}
    out_namespace: dict[str, Any] = {}
    for o in get_fields(pydra_cls.Outputs):  # type: ignore[attr-defined]
        if o.name in _SHELL_OUTPUTS:
            continue
        out_annotations[o.name] = _own_type(o.type)
        if isinstance(o, pydra_shell.outarg):
            if not isinstance(o.path_template, str) and not callable(o.path_template):
                _unsupported(name, o.name, f"a path_template of several files {o.path_template!r}")
            if typing.get_origin(o.type) in (list, tuple) or o.type is Any:
                _unsupported(name, o.name, f"an outarg typed {o.type!r} (list or any)")
            out_namespace[o.name] = shell.outarg(
                path_template=o.path_template,
                argstr=o.argstr,
                position=o.position,
                help=o.help or "",
                keep_extension=o.keep_extension,
                sep=o.sep,
            )
        elif o.callable is not None:
            out_namespace[o.name] = shell.out(callable=o.callable, help=o.help or "")
        else:
            _unsupported(name, o.name, "an output with neither a path_template nor a callable")
    out_namespace["__annotations__"] = out_annotations
    namespace["__annotations__"] = annotations
    namespace["Outputs"] = type("Outputs", (), out_namespace)
    namespace["__module__"] = pydra_cls.__module__
    namespace["__qualname__"] = pydra_cls.__qualname__
    source = type(name, (), namespace)
    groups = [list(g) for g in getattr(pydra_cls, "_xor", None) or ()]
    return shell.define(source, name=name, xor=groups)


def _refuse_unsupported(task: str, f: Any) -> None:
    if getattr(f, "readonly", False):
        _unsupported(task, f.name, "readonly=True")
    if getattr(f, "container_path", False):
        _unsupported(task, f.name, "container_path=True")
    if getattr(f, "requires", None):
        _unsupported(task, f.name, "requires=")


def _unsupported(task: str, field: str, feature: str) -> None:
    raise SpecError(
        f"Pydra task {task}: field {field!r} uses {feature}, which provgraph cannot honour; "
        "define the task with provgraph.shell instead",
        field=field,
        value=feature,
    )


def _unset(value: Any) -> bool:
    base = sys.modules.get("pydra.compose.base")
    return value is attrs.NOTHING or value is getattr(base, "NO_DEFAULT", attrs.NOTHING)


def _default(value: Any) -> Any:
    if _unset(value):
        return NOTHING
    if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
        return value.factory()
    return value


def _own_type(tp: Any) -> Any:
    """Pydra's types in provgraph's terms: its MultiInputObj as provgraph's; fileformats
    classes stay themselves (provgraph checks and hashes them)."""
    from pydra.utils.typing import MultiInputObj as PydraMulti
    from pydra.utils.typing import MultiOutputFile

    origin = typing.get_origin(tp)
    if tp is PydraMulti:
        return MultiInputObj
    if tp is MultiOutputFile:  # several files from one template: a list of files
        from .._filetypes import File

        return list[File]
    if origin is PydraMulti:
        return MultiInputObj[tuple(_own_type(a) for a in typing.get_args(tp))]  # type: ignore[misc]
    if origin in (typing.Union, __import__("types").UnionType):
        members = tuple(_own_type(a) for a in typing.get_args(tp))
        return typing.Union[members]  # noqa: UP007
    if origin in (list, tuple, Sequence):
        args = typing.get_args(tp)
        base = list if origin is Sequence else origin
        return base[tuple(_own_type(a) for a in args)] if args else base
    return tp
