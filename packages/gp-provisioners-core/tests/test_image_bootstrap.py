"""``jupyter image-bootstrap install``: the launchers land where the default kernelspecs point,
and an image that could not run them is refused with the fix (real interpreters, fake PATHs)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gp_provisioners_core import image_bootstrap
from gp_provisioners_core.image_bootstrap import main
from gp_provisioners_core.launchers import launcher_dir


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bin_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(install dir, a bin dir holding python3 = this Python); PATH is those two plus /bin."""
    target = tmp_path / "local-bin"
    target.mkdir()
    tools = tmp_path / "tools"
    tools.mkdir()
    _script(tools, "python3", f'exec "{sys.executable}" "$@"')
    monkeypatch.setenv("PATH", os.pathsep.join([str(target), str(tools), "/bin", "/usr/bin"]))
    return target, tools


def _run(*argv: str) -> int:
    return main(["install", *argv])


def test_python_launcher_installed_and_missing_python_linked(bin_dirs: tuple[Path, Path]) -> None:
    target, _ = bin_dirs
    if Path("/usr/bin/python").exists() or Path("/bin/python").exists():
        pytest.skip("this machine has a python on /usr/bin")
    assert _run("--languages=Python", f"--install-dir={target}") == 0
    launcher = target / "launch_ipykernel.py"
    assert launcher.read_bytes() == (launcher_dir("python") / "launch_ipykernel.py").read_bytes()
    assert launcher.stat().st_mode & stat.S_IXOTH
    # docker-spec's argv runs "python": there was none, so it runs this Python now
    ran = subprocess.run(
        [str(target / "python"), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.strip() == sys.prefix


def test_r_installs_both_launchers_and_needs_irkernel(bin_dirs: tuple[Path, Path]) -> None:
    target, tools = bin_dirs
    _script(tools, "python", f'exec "{sys.executable}" "$@"')
    _script(tools, "Rscript", "echo 'Error in library(IRkernel) : there is no package' >&2; exit 1")
    with pytest.raises(SystemExit) as failed:
        _run("--languages", "R", f"--install-dir={target}")
    assert failed.value.code == 1
    # the files are there; the check refused the image
    assert (target / "launch_IRkernel.R").is_file()
    assert (target / "launch_ipykernel.py").is_file()
    _script(tools, "Rscript", "exit 0")
    assert _run("--languages=r", f"--install-dir={target}") == 0


def test_a_python_without_the_kernel_is_refused_with_the_fix(
    bin_dirs: tuple[Path, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    target, tools = bin_dirs
    missing = "echo \"ModuleNotFoundError: No module named 'ipykernel'\" >&2; exit 1"
    _script(tools, "python3", missing)
    _script(tools, "python", f'exec "{sys.executable}" "$@"')
    with pytest.raises(SystemExit):
        _run(f"--install-dir={target}")
    message = capfd.readouterr().err
    assert "'python3' on PATH" in message
    assert "No module named 'ipykernel'" in message
    assert "pip install ipykernel" in message
    assert "PATH=/opt/venv/bin" in message
    # --skip-check installs the files and trusts the image
    assert _run(f"--install-dir={target}", "--skip-check") == 0


def test_unknown_language_and_missing_subcommand_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as unknown:
        _run("--languages=Julia", f"--install-dir={tmp_path}")
    assert unknown.value.code not in (0, None)
    with pytest.raises(SystemExit, match="install"):
        main([])


def test_scala_without_a_launcher_names_the_alternative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def no_scala(language: str) -> Path:
        if language == "scala":
            raise FileNotFoundError("no scala")
        return launcher_dir(language)

    monkeypatch.setattr(image_bootstrap, "launcher_dir", no_scala)
    with pytest.raises(SystemExit):
        _run("--languages=Scala", f"--install-dir={tmp_path}")
    assert "no Scala (Apache Toree) launcher" in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_console_script_is_registered() -> None:
    from importlib.metadata import entry_points

    scripts = entry_points(group="console_scripts")
    (point,) = [p for p in scripts if p.name == "jupyter-image-bootstrap"]
    assert point.value == "gp_provisioners_core.image_bootstrap:main"
