"""Field declarations and the checking of values against declared types.

A field is plain data: name, type, default and, for shell tasks, how it appears on the command
line. :func:`coerce` checks one value against a type and returns it in canonical form (an ``int``
given to a ``float`` field becomes a ``float``; a string given to a ``File`` field becomes a
``File``), so that equal inputs hash equally however they were written.
"""

from __future__ import annotations

import os
import pathlib
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .._fileformats import is_fileset
from .._filetypes import Directory, File
from ..exceptions import InputFileError, InputRuleError, SpecError, SpecValueError

__all__ = [
    "NOTHING",
    "Field",
    "MultiInputObj",
    "OutputField",
    "OutputName",
    "check_allowed",
    "check_rules",
    "coerce",
    "coerce_split",
    "type_name",
]

NOTHING = attrs.NOTHING


@attrs.frozen(kw_only=True)
class Field:
    """One input of a task.

    ``argstr``, ``position`` and ``sep`` say how a shell task writes the field on its command
    line: ``argstr`` is the flag written before the value (a bool field writes only the flag,
    when true), ``position`` orders arguments (negative counts from the end), ``sep`` joins
    a list into a single argument instead of one argument per item.
    """

    name: str
    type: Any = Any
    default: Any = NOTHING
    help: str = ""
    argstr: str | None = None
    position: int | None = None
    sep: str | None = None
    xor: tuple[str, ...] = ()  # inputs that may not be set with this one
    requires: tuple[str, ...] = ()  # inputs that must be set when this one is
    formatter: Any = None  # a function giving the field's command-line text (shell)
    on_command: bool = True  # False: not on the command line (shell ``argstr=None``)
    allowed_values: tuple[Any, ...] | None = None  # the only values accepted, when given
    copy_mode: str | None = None  # a file input copied or linked into the job's directory
    readonly: bool = False  # never set by the user; its argstr is filled from other fields
    default_factory: Any = None  # attrs.Factory's function: each task gets a value of its own
    implicit: bool = False  # every task of its kind has it; a default value is not hashed

    @property
    def mandatory(self) -> bool:
        """True when the field has no default and must be given."""
        return self.default is NOTHING

    def left_implicit(self, value: Any) -> bool:
        """True for an implicit input left at its default: as if absent (not hashed, not
        recorded, not passed to the job). A command given as a string or as its list of words
        is the same command (``"echo"`` and ``["echo"]``)."""
        if not self.implicit:
            return False
        if value == self.default:
            return True
        words = command_words(value)
        return words is not None and words == command_words(self.default)


def command_words(value: Any) -> list[str] | None:
    """A command given as one string or as a list of words, as its words; None for neither."""
    if isinstance(value, str):
        import shlex

        return shlex.split(value)
    if isinstance(value, (list, tuple)):
        return [str(w) for w in value]
    return None


@attrs.frozen(kw_only=True)
class OutputField:
    """One output of a task.

    For shell tasks, ``path_template`` names the file the engine places in the job's directory
    (``str.format`` over the inputs, plus ``{name}``, the field's own name, and ``{suffix}``,
    the suffixes of the first input file, unless inputs have those names), ``argstr``/``position``
    put that path on the command line, and an output without a template is read from the
    files the command leaves behind by ``glob``. A ``path_template`` may also be a function
    of the inputs that returns the template for a job.
    """

    name: str
    type: Any = Any
    help: str = ""
    path_template: Any = None  # a template (str), or a function returning one
    glob: str | None = None
    argstr: str | None = None
    position: int | None = None
    callable: Any = None  # computes the value after the command ran (shell)
    keep_extension: bool = True  # a path input's extension kept in the file name (shell)
    settable: bool = False  # an input of the same name may name the file, or turn it off
    sep: str | None = None
    requires: tuple[tuple[Any, ...], ...] = ()  # None unless one group of requirements is met
    # a settable output: its input's default (outarg(default=)); NOTHING: by its type
    named_default: Any = attrs.field(factory=lambda: NOTHING)

    def default_choice(self) -> Any:
        """A settable output's input when not set: as declared, else ``True`` (made by its
        template) for a mandatory output, and for an optional one with ``requires`` (made
        when they are set, as in Pydra), ``None`` (not made) for another optional one."""
        if self.named_default is not NOTHING:
            return self.named_default
        return None if is_optional(self.type) and not self.requires else True


def is_optional(tp: Any) -> bool:
    """Whether ``tp`` admits ``None`` (``X | None``)."""
    return type(None) in typing.get_args(tp)


def without_none(tp: Any) -> Any:
    """``tp`` without ``| None``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if is_optional(tp) and len(args) == 1 else tp


def declares_path(tp: Any) -> bool:
    """Whether ``tp`` (``| None`` aside) is a file, directory or path type, or names
    fileformats classes: the types a path value is converted to."""
    tp = without_none(tp)
    if isinstance(tp, type) and issubclass(tp, (File, Directory, pathlib.Path)):
        return True
    from .._fileformats import candidates

    return bool(candidates(tp))


def list_item(tp: Any) -> Any:
    """The item type of ``list[X]`` or ``MultiOutputObj[X]`` (``| None`` aside), else None."""
    plain = without_none(tp)
    multi = _multi_out_item(plain)
    if multi is not None:
        return multi
    return (
        typing.get_args(plain)[0]
        if typing.get_origin(plain) is list and typing.get_args(plain)
        else None
    )


def as_list_type(tp: Any) -> Any:
    """``MultiOutputObj[X]`` (``| None`` kept) as ``list[X]``, the type its values are
    collected as before one item alone is unwrapped; any other type as it is."""
    item = _multi_out_item(without_none(tp))
    if item is None:
        return tp
    return list[item] | None if is_optional(tp) else list[item]  # type: ignore[valid-type]


def unwrap_one(tp: Any, value: Any) -> Any:
    """A value collected for ``MultiOutputObj[X]``: its one item alone, when it holds one."""
    if _multi_out_item(without_none(tp)) is not None and isinstance(value, list):
        return value[0] if len(value) == 1 else value
    return value


def path_valued(tp: Any) -> bool:
    """Whether a value computed for an output declared ``tp`` is converted to paths: ``tp``
    declares a path, or is a list of such."""
    item = list_item(tp)
    return declares_path(tp) or (item is not None and declares_path(item))


class OutputName(str):
    """The type of the input that names a settable output file: a relative path in the
    job's directory (a plain ``str`` once set)."""


def allowed_tuple(allowed_values: Any, where: str) -> tuple[Any, ...] | None:
    """``allowed_values=`` of ``where`` (``"python.arg"``...) as a tuple, or None."""
    if allowed_values is None:
        return None
    if isinstance(allowed_values, (str, bytes)) or not hasattr(allowed_values, "__iter__"):
        raise SpecError(
            f"{where}(allowed_values={allowed_values!r}): expected a list of values",
            field="allowed_values",
            value=allowed_values,
        )
    return tuple(allowed_values)


def check_allowed(field: Field, value: Any) -> None:
    """A ``SpecError`` when ``field`` lists its allowed values and ``value`` is not one."""
    allowed = field.allowed_values
    if allowed is None or value is None or value is NOTHING or _is_lazy(value):
        return
    bad = _not_allowed(value, allowed)
    if bad is not None:
        raise SpecValueError(
            f"input {field.name!r}: got {bad[0]!r}; the value of {field.name} has to be one "
            f"of {list(allowed)}",
            field=field.name,
            value=bad[0],
        )


def _not_allowed(value: Any, allowed: tuple[Any, ...]) -> tuple[Any] | None:
    """(the first value not allowed,), looking into lists (split over, or list-typed)."""
    if value in allowed:
        return None
    if isinstance(value, (list, tuple)) and value:
        for item in value:
            bad = _not_allowed(item, allowed)
            if bad is not None:
                return bad
        return None
    return (value,)


def _is_lazy(value: Any) -> bool:
    return getattr(value, "_provgraph_lazy", False) is True


def type_name(tp: Any) -> str:
    """A stable text form of a type, used in definition hashes and messages."""
    if tp is Any:
        return "Any"
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(tp, type):
        if tp.__module__ in ("builtins", "provgraph._filetypes", "pathlib", __name__):
            return tp.__name__
        return f"{tp.__module__}.{tp.__qualname__}"
    return str(tp)


T = typing.TypeVar("T")


class MultiInputObj(list[T]):
    """An input type that takes one value or a list of them: ``MultiInputObj[int]`` given
    ``3`` holds ``[3]`` (Pydra's ``MultiInputObj``). The value is a plain list."""


class MultiOutputObj(list[T]):
    """An output type: a list of values, but its one item alone when it holds one
    (Pydra's ``MultiOutputObj``): ``MultiOutputObj[float]`` given ``[3.5]`` holds ``3.5``."""


def _item_of(tp: Any, kind: type) -> Any:
    """The item type of ``kind[...]`` (``Any`` when bare), or None for other types."""
    if tp is kind:
        return Any
    if typing.get_origin(tp) is kind:
        args = typing.get_args(tp)
        return args[0] if args else Any
    return None


def _multi_item(tp: Any) -> Any:
    """The item type of ``MultiInputObj[...]`` (``Any`` when bare), or None."""
    return _item_of(tp, MultiInputObj)


def _multi_out_item(tp: Any) -> Any:
    """The item type of ``MultiOutputObj[...]`` (``Any`` when bare), or None."""
    return _item_of(tp, MultiOutputObj)


class _Mismatch(Exception):
    """Internal: a value does not fit a type."""


class _MissingPath(_Mismatch):
    """Internal: a path given for a fileformats type names nothing (or a broken link)."""


_EXACT = frozenset((int, float, str, bool))  # a value of exactly one of these is canonical


def _coerce(tp: Any, value: Any) -> Any:
    if tp is Any or tp is object or (type(value) is tp and tp in _EXACT):
        return value
    item, one_alone = _multi_item(tp), False  # one value or a list of them: a list
    if item is None:  # MultiOutputObj: a list, but its one item alone
        item, one_alone = _multi_out_item(tp), True
    if item is not None:
        many = _is_sequence(value) and not isinstance(value, (str, bytes))
        items = _coerce_generic(list, (item,), value if many else [value])
        return items[0] if one_alone and len(items) == 1 else items
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if is_fileset(value) and any(  # of a listed format
            isinstance(a, type) and isinstance(value, a) for a in args
        ):
            return value
        missing: _MissingPath | None = None
        for arg in args:
            try:
                return _coerce(arg, value)
            except _MissingPath as err:  # (another member may take the value as it is)
                missing = err
            except _Mismatch:
                continue
        raise missing or _Mismatch
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if origin in (list, Sequence, tuple, dict, Mapping, set, frozenset):
        return _coerce_generic(origin, typing.get_args(tp), value)
    if tp is type(None) or tp is None:
        if value is None:
            return None
        raise _Mismatch
    return _coerce_plain(tp, value)


def _coerce_generic(origin: Any, args: tuple[Any, ...], value: Any) -> Any:
    if origin in (list, Sequence):
        if isinstance(value, (str, bytes)) or not _is_sequence(value):
            raise _Mismatch
        item = args[0] if args else Any
        return [_coerce(item, v) for v in value]
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not _is_sequence(value):
            raise _Mismatch
        value = list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v) for v in value)
        if args and len(args) != len(value):
            raise _Mismatch
        return (
            tuple(_coerce(a, v) for a, v in zip(args, value, strict=True)) if args else tuple(value)
        )
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch
        kt, vt = args if args else (Any, Any)
        return {_coerce(kt, k): _coerce(vt, v) for k, v in value.items()}
    if not isinstance(value, (set, frozenset, list, tuple)):
        raise _Mismatch
    item = args[0] if args else Any
    return origin(_coerce(item, v) for v in value)


def _is_sequence(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return True
    return type(value).__name__ == "ndarray" and getattr(value, "ndim", 0) >= 1


def _coerce_plain(tp: Any, value: Any) -> Any:
    if tp is float:
        if isinstance(value, bool) or not _is_real(value):
            raise _Mismatch
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not _is_integer(value):
            raise _Mismatch
        return int(value)
    if tp is bool:
        if type(value).__name__ in ("bool", "bool_"):
            return bool(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):  # a path given as text, as in Pydra
            return os.fspath(value)
        if is_fileset(value) and hasattr(value, "fspath"):
            return os.fspath(value.fspath)
        raise _Mismatch
    if isinstance(tp, type) and issubclass(tp, (File, Directory)):
        if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
            if not os.fspath(value):  # ("" is no path: not the current directory)
                raise _Mismatch
            return tp(os.path.abspath(value))
        raise _Mismatch
    if tp is OutputName:
        if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
            return _output_name(os.fspath(value))
        raise _Mismatch
    if tp is pathlib.Path or tp is pathlib.PurePath:
        if isinstance(value, (str, os.PathLike)):
            return pathlib.Path(os.path.abspath(value))
        raise _Mismatch
    if isinstance(tp, type) and "fileformats.core" in sys.modules:  # (also a user's format)
        from .._fileformats import as_fileset, is_fileset_type

        if is_fileset_type(tp):
            given = isinstance(value, (str, os.PathLike)) and not is_fileset(value)
            if given and not os.path.exists(value):
                raise _MissingPath(os.fspath(value))  # (a fileformats set is made of files)
            try:
                return as_fileset(tp, value)
            except ValueError:
                raise _Mismatch from None
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value  # a typing construct we do not check (TypeVar, NewType, ...)


# what the engine keeps in a job's directory: no output may be named so
RESERVED_NAMES = ("stdout.txt", "stderr.txt", "_result.pkl", "_error.json", "_lock", "_copied")


def engine_name(first: str) -> bool:
    """Whether a name in a job's directory (its first part) is one the engine keeps: the
    command's streams, the result, the lock, placed inputs, provenance records (``_prov*``)."""
    return first in RESERVED_NAMES or first.startswith("_prov")


def outside_directory(rel: str) -> bool:
    """True when the relative path ``rel`` is empty, absolute, the directory itself, or
    leads out of it with ``..``: no output file may be placed there."""
    normal = os.path.normpath(rel) if rel else ""
    return not normal or os.path.isabs(normal) or normal == "." or normal.split(os.sep)[0] == ".."


def _output_name(name: str) -> str:
    if outside_directory(name):
        raise SpecError(
            f"output file name {name!r} is outside the job's directory; expected a relative "
            "path inside it (no leading '/', no '..' leading out), or True/False",
            value=name,
        )
    if engine_name(os.path.normpath(name).split(os.sep)[0]):
        raise SpecError(
            f"output file name {name!r} is one the engine keeps in the job's directory; "
            f"expected another name (not {', '.join(RESERVED_NAMES)} or _prov*)",
            value=name,
        )
    return name


def _is_real(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    return (
        type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iuf"
    )


def _is_integer(value: Any) -> bool:
    if isinstance(value, int):
        return True
    return (
        type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iu"
    )


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def declared_default(field: str, default: Any) -> tuple[Any, Any]:
    """A declared default as (its value, the function giving each task one of its own, or
    None). An ``attrs.Factory`` (Pydra's fields are attrs fields, so its users write
    ``default=attrs.Factory(list)``) is called once here for the definition's value (its
    hash, its description), and its function is kept for each task."""
    if not isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return default, None
    if default.takes_self:
        raise SpecError(
            f"input {field!r}: default={default!r}; expected a value or "
            "attrs.Factory(f) without takes_self (a task's inputs are not an instance yet)",
            field=field,
            value=default,
        )
    return default.factory(), default.factory


def coerce(field: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against ``tp`` for input ``field``; return its canonical form."""
    try:
        return _coerce(tp, value)
    except _MissingPath as missing:
        path = missing.args[0]
        what = "a broken link" if os.path.islink(path) else "nothing"
        raise InputFileError(
            f"input {field!r}: the file system path(s) [{path!r}] do not exist ({what} is "
            f"there); expected existing files of {type_name(tp)}",
            field=field,
            path=path,
        ) from None
    except _Mismatch:
        raise SpecError(
            f"input {field!r}: got {_describe(value)}, expected {type_name(tp)}",
            field=field,
            value=value,
        ) from None


def coerce_split(field: str, tp: Any, value: Any) -> list[Any]:
    """Check a value that is split over: a list of ``tp`` items (or of nested lists of them,
    for fields zipped with a many-dimensional split; each element is checked again when the
    split is expanded)."""
    if isinstance(value, (str, bytes)) or not _is_sequence(value):
        raise SpecError(
            f"input {field!r} is split over but its value {_describe(value)} is not a list; "
            f"expected a list of {type_name(tp)}",
            field=field,
            value=value,
        )
    items = []
    for item in value:
        try:
            items.append(fits_possibly_split(tp, item))
        except _Mismatch:
            coerce(field, tp, item)  # raises the SpecError naming the item
    return items


def fits_possibly_split(tp: Any, value: Any) -> Any:
    """Coerce ``value`` to ``tp``, or, failing that, each item of a (nested) list of them.

    Used when inputs are set: a value may be meant for splitting later, so a list of fitting
    items is accepted now and checked again when the splitter is known.
    """
    try:
        return _coerce(tp, value)
    except _Mismatch:
        if isinstance(value, (str, bytes)) or not _is_sequence(value) or len(value) == 0:
            raise
        return [fits_possibly_split(tp, v) for v in value]


def _is_set(value: Any) -> bool:
    return value is not None and value is not NOTHING and value is not False


def requirements_met(groups: tuple[tuple[Any, ...], ...], values: Mapping[str, Any]) -> bool:
    """Whether one of the ``requires`` groups of an output is met: each of its inputs set
    (an item ``(name, values)``: set to one of those values)."""
    return not groups or any(all(_required(r, values) for r in group) for group in groups)


def requirement_name(item: Any) -> str:
    """The input an output's requirement names (``"a"``, or ``("a", (2, 3))``)."""
    return item if isinstance(item, str) else item[0]


def _required(item: Any, values: Mapping[str, Any]) -> bool:
    if isinstance(item, str):
        return _is_set(values.get(item))
    value = values.get(item[0])
    return _is_set(value) and value in item[1]


UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "<a connection>"})()


def check_rules(
    task: str,
    fields: Mapping[str, Field],
    values: Mapping[str, Any],
    one_of: tuple[tuple[str, ...], ...] = (),
) -> None:
    """The ``xor`` and ``requires`` rules of ``fields`` over one job's ``values``: a
    ``SpecError`` naming the fields when one is broken (``None``, unset and ``False`` count as
    not set; :data:`UNKNOWN`, a value not known yet, counts as set for ``requires`` and is
    checked later for ``xor``)."""
    for field in fields.values():
        value = values.get(field.name)
        if field.readonly and _is_set(value):
            raise InputRuleError(
                f"{task}: input {field.name!r} is read only (its argstr "
                f"{field.argstr!r} is filled from other fields); got {value!r}, expected it "
                "left unset",
                field=field.name,
                value=value,
            )
        if (not field.xor and not field.requires) or not _is_set(value) or value is UNKNOWN:
            continue
        clash = [
            n
            for n in field.xor
            if n != field.name and _is_set(values.get(n)) and values.get(n) is not UNKNOWN
        ]
        if clash:
            together = ", ".join(
                f"{n}={values.get(n)!r}" for n in fields if n == field.name or n in clash
            )
            raise InputRuleError(
                f"{task}: Mutually exclusive fields ({together}) are set together: inputs "
                f"{field.name!r} and {clash[0]!r} are mutually exclusive (xor); set only one "
                f"of {sorted({field.name, *field.xor})}",
                field=field.name,
                value=values.get(field.name),
            )
        missing = [n for n in field.requires if not _is_set(values.get(n))]
        if missing:
            raise InputRuleError(
                f"{task}: input {field.name!r} requires {missing} to be set as well",
                field=field.name,
                value=values.get(field.name),
            )
    for group in one_of:
        if not any(_is_set(values.get(n)) for n in group):
            raise InputRuleError(
                f"{task}: At least one of the mutually exclusive fields should be set: one of "
                f"the inputs {list(group)} must be set (they exclude each other, and one is "
                "required)",
                field=group[0],
            )
