"""``jupyter image-bootstrap install``: put the launchers into a kernel image you build.

For a Dockerfile ``RUN`` step, after ``pip install gp-provisioners-core`` (plus the kernel,
e.g. ``ipykernel``) in the image::

    RUN jupyter image-bootstrap install --languages=Python

gateway_provisioners 0.5.0's command name and flags: ``--languages`` (repeatable; Python, R,
Scala, any case), ``--launchers-only``, ``--log-level``, ``--debug``, config files
(``c.ImageBootstrapInstaller.languages``).  What differs, by design:

- the launchers go where ``jupyter docker-spec install`` and ``jupyter k8s-spec install`` point
  by default (``/usr/local/bin/launch_ipykernel.py``, ``launch_IRkernel.R`` next to it;
  ``--install-dir`` moves them and then the spec needs ``--launcher-path`` /
  ``--image-launcher``).  No ``bootstrap-kernel.sh`` is written: our provisioners run the
  spec's argv as the container's command, so ``--launchers-only`` changes nothing;
- it checks, in the image, what the spec's command line needs, and fails (exit status 1) with
  the fix instead of leaving an image whose first kernel dies: the ``python`` and ``python3``
  on ``PATH`` (the default specs run those) must import the launcher's and kernel's modules, and
  for R, ``Rscript`` must load IRkernel.  A missing ``python`` becomes a small script that
  runs this Python when this Python passes; ``--skip-check`` skips all of it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_core.application import JupyterApp, base_aliases, base_flags
from traitlets import Bool, List, TraitError, Unicode, validate

from ._version import __version__
from .launchers import launcher_dir

DEFAULT_INSTALL_DIR = "/usr/local/bin"
# The interpreters the installers' default argv starts (docker-spec: python, k8s-spec: python3).
SPEC_INTERPRETERS = ("python", "python3")
CHECK_TIMEOUT = 120.0


@dataclass(frozen=True)
class LanguageNeeds:
    """What one language's kernels need in the image: launcher files (language folder, file),
    modules the spec's Python must import, and an R package Rscript must load."""

    files: tuple[tuple[str, str], ...]
    python_modules: tuple[str, ...]
    python_fix: str
    r_package: str = ""


PYTHON_LAUNCHER = ("python", "launch_ipykernel.py")
LANGUAGES = {
    "python": LanguageNeeds(
        (PYTHON_LAUNCHER,),
        ("ipykernel", "cryptography"),
        "pip install ipykernel gp-provisioners-core",
    ),
    # The Python launcher does the launch protocol and runs IRkernel through the R script.
    "r": LanguageNeeds(
        (PYTHON_LAUNCHER, ("R", "launch_IRkernel.R")),
        ("cryptography",),
        "pip install gp-provisioners-core",
        r_package="IRkernel",
    ),
}
KNOWN_LANGUAGES = ("python", "r", "scala")


class BootstrapError(RuntimeError):
    """The image lacks something the kernels need; the message names it and the fix."""


def interpreter_problem(interpreter: str, modules: tuple[str, ...]) -> str:
    """'' when ``interpreter`` imports every module, else what it said."""
    code = "import " + ", ".join(modules)
    try:
        done = subprocess.run(
            [interpreter, "-c", code], capture_output=True, text=True, timeout=CHECK_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if done.returncode == 0:
        return ""
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


def r_problem(package: str) -> str:
    """'' when ``Rscript`` on PATH loads ``package``, else why not."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "Rscript is not on PATH"
    try:
        done = subprocess.run(
            [rscript, "-e", f"library({package})"],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if done.returncode == 0:
        return ""
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


class ImageBootstrapInstaller(JupyterApp):
    """``jupyter image-bootstrap install``: copy the launchers, check the image."""

    name = "jupyter-image-bootstrap-install"
    version = __version__
    description = (
        "Install the kernel launchers of gp-provisioners-core into this (image) file system "
        "and check that the kernels can run, for a Dockerfile RUN step."
    )
    examples = """
    jupyter image-bootstrap install --languages=Python
    jupyter image-bootstrap install --languages=Python --languages=R
    """

    languages = List(
        Unicode(),
        ["Python"],
        help="The kernel languages whose launchers to install: Python, R (case-insensitive).",
    ).tag(config=True)
    launchers_only = Bool(
        False,
        help="Accepted for gateway_provisioners: no bootstrap-kernel.sh is ever installed (the "
        "provisioners run the kernelspec's argv in the container).",
    ).tag(config=True)
    install_dir = Unicode(
        DEFAULT_INSTALL_DIR,
        help="Where the launchers go; the installers' default argv names /usr/local/bin.",
    ).tag(config=True)
    skip_check = Bool(
        False, help="Do not check the image's Python and R (install the files only)."
    ).tag(config=True)

    aliases = {
        **base_aliases,
        "languages": "ImageBootstrapInstaller.languages",
        "install-dir": "ImageBootstrapInstaller.install_dir",
    }
    flags = {
        **base_flags,
        "launchers-only": (
            {"ImageBootstrapInstaller": {"launchers_only": True}},
            "Only install kernel launchers (the only thing installed anyway).",
        ),
        "skip-check": (
            {"ImageBootstrapInstaller": {"skip_check": True}},
            "Do not check that the image's Python and R can run the kernels.",
        ),
    }

    @validate("languages")
    def _check_languages(self, proposal: Any) -> list[str]:
        names: list[str] = []
        for value in proposal["value"]:
            for part in str(value).split(","):
                if not part.strip():
                    continue
                if part.strip().lower() not in KNOWN_LANGUAGES:
                    raise TraitError(
                        f"--languages {part.strip()!r}: one of Python, R, Scala (any case)"
                    )
                names.append(part.strip().lower())
        return list(dict.fromkeys(names))

    def migrate_config(self) -> None:
        """Never migrates IPython configuration."""

    def wanted(self) -> list[str]:
        """The chosen languages, lower case (the default is not run through the validator)."""
        return list(dict.fromkeys(str(name).lower() for name in self.languages))

    def start(self) -> None:
        """Called by :class:`ImageBootstrapApp`: install, then check; exit 1 with the fix."""
        try:
            for path in self.install():
                self.log.info("installed %s", path)
            if not self.skip_check:
                self.check()
        except BootstrapError as err:
            self.log.error("%s", err)
            self.exit(1)

    def install(self) -> list[Path]:
        """Copy each language's launcher files into ``install_dir`` (mode 0755); return them.
        Raises :class:`BootstrapError` for a language this package has no launcher for."""
        if "scala" in self.wanted():
            try:
                launcher_dir("scala")
            except FileNotFoundError:
                raise BootstrapError(
                    "--languages=Scala: this gp-provisioners-core has no Scala (Apache Toree) "
                    "launcher; use the project's Scala image or install Python/R launchers only"
                ) from None
        target = Path(self.install_dir)
        target.mkdir(parents=True, exist_ok=True)
        wanted: dict[str, Path] = {}
        for language in self.wanted():
            if language == "scala":
                folder = launcher_dir("scala")
                files = sorted(p for p in folder.iterdir() if p.is_file())
                wanted.update({p.name: p for p in files})
                continue
            for folder_name, file_name in LANGUAGES[language].files:
                wanted[file_name] = launcher_dir(folder_name) / file_name
        installed = []
        for name, source in wanted.items():
            destination = target / name
            shutil.copyfile(source, destination)
            destination.chmod(0o755)
            installed.append(destination)
        return installed

    def check(self) -> None:
        """Make sure the default kernelspecs' command lines work in this image.  Raises
        :class:`BootstrapError` naming the interpreter, what failed and the fix."""
        modules: list[str] = []
        fixes: list[str] = []
        for language in self.wanted():
            needs = LANGUAGES.get(language)
            if needs is None:
                continue
            modules += needs.python_modules
            fixes.append(needs.python_fix)
            if needs.r_package:
                problem = r_problem(needs.r_package)
                if problem:
                    raise BootstrapError(
                        f"R kernels need Rscript with the {needs.r_package} package: {problem}; "
                        "install R and IRkernel in the image first (Debian: apt-get install "
                        "r-base-core r-cran-irkernel; otherwise install.packages('IRkernel'))"
                    )
        if not modules:
            return
        needed = tuple(dict.fromkeys(modules))
        fix = fixes[0]
        for interpreter in SPEC_INTERPRETERS:
            found = shutil.which(interpreter)
            if found is None:
                self._link_interpreter(interpreter, needed, fix)
                continue
            problem = interpreter_problem(found, needed)
            if problem:
                raise BootstrapError(
                    f"'{interpreter}' on PATH ({found}) is what the kernelspecs run, and it "
                    f"cannot import {', '.join(needed)}: {problem}. Install them for that "
                    f"Python ({fix}), or put the environment that has them first on PATH "
                    "(e.g. ENV PATH=/opt/venv/bin:$PATH)"
                )

    def _link_interpreter(self, interpreter: str, needed: tuple[str, ...], fix: str) -> None:
        """No ``interpreter`` on PATH: link it to this Python when this one passes and
        ``install_dir`` is on PATH, write ``install_dir/interpreter`` running this one."""
        here = sys.executable
        problem = interpreter_problem(here, needed)
        on_path = os.environ.get("PATH", "").split(os.pathsep)
        if problem or self.install_dir not in on_path:
            raise BootstrapError(
                f"no '{interpreter}' on PATH, which the kernelspecs run ({fix}; then put it on "
                f"PATH or give the spec --python with the interpreter's path)"
                + (f": {here} cannot import {', '.join(needed)}: {problem}" if problem else "")
            )
        # A script, not a symlink: a virtual environment's Python finds its environment from
        # the path it was started by (pyvenv.cfg next to it), which a link elsewhere loses.
        wrapper = Path(self.install_dir) / interpreter
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(here)} "$@"\n')
        wrapper.chmod(0o755)
        self.log.info("wrote %s, which runs %s (no %s was on PATH)", wrapper, here, interpreter)


class ImageBootstrapApp(JupyterApp):
    """``jupyter image-bootstrap``: dispatches to ``install``."""

    name = "jupyter-image-bootstrap"
    version = __version__
    description = "Install the kernel launchers into a kernel image (for a Dockerfile RUN step)."
    subcommands = {
        "install": (ImageBootstrapInstaller, ImageBootstrapInstaller.description.splitlines()[0])
    }

    def migrate_config(self) -> None:
        """Never migrates IPython configuration."""

    def start(self) -> None:
        """Called by :func:`main`: run the subcommand, or say which exist and fail."""
        if self.subapp is None:
            raise SystemExit(
                f"{self.name}: give a subcommand, one of: {', '.join(self.subcommands)} "
                "(e.g. jupyter image-bootstrap install --languages=Python)"
            )
        self.subapp.start()


def main(argv: list[str] | None = None) -> int:
    """The ``jupyter-image-bootstrap`` console script; returns 0 or exits with the error."""
    app = ImageBootstrapApp()
    try:
        app.initialize(list(sys.argv[1:] if argv is None else argv))
        app.start()
    finally:
        if app.subapp is not None:
            type(app.subapp).clear_instance()
        ImageBootstrapApp.clear_instance()
    return 0


if __name__ == "__main__":
    sys.exit(main())
