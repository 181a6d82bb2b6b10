"""The fields of tasks made from functions (Python tasks and workflows).

Inputs come from the function's parameters (names, annotations, defaults), outputs from its
return annotation and ``outputs=``; ``inputs=``/``outputs=`` given to ``define`` override or
complete them with :func:`arg` and :func:`out` (help, default, type). The class form reads the
same from a class: annotated attributes are inputs, ``class Outputs`` holds the outputs, and a
static method ``function`` computes them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ..exceptions import SpecError, SpecValueError
from .fields import (
    NOTHING,
    Field,
    OutputField,
    allowed_tuple,
    coerce,
    declared_default,
)

__all__ = ["arg", "class_parts", "input_fields", "out", "output_fields"]


class _Unset:
    def __repr__(self) -> str:
        return "unset"


_UNSET: Any = _Unset()  # a type not given


@attrs.frozen(kw_only=True)
class ArgSpec:
    """An input declared with :func:`arg`."""

    name: str | None = None
    type: Any = _UNSET
    default: Any = NOTHING
    help: str = ""
    allowed_values: tuple[Any, ...] | None = None


@attrs.frozen(kw_only=True)
class OutSpec:
    """An output declared with :func:`out`."""

    name: str | None = None
    type: Any = _UNSET
    help: str = ""


def arg(
    *,
    default: Any = NOTHING,
    help: str = "",
    type: Any = _UNSET,
    name: str | None = None,
    allowed_values: Any = None,
) -> Any:
    """Declare an input of a Python task or workflow: its help text, default, type and the
    only values it accepts (each optional; the function's signature gives the rest)."""
    allowed = allowed_tuple(allowed_values, "python.arg")
    return ArgSpec(name=name, type=type, default=default, help=help, allowed_values=allowed)


def out(*, help: str = "", type: Any = _UNSET, name: str | None = None) -> Any:
    """Declare an output of a Python task or workflow: its help text and type."""
    return OutSpec(name=name, type=type, help=help)


def _named(what: str, given: Any, spec_type: type, owner: str) -> dict[str, Any]:
    """``inputs=``/``outputs=`` as a mapping name -> spec or type (a list of names or of named
    specs is accepted too)."""
    wrong = OutSpec if spec_type is ArgSpec else ArgSpec
    if isinstance(given, Mapping):
        for name, value in given.items():
            kind = getattr(value, "type", _UNSET) if isinstance(value, spec_type) else value
            if isinstance(value, wrong) or isinstance(kind, str):
                expected = "python.arg(...)" if spec_type is ArgSpec else "python.out(...)"
                raise SpecError(
                    f"{owner}: {what}[{name!r}] = {value!r}; expected a type or {expected}"
                    + (" (a type, not its name as text)" if isinstance(kind, str) else ""),
                    field=name,
                    value=value,
                )
        return dict(given)
    if isinstance(given, (list, tuple)):
        found: dict[str, Any] = {}
        for item in given:
            if isinstance(item, str):
                found[item] = _UNSET
            elif isinstance(item, (ArgSpec, OutSpec)) and isinstance(item, spec_type) and item.name:
                found[item.name] = item
            else:
                kind = "Out" if what == "outputs" else "Arg"
                raise SpecValueError(
                    f"{owner}: {what}={given!r}: Only named {kind} objects should be provided "
                    f"as {what}; expected names, named "
                    f"python.{'out' if what == 'outputs' else 'arg'}(name=...) declarations, "
                    "or a dict of name -> type or declaration",
                    field=what,
                    value=given,
                )
        return found
    raise SpecError(
        f"{owner}: {what}={given!r}; expected a list of names or a dict of name -> type",
        field=what,
        value=given,
    )


def input_fields(
    func: Callable[..., Any], hints: dict[str, Any], given: Any = None, owner: str = ""
) -> dict[str, Field]:
    """The inputs: the function's parameters, overridden by ``given`` (``inputs=``)."""
    owner = owner or func.__name__
    fields: dict[str, Field] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise SpecError(
                f"{owner}: parameter {param.name!r} is *args/**kwargs; tasks need named parameters",
                field=param.name,
            )
        default = NOTHING if param.default is param.empty else param.default
        fields[param.name] = Field(
            name=param.name, type=hints.get(param.name, Any), default=default
        )
    for name, spec in (
        _named("inputs", given, ArgSpec, owner) if given is not None else {}
    ).items():
        if name not in fields:
            raise SpecError(
                f"{owner}: inputs= names {name!r}, which is not a parameter of the function; "
                f"its parameters are {sorted(fields)}",
                field=name,
            )
        fields[name] = _override(fields[name], spec)
    return {name: _checked_default(owner, f) for name, f in fields.items()}


def _override(field: Field, spec: Any) -> Field:
    if isinstance(spec, ArgSpec):
        changes: dict[str, Any] = {"help": spec.help}
        if spec.type is not _UNSET:
            changes["type"] = spec.type
        if spec.default is not NOTHING:
            changes["default"] = spec.default
        if spec.allowed_values is not None:
            changes["allowed_values"] = spec.allowed_values
        return attrs.evolve(field, **changes)
    if spec is _UNSET:
        return field
    return attrs.evolve(field, type=spec)  # a type alone


def _checked_default(owner: str, field: Field) -> Field:
    default, factory = declared_default(field.name, field.default)
    field = attrs.evolve(field, default=default, default_factory=factory)
    if field.default is NOTHING or field.default is None:
        return field
    try:
        return attrs.evolve(field, default=coerce(field.name, field.type, field.default))
    except SpecError as err:
        raise SpecError(
            f"{owner}: default of input {field.name!r}: {err}", field=field.name
        ) from None


def output_fields(
    func: Callable[..., Any], hints: dict[str, Any], outputs: Any, owner: str = ""
) -> dict[str, OutputField]:
    """The outputs: ``out`` of the return type when ``outputs`` is None; else the names (and
    types, help) given, checked against the return annotation."""
    owner = owner or func.__name__
    ret = hints.get("return", Any)
    if outputs is None:
        if ret is type(None):  # -> None: no outputs, as in Pydra
            return {}
        return {"out": OutputField(name="out", type=ret)}
    named = _named("outputs", outputs, OutSpec, owner)
    names = list(named)
    inferred = _types_from_return(owner, ret, names)
    fields: dict[str, OutputField] = {}
    for name, tp in zip(names, inferred, strict=True):
        spec = named[name]
        if isinstance(spec, OutSpec):
            fields[name] = OutputField(
                name=name, type=tp if spec.type is _UNSET else spec.type, help=spec.help
            )
        elif spec is _UNSET:
            fields[name] = OutputField(name=name, type=tp)
        else:
            fields[name] = OutputField(name=name, type=spec)
    return fields


def _one_value(tp: Any) -> bool:
    """True for an annotation that can only be one value: a class other than ``object`` that
    is not iterable (a number, a file, a path, a user's class), or text; not a tuple, list,
    set, mapping or abstract collection, nor ``Any``, a union, a type variable or a
    parametrised type."""
    if tp in (Any, object, type(None)) or not isinstance(tp, type) or typing.get_origin(tp):
        return False
    return issubclass(tp, (str, bytes)) or not issubclass(tp, Iterable)


def _types_from_return(owner: str, ret: Any, names: list[str]) -> list[Any]:
    """The type of each named output, from the return annotation; names that cannot fit it
    (three names for ``tuple[int, int]``, two for ``int``, none for ``int``) are refused. Any
    other annotation (``Optional[...]``, lists, dicts, named tuples) is taken at its word."""
    origin, args = typing.get_origin(ret), typing.get_args(ret)
    if not names:
        if _one_value(ret):
            raise SpecError(
                f"{owner}: outputs=[] declares no output, but the function is annotated to "
                f"return {_show(ret)}; return None, or name its outputs",
                field="outputs",
            )
        return []
    if len(names) == 1:
        return [ret]
    if origin is tuple and args and Ellipsis not in args:
        if len(args) == len(names):
            return list(args)
        raise SpecValueError(
            f"{owner}: Length of the outputs ({len(names)}: {names}) does not match the "
            f"return annotation {_show(ret)} ({len(args)} values)",
            field="outputs",
            value=names,
        )
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return [args[0]] * len(names)
    if _one_value(ret):
        raise SpecValueError(
            f"{owner}: Multiple outputs specified ({names}), but the function is annotated to "
            f"return one {_show(ret)}; annotate it -> tuple[...] (or -> dict) with one value "
            "per output",
            field="outputs",
            value=names,
        )
    return [Any] * len(names)


def _show(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else repr(tp)


_SKIP = {"function", "Outputs", "__annotations__", "__dict__", "__weakref__", "__module__"}


def _own_classes(klass: type) -> list[type]:
    """The class and its bases that declare fields (not provgraph's own bases), base first."""
    return [
        c
        for c in reversed(klass.__mro__)
        if c is not object and not c.__module__.startswith("provgraph.")
    ]


def class_parts(
    klass: type,
) -> tuple[Callable[..., Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The class form: its ``function``, its inputs (name -> ``arg``), its outputs (name ->
    ``out``), from annotations and declarations of the class and its bases and of ``class
    Outputs``, and its other members (helpers, constants), kept on the task class."""
    function = getattr(klass, "function", None)
    raw = next((c.__dict__["function"] for c in klass.__mro__ if "function" in c.__dict__), None)
    if isinstance(raw, (staticmethod, classmethod)):
        function = raw.__func__
    if not inspect.isfunction(function):
        raise SpecError(
            f"{klass.__name__}: a class-form task needs a static method 'function' computing "
            "its outputs from its inputs",
            field="function",
        )
    inputs: dict[str, Any] = {}
    members: dict[str, Any] = {}
    for owner in _own_classes(klass):
        for field in owner.__dict__.get("_input_fields", {}).values():  # a task class as base
            inputs[field.name] = ArgSpec(
                name=field.name, type=field.type, default=field.default, help=field.help
            )
        hints = _class_hints(owner)
        for name, value in owner.__dict__.items():
            if name in _SKIP or name.startswith("__"):
                continue
            if isinstance(value, OutSpec):
                raise SpecError(
                    f"{klass.__name__}: {name!r} is a python.out(...) among the inputs; "
                    "outputs go in class Outputs",
                    field=name,
                )
            if isinstance(value, ArgSpec) and name not in hints:  # declared without annotation
                inputs[name] = attrs.evolve(value, name=name)
            elif name not in hints and not name.startswith("_"):
                members[name] = value
        for name, tp in hints.items():
            if name in _SKIP or name.startswith("_"):
                continue
            value = owner.__dict__.get(name, NOTHING)
            if isinstance(value, ArgSpec):
                inputs[name] = attrs.evolve(
                    value, name=name, type=tp if value.type is _UNSET else value.type
                )
            else:
                inputs[name] = ArgSpec(name=name, type=tp, default=value)
    outputs: dict[str, Any] = {}
    for owner in _own_classes(klass):
        for field in owner.__dict__.get("_output_fields", {}).values():  # a task class as base
            outputs[field.name] = OutSpec(name=field.name, type=field.type, help=field.help)
    holder = getattr(klass, "Outputs", None)
    if holder is not None:
        members["Outputs"] = holder  # T.Outputs, as in Pydra
        for owner in _own_classes(holder):
            hints = _class_hints(owner)
            for name, value in owner.__dict__.items():
                if isinstance(value, OutSpec) and name not in hints:
                    outputs[name] = attrs.evolve(value, name=name)
            for name, tp in hints.items():
                value = owner.__dict__.get(name)
                if isinstance(value, OutSpec):
                    outputs[name] = attrs.evolve(
                        value, name=name, type=tp if value.type is _UNSET else value.type
                    )
                else:
                    outputs[name] = OutSpec(name=name, type=tp)
    return function, inputs, outputs, members


def _class_hints(klass: type) -> dict[str, Any]:
    """A class's own annotations, evaluated where possible (``Any`` where not)."""
    own = inspect.get_annotations(klass)
    try:
        evaluated = typing.get_type_hints(klass)
    except Exception:
        evaluated = {}
    return {name: evaluated.get(name, Any if isinstance(a, str) else a) for name, a in own.items()}
