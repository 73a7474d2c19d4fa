#!/usr/bin/env python3
"""Build the kernel images (Python, R, Spark-Python, Scala) without a registry; cache them.

    python docker-images/build.py                     # the Python image, in $DOCKER_HOST
    python docker-images/build.py --image r           # the R image
    python docker-images/build.py --image spark-python
    python docker-images/build.py --image scala       # Apache Toree (needs a JDK here)
    python docker-images/build.py --image all         # every image of FLAVORS
    python docker-images/build.py --rebuild           # build again even when cached

Images are named by ``gp_provisioners_core.images`` of this checkout (the installers'
defaults): ``<prefix>/kernel-py:<version>`` etc., e.g.
``ghcr.io/gateway-provisioners/kernel-py:0.1.0``; never ``latest``.  Each kernel image carries
labels naming the launch protocol of its launchers and the versions of its packages
(``io.gateway-provisioners.launch-protocol``, ``io.gateway-provisioners.packages``).

Three images per kernel image, each made only when the daemon does not hold it (with the label
of its inputs' hash) and no cached tarball of it exists:

1. The base ``gp/debian-python:<suite>``: ``mmdebstrap --variant=apt
   --include=python3,python3-venv,ca-certificates`` (no man pages, docs or locales) streamed
   into ``docker import``.  Its apt sources are the host's
   (``/etc/apt/sources.list.d/debian.sources`` or ``/etc/apt/sources.list``), or ``--mirror``.
2. The dependencies ``gp/kernel-py-deps:<key>``: ``python/deps.Dockerfile`` (a virtual
   environment with ipykernel, matplotlib and cryptography, a non-root user); for ``--image r``
   ``gp/kernel-r-deps:<key>``: ``r/deps.Dockerfile`` (Debian's ``r-base-core`` and
   ``r-cran-irkernel`` from the base's apt sources, a virtual environment with cryptography for
   the Python launcher, which does the launch protocol for R kernels); for ``--image
   spark-python`` ``gp/kernel-spark-py-deps:<key>``: Debian's Java 17 runtime and PySpark.
   Its build context holds
   ``ca/``: the extra CA certificates handed in (``--ca-dir``; by default the host's
   ``/usr/local/share/ca-certificates``; ``--no-host-ca`` for none), for networks that
   intercept TLS.  Only the Dockerfile's build stage sees them: the final stage copies the
   virtual environment alone, and the build stage's image is pruned right after the build.
3. The kernel image (``--tag``, default the name above): ``<flavor>/Dockerfile``, the
   launchers from ``launchers/`` on top of the dependencies, so a launcher change rebuilds in
   seconds.  The base is shared.

Builds use ``docker build --network host`` with the legacy builder.  Each image is saved as a
gzip tarball under the cache directory (``--cache-dir``, ``$GP_IMAGE_CACHE_DIR``, default
``<repo>/.cache/docker-images``) named by its inputs' hash, so a later run on an empty data
root only needs ``docker load``.  Only the Python standard library and the ``docker`` CLI are
used.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LAUNCHERS = (
    REPO / "launchers" / "python" / "launch_ipykernel.py",
    REPO / "launchers" / "R" / "launch_IRkernel.R",
)
BASE_REPOSITORY = "gp/debian-python"
DEFAULT_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
HOST_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
KEY_LABEL = "gp.image-key"
BASE_KEY_LABEL = "gp.base-key"
TRIM = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")
CORE_SOURCE = REPO / "packages" / "gp-provisioners-core" / "src" / "gp_provisioners_core"
LABEL_PREFIX = "io.gateway-provisioners"


def core_images() -> ModuleType:
    """``gp_provisioners_core.images`` of this checkout (image names and tags: the installers'
    defaults), loaded from the source tree without the package's ``__init__`` (which needs
    jupyter_client), so the standard library suffices."""
    name = "_gp_core_source"
    if name not in sys.modules:
        package = ModuleType(name)
        package.__path__ = [str(CORE_SOURCE)]
        sys.modules[name] = package
    return importlib.import_module(f"{name}.images")


def launch_protocol_version() -> str:
    """The launch protocol the launchers speak (``PROTOCOL_VERSION`` of the Python launcher)."""
    found = re.search(r"^PROTOCOL_VERSION = (\d+)", LAUNCHERS[0].read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no PROTOCOL_VERSION line in {LAUNCHERS[0]}")
    return found.group(1)


@dataclass(frozen=True)
class Flavor:
    """One kernel image: its folder under docker-images/ (``deps.Dockerfile``: what the
    kernel needs; ``Dockerfile``: the launchers on top), the kind of image in
    ``gp_provisioners_core.images`` (its name and tag), and a shell command, run in the
    dependencies image, that prints ``name=version`` words for the image's packages label."""

    name: str
    kind: str
    versions: str

    @property
    def dockerfile(self) -> Path:
        return HERE / self.name / "Dockerfile"

    @property
    def deps_dockerfile(self) -> Path:
        return HERE / self.name / "deps.Dockerfile"

    @property
    def default_tag(self) -> str:
        return str(core_images().default_image(self.kind))

    @property
    def deps_repository(self) -> str:
        return f"gp/{core_images().REPOSITORIES[self.kind]}-deps"


def _python_versions(*dists: str) -> str:
    names = ", ".join(repr(d) for d in dists)
    return (
        'python -c "import importlib.metadata as m, platform; '
        "print('python=' + platform.python_version(), "
        f"*(d + '=' + m.version(d) for d in ({names},)))\""
    )


def _debian_versions(*packages: str) -> str:
    return f"dpkg-query -W -f '${{Package}}=${{Version}} ' {' '.join(packages)}"


# Adding an image: a folder with deps.Dockerfile and Dockerfile, a kind in
# gp_provisioners_core.images.REPOSITORIES, and one entry here.
FLAVORS = {
    "python": Flavor(
        "python", "python", _python_versions("ipykernel", "cryptography", "matplotlib")
    ),
    "r": Flavor(
        "r",
        "r",
        _debian_versions("r-base-core", "r-cran-irkernel")
        + " && "
        + _python_versions("cryptography"),
    ),
    "spark-python": Flavor(
        "spark-python",
        "spark-python",
        _debian_versions("openjdk-17-jre-headless")
        + " && "
        + _python_versions("pyspark", "ipykernel", "cryptography"),
    ),
    "scala": Flavor(
        "scala",
        "scala",
        _debian_versions("openjdk-17-jre-headless")
        # No Python packages in this image: Spark's and Toree's versions are in their jars' names.
        + " && for j in /opt/spark/jars/spark-core_*.jar /opt/toree/lib/toree-assembly-*.jar;"
        + ' do basename "$j" .jar; done',
    ),
}
DEFAULT_TAG = FLAVORS["python"].default_tag
R_TAG = FLAVORS["r"].default_tag
# The Scala image's launcher: run_toree.sh and a jar compiled on this host from the Java
# sources (build_launcher.sh; needs a JDK), so the image itself needs no compiler.
SCALA_LAUNCHER_DIR = REPO / "launchers" / "scala"


class BuildUnavailable(RuntimeError):
    """A tool the build needs is missing (the message says which and how to get it)."""


class BuildFailed(RuntimeError):
    """A build step failed (the message names the step and its output)."""


@dataclass(frozen=True)
class BuildSettings:
    tag: str = ""  # "": the flavor's default tag
    image: str = "python"  # a key of FLAVORS
    cache_dir: Path = REPO / ".cache" / "docker-images"
    suite: str = DEFAULT_SUITE
    mirror: str = ""
    ca_dirs: tuple[Path, ...] = (HOST_CA_DIR,)
    docker_host: str = ""
    rebuild: bool = False
    save: bool = True

    @property
    def flavor(self) -> Flavor:
        try:
            return FLAVORS[self.image]
        except KeyError:
            raise ValueError(f"unknown image {self.image!r}: one of {sorted(FLAVORS)}") from None

    @property
    def kernel_tag(self) -> str:
        return self.tag or self.flavor.default_tag

    def docker_env(self) -> dict[str, str]:
        env = dict(os.environ, DOCKER_BUILDKIT="0")
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        return env


# -- keys: what an image is built from ------------------------------------------------------------


def mmdebstrap_argv(settings: BuildSettings, *, with_mirror: bool = True) -> list[str]:
    """The mmdebstrap command that writes the base root file system as a tar to stdout."""
    argv = ["mmdebstrap", "--variant=apt", f"--include={','.join(BASE_PACKAGES)}", "--quiet"]
    argv += [f"--dpkgopt=path-exclude={pattern}" for pattern in TRIM]
    argv += ["--dpkgopt=path-include=/usr/share/doc/*/copyright", settings.suite, "-"]
    mirror = settings.mirror or next((str(p) for p in HOST_SOURCES if p.is_file()), "")
    if mirror and with_mirror:
        argv.append(mirror)
    return argv


def _digest(parts: Sequence[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def base_key(settings: BuildSettings) -> str:
    return _digest([" ".join(mmdebstrap_argv(settings, with_mirror=False)).encode()])


def deps_key(settings: BuildSettings) -> str:
    return _digest([base_key(settings).encode(), settings.flavor.deps_dockerfile.read_bytes()])


def image_key(settings: BuildSettings) -> str:
    dockerfile = settings.flavor.dockerfile
    inputs = [dockerfile.read_bytes(), *(launcher.read_bytes() for launcher in LAUNCHERS)]
    if settings.image == "scala":
        sources = sorted(SCALA_LAUNCHER_DIR.rglob("*"))
        inputs += [p.read_bytes() for p in sources if p.is_file() and "__pycache__" not in p.parts]
    inputs.append(settings.flavor.versions.encode())  # what the packages label is made from
    return _digest([deps_key(settings).encode(), *inputs])


@dataclass(frozen=True)
class Target:
    """One image of the chain: its tag, the hash of its inputs, its cached tarball."""

    tag: str
    key: str
    tarball: Path
    label: str = KEY_LABEL


def targets(settings: BuildSettings) -> tuple[Target, Target, Target]:
    """The base, dependencies and kernel images for ``settings``."""
    cache = settings.cache_dir
    base, deps, kernel = base_key(settings), deps_key(settings), image_key(settings)
    name = settings.kernel_tag.replace("/", "-").replace(":", "-")
    deps_repository = settings.flavor.deps_repository
    deps_prefix = "deps" if settings.image == "python" else f"deps-{settings.image}"  # as before
    return (
        Target(
            f"{BASE_REPOSITORY}:{settings.suite}",
            base,
            cache / f"gp-debian-python-{settings.suite}-{base}.tar.gz",
            BASE_KEY_LABEL,
        ),
        Target(f"{deps_repository}:{deps}", deps, cache / f"{deps_prefix}-{deps}.tar.gz"),
        Target(settings.kernel_tag, kernel, cache / f"{name}-{kernel}.tar.gz"),
    )


# -- docker helpers -------------------------------------------------------------------------------


def _docker(settings: BuildSettings, *args: str, check: bool = True) -> str:
    if shutil.which("docker") is None:
        raise BuildUnavailable("the docker CLI is not installed (apt-get install docker.io)")
    completed = subprocess.run(
        ["docker", *args], capture_output=True, text=True, env=settings.docker_env()
    )
    if check and completed.returncode != 0:
        raise BuildFailed(f"docker {' '.join(args)} failed: {completed.stderr.strip()[-2000:]}")
    return completed.stdout.strip()


def image_key_of(settings: BuildSettings, target: Target) -> str:
    """The inputs' hash the target's image in the daemon was built from; "" when absent."""
    template = f'{{{{ index .Config.Labels "{target.label}" }}}}'
    out = _docker(settings, "image", "inspect", "--format", template, target.tag, check=False)
    return "" if out in ("", "<no value>") or "No such" in out else out


def save_tarball(settings: BuildSettings, target: Target) -> None:
    """``docker save | gzip -1`` into the target's tarball (atomically); older tarballs of
    the same kind are removed."""
    target.tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = target.tarball.with_name(target.tarball.name + ".partial")
    with subprocess.Popen(
        ["docker", "save", target.tag], stdout=subprocess.PIPE, env=settings.docker_env()
    ) as saving:
        assert saving.stdout is not None
        with gzip.open(partial, "wb", compresslevel=1) as out:
            shutil.copyfileobj(saving.stdout, out, length=1 << 20)
    if saving.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildFailed(f"docker save {target.tag} failed with exit code {saving.returncode}")
    stem = target.tarball.name[: -len(f"{target.key}.tar.gz")]
    for old in target.tarball.parent.glob(f"{stem}*.tar.gz"):
        if old != target.tarball and len(old.name) == len(target.tarball.name):
            old.unlink(missing_ok=True)
    partial.replace(target.tarball)


def ensure(settings: BuildSettings, target: Target, make: Callable[[], None]) -> str:
    """Make sure ``target`` is in the daemon: ``present``, ``loaded`` from its tarball, or
    ``built`` by ``make()`` (then saved)."""
    if not settings.rebuild:
        if image_key_of(settings, target) == target.key:
            return "present"
        if target.tarball.is_file():
            _docker(settings, "load", "--quiet", "--input", str(target.tarball))
            if image_key_of(settings, target) == target.key:
                return "loaded"
    make()
    if settings.save:
        save_tarball(settings, target)
    return "built"


# -- the steps -------------------------------------------------------------------------------------


def bootstrap_base(settings: BuildSettings, target: Target) -> None:
    """mmdebstrap | docker import."""
    if shutil.which("mmdebstrap") is None:
        raise BuildUnavailable(
            "mmdebstrap is not installed (apt-get install mmdebstrap) and no cached base "
            f"tarball exists at {target.tarball}"
        )
    importing = subprocess.Popen(
        ["docker", "import", "--change", f"LABEL {target.label}={target.key}", "-", target.tag],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=settings.docker_env(),
    )
    bootstrap = subprocess.Popen(
        mmdebstrap_argv(settings),
        stdin=subprocess.DEVNULL,
        stdout=importing.stdin,
        stderr=subprocess.PIPE,
    )
    assert importing.stdin is not None
    assert importing.stderr is not None
    importing.stdin.close()  # mmdebstrap holds the pipe now
    _, bootstrap_err = bootstrap.communicate()
    import_err = importing.stderr.read()
    importing.wait()
    if bootstrap.returncode != 0:
        raise BuildFailed(f"mmdebstrap failed: {bootstrap_err.decode(errors='replace')[-2000:]}")
    if importing.returncode != 0:
        raise BuildFailed(f"docker import failed: {import_err.decode(errors='replace')[-2000:]}")


def extra_ca_files(ca_dirs: Sequence[Path]) -> list[Path]:
    """The ``*.crt`` files under the given folders (update-ca-certificates reads only those)."""
    found: list[Path] = []
    for folder in ca_dirs:
        if folder.is_dir():
            found += sorted(p for p in folder.rglob("*.crt") if p.is_file())
    return found


@contextlib.contextmanager
def build_context(files: Sequence[Path], ca_dirs: Sequence[Path] | None = None) -> Iterator[Path]:
    """A temporary build context holding ``files`` (the first is the Dockerfile) and, when
    ``ca_dirs`` is given, ``ca/`` with the extra CA certificates."""
    with tempfile.TemporaryDirectory(prefix="gp-image-") as tmp:
        context = Path(tmp)
        shutil.copy2(files[0], context / "Dockerfile")
        for path in files[1:]:
            shutil.copy2(path, context / path.name)
            (context / path.name).chmod(0o755)
        if ca_dirs is not None:
            ca = context / "ca"
            ca.mkdir()
            (ca / ".keep").write_text("")
            for index, cert in enumerate(extra_ca_files(ca_dirs)):
                shutil.copyfile(cert, ca / f"extra-{index:02d}-{cert.name}")
        yield context


def docker_build(
    settings: BuildSettings,
    context: Path,
    target: Target,
    labels: dict[str, str] | None = None,
    **args: str,
) -> None:
    argv = ["docker", "build", "--network", "host", "--quiet", "--rm"]
    for name, value in args.items():
        argv += ["--build-arg", f"{name}={value}"]
    for name, value in (labels or {}).items():
        argv += ["--label", f"{name}={value}"]
    argv += ["--label", f"{KEY_LABEL}={target.key}", "--tag", target.tag, str(context)]
    completed = subprocess.run(argv, capture_output=True, text=True, env=settings.docker_env())
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()[-3000:]
        raise BuildFailed(f"docker build of {target.tag} failed: {output}")


def build_deps(settings: BuildSettings, base: Target, deps: Target) -> None:
    try:
        with build_context([settings.flavor.deps_dockerfile], settings.ca_dirs) as context:
            docker_build(settings, context, deps, BASE_IMAGE=base.tag)
    finally:
        # The build stage's image holds the extra CA certificates: drop it.
        _docker(settings, "image", "prune", "--force", "--filter", "label=gp.stage=build")
    repository = settings.flavor.deps_repository
    for line in _docker(settings, "images", repository, "--format", "{{.Tag}}").split():
        if line != deps.key:
            _docker(settings, "rmi", f"{repository}:{line}", check=False)


def image_labels(settings: BuildSettings, deps: Target) -> dict[str, str]:
    """What the kernel image says about itself: the launch protocol of its launchers, the
    package versions its dependencies image holds (asked from that image, offline), the
    image's version (the core release whose launchers it carries) and the kind of kernel."""
    versions = _docker(
        settings,
        *("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", deps.tag),
        *("-c", settings.flavor.versions),
    )
    return {
        f"{LABEL_PREFIX}.launch-protocol": launch_protocol_version(),
        f"{LABEL_PREFIX}.packages": " ".join(versions.split()),
        f"{LABEL_PREFIX}.kind": settings.flavor.kind,
        "org.opencontainers.image.version": str(core_images().IMAGE_TAG),
        "org.opencontainers.image.title": f"Gateway Provisioners {settings.flavor.name} kernel",
        "org.opencontainers.image.source": "https://github.com/gateway-provisioners/gp",
    }


def build_kernel(settings: BuildSettings, deps: Target, kernel: Target) -> None:
    labels = image_labels(settings, deps)
    if settings.image == "scala":
        build_scala_kernel(settings, deps, kernel, labels)
        return
    with build_context([settings.flavor.dockerfile, *LAUNCHERS]) as context:
        docker_build(settings, context, kernel, labels, DEPS_IMAGE=deps.tag)


def build_scala_kernel(
    settings: BuildSettings, deps: Target, kernel: Target, labels: dict[str, str]
) -> None:
    """The Scala kernel image: compile the Toree launcher here, then add it to the deps."""
    if shutil.which("javac") is None or shutil.which("jar") is None:
        raise BuildUnavailable(
            "the Scala image's launcher jar needs a JDK (apt-get install openjdk-17-jdk-headless)"
        )
    with tempfile.TemporaryDirectory(prefix="gp-toree-launcher-") as tmp:
        jar = Path(tmp) / "gp-toree-launcher.jar"
        built = subprocess.run(
            ["sh", str(SCALA_LAUNCHER_DIR / "build_launcher.sh"), str(jar)],
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            raise BuildFailed(f"building the Toree launcher failed: {built.stderr[-2000:]}")
        files = [settings.flavor.dockerfile, SCALA_LAUNCHER_DIR / "run_toree.sh", jar]
        with build_context(files) as context:
            docker_build(settings, context, kernel, labels, DEPS_IMAGE=deps.tag)


def ensure_image(settings: BuildSettings) -> str:
    """Make sure ``settings.kernel_tag`` (built from the current inputs) is in the daemon.

    Returns what was done to the kernel image: ``present``, ``loaded`` or ``built``.  Raises
    :class:`BuildUnavailable` when a tool is missing and nothing is cached, and
    :class:`BuildFailed` when a step fails.  Safe to call from concurrent processes.
    """
    base, deps, kernel = targets(settings)
    if not settings.rebuild and image_key_of(settings, kernel) == kernel.key:
        return "present"
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(settings.cache_dir / ".build.lock"):

        def make_kernel() -> None:
            def make_deps() -> None:
                ensure(settings, base, lambda: bootstrap_base(settings, base))
                build_deps(settings, base, deps)

            ensure(settings, deps, make_deps)
            build_kernel(settings, deps, kernel)

        return ensure(settings, kernel, make_kernel)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def parse_args(argv: Sequence[str] | None = None) -> list[BuildSettings]:
    """The settings of each image to ensure (one, or both for ``--image all``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--image",
        choices=(*FLAVORS, "all"),
        default="python",
        help="which kernel image (default python; all: every one)",
    )
    defaults = ", ".join(f"{f.name}: {f.default_tag}" for f in FLAVORS.values())
    parser.add_argument("--tag", default="", help=f"image tag (default {defaults})")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.getenv("GP_IMAGE_CACHE_DIR", str(REPO / ".cache" / "docker-images"))),
        help="where image tarballs are kept (GP_IMAGE_CACHE_DIR)",
    )
    parser.add_argument("--suite", default=DEFAULT_SUITE, help="Debian suite of the base")
    parser.add_argument("--mirror", default="", help="mmdebstrap MIRROR (default: host sources)")
    parser.add_argument(
        "--ca-dir", action="append", type=Path, default=[], help="extra CA certificates (*.crt)"
    )
    parser.add_argument("--no-host-ca", action="store_true", help=f"do not add {HOST_CA_DIR}")
    parser.add_argument("--docker-host", default="", help="daemon to use (default DOCKER_HOST)")
    parser.add_argument("--rebuild", action="store_true", help="build even when cached")
    parser.add_argument("--no-save", action="store_true", help="do not write tarballs")
    args = parser.parse_args(argv)
    if args.image == "all" and args.tag:
        parser.error("--tag names one image: give one --image with it")
    ca_dirs = tuple(args.ca_dir) + (() if args.no_host_ca else (HOST_CA_DIR,))
    return [
        BuildSettings(
            tag=args.tag,
            image=image,
            cache_dir=args.cache_dir,
            suite=args.suite,
            mirror=args.mirror,
            ca_dirs=ca_dirs,
            docker_host=args.docker_host,
            rebuild=args.rebuild,
            save=not args.no_save,
        )
        for image in (FLAVORS if args.image == "all" else (args.image,))
    ]


def image_size(settings: BuildSettings, tag: str) -> int:
    """The image's size in the daemon (bytes, all layers), 0 when unknown."""
    out = _docker(settings, "image", "inspect", "--format", "{{.Size}}", tag, check=False)
    return int(out) if out.isdigit() else 0


def report(settings: BuildSettings, outcome: str, seconds: float) -> str:
    """One line per image for ``nox -s images``: what was done, how long it took, the image's
    size, its dependencies image's and base's (what the kernel adds is the rest) and the
    cached tarball's."""
    base, deps, kernel = targets(settings)
    mb = 1e6
    sizes = {t.tag: image_size(settings, t.tag) for t in (base, deps, kernel)}
    tarball = kernel.tarball.stat().st_size if kernel.tarball.is_file() else 0
    parts = [f"size {sizes[kernel.tag] / mb:.0f} MB"]
    if sizes[deps.tag]:
        if sizes[base.tag]:  # the base is loaded only when the dependencies were built
            parts.append(f"base {sizes[base.tag] / mb:.0f} MB")
            parts.append(f"dependencies {(sizes[deps.tag] - sizes[base.tag]) / mb:.0f} MB")
        parts.append(f"launchers {(sizes[kernel.tag] - sizes[deps.tag]) / mb:.2f} MB")
    return (
        f"{settings.kernel_tag}: {outcome} in {seconds:.1f}s; {', '.join(parts)}; "
        f"tarball {tarball / mb:.0f} MB"
    )


def main(argv: Sequence[str] | None = None) -> int:
    for settings in parse_args(argv):
        started = time.monotonic()
        try:
            outcome = ensure_image(settings)
        except (BuildUnavailable, BuildFailed) as err:
            print(f"build.py: {settings.kernel_tag}: {err}", file=sys.stderr)
            return 2
        print(report(settings, outcome, time.monotonic() - started), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
