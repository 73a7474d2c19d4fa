"""Every distribution name in packages/ is either free on PyPI or published by this project.

``gp-core`` was taken on PyPI by an unrelated project when we first meant to publish under it;
this check (run by ``nox -s build``) makes sure no such name slips in again. For each name it asks
PyPI with pip (``pip index versions``); a name PyPI knows is accepted only when its newest release
names this project's repository as its home page. As a control, ``gp-core`` must come out taken.
Prints one line per name; exits 1 on a name that belongs to someone else, 2 when PyPI cannot be
asked.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/simple"


def our_home_page() -> str:
    project = tomllib.loads((ROOT / "packages" / "gp-k8s" / "pyproject.toml").read_text())
    return str(project["project"]["urls"]["Homepage"])


def distribution_names() -> list[str]:
    names = []
    for pyproject in sorted((ROOT / "packages").glob("*/pyproject.toml")):
        names.append(str(tomllib.loads(pyproject.read_text())["project"]["name"]))
    return names


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    """pip against PyPI alone (not the machine's extra indexes or find-links; its CA settings,
    such as PIP_CERT for an intercepting proxy, are kept)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX")
    }
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--index-url", PYPI, "--no-cache-dir"],
        capture_output=True,
        text=True,
        env={**environment, "PIP_CONFIG_FILE": "/dev/null"},
        check=False,
    )


def published_versions(name: str) -> list[str] | None:
    """The versions PyPI has of ``name`` ([] when none), or None when PyPI did not answer."""
    done = pip("index", "versions", name)
    if done.returncode == 0:
        line = next(line for line in done.stdout.splitlines() if "versions:" in line)
        return line.split(":", 1)[1].strip().split(", ")
    if "No matching distribution found" in done.stderr and "Could not fetch" not in done.stderr:
        return []
    print(f"{name}: PyPI did not answer: {done.stderr.strip()[-500:]}", file=sys.stderr)
    return None


def home_page_of(name: str, version: str) -> str:
    """The Project-URL Homepage (or Home-page) of ``name==version`` as PyPI serves it."""
    with tempfile.TemporaryDirectory() as folder:
        done = pip(
            "download", "--no-deps", "--only-binary", ":all:", "-d", folder, f"{name}=={version}"
        )
        wheels = list(Path(folder).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            return ""
        with zipfile.ZipFile(wheels[0]) as wheel:
            metadata_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = email.message_from_bytes(wheel.read(metadata_name))
    for url in metadata.get_all("Project-URL") or []:
        label, _, value = url.partition(",")
        if label.strip().lower() in ("homepage", "home"):
            return value.strip()
    return str(metadata.get("Home-page") or "")


def main() -> int:
    ours = our_home_page()
    # The control: the name we lost must be reported as taken, or this check proves nothing.
    control = published_versions("gp-core")
    if not control or home_page_of("gp-core", control[0]) == ours:
        print("control failed: gp-core should be on PyPI, published by another project")
        return 2
    print(f"control: gp-core is on PyPI ({', '.join(control)}) and not ours, as expected")
    failures = 0
    for name in distribution_names():
        versions = published_versions(name)
        if versions is None:
            return 2
        if not versions:
            print(f"{name}: not on PyPI (free)")
            continue
        home = home_page_of(name, versions[0])
        if home == ours:
            print(f"{name}: on PyPI ({', '.join(versions)}), published by this project")
            continue
        failures += 1
        print(
            f"{name}: TAKEN on PyPI by another project ({', '.join(versions)}; home page "
            f"{home or 'unknown'}): rename the distribution in packages/*/pyproject.toml"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
