"""Bubblewrap: the command runs in a root filesystem directory, in fresh namespaces.

The new root is an empty tmpfs onto which each top-level entry of ``rootfs`` is bound
read-only (so that ``/pg`` can be created beside them), then ``/proc``, ``/dev`` and a private
``/tmp``, the job's mounts, and finally the root itself is made read-only. ``--unshare-all``
takes the network away (``network=True`` shares the host's), ``--clearenv`` leaves only
``PATH`` and ``HOME`` set, and ``--die-with-parent`` ends the command with its job.

A directory has no content digest to ask a runtime for: the record names the root
filesystem by its absolute path.
"""

from __future__ import annotations

import os

import attrs

from ..exceptions import ContainerError
from .base import JOB_DIR, Placement, Runtime, file_image_info, find_executable

__all__ = ["Bubblewrap"]

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OWN = {"proc", "dev", "tmp", "pg"}  # provided by bwrap itself, or ours


def _absolute(value: str | os.PathLike[str]) -> str:
    # kept as text: a Path would be hashed by the content of the whole tree
    return os.path.abspath(os.fspath(value))


@attrs.frozen
class Bubblewrap(Runtime):
    """Run shell commands with ``bwrap`` inside the root filesystem directory ``rootfs``."""

    rootfs: str = attrs.field(converter=_absolute)
    executable: str = attrs.field(default="bwrap", kw_only=True)
    runtime = "bubblewrap"

    def describe(self) -> dict[str, str]:
        """bwrap's version and the root filesystem's path; either missing raises here."""
        image = self.rootfs
        exe = find_executable(
            self.runtime,
            self.executable,
            "install it (Debian/Ubuntu: 'apt-get install bubblewrap')",
            image,
        )
        if not os.path.isdir(self.rootfs):
            raise ContainerError(
                f"bubblewrap: root filesystem {image!r} is not a directory; expected a "
                "directory holding /bin, /usr ... (e.g. made by debootstrap, or by extracting "
                "an image: 'podman export $(podman create IMAGE) | tar -x -C DIR')",
                runtime=self.runtime,
                image=image,
            )
        return file_image_info(self.runtime, exe, image, image)

    def wrap(self, argv: list[str], placement: Placement) -> list[str]:
        """``bwrap --unshare-all ... --chdir /pg/job -- ARGV...``"""
        words = [self.executable, "--unshare-all"]
        if self.network:
            words.append("--share-net")
        words += ["--die-with-parent", "--new-session", "--clearenv"]
        words += ["--setenv", "PATH", _PATH, "--setenv", "HOME", JOB_DIR]
        words += self._root_entries()
        words += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for mount in placement.mounts:
            words += ["--bind" if mount.writable else "--ro-bind", mount.source, mount.target]
        words += ["--remount-ro", "/", "--chdir", str(placement.job_dir), *self.options, "--"]
        return words + list(argv)

    def _root_entries(self) -> list[str]:
        words: list[str] = []
        for entry in sorted(os.scandir(self.rootfs), key=lambda e: e.name):
            if entry.name in _OWN:
                continue
            if entry.is_symlink():
                words += ["--symlink", os.readlink(entry.path), f"/{entry.name}"]
            else:
                words += ["--ro-bind", entry.path, f"/{entry.name}"]
        return words
