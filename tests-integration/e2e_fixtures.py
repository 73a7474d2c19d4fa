"""pytest fixtures of the end-to-end suites: each backend as real Jupyter clients see it.

An ``e2e_<backend>`` fixture (``ssh``, ``docker``, ``docker_r``, ``swarm``, ``slurm``, ``yarn``,
``k8s``, ``crd``) installs that backend's kernelspecs with its ``jupyter <x>-spec install``
CLI into a temporary JUPYTER_PATH and returns an :class:`~e2e_helpers.E2EBackend`: the
settings a Jupyter Server or nbclient needs, and how to find what a kernel left behind.  Each
stands on its backend's own fixtures (``backends/<backend>_fixtures.py``).  Registered for every
suite by ``pytest_plugins`` in ``conftest.py``: the notebook, server and persistence suites ask
for them by name.

What is real: sshd, dockerd and Swarm, Slurm, the Kubernetes control plane.  EMULATED: YARN's
ResourceManager and the Spark operator; Kubernetes pods run through OUR node agent, not a
kubelet (see ``test_e2e_clusters.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import dockerd
from backends.crd_fixtures import crd_leftovers, install_crd_kernelspec, rbac_kubeconfig
from backends.dockerd import KERNEL_LABEL, DockerBackend
from backends.k8s_cluster import (
    KERNEL_IMAGE,
    K8sCluster,
    apply_manifests,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
    load_manifests,
    service_account_kubeconfig,
    wait_until_allowed,
)
from backends.slurm import SlurmCluster
from backends.slurm_kernels import install_kernelspecs
from backends.spark_operator_emulator import SparkOperatorEmulator
from backends.ssh_fixtures import SshKernelspec
from backends.system_packages import cannot_run
from backends.yarn_harness import YarnBackendSetup, yarn_backend
from e2e_helpers import LAUNCH_TIMEOUT, E2EBackend, Leftovers, install_spec, wait_for_nothing
from irkernel import irkernel_available
from jupyter_server_helpers import Server, processes_with, store_server, wait_until_gone

from gp_provisioners_core.images import DEFAULT_PREFIX, default_image

R_IMAGE = default_image("r", DEFAULT_PREFIX)  # build.py --image r


# -- ssh -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def e2e_ssh(ssh_kernelspec_install: SshKernelspec) -> E2EBackend:
    """Python and R ssh kernelspecs (three loopback sshd hosts) in the conftest's JUPYTER_PATH."""
    cluster = ssh_kernelspec_install.cluster
    jupyter_path = ssh_kernelspec_install.jupyter_path
    prefix = jupyter_path.parent.parent
    common = ["--remote-hosts", ",".join(cluster.entries()), "--python", sys.executable]
    common += ["--launch-timeout", LAUNCH_TIMEOUT]
    install_spec("jupyter-ssh-spec", prefix, "--kernel-name", "e2e_ssh_python", *common)
    r_spec = ""
    if irkernel_available():
        r_spec = "e2e_ssh_r"
        install_spec(
            "jupyter-ssh-spec", prefix, "--kernel-name", r_spec, "--language", "R", *common
        )
    env = {
        "JUPYTER_PATH": str(jupyter_path),
        "JUPYTER_DATA_DIR": str(prefix / "data"),
        "JUPYTER_CONFIG_DIR": str(prefix / "config"),
        "JUPYTER_RUNTIME_DIR": str(prefix / "runtime"),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "GP_SSH_KEY_FILE": str(cluster.key_file),
        "GP_SSH_KNOWN_HOSTS": str(cluster.known_hosts),
        "GP_SSH_CONFIG_FILE": "",
        "GP_SSH_USER": cluster.user,
        "KERNEL_USERNAME": "alice",
    }

    async def leftovers(kernel_id: str) -> list[str]:
        # The hosts are loopback aliases of this machine: their processes are ours to see.
        return await wait_until_gone(kernel_id)

    return E2EBackend(
        "ssh",
        "distributed-provisioner",
        "e2e_ssh_python",
        r_spec,
        jupyter_path,
        env,
        leftovers,
        shares_file_system=True,
        handle_key="assigned_host",
    )


# -- docker ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_r_image(docker_backend: DockerBackend) -> str:
    """The R kernel image in the private daemon: present, loaded from the cached tarball, or
    built by docker-images/build.py (skips only when a tool it needs is missing)."""
    build = dockerd._load_build_module()
    settings = build.BuildSettings(
        tag=R_IMAGE,
        image="r",
        cache_dir=Path(os.getenv("GP_IMAGE_CACHE_DIR", str(dockerd.CACHE_DIR / "docker-images"))),
        docker_host=docker_backend.base_url,
    )
    started = time.monotonic()
    try:
        outcome = build.ensure_image(settings)
    except build.BuildUnavailable as err:
        cannot_run(f"the R kernel image cannot be built here: {err}")
    print(f"{R_IMAGE}: {outcome} in {time.monotonic() - started:.1f}s")
    return R_IMAGE


def _docker_leftovers(base_url: str) -> Leftovers:
    async def leftovers(kernel_id: str) -> list[str]:
        import docker

        client = docker.DockerClient(base_url=base_url, timeout=30)
        label = f"{KERNEL_LABEL}={kernel_id}"
        deadline = time.monotonic() + 15
        while True:
            found = await asyncio.to_thread(
                client.containers.list, all=True, filters={"label": label}
            )
            if not found or time.monotonic() > deadline:
                return [f"container {c.name} ({c.status})" for c in found]
            await asyncio.sleep(0.2)

    return leftovers


@pytest.fixture(scope="session")
def e2e_docker(
    docker_backend: DockerBackend, tmp_path_factory: pytest.TempPathFactory
) -> E2EBackend:
    """A Python docker kernelspec (gp/kernel-py) in a temporary JUPYTER_PATH."""
    prefix = tmp_path_factory.mktemp("docker-e2e-jupyter")
    common = ["--launch-timeout", LAUNCH_TIMEOUT]
    install_spec(
        "jupyter-docker-spec",
        prefix,
        "--kernel-name",
        "e2e_docker_python",
        "--image-name",
        docker_backend.image,
        *common,
    )
    env = {
        "JUPYTER_PATH": str(prefix / "share" / "jupyter"),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "DOCKER_HOST": docker_backend.base_url,
        "KERNEL_USERNAME": "alice",
    }
    return E2EBackend(
        "docker",
        "docker-provisioner",
        "e2e_docker_python",
        "",
        prefix / "share" / "jupyter",
        env,
        _docker_leftovers(docker_backend.base_url),
        handle_key="container_id",
    )


@pytest.fixture(scope="session")
def e2e_docker_r(e2e_docker: E2EBackend, docker_r_image: str) -> E2EBackend:
    """The docker backend with an R kernelspec too: ``jupyter-docker-spec install --language R
    --image-name <the R image>``."""
    prefix = e2e_docker.jupyter_path.parent.parent
    install_spec(
        "jupyter-docker-spec",
        prefix,
        "--kernel-name",
        "e2e_docker_r",
        "--language",
        "R",
        "--image-name",
        docker_r_image,
        "--launch-timeout",
        LAUNCH_TIMEOUT,
    )
    return dataclasses.replace(e2e_docker, r_spec="e2e_docker_r")


@pytest.fixture(scope="session")
def e2e_swarm(e2e_docker: E2EBackend, docker_backend: DockerBackend) -> E2EBackend:
    """A ``jupyter docker-spec install --swarm`` kernelspec next to the docker one."""
    prefix = e2e_docker.jupyter_path.parent.parent
    name = "e2e_swarm_python"
    install_spec(
        "jupyter-docker-spec",
        prefix,
        "--kernel-name",
        name,
        "--swarm",
        "--image-name",
        docker_backend.image,
        "--launch-timeout",
        LAUNCH_TIMEOUT,
    )
    client = docker_backend.daemon.client()

    def find(kernel_id: str) -> list[str]:
        label = f"{KERNEL_LABEL}={kernel_id}"
        services = client.services.list(filters={"label": label})
        containers = client.containers.list(all=True, filters={"label": label})
        return [f"service {s.name}" for s in services] + [f"container {c.name}" for c in containers]

    async def leftovers(kernel_id: str) -> list[str]:
        return await wait_for_nothing(lambda: find(kernel_id))

    return dataclasses.replace(
        e2e_docker,
        name="swarm",
        provisioner_name="docker-swarm-provisioner",
        python_spec=name,
        leftovers=leftovers,
        handle_key="service_id",
    )


def persistent_server(backend: E2EBackend, store: Path, log: Path, *extra: str) -> Server:
    """A Jupyter Server with gp-server's persistent kernel manager on ``store``, in the
    backend's environment, its orphan sweep off (the persistence suites start it on purpose)."""
    env = {**backend.env, "GP_SERVER_ORPHAN_CLEANUP": "off"}
    return store_server(store.parent, store, log, *extra, env=env)


DEPLOY = Path(__file__).resolve().parents[1] / "packages" / "gp-k8s" / "deploy"
K8S_SERVER_NAMESPACE = "gp-e2e-system"
K8S_KERNEL_NAMESPACE = "gp-e2e-kernels"
CRD_SERVER_NAMESPACE = "gp-e2e-crd-system"
K8S_REFUSING = "e2e_k8s_refusing"
K8S_MISSING_IMAGE = "e2e_k8s_missing_image"
MISSING_IMAGE = "gp-test/no-such-image:1"  # the node agent holds only KERNEL_IMAGE


def base_env(jupyter_path: Path) -> dict[str, str]:
    """The settings every end-to-end backend shares: its JUPYTER_PATH, the response manager on
    127.0.0.1 (any free port), and the kernel's user."""
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
        base_env(jupyter_path),
        leftovers,
        shares_file_system=True,
        handle_key="job_id",
    )


# -- yarn (emulated ResourceManager) ---------------------------------------------------------------


def yarn_e2e_backend(setup: YarnBackendSetup, kernel_name: str) -> E2EBackend:
    """The end-to-end view of the kernelspec ``kernel_name`` that ``setup`` installed: its
    settings, and as leftovers the applications named after a kernel that are not finished,
    their master's process group and any process naming the kernel."""

    async def leftovers(kernel_id: str) -> list[str]:
        return await wait_for_nothing(
            lambda: setup.leftovers(kernel_id=kernel_id) + processes_with(kernel_id)
        )

    jupyter_path = setup.jupyter_root / "share" / "jupyter"
    return E2EBackend(
        "yarn",
        "yarn-provisioner",
        kernel_name,
        "",
        jupyter_path,
        {**base_env(jupyter_path), **setup.env()},
        leftovers,
        shares_file_system=True,
        handle_key="application_id",
    )


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

        yield yarn_e2e_backend(setup, name)


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
        {**base_env(jupyter_path), "GP_KUBECONFIG": str(kubeconfig)},
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
        {**base_env(jupyter_path), "GP_KUBECONFIG": str(kubeconfig)},
        leftovers,
        shares_file_system=True,
        handle_key="container_name",
    )
