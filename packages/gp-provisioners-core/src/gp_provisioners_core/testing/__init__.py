"""Reusable test kit: the conformance suite every backend runs, kernel client helpers,
:func:`~gp_provisioners_core.testing.loop.loop_ticks` (the loop kept running during a call) and
:func:`~gp_provisioners_core.testing.specs.installed_spec` (an installed kernelspec, read back).

A backend's tests subclass
:class:`~gp_provisioners_core.testing.conformance.ProvisionerConformance` and
provide the ``conformance_backend`` fixture (a :class:`ConformanceBackend`).  The suite needs
the ``test`` extra of gp-provisioners-core (pytest, pytest-asyncio, ipykernel); the kernel helpers
in
:mod:`gp_provisioners_core.testing.kernels` need only jupyter_client, so they are imported lazily.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as the lazy imports below give them, for type checkers
    from .conformance import ConformanceBackend as ConformanceBackend
    from .conformance import LanguageSnippets as LanguageSnippets
    from .conformance import ProvisionerConformance as ProvisionerConformance
    from .kernels import ExecutionResult as ExecutionResult
    from .kernels import execute as execute
    from .kernels import isolated_jupyter_paths as isolated_jupyter_paths
    from .kernels import provisioner_of as provisioner_of
    from .loop import LoopTicks as LoopTicks
    from .loop import loop_ticks as loop_ticks
    from .specs import installed_spec as installed_spec
    from .specs import provisioner_config as provisioner_config

_EXPORTS = {
    "ConformanceBackend": "conformance",
    "LanguageSnippets": "conformance",
    "ProvisionerConformance": "conformance",
    "ExecutionResult": "kernels",
    "execute": "kernels",
    "isolated_jupyter_paths": "kernels",
    "provisioner_of": "kernels",
    "LoopTicks": "loop",
    "loop_ticks": "loop",
    "installed_spec": "specs",
    "provisioner_config": "specs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gp_provisioners_core.testing' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
