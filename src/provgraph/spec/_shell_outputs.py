"""Where a shell task's output files go, and how they are found after the command ran.

An output is placed by its ``path_template`` (or, when it is settable, by the name the user
gave its input of the same name), computed by a ``callable`` after the run, matched by
``glob``, or, declared by type only, found by its name in the job's directory.

Path templates are ``str.format`` over the inputs, plus ``{name}`` (the field's own name) and
``{suffix}`` (the suffixes of the first input file). A plain ``{field}`` whose value is a path
follows Pydra's rule: it gives the file's name without its extension, and that extension
(unless ``keep_extension=False``) ends the result when the template ends with the field or has
no extension of its own. A template naming an input that is None makes no output.
"""

from __future__ import annotations

import os
import string
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._fileformats import as_fileset, candidates, format_name
from .._filetypes import Directory, File
from ..exceptions import OutputNotFoundError, SpecError
from ._cmdline import call_with
from .fields import (
    as_list_type,
    declares_path,
    engine_name,
    is_optional,
    list_item,
    outside_directory,
    requirements_met,
    unwrap_one,
    without_none,
)

__all__ = ["collect_outputs", "output_paths"]


def _fields_of(template: str) -> list[tuple[str, bool]]:
    """(root name, plain) for each field of a template; plain: no attribute or index."""
    found = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name:
            root = name.split(".")[0].split("[")[0]
            found.append((root, root == name))
    return found


def _first_suffix(inputs: Mapping[str, Any]) -> str:
    for value in inputs.values():
        if isinstance(value, os.PathLike) and value is not None:
            return "".join(Path(value).suffixes)
    return ""


def fill_path_template(
    template: str, name: str, inputs: Mapping[str, Any], keep_extension: bool = True
) -> str | None:
    """The relative path a template gives for these inputs, or None when an input it names
    is None (the output is not made)."""
    fields = _fields_of(template)
    namespace: dict[str, Any] = {"name": name, "suffix": _first_suffix(inputs)}
    for root, _ in fields:
        if root in inputs:
            if inputs[root] is None:
                return None
            namespace[root] = inputs[root]
    paths = [r for r, plain in fields if plain and isinstance(inputs.get(r), os.PathLike)]
    if len(set(paths)) > 1:
        raise SpecError(
            f"output {name!r}: path template {template!r} uses several path inputs "
            f"{sorted(set(paths))}, and a template can't have multiple paths; expected at "
            "most one (its name makes the output's name)",
            field=name,
            value=template,
        )
    try:
        if not paths:
            return template.format_map(namespace)
        stem, dot, ext = os.path.basename(os.fspath(inputs[paths[0]])).partition(".")
        ext = dot + ext if keep_extension else ""
        namespace[paths[0]] = stem
        if template.endswith("{" + paths[0] + "}"):
            namespace[paths[0]] = stem + ext
            return template.format_map(namespace)
        filled = template.format_map(namespace)
        return filled + ext if "." not in template else filled
    except (KeyError, AttributeError, IndexError, ValueError) as err:
        raise SpecError(
            f"output {name!r}: path template {template!r} cannot be filled ({err})",
            field=name,
            value=template,
        ) from err


def inside_job(rel: str, name: str, given: str) -> str:
    """``rel`` if it stays inside the job's directory; else a ``SpecError`` before the command
    runs (an output never lands outside its job)."""
    if outside_directory(rel):
        raise SpecError(
            f"output {name!r}: {given!r} gives {rel!r}, which is outside the job's directory; "
            "expected a relative path inside it (no leading '/', no '..' leading out)",
            field=name,
            value=rel,
        )
    return os.path.normpath(rel)


def template_of(o: Any, inputs: Mapping[str, Any]) -> str:
    """The file name template a ``path_template`` function returns for ``inputs`` (given
    as ``inputs``, with the inputs as attributes, as in Pydra, or by name)."""
    named = {**inputs, "inputs": types.SimpleNamespace(**inputs), "field": o}
    template = call_with(o.path_template, named, f"path_template of output {o.name!r}")
    if not isinstance(template, str) or not template:
        raise SpecError(
            f"output {o.name!r}: path_template function {o.path_template.__name__}() returned "
            f"{template!r}; expected a file name template (a non-empty string)",
            field=o.name,
            value=template,
        )
    return template


def _in_job(rel: str) -> str:
    """A template filled with an absolute path (an input holding one) names its file in the
    job's directory by that path's last part, as Pydra does."""
    return os.path.basename(rel) if os.path.isabs(rel) else rel


def _is_list_type(tp: Any) -> bool:
    return list_item(tp) is not None  # list[X], or MultiOutputObj[X]


def _filled_per_item(template: str, o: Any, inputs: Mapping[str, Any]) -> list[str] | None:
    """For an output typed ``list[...]``: the template filled once per item of the list
    inputs it names (Pydra's ``MultiOutputFile``), all of one length."""
    listed = {
        root: inputs[root]
        for root, _ in _fields_of(template)
        if isinstance(inputs.get(root), (list, tuple))
    }
    lengths = {len(v) for v in listed.values()}
    if len(lengths) > 1:
        raise SpecError(
            f"output {o.name!r}: path template {template!r} names lists of different lengths "
            f"{ {k: len(v) for k, v in listed.items()} }; expected one length",
            field=o.name,
            value=template,
        )
    if not listed:
        one = fill_path_template(template, o.name, inputs, o.keep_extension)
        return None if one is None else [one]
    filled = []
    for k in range(lengths.pop()):
        item = {**inputs, **{root: values[k] for root, values in listed.items()}}
        rel = fill_path_template(template, o.name, item, o.keep_extension)
        if rel is None:
            return None
        filled.append(rel)
    return filled


def output_paths(
    outputs: Mapping[str, Any], inputs: Mapping[str, Any], output_dir: Path
) -> dict[str, Any]:
    """The path of each placed output: a Path, a list of them for an output typed
    ``list[...]`` whose template names list inputs, or None (not made, as its input asked
    or a template input is None)."""
    paths: dict[str, Any] = {}
    for o in outputs.values():
        if o.path_template is None:
            continue
        if callable(o.path_template):  # the template this job's inputs choose
            o = attrs.evolve(o, path_template=template_of(o, inputs))
        chosen = inputs.get(o.name, o.default_choice()) if o.settable else True
        if chosen is False or chosen is None or not requirements_met(o.requires, inputs):
            paths[o.name] = None
            continue
        if chosen is True and _is_list_type(o.type):
            rels = _filled_per_item(o.path_template, o, inputs)
            paths[o.name] = (
                None
                if rels is None
                else [output_dir / inside_job(_in_job(r), o.name, o.path_template) for r in rels]
            )
            continue
        if chosen is True:
            rel = fill_path_template(o.path_template, o.name, inputs, o.keep_extension)
            rel = None if rel is None else _in_job(rel)
            given = o.path_template
        else:
            rel, given = os.fspath(chosen), f"{o.name}={os.fspath(chosen)!r}"
        paths[o.name] = None if rel is None else output_dir / inside_job(rel, o.name, given)
    _distinct(paths)
    return paths


def _distinct(paths: Mapping[str, Any]) -> None:
    """Two outputs placed at one file would overwrite each other: refused, naming both."""
    seen: dict[Path, str] = {}
    for name, placed in paths.items():
        for path in placed if isinstance(placed, list) else [placed]:
            if path is None:
                continue
            if path in seen:
                raise SpecError(
                    f"outputs {seen[path]!r} and {name!r} are both placed at {str(path)!r}; "
                    "expected a file of its own for each (check their templates or names)",
                    field=name,
                    value=str(path),
                )
            seen[path] = name


def as_type(tp: Any, path: Path) -> Any:
    """A path found on disk as the output type declares it (for a union of fileformats
    classes, the first format the file is of)."""
    tp = without_none(tp)
    if isinstance(tp, type) and issubclass(tp, (File, Directory)):
        if path.is_dir() != issubclass(tp, Directory):
            found, wanted = (
                ("a directory", "a file") if path.is_dir() else ("a file", "a directory")
            )
            raise SpecError(f"output {str(path)!r} is {found}; its output is declared {wanted}")
        return tp(path)
    if tp is Path:
        return path
    formats = candidates(tp)
    for fmt in formats:
        try:
            return as_fileset(fmt, path)
        except ValueError:
            continue
    if formats:
        names = [format_name(f) for f in formats][:8]
        raise SpecError(f"output file {str(path)!r} is of none of the formats {names}")
    return Directory(path) if path.is_dir() else File(path)


def _missing(task: str, name: str, what: str, command: str) -> OutputNotFoundError:
    return OutputNotFoundError(
        f"{task}: output {name!r} {what} by command {command!r}", command=command, return_code=0
    )


def collect_outputs(
    task_cls: Any,
    inputs: Mapping[str, Any],
    output_dir: Path,
    command: str,
    streams: Mapping[str, Any],
    paths: Mapping[str, Any],
) -> dict[str, Any]:
    """The declared outputs of a finished command, found or computed; ``paths`` are where
    the placed ones were put (:func:`output_paths`)."""
    task = task_cls._task_name
    found: dict[str, Any] = {}
    for o in task_cls._output_fields.values():
        if o.name in streams:
            continue
        if as_list_type(o.type) is not o.type:  # MultiOutputObj: collected as a list
            o = attrs.evolve(o, type=as_list_type(o.type))
        if not requirements_met(o.requires, inputs):
            found[o.name] = None  # (requires=: the inputs it needs are not set)
            continue
        if o.name in paths and isinstance(paths[o.name], list):
            item_type = (typing.get_args(without_none(o.type)) or (Any,))[0]
            missing = [str(p) for p in paths[o.name] if not p.exists()]
            if missing:
                raise _missing(task, o.name, f"was not created: {missing} do not exist", command)
            found[o.name] = [as_type(item_type, p) for p in paths[o.name]]
        elif o.name in paths:
            path = paths[o.name]
            if path is not None and path.exists():
                found[o.name] = as_type(o.type, path)
            elif path is None or is_optional(o.type):
                found[o.name] = None
            else:
                raise _missing(
                    task, o.name, f"was not created: {str(path)!r} does not exist", command
                )
        elif o.callable is not None:
            named = {
                **inputs,
                **streams,
                "field": o,
                "inputs": dict(inputs),
                "output_dir": output_dir,
                "cache_dir": output_dir,
                "executable": task_cls._executable_of(inputs),
            }
            value = call_with(o.callable, named, f"output {o.name!r} of {task}")
            found[o.name] = _as_declared(task, o, value, output_dir, command)
        elif o.glob is not None:
            found[o.name] = _globbed(task, o, output_dir, command)
        else:  # declared by type only: found by its name
            by_name = {*output_dir.glob(o.name), *output_dir.glob(o.name + ".*")}
            matches = sorted(p for p in by_name if not _engine_file(p, output_dir))
            item = list_item(o.type)
            if item is not None:  # a list (or MultiOutputObj): every file of that name
                found[o.name] = [as_type(item, m) for m in matches]
            elif len(matches) == 1:
                found[o.name] = as_type(o.type, matches[0])
            elif not matches and is_optional(o.type):
                found[o.name] = None
            else:
                raise _missing(
                    task,
                    o.name,
                    f"expects one file named {o.name!r} or {o.name + '.*'!r}, found "
                    f"{[m.name for m in matches]},",
                    command,
                )
    fields = task_cls._output_fields
    return {n: unwrap_one(fields[n].type, v) if n in fields else v for n, v in found.items()}


def _as_declared(task: str, o: Any, value: Any, output_dir: Path, command: str) -> Any:
    """A callable's value as its output declares it: a path (relative ones in the job's
    directory) of a file type becomes that type; one that does not exist is None for an
    optional output, else an error, as for outputs found by template. A list of files is
    made whole or not at all: an optional one missing any of its files is None (as in
    Pydra); one path given for a list is a list of it."""
    item = list_item(o.type)
    if item is not None and declares_path(item):
        if value is None and is_optional(o.type):
            return None
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if None in values and not is_optional(item):
            raise _missing(task, o.name, f"(from its callable) has None in {value!r}", command)
        found = [_as_declared_one(task, o, item, v, output_dir, command) for v in values]
        if is_optional(o.type) and not is_optional(item) and None in found:
            return None
        return found
    if not declares_path(o.type) or value is None:
        return value
    return _as_declared_one(task, o, o.type, value, output_dir, command)


def _as_declared_one(task: str, o: Any, tp: Any, value: Any, output_dir: Path, cmd: str) -> Any:
    if not isinstance(value, (str, os.PathLike)):
        return value  # (a fileformats value, or anything else: as the callable gave it)
    path = Path(value) if os.path.isabs(value) else output_dir / value
    if path.exists():
        return as_type(tp, path)
    if is_optional(tp) or is_optional(o.type):
        return None
    raise _missing(
        task, o.name, f"(from its callable) was not created: {str(path)!r} does not exist", cmd
    )


def _globbed(task: str, o: Any, output_dir: Path, command: str) -> Any:
    matches = sorted(p for p in output_dir.glob(o.glob) if not _engine_file(p, output_dir))
    item = list_item(o.type)
    if item is not None:  # (list[X], also X | None, and MultiOutputObj collected as a list)
        return [as_type(item, p) for p in matches]
    if len(matches) == 1:
        return as_type(o.type, matches[0])
    if not matches and is_optional(o.type):
        return None
    raise _missing(
        task, o.name, f"expects one file matching {o.glob!r}, found {len(matches)},", command
    )


def _engine_file(path: Path, output_dir: Path) -> bool:
    """Whether a file found in a job's directory is the engine's own (the command's streams,
    the result, the lock, provenance records, placed inputs): never an output by pattern."""
    return engine_name(path.relative_to(output_dir).parts[0])
