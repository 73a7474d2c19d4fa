"""Settings that were renamed: the old name keeps working, forwards to the new one and warns once.

A provisioner declares an old name with :func:`deprecated_alias` (a trait of the same type,
``config=True``, so ``c.Class.old_name = ...`` and a kernelspec's
``metadata.kernel_provisioner.config`` still accept it).  ``RemoteProvisionerConfigMixin``
observes every such trait and copies what is set to the new name, logging one warning per
class and name per process.  Environment variables that were renamed are read by
:func:`env_set_renamed`, which warns once per variable in the same way.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from traitlets import TraitType

ALIAS_METADATA = "deprecated_alias_of"

_warned: set[tuple[str, str]] = set()
_log = logging.getLogger("gp_provisioners_core")


def deprecated_alias(new_name: str, trait: TraitType[Any, Any]) -> TraitType[Any, Any]:
    """``trait`` (configurable) marked as the old name of ``new_name``.

    Declared in a backend's class body; the help text says what replaces it.  Setting it sets
    ``new_name`` (see ``RemoteProvisionerConfigMixin._forward_deprecated_alias``).
    """
    trait.help = f"Deprecated: use {new_name}, which it sets (a warning is logged once)."
    return trait.tag(config=True, **{ALIAS_METADATA: new_name})


def warn_once(owner: str, old: str, new: str, logger: logging.Logger | None = None) -> bool:
    """Log that ``old`` (of ``owner``) is deprecated in favour of ``new``; once per process.

    Returns whether it logged.  Called when an alias is used.
    """
    if (owner, old) in _warned:
        return False
    _warned.add((owner, old))
    (logger or _log).warning(
        "%s.%s is deprecated and will be removed: use %s (it was applied as %s)",
        owner,
        old,
        new,
        new,
    )
    return True


def env_set_renamed(name: str, old_names: tuple[str, ...], fallback: str = "") -> set[str]:
    """A comma-separated set from the variable ``name``, else from the first of ``old_names``
    that is set (warning once that it was renamed), else from ``fallback``.

    Called by trait defaults, so an explicit setting always wins over any variable.
    """
    raw = os.environ.get(name)
    if raw is None:
        for old in old_names:
            if old in os.environ:
                raw = os.environ[old]
                warn_once("environment", old, name)
                break
    text = fallback if raw is None else raw
    return {item.strip() for item in text.split(",") if item.strip()}
