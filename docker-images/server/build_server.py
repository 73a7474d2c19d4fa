#!/usr/bin/env python3
"""Build the server image (``ghcr.io/gateway-provisioners/server:<version>``, the image the
Helm chart deploy/helm/gp-server runs): Jupyter Server with gp-provisioners-core, gp-k8s,
gp-crd and gp-server of this checkout, offline like the kernel images.

It reuses docker-images/build.py's steps (the mmdebstrap base shared with the kernel images,
the CA handling, the keyed tarball cache) in two layers, as the kernel images do:

- ``gp/server-deps:<key>`` (``deps.Dockerfile``): every third-party requirement of the four
  packages (read from their pyproject.toml files) installed from PyPI; its key is the base's,
  that file's and the requirement list, so it is rebuilt only when a dependency changes;
- the server image (``Dockerfile``): the four packages built from this checkout on top, with
  no network; its key adds every file of the packages, and a rebuild takes seconds.

``python docker-images/server/build_server.py [--docker-host URL] [--rebuild]``.
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

import tomllib

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGES = ("gp-provisioners-core", "gp-k8s", "gp-crd", "gp-server")
SERVER_REPOSITORY = "server"
DEPS_REPOSITORY = "gp/server-deps"
EXTRA_REQUIREMENTS = ("jupyter_server>=2.10", "prometheus_client>=0.17", "hatchling>=1.27")
"""Beyond the packages' own dependencies: the server itself, the core's ``metrics`` extra
(``/metrics``) and the build backend that installs the packages offline."""
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


def server_tag() -> str:
    """The image the chart deploy/helm/gp-server runs by default:
    ``<prefix>/server:<gp-provisioners-core version>`` (the prefix and version of the kernel
    images, from ``gp_provisioners_core.images``)."""
    images = load_build().core_images()
    return f"{images.DEFAULT_PREFIX}/{SERVER_REPOSITORY}:{images.IMAGE_TAG}"


SERVER_TAG = server_tag()


def requirements() -> list[str]:
    """The third-party requirements of the four packages (ours left out: they are built on
    top), plus :data:`EXTRA_REQUIREMENTS`; sorted, so the deps image's key is stable."""
    ours = {name.replace("-", "_") for name in PACKAGES}
    wanted: set[str] = set(EXTRA_REQUIREMENTS)
    for name in PACKAGES:
        project = tomllib.loads((REPO / "packages" / name / "pyproject.toml").read_text())
        for requirement in project["project"]["dependencies"]:
            bare = requirement.split(";")[0].strip()
            distribution = bare
            for mark in "<>=!~[ ":
                distribution = distribution.split(mark)[0]
            if distribution.replace("-", "_").lower() not in ours:
                wanted.add(bare)
    return sorted(wanted)


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
def server_context(build: ModuleType) -> Iterator[Path]:
    """Dockerfile, packages/ and launchers/ (sources only: no caches, no venvs); no CA
    certificates, as this layer installs nothing from the network."""
    with build.build_context([HERE / "Dockerfile"]) as context:
        for path in package_files():
            relative = path.relative_to(REPO)  # packages/... or launchers/...
            target = context / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        yield context


def ensure_server_image(settings: Any, tag: str = SERVER_TAG) -> str:
    """Make sure the server image of the current sources is in the daemon of ``settings``
    (a build.py ``BuildSettings``): ``present``, ``loaded`` or ``built``.  Its deps image is
    made first the same way (usually present or loaded: it changes with dependencies only)."""
    build = load_build()
    base = build.targets(settings)[0]
    listed = "\n".join(requirements()) + "\n"
    deps_key = build._digest(
        [base.key.encode(), (HERE / "deps.Dockerfile").read_bytes(), listed.encode()]
    )
    deps = build.Target(
        f"{DEPS_REPOSITORY}:{deps_key}",
        deps_key,
        settings.cache_dir / f"gp-server-deps-{deps_key}.tar.gz",
    )
    key = build._digest(  # build.py's own digest: keys read alike
        [deps_key.encode(), (HERE / "Dockerfile").read_bytes()]
        + [str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() for p in package_files()]
    )
    name = tag.replace("/", "-").replace(":", "-")
    server = build.Target(tag, key, settings.cache_dir / f"{name}-{key}.tar.gz")

    def make_deps() -> None:
        build.ensure(settings, base, lambda: build.bootstrap_base(settings, base))
        try:
            with build.build_context([HERE / "deps.Dockerfile"], settings.ca_dirs) as context:
                (context / "requirements.txt").write_text(listed)
                build.docker_build(settings, context, deps, BASE_IMAGE=base.tag)
        finally:
            build._docker(settings, "image", "prune", "--force", "--filter", "label=gp.stage=build")

    def make() -> None:
        build.ensure(settings, deps, make_deps)
        with server_context(build) as context:
            build.docker_build(settings, context, server, DEPS_IMAGE=deps.tag)

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
