"""Where the launcher scripts shipped with gp-provisioners-core live (package data from
``launchers/``)."""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).parent / "launchers"
_SOURCE_ROOT = Path(__file__).resolve().parents[4] / "launchers"


def launcher_dir(language: str) -> Path:
    """The directory holding the launcher for ``language`` (``python``, ``R``).

    Installed wheels carry the launchers inside the package; a source checkout falls back to
    the repository's ``launchers/``.  Raises ``FileNotFoundError`` naming the language when
    this installation has no launcher for it.
    """
    for root in (_ROOT, _SOURCE_ROOT):
        candidate = root / language
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"No {language} launcher is installed with gp-provisioners-core "
        f"(looked in {_ROOT} and {_SOURCE_ROOT})"
    )


def python_launcher() -> Path:
    return launcher_dir("python") / "launch_ipykernel.py"
