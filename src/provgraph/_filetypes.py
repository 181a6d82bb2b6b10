"""File and Directory: paths whose identity, for hashing, is their content."""

from __future__ import annotations

import os
import pathlib

__all__ = ["Directory", "File"]

_PathBase = type(pathlib.Path())


class File(_PathBase):  # type: ignore[valid-type, misc]
    """A path to a regular file. Hashed by its bytes, never by its name or location."""

    kind = "File"

    def check(self, field: str) -> None:
        """Raise ``InputFileError`` naming ``field`` unless this is an existing regular file."""
        from .exceptions import InputFileError

        if not os.path.isfile(self):
            what = "is a directory" if os.path.isdir(self) else "does not exist"
            raise InputFileError(
                f"input {field!r}: file {str(self)!r} {what}; expected an existing file",
                field=field,
                path=self,
            )


class Directory(_PathBase):  # type: ignore[valid-type, misc]
    """A path to a directory. Hashed by the names and bytes of everything inside it."""

    kind = "Directory"

    def check(self, field: str) -> None:
        """Raise ``InputFileError`` naming ``field`` unless this is an existing directory."""
        from .exceptions import InputFileError

        if not os.path.isdir(self):
            what = "is a file" if os.path.exists(self) else "does not exist"
            raise InputFileError(
                f"input {field!r}: directory {str(self)!r} {what}; expected an existing directory",
                field=field,
                path=self,
            )
