"""The one list of system packages: what bootstrap installs is what the bring-ups check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from backends import system_packages
from backends.system_packages import (
    PACKAGE_LIST,
    REPO,
    missing_packages_message,
    not_installed,
    packages_for,
    read_package_list,
)

PARTS = ("demo", "tests", "ssh", "r", "scala", "slurm", "docker", "k8s", "images", "postgres")


def bootstrap_selection(part: str) -> list[str]:
    """The packages scripts/bootstrap.sh would install for GP_BOOTSTRAP_PARTS=part, read by
    running its own selection loop (nothing is installed)."""
    script = (REPO / "scripts" / "bootstrap.sh").read_text()
    start = script.index("APT_PACKAGES=()")
    end = script.index("done <", start)
    loop = script[start : script.index("\n", end)]
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'ROOT="{REPO}"; PARTS="{part}"\n{loop}\nprintf "%s\\n" "${{APT_PACKAGES[@]}}"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


@pytest.mark.parametrize("part", PARTS)
def test_bootstrap_installs_what_each_bring_up_checks(part: str) -> None:
    assert bootstrap_selection(part) == packages_for(part)


def test_every_listed_package_is_installed_by_a_full_bootstrap() -> None:
    assert bootstrap_selection("all") == [p.name for p in read_package_list()]


def test_every_bring_up_part_is_in_the_list() -> None:
    for part in ("demo", "ssh", "r", "scala", "slurm", "docker", "k8s", "images", "postgres"):
        assert packages_for(part)


def test_slurm_needs_the_jwt_plugin() -> None:
    # slurmctld cannot load auth/jwt without it on Debian 12 (the fresh-machine failure).
    assert "slurm-wlm-jwt-plugin" in packages_for("slurm")


def test_the_check_names_the_missing_package_and_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    listing = tmp_path / "packages.txt"
    listing.write_text("python3-venv  demo  # here\ngp-no-such-package  demo  # not here\n")
    monkeypatch.setattr(system_packages, "PACKAGE_LIST", listing)
    assert not_installed(["python3-venv", "gp-no-such-package"]) == ["gp-no-such-package"]
    message = missing_packages_message("demo")
    assert "gp-no-such-package" in message
    assert "apt-get install -y --no-install-recommends gp-no-such-package" in message
    assert "python3-venv" not in message.split("installed:")[1].split(".")[0]


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    listing = tmp_path / "packages.txt"
    listing.write_text("# comment\nonly-a-name\n")
    with pytest.raises(ValueError, match=r"packages\.txt:2"):
        read_package_list(listing)


def test_this_machine_has_every_package_of_the_list() -> None:
    """The README's test command bootstraps first: a missing package here is an install bug."""
    assert not_installed([p.name for p in read_package_list(PACKAGE_LIST)]) == []
