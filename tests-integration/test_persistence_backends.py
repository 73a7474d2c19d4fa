"""gp-server on the real backends: a kernel outlives a kill -9 of its Jupyter Server.

For each backend (ssh hosts, dockerd, Slurm, Kubernetes; local kernels are in
``test_persistence.py``): start a kernel through a Jupyter Server with
``gp_server.PersistentKernelManager``, set a variable, SIGKILL the server, start it again on
the same SQLite store: the same kernel id is listed, the variable is still there, code runs,
and a DELETE leaves nothing behind.  On Docker, the orphan sweep of a server whose store was
deleted lists the kernel's container in dry-run and removes it otherwise.

The backends' bring-ups and kernelspecs are the end-to-end suites' fixtures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from backends.k8s_cluster import k8s_cluster  # noqa: F401 - fixture
from e2e_helpers import E2EBackend
from jupyter_server_helpers import Server, processes_with, start_server, stop_server
from test_e2e_backends import docker_backend, e2e_docker, e2e_ssh  # noqa: F401 - fixtures
from test_e2e_clusters import K8S_KERNEL_NAMESPACE, e2e_k8s, e2e_slurm  # noqa: F401 - fixtures
from test_persistence import delete_store, kill_hard, listed_ids, run, wait_for_log

pytest_plugins = ["backends.slurm_fixtures"]

BACKENDS = ["ssh", "docker", "slurm", "k8s"]


def persistent_server(backend: E2EBackend, store: Path, log: Path, *extra: str) -> Server:
    env = dict(backend.env)
    env.update(
        GP_SERVER_STORE_KEY_FILE=str(store.parent / "store.key"),
        GP_SERVER_ORPHAN_CLEANUP="off",
    )
    return start_server(
        store.parent,
        log,
        "--ServerApp.kernel_manager_class=gp_server.PersistentKernelManager",
        f"--PersistentKernelManager.store_url=sqlite:///{store}",
        *extra,
        env=env,
    )


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


@pytest.mark.asyncio
async def test_docker_orphans_are_listed_in_dry_run_then_removed(
    e2e_docker: E2EBackend,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    store = tmp_path / "kernels.sqlite"
    first = persistent_server(e2e_docker, store, tmp_path / "first.log")
    try:
        code, model = await first.call("POST", "/api/kernels", {"name": e2e_docker.python_spec})
        assert code == 201, model
        kernel_id = model["id"]
    finally:
        kill_hard(first)
    delete_store(store)
    sweeping = (
        "--PersistentKernelManager.orphan_inventories=docker",
        "--PersistentKernelManager.orphan_grace_period=2",
        "--PersistentKernelManager.orphan_sweep_interval=0.5",
    )
    dry = persistent_server(
        e2e_docker,
        store,
        tmp_path / "dry.log",
        *sweeping,
        "--PersistentKernelManager.orphan_cleanup=dry-run",
    )
    try:
        assert await wait_for_log(dry, f"(kernel {kernel_id}), "), dry.log_text()[-3000:]
        assert "dry run, not removed" in dry.log_text()
    finally:
        stop_server(dry)
    assert await e2e_docker.leftovers(kernel_id) != [], "dry-run removed the container"

    cleaning = persistent_server(
        e2e_docker,
        store,
        tmp_path / "clean.log",
        *sweeping,
        "--PersistentKernelManager.orphan_cleanup=remove",
    )
    try:
        assert await wait_for_log(cleaning, "removed orphan docker container"), cleaning.log_text()[
            -3000:
        ]
        assert await e2e_docker.leftovers(kernel_id) == []
        assert processes_with(kernel_id) == []
    finally:
        stop_server(cleaning)


@pytest.mark.asyncio
async def test_k8s_orphan_pods_are_listed_in_dry_run_then_removed(
    e2e_k8s: E2EBackend,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    backend = dataclasses.replace(
        e2e_k8s, env={**e2e_k8s.env, "GP_SERVER_K8S_NAMESPACES": K8S_KERNEL_NAMESPACE}
    )
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
        "--PersistentKernelManager.orphan_inventories=k8s",
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
        assert "orphan k8s pod" in dry.log_text()
        assert "dry run, not removed" in dry.log_text()
    finally:
        stop_server(dry)
    assert await backend.leftovers(kernel_id) != [], "dry-run removed the pod"

    cleaning = persistent_server(
        backend,
        store,
        tmp_path / "clean.log",
        *sweeping,
        "--PersistentKernelManager.orphan_cleanup=remove",
    )
    try:
        assert await wait_for_log(cleaning, "removed orphan k8s pod"), cleaning.log_text()[-3000:]
        assert await backend.leftovers(kernel_id) == []
    finally:
        stop_server(cleaning)
