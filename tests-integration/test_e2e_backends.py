"""Real Jupyter clients end to end on the ssh and docker backends.

- nbclient runs the notebook of ``test_notebooks.py`` (cells, a matplotlib plot, an error cell)
  on a Python kernel of each backend, and an R notebook on an R kernel of each backend;
- a real Jupyter Server (subprocess, its environment passed explicitly) with each backend's
  kernelspecs: ``GET /api/kernelspecs``, ``POST /api/kernels``, websocket execute, interrupt
  and restart through REST, ``DELETE`` with nothing left (no process naming the kernel id for
  ssh, no container labelled with it for docker).

The kernelspecs are installed by the real CLIs (``jupyter-ssh-spec install --prefix``,
``jupyter-docker-spec install --prefix``, ``--language R`` included).  The docker kernels run
in the images ``docker-images/build.py`` makes (Python: ``kernel-py``; R: ``kernel-r``,
ensured by the ``docker_r_image`` fixture below), cached as tarballs between runs.  The
pieces shared with ``test_e2e_clusters.py`` (Slurm, YARN, Kubernetes, Spark operator) are in
``e2e_helpers.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from backends import dockerd
from backends.dockerd import KERNEL_LABEL, DockerBackend
from backends.system_packages import cannot_run, missing_packages_message
from conftest import SshKernelspec
from e2e_helpers import (
    LAUNCH_TIMEOUT,
    E2EBackend,
    Leftovers,
    install_spec,
    run_notebook,
    run_plot_notebook,
    use_backend,
)
from jupyter_server_helpers import (
    Server,
    drive_kernel_lifecycle,
    start_server,
    stop_server,
    wait_until_gone,
)
from test_conformance_helpers import irkernel_available

from gp_provisioners_core.images import DEFAULT_PREFIX, default_image

docker_backend = dockerd.docker_backend  # the session's private dockerd (+ Swarm) and Python image

R_IMAGE = default_image("r", DEFAULT_PREFIX)  # build.py --image r
CONTAINER_LAUNCHER = "/usr/local/bin/launch_ipykernel.py"


# -- ssh -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def e2e_ssh(ssh_kernelspec_install: SshKernelspec) -> E2EBackend:
    """Python and R ssh kernelspecs (three loopback sshd hosts) in the conftest's JUPYTER_PATH."""
    cluster = ssh_kernelspec_install.cluster
    jupyter_path = ssh_kernelspec_install.jupyter_path
    prefix = jupyter_path.parent.parent
    common = ["--remote-hosts", ",".join(cluster.entries()), "--python", sys.executable]
    common += ["--launch-timeout", LAUNCH_TIMEOUT]
    install_spec("jupyter-ssh-spec", prefix, "--kernel-name", "e2e_ssh_python", *common)
    r_spec = ""
    if irkernel_available():
        r_spec = "e2e_ssh_r"
        install_spec(
            "jupyter-ssh-spec", prefix, "--kernel-name", r_spec, "--language", "R", *common
        )
    env = {
        "JUPYTER_PATH": str(jupyter_path),
        "JUPYTER_DATA_DIR": str(prefix / "data"),
        "JUPYTER_CONFIG_DIR": str(prefix / "config"),
        "JUPYTER_RUNTIME_DIR": str(prefix / "runtime"),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "GP_SSH_KEY_FILE": str(cluster.key_file),
        "GP_SSH_KNOWN_HOSTS": str(cluster.known_hosts),
        "GP_SSH_CONFIG_FILE": "",
        "GP_SSH_USER": cluster.user,
        "KERNEL_USERNAME": "alice",
    }

    async def leftovers(kernel_id: str) -> list[str]:
        # The hosts are loopback aliases of this machine: their processes are ours to see.
        return await wait_until_gone(kernel_id)

    return E2EBackend(
        "ssh",
        "distributed-provisioner",
        "e2e_ssh_python",
        r_spec,
        jupyter_path,
        env,
        leftovers,
        shares_file_system=True,
        handle_key="assigned_host",
    )


# -- docker ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_r_image(docker_backend: DockerBackend) -> str:
    """The R kernel image in the private daemon: present, loaded from the cached tarball, or
    built by docker-images/build.py (skips only when a tool it needs is missing)."""
    build = dockerd._load_build_module()
    settings = build.BuildSettings(
        tag=R_IMAGE,
        image="r",
        cache_dir=Path(os.getenv("GP_IMAGE_CACHE_DIR", str(dockerd.CACHE_DIR / "docker-images"))),
        docker_host=docker_backend.base_url,
    )
    started = time.monotonic()
    try:
        outcome = build.ensure_image(settings)
    except build.BuildUnavailable as err:
        cannot_run(f"the R kernel image cannot be built here: {err}")
    print(f"{R_IMAGE}: {outcome} in {time.monotonic() - started:.1f}s")
    return R_IMAGE


def _docker_leftovers(base_url: str) -> Leftovers:
    async def leftovers(kernel_id: str) -> list[str]:
        import docker

        client = docker.DockerClient(base_url=base_url, timeout=30)
        label = f"{KERNEL_LABEL}={kernel_id}"
        deadline = time.monotonic() + 15
        while True:
            found = await asyncio.to_thread(
                client.containers.list, all=True, filters={"label": label}
            )
            if not found or time.monotonic() > deadline:
                return [f"container {c.name} ({c.status})" for c in found]
            await asyncio.sleep(0.2)

    return leftovers


@pytest.fixture(scope="session")
def e2e_docker(
    docker_backend: DockerBackend, tmp_path_factory: pytest.TempPathFactory
) -> E2EBackend:
    """A Python docker kernelspec (gp/kernel-py) in a temporary JUPYTER_PATH."""
    prefix = tmp_path_factory.mktemp("docker-e2e-jupyter")
    common = ["--launch-timeout", LAUNCH_TIMEOUT]
    install_spec(
        "jupyter-docker-spec",
        prefix,
        "--kernel-name",
        "e2e_docker_python",
        "--image-name",
        docker_backend.image,
        *common,
    )
    env = {
        "JUPYTER_PATH": str(prefix / "share" / "jupyter"),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "DOCKER_HOST": docker_backend.base_url,
        "KERNEL_USERNAME": "alice",
    }
    return E2EBackend(
        "docker",
        "docker-provisioner",
        "e2e_docker_python",
        "",
        prefix / "share" / "jupyter",
        env,
        _docker_leftovers(docker_backend.base_url),
        handle_key="container_id",
    )


@pytest.fixture(scope="session")
def e2e_docker_r(e2e_docker: E2EBackend, docker_r_image: str) -> E2EBackend:
    """The docker backend with an R kernelspec too: ``jupyter-docker-spec install --language R
    --image-name <the R image>``."""
    prefix = e2e_docker.jupyter_path.parent.parent
    install_spec(
        "jupyter-docker-spec",
        prefix,
        "--kernel-name",
        "e2e_docker_r",
        "--language",
        "R",
        "--image-name",
        docker_r_image,
        "--launch-timeout",
        LAUNCH_TIMEOUT,
    )
    return dataclasses.replace(e2e_docker, r_spec="e2e_docker_r")


# -- selecting a backend ---------------------------------------------------------------------------


@pytest.fixture(params=["ssh", "docker"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> E2EBackend:
    """Each backend in turn, with this process's environment pointing at it for the test."""
    return use_backend(request.getfixturevalue(f"e2e_{request.param}"), monkeypatch)


@pytest.fixture(params=["ssh", "docker"])
def r_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> E2EBackend:
    """Each backend with its R kernelspec (skips where R cannot run)."""
    if request.param == "ssh" and not irkernel_available():
        cannot_run(missing_packages_message("r") or "R with IRkernel does not load")
    name = "e2e_ssh" if request.param == "ssh" else "e2e_docker_r"
    chosen: E2EBackend = request.getfixturevalue(name)
    assert chosen.r_spec
    return use_backend(chosen, monkeypatch)


# -- (a) the notebook on a Python kernel of each backend ------------------------------------------


@pytest.mark.asyncio
async def test_notebook_with_plot_and_error_cell(backend: E2EBackend, tmp_path: Path) -> None:
    # Over ssh the kernel runs on a loopback host (this file system): the saved PNG must be the
    # displayed one.  In a container the PNG is written inside it, so only the display_data
    # output can be checked there.
    await run_plot_notebook(backend, tmp_path)


# -- (b) R code on an R kernel of each backend ----------------------------------------------------


@pytest.mark.asyncio
async def test_r_notebook(r_backend: E2EBackend) -> None:
    spec = r_backend.spec_json(r_backend.r_spec)
    assert spec["language"] == "R"
    assert spec["argv"][spec["argv"].index("--kernel-language") + 1] == "R"
    if r_backend.name == "docker":
        # The launcher runs inside the R image, with the image's Python.
        assert spec["argv"][:2] == ["python", CONTAINER_LAUNCHER]
        config = spec["metadata"]["kernel_provisioner"]["config"]
        assert config["image_name"] == R_IMAGE

    v4: Any = nbformat.v4  # untyped
    nb = v4.new_notebook()
    sources = [
        "values <- (0:7)^2\ncat(R.version$language, sum(values), '\\n')",
        "stop('this cell fails on purpose')",
        "cat('after the error', length(values), '\\n')",
    ]
    nb.cells = [v4.new_code_cell(source) for source in sources]
    kernel_id = (await run_notebook(nb, r_backend.r_spec)).kernel_id

    first, failing, last = nb.cells
    assert first.outputs[0].text.strip() == "R 140"
    assert failing.outputs[0].output_type == "error"
    assert "fails on purpose" in failing.outputs[0].evalue
    assert last.outputs[0].text.strip() == "after the error 8"
    assert await r_backend.leftovers(kernel_id) == []


# -- (c) a real Jupyter Server with each backend's kernelspecs ------------------------------------


@pytest.fixture(scope="module", params=["ssh", "docker"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[E2EBackend, Server]]:
    """A Jupyter Server whose environment is the backend's settings, passed explicitly."""
    chosen: E2EBackend = request.getfixturevalue(f"e2e_{request.param}")
    folder = tmp_path_factory.mktemp(f"server-{request.param}")
    server = start_server(folder, folder / "server.log", env=chosen.env)
    try:
        yield chosen, server
    finally:
        stop_server(server)


@pytest.mark.asyncio
async def test_server_lists_our_kernelspec(served: tuple[E2EBackend, Server]) -> None:
    backend, server = served
    code, specs = await server.call("GET", "/api/kernelspecs")
    assert code == 200
    spec = specs["kernelspecs"][backend.python_spec]["spec"]
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == backend.provisioner_name


@pytest.mark.asyncio
async def test_server_start_execute_interrupt_restart_delete(
    served: tuple[E2EBackend, Server],
) -> None:
    backend, server = served
    kernel_id = await drive_kernel_lifecycle(server, backend.python_spec)
    assert await backend.leftovers(kernel_id) == []
