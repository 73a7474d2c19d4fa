"""Real Jupyter Server with our kernelspecs, driven as a client drives it: REST and websocket.

The server runs as a subprocess with the distributed provisioner's local path (and R kernels
when IRkernel is installed); the kernels are real.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends.system_packages import cannot_run, missing_packages_message
from jupyter_server_helpers import (
    KernelSocket,
    Server,
    drive_kernel_lifecycle,
    has_irkernel,
    processes_with,
    start_server,
    stop_server,
    wait_until_gone,
)

from gp_distributed.cli import main as install_spec
from gp_provisioners_core.testing import isolated_jupyter_paths

PY = "e2e_python"
REFUSING = "e2e_refusing"
BROKEN = "e2e_broken"
R_SPEC = "e2e_r"


@pytest.fixture(scope="module")
def kernelspecs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("jupyter")
    with isolated_jupyter_paths(root) as prefix:
        common = ["install", "--prefix", str(prefix)]
        install_spec([*common, "--kernel-name", PY, "--display-name", "E2E Python"])
        install_spec([*common, "--kernel-name", REFUSING, "--unauthorized-users", "alice"])
        install_spec([*common, "--kernel-name", BROKEN, "--spark", "--spark-init-mode", "eager"])
        if has_irkernel():
            install_spec([*common, "--kernel-name", R_SPEC, "--language", "R"])
        yield root


@pytest.fixture(scope="module")
def server(kernelspecs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(kernelspecs, tmp_path_factory.mktemp("log") / "server.log")
    yield running
    stop_server(running)


@pytest.mark.asyncio
async def test_kernelspecs_show_our_provisioner(server: Server) -> None:
    code, specs = await server.call("GET", "/api/kernelspecs")
    assert code == 200
    spec = specs["kernelspecs"][PY]["spec"]
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "distributed-provisioner"
    assert spec["display_name"] == "E2E Python"


@pytest.mark.asyncio
async def test_start_execute_interrupt_restart_delete(server: Server) -> None:
    kernel_id = await drive_kernel_lifecycle(server, PY)
    assert await wait_until_gone(kernel_id) == []


@pytest.mark.asyncio
async def test_refused_user_gets_403_with_our_message(server: Server) -> None:
    code, body = await server.call("POST", "/api/kernels", {"name": REFUSING})
    assert code == 403
    assert "'alice' is not authorized" in body["message"]


@pytest.mark.asyncio
async def test_failed_launch_answers_with_phase_and_reason(server: Server) -> None:
    code, body = await server.call("POST", "/api/kernels", {"name": BROKEN})
    assert code == 500
    assert "launch phase 'connection-info-received'" in body["message"]
    assert "needs pyspark" in body["message"]


@pytest.mark.asyncio
async def test_r_kernel_through_the_server(server: Server) -> None:
    if not has_irkernel():
        cannot_run(missing_packages_message("r") or "R with IRkernel does not load")
    code, model = await server.call("POST", "/api/kernels", {"name": R_SPEC})
    assert code == 201, model
    channel = await KernelSocket.open(server, model["id"])
    try:
        result = await channel.execute("cat(R.version$language, 6 * 7)")
        assert result["stdout"].strip() == "R 42"
    finally:
        channel.close()
    assert (await server.call("DELETE", f"/api/kernels/{model['id']}"))[0] == 204
    assert await wait_until_gone(model["id"]) == []


@pytest.mark.asyncio
async def test_culling_shuts_an_idle_remote_kernel_down(kernelspecs: Path, tmp_path: Path) -> None:
    culling = start_server(
        kernelspecs,
        tmp_path / "culling.log",
        "--MappingKernelManager.cull_idle_timeout=3",
        "--MappingKernelManager.cull_interval=1",
    )
    try:
        code, model = await culling.call("POST", "/api/kernels", {"name": PY})
        assert code == 201
        kernel_id = model["id"]
        assert processes_with(kernel_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code, kernels = await culling.call("GET", "/api/kernels")
            if all(k["id"] != kernel_id for k in kernels):
                break
            await asyncio.sleep(0.5)
        assert all(k["id"] != kernel_id for k in kernels), "the idle kernel was not culled"
        assert await wait_until_gone(kernel_id) == []
    finally:
        stop_server(culling)


def test_jupyter_lists_our_kernelspecs_and_provisioner(kernelspecs: Path) -> None:
    jupyter = str(Path(sys.executable).parent / "jupyter")
    listed = subprocess.run([jupyter, "kernelspec", "list"], capture_output=True, text=True)
    assert PY in listed.stdout
    provisioners = subprocess.run(
        [jupyter, "kernelspec", "provisioners"], capture_output=True, text=True
    )
    assert "distributed-provisioner" in provisioners.stdout
