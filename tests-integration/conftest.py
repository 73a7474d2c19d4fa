"""What every end-to-end suite shares: each backend's fixtures, found the same way.

Each backend's pytest fixtures live in one module, ``backends/<backend>_fixtures.py`` (the real
daemon or emulator, brought up once per session on loopback, and the kernelspecs installed
against it); the end-to-end fixtures that drive several backends through real Jupyter clients
live in ``e2e_fixtures.py``.  All are registered here, so a suite asks for a fixture by name and
imports none (docs/developers/testing.md lists which suite uses which backend).  A fixture
brings its backend up only when a test asks for it.
"""

from __future__ import annotations

from typing import Any

pytest_plugins = [
    "backends.ssh_fixtures",
    "backends.docker_fixtures",
    "backends.k8s_fixtures",
    "backends.crd_fixtures",
    "backends.slurm_fixtures",
    "e2e_fixtures",
]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """What suites asked to show in the CI log (``backends.ci_report``), passed or not."""
    from backends.ci_report import LINES

    if LINES:
        terminalreporter.section("gateway-provisioners reports")
        for line in LINES:
            terminalreporter.write_line(line)
