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
import shutil
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .._fileformats import is_mock
from .._filetypes import Directory, File
from ..exceptions import CommandError, MissingInputError, SpecError
from ._definition import check_task_name, make_task_class
from ._shell_class import (
    IMPLICIT,
    arg,
    check_output_templates,
    class_from_lists,
    from_class,
    out,
    outarg,
)
from .base import TaskDef
from .fields import (
    NOTHING,
    Field,
    OutputField,
    check_rules,
    coerce,
    command_words,
    engine_name,
    requirement_name,
)
from .resources import check_resources

__all__ = ["ShellTask", "arg", "define", "out", "outarg"]

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
    def _executable_of(cls, inputs: dict[str, Any]) -> list[str]:
        """The command's first words: the ``executable`` input when set, else the class's."""
        words = command_words(inputs.get("executable"))
        return list(cls._executable) if words is None else words

    @property
    def cmdline(self) -> str:
        """The command line this task would run, with its outputs placed in the current
        directory (Pydra's ``cmdline``): for a look, nothing runs."""
        if self.splitter is not None:
            raise SpecError(
                f"{self._task_name} is split over {self.splitter!r}: each job has its own "
                "command line (see a dry run, sub(task, dry_run=True))",
                field="splitter",
            )
        values = {}
        for name, field in self._input_fields.items():
            value = self._values[name]
            if value is NOTHING:
                raise MissingInputError.of(self._task_name, [name])
            if getattr(value, "_provgraph_lazy", False):
                raise SpecError(
                    f"{self._task_name}: input {name!r} is a connection ({value.label}); its "
                    "value is known only when the workflow runs",
                    field=name,
                )
            if not field.left_implicit(value):
                values[name] = value
        if self._has_rules:  # xor and requires, as a submission checks them
            check_rules(self._task_name, self._input_fields, values, type(self)._one_of)
        return shlex.join(self.command_line(values, Path.cwd()))

    @classmethod
    def _output_paths(cls, inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
        from ._shell_outputs import output_paths  # (imported when a job runs, not with provgraph)

        return output_paths(cls._output_fields, inputs, output_dir)

    @classmethod
    def command_line(
        cls, inputs: dict[str, Any], output_dir: Path, paths: dict[str, Any] | None = None
    ) -> list[str]:
        """The argument vector for these inputs, with outputs placed in ``output_dir``
        (``paths``: the outputs' paths there, when already known)."""
        from ._cmdline import field_words

        values = dict(inputs)
        if paths is None:
            paths = cls._output_paths(inputs, output_dir)
        for name, path in paths.items():
            chosen = inputs.get(name)
            if isinstance(path, list):
                values[name] = [str(p) for p in path]
            elif path is not None and isinstance(chosen, str):
                values[name] = chosen  # named by the user: as given, in the job's directory
            else:
                values[name] = None if path is None else str(path)
        argv = cls._executable_of(inputs)
        for item in cls._layout:
            if isinstance(item, _Literal):
                argv.append(item.text)
            else:
                field = cls._input_fields.get(item) or cls._output_fields[item]
                argv.extend(field_words(field, values))
        extra = inputs.get("append_args")
        if extra:
            argv.extend(shlex.split(extra) if isinstance(extra, str) else map(str, extra))
        return argv

    @classmethod
    def _execute(
        cls, inputs: dict[str, Any], output_dir: Path, environment: Any = None
    ) -> dict[str, Any]:
        inputs = _copied_in(cls, inputs, output_dir)
        paths = cls._output_paths(inputs, output_dir)  # once per job
        argv = cls.command_line(inputs, output_dir, paths)
        if environment is not None:  # written with the paths seen inside, run by the runtime
            placement = environment.place(inputs, output_dir)
            inside = cls.command_line(placement.inputs, placement.job_dir)
            argv = environment.wrap(inside, placement)
        for placed in paths.values():
            for path in placed if isinstance(placed, list) else [placed]:
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
        stdout_path, stderr_path = output_dir / "stdout.txt", output_dir / "stderr.txt"
        command = shlex.join(argv)
        import subprocess  # (3 ms to import: paid by the first command, not by every import)

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
        from ._shell_outputs import collect_outputs

        outputs.update(collect_outputs(cls, inputs, output_dir, command, outputs, paths))
        return outputs


def _copied_in(cls: Any, inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Inputs declared with ``copy_mode`` placed in the job's directory, copied or linked
    (every file of a fileformats set). A real copy lies there under its own name, as Pydra
    places it, when nothing else can take that place; a link (a command writing through it
    would change the user's file), a copy whose name is taken (by the engine's files, an
    output, or another input placed before it), and any copy of a task whose outputs are
    found by pattern or by name (the copy would be found with them) go in a folder of their
    own, ``_copied/<field>/``. The command is given the placed path; the provenance still
    names the original file."""
    moved = {}
    taken: set[str] | None = None
    searched = any(  # outputs found among the job's files: a copy beside them would be too
        o.glob is not None or (o.path_template is None and o.callable is None)
        for o in cls._output_fields.values()
        if o.name not in _STD_OUTPUTS
    )
    for field in cls._input_fields.values():
        value = inputs.get(field.name)
        if field.copy_mode in (None, "any", "leave") or not isinstance(value, os.PathLike):
            continue
        if is_mock(value):  # (a mock names no file to copy)
            continue
        if taken is None:  # the names the job's directory holds besides the copies
            taken = set()
            for placed_out in cls._output_paths(inputs, output_dir).values():
                for path in placed_out if isinstance(placed_out, list) else [placed_out]:
                    if path is not None:
                        taken.add(os.path.relpath(path, output_dir).split(os.sep)[0])
        members = sorted(os.fspath(m) for m in getattr(value, "fspaths", None) or [value])
        names = [os.path.basename(m) for m in members]
        folder = output_dir
        own_place = field.copy_mode == "copy" and not searched
        if not own_place or any(n in taken or engine_name(n) for n in names):
            folder = output_dir / "_copied" / field.name
        folder.mkdir(parents=True, exist_ok=True)
        taken.update(names)
        placed = []
        for member, name in zip(members, names, strict=True):
            target = folder / name
            if not os.path.lexists(target):
                _place(field.copy_mode, member, target)
            placed.append(target)
        kind: Any = type(value)
        if hasattr(value, "fspaths"):  # a fileformats set: the same format, placed
            moved[field.name] = kind(placed)
        else:
            moved[field.name] = kind(folder / os.path.basename(os.fspath(value)))
    return {**inputs, **moved} if moved else inputs


def _place(mode: str, source: str, target: Path) -> None:
    if mode == "symlink":
        os.symlink(source, target)
    elif mode in ("hardlink", "link"):
        try:
            os.link(source, target)
        except OSError:  # another file system: a copy does the same
            _copy(source, target)
    else:
        _copy(source, target)


def _copy(source: Any, target: Path) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) or "    (empty)"


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
        if name in inputs or name in outputs or name in _STD_OUTPUTS or name in IMPLICIT:
            raise SpecError(
                f"shell template {template!r}: field {name!r} appears twice or shadows a "
                "standard output (return_code, stdout, stderr) or input (executable, "
                "append_args)",
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
    check_output_templates(f"shell template {template!r}", inputs, outputs)
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


def _xor_groups(
    task: str, inputs: dict[str, Field], groups: Any
) -> tuple[dict[str, Field], tuple[tuple[str, ...], ...]]:
    """The inputs with each group's exclusions added to their ``xor``, and the groups of
    which one input is required (those without ``None``)."""
    if isinstance(groups, str) or not all(
        not isinstance(g, str) and all(n is None or isinstance(n, str) for n in g) for g in groups
    ):
        raise SpecError(
            f"shell task {task}: xor={groups!r}; expected groups of input names, e.g. "
            "[['a', 'b'], ['c', 'd', None]]",
            field="xor",
            value=groups,
        )
    fields = dict(inputs)
    required = []
    for group in groups:
        names = sorted(n for n in group if n is not None)
        unknown = [n for n in names if n not in fields]
        if unknown:
            raise SpecError(
                f"shell task {task}: xor group {names} names {unknown}, which are not inputs; "
                f"its inputs are {sorted(fields)}",
                field="xor",
                value=unknown,
            )
        for n in names:
            others = tuple(dict.fromkeys((*fields[n].xor, *(m for m in names if m != n))))
            fields[n] = attrs.evolve(fields[n], xor=others)
        if None not in group and len(names) > 0:
            required.append(tuple(names))
    return fields, tuple(required)


def _rules_marker(
    inputs: dict[str, Field], outputs: dict[str, OutputField], layout: list[Any]
) -> str:
    """A line added to a class form's definition when Pydra's command-line rules (adopted
    after the first release) write its command differently than before: its hash, and so its
    cache, then changes with its command line; definitions written alike keep theirs."""

    def position(name: str) -> int:
        field = inputs.get(name) or outputs.get(name)
        return getattr(field, "position", None) or 0

    before = sorted((n for n in layout if position(n) > 0), key=position)
    before += [n for n in layout if position(n) == 0]
    before += sorted((n for n in layout if position(n) < 0), key=position)
    changed = before != list(layout) or any(
        (f.sep is not None and f.sep.strip() == "" and f.sep != "")
        or not f.on_command
        or (f.argstr is not None and ("{" in f.argstr or f.argstr.endswith("...")))
        for f in inputs.values()
    )
    marker = "\ncommand line: Pydra 1.0 rules" if changed else ""
    if any(_holds_set(f.type) for f in inputs.values()):  # (written as a repr before)
        marker += "\ncommand line: sets item by item"
    return marker


def _holds_set(tp: Any) -> bool:
    """Whether an input type is, or admits, a set (``set[str]``, ``frozenset | None``...)."""
    if tp in (set, frozenset) or typing.get_origin(tp) in (set, frozenset):
        return True
    return any(_holds_set(a) for a in typing.get_args(tp) if a is not Ellipsis)


def _implicit_inputs(spec: Any) -> dict[str, Field]:
    """``executable`` (the command, replaceable per task) and ``append_args`` (words added at
    the end): inputs of every shell task, as in Pydra; at their defaults they change nothing,
    neither the command nor the hash."""
    if isinstance(spec, type):
        command = getattr(spec, "executable", spec)
    else:  # a template's command words: one word as a string, several as a list (as Pydra)
        command = spec[0] if len(spec) == 1 else list(spec)
    return {
        "executable": Field(
            name="executable",
            type=str | list[str],
            default=command,
            help="the command (a string, or a list of words)",
            on_command=False,
            implicit=True,
        ),
        "append_args": Field(
            name="append_args",
            type=list[str] | str | None,
            default=None,
            help="words added at the end of the command line",
            on_command=False,
            implicit=True,
        ),
    }


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
    xor: Any = (),
    inputs: Any = None,
    outputs: Any = None,
) -> type[ShellTask]: ...


@typing.overload
def define(
    template: None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    environment: Any = None,
    resources: dict[str, Any] | None = None,
    xor: Any = (),
    inputs: Any = None,
    outputs: Any = None,
) -> Callable[[str | type], type[ShellTask]]: ...


def define(
    template: str | type | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    environment: Any = None,
    resources: dict[str, Any] | None = None,
    xor: Any = (),
    inputs: Any = None,
    outputs: Any = None,
) -> Any:
    """Make a shell task class from a command template or a class (usable as a decorator).

    ``environment`` is where its command runs unless a submission says otherwise;
    ``resources`` (time, mem, cpus...) what a batch scheduler should give each of its jobs
    (see :mod:`provgraph.spec.resources`). Neither is part of the definition hash.
    ``xor`` (Pydra's) lists groups of inputs that exclude each other: at most one of a group
    may be set, and exactly one unless the group also holds ``None``. ``inputs`` and
    ``outputs`` (Pydra's list form) declare fields beside a template that is the command
    alone: lists of ``shell.arg(name=, type=)`` / ``shell.out(name=, type=)``, or dicts of
    name -> declaration or type.
    """
    check_environment("environment", environment)
    checked_resources = check_resources(name or "shell task", resources)
    listed = (inputs, outputs)  # fields given as lists, beside a template of the command

    def build(spec: str | type) -> type[ShellTask]:
        if isinstance(spec, str) and listed != (None, None):
            command, inputs, outputs, layout = from_class(class_from_lists(spec, *listed))
            body = "executable: " + shlex.join(command) + _rules_marker(inputs, outputs, layout)
            module, qualname, doc = "provgraph.spec.shell", None, None
        elif isinstance(spec, str):
            command, inputs, outputs, layout = _parse_template(spec)
            body, module, qualname, doc = spec, "provgraph.spec.shell", None, None
        elif isinstance(spec, type):
            command, inputs, outputs, layout = from_class(spec)
            body = "executable: " + shlex.join(command) + _rules_marker(inputs, outputs, layout)
            module, qualname, doc = spec.__module__, spec.__qualname__, spec.__doc__
        else:
            raise SpecError(
                f"shell.define expects a template string or a class, got {spec!r}",
                field="template",
                value=spec,
            )
        for o in outputs.values():
            named = {requirement_name(n) for g in o.requires for n in g}
            unknown = sorted(named - set(inputs) - set(IMPLICIT))
            if unknown:
                raise SpecError(
                    f"shell task: output {o.name!r} requires {unknown}, which are not inputs; "
                    f"expected some of {sorted(inputs)}",
                    field=o.name,
                    value=list(o.requires),
                )
        clash = {n for n in set(outputs) & set(inputs) if not outputs[n].settable}
        if clash:
            raise SpecError(f"shell task: names used for inputs and outputs: {sorted(clash)}")
        task_name = check_task_name(
            name or (spec.__name__ if isinstance(spec, type) else _derive_name(command))
        )
        all_outputs = {**_STD_OUTPUTS, **outputs}
        inputs, one_of = _xor_groups(task_name, inputs, xor)
        inputs = {**inputs, **_implicit_inputs(spec if isinstance(spec, type) else command)}
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
                "_one_of": one_of,
            },
        )
        return typing.cast(type[ShellTask], cls)

    if template is None:
        return build
    return build(template)
