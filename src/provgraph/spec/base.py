"""The base of every task definition: inputs, splitting, combining and the definition hash.

A task *class* (made by ``python.define`` or ``shell.define``) declares its fields and carries its
definition hash, computed once when the class is made. A task *instance* holds input values and,
optionally, a splitter and combiner. Instances are cheap, copied on ``split``/``combine``, and
never execute anything themselves: a ``Submitter`` runs them.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

from .. import state as _state
from ..exceptions import MissingInputError, SpecError, SplitterError
from .fields import (
    NOTHING,
    UNKNOWN,
    Field,
    OutputField,
    _is_lazy,
    check_allowed,
    check_rules,
    coerce,
    fits_possibly_split,
    type_name,
)

__all__ = ["Inputs", "Outputs", "TaskDef", "get_fields"]


class TaskDef:
    """A task with its input values; subclasses are made by the ``define`` decorators."""

    _kind: ClassVar[str] = "task"
    _task_name: ClassVar[str] = "Task"
    _version: ClassVar[str | None] = None
    _input_fields: ClassVar[dict[str, Field]] = {}
    _output_fields: ClassVar[dict[str, OutputField]] = {}
    _definition_hash: ClassVar[bytes] = b""
    _definition_text: ClassVar[str] = ""
    # what a batch scheduler should give each job (``spec.resources``); not hashed
    _resources: ClassVar[dict[str, Any]] = {}
    _has_rules: ClassVar[bool] = False  # an input has xor= or requires= (checked per job)
    _one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()  # groups of which one must be set
    _default_factories: ClassVar[tuple[tuple[str, Any], ...]] = ()  # attrs.Factory defaults

    def __init__(self, **inputs: Any) -> None:
        values: dict[str, Any] = {n: f.default for n, f in self._input_fields.items()}
        for name, make in self._default_factories:  # a value of its own for each task
            values[name] = fits_possibly_split(self._input_fields[name].type, make())
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_given", set())  # inputs set by the user (shown by repr)
        object.__setattr__(self, "_splitter", None)
        object.__setattr__(self, "_combiner", [])
        for name, value in inputs.items():
            self._set(name, value)

    # -- inputs -----------------------------------------------------------------------------
    def _set(self, name: str, value: Any, *, split: bool = False) -> None:
        field = self._input_fields.get(name)
        if field is None:
            raise SpecError(
                f"{self._task_name} has no input {name!r}; its inputs are "
                f"{sorted(self._input_fields)}",
                field=name,
                value=value,
            )
        if _is_lazy(value):
            _check_connection(self._task_name, field, value, split)
            self._values[name] = value
        elif value is NOTHING:
            self._values[name] = value
        elif split:
            self._values[name] = _coerce_split_value(field, value)
        elif value is None and not field.mandatory and field.default is None:
            self._values[name] = None
        else:
            try:
                self._values[name] = fits_possibly_split(field.type, value)
            except Exception:
                coerce(name, field.type, value)  # raises the SpecError with the message
                raise
        if field.allowed_values is not None:
            check_allowed(field, self._values[name])
        self.__dict__.setdefault("_given", set()).add(name)  # set: shown by repr

    def _recorded_values(self) -> dict[str, Any]:
        """The input values, without the implicit ones left at their defaults (a shell
        task's ``executable`` and ``append_args``): what a record names."""
        fields = self._input_fields
        return {k: v for k, v in self._values.items() if not fields[k].left_implicit(v)}

    @property
    def inputs(self) -> Inputs:
        """The input values, as attributes: ``task.inputs.voxel``."""
        return Inputs(self)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute or input {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._input_fields:
            self._set(name, value, split=name in self.split_fields)
        else:
            raise AttributeError(
                f"cannot set {name!r} on {self._task_name}: not an input; inputs are "
                f"{sorted(self._input_fields)}"
            )

    # -- state ------------------------------------------------------------------------------
    @property
    def splitter(self) -> Any:
        """The splitter (a field name, tuple or list), or None."""
        return self._splitter

    @property
    def combiner(self) -> list[str]:
        """The fields whose axes are combined (empty when none)."""
        return list(self._combiner)

    @property
    def split_fields(self) -> list[str]:
        """The input fields the splitter mentions (not its ``"_node"`` terms)."""
        return [n for n in _state.splitter_fields(self._splitter) if n in self._input_fields]

    def split(
        self,
        splitter: Any = None,
        /,
        *,
        overwrite: bool = False,
        container_ndim: dict[str, int] | None = None,
        **inputs: Any,
    ) -> Self:
        """A copy of this task split over ``splitter``; ``inputs`` set the values split over.

        Without a splitter, the keyword names are split over, as an outer product when there
        are several. Splitting a task that is already split needs ``overwrite=True``.
        ``container_ndim`` (Pydra's) says how many list levels of a value are split over; the
        engine reads the levels from the values and the field's type, so here it is checked:
        each named value must be a split field nested that deep.
        """
        if container_ndim is not None:
            _check_container_ndim(self._task_name, container_ndim, splitter, inputs)
        if splitter is None:
            if not inputs:
                raise SplitterError(f"{self._task_name}.split() needs a splitter or split values")
            names = list(inputs)
            splitter = names[0] if len(names) == 1 else names
        new_splitter = _state.normalise_splitter(splitter, list(self._input_fields))
        if self._splitter is not None and not overwrite and new_splitter != self._splitter:
            raise SplitterError(
                f"{self._task_name} is already split over {self._splitter!r}; "
                "pass overwrite=True to replace the splitter"
            )
        new: Self = self._copy()
        object.__setattr__(new, "_splitter", new_splitter)
        if overwrite:
            object.__setattr__(new, "_combiner", [])
        for name, value in inputs.items():
            new._set(name, value, split=name in new.split_fields)
        for name in new.split_fields:
            value = new._values[name]
            if value is not NOTHING:
                new._set(name, value, split=True)
        return new

    def combine(self, combiner: str | list[str], *, overwrite: bool = False) -> Self:
        """A copy of this task whose outputs are combined over the axes of ``combiner``."""
        names = _state.normalise_combiner(combiner, self._splitter)
        if self._combiner and not overwrite and names != self._combiner:
            raise SplitterError(
                f"{self._task_name} already combines {self._combiner!r}; "
                "pass overwrite=True to replace the combiner"
            )
        new: Self = self._copy()
        object.__setattr__(new, "_combiner", names)
        return new

    def _copy(self) -> Any:
        new = copy.copy(self)
        object.__setattr__(new, "_values", dict(self._values))
        object.__setattr__(new, "_given", set(self.__dict__.get("_given", ())))
        return new

    def check_inputs(self) -> None:
        """Check the inputs as a submission will, running nothing: a ``MissingInputError``
        for a mandatory input left unset; an ``InputRuleError`` for inputs that break an
        ``xor`` or ``requires`` rule or set a read-only input (values split over, or connected
        from another node, count as set; each job's are checked when it runs)."""
        missing = [n for n, v in self._values.items() if v is NOTHING]
        if missing:
            raise MissingInputError.of(self._task_name, missing)
        if self._has_rules:
            split = set(self.split_fields)
            values = {
                n: UNKNOWN if n in split or _is_lazy(v) else v for n, v in self._values.items()
            }
            check_rules(self._task_name, self._input_fields, values, type(self)._one_of)

    # -- execution hooks, overridden by each kind ---------------------------------------------
    @classmethod
    def _execute(cls, inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(
        self,
        cache_dir: str | Path | None = None,
        *,
        rerun: bool = False,
        propagate_rerun: bool = True,
        **options: Any,
    ) -> Outputs:
        """Run this task with a ``Submitter`` (``options``: the submitter's) and return its
        outputs; raise on failure. ``rerun``/``propagate_rerun``: as for ``sub(task, ...)``."""
        from ..engine.submitter import Submitter

        with Submitter(cache_dir=cache_dir, **options) as sub:
            result = sub(self, rerun=rerun, propagate_rerun=propagate_rerun)
        result.raise_for_errors()
        return result.outputs

    def __repr__(self) -> str:
        given = self.__dict__.get("_given")  # (None in a task pickled before it existed)
        shown = ", ".join(
            f"{n}={v!r}"
            for n, v in self._values.items()
            if (n in given if given is not None else v is not NOTHING)
        )
        text = f"{self._task_name}({shown})"
        if self._splitter is not None:
            text += f".split({self._splitter!r})"
        if self._combiner:
            text += f".combine({self._combiner!r})"
        return text

    @classmethod
    def describe(cls) -> str:
        """A one-screen summary of the task's inputs and outputs."""
        lines = [f"{cls._task_name} ({cls._kind} task)", "inputs:"]
        for f in cls._input_fields.values():
            default = "" if f.mandatory else f" = {f.default!r}"
            lines.append(f"  {f.name}: {type_name(f.type)}{default}")
        lines.append("outputs:")
        lines.extend(f"  {o.name}: {type_name(o.type)}" for o in cls._output_fields.values())
        return "\n".join(lines)


def as_own_task(task: Any) -> Any:
    """``task`` itself, or, for a task object defined with Pydra, its provgraph translation
    (looked for only when pydra is loaded)."""
    if isinstance(task, TaskDef) or "pydra.compose.base" not in sys.modules:
        return task
    from ._pydra import as_own_task as translated

    return translated(task)


def _check_container_ndim(task: str, ndims: Any, splitter: Any, inputs: dict[str, Any]) -> None:
    names = set(_state.splitter_fields(splitter)) if splitter is not None else set(inputs)
    if not isinstance(ndims, dict):
        raise SplitterError(f"{task}.split(container_ndim={ndims!r}); expected a dict")
    for name, ndim in ndims.items():
        if name not in names:
            raise SplitterError(
                f"{task}.split(container_ndim=...) names {name!r}, which is not split over; "
                f"split fields are {sorted(names)}"
            )
        if not isinstance(ndim, int) or isinstance(ndim, bool) or ndim < 1:
            raise SplitterError(
                f"{task}.split(container_ndim={{{name!r}: {ndim!r}}}); expected a whole number "
                "of list levels, 1 or more"
            )
        value, depth = inputs.get(name), 0
        while isinstance(value, (list, tuple)) and depth < ndim:
            value, depth = (value[0] if value else None), depth + 1
        if depth < ndim and not _is_lazy(inputs.get(name)):
            raise SplitterError(
                f"{task}.split: input {name!r} is split over {ndim} list levels "
                f"(container_ndim) but its value has {depth}"
            )


def _check_connection(task_name: str, field: Field, lazy: Any, split: bool) -> None:
    """Check at construction that a lazy value's declared type can feed ``field``."""
    from .lazy import compatible, element_type

    item = element_type(lazy.type)
    if split:
        ok = item is not None and compatible(item, field.type)
        wanted = f"a list of {type_name(field.type)} to split over"
    else:
        # a list may be connected now and split over later: checked again when planned
        ok = compatible(lazy.type, field.type) or (
            item is not None and compatible(item, field.type)
        )
        wanted = type_name(field.type)
    if not ok:
        raise SpecError(
            f"cannot connect {lazy.label} ({type_name(lazy.type)}) to input {field.name!r} of "
            f"{task_name}: expected {wanted}",
            field=field.name,
            value=lazy,
        )


def _coerce_split_value(field: Field, value: Any) -> Any:
    from .fields import coerce_split

    return coerce_split(field.name, field.type, value)


class Inputs:
    """Attribute access to a task's input values (reads and checked writes)."""

    __slots__ = ("_task",)

    def __init__(self, task: TaskDef) -> None:
        object.__setattr__(self, "_task", task)

    def __getattr__(self, name: str) -> Any:
        values = self._task._values
        if name in values:
            return values[name]
        raise AttributeError(
            f"{self._task._task_name} has no input {name!r}; its inputs are {sorted(values)}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._task, name, value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._task._values)

    def __dir__(self) -> list[str]:
        return sorted(self._task._values)

    def asdict(self) -> dict[str, Any]:
        """A copy of the input values as a dict."""
        return dict(self._task._values)

    def __repr__(self) -> str:
        return f"Inputs({self.asdict()!r})"


class Outputs:
    """A job's or a task's outputs, as attributes: ``result.outputs.out``. Each task class
    ``T`` has its own subclass, ``T.Outputs``, whose ``fields()`` are ``T``'s outputs."""

    __slots__ = ("_values",)
    _task: ClassVar[Any] = None  # (a task's own subclass: the task class)

    @classmethod
    def fields(cls) -> dict[str, Any]:
        """The output fields of the task this class belongs to, by name."""
        if cls._task is None:
            raise AttributeError("Outputs.fields(): only a task's own T.Outputs has fields")
        return dict(cls._task._output_fields)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as plain outputs: a task's own class may not be importable by name (a
        # template-string task's), and the values are what a pickle must keep
        return (Outputs, (dict(self._values),))

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"no output {name!r}; outputs are {sorted(values)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("outputs are read-only")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outputs) and other._values == self._values

    __hash__ = None  # type: ignore[assignment]

    def asdict(self) -> dict[str, Any]:
        """A copy of the outputs as a dict."""
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Outputs({self._values!r})"


def get_fields(definition: Any) -> dict[str, Any]:
    """The fields of a task definition, by name (Pydra's ``get_fields``): the input fields of
    a task class or task, the output fields of a task's ``T.Outputs`` class or of outputs
    made by it. Each field holds its type, default and metadata (``help``, ``argstr``...)."""
    owner = definition if isinstance(definition, type) else type(definition)
    declared_by = owner.__dict__.get("_provgraph_task")  # a class form's own Outputs class
    if declared_by is not None:
        return dict(declared_by._output_fields)
    if issubclass(owner, Outputs):
        if owner._task is None:
            raise SpecError(
                f"get_fields({definition!r}): plain outputs belong to no task; expected a task "
                "class, a task, or a task's T.Outputs",
                field="definition",
                value=definition,
            )
        return dict(owner._task._output_fields)
    if issubclass(owner, TaskDef):
        return dict(owner._input_fields)
    raise SpecError(
        f"get_fields({definition!r}): expected a task class, a task, or a task's T.Outputs",
        field="definition",
        value=definition,
    )
