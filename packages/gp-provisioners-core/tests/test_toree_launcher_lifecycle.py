"""The Scala (Apache Toree) launcher's JVM ends with the kernel: the real launcher, compiled with
the JDK's javac, runs a stand-in for Toree's main class
(launchers/scala/test/fake_toree/org/apache/toree/Main.java) that leaves a non-daemon thread
behind when it returns, as Spark's and Akka's threads would.  The server side is
gp_provisioners_core's own protocol code.  The Scala suites (GP_TEST_SCALA=1) run real Toree."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gp_provisioners_core.launchers import launcher_dir
from gp_provisioners_core.protocol import (
    LAUNCH_SECRET_ENV,
    ServerKeyPair,
    open_message,
    sign_comm_request,
)


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    javac = shutil.which("javac")
    if not javac or not shutil.which("java"):
        pytest.skip("no JDK (javac): apt-get install openjdk-17-jdk-headless (scala part)")
    source = launcher_dir("scala")
    out = tmp_path_factory.mktemp("toree-launcher-lifecycle")
    files = [
        *sorted((source / "src").rglob("*.java")),
        *sorted((source / "test" / "fake_toree").rglob("*.java")),
    ]
    subprocess.run(
        [javac, "--release", "11", "-nowarn", "-XDignore.symbol.file", "-d", str(out)]
        + [str(f) for f in files],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


class ResponseServer:
    """Accepts one sealed launch message, opens it with the server's code, says accepted."""

    def __init__(self) -> None:
        self.key_pair = ServerKeyPair.generate()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conn_info: dict[str, Any] = {}
        self.received = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.conn_info = open_message(data, self.key_pair, allow_legacy=False).conn_info
            conn.sendall(b'{"status": "accepted"}\n')
        self.received.set()


@pytest.fixture
def launched(
    classes: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], Path]]:
    server = ResponseServer()
    kernel_id = str(uuid.uuid4())
    stop = tmp_path / "stop"
    env = {**os.environ, LAUNCH_SECRET_ENV: "s" * 32, "FAKE_TOREE_STOP": str(stop)}
    process = subprocess.Popen(
        [
            "java", "-cp", str(classes), "gp.launcher.ToreeLauncher",
            "--kernel-id", kernel_id, "--response-address", f"127.0.0.1:{server.port}",
            "--public-key", server.key_pair.public_key_b64, "--ip", "127.0.0.1",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.received.wait(60), "the launcher sent no connection info"
        yield process, server.conn_info, stop
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_the_jvm_exits_when_toree_returns(
    launched: tuple[subprocess.Popen[str], dict[str, Any], Path],
) -> None:
    """Toree's main returning (its shutdown) ends the JVM even though a non-daemon thread is
    left: the launcher must not keep a kernel-less JVM (the provisioner would see a live
    process and the comm port would answer for a kernel that is gone)."""
    process, _, stop = launched
    assert process.poll() is None
    stop.touch()
    started = time.monotonic()
    while process.poll() is None and time.monotonic() - started < 30:
        time.sleep(0.1)
    assert process.poll() is not None, "the JVM still runs after Toree's main returned"
    assert process.stderr is not None
    assert "Apache Toree stopped: the JVM exits" in process.stderr.read()


def test_a_comm_port_shutdown_ends_the_jvm(
    launched: tuple[subprocess.Popen[str], dict[str, Any], Path],
) -> None:
    process, conn_info, _ = launched
    request = sign_comm_request(conn_info["key"], conn_info["kernel_id"], {"shutdown": 1})
    with socket.create_connection(("127.0.0.1", conn_info["comm_port"]), timeout=10) as s:
        s.sendall(json.dumps(request).encode() + b"\n")
        assert json.loads(s.makefile().readline()) == {"ok": True}
    assert process.wait(30) is not None


def test_the_warm_up_is_skipped_without_jeromq(
    launched: tuple[subprocess.Popen[str], dict[str, Any], Path],
) -> None:
    """The warm-up is best effort: without JeroMQ (no Toree assembly) the launch goes on."""
    process, conn_info, stop = launched
    assert conn_info["comm_port"] > 0
    stop.touch()
    process.wait(30)
    assert process.stderr is not None
    assert "The warm-up cell could not run" in process.stderr.read()
