"""Workspace sessions.

nox -s lint typecheck test integration build   # what CI runs (scripts/test.sh)
nox -s demo                                     # the main job
nox -s bench                                    # figures, never a pass/fail
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
PACKAGES = (
    "gp-provisioners-core",
    "gp-distributed",
    "gp-slurm",
    "gp-yarn",
    "gp-docker",
    "gp-k8s",
    "gp-crd",
    "gp-server",
)
BACKENDS = tuple(p for p in PACKAGES if p not in ("gp-provisioners-core", "gp-server"))
TEST_TOOLS = ("pytest>=8", "pytest-asyncio>=0.23")
E2E_CLIENTS = ("jupyter_server>=2.10", "nbclient>=0.10", "nbformat>=5.9", "matplotlib")
# Helm v4 as a library (no helm binary): renders and installs deploy/helm in the k8s suite.
E2E_CLIENTS += ("helm-python-sdk>=0.2.2,<0.3",)

nox.options.default_venv_backend = "venv"
nox.options.sessions = [
    "lint",
    "typecheck",
    "test",
    "test_oldest_core",
    "integration",
    "build",
    "docs",
]


def package_path(name: str, extras: str = "") -> str:
    return f"{ROOT / 'packages' / name}{f'[{extras}]' if extras else ''}"


def local_dependencies(name: str) -> list[str]:
    """The gp-* distributions ``name`` depends on, recursively (they are not on PyPI)."""
    project = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())
    found: list[str] = []
    for line in project["project"]["dependencies"]:
        dependency = re.split(r"[\s;<>=!~\[]", line, maxsplit=1)[0]
        if dependency in PACKAGES:
            found += [*local_dependencies(dependency), dependency]
    return list(dict.fromkeys(found))


def install_packages(session: nox.Session, *names: str, extras: str = "test") -> None:
    """Install gp-provisioners-core, the named packages and the gp-* packages they need from this
    checkout
    (not editable), so the tests see what a user's pip install gives."""
    wanted: list[str] = ["gp-provisioners-core"]
    for name in names:
        for needed in [*local_dependencies(name), name]:
            if needed not in wanted:
                wanted.append(needed)
    session.install(*[package_path(n, extras) for n in wanted])


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6", "check-jsonschema>=0.29", "zizmor>=1.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The publishing workflow cannot run here: check it against GitHub's workflow schema (as
    # vendored by check-jsonschema) and audit it with zizmor, both offline.
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run("zizmor", "--offline", *workflows)


@nox.session
def typecheck(session: nox.Session) -> None:
    install_packages(session, *BACKENDS, "gp-server")
    # The tests' own imports as well (the packages' [test] extras bring pytest and hypothesis).
    session.install(
        "mypy>=1.10", "types-paramiko", "types-docker", "types-PyYAML", *TEST_TOOLS, *E2E_CLIENTS
    )
    session.run("mypy")
    # The launchers run inside kernel images, outside any package: checked on their own.
    session.run("mypy", "--strict", "launchers/python")
    # Each package's unit tests, strict too, from their folder (where conftest.py and the
    # helper modules the tests import are top-level modules). The config's mypy_path is
    # relative to the checkout's root, so the sources are named for mypy here.
    sources = ":".join(str(ROOT / "packages" / name / "src") for name in PACKAGES)
    for name in PACKAGES:
        tests = ROOT / "packages" / name / "tests"
        with session.chdir(tests):
            session.run(
                "mypy",
                "--config-file",
                "../../../pyproject.toml",
                "--explicit-package-bases",
                *sorted(p.name for p in tests.glob("*.py")),
                env={"MYPYPATH": sources},
            )
    # The integration suite's bring-ups of real backends and emulators, strict as well (run
    # from their folder, where ``backends`` is the package the suites import).
    with session.chdir("tests-integration"):
        session.run(
            "mypy", "--config-file", "../pyproject.toml", "--explicit-package-bases", "backends"
        )
        session.run(
            "mypy",
            "--config-file",
            "../pyproject.toml",
            "--explicit-package-bases",
            *sorted(p.name for p in (ROOT / "tests-integration").glob("*.py")),
            env={"MYPYPATH": sources},
        )


@nox.session
@nox.parametrize("package", PACKAGES)
def test(session: nox.Session, package: str) -> None:
    """One package's tests in an environment holding only that package and gp-provisioners-core."""
    install_packages(session, package)
    session.install(*TEST_TOOLS)
    session.run("pytest", f"packages/{package}/tests", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """End-to-end suites against real backends (sshd) on loopback."""
    install_packages(session, *BACKENDS)
    install_packages(session, "gp-server")
    session.install(*TEST_TOOLS, *E2E_CLIENTS)
    # ``nox -s integration -- tests-integration/test_x.py -x`` runs that file alone; without a
    # path among the arguments, the whole suite.
    named = any(arg.startswith("tests-integration") for arg in session.posargs)
    session.run("pytest", *([] if named else ["tests-integration"]), *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    """What a release publishes, checked as PyPI users will meet it: build each package's sdist
    and (from that sdist) its wheel, ``twine check`` them, check their contents, install each
    from a local index that also holds the unrelated ``gp-core`` into an empty venv (it must
    resolve to ours, load its entry points and require exactly what it imports), and check that
    every distribution name is free on PyPI or ours."""
    session.install("build", "twine>=6.1")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for name in PACKAGES:
        session.run("python", "-m", "build", "--outdir", str(dist), package_path(name))
    session.run("twine", "check", "--strict", *sorted(str(p) for p in dist.iterdir()))
    session.run("python", "scripts/check_dist_contents.py", str(dist))
    session.run("python", "scripts/check_local_index.py", "--dist", str(dist))
    session.run("python", "scripts/check_pypi_names.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: a notebook on a kernel from the distributed provisioner on localhost."""
    install_packages(session, "gp-distributed", extras="")
    session.install("ipykernel", "nbclient", "nbformat")
    session.run("python", "scripts/main_job.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Hostile-connection figures (response and comm port, before and after hardening), launch,
    shutdown and event-loop-lag figures (LocalProvisioner, ours on localhost with metrics and
    launch events on and off and over ssh to 127.0.0.2: cold, warmed at start, reused;
    gateway-provisioners 0.5.0 on both),
    then backend API calls per poll interval as kernels grow.  Prints; never fails on timings."""
    install_packages(session, *BACKENDS, extras="")
    # prometheus_client and jupyter_events: the gp_obs_on / gp_obs_off rows (metrics and events).
    session.install("ipykernel", "prometheus_client", "jupyter_events")
    # Hostile connections: memory and log per 1,000, before (b225c49) and after; launch time
    # under a response-port flood.  About a minute.
    session.run("python", "benchmarks/hostile_bench.py")
    session.run("python", "benchmarks/launch_bench.py", *session.posargs)
    # Warm pools: pooled vs cold start to the first kernel_info_reply, per backend.
    session.run("python", "benchmarks/pool_bench.py")
    # The loop time metrics and launch events take per launch, on and off.
    session.run("python", "benchmarks/observability_cost.py")
    # Backend API calls made by poll() as kernels grow: each prints, or says why it skipped.
    session.run("python", "tests-integration/bench_slurm.py", "--kernels", "2,10")
    session.run("python", "tests-integration/backends/yarn_harness.py")
    docker_bench = ["--bench", "--kernels", "1,20", "--seconds", "60"]
    session.run("python", "tests-integration/backends/dockerd.py", *docker_bench)
    session.run("python", "tests-integration/backends/k8s_cluster.py", "bench", "5,50")
    session.run("python", "tests-integration/backends/k8s_cluster.py", "bench-stop", "3")
    # start-to-ready and shutdown(now=True) on the real kubelet next to the node agent
    session.run("python", "tests-integration/backends/kubelet_node.py", "bench", "3")
    # gp-server: re-attaching 50 local kernels after a kill -9 of the server.
    install_packages(session, "gp-server", extras="")
    session.install("jupyter_server>=2.10")
    session.run("python", "benchmarks/reattach_bench.py", "--kernels", "50")


@nox.session
def release(session: nox.Session) -> None:
    """Release one package: ``nox -s release -- gp-k8s 1.2.0 [--dry-run]``. Bumps its version,
    compiles its changelog, commits and tags ``gp-k8s-v1.2.0`` (scripts/release.py), then builds
    its sdist and wheel into ``dist/gp-k8s/`` and checks them with twine and
    scripts/check_dist_contents.py. Pushing the tag publishes (.github/workflows/publish.yml)."""
    if not session.posargs:
        session.error("usage: nox -s release -- <package> <version> [--dry-run]")
    session.install("build", "twine>=6.1")
    session.run("python", "scripts/release.py", *session.posargs)
    name = session.posargs[0]
    out = ROOT / "dist" / name
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(out), package_path(name))
    session.run("twine", "check", "--strict", *sorted(str(p) for p in out.iterdir()))
    session.run("python", "scripts/check_dist_contents.py", str(out), "--only", name)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs site with warnings as errors; check the generated settings reference and
    that every module, class and path the pages name exists."""
    install_packages(session, *BACKENDS, extras="")
    session.install("mkdocs>=1.6")
    session.run("mkdocs", "build", "--strict")
    session.run(
        "python", "scripts/check_settings_reference.py", "site/reference/settings/index.html"
    )
    session.run("python", "scripts/check_doc_names.py")


@nox.session
@nox.parametrize("package", BACKENDS)
def test_oldest_core(session: nox.Session, package: str) -> None:
    """A backend's unit tests against the oldest released gp-provisioners-core its range admits."""
    session.install("packaging")
    workdir = Path(session.create_tmp())
    answer = workdir / f"oldest-core-{package}.txt"
    session.run(
        "python",
        "scripts/oldest_core.py",
        package,
        "--workdir",
        str(workdir),
        "--output",
        str(answer),
    )
    core = answer.read_text().strip()
    if not core:
        session.skip(f"no released gp-provisioners-core in {package}'s range yet")
    session.install(f"{core}[test]", package_path(package, "test"))
    session.install(*TEST_TOOLS)
    session.run("pytest", f"packages/{package}/tests", *session.posargs)


@nox.session(venv_backend="none")
def images(session: nox.Session) -> None:
    """Build the kernel images (Python, R, Spark-Python) against the daemon DOCKER_HOST names,
    printing each one's size and build time: ``DOCKER_HOST=unix:///path nox -s images`` (or
    ``-- --image spark-python``; see docker-images/README.md and docs/operators/images.md)."""
    session.run("python3", "docker-images/build.py", *(session.posargs or ["--image", "all"]))
