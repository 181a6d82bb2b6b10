"""Shell tasks: a command template, or a class for what a template cannot say.

Template form::

    Resample = shell.define(
        "python3 resample.py <in_file:File> <out|out_file:File> --voxel <voxel:float>"
    )

* the words before the first field or flag are the command;
* ``<name:type>`` is an input (``<name:type=default>`` optional with a default,
  ``<name:type?>`` optional, left out when None); a word starting with ``-`` just before a
  field is that field's flag; a bool field after a flag writes the flag only when true;
* ``<out|name:File>`` is an output file the engine places in the job's directory, named after
  the field with the suffix of the first input file (``<out|name:File=result.txt>`` names it);
* list values are written one argument per item after the flag.

Class form: see :func:`define` and :func:`arg` / :func:`out`. Every shell task also outputs
``return_code``, ``stdout`` and ``stderr``; a non-zero exit fails the job.

``shell.define(..., environment=Podman("localhost/tool"))`` runs the task's command in that
environment (see :mod:`provgraph.environments`) unless the submission gives another one.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shlex
import string
import subprocess
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .._filetypes import Directory, File
from ..exceptions import CommandError, SpecError
from ._definition import check_task_name, make_task_class
from .base import TaskDef
from .fields import NOTHING, Field, OutputField, coerce
from .resources import check_resources

__all__ = ["ShellTask", "arg", "define", "out"]

_FIELD_RE = re.compile(
    r"^<(?:(?P<out>out)\|)?(?P<name>[A-Za-z_]\w*)(?::(?P<type>[^=>?]+))?(?P<opt>\?)?"
    r"(?:=(?P<default>[^>]*))?>$"
)
_TYPE_NAMES: dict[str, Any] = {
    "File": File,
    "Directory": Directory,
    "Path": Path,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "None": None,
    "Any": Any,
}
_INTERPRETER_RE = re.compile(r"^(python[0-9.]*|bash|sh|zsh|Rscript|perl|ruby|node|julia)$")
_STD_OUTPUTS = {
    "return_code": OutputField(name="return_code", type=int),
    "stdout": OutputField(name="stdout", type=str),
    "stderr": OutputField(name="stderr", type=str),
}
_TAIL_LINES = 20


@attrs.frozen
class _Literal:
    """A fixed word of the command line after the command itself."""

    text: str


class ShellTask(TaskDef):
    """Base of shell tasks."""

    _kind = "shell"
    _executable: tuple[str, ...] = ()
    _layout: tuple[Any, ...] = ()  # command-line items in order: field names and _Literal
    _environment: Any = None  # where the command runs by default; not part of the definition

    @classmethod
    def _output_paths(cls, inputs: dict[str, Any], output_dir: Path) -> dict[str, Path]:
        files = [v for v in inputs.values() if isinstance(v, (File, Path)) and v is not None]
        suffix = "".join(Path(files[0]).suffixes) if files else ""
        namespace = {k: v for k, v in inputs.items() if v is not None}
        paths = {}
        for o in cls._output_fields.values():
            if o.path_template is None:
                continue
            try:
                rel = o.path_template.format_map({"name": o.name, "suffix": suffix, **namespace})
            except (KeyError, AttributeError, IndexError) as err:
                raise SpecError(
                    f"output {o.name!r} of {cls._task_name}: path template "
                    f"{o.path_template!r} cannot be filled ({err})",
                    field=o.name,
                ) from err
            paths[o.name] = output_dir / _inside_job(rel, o.name, o.path_template)
        return paths

    @classmethod
    def command_line(cls, inputs: dict[str, Any], output_dir: Path) -> list[str]:
        """The argument vector for these inputs, with outputs placed in ``output_dir``."""
        paths = cls._output_paths(inputs, output_dir)
        argv = list(cls._executable)
        for item in cls._ordered_layout():
            if isinstance(item, _Literal):
                argv.append(item.text)
            elif item in paths:
                o = cls._output_fields[item]
                argv.extend(_render(o.argstr, None, str(paths[item])))
            else:
                f = cls._input_fields[item]
                argv.extend(_render(f.argstr, f.sep, inputs.get(item)))
        return argv

    @classmethod
    def _ordered_layout(cls) -> list[Any]:
        def position(item: Any) -> int:
            if isinstance(item, _Literal):
                return 0
            field = cls._input_fields.get(item) or cls._output_fields.get(item)
            return getattr(field, "position", None) or 0

        first = sorted((i for i in cls._layout if position(i) > 0), key=position)
        middle = [i for i in cls._layout if position(i) == 0]
        last = sorted((i for i in cls._layout if position(i) < 0), key=position)
        return first + middle + last

    @classmethod
    def _execute(
        cls, inputs: dict[str, Any], output_dir: Path, environment: Any = None
    ) -> dict[str, Any]:
        argv = cls.command_line(inputs, output_dir)
        if environment is not None:  # written with the paths seen inside, run by the runtime
            placement = environment.place(inputs, output_dir)
            inside = cls.command_line(placement.inputs, placement.job_dir)
            argv = environment.wrap(inside, placement)
        for path in cls._output_paths(inputs, output_dir).values():
            path.parent.mkdir(parents=True, exist_ok=True)
        stdout_path, stderr_path = output_dir / "stdout.txt", output_dir / "stderr.txt"
        command = shlex.join(argv)
        with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
            key = object()
            if environment is not None:  # stopped if this process is told to stop meanwhile
                _IN_ENVIRONMENTS[id(key)] = (environment, placement)
            try:
                proc = subprocess.run(
                    argv, cwd=output_dir, stdout=so, stderr=se, stdin=subprocess.DEVNULL
                )
            except OSError as err:
                raise CommandError(
                    f"{cls._task_name}: cannot run {command!r}: {err.strerror or err}",
                    command=command,
                ) from err
            except BaseException:  # interrupted: a container must not outlive its command
                if environment is not None:
                    environment.cleanup(placement)
                raise
            finally:
                _IN_ENVIRONMENTS.pop(id(key), None)
        stdout = stdout_path.read_text(errors="replace")
        stderr = stderr_path.read_text(errors="replace")
        if proc.returncode != 0:
            tail = "\n".join(stderr.splitlines()[-_TAIL_LINES:])
            raise CommandError(
                f"{cls._task_name}: command exited with code {proc.returncode}\n"
                f"  command: {command}\n  stderr (last {_TAIL_LINES} lines):\n{_indent(tail)}",
                command=command,
                return_code=proc.returncode,
                stderr=tail,
            )
        outputs: dict[str, Any] = {
            "return_code": proc.returncode,
            "stdout": stdout,
            "stderr": stderr,
        }
        outputs.update(cls._collect_outputs(inputs, output_dir, command))
        return outputs

    @classmethod
    def _collect_outputs(
        cls, inputs: dict[str, Any], output_dir: Path, command: str
    ) -> dict[str, Any]:
        paths = cls._output_paths(inputs, output_dir)
        found: dict[str, Any] = {}
        for o in cls._output_fields.values():
            if o.name in _STD_OUTPUTS:
                continue
            if o.name in paths:
                path = paths[o.name]
                if not path.exists():
                    raise CommandError(
                        f"{cls._task_name}: output {o.name!r} was not created at {str(path)!r} "
                        f"by command {command!r}",
                        command=command,
                        return_code=0,
                    )
                found[o.name] = _as_type(o.type, path)
            elif o.glob is not None:
                matches = sorted(output_dir.glob(o.glob))
                if typing.get_origin(o.type) is list:
                    found[o.name] = [_as_type(typing.get_args(o.type)[0], p) for p in matches]
                elif len(matches) == 1:
                    found[o.name] = _as_type(o.type, matches[0])
                else:
                    raise CommandError(
                        f"{cls._task_name}: output {o.name!r} expects one file matching "
                        f"{o.glob!r}, found {len(matches)}",
                        command=command,
                        return_code=0,
                    )
        return found


def _inside_job(rel: str, name: str, template: str) -> str:
    """``rel``, a filled output path, if it stays inside the job's directory; else a
    ``SpecError`` before the command runs (an output never lands outside its job)."""
    normal = os.path.normpath(rel) if rel else ""
    if not normal or os.path.isabs(normal) or normal == "." or normal.split(os.sep)[0] == "..":
        raise SpecError(
            f"output {name!r}: path template {template!r} gives {rel!r}, which is outside the "
            "job's directory; expected a relative path inside it (no leading '/', no '..' "
            "leading out)",
            field=name,
            value=rel,
        )
    return normal


def _as_type(tp: Any, path: Path) -> Any:
    if isinstance(tp, type) and issubclass(tp, (File, Directory)):
        return tp(path)
    return Directory(path) if path.is_dir() else File(path)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) or "    (empty)"


def _render(argstr: str | None, sep: str | None, value: Any) -> list[str]:
    if value is None or value is NOTHING:
        return []
    if isinstance(value, bool):
        if argstr:
            return [argstr] if value else []
        return [str(value).lower()]
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
        if sep is not None:
            items = [sep.join(items)]
        return ([argstr] if argstr else []) + items
    text = str(value)
    if argstr and argstr.endswith("="):
        return [argstr + text]
    return [argstr, text] if argstr else [text]


# -- template form -------------------------------------------------------------------------------


def _parse_type(text: str | None, template: str) -> Any:
    if text is None:
        return str
    try:
        return eval(text.strip(), {"__builtins__": {}}, _TYPE_NAMES)  # names from _TYPE_NAMES only
    except Exception as err:
        raise SpecError(
            f"shell template {template!r}: type {text!r} is not understood; expected one of "
            f"{sorted(k for k in _TYPE_NAMES if k != 'None')} or list[...] of them",
            field="template",
            value=text,
        ) from err


def _parse_default(text: str, tp: Any, name: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if tp is str and not isinstance(value, str):
        value = text
    return coerce(name, tp, value) if value is not None else None


def _derive_name(words: list[str]) -> str:
    base = [os.path.basename(w) for w in words]
    pick = base[0]
    if _INTERPRETER_RE.match(pick) and len(base) > 1 and not base[1].startswith("-"):
        pick = base[1]
    pick = re.sub(r"\.(py|sh|bash|R|r|pl|rb|js|jl)$", "", pick)
    pick = re.sub(r"[^A-Za-z0-9_.\-]", "_", pick)
    if not re.match(r"^[A-Za-z_]", pick):
        pick = "cmd_" + pick
    return pick


def _parse_template(
    template: str,
) -> tuple[list[str], dict[str, Field], dict[str, OutputField], list[Any]]:
    try:
        tokens = shlex.split(template)
    except ValueError as err:
        raise SpecError(f"shell template {template!r}: {err}", field="template") from err
    command: list[str] = []
    inputs: dict[str, Field] = {}
    outputs: dict[str, OutputField] = {}
    layout: list[Any] = []
    started = False
    pending_flag: str | None = None
    for i, token in enumerate(tokens):
        match = _FIELD_RE.match(token)
        if not started and match is None and not token.startswith("-"):
            command.append(token)
            continue
        started = True
        if match is None:
            _refuse_broken_field(template, token)
            if pending_flag is not None:
                layout.append(_Literal(pending_flag))
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if token.startswith("-") and _FIELD_RE.match(nxt):
                pending_flag = token
            else:
                pending_flag = None
                layout.append(_Literal(token))
            continue
        name = match["name"]
        if name in inputs or name in outputs or name in _STD_OUTPUTS:
            raise SpecError(
                f"shell template {template!r}: field {name!r} appears twice or shadows a "
                "standard output (return_code, stdout, stderr)",
                field=name,
            )
        tp = _parse_type(match["type"], template)
        if match["out"]:
            default_template = match["default"] or "{name}{suffix}"
            outputs[name] = OutputField(
                name=name, type=tp, path_template=default_template, argstr=pending_flag
            )
        else:
            optional = bool(match["opt"])
            if optional:
                tp = tp | None
            default: Any = NOTHING
            if match["default"] is not None:
                default = _parse_default(match["default"], tp, name)
            elif optional:
                default = None
            inputs[name] = Field(name=name, type=tp, default=default, argstr=pending_flag)
        layout.append(name)
        pending_flag = None
    if not command:
        raise SpecError(
            f"shell template {template!r} has no command before its first field",
            field="template",
            value=template,
        )
    for token in command:
        _refuse_broken_field(template, token)
    _check_output_templates(f"shell template {template!r}", inputs, outputs)
    return command, inputs, outputs, layout


# a word that starts a field but does not end one, or ends one it did not start
_BROKEN_START = re.compile(r"^<(out\|)?[A-Za-z_|]")
_BROKEN_END = re.compile(r"^(out\|)?[A-Za-z_]\w*(:[^<>]*)?>$")


def _refuse_broken_field(template: str, token: str) -> None:
    """A word that looks like a field but is not one (a ``<`` or ``>`` missing, ``out|``
    without a name) is a typo: it would be passed to the command literally."""
    if _FIELD_RE.match(token) or not (_BROKEN_START.match(token) or _BROKEN_END.match(token)):
        return
    where = template.find(token)
    raise SpecError(
        f"shell template {template!r}: {token!r} at position {where} is not a field: a field "
        "is <name>, <name:type>, <name:type=default>, <name?> or <out|name:type[=file name]>, "
        "with its < and > (unbalanced here)",
        field="template",
        value=template,
    )


def _check_output_templates(
    what: str, inputs: dict[str, Field], outputs: dict[str, OutputField]
) -> None:
    """An output's file name template may use {name}, {suffix} and the input fields only."""
    known = {"name", "suffix", *inputs}
    for output in outputs.values():
        if output.path_template is None:
            continue
        try:
            used = [f for _, f, _, _ in string.Formatter().parse(output.path_template) if f]
        except ValueError as err:
            raise SpecError(
                f"{what}: output {output.name!r} file name {output.path_template!r}: {err}",
                field=output.name,
                value=output.path_template,
            ) from err
        for field in used:
            root = re.split(r"[.\[]", field, maxsplit=1)[0]
            if root not in known:
                raise SpecError(
                    f"{what}: output {output.name!r} file name {output.path_template!r} uses "
                    f"{{{root}}}, which is not an input field; expected one of {sorted(known)}",
                    field=output.name,
                    value=output.path_template,
                )


# -- class form ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _ArgSpec:
    default: Any = NOTHING
    argstr: str | None = None
    position: int | None = None
    sep: str | None = None
    help: str = ""
    xor: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class _OutSpec:
    path_template: str | None = None
    glob: str | None = None
    argstr: str | None = None
    position: int | None = None
    help: str = ""


def arg(
    *,
    default: Any = NOTHING,
    argstr: str | None = None,
    position: int | None = None,
    sep: str | None = None,
    help: str = "",
    xor: Any = (),
    requires: Any = (),
) -> Any:
    """Declare an input of a class-form shell task and how it appears on the command line.

    ``xor`` names inputs that may not be set together with this one, ``requires`` inputs that
    must be set when it is (checked for each job, before it runs)."""
    rules = {}
    for label, names in (("xor", xor), ("requires", requires)):
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise SpecError(
                f"shell.arg({label}={names!r}): expected a list of input names",
                field=label,
                value=names,
            )
        rules[label] = tuple(names)
    return _ArgSpec(default=default, argstr=argstr, position=position, sep=sep, help=help, **rules)


def out(
    *,
    path_template: str | None = None,
    glob: str | None = None,
    argstr: str | None = None,
    position: int | None = None,
    help: str = "",
) -> Any:
    """Declare an output of a class-form shell task.

    ``path_template`` places the file in the job's directory (``str.format`` over the inputs,
    e.g. ``"{in_file.stem}_smooth.nii"``) and, with ``argstr`` or ``position``, passes its
    path on the command line; ``glob`` collects files the command creates by itself.
    """
    if (path_template is None) == (glob is None):
        raise SpecError("shell.out() needs exactly one of path_template= or glob=", field="out")
    if glob is not None and (os.path.isabs(glob) or ".." in Path(glob).parts):
        raise SpecError(
            f"shell.out(glob={glob!r}): expected a pattern inside the job's directory "
            "(no leading '/', no '..')",
            field="glob",
            value=glob,
        )
    return _OutSpec(
        path_template=path_template, glob=glob, argstr=argstr, position=position, help=help
    )


def _from_class(cls: type) -> tuple[list[str], dict[str, Field], dict[str, OutputField], list[Any]]:
    executable = getattr(cls, "executable", None)
    if isinstance(executable, str):
        command = shlex.split(executable)
    elif isinstance(executable, (list, tuple)) and all(isinstance(w, str) for w in executable):
        command = list(executable)
    else:
        raise SpecError(
            f"shell class {cls.__name__}: executable={executable!r}; expected a command string "
            "or a list of words",
            field="executable",
            value=executable,
        )
    hints = typing.get_type_hints(cls)
    inputs: dict[str, Field] = {}
    layout: list[Any] = []
    for name, tp in hints.items():
        if name == "executable" or name.startswith("_"):
            continue
        spec = cls.__dict__.get(name, NOTHING)
        if not isinstance(spec, _ArgSpec):
            spec = _ArgSpec(default=spec)
        default = spec.default
        if default is not NOTHING and default is not None:
            default = coerce(name, tp, default)
        inputs[name] = Field(
            name=name,
            type=tp,
            default=default,
            help=spec.help,
            argstr=spec.argstr,
            position=spec.position,
            sep=spec.sep,
            xor=spec.xor,
            requires=spec.requires,
        )
        layout.append(name)
    outputs: dict[str, OutputField] = {}
    out_cls = cls.__dict__.get("Outputs")
    if out_cls is not None:
        for name, tp in typing.get_type_hints(out_cls).items():
            spec = out_cls.__dict__.get(name)
            if not isinstance(spec, _OutSpec):
                raise SpecError(
                    f"shell class {cls.__name__}: output {name!r} needs shell.out(...)",
                    field=name,
                )
            outputs[name] = OutputField(
                name=name,
                type=tp,
                help=spec.help,
                path_template=spec.path_template,
                glob=spec.glob,
                argstr=spec.argstr,
                position=spec.position,
            )
            if spec.path_template is not None and (spec.argstr or spec.position is not None):
                layout.append(name)
    for field in inputs.values():
        if field.xor and field.default not in (None, False, NOTHING):
            raise SpecError(
                f"shell class {cls.__name__}: input {field.name!r} has xor={list(field.xor)} "
                f"and the default {field.default!r}, so the inputs it excludes could never be "
                "set; give it the default None (or False for a flag)",
                field=field.name,
            )
        unknown = [n for n in (*field.xor, *field.requires) if n not in inputs]
        if unknown:
            raise SpecError(
                f"shell class {cls.__name__}: input {field.name!r} names {unknown} in xor= or "
                f"requires=, which are not inputs; its inputs are {sorted(inputs)}",
                field=field.name,
            )
    _check_output_templates(f"shell class {cls.__name__}", inputs, outputs)
    return command, inputs, outputs, layout


# commands running in an environment now, in this process: (environment, placement)
_IN_ENVIRONMENTS: dict[int, tuple[Any, Any]] = {}


def stop_commands_in_environments() -> None:
    """Stop the containers of commands running in this process (before it is killed)."""
    for environment, placement in list(_IN_ENVIRONMENTS.values()):
        with contextlib.suppress(Exception):  # stop what can be; the process is going away
            environment.cleanup(placement)


def check_environment(name: str, value: Any) -> Any:
    """``value`` if it is None or an environment (``provgraph.environments``), else SpecError."""
    if value is None or all(callable(getattr(value, m, None)) for m in _ENVIRONMENT_METHODS):
        return value
    raise SpecError(
        f"{name}={value!r}; expected an environment from provgraph.environments (Native, "
        "Podman, Docker, Apptainer, Bubblewrap) or None",
        field=name,
        value=value,
    )


_ENVIRONMENT_METHODS = ("describe", "place", "wrap")


@typing.overload
def define(
    template: str | type,
    *,
    name: str | None = None,
    version: str | None = None,
    environment: Any = None,
    resources: dict[str, Any] | None = None,
) -> type[ShellTask]: ...


@typing.overload
def define(
    template: None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    environment: Any = None,
    resources: dict[str, Any] | None = None,
) -> Callable[[str | type], type[ShellTask]]: ...


def define(
    template: str | type | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    environment: Any = None,
    resources: dict[str, Any] | None = None,
) -> Any:
    """Make a shell task class from a command template or a class (usable as a decorator).

    ``environment`` is where its command runs unless a submission says otherwise;
    ``resources`` (time, mem, cpus...) what a batch scheduler should give each of its jobs
    (see :mod:`provgraph.spec.resources`). Neither is part of the definition hash.
    """
    check_environment("environment", environment)
    checked_resources = check_resources(name or "shell task", resources)

    def build(spec: str | type) -> type[ShellTask]:
        if isinstance(spec, str):
            command, inputs, outputs, layout = _parse_template(spec)
            body, module, qualname, doc = spec, "provgraph.spec.shell", None, None
        elif isinstance(spec, type):
            command, inputs, outputs, layout = _from_class(spec)
            body = "executable: " + shlex.join(command)
            module, qualname, doc = spec.__module__, spec.__qualname__, spec.__doc__
        else:
            raise SpecError(
                f"shell.define expects a template string or a class, got {spec!r}",
                field="template",
                value=spec,
            )
        clash = set(outputs) & set(inputs)
        if clash:
            raise SpecError(f"shell task: names used for inputs and outputs: {sorted(clash)}")
        task_name = check_task_name(
            name or (spec.__name__ if isinstance(spec, type) else _derive_name(command))
        )
        all_outputs = {**_STD_OUTPUTS, **outputs}
        cls = make_task_class(
            ShellTask,
            kind="shell",
            name=task_name,
            module=module,
            qualname=qualname or task_name,
            doc=doc,
            inputs=inputs,
            outputs=all_outputs,
            body=body,
            version=version,
            extra={
                "_executable": tuple(command),
                "_layout": tuple(layout),
                "_environment": environment,
                "_resources": checked_resources,
            },
        )
        return typing.cast(type[ShellTask], cls)

    if template is None:
        return build
    return build(template)
