"""What a PyPI user expects of each package's wheel and sdist (run by ``nox -s build``).

For every package in packages/: one wheel and one sdist in the given folder; both carry the
LICENSE (the repository's, unchanged); the sdist carries the README, the changelog and
pyproject.toml; the metadata has the licence expression, the Jupyter and Python-version
classifiers, the project URLs (home page, source, changelog) and the package's own README as its
long description. Prints one line per distribution; exits 1 naming what is missing.
"""

from __future__ import annotations

import argparse
import email
import email.message
import sys
import tarfile
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
LICENSE = (ROOT / "LICENSE").read_text()
REQUIRED_CLASSIFIERS = ("Framework :: Jupyter", "Programming Language :: Python :: 3")
REQUIRED_URLS = ("homepage", "source", "changelog")


def metadata_problems(metadata: email.message.Message, package: Path) -> list[str]:
    problems = []
    if metadata.get("License-Expression") != "BSD-3-Clause":
        problems.append("no License-Expression BSD-3-Clause")
    classifiers = metadata.get_all("Classifier") or []
    problems += [f"no classifier {c!r}" for c in REQUIRED_CLASSIFIERS if c not in classifiers]
    if not any(c.startswith("Programming Language :: Python :: 3.") for c in classifiers):
        problems.append("no Python-version classifier")
    labels = {u.split(",", 1)[0].strip().lower() for u in metadata.get_all("Project-URL") or []}
    problems += [f"no project URL {u!r}" for u in REQUIRED_URLS if u not in labels]
    readme = (package / "README.md").read_text()
    if metadata.get_payload().strip() != readme.strip():  # type: ignore[union-attr]
        problems.append("the long description is not the package's README.md")
    if metadata.get("Description-Content-Type") != "text/markdown":
        problems.append("the long description is not declared as Markdown")
    return problems


def wheel_problems(wheel: Path, package: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        licence = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        problems = [] if licence else ["no LICENSE in .dist-info/licenses"]
        if licence and archive.read(licence[0]).decode() != LICENSE:
            problems.append("its LICENSE differs from the repository's")
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        problems += metadata_problems(email.message_from_bytes(archive.read(meta)), package)
    return problems


def sdist_problems(sdist: Path, package: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
        problems = [f"no {f}" for f in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml")]
        problems = [p for p in problems if p[3:] not in names]
        top = archive.getnames()[0].split("/", 1)[0]
        licence = archive.extractfile(f"{top}/LICENSE") if "LICENSE" in names else None
        if licence is not None and licence.read().decode() != LICENSE:
            problems.append("its LICENSE differs from the repository's")
        pkg_info = archive.extractfile(f"{top}/PKG-INFO")
        if pkg_info is None:
            return [*problems, "no PKG-INFO"]
        problems += metadata_problems(email.message_from_bytes(pkg_info.read()), package)
    return problems


def main(dist: Path, only: str | None = None) -> int:
    failed = False
    for package in sorted((ROOT / "packages").iterdir()):
        if not (package / "pyproject.toml").is_file() or only not in (None, package.name):
            continue
        name = tomllib.loads((package / "pyproject.toml").read_text())["project"]["name"]
        stem = name.replace("-", "_")
        found = {
            "wheel": (sorted(dist.glob(f"{stem}-*.whl")), wheel_problems),
            "sdist": (sorted(dist.glob(f"{stem}-*.tar.gz")), sdist_problems),
        }
        for kind, (files, check) in found.items():
            if len(files) != 1:
                print(f"{name}: expected one {kind} in {dist}, found {len(files)}")
                failed = True
                continue
            problems = check(files[0], package)
            print(f"{files[0].name}: {'; '.join(problems) if problems else 'complete'}")
            failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path, help="the folder holding the built distributions")
    parser.add_argument("--only", help="check this package alone (a folder name in packages/)")
    args = parser.parse_args()
    sys.exit(main(args.dist, args.only))
