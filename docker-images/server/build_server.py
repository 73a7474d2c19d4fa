#!/usr/bin/env python3
"""Build the server image (``gp/server:latest``): Jupyter Server with gp-provisioners-core,
gp-k8s, gp-crd and gp-server of this checkout, offline like the kernel images.

It reuses docker-images/build.py's steps (the mmdebstrap base shared with the kernel images,
the CA handling, the keyed tarball cache) without changing it: the image's key is the base's,
this folder's Dockerfile and every file of the four packages, so a change to any of them
rebuilds it.  ``python docker-images/server/build_server.py [--docker-host URL] [--rebuild]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGES = ("gp-provisioners-core", "gp-k8s", "gp-crd", "gp-server")
SERVER_TAG = "gp/server:latest"
SKIPPED = frozenset({"tests", "changes", "__pycache__", ".pytest_cache", "build", "dist", ".nox"})
"""What of a package's folder the image does not need (its wheel holds none of it)."""


def load_build() -> ModuleType:
    """docker-images/build.py as a module (it is a script, not a package)."""
    path = HERE.parent / "build.py"
    spec = importlib.util.spec_from_file_location("gp_docker_images_build", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def package_files() -> list[Path]:
    """Every file the image installs from this checkout (sorted, for a stable key)."""
    files: list[Path] = []
    for name in PACKAGES:
        root = REPO / "packages" / name
        files += [
            p
            for p in root.rglob("*")
            if p.is_file()
            and not SKIPPED.intersection(p.relative_to(root).parts)
            and p.suffix != ".pyc"
        ]
    # gp-provisioners-core's build hook puts the repository's launchers into its wheel.
    files += [
        p
        for p in (REPO / "launchers").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    return sorted(files)


@contextlib.contextmanager
def server_context(build: ModuleType, ca_dirs: Sequence[Path]) -> Iterator[Path]:
    """Dockerfile, ca/, packages/ and launchers/ (sources only: no caches, no venvs)."""
    with build.build_context([HERE / "Dockerfile"], ca_dirs) as context:
        for path in package_files():
            relative = path.relative_to(REPO)  # packages/... or launchers/...
            target = context / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        yield context


def ensure_server_image(settings: Any, tag: str = SERVER_TAG) -> str:
    """Make sure the server image of the current sources is in the daemon of ``settings``
    (a build.py ``BuildSettings``): ``present``, ``loaded`` or ``built``."""
    build = load_build()
    base = build.targets(settings)[0]
    key = build._digest(  # build.py's own digest: keys read alike
        [base.key.encode(), (HERE / "Dockerfile").read_bytes()]
        + [str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() for p in package_files()]
    )
    name = tag.replace("/", "-").replace(":", "-")
    server = build.Target(tag, key, settings.cache_dir / f"{name}-{key}.tar.gz")

    def make() -> None:
        build.ensure(settings, base, lambda: build.bootstrap_base(settings, base))
        try:
            with server_context(build, settings.ca_dirs) as context:
                build.docker_build(settings, context, server, BASE_IMAGE=base.tag)
        finally:
            build._docker(settings, "image", "prune", "--force", "--filter", "label=gp.stage=build")

    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with build._locked(settings.cache_dir / ".build.lock"):
        return str(build.ensure(settings, server, make))


def main(argv: Sequence[str] | None = None) -> int:
    build = load_build()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--tag", default=SERVER_TAG)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.getenv("GP_IMAGE_CACHE_DIR", str(REPO / ".cache" / "docker-images"))),
    )
    parser.add_argument("--docker-host", default="")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--no-host-ca", action="store_true")
    args = parser.parse_args(argv)
    settings = build.BuildSettings(
        cache_dir=args.cache_dir,
        docker_host=args.docker_host,
        rebuild=args.rebuild,
        ca_dirs=() if args.no_host_ca else (build.HOST_CA_DIR,),
    )
    started = time.monotonic()
    try:
        outcome = ensure_server_image(settings, args.tag)
    except (build.BuildUnavailable, build.BuildFailed) as err:
        print(f"build_server.py: {args.tag}: {err}", file=sys.stderr)
        return 2
    print(f"{args.tag}: {outcome} in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
