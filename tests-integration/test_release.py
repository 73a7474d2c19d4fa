"""Releasing one package changes only that package's files and tags it, in a scratch clone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    git(tmp_path, "clone", "-q", str(ROOT), str(target))
    git(target, "config", "user.email", "release-test@example.invalid")
    git(target, "config", "user.name", "release test")
    # The release script under test is the working copy's, committed into the scratch clone.
    (target / "scripts").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "scripts" / "release.py", target / "scripts" / "release.py")
    for package in (target / "packages").iterdir():
        (package / "changes").mkdir(exist_ok=True)
        (package / "changes" / ".gitkeep").touch()
    git(target, "add", ".")
    if git(target, "status", "--porcelain"):
        git(target, "commit", "-qm", "working copy of the release script")
    return target


def release(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/release.py", *args], cwd=clone, capture_output=True, text=True
    )


def test_release_touches_only_that_package_and_tags_it(clone: Path) -> None:
    package = clone / "packages" / "gp-distributed"
    (package / "changes" / "hosts.feature.md").write_text("- Least-connection balancing.\n")
    (package / "changes" / "quote.fix.md").write_text("Quote ssh arguments.\n")
    git(clone, "add", ".")
    git(clone, "commit", "-qm", "fragments")

    dry = release(clone, "gp-distributed", "0.2.0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "### Features" in dry.stdout
    assert git(clone, "status", "--porcelain") == ""  # a dry run writes nothing

    done = release(clone, "gp-distributed", "0.2.0")
    assert done.returncode == 0, done.stderr
    changed = git(clone, "diff", "--name-only", "HEAD~1", "HEAD").split()
    assert changed
    assert all(path.startswith("packages/gp-distributed/") for path in changed)
    assert "gp-distributed-v0.2.0" in git(clone, "tag", "--list")
    version = (package / "src" / "gp_distributed" / "_version.py").read_text()
    assert '"0.2.0"' in version
    changelog = (package / "CHANGELOG.md").read_text()
    assert "## 0.2.0" in changelog
    assert "- Least-connection balancing." in changelog
    assert "- Quote ssh arguments." in changelog
    assert changelog.index("### Features") < changelog.index("### Fixes")
    core_version = (
        clone / "packages/gp-provisioners-core/src/gp_provisioners_core/_version.py"
    ).read_text()
    assert (
        core_version
        == (ROOT / "packages/gp-provisioners-core/src/gp_provisioners_core/_version.py").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gp-nothing", "1.0.0"], "no package 'gp-nothing'"),
        (["gp-provisioners-core", "0.0.1"], "is not newer"),
        (["gp-provisioners-core", "one"], "X.Y.Z"),
        (["gp-provisioners-core", "9.0.0"], "no change fragments"),
    ],
)
def test_refusals_name_the_problem(clone: Path, args: list[str], message: str) -> None:
    if message == "no change fragments":  # a package with nothing to release
        for fragment in (clone / "packages" / args[0] / "changes").glob("*.md"):
            fragment.unlink()
        git(clone, "commit", "-qam", "fragments released")
    result = release(clone, *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_oldest_core_picks_the_oldest_release_in_range(clone: Path, tmp_path: Path) -> None:
    shutil.copy2(ROOT / "scripts" / "oldest_core.py", clone / "scripts" / "oldest_core.py")
    git(clone, "add", ".")
    git(clone, "commit", "-qm", "oldest_core", "--allow-empty")
    answer = tmp_path / "answer.txt"
    script = [sys.executable, "scripts/oldest_core.py", "gp-distributed"]
    script += ["--workdir", str(tmp_path), "--output", str(answer)]
    before = subprocess.run(script, cwd=clone, capture_output=True, text=True, check=True)
    assert answer.read_text() == ""
    assert "no released gp-provisioners-core" in before.stdout
    git(clone, "tag", "-a", "gp-provisioners-core-v0.1.0", "-m", "gp-provisioners-core 0.1.0")
    git(clone, "tag", "-a", "gp-provisioners-core-v0.1.5", "-m", "gp-provisioners-core 0.1.5")
    git(
        clone,
        "tag",
        "-a",
        "gp-provisioners-core-v0.2.0",
        "-m",
        "gp-provisioners-core 0.2.0 (outside the range)",
    )
    subprocess.run(script, cwd=clone, capture_output=True, text=True, check=True)
    tree = Path(answer.read_text())
    assert tree.name == "gp-provisioners-core"
    assert tree.parent.parent.name == "gp-provisioners-core-0.1.0"
    assert (tree / "pyproject.toml").is_file()
    assert (tree.parent.parent / "launchers" / "python" / "launch_ipykernel.py").is_file()
