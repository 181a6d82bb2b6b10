"""Shell command lines from field metadata, by Pydra 1.0's rules.

Each field on the command line gives a group of words; groups are ordered by ``position``
(positive from the start, then fields without a position in declaration order, then negative
ones, ``-1`` last), after the executable and before ``append_args``. Within a field:

* ``formatter`` (a function of any of ``field``, ``inputs`` and input names) returns the text;
* a bool writes its flag when true (``argstr`` without ``{...}``);
* ``MultiInputObj`` values are written item by item;
* ``argstr`` ending in ``...`` repeats the flag before each item of a list;
* an ``argstr`` with ``{field}`` templates is filled from the job's values (the field's own
  list joined by ``sep``);
* otherwise the flag then the value (a list's items one word each, or joined by ``sep``).

Unset (None) inputs and empty strings or lists write nothing. Where provgraph differs from
Pydra, on purpose (docs/pydra.md): a value is never split at its spaces, an integer 0 is
written, an ``argstr`` ending in ``=`` is joined to its value, and a bool without a flag writes
``true``/``false``.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import string
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import SpecError
from .fields import NOTHING, MultiInputObj

__all__ = ["call_with", "field_words", "parameters", "template_names"]


def _text(value: Any) -> str:
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _listed(value: Any) -> Any:
    """A set's items as a list, in a stable order (by their text); any other value as is."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=_text)
    return value


def _is_multi(tp: Any) -> bool:
    for candidate in (tp, *typing.get_args(tp)):
        if candidate is MultiInputObj or typing.get_origin(candidate) is MultiInputObj:
            return True
    return False


_TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_]\w*)")


def template_names(text: str, strict: bool = False) -> set[str]:
    """The field names a ``{field}`` template (an argstr or path template) refers to
    (``strict``: a ValueError when the template is malformed)."""
    try:
        return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(text) if f}
    except ValueError:
        if strict:
            raise
        return set(_TEMPLATE_FIELD.findall(text))


def _fill(text: str, values: Mapping[str, Any]) -> str:
    """One word of a template filled; a field whose value is None (unset) writes nothing,
    whatever its format spec."""
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(text):
        parts.append(literal)
        if name is None:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        value = values.get(root)
        if value is None:
            continue
        piece = "{" + name + ("!" + conversion if conversion else "")
        piece += (":" + spec if spec else "") + "}"
        parts.append(piece.format(**{root: value}))
    filled = "".join(parts)
    for before, after in (("[ ", "["), (" ]", "]"), ("[,", "["), (",]", "]")):
        filled = filled.replace(before, after)
    return filled.strip()


def _fill_words(
    argstr: str, values: Mapping[str, Any], own: str | None = None, own_words: Any = None
) -> list[str]:
    """An argstr template's words, each filled: a value with spaces stays one word; a word
    that is exactly ``{own}`` becomes ``own_words`` (a list's items)."""
    words: list[str] = []
    for word in shlex.split(argstr):
        if own is not None and own_words is not None and word == "{" + own + "}":
            words += own_words
        else:
            words.append(_fill(word, values))
    return [w for w in words if w]


def parameters(function: Callable[..., Any]) -> list[tuple[str, bool]]:
    """(name, required) of each parameter a function may be given by name."""
    return [
        (p.name, p.default is p.empty)
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    ]


def call_with(function: Callable[..., Any], named: Mapping[str, Any], what: str) -> Any:
    """Call ``function`` with the arguments it names, taken from ``named`` (a parameter with
    a default keeps it when ``named`` has no such name)."""
    wanted = parameters(function)
    unknown = [n for n, required in wanted if required and n not in named]
    if unknown:
        raise SpecError(
            f"{what}: {function.__name__}() asks for {unknown}, which are neither inputs nor "
            f"one of {sorted(k for k in named if not k.startswith('_'))[:12]}...",
            field=what,
        )
    return function(**{n: named[n] for n, _ in wanted if n in named})


def _formatted(field: Any, values: Mapping[str, Any]) -> list[str]:
    named = {**values, "field": field, "inputs": values}
    text = call_with(field.formatter, named, f"formatter of input {field.name!r}")
    if text is None:
        return []
    if _is_list(text):
        return [_text(t) for t in text if _text(t) != ""]
    return shlex.split(_text(text).strip())


def _one(field: Any, argstr: str, value: Any, values: Mapping[str, Any]) -> list[str]:
    """The words of one value (a whole list, or an item of a MultiInputObj)."""
    sep = " " if getattr(field, "sep", None) is None else field.sep
    repeat = argstr.endswith("...")
    flag = argstr[:-3] if repeat else argstr.replace("...", "")
    templated = "{" in flag and "}" in flag
    if repeat and _is_list(value):
        words: list[str] = []
        for item in value:
            if templated:
                words += _fill_words(flag, {**values, field.name: item})
            elif _is_list(item):  # a list's items, as sep says (a tuple per flag: -p 0 1)
                words += _one(field, flag, item, values)
            elif _text(item) != "":  # an empty item writes nothing, its flag neither
                words += [*_flag_words(flag), _text(item)]
        return words
    if _is_list(value):
        items = [_text(v) for v in value]
        if not items:
            return []
        joined = items if sep.strip() == "" else [sep.join(items)]
        if templated:
            filled = {**values, field.name: sep.join(items)}
            return _fill_words(flag, filled, own=field.name, own_words=joined)
        return _flag_words(flag) + joined
    if templated:
        return _fill_words(flag, {**values, field.name: value})
    text = _text(value)
    if text == "":
        return []
    if flag.endswith("=") and " " not in flag:
        return [flag + text]
    return [*_flag_words(flag), text]


def _flag_words(flag: str) -> list[str]:
    """A plain flag's words (``"-x -y"`` is two)."""
    return shlex.split(flag) if flag else []


def field_words(field: Any, values: Mapping[str, Any]) -> list[str]:
    """The words one input field writes on the command line for the job's ``values``."""
    if getattr(field, "formatter", None) is not None:
        return [] if values.get(field.name) is None else _formatted(field, values)
    if not getattr(field, "on_command", True):
        return []
    if getattr(field, "readonly", False):  # its argstr alone, filled from the other fields
        return _fill_words(field.argstr or "", values)
    value = _listed(values.get(field.name))
    if value is None or value is NOTHING:
        return []
    argstr = field.argstr or ""
    if isinstance(value, bool) and "{" not in argstr:
        if argstr:
            return [argstr] if value else []
        return [str(value).lower()]
    if _is_multi(field.type) and _is_list(value):
        return [w for item in value for w in _one(field, argstr, item, values)]
    return _one(field, argstr, value, values)
