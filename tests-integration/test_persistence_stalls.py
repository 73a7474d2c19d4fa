"""Re-attach during a 30 s backend API stall never reports a live kernel dead (gp-server).

For every backend (ssh, Docker, Swarm, Kubernetes, Spark-operator custom resources, Slurm,
YARN): a Jupyter Server with ``gp_server.PersistentKernelManager`` starts a kernel and sets a
variable; the server is SIGKILLed; the backend's API is *stalled* (really: its daemon is
SIGSTOPped, or a loopback proxy in front of it stops forwarding); a new server starts on the
same store while the stall lasts 30 s.  During the stall the kernel is never dropped, restarted
or reported dead, and where the provisioner's answer depends on the stalled API the kernel is
listed with execution state ``unknown``.  Once the stall ends the state resolves (the server
logs that the backend answered), the variable is still there and a DELETE leaves nothing.

What is stalled:

- ssh: every host's listening sshd (SIGSTOP).  The kernel's launcher answers on its comm
  port, which is how the provisioner learns the kernel lives: no ssh is needed, so the state
  is known (``idle``), not ``unknown``.
- Docker, Swarm: the private dockerd (SIGSTOP); containers keep running under containerd.
- Kubernetes, custom resources: kube-apiserver (SIGSTOP); pods keep running on the node.
- Slurm: slurmctld (SIGSTOP); slurmd keeps running the job.
- YARN: the emulated ResourceManager runs in this process, so a loopback proxy in front of it
  stops forwarding (connections are accepted, nothing answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from backends.dockerd import DockerBackend
from backends.k8s_cluster import K8sCluster
from backends.slurm import SlurmCluster
from backends.ssh_fixtures import SshKernelspec
from backends.yarn_harness import yarn_backend
from e2e_fixtures import persistent_server, yarn_e2e_backend
from e2e_helpers import LAUNCH_TIMEOUT, E2EBackend
from jupyter_server_helpers import Server, kill_hard, run, stop_server

STALL_SECONDS = 30.0
LISTING_BOUND = 90.0  # seconds of stall within which the re-attach must list the kernel
DEATH_WORDS = ("is gone", "dropping its record", "restarting", "died", "reported dead")


# -- stalls ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def sigstopped(pids: list[int]) -> Iterator[Callable[[], None]]:
    """SIGSTOP ``pids``; yields a resume function (idempotent), also called at the end."""
    stopped: list[int] = []

    def resume() -> None:
        while stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped.pop(), signal.SIGCONT)

    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield resume
    finally:
        resume()


class StallingProxy:
    """A loopback TCP proxy to ``target`` that, while stalled, accepts connections and
    forwards nothing in either direction (a ResourceManager that stopped answering)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.flowing.wait()
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                self.flowing.wait()
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def stalled(self) -> Iterator[Callable[[], None]]:
        self.flowing.clear()
        try:
            yield self.flowing.set
        finally:
            self.flowing.set()

    def close(self) -> None:
        self.closed = True
        self.flowing.set()
        self.listener.close()


@dataclass
class Stallable:
    """A backend and how to stall its API; ``says_unknown``: whether the provisioner's
    answer about a kernel depends on that API (ssh's does not: the launcher answers)."""

    backend: E2EBackend
    stall: Callable[[], contextlib.AbstractContextManager[Callable[[], None]]]
    says_unknown: bool = True


# -- backends --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def e2e_yarn_behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stallable]:
    """The emulated ResourceManager, its kernelspec naming a stalling proxy in front of it."""
    with yarn_backend(tmp_path_factory.mktemp("yarn-stall"), ha=False) as setup:
        server = setup.servers[0]
        proxy = StallingProxy((server.host, server.port))
        try:
            name = setup.install(
                "stall_yarn_python",
                "--yarn-endpoint",
                proxy.url,
                "--launch-timeout",
                LAUNCH_TIMEOUT,
            )

            backend = yarn_e2e_backend(setup, name)
            yield Stallable(backend, proxy.stalled)
        finally:
            proxy.close()


def _apiserver(cluster: K8sCluster) -> list[int]:
    return [c.process.pid for c in cluster.components if c.name == "kube-apiserver"]


@pytest.fixture(params=["ssh", "docker", "swarm", "k8s", "crd", "slurm", "yarn"])
def stallable(request: pytest.FixtureRequest) -> Stallable:
    """Each backend in turn with the stall of its API."""
    name = request.param
    get = request.getfixturevalue
    if name == "ssh":
        cluster = get("ssh_kernelspec_install")
        assert isinstance(cluster, SshKernelspec)
        pids = [h.process.pid for h in cluster.cluster.hosts.values() if h.process is not None]
        return Stallable(get("e2e_ssh"), lambda: sigstopped(pids), says_unknown=False)
    if name in ("docker", "swarm"):
        docker: DockerBackend = get("docker_backend")
        assert docker.daemon.process is not None
        pid = docker.daemon.process.pid
        return Stallable(get(f"e2e_{name}"), lambda: sigstopped([pid]))
    if name in ("k8s", "crd"):
        pids = _apiserver(get("k8s_cluster"))
        if name == "crd":
            get("crd_nothing_left")
            return Stallable(get("e2e_crd"), lambda: operator_excused(get("spark_operator"), pids))
        return Stallable(get(f"e2e_{name}"), lambda: sigstopped(pids))
    if name == "slurm":
        slurm: SlurmCluster = get("slurm_cluster")
        pid = slurm.processes["slurmctld"].pid
        return Stallable(get("e2e_slurm"), lambda: sigstopped([pid]))
    chosen_yarn: Stallable = get("e2e_yarn_behind_proxy")
    return chosen_yarn


@contextlib.contextmanager
def operator_excused(operator: Any, pids: list[int]) -> Iterator[Callable[[], None]]:
    """The apiserver stalled as :func:`sigstopped` does; the Spark-operator emulator's own
    calls fail meanwhile and for a while after (requests cut or timed out by the stall, and
    an apiserver whose watch cache is catching up answers a fresh watch with "too large
    resource version": that is the stall, not a bug of ours). After the stall this waits until
    each of the emulator's watch loops has listed twice more (one whole watch cycle after its
    recovery), then drops the errors recorded since the stall began, so that ``crd_nothing_left``
    counts only errors of an emulator that has recovered."""
    before = len(operator.errors)
    try:
        with sigstopped(pids) as resume:
            yield resume
    finally:
        stalled_listings = dict(operator.listings)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and any(
            operator.listings[loop] < count + 2 for loop, count in stalled_listings.items()
        ):
            time.sleep(0.2)
        excused = operator.errors[before:]
        if excused:
            print(f"Spark-operator emulator errors during and after the stall: {excused}")
        del operator.errors[before:]


# -- the test --------------------------------------------------------------------------------------


async def kernel_state(server: Server, kernel_id: str) -> str | None:
    """The kernel's execution state in ``GET /api/kernels`` (None: not listed)."""
    code, kernels = await server.call("GET", "/api/kernels")
    assert code == 200, kernels
    states = [k["execution_state"] for k in kernels if k["id"] == kernel_id]
    return states[0] if states else None


def death_lines(server: Server, kernel_id: str) -> list[str]:
    return [
        line
        for line in server.log_text().splitlines()
        if kernel_id in line and any(word in line for word in DEATH_WORDS)
    ]


@pytest.mark.asyncio
async def test_reattach_during_a_backend_stall(stallable: Stallable, tmp_path: Path) -> None:
    backend = stallable.backend
    store = tmp_path / "kernels.sqlite"
    first = persistent_server(backend, store, tmp_path / "first.log")
    kernel_id = ""
    try:
        code, model = await first.call("POST", "/api/kernels", {"name": backend.python_spec})
        assert code == 201, model
        kernel_id = model["id"]
        assert (await run(first, kernel_id, "answer = 41"))["error"] == ""
    finally:
        kill_hard(first)

    second: Server | None = None
    with stallable.stall() as resume:
        try:
            second = persistent_server(backend, store, tmp_path / "second.log")
            began = time.monotonic()  # the server answers: the stall lasts STALL_SECONDS more
            seen: list[str | None] = []
            # ... and, on a loaded machine, until the re-attach has listed the kernel (Docker's
            # waits 15 s for its events stream first), within a bound
            while time.monotonic() - began < STALL_SECONDS or not any(seen):
                if time.monotonic() - began > LISTING_BOUND:
                    break
                seen.append(await kernel_state(second, kernel_id))
                assert death_lines(second, kernel_id) == [], second.log_text()[-3000:]
                await asyncio.sleep(1)
            resume()
            resumed = time.monotonic()
            listed = [s for s in seen if s is not None]
            print(f"{backend.name}: states during the {STALL_SECONDS:g}s stall: {listed}")
            assert listed, f"never listed during the stall: {second.log_text()[-3000:]}"
            if stallable.says_unknown:
                assert "unknown" in listed, listed
                assert "its state is unknown until its backend answers" in second.log_text()
            else:
                assert "unknown" not in listed, listed

            while (await kernel_state(second, kernel_id)) in ("unknown", None):
                assert time.monotonic() - resumed < 90, second.log_text()[-3000:]
                await asyncio.sleep(0.3)
            print(f"{backend.name}: resolved {time.monotonic() - resumed:.1f}s after the stall")
            if stallable.says_unknown:
                assert f"kernel {kernel_id}: its backend answered" in second.log_text()
                assert "alive" in second.log_text()
            result = await run(second, kernel_id, "print(answer + 1)")
            assert result["stdout"] == "42\n", result
            assert death_lines(second, kernel_id) == [], second.log_text()[-3000:]
            code, _ = await second.call("DELETE", f"/api/kernels/{kernel_id}")
            assert code == 204, second.log_text()[-3000:]
            assert await backend.leftovers(kernel_id) == []
        finally:
            resume()
            if second is not None:
                stop_server(second)
