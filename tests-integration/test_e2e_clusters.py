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
    KERNEL_IMAGE,
    K8sCluster,
    apply_manifests,
    ensure_namespace,
    install_kernelspec,
    k8s_cluster,
    kernel_objects,
    load_manifests,
    raw,
    service_account_kubeconfig,
    wait_until_allowed,
)
from backends.slurm import SlurmCluster
from backends.slurm_kernels import install_kernelspecs
from backends.spark_operator_emulator import SparkOperatorEmulator
from backends.yarn_harness import yarn_backend
from crd_fixtures import (
    crd_leftovers,
    install_crd_kernelspec,
    nothing_left,
    rbac_kubeconfig,
    spark_operator,
)
from e2e_helpers import (
    LAUNCH_TIMEOUT,
    E2EBackend,
    Leftovers,
    run_plot_notebook,
    use_backend,
    wait_for_nothing,
)
from jupyter_server_helpers import (
    Server,
    drive_kernel_lifecycle,
    processes_with,
    start_server,
    stop_server,
)

pytest_plugins = ["backends.slurm_fixtures"]
__all__ = ["k8s_cluster", "nothing_left", "spark_operator"]

DEPLOY = Path(__file__).resolve().parents[1] / "packages" / "gp-k8s" / "deploy"
K8S_SERVER_NAMESPACE = "gp-e2e-system"
K8S_KERNEL_NAMESPACE = "gp-e2e-kernels"
CRD_SERVER_NAMESPACE = "gp-e2e-crd-system"
K8S_REFUSING = "e2e_k8s_refusing"
K8S_MISSING_IMAGE = "e2e_k8s_missing_image"
MISSING_IMAGE = "gp-test/no-such-image:1"  # the node agent holds only KERNEL_IMAGE


def _base_env(jupyter_path: Path) -> dict[str, str]:
    return {
        "JUPYTER_PATH": str(jupyter_path),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "KERNEL_USERNAME": "alice",
    }


# -- slurm -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def e2e_slurm(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> E2EBackend:
    """The sbatch kernelspec of ``jupyter-slurm-spec install`` on the real Slurm cluster."""
    root = tmp_path_factory.mktemp("slurm-e2e-jupyter")
    specs = install_kernelspecs(slurm_cluster, root)

    def find(kernel_id: str) -> list[str]:
        # A kernel's job is named after its kernel id.
        jobs = [j for j in slurm_cluster.active_jobs() if j.split(None, 2)[-1] == kernel_id]
        return [f"job {job}" for job in jobs] + processes_with(kernel_id)

    async def leftovers(kernel_id: str) -> list[str]:
        return await wait_for_nothing(lambda: find(kernel_id))

    jupyter_path = root / "share" / "jupyter"
    return E2EBackend(
        "slurm",
        "slurm-provisioner",
        specs.cli,
        "",
        jupyter_path,
        _base_env(jupyter_path),
        leftovers,
        shares_file_system=True,
        handle_key="job_id",
    )


# -- yarn (emulated ResourceManager) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def e2e_yarn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EBackend]:
    """A ``jupyter yarn-spec install`` kernelspec naming one emulated ResourceManager."""
    with yarn_backend(tmp_path_factory.mktemp("yarn-e2e"), ha=False) as setup:
        name = setup.install(
            "e2e_yarn_python",
            "--yarn-endpoint",
            setup.endpoints[0],
            "--launch-timeout",
            LAUNCH_TIMEOUT,
        )

        def find(kernel_id: str) -> list[str]:
            # Applications named after the kernel that are not finished, their master's
            # process group, and any process naming the kernel.
            return setup.leftovers(kernel_id=kernel_id) + processes_with(kernel_id)

        async def leftovers(kernel_id: str) -> list[str]:
            return await wait_for_nothing(lambda: find(kernel_id))

        jupyter_path = setup.jupyter_root / "share" / "jupyter"
        yield E2EBackend(
            "yarn",
            "yarn-provisioner",
            name,
            "",
            jupyter_path,
            {**_base_env(jupyter_path), **setup.env()},
            leftovers,
            shares_file_system=True,
            handle_key="application_id",
        )


# -- k8s (real control plane, our node agent) ------------------------------------------------------


def _k8s_leftovers(cluster: K8sCluster) -> Leftovers:
    api = cluster.api_client()

    async def leftovers(kernel_id: str) -> list[str]:
        return await wait_for_nothing(
            lambda: kernel_objects(api, kernel_id) + processes_with(kernel_id)
        )

    return leftovers


@pytest.fixture(scope="module")
def e2e_k8s(k8s_cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory) -> E2EBackend:
    """``jupyter k8s-spec install`` kernelspecs for one shared kernel namespace; the client
    authenticates as the service account of the shipped ``rbac-shared-namespace.yaml``."""
    admin = k8s_cluster.api_client()
    ensure_namespace(admin, K8S_SERVER_NAMESPACE)
    ensure_namespace(admin, K8S_KERNEL_NAMESPACE)
    docs = load_manifests(
        DEPLOY / "rbac-shared-namespace.yaml",
        {"jupyter": K8S_SERVER_NAMESPACE, "kernels": K8S_KERNEL_NAMESPACE},
        cluster_suffix=f"-{K8S_SERVER_NAMESPACE}",
    )
    apply_manifests(admin, docs)
    account = f"system:serviceaccount:{K8S_SERVER_NAMESPACE}:gateway-provisioners"
    wait_until_allowed(admin, account, "create", "pods", K8S_KERNEL_NAMESPACE)
    kubeconfig = service_account_kubeconfig(
        k8s_cluster, K8S_SERVER_NAMESPACE, "gateway-provisioners"
    )

    prefix = tmp_path_factory.mktemp("k8s-e2e-jupyter")
    common = ("--namespace", K8S_KERNEL_NAMESPACE, "--launch-timeout", LAUNCH_TIMEOUT)
    name = install_kernelspec(prefix, "e2e_k8s_python", *common)
    install_kernelspec(prefix, K8S_REFUSING, *common, "--unauthorized-users", "alice")
    install_kernelspec(prefix, K8S_MISSING_IMAGE, *common, "--image-name", MISSING_IMAGE)
    jupyter_path = prefix / "share" / "jupyter"
    return E2EBackend(
        "k8s",
        "kubernetes-provisioner",
        name,
        "",
        jupyter_path,
        {**_base_env(jupyter_path), "GP_KUBECONFIG": str(kubeconfig)},
        _k8s_leftovers(k8s_cluster),
        shares_file_system=True,
        handle_key="container_name",
    )


# -- crd (real control plane, emulated Spark operator, our node agent) ----------------------------


@pytest.fixture(scope="module")
def e2e_crd(
    k8s_cluster: K8sCluster,
    spark_operator: SparkOperatorEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> E2EBackend:
    """A Spark-operator kernelspec (``install_crd_kernelspec``); the client authenticates as
    the service account of gp-crd's shipped RBAC (``deploy/rbac-spark-operator.yaml``)."""
    prefix = tmp_path_factory.mktemp("crd-e2e-jupyter")
    name = install_crd_kernelspec(
        prefix, "e2e_crd_python", "--image-name", KERNEL_IMAGE, "--launch-timeout", LAUNCH_TIMEOUT
    )
    kubeconfig = rbac_kubeconfig(k8s_cluster, CRD_SERVER_NAMESPACE)
    api = k8s_cluster.api_client()  # the admin's view, for the leftovers check

    async def leftovers(kernel_id: str) -> list[str]:
        # Every SparkApplication and pod of the kernel namespace, and anything labelled with
        # or naming the kernel.
        return await wait_for_nothing(
            lambda: crd_leftovers(api) + kernel_objects(api, kernel_id) + processes_with(kernel_id)
        )

    jupyter_path = prefix / "share" / "jupyter"
    return E2EBackend(
        "crd",
        "spark-operator-provisioner",
        name,
        "",
        jupyter_path,
        {**_base_env(jupyter_path), "GP_KUBECONFIG": str(kubeconfig)},
        leftovers,
        shares_file_system=True,
        handle_key="container_name",
    )


# -- (a) the notebook on a Python kernel of each backend ------------------------------------------


@pytest.fixture(params=["slurm", "yarn", "k8s", "crd"])
def cluster_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> E2EBackend:
    """Each backend in turn, with this process's environment pointing at it for the test."""
    if request.param == "crd":
        request.getfixturevalue("nothing_left")  # none before, none after, no operator error
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
