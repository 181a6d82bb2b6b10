"""Podman, and the OCI command-line shape it shares with Docker.

``podman run --rm --pull=never --workdir=/pg/job --network=none --mount=... IMAGE ARGV...``:
the image must already be on the machine (jobs never pull), the command runs with no network
unless ``network=True``, and the runtime's exit code, stdout and stderr are the command's.
The digest recorded is the image ID from ``podman image inspect`` (``sha256:...``), the
content hash of the image's configuration, which names the image's exact layers.
"""

from __future__ import annotations

import subprocess
from typing import Any, ClassVar

import attrs

from ..exceptions import ContainerError, SpecError
from .base import (
    Placement,
    Runtime,
    check_bind_source,
    find_executable,
    non_empty,
    probe,
    version_of,
)

__all__ = ["OciRuntime", "Podman"]


def _optional_tag(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        non_empty(instance, attribute, value)
        if any(c in value for c in ":/@"):
            raise SpecError(
                f"{type(instance).__name__}: tag={value!r}; expected a tag such as 'latest' "
                "or '1.2' (no ':', '/' or '@')",
                field="tag",
                value=value,
            )


def split_reference(image: str, tag: str | None) -> tuple[str, str, str]:
    """``(name, tag, digest)`` of an image reference such as ``repo/name:tag@sha256:...``."""
    name, _, digest = image.partition("@")
    own_tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, own_tag = name.rsplit(":", 1)
    if own_tag and tag is not None and tag != own_tag:
        raise SpecError(
            f"image {image!r} already names tag {own_tag!r}, but tag={tag!r} was given too; "
            "give the tag once",
            field="tag",
            value=tag,
        )
    chosen = own_tag or tag or ("" if digest else "latest")
    return name, chosen, digest


@attrs.frozen
class OciRuntime(Runtime):
    """A runtime with Docker's command line (``run``, ``--mount``, ``image inspect``)."""

    image: str = attrs.field(validator=non_empty)
    tag: str | None = attrs.field(default=None, validator=_optional_tag)
    executable: str = attrs.field(default="", kw_only=True)
    # the image ID the submission found (see pinned()); not part of what the environment is
    pin: str = attrs.field(default="", kw_only=True, eq=False, repr=False)
    install_hint = ""
    remove_words: ClassVar[tuple[str, ...]] = ("rm", "--force")  # kills it at once

    def __attrs_post_init__(self) -> None:
        split_reference(self.image, self.tag)  # a conflicting tag fails here, when defined

    @property
    def reference(self) -> str:
        """The image as the runtime is given it: ``name:tag`` (and ``@digest`` if named)."""
        name, tag, digest = split_reference(self.image, self.tag)
        return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")

    def describe(self) -> dict[str, str]:
        """Runtime version and the image's ID; a missing runtime or image raises here."""
        ref = self.reference
        exe = find_executable(self.runtime, self.executable, self.install_hint, ref)
        version = version_of(self.runtime, exe, ref)
        done = probe(self.runtime, [exe, "image", "inspect", "--format", "{{.Id}}", ref], ref)
        found = done.stdout.strip().splitlines()
        if done.returncode != 0 or not found:
            why = (done.stderr.strip().splitlines() or ["no such image"])[-1]
            raise ContainerError(
                f"{self.runtime}: image {ref!r} is not available ({why}); "
                f"'{self.executable} image ls' lists the local images. Get it first with "
                f"'{self.executable} pull {ref}' (or build or import it): jobs never pull images",
                runtime=self.runtime,
                image=ref,
            )
        digest = found[0].strip()
        name, tag, _ = split_reference(self.image, self.tag)
        return {
            "runtime": self.runtime,
            "runtime_version": version,
            "image": ref,
            "image_name": name,
            "tag": tag,
            "digest": digest if ":" in digest else f"sha256:{digest}",
        }

    def wrap(self, argv: list[str], placement: Placement) -> list[str]:
        """``<executable> run --rm ... IMAGE ARGV...``"""
        words = [self.executable, "run", "--rm", "--pull=never", f"--name={placement.name}"]
        words.append(f"--workdir={placement.job_dir}")
        if not self.network:
            words.append("--network=none")
        words += self.user_options()
        for mount in placement.mounts:
            check_bind_source(self.runtime, mount, ",")
            spec = f"type=bind,source={mount.source},target={mount.target}"
            words.append(f"--mount={spec}" + ("" if mount.writable else ",readonly"))
        return [*words, *self.options, self.pin or self.reference, *argv]

    def pinned(self, info: dict[str, str]) -> OciRuntime:
        """Run by the image ID found when the submission started: on every node, and however
        the tag moves meanwhile, the image that runs is the one recorded."""
        return attrs.evolve(self, pin=info["digest"])

    def cleanup(self, placement: Placement) -> None:
        """The container runs apart from its client: remove it by name, whatever it is doing."""
        subprocess.run(
            [self.executable, *self.remove_words, placement.name],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )

    def user_options(self) -> list[str]:
        """Options choosing the user the command runs as inside (none: the runtime's default)."""
        return []


@attrs.frozen
class Podman(OciRuntime):
    """Run shell commands in a Podman container from a local image.

    ``Podman("localhost/tool", "1.2")`` or ``Podman("localhost/tool:1.2")``; the tag defaults
    to ``latest``. ``network=True`` gives the command the host's network (default: none);
    ``options=[...]`` adds words to ``podman run``; ``executable`` names another binary.
    Rootless Podman maps the container's root to the calling user, so output files are the
    caller's.
    """

    executable: str = attrs.field(default="podman", kw_only=True, validator=non_empty)
    runtime = "podman"
    # podman's `rm --force` first asks nicely for 10 s; a cancelled job has only SLURM's KillWait
    remove_words = ("rm", "--force", "--time=0")
    install_hint = "install it (Debian/Ubuntu: 'apt-get install podman')"
