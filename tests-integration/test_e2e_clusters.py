"""Real Jupyter clients end to end on the Slurm, YARN, Kubernetes and Spark-operator backends.

- nbclient runs the notebook of ``test_notebooks.py`` (cells, a matplotlib plot saved to PNG and
  displayed, an error cell, a cell after it) on a Python kernel of each backend; afterwards
  nothing of the kernel is left (no Slurm job or process naming it; no live YARN application
  or master process; no pod, launch Secret or namespace labelled with it; no SparkApplication
  or driver pod);
- a real Jupyter Server (subprocess, its environment passed explicitly) with Kubernetes
  kernelspecs: ``GET /api/kernelspecs``, a kernel's whole life through REST and the websocket
  with nothing left in the cluster, a refused user, and a launch that fails with the phase and
  the cluster's reason.

What is real and what is not: Slurm is real (slurmctld, slurmd, munged on loopback;
``backends/slurm.py``).  YARN's ResourceManager is EMULATED (``backends/yarn_emulator.py``,
REST v1, with a spark-submit stand-in); no real ResourceManager runs here.  Kubernetes is a
real kube-apiserver, controller-manager and scheduler, but pods run through OUR NODE AGENT
(``backends/node_agent.py``), NOT A KUBELET: it runs each pod's container command as a local
process.  The Spark operator is EMULATED too (``backends/spark_operator_emulator.py``).  So on
every backend here the kernel is a local process of this venv's Python (matplotlib included),
and the PNG it saves is on this file system.  The Kubernetes and Spark-operator clients
authenticate as the service accounts of the shipped RBAC manifests (gp-k8s's
``rbac-shared-namespace.yaml``, gp-crd's ``rbac-spark-operator.yaml``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends.k8s_cluster import (
    K8sCluster,
    raw,
)
from e2e_fixtures import K8S_KERNEL_NAMESPACE, K8S_MISSING_IMAGE, K8S_REFUSING, MISSING_IMAGE
from e2e_helpers import (
    E2EBackend,
    run_plot_notebook,
    use_backend,
    wait_for_nothing,
)
from jupyter_server_helpers import (
    Server,
    drive_kernel_lifecycle,
    start_server,
    stop_server,
)

# -- (a) the notebook on a Python kernel of each backend ------------------------------------------


@pytest.fixture(params=["slurm", "yarn", "k8s", "crd"])
def cluster_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> E2EBackend:
    """Each backend in turn, with this process's environment pointing at it for the test."""
    if request.param == "crd":
        request.getfixturevalue("crd_nothing_left")  # none before, none after, no operator error
    return use_backend(request.getfixturevalue(f"e2e_{request.param}"), monkeypatch)


@pytest.mark.asyncio
async def test_notebook_with_plot_and_error_cell(
    cluster_backend: E2EBackend, tmp_path: Path
) -> None:
    spec = cluster_backend.spec_json(cluster_backend.python_spec)
    provisioner = spec["metadata"]["kernel_provisioner"]["provisioner_name"]
    assert provisioner == cluster_backend.provisioner_name
    await run_plot_notebook(cluster_backend, tmp_path)


# -- (b) a real Jupyter Server with Kubernetes kernelspecs -----------------------------------------


@pytest.fixture(scope="module")
def k8s_server(
    e2e_k8s: E2EBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[E2EBackend, Server]]:
    """A Jupyter Server whose environment holds the k8s settings (JUPYTER_PATH, GP_KUBECONFIG
    of the RBAC service account, the response address), passed explicitly."""
    folder = tmp_path_factory.mktemp("server-k8s")
    server = start_server(folder, folder / "server.log", env=e2e_k8s.env)
    try:
        yield e2e_k8s, server
    finally:
        stop_server(server)


def _kernel_pods(cluster: K8sCluster) -> list[str]:
    """Every pod of the k8s kernels' namespace."""
    pods = raw(cluster.api_client(), "GET", f"/api/v1/namespaces/{K8S_KERNEL_NAMESPACE}/pods")
    return [f"pod {item['metadata']['name']}" for item in pods.get("items") or []]


@pytest.mark.asyncio
async def test_k8s_server_lists_our_kernelspec(k8s_server: tuple[E2EBackend, Server]) -> None:
    backend, server = k8s_server
    code, specs = await server.call("GET", "/api/kernelspecs")
    assert code == 200
    spec = specs["kernelspecs"][backend.python_spec]["spec"]
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "kubernetes-provisioner"


@pytest.mark.asyncio
async def test_k8s_server_start_execute_interrupt_restart_delete(
    k8s_server: tuple[E2EBackend, Server], k8s_cluster: K8sCluster
) -> None:
    backend, server = k8s_server
    kernel_id = await drive_kernel_lifecycle(server, backend.python_spec)
    assert await backend.leftovers(kernel_id) == []
    assert await wait_for_nothing(lambda: _kernel_pods(k8s_cluster)) == []


@pytest.mark.asyncio
async def test_k8s_server_refused_user_gets_403_and_no_pod(
    k8s_server: tuple[E2EBackend, Server], k8s_cluster: K8sCluster
) -> None:
    _, server = k8s_server
    code, body = await server.call("POST", "/api/kernels", {"name": K8S_REFUSING})
    assert code == 403
    assert "'alice' is not authorized" in body["message"]
    assert (await server.call("GET", "/api/kernels"))[1] == []
    assert _kernel_pods(k8s_cluster) == []


@pytest.mark.asyncio
async def test_k8s_server_failed_launch_answers_with_phase_and_reason(
    k8s_server: tuple[E2EBackend, Server], k8s_cluster: K8sCluster
) -> None:
    backend, server = k8s_server
    code, body = await server.call("POST", "/api/kernels", {"name": K8S_MISSING_IMAGE})
    assert code == 500
    message = body["message"]
    # The pod never runs: the launcher's connection info is what the launch waited for.
    failed = re.search(r"Kernel (\S+) failed in launch phase 'connection-info-received'", message)
    assert failed, message
    assert "ErrImagePull" in message or "ImagePullBackOff" in message  # the node's reason
    assert MISSING_IMAGE in message
    assert (await server.call("GET", "/api/kernels"))[1] == []
    assert await backend.leftovers(failed.group(1)) == []
    assert await wait_for_nothing(lambda: _kernel_pods(k8s_cluster)) == []
