"""The class form of shell tasks: ``shell.arg``, ``shell.out``, ``shell.outarg`` and the
reading of a class into fields and a command-line layout (Pydra 1.0's field metadata)."""

from __future__ import annotations

import os
import shlex
import typing
from pathlib import Path
from typing import Any

import attrs

from .._filetypes import File
from ..exceptions import SpecError, SpecValueError
from .fields import (
    NOTHING,
    Field,
    OutputField,
    OutputName,
    allowed_tuple,
    coerce,
    declared_default,
    path_valued,
    type_name,
)

__all__ = ["arg", "check_output_templates", "command_order", "from_class", "out", "outarg"]

_COPY_MODES = (None, "any", "leave", "copy", "hardlink", "symlink", "link")
IMPLICIT = ("executable", "append_args")  # inputs every shell task has


@attrs.frozen(kw_only=True)
class _ArgSpec:
    default: Any = NOTHING
    argstr: str | None = ""
    position: int | None = None
    sep: str | None = None
    help: str = ""
    xor: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    formatter: Any = None
    allowed_values: tuple[Any, ...] | None = None
    copy_mode: str | None = None
    readonly: bool = False
    name: str = ""  # in shell.define(..., inputs=[...]): the input's name
    type: Any = Any  # and its type


def _names(label: str, names: Any) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise SpecError(
            f"shell.arg({label}={names!r}): expected a list of input names",
            field=label,
            value=names,
        )
    return tuple(names)


def arg(
    *,
    default: Any = NOTHING,
    argstr: str | None = "",
    position: int | None = None,
    sep: str | None = None,
    help: str = "",
    xor: Any = (),
    requires: Any = (),
    formatter: Any = None,
    allowed_values: Any = None,
    copy_mode: Any = None,
    readonly: bool = False,
    name: str = "",
    type: Any = Any,
) -> Any:
    """Declare an input of a class-form shell task and how it appears on the command line.

    ``argstr`` is the flag before the value (``""``: the value alone; ``None``: not on the
    command line); it may hold ``{field}`` templates, and end in ``...`` to repeat the flag
    before each item of a list. ``position`` orders arguments (1 first, -1 last), ``sep``
    joins a list, ``formatter(field, inputs, <input names>...)`` returns the text itself.
    ``xor`` names inputs that may not be set together with this one, ``requires`` inputs
    that must be set when it is; ``allowed_values`` lists the only values accepted;
    ``copy_mode`` (``"copy"``, ``"symlink"``, ``"hardlink"``) places an input file in the
    job's directory before the command runs. A ``readonly`` input is never set: its
    ``argstr`` is a template over other inputs and outputs (``"-o {out_a} {out_b}"``),
    always written, leaving out fields that are unset or not made. ``name`` and ``type``
    declare the input in a list given to ``shell.define(template, inputs=[...])``.
    """
    if readonly and default is not NOTHING:
        raise SpecError(
            f"shell.arg(readonly=True, default={default!r}): expected no default (a read-only "
            "input is never set)",
            field="readonly",
            value=default,
        )
    if formatter is not None and not callable(formatter):
        raise SpecError(
            f"shell.arg(formatter={formatter!r}): expected a function",
            field="formatter",
            value=formatter,
        )
    mode = getattr(copy_mode, "name", copy_mode)  # also Pydra's File.CopyMode members
    if mode not in _COPY_MODES:
        raise SpecError(
            f"shell.arg(copy_mode={copy_mode!r}): expected one of {list(_COPY_MODES[1:])}",
            field="copy_mode",
            value=copy_mode,
        )
    allowed = allowed_tuple(allowed_values, "shell.arg")
    return _ArgSpec(
        default=default,
        argstr=argstr,
        position=position,
        sep=sep,
        help=help,
        xor=_names("xor", xor),
        requires=_names("requires", requires),
        formatter=formatter,
        allowed_values=allowed,
        copy_mode=mode,
        readonly=bool(readonly),
        name=name,
        type=type,
    )


def _inside(label: str, pattern: str) -> None:
    if os.path.isabs(pattern) or ".." in Path(pattern).parts:
        raise SpecError(
            f"shell.out({label}={pattern!r}): expected a pattern inside the job's directory "
            "(no leading '/', no '..')",
            field=label,
            value=pattern,
        )


def out(
    *,
    path_template: str | None = None,
    glob: str | None = None,
    callable: Any = None,
    argstr: str | None = None,
    position: int | None = None,
    help: str = "",
    keep_extension: bool = True,
    requires: list[str] | list[list[str]] | None = None,
    name: str = "",
    type: Any = Any,
    default: Any = NOTHING,
) -> Any:
    """Declare an output of a class-form shell task (``name`` and ``type``: in a list given
    to ``shell.define(template, outputs=[...])``; ``default``, Pydra's spelling: a file
    name, a ``path_template``, or a pattern with ``*``, ``?`` or ``[``, a ``glob``).

    ``path_template`` places the file in the job's directory (``str.format`` over the inputs,
    e.g. ``"{in_file.stem}_smooth.nii"``) and, with ``argstr`` or ``position``, passes its
    path on the command line; ``glob`` collects files the command creates by itself;
    ``callable(output_dir, stdout, stderr, inputs, <input names>...)`` computes the value
    after the command ran. An output declared by its type alone is the file or directory
    named after it (``name`` or ``name.*``) in the job's directory. With ``requires`` (input
    names, or lists of them: any one list), the output is ``None`` unless those inputs are set
    (as in Pydra; ``None``, unset and ``False`` count as not set).
    """
    if default is not NOTHING:
        if not (isinstance(default, str) and default):
            raise SpecError(
                f"shell.out(default={default!r}): expected a file name or a glob pattern",
                field="default",
                value=default,
            )
        if _is_pattern(default) and glob is None:
            glob = default
        elif path_template is None:
            path_template = default
    given = [n for n, v in (("path_template", path_template), ("glob", glob)) if v is not None]
    if callable is not None:
        given.append("callable")
    if len(given) > 1:
        raise SpecError(
            f"shell.out() takes one of path_template=, glob= or callable=, got {given}",
            field="out",
        )
    if glob is not None:
        _inside("glob", glob)
    if callable is not None and not _is_function(callable):
        raise SpecError(
            f"shell.out(callable={callable!r}): expected a function",
            field="callable",
            value=callable,
        )
    return OutputField(  # named and typed when its class is read
        name=name,
        type=type,
        path_template=path_template,
        glob=glob,
        callable=callable,
        argstr=argstr,
        position=position,
        help=help,
        keep_extension=keep_extension,
        requires=_requirement_groups(requires, "out"),
    )


def _requirement_groups(requires: Any, where: str) -> tuple[tuple[Any, ...], ...]:
    """``requires=`` as groups, any one of which must be met: each item an input name (set),
    or ``(name, [values])`` (set to one of those values)."""
    if requires is None:
        return ()
    if isinstance(requires, (set, frozenset)):  # Pydra's {"a", "b"}: all of them
        requires = sorted(requires)
    if isinstance(requires, (list, tuple)):
        one = [_requirement(r) for r in requires]
        if None not in one:
            return (tuple(one),)
        groups = [
            [_requirement(r) for r in g] if isinstance(g, (list, tuple)) else [None]
            for g in requires
        ]
        if all(None not in g for g in groups):
            return tuple(tuple(g) for g in groups)
    raise SpecError(
        f"shell.{where}(requires={requires!r}): expected a list of input names (or of "
        "(name, [allowed values]) pairs), or a list of such lists",
        field="requires",
        value=requires,
    )


def _requirement(item: Any) -> Any:
    """One required input: its name, or ``(name, (values...))``; None when malformed."""
    if isinstance(item, str):
        return item
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], (list, tuple, set, frozenset))
    ):
        values = item[1]
        if isinstance(values, (set, frozenset)):  # in an order that does not vary by process
            values = sorted(values, key=repr)
        return (item[0], tuple(values))
    return None


def _is_pattern(name: str) -> bool:
    """Whether an output's file name is a glob pattern (``*``, ``?`` or ``[``)."""
    return any(c in name for c in "*?[")


def _is_function(value: Any) -> bool:
    return callable(value) or isinstance(value, staticmethod)


def outarg(
    *,
    path_template: str,
    argstr: str | None = "",
    position: int | None = None,
    help: str = "",
    keep_extension: bool = True,
    sep: str | None = None,
    default: Any = NOTHING,
    requires: list[str] | list[list[str]] | None = None,
    name: str = "",
    type: Any = Any,
) -> Any:
    """Declare an output file that is also an input of the same name (Pydra's ``outarg``):
    by default its path comes from ``path_template`` and is written on the command line by
    ``argstr``/``position``; the user may set the input to a file name in the job's
    directory, or to ``False`` (or ``None``) for no such file. ``default`` is the input's
    value when not set: ``True`` (a mandatory output's), or ``None``/``False`` (no file
    unless asked for: an optional output's). With ``requires`` (as for :func:`out`), the
    file is neither named on the command line nor collected unless those inputs are set.
    ``name`` and ``type``: in a list given to ``shell.define(template, outputs=[...])``."""
    if default is not NOTHING and default not in (True, False, None):
        raise SpecValueError(
            f"shell.outarg(default={default!r}): path_template ({path_template!r}) can only "
            "be provided when there is no default value provided; expected default True (the "
            "template), or False or None (no such file unless the input is set)",
            field="default",
            value=default,
        )
    if not (isinstance(path_template, str) and path_template) and not _is_function(path_template):
        raise SpecError(
            f"shell.outarg(path_template={path_template!r}): expected a file name template, "
            "or a function of the inputs returning one",
            field="path_template",
            value=path_template,
        )
    return OutputField(  # named and typed when its class is read (or by name=, type=)
        name=name,
        type=type,
        path_template=path_template,
        argstr=argstr,
        position=position,
        help=help,
        keep_extension=keep_extension,
        settable=True,
        sep=sep,
        named_default=default,
        requires=_requirement_groups(requires, "outarg"),
    )


def _command_words(cls: type) -> list[str]:
    executable = getattr(cls, "executable", None)
    if isinstance(executable, str) and executable.strip():
        return shlex.split(executable)
    if (
        isinstance(executable, (list, tuple))
        and executable
        and all(isinstance(w, str) for w in executable)
    ):
        return list(executable)
    raise SpecError(
        f"shell class {cls.__name__}: executable={executable!r}; expected a command string "
        "or a list of words",
        field="executable",
        value=executable,
    )


def _input_field(name: str, tp: Any, spec: _ArgSpec) -> Field:
    default, factory = (None, None) if spec.readonly else declared_default(name, spec.default)
    if default is not NOTHING and default is not None:
        default = coerce(name, tp, default)
    return Field(
        name=name,
        type=tp,
        default=default,
        help=spec.help,
        argstr=spec.argstr or None,
        on_command=spec.argstr is not None,
        position=spec.position,
        sep=spec.sep,
        xor=spec.xor,
        requires=spec.requires,
        formatter=spec.formatter,
        allowed_values=spec.allowed_values,
        copy_mode=spec.copy_mode,
        readonly=spec.readonly,
        default_factory=factory,
    )


def _named_input(o: OutputField) -> Field:
    """The input naming a settable output: True (the template), a name, or False/None."""
    return Field(
        name=o.name,
        type=bool | OutputName | None,
        default=o.default_choice(),
        help=o.help or f"the file name of output {o.name!r} (True: {o.path_template!r})",
        argstr=o.argstr or None,
        on_command=o.argstr is not None,
        position=o.position,
        sep=o.sep,
    )


def from_class(
    cls: type,
) -> tuple[list[str], dict[str, Field], dict[str, OutputField], list[Any]]:
    """The command, inputs, outputs and command-line layout a shell class declares."""
    command = _command_words(cls)
    inputs: dict[str, Field] = {}
    for name, tp in typing.get_type_hints(cls).items():
        if name in IMPLICIT or name.startswith("_"):
            if name == "append_args":
                raise SpecError(
                    f"shell class {cls.__name__}: 'append_args' is an input of every shell "
                    "task; choose another name",
                    field=name,
                )
            continue
        spec = cls.__dict__.get(name, NOTHING)
        if not isinstance(spec, _ArgSpec):
            spec = _ArgSpec(default=spec)
        inputs[name] = _input_field(name, tp, spec)
    for name, spec in cls.__dict__.items():  # shell.arg(...) without an annotation: any type
        if isinstance(spec, _ArgSpec) and name not in inputs and name not in IMPLICIT:
            inputs[name] = _input_field(name, Any, spec)
    outputs: dict[str, OutputField] = {}
    out_cls = cls.__dict__.get("Outputs")
    for name, tp in (typing.get_type_hints(out_cls) if out_cls is not None else {}).items():
        spec = out_cls.__dict__.get(name, OutputField(name=name))
        if isinstance(spec, str) and spec:  # a file name: a template, or a glob pattern
            spec = out(default=spec)
        if not isinstance(spec, OutputField):
            raise SpecError(
                f"shell class {cls.__name__}: output {name!r} is {spec!r}; expected "
                "shell.out(...), shell.outarg(...), a file name (or glob pattern), or a type "
                "alone",
                field=name,
            )
        function = spec.callable
        if isinstance(function, staticmethod):
            function = function.__func__
        outputs[name] = spec = attrs.evolve(spec, name=name, type=tp, callable=function)
        found_by_name = spec.path_template is None and spec.glob is None and function is None
        if found_by_name and tp is not Any and not path_valued(tp):
            raise SpecValueError(
                f"shell class {cls.__name__}: output {name!r} is a {type_name(tp)} declared "
                "by its type alone, which finds a file by the output's name; A shell output "
                "field must have either a callable or a path_template unless it is a file",
                field=name,
            )
        if spec.settable:
            if name in inputs:
                raise SpecError(
                    f"shell class {cls.__name__}: {name!r} is an input and an outarg; an "
                    "outarg is already the input that names its file",
                    field=name,
                )
            inputs[name] = _named_input(outputs[name])
    shown = [n for n, o in outputs.items() if not o.settable and o.path_template is not None]
    shown = [n for n in shown if outputs[n].argstr or outputs[n].position is not None]
    layout = command_order(cls.__name__, [*inputs.values(), *(outputs[n] for n in shown)])
    _check_rules_declared(cls.__name__, inputs)
    _check_signatures(cls.__name__, inputs, outputs)
    check_output_templates(f"shell class {cls.__name__}", inputs, outputs)
    return command, inputs, outputs, layout


_FORMATTER_NAMES = ("field", "inputs")
_CALLABLE_NAMES = (
    "field",
    "inputs",
    "output_dir",
    "cache_dir",
    "executable",
    "stdout",
    "stderr",
    "return_code",
)


def _check_signatures(task: str, inputs: dict[str, Field], outputs: dict[str, OutputField]) -> None:
    """A formatter's or a callable output's parameters must be names it will be given: a
    typo is refused now, not after the command has run."""
    from ._cmdline import parameters

    checks: list[tuple[str, Any, tuple[str, ...]]] = [
        (f"input {f.name!r}: formatter", f.formatter, _FORMATTER_NAMES) for f in inputs.values()
    ]
    checks += [
        (f"output {o.name!r}: callable", o.callable, _CALLABLE_NAMES) for o in outputs.values()
    ]
    for what, function, extra in checks:
        if function is None:
            continue
        try:
            wanted = [n for n, required in parameters(function) if required]
        except (TypeError, ValueError):
            continue  # a builtin without a signature: checked when called
        unknown = [n for n in wanted if n not in inputs and n not in extra]
        if unknown:
            raise SpecError(
                f"shell class {task}: {what} {getattr(function, '__name__', function)}() asks "
                f"for {unknown}; expected input names or {list(extra)}",
                field=what,
                value=unknown,
            )


def command_order(task: str, fields: list[Any]) -> list[str]:
    """Field names in command-line order, as Pydra orders them: the executable holds
    position 0; each field without a position takes the first free position from 1 in
    declaration order (a negative position ``-k`` holds the ``k``-th last one); then
    positive positions ascending and negative ones ascending. Two fields may share a
    position only when they exclude each other (``xor``)."""
    count = len(fields) + 1
    taken: dict[int, list[Any]] = {}
    for f in fields:
        if f.position is not None:
            if not isinstance(f.position, int) or isinstance(f.position, bool):
                raise SpecError(
                    f"{task}: input {f.name!r} has position={f.position!r}; expected an integer",
                    field=f.name,
                    value=f.position,
                )
            if f.position == 0:
                raise SpecError(
                    f"{task}: input {f.name!r} has position=0, which is the executable's; "
                    "expected 1 or more (from the start) or -1 or less (from the end)",
                    field=f.name,
                    value=0,
                )
            slot = f.position if f.position > 0 else count + f.position
            taken.setdefault(slot, []).append(f)
    for group in taken.values():
        if len(group) > 1 and not all(
            {g.name for g in group} - {f.name} <= set(getattr(f, "xor", ())) for f in group
        ):
            names = [f"{g.name}({g.position})" for g in group]
            raise SpecValueError(
                f"{task}: Multiple fields have the overlapping positions: inputs {names} share "
                "a position; expected distinct positions "
                "(or inputs that exclude each other with xor=)",
                field=group[0].name,
            )
    free = iter(i for i in range(1, count) if i not in taken)
    placed = []
    for index, f in enumerate(fields):
        position = f.position if f.position is not None else next(free)
        placed.append((position < 0, position, index, f.name))
    return [name for *_, name in sorted(placed)]


def _check_rules_declared(task: str, inputs: dict[str, Field]) -> None:
    for field in inputs.values():
        if field.xor and field.default not in (None, False, NOTHING):
            raise SpecError(
                f"shell class {task}: input {field.name!r} has xor={list(field.xor)} "
                f"and the default {field.default!r}, so the inputs it excludes could never be "
                "set; give it the default None (or False for a flag)",
                field=field.name,
            )
        unknown = [n for n in (*field.xor, *field.requires) if n not in inputs]
        if unknown:
            raise SpecError(
                f"shell class {task}: input {field.name!r} names {unknown} in xor= or "
                f"requires=, which are not inputs; its inputs are {sorted(inputs)}",
                field=field.name,
            )
        from ._cmdline import template_names

        used = template_names(field.argstr) if field.argstr and "{" in field.argstr else set()
        if used - set(inputs):
            raise SpecError(
                f"shell class {task}: input {field.name!r} has argstr={field.argstr!r}, which "
                f"names {sorted(used - set(inputs))}; expected input names "
                f"{sorted(inputs)}",
                field=field.name,
                value=field.argstr,
            )


def check_output_templates(
    what: str, inputs: dict[str, Field], outputs: dict[str, OutputField]
) -> None:
    """An output's file name template may use {name}, {suffix} and the input fields only."""
    from ._cmdline import template_names

    known = {"name", "suffix", *inputs}
    for output in outputs.values():
        if output.path_template is None:
            continue
        if callable(output.path_template):  # its template is known per job; its parameters now
            from ._cmdline import parameters

            asked = {n for n, required in parameters(output.path_template) if required}
            unknown = sorted(asked - {*inputs, "inputs", "field"})
            if unknown:
                raise SpecError(
                    f"{what}: output {output.name!r}: path_template function "
                    f"{output.path_template.__name__}() asks for {unknown}; expected input "
                    "names, 'inputs' (all of them, as attributes) or 'field'",
                    field=output.name,
                )
            continue
        try:
            used = template_names(output.path_template, strict=True)
        except ValueError as err:
            raise SpecError(
                f"{what}: output {output.name!r} file name {output.path_template!r}: {err}",
                field=output.name,
                value=output.path_template,
            ) from err
        for root in sorted(used - known):
            raise SpecError(
                f"{what}: output {output.name!r} file name {output.path_template!r} uses "
                f"{{{root}}}, which is not an input field; expected one of {sorted(known)}",
                field=output.name,
                value=output.path_template,
            )


def class_from_lists(template: str, inputs: Any, outputs: Any) -> type:
    """A class form for ``shell.define(template, inputs=..., outputs=...)``: the template is
    the command (no ``<field>`` in it), ``inputs`` a list of named ``shell.arg(name=, type=)``
    or a dict name -> ``shell.arg`` or type, ``outputs`` the same of ``shell.out``/``outarg``
    (or file names)."""
    if "<" in template:
        raise SpecError(
            f"shell.define({template!r}, inputs=..., outputs=...): the template declares "
            "fields too; expected the command alone when fields are given as lists",
            field="template",
            value=template,
        )
    body: dict[str, Any] = {"executable": template, "__annotations__": {}}
    for name, spec in _listed("inputs", inputs, _ArgSpec):
        body["__annotations__"][name] = spec.type if isinstance(spec, _ArgSpec) else spec
        if isinstance(spec, _ArgSpec):
            body[name] = spec
    outs: dict[str, Any] = {"__annotations__": {}}
    for name, spec in _listed("outputs", outputs, OutputField):
        if isinstance(spec, str):  # a file name, or a pattern for several
            outs["__annotations__"][name] = list[File] if _is_pattern(spec) else File
            outs[name] = spec
        else:
            outs["__annotations__"][name] = spec.type if isinstance(spec, OutputField) else spec
            if isinstance(spec, OutputField):
                outs[name] = spec
    body["Outputs"] = type("Outputs", (), outs)
    return type("Listed", (), body)


def _listed(what: str, given: Any, kind: type) -> list[tuple[str, Any]]:
    """``inputs=``/``outputs=`` as (name, spec or type) pairs."""
    if given is None:
        return []
    if isinstance(given, dict):
        return list(given.items())
    if isinstance(given, (list, tuple)) and all(
        isinstance(s, kind) and getattr(s, "name", "") for s in given
    ):
        return [(s.name, s) for s in given]
    expected = "shell.arg(name=...)" if kind is _ArgSpec else "shell.out(name=...)"
    raise SpecError(
        f"shell.define({what}={given!r}): expected a list of {expected} declarations, or a "
        "dict of name -> declaration or type",
        field=what,
        value=given,
    )
