"""provgraph: a dataflow engine whose every result carries its own provenance.

The public door: everything a user needs is importable from here.
"""

import typing as _typing

from ._filetypes import Directory, File
from ._version import __version__
from .config import Config
from .engine.result import JobFailure, Result
from .engine.runtime import task_hash
from .engine.submitter import DryRun, PlannedJob, Submitter
from .exceptions import (
    CacheError,
    CommandError,
    ContainerError,
    HashingError,
    InputFileError,
    InputRuleError,
    MissingInputError,
    OutputNotFoundError,
    ProvenanceError,
    ProvgraphError,
    SpecError,
    SpecValueError,
    SplitterError,
    TaskFailedError,
    WorkerError,
)
from .hashing import hash_value
from .spec import python, shell, workflow
from .spec.base import get_fields
from .spec.fields import MultiInputObj, MultiOutputObj

if _typing.TYPE_CHECKING:
    from . import environments
    from .drawing import plot_workflow
    from .provenance.rocrate import read_crate
    from .provenance.store import ProvenanceStore
    from .spec._pydra import from_pydra


def __getattr__(name: str) -> object:
    # the provenance store pulls in rdflib: imported when first asked for
    if name == "ProvenanceStore":
        from .provenance.store import ProvenanceStore

        return ProvenanceStore
    if name == "from_pydra":  # Pydra's task packages: loaded when first asked for
        from .spec._pydra import from_pydra

        return from_pydra
    if name == "environments":  # the container runtimes: imported when first asked for
        import importlib

        return importlib.import_module(".environments", __name__)
    if name == "plot_workflow":  # (subprocess for Graphviz: imported when first asked for)
        from .drawing import plot_workflow

        return plot_workflow
    if name == "read_crate":
        from .provenance.rocrate import read_crate

        return read_crate
    raise AttributeError(f"module 'provgraph' has no attribute {name!r}")


__all__ = [
    "CacheError",
    "CommandError",
    "Config",
    "ContainerError",
    "Directory",
    "DryRun",
    "File",
    "HashingError",
    "InputFileError",
    "InputRuleError",
    "JobFailure",
    "MissingInputError",
    "MultiInputObj",
    "MultiOutputObj",
    "OutputNotFoundError",
    "PlannedJob",
    "ProvenanceError",
    "ProvenanceStore",
    "ProvgraphError",
    "Result",
    "SpecError",
    "SpecValueError",
    "SplitterError",
    "Submitter",
    "TaskFailedError",
    "WorkerError",
    "__version__",
    "environments",
    "from_pydra",
    "get_fields",
    "hash_value",
    "plot_workflow",
    "python",
    "read_crate",
    "shell",
    "task_hash",
    "workflow",
]
