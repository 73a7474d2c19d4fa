"""Many kernels at once on the real kube-apiserver, and a flat API request rate while idle.

Pods run through OUR NODE AGENT, NOT A KUBELET (each kernel is a local launcher + ipykernel
process pair).  GP_K8S_SCALE_KERNELS sets the count (default 50; on 2 shared cores a run of 50
takes a few minutes).  The idle request rate is counted at the client (every request of this
process's gp-k8s clients goes through CountingApiClient.call_api).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
from backends.k8s_bench import (
    IdleRequestRow,
    format_table,
    idle_requests_per_interval,
    shutdown_kernels,
    start_kernels,
)
from backends.k8s_cluster import (
    K8sCluster,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
    processes_of,
    run_idle_request_bench,
)
from jupyter_client.manager import AsyncKernelManager

from gp_k8s.client import REQUESTS
from gp_k8s.reaper import Reaper
from gp_provisioners_core.testing import execute, isolated_jupyter_paths

NAMESPACE = "gp-scale"
KERNELS = int(os.environ.get("GP_K8S_SCALE_KERNELS", "50"))
SMALL = min(5, KERNELS)


@pytest.fixture(scope="module")
def scale_spec(k8s_cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ensure_namespace(k8s_cluster.api_client(), NAMESPACE)
    root = tmp_path_factory.mktemp("jupyter-scale")
    with isolated_jupyter_paths(root) as prefix:
        yield install_kernelspec(
            prefix, "gp_k8s_scale", "--namespace", NAMESPACE, "--launch-timeout", "600"
        )


async def run_code(manager: object) -> str:
    client = manager.client()  # type: ignore[attr-defined]
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=300)
        return (await execute(client, "print(6 * 7)", timeout=300)).stdout.strip()
    finally:
        client.stop_channels()


async def test_many_kernels_ready_executed_shut_down_and_flat_idle_requests(
    k8s_cluster: K8sCluster, scale_spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))
    env = dict(os.environ, KERNEL_USERNAME="scale")
    managers: list[AsyncKernelManager] = []
    rows: list[IdleRequestRow] = []
    began = time.monotonic()
    try:
        for count in (SMALL, KERNELS):
            started = time.monotonic()
            managers += await start_kernels(scale_spec, count - len(managers), env)
            start_seconds = time.monotonic() - started
            outputs = await asyncio.gather(*(run_code(m) for m in managers))
            assert outputs == ["42"] * len(managers)
            rate = await idle_requests_per_interval(managers, intervals=3)
            rows.append(IdleRequestRow(count, rate, count, start_seconds))
        kernel_ids = [str(m.kernel_id) for m in managers]
    finally:
        shutdown_started = time.monotonic()
        await shutdown_kernels(managers, now=False)
        shutdown_seconds = time.monotonic() - shutdown_started
    print(
        f"\n{format_table(rows)}\nshutdown of {KERNELS}: {shutdown_seconds:.1f}s; "
        f"total {time.monotonic() - began:.1f}s; requests by kind: {REQUESTS.by_kind()}"
    )
    small, large = rows[0], rows[-1]
    # Flat: the cost of polling idle kernels does not grow with their number (the shared
    # watch may reconnect once in a while: allow one request per interval of noise).
    assert large.requests_per_interval <= small.requests_per_interval + 1.0, rows
    assert large.requests_per_interval < KERNELS / 5
    api = k8s_cluster.api_client()
    for kid in kernel_ids:  # stops return once the kernels stopped; the reaper sees pods go
        await Reaper.shared().settled(kid, 60)
    leftovers = [o for kid in kernel_ids for o in kernel_objects(api, kid)]
    assert leftovers == []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(processes_of(k) for k in kernel_ids):
        await asyncio.sleep(0.5)
    assert [p for k in kernel_ids for p in processes_of(k)] == []


def test_bench_entry_point_prints_the_table(k8s_cluster: K8sCluster) -> None:
    """What ``nox -s bench`` runs (python tests-integration/backends/k8s_cluster.py bench)."""
    table = run_idle_request_bench((1, 2))
    lines = table.splitlines()
    assert lines[0].startswith("kernels  gp-k8s requests/3s")
    assert [line.split()[0] for line in lines[1:]] == ["1", "2"]
