"""The one error tree of provgraph.

::

    ProvgraphError
     +-- SpecError (TypeError)            a task definition or its inputs are wrong
     |    +-- SpecValueError (ValueError)  right type, wrong content (counts, allowed values)
     |    |    +-- MissingInputError       a mandatory input is not set
     |    |    +-- InputRuleError          inputs break an xor or requires rule
     |    +-- InputFileError (FileNotFoundError)   an input file or directory is missing
     +-- SplitterError (ValueError)       a splitter or combiner is wrong
     +-- HashingError (TypeError)         a value cannot be hashed deterministically
     +-- CacheError (OSError)             the cache directory cannot be used
     +-- WorkerError (RuntimeError)       a worker cannot run jobs
     +-- TaskFailedError (RuntimeError)   one or more jobs failed
     +-- CommandError (RuntimeError)      a shell command exited non-zero or could not start
     |    +-- OutputNotFoundError (FileNotFoundError)  a declared output file was not made
     +-- ContainerError (RuntimeError)    an environment's runtime or image is missing
     +-- ProvenanceError                  provenance cannot be recorded or read

Every message names the field, the value and what was expected. Context travels on
attributes (``exc.field``, ``exc.job``, ``exc.output_dir``) so that callers need not parse text.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CacheError",
    "CommandError",
    "ContainerError",
    "HashingError",
    "InputFileError",
    "InputRuleError",
    "MissingInputError",
    "OutputNotFoundError",
    "ProvenanceError",
    "ProvgraphError",
    "SpecError",
    "SpecValueError",
    "SplitterError",
    "TaskFailedError",
    "WorkerError",
]


class ProvgraphError(Exception):
    """Root of every error raised by provgraph."""


class SpecError(ProvgraphError, TypeError):
    """A task definition, or the inputs given to it, do not fit the declared fields."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class SpecValueError(SpecError, ValueError):
    """A definition or a value of the right type but the wrong content: output names that do
    not fit the return annotation, a value outside ``allowed_values``, a function returning a
    value where no output is declared. A ``SpecError`` (a ``TypeError``) and, as in Pydra, a
    ``ValueError``."""


class MissingInputError(SpecValueError):
    """A mandatory input was not set: a ``SpecError`` (a ``TypeError``) and, as in Pydra, a
    ``ValueError``."""

    @classmethod
    def of(cls, where: str, names: list[str], why: str = "") -> MissingInputError:
        """The error for the mandatory inputs ``names`` of ``where`` left unset, worded as
        Pydra words it ("Mandatory field 'a' is not set")."""
        quoted = ", ".join(repr(n) for n in names)
        text = (
            f"Mandatory field {quoted} is not set"
            if len(names) == 1
            else f"Mandatory fields {quoted} are not set"
        )
        return cls(f"{where}: {text}{why}", field=names[0])


class InputRuleError(SpecValueError):
    """Inputs break an ``xor`` or ``requires`` rule: a ``SpecError`` and, as in Pydra, a
    ``ValueError``."""


class InputFileError(SpecError, FileNotFoundError):
    """An input declared as a file or directory does not exist."""

    def __init__(self, message: str, *, field: str | None = None, path: Any = None) -> None:
        SpecError.__init__(self, message, field=field, value=path)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> Any:
        # an own reduction: tblib's exception pickling (installed by Dask) would remake it
        # with a base's __new__, which FileNotFoundError refuses
        return (_rebuild_input_file_error, (self.args[0], self.field, self.path))


class SplitterError(ProvgraphError, ValueError):
    """A splitter or combiner names unknown fields, or split values do not line up."""


class HashingError(ProvgraphError, TypeError):
    """A value has no deterministic hash (register one with ``hash_value.register``)."""


class CacheError(ProvgraphError, OSError):
    """The cache directory cannot be created, locked or written."""


class WorkerError(ProvgraphError, RuntimeError):
    """A worker cannot be created or has lost the ability to run jobs."""


class TaskFailedError(ProvgraphError, RuntimeError):
    """One or more jobs failed; ``errors`` lists each with its directory and traceback."""

    def __init__(self, message: str, *, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])

    def __reduce__(self) -> Any:
        # remade from its message, then its attributes: an own reduction, so that tblib's
        # exception pickling (installed by Dask) does not remake it with a base's __new__,
        # which the pair with FileNotFoundError would refuse
        return (type(self), tuple(self.args), dict(self.__dict__))


# A task called directly that failed raises ``TaskFailedError``; when every job failed with one
# of these built-in types, the error is also of that type (as Pydra re-raises a task's own
# error): ``except ValueError`` still catches a task's ValueError. Defined here, by name, so
# that they pickle; types whose ``str()`` differs from their message (KeyError, the
# Unicode and syntax errors) or that cannot be made from a message alone are left out. Of
# OSError's kind only FileNotFoundError is paired: made from its one message (no errno), it
# pickles and unpickles like the others (``tests/test_pydra_parity.py`` checks it across
# processes).
class TaskFailedValueError(TaskFailedError, ValueError):
    """A task failed with ValueError."""


class TaskFailedTypeError(TaskFailedError, TypeError):
    """A task failed with TypeError."""


class TaskFailedArithmeticError(TaskFailedError, ArithmeticError):
    """A task failed with ArithmeticError."""


class TaskFailedZeroDivisionError(TaskFailedError, ZeroDivisionError):
    """A task failed with ZeroDivisionError."""


class TaskFailedIndexError(TaskFailedError, IndexError):
    """A task failed with IndexError."""


class TaskFailedAttributeError(TaskFailedError, AttributeError):
    """A task failed with AttributeError."""


class TaskFailedAssertionError(TaskFailedError, AssertionError):
    """A task failed with AssertionError."""


class TaskFailedFileNotFoundError(TaskFailedError, FileNotFoundError):
    """A task failed with FileNotFoundError (or a missing input or output file)."""


class TaskFailedNotImplementedError(TaskFailedError, NotImplementedError):
    """A task failed with NotImplementedError."""


TASK_FAILED_AS: dict[str, type[TaskFailedError]] = {
    "ValueError": TaskFailedValueError,
    "TypeError": TaskFailedTypeError,
    "ArithmeticError": TaskFailedArithmeticError,
    "ZeroDivisionError": TaskFailedZeroDivisionError,
    "IndexError": TaskFailedIndexError,
    "AttributeError": TaskFailedAttributeError,
    "AssertionError": TaskFailedAssertionError,
    "NotImplementedError": TaskFailedNotImplementedError,
    "FileNotFoundError": TaskFailedFileNotFoundError,
    "InputFileError": TaskFailedFileNotFoundError,
    "OutputNotFoundError": TaskFailedFileNotFoundError,
    # provgraph's own errors, by the built-in type each stands for (a SpecValueError and its
    # kinds: the ValueError Pydra raises for them)
    "SpecError": TaskFailedTypeError,
    "HashingError": TaskFailedTypeError,
    "SpecValueError": TaskFailedValueError,
    "MissingInputError": TaskFailedValueError,
    "InputRuleError": TaskFailedValueError,
    "SplitterError": TaskFailedValueError,
}


class ProvenanceError(ProvgraphError):
    """Provenance cannot be recorded, indexed or read."""


class CommandError(ProvgraphError, RuntimeError):
    """A shell task's command exited with a non-zero code, or could not be started."""

    def __init__(
        self, message: str, *, command: str = "", return_code: int | None = None, stderr: str = ""
    ) -> None:
        super().__init__(message)
        self.command = command
        self.return_code = return_code
        self.stderr = stderr

    def __reduce__(self) -> Any:
        return (
            _rebuild_command_error,
            (type(self), self.args[0], self.command, self.return_code, self.stderr),
        )

    def __str__(self) -> str:
        return str(self.args[0])


class OutputNotFoundError(CommandError, FileNotFoundError):
    """A command finished, but a file it was declared to make is not there: a
    ``CommandError`` and, as in Pydra, a ``FileNotFoundError``."""


class ContainerError(ProvgraphError, RuntimeError):
    """An environment cannot be used: its runtime executable or its image is missing.

    ``runtime`` names the runtime (``"podman"``, ``"bubblewrap"`` ...), ``image`` the image,
    SIF file or root filesystem that was asked for.
    """

    def __init__(self, message: str, *, runtime: str = "", image: str = "") -> None:
        super().__init__(message)
        self.runtime = runtime
        self.image = image

    def __reduce__(self) -> Any:
        return (_rebuild_container_error, (self.args[0], self.runtime, self.image))


def _rebuild_container_error(message: str, runtime: str, image: str) -> Any:
    return ContainerError(message, runtime=runtime, image=image)


def _rebuild_command_error(
    kind: type[CommandError], message: str, command: str, code: int | None, stderr: str
) -> Any:
    return kind(message, command=command, return_code=code, stderr=stderr)


def _rebuild_input_file_error(message: str, field: str | None, path: Any) -> Any:
    return InputFileError(message, field=field, path=path)
