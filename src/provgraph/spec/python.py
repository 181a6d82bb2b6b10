"""Python tasks: ``@python.define`` turns a function into a task class.

One return value gives the output ``out``; ``outputs=[...]`` names several (the function then
returns a tuple of that length). Annotations give the field types and are checked when a
task is made; parameter defaults make inputs optional.
"""

from __future__ import annotations

import ast
import inspect
import os
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import _workdir
from .._filetypes import Directory, File
from ..exceptions import SpecError, SpecValueError
from ._definition import check_task_name, make_task_class
from ._function_fields import arg, class_parts, input_fields, out, output_fields
from .base import TaskDef
from .fields import Field, OutputField, coerce, is_optional
from .resources import check_resources

__all__ = ["Outputs", "PythonTask", "Task", "arg", "define", "out"]


class PythonTask(TaskDef):
    """Base of tasks made from Python functions."""

    _kind = "python"
    _function: Callable[..., Any]

    _source_file: str | None = None

    @classmethod
    def _execute(cls, inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
        _restore_filename(cls._function, cls._source_file)
        with _workdir.in_job_directory(output_dir):  # (another thread: a directory of its own)
            # mapped here, so that relative paths returned as files resolve in the job's dir
            return cls._map_outputs(cls._function(**inputs))

    @classmethod
    def _map_outputs(cls, returned: Any) -> dict[str, Any]:
        """The function's return value as outputs: ``None`` sets every output to None; one
        output takes the whole value; several take a tuple (or list) of as many values, in
        order, or a dict, by name."""
        names = list(cls._output_fields)
        if not names:
            if returned is not None:
                raise SpecValueError(
                    f"No output fields were specified for {cls._task_name}, but its function "
                    f"returned {returned!r}; expected None",
                    field="outputs",
                    value=returned,
                )
            return {}
        if returned is None:
            values = [None] * len(names)
        elif len(names) == 1:
            values = [returned]
        elif isinstance(returned, Mapping):  # by name: other keys are left out, as in Pydra
            missing = [
                n
                for n in names
                if n not in returned and not is_optional(cls._output_fields[n].type)
            ]  # (an optional output the dict leaves out is None)
            if missing:
                raise SpecError(
                    f"{cls._task_name} declares outputs {names} but returned a dict without "
                    f"{missing} (its keys: {sorted(map(str, returned))})",
                    field=missing[0],
                    value=returned,
                )
            values = [returned.get(n) for n in names]
        elif isinstance(returned, (tuple, list)) and len(returned) == len(names):
            values = list(returned)
        else:
            raise SpecValueError(
                f"{cls._task_name} declares outputs {names} but returned {returned!r}; "
                f"expected {len(names)} elements (a tuple of {len(names)} values) or a dict "
                "of them by name",
                field="outputs",
                value=returned,
            )
        out: dict[str, Any] = {}
        for name, value in zip(names, values, strict=True):
            field = cls._output_fields[name]
            if value is None:
                out[name] = None
                continue
            try:
                out[name] = coerce(name, field.type, value)
            except SpecError as err:
                raise SpecError(
                    f"output {name!r} of {cls._task_name}: " + str(err).split(": ", 1)[-1],
                    field=name,
                    value=value,
                ) from None
            _check_output_paths(cls._task_name, name, out[name])
        return out

    def __class_getitem__(cls, item: Any) -> Any:  # ``python.Task["Name.Outputs"]``, as Pydra
        return cls


def _check_output_paths(task: str, name: str, value: Any) -> None:
    if isinstance(value, (File, Directory)) and not os.path.exists(value):
        raise SpecError(
            f"output {name!r} of {task} names {str(value)!r}, which does not exist; a task "
            "returning a file must create it",
            field=name,
            value=value,
        )
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_output_paths(task, name, item)


def _restore_filename(func: Callable[..., Any], filename: str | None) -> None:
    """Functions pickled by value lose their file name; give it back so tracebacks show code."""
    code = getattr(func, "__code__", None)
    if filename is None or code is None or code.co_filename == filename:
        return
    func.__code__ = _with_filename(code, filename)


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(
        _with_filename(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def _normalised_source(func: Callable[..., Any]) -> str:
    """The function's source with decorators, docstring, comments and layout removed."""
    if func.__name__ == "<lambda>":
        return _code_fingerprint(func.__code__)  # its source line holds more than the lambda
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return _code_fingerprint(func.__code__)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func.__name__:
            node.decorator_list = []
            _drop_docstring(node)
            return ast.unparse(node)
    return ast.unparse(tree)


def _source_file(func: Callable[..., Any]) -> str | None:
    try:
        return inspect.getsourcefile(func)
    except TypeError:
        return None


def _code_fingerprint(code: Any) -> str:
    """For functions without source (made by ``exec``): a text form of their byte code."""
    consts = [_code_fingerprint(c) if inspect.iscode(c) else repr(c) for c in code.co_consts]
    return f"<code {code.co_name} {code.co_code.hex()} {consts} {code.co_names} {code.co_varnames}>"


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The function's annotations, evaluated; any that cannot be (a name not visible from the
    function's module, under ``from __future__ import annotations``) count as ``Any``."""
    try:
        return typing.get_type_hints(func)
    except Exception:
        pass
    hints: dict[str, Any] = {}
    for name, annotation in getattr(func, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, func.__globals__)  # names of its own module
            except Exception:
                annotation = Any
        hints[name] = annotation
    return hints


def _closure_text(fn: Callable[..., Any]) -> str:
    """The values a function closes over, by hash: they are part of what it computes."""
    from ..exceptions import HashingError
    from ..hashing import hash_value

    cells = getattr(fn, "__closure__", None) or ()
    lines = []
    for name, cell in zip(fn.__code__.co_freevars, cells, strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell: the name is assigned later
            continue
        if isinstance(value, type) and hasattr(value, "_definition_hash"):
            digest = value._definition_hash.hex()  # a task class used inside the function
        elif inspect.isfunction(value):
            digest = hash_value(_normalised_source(value)).hex()
        elif isinstance(value, (types.ModuleType, type, types.BuiltinFunctionType)):
            label = getattr(value, "__qualname__", value.__name__)
            digest = hash_value(f"{getattr(value, '__module__', '')}:{label}").hex()
        else:
            try:
                digest = hash_value(value).hex()
            except HashingError as err:
                raise SpecError(
                    f"{fn.__name__} uses {name!r} from its enclosing function, whose value "
                    f"({type(value).__name__}) has no content hash; pass it as an input instead",
                    field=name,
                ) from err
        lines.append(f"# closure {name} = xxh3-128:{digest}")
    return "\n".join(lines)


def function_task_class(
    base: type[TaskDef],
    fn: Callable[..., Any],
    name: str,
    inputs: dict[str, Field],
    outputs: dict[str, OutputField],
    version: str | None,
    extra: dict[str, Any],
    source: str | None = None,
) -> type[TaskDef]:
    """A task class whose body is a function (a Python task or a workflow constructor);
    ``source`` replaces the function's own source in the definition (a class form's)."""
    return make_task_class(
        base,
        kind=base._kind,
        name=name,
        module=fn.__module__,
        qualname=fn.__qualname__,
        doc=fn.__doc__,
        inputs=inputs,
        outputs=outputs,
        body="\n".join(filter(None, [source or _normalised_source(fn), _closure_text(fn)])),
        version=version,
        extra=extra,
    )


def _class_source(klass: type) -> str | None:
    """A class form's source without docstrings or layout: its helpers and constants are part
    of what it computes, as its function is. None when there is no source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if isinstance(node, ast.ClassDef) and node.name == klass.__name__:
                node.decorator_list = []
            _drop_docstring(node)
    return ast.unparse(tree)


def _drop_docstring(node: Any) -> None:
    """Remove a function's or class's docstring (not part of what it computes)."""
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        node.body = body[1:] or [ast.Pass()]


class Outputs:
    """Base for the ``class Outputs`` of a class-form task (optional: any class will do)."""


Task = PythonTask  # Pydra's name for the base of class-form tasks


@typing.overload
def define(
    func: Callable[..., Any] | type,
    *,
    inputs: list[Any] | dict[str, Any] | None = None,
    outputs: list[Any] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    resources: dict[str, Any] | None = None,
) -> type[PythonTask]: ...


@typing.overload
def define(
    func: None = None,
    *,
    inputs: list[Any] | dict[str, Any] | None = None,
    outputs: list[Any] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    resources: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any] | type], type[PythonTask]]: ...


def define(
    func: Callable[..., Any] | type | None = None,
    *,
    inputs: list[Any] | dict[str, Any] | None = None,
    outputs: list[Any] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    resources: dict[str, Any] | None = None,
) -> Any:
    """Make a Python task class from ``func`` (usable bare or with options), or from a class
    (the class form: annotated inputs, ``class Outputs``, a static method ``function``).

    ``inputs``/``outputs`` name the fields, or map names to types or to :func:`arg`/:func:`out`
    declarations (help, default, type). ``resources`` (time, mem, cpus...) is what a batch
    scheduler should give each of its jobs (see :mod:`provgraph.spec.resources`); it is not
    part of the task's hash.
    """

    def wrap(target: Callable[..., Any] | type) -> type[PythonTask]:
        if inspect.isclass(target):
            return _from_class(target, inputs, outputs, name, version, resources)
        if not inspect.isfunction(target):
            raise SpecError(
                f"python.define expects a Python function (def or lambda) or a class, got "
                f"{target!r} ({type(target).__name__}); wrap it in a function of your own",
                value=target,
            )
        hints = type_hints(target)
        task_name = check_task_name(name or target.__name__)
        ins = input_fields(target, hints, inputs, owner=task_name)
        outs = output_fields(target, hints, outputs, owner=task_name)
        return _build(target, task_name, ins, outs, version, resources, target)

    if func is not None:
        return wrap(func)
    return wrap


def _build(
    fn: Callable[..., Any],
    task_name: str,
    ins: dict[str, Field],
    outs: dict[str, OutputField],
    version: str | None,
    resources: dict[str, Any] | None,
    origin: Any,
    members: dict[str, Any] | None = None,
) -> type[PythonTask]:
    if "function" in ins:
        raise SpecValueError(
            f"{task_name}: The argument 'function' is reserved (it holds the function the "
            "task runs, as TaskClass.function); rename the parameter",
            field="function",
        )
    extra = {
        **(members or {}),
        "_function": staticmethod(fn),
        "function": staticmethod(fn),
        "_source_file": _source_file(fn),
        "_resources": check_resources(task_name, resources),
    }
    source = _class_source(origin) if inspect.isclass(origin) else None
    cls = function_task_class(PythonTask, fn, task_name, ins, outs, version, extra, source)
    if inspect.isclass(origin):  # named and documented as the class
        cls.__name__, cls.__qualname__ = origin.__name__, origin.__qualname__
        cls.__module__, cls.__doc__ = origin.__module__, origin.__doc__
    return typing.cast(type[PythonTask], cls)


def _from_class(
    klass: type,
    inputs: Any,
    outputs: Any,
    name: str | None,
    version: str | None,
    resources: dict[str, Any] | None,
) -> type[PythonTask]:
    """The class form: fields from the class, the body from its ``function``."""
    task_name = check_task_name(name or klass.__name__)
    if inputs is not None or outputs is not None:
        raise SpecValueError(
            f"{task_name}: a class-form task declares its fields in the class; inputs= and "
            "outputs= are for functions",
            field="inputs" if inputs is not None else "outputs",
        )
    fn, declared_in, declared_out, members = class_parts(klass)
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    unknown = [n for n in declared_in if n not in params and not takes_any]
    if unknown:
        raise SpecError(
            f"{task_name}: inputs {unknown} are not parameters of {klass.__name__}.function "
            f"(its parameters: {list(params)})",
            field=unknown[0],
        )
    undeclared = [
        n
        for n, p in params.items()
        if n not in declared_in
        and p.default is p.empty
        and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    if undeclared:
        raise SpecError(
            f"{task_name}: {klass.__name__}.function needs {undeclared}, which the class does "
            "not declare as inputs (annotate them in the class, or give them defaults)",
            field=undeclared[0],
        )
    ins = input_fields(fn, {n: s.type for n, s in declared_in.items()}, declared_in, task_name)
    ins = {n: f for n, f in ins.items() if n in declared_in}
    outs = output_fields(fn, type_hints(fn), declared_out or None, owner=task_name)
    return _build(fn, task_name, ins, outs, version, resources, klass, members)
