"""The ``provgraph`` command line; it calls only the public API.

``provgraph run FILE.py[:NAME] [--input name=VALUE ...] [--worker W] [--cache-dir DIR]``
runs the task instance (or task class, with ``--input`` values) named NAME in FILE.py;
VALUE is read as JSON when it parses, else taken as a string.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from collections.abc import Sequence
from typing import Any

import provgraph

__all__ = ["main"]


def _load(target: str) -> Any:
    path, _, name = target.partition(":")
    namespace = runpy.run_path(path, run_name="__provgraph_run__")
    if name:
        if name not in namespace:
            raise provgraph.SpecError(f"{path} defines no {name!r}", field="NAME", value=name)
        return namespace[name]
    tasks = [
        v
        for v in namespace.values()
        if isinstance(v, type)
        and hasattr(v, "_definition_hash")
        and v.__module__ == "__provgraph_run__"
    ]
    if len(tasks) != 1:
        names = sorted(t.__name__ for t in tasks)
        raise provgraph.SpecError(
            f"{path}: name the task to run as FILE.py:NAME (found {names or 'none'})",
            field="NAME",
        )
    return tasks[0]


def _parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise provgraph.SpecError(f"--input {pair!r}: expected name=value", field="--input")
        try:
            inputs[name] = json.loads(text)
        except ValueError:
            inputs[name] = text
    return inputs


def _run(args: argparse.Namespace) -> int:
    target = _load(args.target)
    inputs = _parse_inputs(args.input)
    task = target(**inputs) if isinstance(target, type) else target
    if inputs and not isinstance(target, type):
        for name, value in inputs.items():
            setattr(task, name, value)
    with provgraph.Submitter(cache_dir=args.cache_dir, worker=args.worker) as sub:
        result = sub(task)
    for name in result.outputs:
        print(f"{name} = {result.outputs[name]!r}")
    print(f"output_dir = {result.output_dir}")
    stats = result.stats
    print(f"executed {stats['executed']}, reused {stats['reused']}, failed {stats['failed']}")
    for failure in result.errors:
        print(failure, file=sys.stderr)
    return 1 if result.errored else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``provgraph`` command."""
    parser = argparse.ArgumentParser(prog="provgraph", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=provgraph.__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a task defined in a Python file")
    run.add_argument("target", help="FILE.py[:NAME]")
    run.add_argument("--input", "-i", action="append", default=[], help="name=VALUE")
    run.add_argument("--worker", default=None, help="serial (default) or cf")
    run.add_argument("--cache-dir", default=None, help="cache directory")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except provgraph.ProvgraphError as err:
        print(f"provgraph: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
