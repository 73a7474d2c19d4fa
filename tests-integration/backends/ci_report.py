"""Lines a suite wants in the CI log whatever its outcome: pytest captures ``print()`` of
passing tests, so these are written again in the terminal summary (``conftest.py``)."""

from __future__ import annotations

LINES: list[str] = []


def report(line: str) -> None:
    """Print ``line`` now and again in the run's terminal summary."""
    LINES.append(line)
    print(line)
