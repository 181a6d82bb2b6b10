"""Configuration: an argument wins, then the environment, then the documented default.

Only :meth:`Config.from_env` reads ``os.environ``; ``docs/configuration.md`` lists every variable.

``PROVGRAPH_CACHE_DIR``  cache directory (default: ``./provgraph-cache``)
``PROVGRAPH_WORKER``     default worker name (default: ``serial``)
``PROVGRAPH_ENVIRONMENT_IN_HASH``  ``1``/``true`` puts shell jobs' container in their hash
                                   (default: ``0``; see ``docs/environments.md``)
``PROVGRAPH_KEY``        the secret that authenticates the cache's pickles (default: the key file)
``PROVGRAPH_KEY_FILE``   where the key is kept (default: ``$XDG_CONFIG_HOME/provgraph/key``, or
                         ``~/.config/provgraph/key``; made on first use; see ``docs/security.md``)
``PROVGRAPH_PROVENANCE_STORE``  a SPARQL server each submission's records are sent to (default:
                         none; ``..._TOKEN``, or ``..._USER`` and ``..._PASSWORD``, authenticate;
                         see ``docs/sharing.md``)
``PROVGRAPH_AGENT_NAME``, ``PROVGRAPH_AGENT_ORCID``  who ran the runs an RO-Crate export
                         describes (default: the login recorded)
``PROVGRAPH_CRATE_LICENSE``  an RO-Crate export's licence, e.g. an SPDX URL (default: none chosen)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import attrs

from .exceptions import SpecError

__all__ = ["Config"]


@attrs.frozen(kw_only=True)
class Config:
    """Settings read once from the environment."""

    cache_dir: Path = attrs.field(factory=lambda: Path("provgraph-cache"))
    worker: str = "serial"
    environment_in_hash: bool = False
    key: str | None = None
    key_file: Path = attrs.field(factory=lambda: _config_home() / "provgraph" / "key")
    provenance_store: str | None = None
    provenance_store_token: str | None = attrs.field(default=None, repr=False)
    provenance_store_user: str | None = None
    provenance_store_password: str | None = attrs.field(default=None, repr=False)
    provenance_store_graphs: str | None = None
    provenance_store_query: str | None = None
    agent_name: str | None = None
    agent_orcid: str | None = None
    crate_license: str | None = None

    @staticmethod
    def key_source() -> tuple[object, ...]:
        """The variables the key depends on, cheaply (the MAC of every result asks), as a value
        to compare: read from the mapping behind ``os.environ`` where CPython has one (each
        ``os.environ.get`` of an unset variable raises and catches a KeyError: 0.6 us)."""
        env = os.environ
        raw, encode = getattr(env, "_data", None), getattr(env, "encodekey", None)
        if isinstance(raw, dict) and encode is not None:
            key, key_file, config_home = _encoded_names(encode)
            return raw.get(key), raw.get(key_file), raw.get(config_home)
        return tuple(env.get(name) for name in _KEY_VARIABLES)

    @classmethod
    def from_env(cls) -> Config:
        """The configuration from ``PROVGRAPH_*`` variables, defaults for the rest."""
        env = os.environ
        kwargs: dict[str, object] = {}
        if env.get("PROVGRAPH_CACHE_DIR"):
            kwargs["cache_dir"] = Path(env["PROVGRAPH_CACHE_DIR"]).expanduser()  # (quoted ~)
        if env.get("PROVGRAPH_WORKER"):
            kwargs["worker"] = env["PROVGRAPH_WORKER"]
        if env.get("PROVGRAPH_KEY"):
            kwargs["key"] = env["PROVGRAPH_KEY"]
        if env.get("PROVGRAPH_KEY_FILE"):
            kwargs["key_file"] = Path(env["PROVGRAPH_KEY_FILE"]).expanduser()
        flag = env.get("PROVGRAPH_ENVIRONMENT_IN_HASH", "").strip().lower()
        if flag:
            if flag not in _BOOLEANS:
                raise SpecError(
                    f"PROVGRAPH_ENVIRONMENT_IN_HASH={env['PROVGRAPH_ENVIRONMENT_IN_HASH']!r}; "
                    f"expected one of {sorted(_BOOLEANS)}",
                    field="PROVGRAPH_ENVIRONMENT_IN_HASH",
                    value=env["PROVGRAPH_ENVIRONMENT_IN_HASH"],
                )
            kwargs["environment_in_hash"] = _BOOLEANS[flag]
        if env.get("PROVGRAPH_PROVENANCE_STORE"):
            kwargs["provenance_store"] = env["PROVGRAPH_PROVENANCE_STORE"]
        for name in (
            "agent_name",
            "agent_orcid",
            "crate_license",
            "provenance_store_token",
            "provenance_store_user",
            "provenance_store_password",
            "provenance_store_graphs",
            "provenance_store_query",
        ):
            if env.get(f"PROVGRAPH_{name.upper()}"):
                kwargs[name] = env[f"PROVGRAPH_{name.upper()}"]
        return cls(**kwargs)  # type: ignore[arg-type]


_KEY_VARIABLES = ("PROVGRAPH_KEY", "PROVGRAPH_KEY_FILE", "XDG_CONFIG_HOME")


@functools.lru_cache(maxsize=4)
def _encoded_names(encode: Any) -> tuple[Any, ...]:
    """The key's variables as ``os.environ`` keeps them (bytes on POSIX)."""
    return tuple(encode(name) for name in _KEY_VARIABLES)


def _config_home() -> Path:
    """Where per-user configuration lives (``XDG_CONFIG_HOME``, else ``~/.config``)."""
    folder = os.environ.get("XDG_CONFIG_HOME")
    return Path(folder) if folder else Path.home() / ".config"


_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
