"""What the packages' fuzz suites (Hypothesis) share: one settings profile and a case count.

A package's ``tests/conftest.py`` does::

    from gp_provisioners_core.testing.fuzz import load_profile, pytest_terminal_summary

    load_profile()

and each property calls :func:`count_case` once per generated case; the run then ends with
``fuzz: N cases (...)``.  Needs ``hypothesis`` (the packages' ``test`` extra).
"""

from __future__ import annotations

import os
from typing import Any

FUZZ_CASES: dict[str, int] = {}


def load_profile() -> None:
    """300 cases per property (``GP_FUZZ_EXAMPLES`` changes it), no per-case deadline: the
    machines that run CI are shared and slow, and a fuzz suite must stay around a minute."""
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "gp",
        max_examples=int(os.getenv("GP_FUZZ_EXAMPLES", "300")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile("gp")


def count_case(name: str) -> None:
    """Called by a fuzz property once per generated case."""
    FUZZ_CASES[name] = FUZZ_CASES.get(name, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """pytest hook (re-exported by a conftest): print the number of fuzz cases run."""
    if FUZZ_CASES:
        total = sum(FUZZ_CASES.values())
        parts = ", ".join(f"{name} {count}" for name, count in sorted(FUZZ_CASES.items()))
        terminalreporter.write_line(f"fuzz: {total} cases ({parts})")
