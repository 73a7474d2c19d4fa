"""Real Jupyter Server with our kernelspecs, driven as a client drives it: REST and websocket.

The server runs as a subprocess with the distributed provisioner's local path (and R kernels
when IRkernel is installed); the kernels are real.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from gp_core.testing import isolated_jupyter_paths
from gp_distributed.cli import main as install_spec

TOKEN = "gp-e2e-token"
PY = "e2e_python"
REFUSING = "e2e_refusing"
BROKEN = "e2e_broken"
R_SPEC = "e2e_r"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def has_irkernel() -> bool:
    try:
        done = subprocess.run(
            ["Rscript", "-e", "library(IRkernel)"], capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class Server:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = HTTPRequest(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {TOKEN}"},
            body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
            request_timeout=120,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as err:
            body = err.response.body if err.response is not None else b""
            return err.code, json.loads(body or b"{}")
        return response.code, json.loads(response.body) if response.body else None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


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


def start_server(root: Path, log: Path, *extra: str) -> Server:
    port = free_port()
    env = dict(
        os.environ, KERNEL_USERNAME="alice", GP_RESPONSE_IP="127.0.0.1", GP_RESPONSE_PORT="0"
    )
    handle = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={root}",
            *(["--allow-root"] if os.geteuid() == 0 else []),
            *extra,
        ],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", log, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("jupyter server did not listen within 60s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="module")
def server(kernelspecs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(kernelspecs, tmp_path_factory.mktemp("log") / "server.log")
    yield running
    stop_server(running)


def processes_with(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                argv = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if text in argv and state != "Z":
                found.append(argv[:160])
    return found


async def wait_until_gone(kernel_id: str, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    while processes_with(kernel_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return processes_with(kernel_id)


class KernelSocket:
    """The /api/kernels/<id>/channels websocket with the default (JSON) protocol."""

    def __init__(self, connection: WebSocketClientConnection) -> None:
        self.connection = connection
        self.session = uuid.uuid4().hex

    @classmethod
    async def open(cls, server: Server, kernel_id: str) -> KernelSocket:
        url = server.url.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"
        request = HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"})
        return cls(await websocket_connect(request))

    async def execute(self, code: str, timeout: float = 60) -> dict[str, Any]:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": self.session,
            "username": "alice",
            "version": "5.3",
            "date": "",
        }
        content = {"code": code, "silent": False, "store_history": True, "allow_stdin": False}
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        await self.connection.write_message(json.dumps({**message, "channel": "shell"}))
        result: dict[str, Any] = {"stdout": "", "error": "", "started": time.monotonic()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(
                self.connection.read_message(), deadline - time.monotonic()
            )
            assert raw is not None, "websocket closed"
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = reply["msg_type"], reply["content"]
            if kind == "stream":
                result["stdout"] += body["text"]
            elif kind == "error":
                result["error"] = body["ename"]
            elif kind == "status" and body["execution_state"] == "idle":
                result["finished"] = time.monotonic()
                return result
        raise TimeoutError(code)

    def close(self) -> None:
        self.connection.close()


@pytest.mark.asyncio
async def test_kernelspecs_show_our_provisioner(server: Server) -> None:
    code, specs = await server.call("GET", "/api/kernelspecs")
    assert code == 200
    spec = specs["kernelspecs"][PY]["spec"]
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "distributed-provisioner"
    assert spec["display_name"] == "E2E Python"


@pytest.mark.asyncio
async def test_start_execute_interrupt_restart_delete(server: Server) -> None:
    code, model = await server.call("POST", "/api/kernels", {"name": PY})
    assert code == 201, model
    kernel_id = model["id"]
    channel = await KernelSocket.open(server, kernel_id)
    try:
        assert (await channel.execute("print(6 * 7)"))["stdout"].strip() == "42"

        sleeping = asyncio.ensure_future(channel.execute("import time; time.sleep(60)"))
        await asyncio.sleep(1.0)
        interrupted_at = time.monotonic()
        code, _ = await server.call("POST", f"/api/kernels/{kernel_id}/interrupt")
        assert code == 204
        result = await asyncio.wait_for(sleeping, 10)
        assert result["error"] == "KeyboardInterrupt"
        assert result["finished"] - interrupted_at < 2.0

        await channel.execute("state = 'before restart'")
        code, _ = await server.call("POST", f"/api/kernels/{kernel_id}/restart")
        assert code == 200
        channel.close()
        channel = await KernelSocket.open(server, kernel_id)
        after = await channel.execute("print('state' in globals(), 6 * 7)")
        assert after["stdout"].strip() == "False 42"
    finally:
        channel.close()
    code, _ = await server.call("DELETE", f"/api/kernels/{kernel_id}")
    assert code == 204
    assert await wait_until_gone(kernel_id) == []
    log = server.log_text()
    for phase in ("submitted", "connection-info-received", "backend-confirmed", "ready"):
        assert f"Kernel {kernel_id} launch phase '{phase}' done in" in log


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
        pytest.skip("R with IRkernel is not installed (r-cran-irkernel)")
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
