"""pytest plugin of the conformance harness (loaded with ``-p pconf_plugin``).

* Imports ``pydra`` before pytest imports any test module, so that the ``pydra`` in
  ``sys.modules`` is the installed one (or the shim) and not the checkout's source tree,
  which pytest's importlib mode would otherwise register as the parent package.
* Makes ``pydra.engine.tests.utils`` importable on the real side too (the installed Pydra
  ships no tests): the checkout's own file, loaded under that name.
* Records each test's outcome as JSON lines in ``$PCONF_RECORD``.
* Fails a test that runs longer than ``$PCONF_TEST_TIMEOUT`` seconds (SIGALRM).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

import pydra
import pytest

SHIM = bool(getattr(pydra, "__provgraph_shim__", False))
CHECKOUT = Path(os.environ["PYDRA_CONFORMANCE_CHECKOUT"])
RECORD = os.environ.get("PCONF_RECORD")
TIMEOUT = int(os.environ.get("PCONF_TEST_TIMEOUT", "0") or 0)

for _name in ("pydra.compose", "pydra.engine", "pydra.utils"):
    importlib.import_module(_name)


def _load(name: str, path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        name,
        path,
        submodule_search_locations=[str(path.parent)] if path.name == "__init__.py" else None,
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


if SHIM:
    importlib.import_module("pydra.engine.tests")
else:
    _tests = CHECKOUT / "pydra" / "engine" / "tests"
    _load("pydra.engine.tests", _tests / "__init__.py")


# The checkout's ``pydra`` directory has no ``__init__.py``, so pytest names the packages
# below it from that directory: ``engine`` for pydra/engine, ``shell`` for
# pydra/compose/shell. Those names are pointed at the modules already imported, so pytest
# never executes the checkout's own engine or shell source.
for _alias, _name in (
    ("engine", "pydra.engine"),
    ("engine.tests", "pydra.engine.tests"),
    ("shell", "pydra.compose.shell"),
):
    sys.modules.setdefault(_alias, sys.modules[_name])


class PconfTimeout(Exception):
    """The harness's per-test time limit ran out."""


def _write(entry: dict) -> None:
    if RECORD:
        with open(RECORD, "a") as f:
            f.write(json.dumps(entry) + "\n")


def _is_internal(exc: BaseException | None, text: str) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "PydraInternalNotProvided":
            return True
        exc = exc.__cause__ or exc.__context__
    return "PydraInternalNotProvided" in text


def _first_line(exc: BaseException | None, text: str) -> str:
    if exc is not None:
        msg = str(exc).strip().splitlines()
        return (msg[0] if msg else "")[:300]
    lines = [line for line in text.splitlines() if line.startswith("E ")]
    return (lines[0][1:].strip() if lines else text.strip().splitlines()[-1:] or [""])[0][:300]


def _type_name(exc: BaseException | None, text: str) -> str:
    if exc is not None:
        return type(exc).__name__
    for line in text.splitlines():
        if line.startswith("E   ") and ":" in line:
            head = line[4:].split(":", 1)[0].strip()
            if head.replace(".", "").isidentifier():
                return head.rsplit(".", 1)[-1]
    return "Error"


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        _write({"event": "collected", "nodeid": item.nodeid})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    exc = call.excinfo.value if call.excinfo is not None else None
    text = str(rep.longrepr) if rep.longrepr is not None else ""
    entry = {
        "event": "report",
        "nodeid": rep.nodeid,
        "when": rep.when,
        "outcome": rep.outcome,
        "wasxfail": hasattr(rep, "wasxfail"),
        "duration": round(rep.duration, 3),
    }
    if rep.failed or (rep.skipped and not hasattr(rep, "wasxfail") and rep.when != "call"):
        entry.update(
            exc_type=_type_name(exc, text),
            message=_first_line(exc, text),
            internal=_is_internal(exc, text),
        )
    if rep.skipped and hasattr(rep, "wasxfail"):
        entry["exc_type"] = _type_name(exc, text)
        entry["internal"] = _is_internal(exc, text)
    _write(entry)


def pytest_collectreport(report):
    if report.failed:
        text = str(report.longrepr)
        _write(
            {
                "event": "collect_error",
                "nodeid": report.nodeid,
                "exc_type": _type_name(None, text),
                "message": _first_line(None, text),
                "internal": _is_internal(None, text),
            }
        )


def _alarm(signum, frame):
    raise PconfTimeout(f"test exceeded the harness's {TIMEOUT} s limit")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if TIMEOUT:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIMEOUT)
    try:
        yield
    finally:
        if TIMEOUT:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
