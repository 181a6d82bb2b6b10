"""``pydra.engine.submitter.Submitter`` -> ``provgraph.Submitter``.

Mapped call shapes:

* ``Submitter(cache_root=, worker=, environment=, readonly_caches=, propagate_rerun=,
  **worker_options)``: ``cache_root`` is provgraph's ``cache_dir`` (``None`` means provgraph's
  default); Pydra's worker ``"debug"`` is provgraph's ``"serial"`` (also registered under
  the name ``"debug"`` so that ``task(worker="debug")`` finds it); ``readonly_caches=None``
  is ``()`` and a single path is a list of one; the progress display is turned off, as
  Pydra has none.
* ``sub(task, hooks=None, raise_errors=None, rerun=False)``: as in Pydra, ``raise_errors``
  defaults to True for the debug worker, and then a failed run raises provgraph's own error.
* the result: :class:`Result` below, Pydra's attribute names over provgraph's ``Result``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import provgraph
from provgraph.workers import available_workers, register_worker

from .._internal import placeholder

if "debug" not in available_workers():
    register_worker("debug", "provgraph.workers.serial:SerialWorker")

_WORKERS = {None: "serial", "debug": "serial"}


def _caches(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, (str, Path)):
        return [value]
    return value


class Result:
    """Pydra's names for a run's result: ``outputs``, ``errored``, ``errors``, ``cache_dir``."""

    def __init__(self, result: provgraph.Result, task: Any) -> None:
        self._result = result
        self.task = task

    @property
    def outputs(self):
        return self._result.outputs

    @property
    def errored(self) -> bool:
        return self._result.errored

    @property
    def cache_dir(self) -> Path:
        return self._result.output_dir

    output_dir = cache_dir

    @property
    def errors(self) -> dict[str, Any] | None:
        # Pydra: None, or a dict whose "error message" is a list of text lines
        if not self._result.errors:
            return None
        # provgraph's own summary of the failed run, as raise_for_errors() words it
        try:
            self._result.raise_for_errors()
        except provgraph.TaskFailedError as err:
            lines = [line + "\n" for line in str(err).splitlines()]
        return {
            "error message": lines,
            "name with checksum": [f"{e.task_name}_{e.job_hash}" for e in self._result.errors],
        }

    @property
    def job(self):
        raise placeholder("pydra.engine.job.Job")()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)


class Submitter:
    """Pydra's ``Submitter`` signature over ``provgraph.Submitter``."""

    def __init__(
        self,
        cache_root: str | Path | None = None,
        worker: Any = "debug",
        environment: Any = None,
        readonly_caches: Any = None,
        propagate_rerun: bool = True,
        **kwargs: Any,
    ) -> None:
        name = (
            _WORKERS.get(worker, worker) if (worker is None or isinstance(worker, str)) else worker
        )
        self._debug = name == "serial"
        self.propagate_rerun = propagate_rerun
        self._sub = provgraph.Submitter(
            cache_dir=cache_root,
            worker=name,
            environment=environment,
            readonly_caches=_caches(readonly_caches),
            progress=False,
            **kwargs,
        )
        self.worker = self._sub.worker

    @property
    def cache_root(self) -> Path:
        return self._sub.cache_dir

    def __enter__(self) -> Submitter:
        self._sub.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sub.__exit__(*exc)

    def close(self) -> None:
        self._sub.close()

    def __call__(
        self, task: Any, hooks: Any = None, raise_errors: bool | None = None, rerun: bool = False
    ) -> Result:
        if hooks is not None:
            raise TypeError("Submitter(...)(task, hooks=...): no provgraph equivalent mapped")
        if raise_errors is None:
            raise_errors = self._debug
        result = self._sub(task, rerun=rerun, propagate_rerun=self.propagate_rerun)
        if raise_errors:
            result.raise_for_errors()
        return Result(result, task)


__all__ = ["Result", "Submitter"]
