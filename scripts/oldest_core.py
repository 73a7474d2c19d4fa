"""Which gp-provisioners-core to test a backend against: the oldest *released* gp-provisioners-core
its range admits.

Writes the path of a source tree of that release (exported from its ``gp-provisioners-core-vX.Y.Z``
tag into
``--workdir``) to ``--output``, or an empty file when no released gp-provisioners-core satisfies
the range
yet (then only the current gp-provisioners-core can be tested, and the script says so).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def core_requirement(package: str) -> Requirement:
    project = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
    for line in project["project"]["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == "gp-provisioners-core":
            return requirement
    raise SystemExit(f"{package} declares no gp-provisioners-core dependency")


def released_core_versions() -> list[Version]:
    tags = subprocess.run(
        ["git", "tag", "--list", "gp-provisioners-core-v*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(
        Version(t.removeprefix("gp-provisioners-core-v"))
        for t in tags
        if re.match(r"gp-provisioners-core-v\d", t)
    )


def export_release(version: Version, workdir: Path) -> Path:
    target = workdir / f"gp-provisioners-core-{version}"
    if not target.exists():
        archive = subprocess.run(
            [
                "git",
                "archive",
                "--format=tar",
                f"gp-provisioners-core-v{version}",
                "packages/gp-provisioners-core",
                "launchers",
            ],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return target / "packages" / "gp-provisioners-core"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="file to write the path to")
    args = parser.parse_args(argv)
    requirement = core_requirement(args.package)
    admitted = [v for v in released_core_versions() if v in requirement.specifier]
    if not admitted:
        args.output.write_text("")
        print(
            f"{args.package}: no released gp-provisioners-core satisfies "
            f"{requirement.specifier} yet; "
            "only the current gp-provisioners-core is tested"
        )
        return 0
    tree = export_release(admitted[0], args.workdir)
    args.output.write_text(str(tree))
    print(f"{args.package}: testing against gp-provisioners-core {admitted[0]} ({tree})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
