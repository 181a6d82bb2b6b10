"""Stand-ins for Pydra internals that provgraph does not mirror.

Importing a name from such a module succeeds (so a test module that merely imports it can
still be collected), but using the name raises ``PydraInternalNotProvided``: the harness
counts those tests as "tests Pydra internals", not as provgraph failures.
"""

from __future__ import annotations

import sys
import types


class PydraInternalNotProvided(ImportError):
    """A test used a Pydra internal (state machine, job, templating, hashing...)."""


def _refuse(what: str) -> PydraInternalNotProvided:
    return PydraInternalNotProvided(
        f"{what} is a Pydra internal; the provgraph conformance shim does not provide it"
    )


class _InternalMeta(type):
    def __call__(cls, *args, **kwargs):
        raise _refuse(cls._pconf_name)

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise _refuse(f"{cls._pconf_name}.{name}")

    def __getitem__(cls, item):
        raise _refuse(cls._pconf_name)

    def __instancecheck__(cls, obj):
        raise _refuse(cls._pconf_name)

    def __subclasscheck__(cls, sub):
        raise _refuse(cls._pconf_name)


def placeholder(qualified: str) -> type:
    """A class standing for the internal ``qualified``: any use raises."""
    return _InternalMeta(qualified.rsplit(".", 1)[-1], (), {"_pconf_name": qualified})


def internal_module(name: str) -> types.ModuleType:
    """Register and return a module ``name`` whose every attribute is a placeholder."""
    module = types.ModuleType(name, f"Pydra internal {name}: not provided by the shim")

    def __getattr__(attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return placeholder(f"{name}.{attr}")

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    module.__path__ = []  # lets submodules be looked up (and found missing)
    sys.modules[name] = module
    return module
