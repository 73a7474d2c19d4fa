"""The pre-flight check of every backend bring-up: are the Debian packages its part needs installed?

The packages come from ``scripts/system-packages.txt``, the one list that ``scripts/bootstrap.sh``
installs from. A bring-up calls :func:`missing_packages_message` (or :func:`require`) before it
starts any daemon, so a machine without, say, ``slurm-wlm-jwt-plugin`` is told which package is
missing and the command that installs it, instead of a daemon dying on a missing plugin.

A suite whose backend cannot run calls :func:`cannot_run`: it fails the test with that message
(the README's test command promises every suite runs), unless ``GP_TEST_ALLOW_SKIP=1`` asks for
a skip, for a developer who runs one suite on a machine without the other backends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[2]
PACKAGE_LIST = REPO / "scripts" / "system-packages.txt"


class MissingSystemPackages(RuntimeError):
    """A part's Debian packages are not installed; the message names them and the fix."""


@dataclass(frozen=True)
class SystemPackage:
    name: str
    parts: frozenset[str]
    why: str


def read_package_list(path: Path | None = None) -> list[SystemPackage]:
    """Every package of the list: ``name  part[,part]  # why`` a line, ``#`` lines are comments."""
    path = path or PACKAGE_LIST
    packages = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        text, _, why = raw.partition("#")
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'package parts  # why', got {raw!r}")
        packages.append(SystemPackage(fields[0], frozenset(fields[1].split(",")), why.strip()))
    return packages


def packages_for(part: str) -> list[str]:
    """The packages the list names for ``part`` (``ssh``, ``docker``, ``slurm``, ``k8s``, ...)."""
    names = [p.name for p in read_package_list() if part in p.parts]
    if not names:
        raise ValueError(f"the system-package list names no package for the part {part!r}")
    return names


def not_installed(names: list[str]) -> list[str]:
    """Those of ``names`` that dpkg does not report as installed."""
    if shutil.which("dpkg-query") is None:
        return []  # not a Debian system: nothing to check against, the daemons will tell
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *names],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {
        line.split()[0] for line in done.stdout.splitlines() if line.endswith(" installed")
    }
    return [name for name in names if name not in installed]


def missing_packages_message(part: str) -> str:
    """'' when every package of ``part`` is installed, else what is missing and how to fix it."""
    missing = not_installed(packages_for(part))
    if not missing:
        return ""
    return (
        f"the {part} suites need Debian packages that are not installed: {', '.join(missing)}. "
        f"Install them with `apt-get install -y --no-install-recommends {' '.join(missing)}` "
        f"(as root), or run `bash scripts/bootstrap.sh`, which installs every package in "
        "scripts/system-packages.txt"
    )


def require(part: str) -> None:
    """Raise :class:`MissingSystemPackages` unless every package of ``part`` is installed."""
    message = missing_packages_message(part)
    if message:
        raise MissingSystemPackages(message)


def cannot_run(reason: str) -> NoReturn:
    """Fail the calling test: its backend cannot run here (GP_TEST_ALLOW_SKIP=1 skips instead)."""
    import pytest  # only the suites call this; the bench scripts run without pytest

    if os.environ.get("GP_TEST_ALLOW_SKIP") == "1":
        pytest.skip(reason)
    pytest.fail(f"{reason} (GP_TEST_ALLOW_SKIP=1 skips such suites instead)", pytrace=False)
