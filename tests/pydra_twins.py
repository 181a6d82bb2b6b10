"""One shell definition written twice, with Pydra's ``pydra.compose.shell`` and with
provgraph's ``shell``, from the same field metadata; and each one's command line for the
same inputs (Pydra's as ``ShellTask.cmdline`` builds it, run in the job's directory)."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

from provgraph import shell
from provgraph.engine.plan import check_value


def _pydra_type(tp: Any) -> Any:
    """provgraph's File and Directory as fileformats' generic ones, inside unions too."""
    import typing

    from fileformats import generic
    from pydra.utils.typing import MultiInputObj as PydraMulti

    from provgraph import Directory, File, MultiInputObj

    if typing.get_origin(tp) is MultiInputObj:
        return PydraMulti[tuple(_pydra_type(a) for a in typing.get_args(tp))]
    if tp is File:
        return generic.File
    if tp is Directory:
        return generic.Directory
    args = typing.get_args(tp)
    if args and typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        mapped = [_pydra_type(a) for a in args]
        out = mapped[0]
        for a in mapped[1:]:
            out = out | a
        return out
    return tp


def _namespace(module: Any, executable: Any, inputs: dict, outputs: dict, outputs_base: Any):
    annotations = {}
    convert = _pydra_type if module is not shell else (lambda tp: tp)
    namespace: dict[str, Any] = {"executable": executable}
    for name, (tp, meta) in inputs.items():
        annotations[name] = convert(tp)
        namespace[name] = module.arg(**meta)
    out_annotations: dict[str, Any] = {}
    out_namespace: dict[str, Any] = {}
    for name, (tp, kind, meta) in outputs.items():
        out_annotations[name] = convert(tp)
        out_namespace[name] = getattr(module, kind)(**meta)
    out_namespace["__annotations__"] = out_annotations
    namespace["__annotations__"] = annotations
    namespace["Outputs"] = type("Outputs", outputs_base, out_namespace)
    return annotations, namespace


def twins(executable: Any, inputs: dict, outputs: dict | None = None) -> tuple[Any, Any]:
    """(Pydra class, provgraph class); ``inputs``: name -> (type, shell.arg keywords),
    ``outputs``: name -> (type, "out" or "outarg", keywords)."""
    from pydra.compose import shell as pshell

    with warnings.catch_warnings():  # Pydra's own deprecation notices (sep=" ")
        warnings.simplefilter("ignore", DeprecationWarning)
        _, ns = _namespace(pshell, executable, inputs, outputs or {}, (pshell.Outputs,))
        pydra_cls = pshell.define(type("Twin", (pshell.Task,), ns))
    _, ns = _namespace(shell, executable, inputs, outputs or {}, ())
    own_cls = shell.define(type("Twin", (), ns))
    return pydra_cls, own_cls


def pydra_argv(pydra_cls: Any, values: dict, job_dir: Path) -> list[str]:
    """The words Pydra runs for these inputs, in ``job_dir``."""
    from pydra.compose.shell.templating import template_update
    from pydra.utils.general import attrs_values

    task = pydra_cls(**values)
    with contextlib.chdir(job_dir):
        resolved = attrs_values(task)
        resolved.update(template_update(task, cache_dir=job_dir))
        return [str(w) for w in task._command_args(values=resolved)]


def own_argv(own_cls: Any, values: dict, job_dir: Path) -> list[str]:
    """The words provgraph runs for these inputs, in ``job_dir``."""
    task = own_cls(**values)
    inputs = {}
    for name, field in own_cls._input_fields.items():
        value = task._values[name]
        if field.left_implicit(value):
            continue
        inputs[name] = check_value(field, value)
    return own_cls.command_line(inputs, job_dir)
