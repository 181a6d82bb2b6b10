"""Apptainer (formerly Singularity): the command runs in a SIF image or a sandbox directory.

``apptainer exec --containall --pwd /pg/job --bind SRC:/pg/in/0:ro --bind JOB:/pg/job:rw
--net --network none IMAGE ARGV...``: ``--containall`` gives a private /tmp, home, PID and IPC
namespace and a clean environment; ``--net --network none`` removes the network (drop it with
``network=True``). The digest recorded for a SIF file is the xxh3-128 hash of its bytes, the
same content hash provgraph gives every file (and cached the same way); a sandbox directory is
named by its path.
"""

from __future__ import annotations

import os

import attrs

from ..exceptions import ContainerError
from ..hashing import file_content_digest
from .base import (
    Placement,
    Runtime,
    check_bind_source,
    file_image_info,
    find_executable,
)

__all__ = ["Apptainer", "Singularity"]

_INSTALL = (
    "install Apptainer (https://apptainer.org/docs/admin/main/installation.html; Debian has no "
    "package: use the release .deb)"
)


def _image(value: str | os.PathLike[str]) -> str:
    text = os.fspath(value)
    if "://" in text:
        from ..exceptions import SpecError

        raise SpecError(
            f"Apptainer: image={text!r}; expected a local SIF file or sandbox directory. "
            f"Fetch it once with 'apptainer pull image.sif {text}' and give that file",
            field="image",
            value=text,
        )
    return os.path.abspath(text)  # text: a Path would be hashed by the image's content


@attrs.frozen
class Apptainer(Runtime):
    """Run shell commands with ``apptainer exec`` in a local SIF file or sandbox directory.

    ``executable="singularity"`` runs SingularityCE instead (the command line is the same).
    """

    image: str = attrs.field(converter=_image)
    executable: str = attrs.field(default="apptainer", kw_only=True)
    runtime = "apptainer"

    def describe(self) -> dict[str, str]:
        """The runtime's version and the image's content hash; either missing raises here."""
        image = self.image
        exe = find_executable(self.runtime, self.executable, _INSTALL, image)
        if os.path.isfile(image):
            digest = "xxh3-128:" + file_content_digest(image).hex()
        elif os.path.isdir(image):
            digest = image
        else:
            raise ContainerError(
                f"apptainer: image {image!r} does not exist; build one with "
                f"'{self.executable} build {os.path.basename(image)} docker://...' or "
                f"'{self.executable} pull', then give its path",
                runtime=self.runtime,
                image=image,
            )
        return file_image_info(self.runtime, exe, image, digest)

    def wrap(self, argv: list[str], placement: Placement) -> list[str]:
        """``apptainer exec --containall ... IMAGE ARGV...``"""
        words = [self.executable, "exec", "--containall", "--pwd", str(placement.job_dir)]
        for mount in placement.mounts:
            check_bind_source(self.runtime, mount, ",:")
            mode = "rw" if mount.writable else "ro"
            words += ["--bind", f"{mount.source}:{mount.target}:{mode}"]
        if not self.network:
            words += ["--net", "--network", "none"]
        return [*words, *self.options, self.image, *argv]


Singularity = Apptainer
