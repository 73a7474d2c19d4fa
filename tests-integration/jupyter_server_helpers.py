"""A real Jupyter Server subprocess and a client for it (REST and the kernel websocket), shared
by the end-to-end suites (no tests here)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

TOKEN = "gp-e2e-token"


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


def start_server(
    root: Path, log: Path, *extra: str, env: Mapping[str, str] | None = None
) -> Server:
    """``python -m jupyter_server`` on a free 127.0.0.1 port, with token auth, ``root`` as its
    root dir and its output in ``log``.  Its environment: this process's, then
    KERNEL_USERNAME=alice and the response manager on 127.0.0.1 (any free port), then ``env``
    (a backend's settings: JUPYTER_PATH, GP_SSH_*, DOCKER_HOST...)."""
    port = free_port()
    server_env = dict(
        os.environ, KERNEL_USERNAME="alice", GP_RESPONSE_IP="127.0.0.1", GP_RESPONSE_PORT="0"
    )
    server_env.update(env or {})
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
        env=server_env,
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


def store_server(
    root: Path,
    store: Path,
    log: Path,
    *extra: str,
    manager: str = "PersistentKernelManager",
    env: Mapping[str, str] | None = None,
) -> Server:
    """:func:`start_server` with gp-server's ``manager`` (``PersistentKernelManager`` or
    ``PoolingKernelManager``) as its kernel manager, on the SQLite store ``store`` whose sealing
    key file lies beside it; ``env`` as for :func:`start_server`."""
    return start_server(
        root,
        log,
        f"--ServerApp.kernel_manager_class=gp_server.{manager}",
        f"--{manager}.store_url=sqlite:///{store}",
        *extra,
        env={**(env or {}), "GP_SERVER_STORE_KEY_FILE": str(store.parent / "store.key")},
    )


def kill_hard(server: Server) -> None:
    """SIGKILL the server: no shutdown hook runs (its kernels stay, its store is as it was)."""
    server.process.kill()
    server.process.wait()


async def new_kernel(server: Server, kernel_name: str) -> str:
    """Start a kernel of ``kernel_name`` through the REST API; its id."""
    code, model = await server.call("POST", "/api/kernels", {"name": kernel_name})
    assert code == 201, model
    return str(model["id"])


async def listed_ids(server: Server, wanted: str, timeout: float = 60) -> list[str]:
    """The kernel ids the server lists, once ``wanted`` is among them (or at ``timeout``):
    re-attaching runs after the server starts listening."""
    deadline = time.monotonic() + timeout
    while True:
        code, kernels = await server.call("GET", "/api/kernels")
        assert code == 200
        ids = [k["id"] for k in kernels]
        if wanted in ids or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.3)


async def wait_for_log(server: Server, text: str, timeout: float = 60) -> bool:
    """Whether ``text`` reached the server's log within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while text not in server.log_text():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.3)
    return True


@contextlib.contextmanager
def local_kernelspecs(root: Path, kernel_name: str, **config: Any) -> Iterator[Path]:
    """Jupyter paths isolated under ``root`` (yielded) holding gp-distributed's kernelspec
    ``kernel_name`` for this host, with ``config`` added to its provisioner config."""
    from gp_distributed.cli import main as install_spec
    from gp_provisioners_core.testing import isolated_jupyter_paths

    with isolated_jupyter_paths(root) as prefix:
        install_spec(["install", "--prefix", str(prefix), "--kernel-name", kernel_name])
        if config:
            [spec_file] = root.rglob(f"kernels/{kernel_name}/kernel.json")
            spec = json.loads(spec_file.read_text())
            spec["metadata"]["kernel_provisioner"].setdefault("config", {}).update(config)
            spec_file.write_text(json.dumps(spec))
        yield root


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()


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


async def run(server: Server, kernel_id: str, code: str) -> dict[str, Any]:
    """Execute ``code`` in the kernel over a websocket of its own; stdout and error name."""
    channel = await KernelSocket.open(server, kernel_id)
    try:
        return await channel.execute(code)
    finally:
        channel.close()


async def drive_kernel_lifecycle(server: Server, kernel_name: str) -> str:
    """What a browser does with one kernel: start it, execute, interrupt a running cell (the
    idle status must follow within 2 s), restart and reconnect, delete.  Asserts each answer and
    that every launch phase reached the server log; returns the kernel id for leftover checks."""
    code, model = await server.call("POST", "/api/kernels", {"name": kernel_name})
    assert code == 201, model
    kernel_id = str(model["id"])
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
    log = server.log_text()
    for phase in ("submitted", "connection-info-received", "backend-confirmed", "ready"):
        assert f"Kernel {kernel_id} launch phase '{phase}' done in" in log
    return kernel_id
