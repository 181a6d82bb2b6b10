"""Building task classes and their definition hashes (shared by every kind of task)."""

from __future__ import annotations

import contextlib
import inspect
import re
from pathlib import PurePath
from typing import Any

from ..hashing import H, hash_value
from .base import Outputs, TaskDef
from .fields import NOTHING, Field, OutputField, path_valued, type_name

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def check_task_name(name: Any) -> str:
    """Task names become directory names: letters, digits, ``_``, ``.`` and ``-`` only."""
    from ..exceptions import SpecError

    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SpecError(
            f"task name {name!r} is not usable; expected letters, digits, '_', '.' or '-', "
            "starting with a letter or '_'",
            field="name",
            value=name,
        )
    return name


def fields_digest(inputs: dict[str, Field], outputs: dict[str, OutputField]) -> bytes:
    """Hash of the declared fields: names, types, defaults and command-line placement."""
    parts = []
    for f in inputs.values():
        if f.implicit:
            continue  # the same on every task of its kind (a shell task's executable...)
        default_value = f.default
        if isinstance(default_value, PurePath):
            default_value = str(default_value)  # a default file is its path, read at run time
        default = b"" if default_value is NOTHING else hash_value(default_value)
        text = f"in|{f.name}|{type_name(f.type)}|{f.argstr}|{f.position}|{f.sep}"
        text += _metadata_text(f, _INPUT_METADATA)
        parts.append(H(b"field", text.encode() + b"|" + default))
    for o in outputs.values():
        template = o.path_template
        if callable(template):
            template = function_text(template, precise=True)
        text = f"out|{o.name}|{type_name(o.type)}|{template}|{o.glob}|{o.argstr}|{o.position}"
        text += _metadata_text(o, _OUTPUT_METADATA)
        if o.callable is not None and path_valued(o.type):
            text += "|callable value as declared"  # (older results kept the bare value)
        parts.append(H(b"field", text.encode()))
    return H(b"fields", b"".join(parts))


# metadata added after the first release: written into the hash only when not the default, so
# that definitions not using it keep their hashes (and their caches)
# (rules that only refuse values, xor, requires and allowed_values, are not hashed)
_INPUT_METADATA = {"formatter": None, "on_command": True, "copy_mode": None, "readonly": False}
_OUTPUT_METADATA = {
    "callable": None,
    "keep_extension": True,
    "settable": False,
    "sep": None,
    "requires": (),
    "named_default": NOTHING,
}


def _metadata_text(field: Any, defaults: dict[str, Any]) -> str:
    text = ""
    for key, default in defaults.items():
        value = getattr(field, key)
        if value != default:
            shown = function_text(value) if callable(value) else repr(value)
            text += f"|{key}={shown}"
    return text


def function_text(function: Any, *, precise: bool = False) -> str:
    """A function's identity in a hash: its source, or its qualified name without one.
    ``precise`` (path template functions): a lambda by its own expression (not the line
    around it, whose ``help=`` text is documentation), and a function whose source cannot be
    read (made by ``exec``) by its code. Formatters and callables keep the first rule, which
    their hashes were made with."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        if precise:
            return "code:" + _code_text(function.__code__)
        return (
            f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', function)}"
        )
    if not precise or function.__name__ != "<lambda>":
        return source
    return _lambda_expression(source)


def _lambda_expression(source: str) -> str:
    """The one lambda in ``source`` (the lines ``inspect`` gives), as ``ast`` writes it back;
    ``source`` itself when there is not exactly one."""
    import ast
    import textwrap

    statement = textwrap.dedent(source).strip().rstrip(",")
    try:
        tree = ast.parse(statement)
    except SyntaxError:  # a lambda inside a larger expression spread over lines
        try:
            tree = ast.parse("(" + statement + ")")
        except SyntaxError:
            return source
    lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
    return ast.unparse(lambdas[0]) if len(lambdas) == 1 else source


def _code_text(code: Any) -> str:
    """A code object's instructions, constants (nested code too) and names, as text."""
    consts = [_code_text(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return repr((code.co_code.hex(), consts, code.co_names, code.co_varnames))


def definition_digest(kind: str, name: str, body: str, version: str | None, fields: bytes) -> bytes:
    """H(kind, name, normalised source or command, version, fields): a task's identity."""
    payload = b"".join(
        [
            hash_value(kind),
            hash_value(name),
            hash_value(body),
            hash_value(version),
            fields,
        ]
    )
    return H(b"TaskDefinition", payload)


def make_task_class(
    base: type[TaskDef],
    *,
    kind: str,
    name: str,
    module: str,
    qualname: str,
    doc: str | None,
    inputs: dict[str, Field],
    outputs: dict[str, OutputField],
    body: str,
    version: str | None,
    extra: dict[str, Any],
) -> type[TaskDef]:
    """Create the task class, with its definition hash computed once, here."""
    digest = definition_digest(kind, name, body, version, fields_digest(inputs, outputs))
    namespace: dict[str, Any] = {
        "_kind": kind,
        "_task_name": name,
        "_version": version,
        "_input_fields": inputs,
        "_output_fields": outputs,
        "_definition_hash": digest,
        "_definition_text": body,
        "_has_rules": any(f.xor or f.requires or f.readonly for f in inputs.values())
        or bool(extra.get("_one_of")),
        "_default_factories": tuple(
            (n, f.default_factory) for n, f in inputs.items() if f.default_factory is not None
        ),
        "__module__": module,
        "__qualname__": qualname,
        "__doc__": doc,
        **extra,
    }
    cls = type(qualname.rsplit(".", 1)[-1], (base,), namespace)
    own: Any = type(  # the class of T's outputs (its results' outputs are of it)
        "Outputs",
        (Outputs,),
        {"__qualname__": f"{qualname}.Outputs", "__module__": module, "__slots__": ()},
    )
    own._task = cls
    cls._outputs_class = own  # type: ignore[attr-defined]
    if "Outputs" not in inputs and not hasattr(cls, "Outputs"):  # T.Outputs, as in Pydra
        cls.Outputs = own  # type: ignore[attr-defined]  # (a class form keeps its own)
    else:
        kept = getattr(cls, "Outputs", None)
        if isinstance(kept, type) and kept is not own:
            with contextlib.suppress(AttributeError, TypeError):  # (get_fields finds T by it)
                kept._provgraph_task = cls  # type: ignore[attr-defined]
    return cls
