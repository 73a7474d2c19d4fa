"""gp-server on the real backends: a kernel outlives a kill -9 of its Jupyter Server.

For each backend (ssh hosts, Docker, Swarm, Slurm, YARN, Kubernetes, Spark-operator custom
resources; local kernels are in ``test_persistence.py``): start a kernel through a Jupyter
Server with ``gp_server.PersistentKernelManager``, set a variable, SIGKILL the server, start it
again on the same SQLite store: the same kernel id is listed, the variable is still there, code
runs, and a DELETE leaves nothing behind.  On ssh hosts (launchers), Docker (containers), Swarm
(services), Kubernetes (pods), Slurm (jobs) and YARN (applications), the orphan sweep of a
server whose store was deleted lists the kernel's resource in dry-run and removes it otherwise.

The backends' bring-ups and kernelspecs are the end-to-end suites' fixtures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_fixtures import K8S_KERNEL_NAMESPACE, persistent_server
from e2e_helpers import E2EBackend
from jupyter_server_helpers import (
    kill_hard,
    listed_ids,
    processes_with,
    run,
    stop_server,
    wait_for_log,
)
from test_persistence import delete_store

BACKENDS = ["ssh", "docker", "swarm", "slurm", "yarn", "k8s", "crd"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> E2EBackend:
    chosen: E2EBackend = request.getfixturevalue(f"e2e_{request.param}")
    return chosen


@pytest.mark.asyncio
async def test_kernel_survives_kill_9_of_the_server(backend: E2EBackend, tmp_path: Path) -> None:
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

    second = persistent_server(backend, store, tmp_path / "second.log")
    try:
        assert kernel_id in await listed_ids(second, kernel_id), second.log_text()[-3000:]
        assert f"kernel {kernel_id} ({backend.python_spec}) re-attached" in second.log_text()
        result = await run(second, kernel_id, "print(answer + 1)")
        assert result["stdout"] == "42\n", result
        code, _ = await second.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 204
        assert await backend.leftovers(kernel_id) == []
    finally:
        stop_server(second)


@dataclasses.dataclass(frozen=True)
class OrphanCase:
    """A backend's orphan inventory (``orphan_inventories``), what its log lines call a
    resource, and the settings the inventory needs on top of the backend's."""

    inventory: str
    calls_it: str
    env: Callable[[pytest.FixtureRequest], dict[str, str]] = lambda request: {}


ORPHAN_CASES = {
    "ssh": OrphanCase(
        "ssh",
        "orphan ssh launcher",
        lambda request: {
            "GP_REMOTE_HOSTS": ",".join(
                request.getfixturevalue("ssh_kernelspec_install").cluster.entries()
            )
        },
    ),
    "docker": OrphanCase("docker", "orphan docker container"),
    "swarm": OrphanCase("docker", "orphan docker service"),
    "k8s": OrphanCase(
        "k8s",
        "orphan k8s pod",
        lambda request: {"GP_SERVER_K8S_NAMESPACES": K8S_KERNEL_NAMESPACE},
    ),
    "slurm": OrphanCase(
        "slurm",
        "orphan slurm job",
        lambda request: {"GP_SLURM_CONF": str(request.getfixturevalue("slurm_cluster").conf)},
    ),
    "yarn": OrphanCase("yarn", "orphan yarn application"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(ORPHAN_CASES))
async def test_orphans_of_a_lost_store_are_listed_in_dry_run_then_removed(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Kill the server and delete its store: a server on a new store lists what the kernel
    left (dry run: nothing removed), and the next one removes it within the grace period."""
    case = ORPHAN_CASES[name]
    chosen: E2EBackend = request.getfixturevalue(f"e2e_{name}")
    backend = dataclasses.replace(chosen, env={**chosen.env, **case.env(request)})
    store = tmp_path / "kernels.sqlite"
    first = persistent_server(backend, store, tmp_path / "first.log")
    try:
        code, model = await first.call("POST", "/api/kernels", {"name": backend.python_spec})
        assert code == 201, model
        kernel_id = model["id"]
    finally:
        kill_hard(first)
    delete_store(store)
    sweeping = (
        f"--PersistentKernelManager.orphan_inventories={case.inventory}",
        "--PersistentKernelManager.orphan_grace_period=2",
        "--PersistentKernelManager.orphan_sweep_interval=0.5",
    )
    dry = persistent_server(
        backend,
        store,
        tmp_path / "dry.log",
        *sweeping,
        "--PersistentKernelManager.orphan_cleanup=dry-run",
    )
    try:
        assert await wait_for_log(dry, f"(kernel {kernel_id}), "), dry.log_text()[-3000:]
        assert case.calls_it in dry.log_text()
        assert "dry run, not removed" in dry.log_text()
    finally:
        stop_server(dry)
    assert await backend.leftovers(kernel_id) != [], "dry-run removed the kernel"

    cleaning = persistent_server(
        backend,
        store,
        tmp_path / "clean.log",
        *sweeping,
        "--PersistentKernelManager.orphan_cleanup=remove",
    )
    try:
        assert await wait_for_log(cleaning, f"removed {case.calls_it}"), cleaning.log_text()[-3000:]
        assert f"(kernel {kernel_id})" in cleaning.log_text()
        assert await backend.leftovers(kernel_id) == []
        assert processes_with(kernel_id) == []
    finally:
        stop_server(cleaning)
