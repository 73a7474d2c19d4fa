"""Reusable test kit: the conformance suite every backend runs, and kernel client helpers.

A backend's tests subclass :class:`~gp_core.testing.conformance.ProvisionerConformance` and
provide the ``conformance_backend`` fixture (a :class:`ConformanceBackend`).  Needs the
``test`` extra of gp-core (pytest, pytest-asyncio, ipykernel).
"""

from .conformance import ConformanceBackend, LanguageSnippets, ProvisionerConformance
from .kernels import ExecutionResult, execute, isolated_jupyter_paths

__all__ = [
    "ConformanceBackend",
    "ExecutionResult",
    "LanguageSnippets",
    "ProvisionerConformance",
    "execute",
    "isolated_jupyter_paths",
]
