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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..exceptions import SpecError
from ._definition import check_task_name, make_task_class
from .base import TaskDef
from .fields import NOTHING, Field, OutputField, coerce
from .resources import check_resources

__all__ = ["PythonTask", "define"]


class PythonTask(TaskDef):
    """Base of tasks made from Python functions."""

    _kind = "python"
    _function: Callable[..., Any]

    _source_file: str | None = None

    @classmethod
    def _execute(cls, inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
        _restore_filename(cls._function, cls._source_file)
        previous = os.getcwd()
        os.chdir(output_dir)
        try:
            # mapped here, so that relative paths returned as files resolve in the job's dir
            return cls._map_outputs(cls._function(**inputs))
        finally:
            os.chdir(previous)

    @classmethod
    def _map_outputs(cls, returned: Any) -> dict[str, Any]:
        names = list(cls._output_fields)
        if len(names) == 1:
            values = [returned]
        else:
            if not isinstance(returned, (tuple, list)) or len(returned) != len(names):
                raise SpecError(
                    f"{cls._task_name} declares outputs {names} but returned "
                    f"{returned!r}; expected a tuple of {len(names)} values",
                    field="outputs",
                    value=returned,
                )
            values = list(returned)
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


def _check_output_paths(task: str, name: str, value: Any) -> None:
    from .._filetypes import Directory, File

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
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
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


def _input_fields(func: Callable[..., Any], hints: dict[str, Any]) -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise SpecError(
                f"{func.__name__}: parameter {param.name!r} is *args/**kwargs; tasks need "
                "named parameters",
                field=param.name,
            )
        tp = hints.get(param.name, Any)
        default = NOTHING if param.default is param.empty else param.default
        if default is not NOTHING and default is not None:
            default = coerce(param.name, tp, default)
        fields[param.name] = Field(name=param.name, type=tp, default=default)
    return fields


def _output_fields(
    func: Callable[..., Any], hints: dict[str, Any], outputs: Any
) -> dict[str, OutputField]:
    ret = hints.get("return", Any)
    if outputs is None:
        return {"out": OutputField(name="out", type=ret)}
    if isinstance(outputs, dict):
        return {n: OutputField(name=n, type=t) for n, t in outputs.items()}
    if isinstance(outputs, str) or not all(isinstance(n, str) for n in outputs):
        raise SpecError(
            f"{func.__name__}: outputs={outputs!r}; expected a list of names or a dict of "
            "name -> type",
            field="outputs",
            value=outputs,
        )
    names = list(outputs)
    types: list[Any] = [Any] * len(names)
    args = typing.get_args(ret)
    if typing.get_origin(ret) is tuple and len(args) == len(names) and Ellipsis not in args:
        types = list(args)
    elif len(names) == 1:
        types = [ret]
    return {n: OutputField(name=n, type=t) for n, t in zip(names, types, strict=True)}


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
) -> type[TaskDef]:
    """A task class whose body is a function (a Python task or a workflow constructor)."""
    return make_task_class(
        base,
        kind=base._kind,
        name=name,
        module=fn.__module__,
        qualname=fn.__qualname__,
        doc=fn.__doc__,
        inputs=inputs,
        outputs=outputs,
        body="\n".join(filter(None, [_normalised_source(fn), _closure_text(fn)])),
        version=version,
        extra=extra,
    )


@typing.overload
def define(
    func: Callable[..., Any],
    *,
    outputs: list[str] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    resources: dict[str, Any] | None = None,
) -> type[PythonTask]: ...


@typing.overload
def define(
    func: None = None,
    *,
    outputs: list[str] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    resources: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], type[PythonTask]]: ...


def define(
    func: Callable[..., Any] | None = None,
    *,
    outputs: list[str] | dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    resources: dict[str, Any] | None = None,
) -> Any:
    """Make a Python task class from ``func`` (usable bare or with options).

    ``resources`` (time, mem, cpus...) is what a batch scheduler should give each of its jobs
    (see :mod:`provgraph.spec.resources`); it is not part of the task's hash.
    """

    def wrap(fn: Callable[..., Any]) -> type[PythonTask]:
        if not inspect.isfunction(fn):
            raise SpecError(
                f"python.define expects a Python function (def or lambda), got {fn!r} "
                f"({type(fn).__name__}); wrap it in a function of your own",
                value=fn,
            )
        hints = type_hints(fn)
        task_name = check_task_name(name or fn.__name__)
        inputs = _input_fields(fn, hints)
        outs = _output_fields(fn, hints, outputs)
        extra = {
            "_function": staticmethod(fn),
            "_source_file": _source_file(fn),
            "_resources": check_resources(task_name, resources),
        }
        cls = function_task_class(PythonTask, fn, task_name, inputs, outs, version, extra)
        return typing.cast(type[PythonTask], cls)

    if func is not None:
        return wrap(func)
    return wrap
