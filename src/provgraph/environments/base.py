"""What every environment does, and the file placement the container runtimes share.

An environment answers three questions, in two processes:

``describe()``  in the submitting process, once per submission: is the runtime there, is the
                image there, and what are they (runtime and version, image, tag, content
                digest)? A missing runtime or image raises :class:`ContainerError` here,
                before any job runs. ``None`` means "nothing to record" (native runs).
``place()``     in the process that runs the job: where the job's input files and its
                directory appear inside the environment (:class:`Placement`).
``wrap()``      the command line that runs the task's command (already written with the
                inside paths) through the runtime.

Inside every container the layout is the same: the directory of each input file is bound
read-only at ``/pg/in/0``, ``/pg/in/1`` ... (in the order the inputs are met), and the job's
directory read-write at ``/pg/job``, which is also the working directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any, ClassVar

import attrs

from .._fileformats import is_fileset, is_mock
from .._filetypes import Directory, File
from ..exceptions import ContainerError, SpecError

__all__ = [
    "INPUTS_DIR",
    "JOB_DIR",
    "Environment",
    "Mount",
    "Placement",
    "Runtime",
    "place_files",
]

JOB_DIR = "/pg/job"
INPUTS_DIR = "/pg/in"
_PROBE_TIMEOUT = 120  # seconds a `--version` or `image inspect` call may take


@attrs.frozen(kw_only=True)
class Mount:
    """A host path made visible at ``target`` inside the environment."""

    source: str
    target: str
    writable: bool = False


@attrs.frozen(kw_only=True)
class Placement:
    """A job's inputs as the command sees them inside, and the mounts that make it so."""

    inputs: dict[str, Any]
    job_dir: Path
    mounts: tuple[Mount, ...] = ()
    # a name for the container of this one run, so that it can be stopped by name
    name: str = attrs.field(factory=lambda: f"provgraph-{uuid.uuid4().hex[:16]}")


class Environment:
    """Base of the environments in :mod:`provgraph.environments`."""

    runtime: ClassVar[str] = ""

    def describe(self) -> dict[str, str] | None:
        """Check the runtime and image; their description for the provenance record."""
        raise NotImplementedError

    def place(self, inputs: dict[str, Any], output_dir: Path) -> Placement:
        """Where ``inputs`` and ``output_dir`` appear inside the environment."""
        return place_files(inputs, output_dir)

    def wrap(self, argv: list[str], placement: Placement) -> list[str]:
        """The host command line that runs ``argv`` inside the environment."""
        raise NotImplementedError

    def pinned(self, info: dict[str, str]) -> Environment:
        """This environment as jobs run it, fixed to what :meth:`describe` found (``info``):
        an image is then run by its digest, so no other image can run under its name."""
        return self

    def cleanup(self, placement: Placement) -> None:
        """Stop what the command left running when it was interrupted (a detached container).
        Sandboxes that die with their parent process need nothing."""


def place_files(inputs: dict[str, Any], output_dir: Path) -> Placement:
    """Bind each input file's directory read-only under ``/pg/in`` and the job's at ``/pg/job``
    (an input placed in the job's directory, a copy, is reached through ``/pg/job``).

    Paths are rewritten wherever they sit in the inputs (lists, tuples, dict values); other
    values are left as they are. An input that is a symbolic link is bound as its target, under
    the link's name, in a folder of its own, since the link may point outside its directory.
    """
    job = os.path.abspath(output_dir)
    mounts = [Mount(source=job, target=JOB_DIR, writable=True)]
    folders: dict[str, str] = {}

    def inside(path: PurePath) -> str:
        host = os.path.abspath(path)
        parent, name = os.path.split(host)
        if os.path.islink(host):
            # the link may point anywhere: its target is bound under the link's own name, in a
            # folder of its own (a mount point cannot be made inside a read-only bind)
            real = os.path.realpath(host)
            key = f"link:{real}:{name}"
            if key not in folders:
                folders[key] = f"{INPUTS_DIR}/{len(folders)}"
                mounts.append(Mount(source=real, target=f"{folders[key]}/{name}"))
            return f"{folders[key]}/{name}"
        if host.startswith(job + os.sep):  # in the job's directory (a copy placed there):
            return f"{JOB_DIR}/{os.path.relpath(host, job)}"  # reached, writable, through it
        target = folders.get(parent)
        if target is None:
            target = folders[parent] = f"{INPUTS_DIR}/{len(folders)}"
            mounts.append(Mount(source=parent, target=target))
        return f"{target}/{name}"

    def convert(value: Any) -> Any:
        if isinstance(value, PurePath):
            return type(value)(inside(value))
        if is_fileset(value) and not is_mock(value):  # (a mock names no file to bind)
            # every file of the set is bound (a sidecar too); the command names the main one
            for member in value.fspaths:
                inside(member)
            main = os.fspath(value)
            return (Directory if os.path.isdir(main) else File)(inside(Path(main)))
        if isinstance(value, (list, tuple)):
            return type(value)(convert(v) for v in value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    mapped = {name: convert(value) for name, value in inputs.items()}
    return Placement(inputs=mapped, job_dir=Path(JOB_DIR), mounts=tuple(mounts))


# -- helpers for the runtimes --------------------------------------------------------------------


def non_empty(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """attrs validator: a non-empty string (or path) without surrounding blanks."""
    text = str(value) if isinstance(value, PurePath) else value
    if not isinstance(text, str) or not text or text != text.strip():
        raise SpecError(
            f"{type(instance).__name__}: {attribute.name}={value!r}; expected a non-empty "
            "string without surrounding spaces",
            field=attribute.name,
            value=value,
        )


def as_options(value: Any) -> tuple[str, ...]:
    """attrs converter: extra runtime options as a tuple of strings."""
    if isinstance(value, str):
        raise SpecError(
            f"options={value!r}; expected a list of separate words, e.g. ['--cpus=2']",
            field="options",
            value=value,
        )
    options = tuple(value)
    if not all(isinstance(o, str) for o in options):
        raise SpecError(
            f"options={value!r}; expected a list of strings", field="options", value=value
        )
    return options


@attrs.frozen
class Runtime(Environment):
    """What every container runtime takes: network access (default: none) and extra words
    for its command line (``options=[...]``)."""

    network: bool = attrs.field(
        default=False, kw_only=True, validator=attrs.validators.instance_of(bool)
    )
    options: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=as_options)


def find_executable(runtime: str, executable: str, install: str, image: str = "") -> str:
    """The full path of ``executable``, or a :class:`ContainerError` saying how to get it."""
    found = shutil.which(executable)
    if found is None:
        where = "" if os.sep in executable else " on PATH"
        raise ContainerError(
            f"{runtime}: executable {executable!r} was not found{where}, so no job can run in "
            f"{runtime}; {install}, or pass executable='/path/to/{os.path.basename(executable)}'",
            runtime=runtime,
            image=image,
        )
    return found


def probe(runtime: str, argv: Sequence[str], image: str = "") -> subprocess.CompletedProcess[str]:
    """Run a short query of the runtime (version, image inspection); never raises on exit codes."""
    try:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=_PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ContainerError(
            f"{runtime}: {' '.join(argv)!r} could not run: {err}", runtime=runtime, image=image
        ) from err


def version_of(runtime: str, executable: str, image: str = "") -> str:
    """The first line ``<executable> --version`` prints, e.g. ``podman version 4.3.1``."""
    done = probe(runtime, [executable, "--version"], image)
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not text:
        raise ContainerError(
            f"{runtime}: '{executable} --version' failed (exit code {done.returncode}): "
            f"{done.stderr.strip() or '(no output)'}",
            runtime=runtime,
            image=image,
        )
    return text.splitlines()[0]


def file_image_info(runtime: str, executable: str, image: str, digest: str) -> dict[str, str]:
    """The description of an image that is a file or a folder (a SIF file, a root filesystem):
    the runtime's version, the image's path as name and location, and its digest."""
    return {
        "runtime": runtime,
        "runtime_version": version_of(runtime, executable, image),
        "image": image,
        "digest": digest,
        "location": image,
    }


def check_bind_source(runtime: str, mount: Mount, forbidden: str) -> None:
    """Paths the runtime's bind syntax cannot carry are refused with the reason."""
    bad = sorted({c for c in forbidden if c in mount.source})
    if bad:
        raise ContainerError(
            f"{runtime}: path {mount.source!r} contains {', '.join(map(repr, bad))}, which "
            f"{runtime}'s bind-mount option cannot carry; move or rename it",
            runtime=runtime,
        )
