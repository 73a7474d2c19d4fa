"""The kernel images the conformance suites run, in a daemon: the project's images
(``docker-images/build.py``) and one built the users' way (a plain Debian + Python base plus
``jupyter image-bootstrap install``, ``tests-integration/images/bootstrap-python.Dockerfile``).

Each is present, loaded from its cached tarball, or built, as build.py does for its own; the
bring-your-own image is keyed by its Dockerfile, the base and the parts of
gp-provisioners-core that act in it (its wheel is built from this checkout only when the image
must be built).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from gp_provisioners_core.images import DEFAULT_PREFIX, default_image
from gp_provisioners_core.testing.conformance import PYTHON, LanguageSnippets, R

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP_DOCKERFILE = REPO / "tests-integration" / "images" / "bootstrap-python.Dockerfile"
BOOTSTRAP_TAG = "gp-test/bootstrap-python:1"
CORE = REPO / "packages" / "gp-provisioners-core"


@dataclass(frozen=True)
class KernelImage:
    """One image under test: build.py's flavor (or ``bootstrap``), its tag, the installer
    flags its kernelspec needs (none beyond ``--image-name`` but the language) and the code
    the suite runs in it."""

    flavor: str
    tag: str
    flags: tuple[str, ...] = ()
    language: LanguageSnippets = PYTHON


IMAGES = {
    "python": KernelImage("python", default_image("python", DEFAULT_PREFIX)),
    "r": KernelImage("r", default_image("r", DEFAULT_PREFIX), ("--language", "R"), R),
    "spark-python": KernelImage(
        "spark-python", default_image("spark-python", DEFAULT_PREFIX), ("--spark",)
    ),
    "bootstrap": KernelImage("bootstrap", BOOTSTRAP_TAG),
}


def _build_module() -> ModuleType:
    from backends.dockerd import _load_build_module

    return _load_build_module()


def _settings(build: ModuleType, base_url: str, flavor: str, tag: str) -> Any:
    import os

    from backends.dockerd import CACHE_DIR

    cache = Path(os.getenv("GP_IMAGE_CACHE_DIR", str(CACHE_DIR / "docker-images")))
    return build.BuildSettings(tag=tag, image=flavor, cache_dir=cache, docker_host=base_url)


def bootstrap_key(build: ModuleType, settings: Any) -> str:
    """What the bring-your-own image is made of: its Dockerfile, the base, and what of the core
    acts in the image (its dependencies, the bootstrap command, the launchers).  Other changes
    to the core do not rebuild it (about 2.5 minutes cold)."""
    parts = [build.base_key(settings).encode(), BOOTSTRAP_DOCKERFILE.read_bytes()]
    package = CORE / "src" / "gp_provisioners_core"
    sources = [CORE / "pyproject.toml", CORE / "hatch_build.py"]
    sources += [package / name for name in ("image_bootstrap.py", "launchers.py", "_version.py")]
    sources += sorted(p for p in (REPO / "launchers").rglob("*") if p.is_file())
    parts += [p.read_bytes() for p in sources if "__pycache__" not in p.parts]
    return hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).hexdigest()[:16]


def _build_bootstrap(build: ModuleType, settings: Any, base: Any, target: Any) -> None:
    build.ensure(settings, base, lambda: build.bootstrap_base(settings, base))
    with tempfile.TemporaryDirectory(prefix="gp-wheel-") as wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, str(CORE)],
            check=True,
        )
        (wheel,) = Path(wheels).glob("gp_provisioners_core-*.whl")
        try:
            with build.build_context([BOOTSTRAP_DOCKERFILE, wheel], settings.ca_dirs) as context:
                build.docker_build(settings, context, target, BASE_IMAGE=base.tag)
        finally:
            build._docker(settings, "image", "prune", "--force", "--filter", "label=gp.stage=build")


def ensure_kernel_image(base_url: str, name: str) -> tuple[KernelImage, str]:
    """Make sure image ``name`` (a key of IMAGES) is in the daemon; return it and what was
    done (present, loaded, built).  Raises build.py's BuildUnavailable / BuildFailed."""
    image = IMAGES[name]
    build = _build_module()
    if image.flavor != "bootstrap":
        settings = _settings(build, base_url, image.flavor, image.tag)
        return image, str(build.ensure_image(settings))
    settings = _settings(build, base_url, "python", image.tag)
    base = build.targets(settings)[0]
    key = bootstrap_key(build, settings)
    name_part = image.tag.replace("/", "-").replace(":", "-")
    target = build.Target(image.tag, key, settings.cache_dir / f"{name_part}-{key}.tar.gz")
    if build.image_key_of(settings, target) == key:
        return image, "present"
    with build._locked(settings.cache_dir / ".build.lock"):
        outcome = build.ensure(
            settings, target, lambda: _build_bootstrap(build, settings, base, target)
        )
    return image, str(outcome)
