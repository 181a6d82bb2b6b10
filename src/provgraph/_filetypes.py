"""File and Directory: paths whose identity, for hashing, is their content."""

from __future__ import annotations

import os
import pathlib

__all__ = ["Directory", "File"]

_PathBase = type(pathlib.Path())


def _what_is(path: os.PathLike[str]) -> str:
    """What is at ``path``, said for an error: a directory, a FIFO, a socket..., or nothing."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    for test, what in (
        (stat.S_ISDIR, "is a directory"),
        (stat.S_ISREG, "is a regular file"),
        (stat.S_ISFIFO, "is a named pipe (FIFO)"),
        (stat.S_ISSOCK, "is a socket"),
        (stat.S_ISCHR, "is a character device"),
        (stat.S_ISBLK, "is a block device"),
    ):
        if test(mode):
            return what
    return "is not a regular file"


class _Path(_PathBase):  # type: ignore[valid-type, misc]
    """What File and Directory share."""

    @property
    def fspath(self) -> pathlib.Path:
        """The path as a plain ``pathlib.Path`` (fileformats' and Pydra's name for it)."""
        return pathlib.Path(self)


class File(_Path):
    """A path to a regular file. Hashed by its bytes, never by its name or location."""

    kind = "File"

    @classmethod
    def mock(cls, path: str | os.PathLike[str] = "mock.txt") -> File:
        """A File for a path that need not exist (Pydra's ``File.mock``): enough to build a
        command line or a task object; a submission still checks that it exists."""
        return cls(os.path.abspath(path))

    @classmethod
    def sample(cls, dest_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> File:
        """A small file of bytes that depend only on ``seed``, written in ``dest_dir`` (a new
        temporary directory by default): sample data for tests."""
        import random
        import tempfile

        folder = (
            pathlib.Path(dest_dir) if dest_dir is not None else pathlib.Path(tempfile.mkdtemp())
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"sample-{seed}.bin"
        path.write_bytes(random.Random(seed).randbytes(256))
        return cls(path)

    def check(self, field: str) -> None:
        """Raise ``InputFileError`` naming ``field`` unless this is an existing regular file."""
        from .exceptions import InputFileError

        if not os.path.isfile(self):
            what = _what_is(self)
            raise InputFileError(
                f"input {field!r}: file {str(self)!r} {what}; expected an existing file",
                field=field,
                path=self,
            )


class Directory(_Path):
    """A path to a directory. Hashed by the names and bytes of everything inside it."""

    kind = "Directory"

    def check(self, field: str) -> None:
        """Raise ``InputFileError`` naming ``field`` unless this is an existing directory."""
        from .exceptions import InputFileError

        if not os.path.isdir(self):
            what = _what_is(self)
            raise InputFileError(
                f"input {field!r}: directory {str(self)!r} {what}; expected an existing directory",
                field=field,
                path=self,
            )
