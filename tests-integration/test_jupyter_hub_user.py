"""Who a kernel runs for when the start request names no KERNEL_USERNAME, through a real
Jupyter Server (REST and websocket) with the distributed provisioner's local kernels.

- Under JupyterHub (JUPYTERHUB_USER in the single-user server's environment), the Hub's user.
- A server running as root with no other name: refused with a message that says what to set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_server_helpers import KernelSocket, Server, start_server, stop_server

from gp_distributed.cli import main as install_spec
from gp_provisioners_core.testing import isolated_jupyter_paths

HUB_ONLY = "hub_only"
"""A kernelspec only the Hub's user (carol) may start."""
PLAIN = "plain"
"""The defaults: everyone but root."""
NO_NAME = {"KERNEL_USERNAME": "", "JUPYTERHUB_USER": ""}


@pytest.fixture(scope="module")
def kernelspecs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("jupyter")
    with isolated_jupyter_paths(root) as prefix:
        common = ["install", "--prefix", str(prefix)]
        install_spec([*common, "--kernel-name", HUB_ONLY, "--authorized-users", "carol"])
        install_spec([*common, "--kernel-name", PLAIN])
        yield root


def _server(kernelspecs: Path, log: Path, env: dict[str, str]) -> Server:
    return start_server(kernelspecs, log, env={**NO_NAME, **env})


@pytest.mark.asyncio
async def test_the_hubs_user_is_the_kernel_user(kernelspecs: Path, tmp_path: Path) -> None:
    server = _server(kernelspecs, tmp_path / "hub.log", {"JUPYTERHUB_USER": "carol"})
    try:
        code, model = await server.call("POST", "/api/kernels", {"name": HUB_ONLY})
        assert code == 201, model
        channel = await KernelSocket.open(server, model["id"])
        try:
            result = await channel.execute("import os; print(os.environ['KERNEL_USERNAME'])")
            assert result["stdout"].strip() == "carol"
        finally:
            channel.close()
        assert (await server.call("DELETE", f"/api/kernels/{model['id']}"))[0] == 204
    finally:
        stop_server(server)


@pytest.mark.asyncio
async def test_a_request_naming_another_user_is_judged_as_that_user(
    kernelspecs: Path, tmp_path: Path
) -> None:
    server = _server(
        kernelspecs, tmp_path / "hub.log", {"JUPYTERHUB_USER": "carol", "KERNEL_USERNAME": "dave"}
    )
    try:
        code, body = await server.call("POST", "/api/kernels", {"name": HUB_ONLY})
        assert code == 403
        assert "'dave' is not authorized" in body["message"]
    finally:
        stop_server(server)


@pytest.mark.asyncio
async def test_root_server_without_a_user_is_told_what_to_set(
    kernelspecs: Path, tmp_path: Path
) -> None:
    server = _server(kernelspecs, tmp_path / "root.log", {})
    try:
        code, body = await server.call("POST", "/api/kernels", {"name": PLAIN})
        if os.geteuid() != 0:
            # Not root: the process's owner is the kernel's user, and the defaults allow it.
            assert code == 201, body
            assert (await server.call("DELETE", f"/api/kernels/{body['id']}"))[0] == 204
            return
        assert code == 403, body
        message = body["message"]
        assert "'root' is not authorized" in message
        assert "the server process's owner" in message
        assert "non-root" in message
        assert "c.DistributedProvisioner.default_kernel_username" in message
        assert "GP_DEFAULT_KERNEL_USERNAME" in message
        assert "GP_UNAUTHORIZED_USERS" in message
    finally:
        stop_server(server)


@pytest.mark.asyncio
async def test_default_kernel_username_names_the_user_of_a_root_server(
    kernelspecs: Path, tmp_path: Path
) -> None:
    server = _server(
        kernelspecs, tmp_path / "default.log", {"GP_DEFAULT_KERNEL_USERNAME": "jovyan"}
    )
    try:
        code, model = await server.call("POST", "/api/kernels", {"name": PLAIN})
        assert code == 201, model
        channel = await KernelSocket.open(server, model["id"])
        try:
            result = await channel.execute("import os; print(os.environ['KERNEL_USERNAME'])")
            assert result["stdout"].strip() == "jovyan"
        finally:
            channel.close()
        assert (await server.call("DELETE", f"/api/kernels/{model['id']}"))[0] == 204
    finally:
        stop_server(server)
