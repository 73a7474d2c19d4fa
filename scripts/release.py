"""Release one package on its own: ``nox -s release -- gp-k8s 1.2.0 [--dry-run]``.

Bumps ``packages/<pkg>/src/<module>/_version.py``, compiles the change fragments in
``packages/<pkg>/changes/*.md`` into a new section at the top of ``CHANGELOG.md`` (and removes
them), commits those files, and tags ``<pkg>-v<version>``.  Nothing outside the package folder
changes.  ``--dry-run`` prints the files it would change and the new changelog section.

A fragment is a Markdown file named ``<anything>.<kind>.md`` where kind is one of
``breaking``, ``feature``, ``fix``, ``docs``, ``internal``; its text is one or more bullet lines.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = {
    "breaking": "Breaking changes",
    "feature": "Features",
    "fix": "Fixes",
    "docs": "Documentation",
    "internal": "Internal",
}
VERSION = re.compile(r"^\d+\.\d+\.\d+([ab]\d+|rc\d+)?$")


class ReleaseError(SystemExit):
    pass


def package_dir(name: str) -> Path:
    folder = ROOT / "packages" / name
    if not (folder / "pyproject.toml").is_file():
        known = sorted(p.name for p in (ROOT / "packages").iterdir() if p.is_dir())
        raise ReleaseError(f"no package {name!r}; packages are: {', '.join(known)}")
    return folder


def version_file(folder: Path) -> Path:
    module = folder.name.replace("-", "_")
    path = folder / "src" / module / "_version.py"
    if not path.is_file():
        raise ReleaseError(f"{path} is missing")
    return path


def current_version(path: Path) -> str:
    found = re.search(r'__version__ = "([^"]+)"', path.read_text())
    if not found:
        raise ReleaseError(f"{path} has no __version__ line")
    return found.group(1)


def compile_fragments(folder: Path, version: str, today: datetime.date) -> tuple[str, list[Path]]:
    """The new changelog section and the fragment files it consumed."""
    fragments = sorted((folder / "changes").glob("*.md"))
    grouped: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for fragment in fragments:
        parts = fragment.name.split(".")
        kind = parts[-2] if len(parts) >= 3 else ""
        if kind not in KINDS:
            raise ReleaseError(
                f"change fragment {fragment.name} must be named <name>.<kind>.md with kind in "
                + ", ".join(KINDS)
            )
        lines = [line.strip() for line in fragment.read_text().splitlines() if line.strip()]
        grouped[kind].extend(line if line.startswith("- ") else f"- {line}" for line in lines)
    if not fragments:
        raise ReleaseError(f"no change fragments in {folder / 'changes'}: nothing to release")
    section = [f"## {version} ({today.isoformat()})", ""]
    for kind, title in KINDS.items():
        if grouped[kind]:
            section += [f"### {title}", "", *grouped[kind], ""]
    return "\n".join(section), fragments


def updated_changelog(text: str, section: str) -> str:
    lines = text.splitlines()
    # Insert after the title and any "unreleased" placeholder section.
    title_end = 1 if lines and lines[0].startswith("# ") else 0
    rest = "\n".join(lines[title_end:]).lstrip("\n")
    rest = re.sub(r"^## [^\n]*\(unreleased\)\n(?:(?!## ).*\n?)*", "", rest, flags=re.M)
    head = "\n".join(lines[:title_end])
    return f"{head}\n\n{section}\n{rest}".rstrip() + "\n"


def release(name: str, version: str, dry_run: bool, today: datetime.date) -> list[Path]:
    if not VERSION.match(version):
        raise ReleaseError(f"version {version!r} is not of the form X.Y.Z (optionally aN/bN/rcN)")
    folder = package_dir(name)
    vfile = version_file(folder)
    old = current_version(vfile)
    if _key(version) <= _key(old):
        raise ReleaseError(f"{name} is at {old}; {version} is not newer")
    tag = f"{name}-v{version}"
    if _git("tag", "--list", tag).strip():
        raise ReleaseError(f"tag {tag} exists already")
    section, fragments = compile_fragments(folder, version, today)
    changelog = folder / "CHANGELOG.md"
    new_changelog = updated_changelog(changelog.read_text(), section)
    changed = [vfile, changelog, *fragments]
    if dry_run:
        print(f"Would release {name} {old} -> {version} and tag {tag}; files:")
        for path in changed:
            print(f"  {path.relative_to(ROOT)}")
        print("\n" + section)
        return changed
    vfile.write_text(f'__version__ = "{version}"\n')
    changelog.write_text(new_changelog)
    for fragment in fragments:
        fragment.unlink()
    _git("add", "--", *(str(p.relative_to(ROOT)) for p in changed))
    _git(
        "commit",
        "-m",
        f"Release {name} {version}",
        "--",
        *(str(p.relative_to(ROOT)) for p in changed),
    )
    _git("tag", "-a", tag, "-m", f"{name} {version}")
    print(f"Released {name} {version}: committed and tagged {tag}")
    return changed


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("version")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    release(args.package, args.version, args.dry_run, datetime.date.today())
    return 0


if __name__ == "__main__":
    sys.exit(main())
