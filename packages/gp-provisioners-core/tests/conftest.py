"""Shared by the core's tests: the fuzz case count in the summary, and Hypothesis's profile."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

# Enough cases per property to run the whole fuzz suite in well under a minute on a busy
# 2-core machine; GP_FUZZ_EXAMPLES raises it for a longer local run.
settings.register_profile(
    "gp",
    max_examples=int(os.getenv("GP_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("gp")

FUZZ_CASES: dict[str, int] = {}


def count_case(name: str) -> None:
    """Called by each fuzz property once per generated case."""
    FUZZ_CASES[name] = FUZZ_CASES.get(name, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FUZZ_CASES:
        total = sum(FUZZ_CASES.values())
        parts = ", ".join(f"{name} {count}" for name, count in sorted(FUZZ_CASES.items()))
        terminalreporter.write_line(f"fuzz: {total} cases ({parts})")
