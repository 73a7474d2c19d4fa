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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from backends.system_packages import cannot_run, missing_packages_message
from e2e_fixtures import R_IMAGE
from e2e_helpers import (
    E2EBackend,
    run_notebook,
    run_plot_notebook,
    use_backend,
)
from irkernel import irkernel_available
from jupyter_server_helpers import (
    Server,
    drive_kernel_lifecycle,
    start_server,
    stop_server,
)

CONTAINER_LAUNCHER = "/usr/local/bin/launch_ipykernel.py"


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
