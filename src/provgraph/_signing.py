"""Keyed MACs over every pickle provgraph writes to disk and later loads.

Unpickling runs code: a result, a stored task definition or input values, or a SLURM job's
payload, planted by anyone who can write to the cache, would run as the next user who reads it.
So each such file carries a MAC (BLAKE2b keyed with the cache user's secret, 32 bytes) over its
bytes, and :func:`unseal` returns the bytes only when the MAC verifies; nothing unverified is
ever unpickled. The key comes from ``PROVGRAPH_KEY`` or from a key file
(``PROVGRAPH_KEY_FILE``, default ``$XDG_CONFIG_HOME/provgraph/key`` or
``~/.config/provgraph/key``), created with 32 random bytes and mode 0600 on first use. Users who
share a cache share a key (see ``docs/security.md``).

Sealed layout: ``PGS1`` + the 32-byte MAC + the data.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

from .config import Config
from .exceptions import CacheError

__all__ = ["MAC_SIZE", "key", "mac", "seal", "unseal", "unseal_file"]

MAGIC = b"PGS1"
MAC_SIZE = 32


# the key, what it was read from, and a BLAKE2b state keyed with it (copied for each MAC: a
# third less than keying a new one, on every result a job saves or reuses)
_known: tuple[tuple[object, ...], bytes, Any] | None = None


def _current() -> tuple[tuple[object, ...], bytes, Any]:
    global _known
    source = Config.key_source()
    known = _known
    if known is None or known[0] != source:
        config = Config.from_env()
        secret = _key(config.key, str(config.key_file))
        known = _known = (source, secret, hashlib.blake2b(key=secret, digest_size=MAC_SIZE))
    return known


def key() -> bytes:
    """The secret key of this user (from the environment or the key file)."""
    return _current()[1]


@functools.lru_cache(maxsize=8)
def _key(given: str | None, key_file: str) -> bytes:
    if given:
        return hashlib.blake2b(given.encode(), digest_size=32, person=b"provgraph-key").digest()
    path = Path(key_file)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = _create_key_file(path)
    except OSError as err:
        raise CacheError(f"cannot read the provgraph key file {key_file!r}: {err}") from err
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise CacheError(
            f"the provgraph key file {key_file!r} does not hold a key (expected at least 32 hex "
            "digits); remove it to have a new one made, or set PROVGRAPH_KEY"
        )
    return secret


def _create_key_file(path: Path) -> str:
    """A new key, written aside and linked into place: a concurrent reader never sees a
    half-written key file, and of two processes making one at once, one key wins."""
    import secrets  # (once per user: not by every import of provgraph)

    text = secrets.token_hex(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process made it meanwhile: theirs is the key
            text = path.read_text().strip()
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as err:
        raise CacheError(
            f"cannot create the provgraph key file {str(path)!r}: {err}; set PROVGRAPH_KEY or "
            "PROVGRAPH_KEY_FILE"
        ) from err
    return text


def mac(data: bytes) -> bytes:
    """The MAC of ``data`` under this user's key."""
    state = _current()[2].copy()
    state.update(data)
    return state.digest()


def seal(data: bytes) -> bytes:
    """``data`` with its MAC in front."""
    return MAGIC + mac(data) + data


def unseal(blob: bytes) -> bytes | None:
    """The data of a sealed blob, or None when it is not sealed or its MAC does not verify."""
    head = len(MAGIC) + MAC_SIZE
    if len(blob) < head or not blob.startswith(MAGIC):
        return None
    data = blob[head:]
    return data if hmac.compare_digest(blob[len(MAGIC) : head], mac(data)) else None


def unseal_file(path: str | os.PathLike[str]) -> bytes | None:
    """The data of a sealed file, or None when it does not verify (read errors propagate)."""
    with open(path, "rb") as fh:
        return unseal(fh.read())
