"""Every kernelspec gateway_provisioners 0.5.0's installers write (installed from PyPI into a venv
of its own) either runs on our provisioners or is refused in pre_launch, before anything is
submitted, naming the spec, the problem and the rewrite command; the rewritten spec passes
pre_launch, and one rewritten spec per backend we can run here runs a cell end to end.

What runs end to end here: the distributed provisioner (this machine), YARN (the RM
emulator), Docker and Swarm (the private dockerd with the kernel image of docker-images/,
installed by 0.5.0 with ``--image-name`` naming it) and Kubernetes (the real control plane, the
pod run as a container of that dockerd by a node agent of its own while the default node is
cordoned).  The Spark-operator spec is pre_launched only: its rewrite needs pyspark in the image
(see K8S_SPECS).  Rewritten Scala specs carry our Toree launcher and pass pre_launch (Scala
kernels run end to end in the GP_TEST_SCALA suites).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory

sys.path.insert(0, str(Path(__file__).parent))
from backends.dockerd import KERNEL_LABEL, DockerBackend, docker_backend  # noqa: F401 - fixture
from backends.k8s_cluster import NODE_NAME, K8sCluster, k8s_cluster, kernel_objects  # noqa: F401
from backends.yarn_harness import YarnBackendSetup, yarn_backend
from gp050_helpers import (
    GP_CRASHES,
    WRITABLE,
    Unavailable,
    gp050_python,
    gp_install,
    kernels_in,
    read_spec,
)

from gp_provisioners_core.errors import KernelSpecConfigError
from gp_provisioners_core.testing.kernels import execute, isolated_jupyter_paths

MIGRATE = str(Path(sys.executable).with_name("jupyter-gp-migrate-specs"))
USER = "alice"
# Specs our provisioners cannot run even after the rewrite, and why (the error says so).
NOT_RUNNABLE = {
    "yarn_dask_python": "Dask-on-YARN",
}


@pytest.fixture(scope="module")
def gp050() -> Path:
    try:
        return gp050_python()
    except Unavailable as err:
        pytest.skip(f"gateway_provisioners 0.5.0 cannot be installed from PyPI here: {err}")


@pytest.fixture(scope="module")
def old_specs(gp050: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every spec 0.5.0 can write, written by 0.5.0 itself."""
    prefix = tmp_path_factory.mktemp("gp050-specs")
    for command, flags in WRITABLE:
        done = gp_install(gp050, command, flags, prefix)
        assert done.returncode == 0, f"{command}-spec install {flags}: {done.stderr[-800:]}"
    return kernels_in(prefix)


OLD_NAMES = [
    "ssh_python",
    "ssh_python_spark",
    "ssh_scala",
    "ssh_scala_spark",
    "k8s_python",
    "k8s_python_spark",
    "k8s_r",
    "k8s_r_spark",
    "k8s_scala",
    "k8s_scala_spark",
    "k8s_python_spark_operator",
    "docker_python",
    "docker_r",
    "docker_scala",
    "python_swarm",
    "yarn_spark_python",
    "yarn_spark_scala",
    "yarn_dask_python",
]


@pytest.fixture(autouse=True)
def server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_YARN_ENDPOINT", "http://127.0.0.1:9")  # pre_launch never calls it
    monkeypatch.delenv("GP_ALLOW_LEGACY_LAUNCHERS", raising=False)


async def pre_launch(folder: Path) -> Any:
    """Our provisioner for the spec in ``folder``, as jupyter_client makes it, after its
    pre_launch (whose registration is then withdrawn: nothing is launched)."""
    ksm = KernelSpecManager(kernel_dirs=[str(folder.parent)])
    spec = ksm.get_kernel_spec(folder.name)
    manager = AsyncKernelManager(kernel_name=folder.name, kernel_spec_manager=ksm)
    kernel_id = str(uuid.uuid4())
    factory = KernelProvisionerFactory.instance()
    provisioner = factory.create_provisioner_instance(kernel_id, spec, manager)
    assert type(provisioner).__module__.startswith("gp_"), type(provisioner)
    await provisioner.pre_launch(env={**os.environ, "KERNEL_USERNAME": USER})
    provisioner.response_manager.unregister_event(kernel_id)
    return provisioner


def test_all_specs_were_written(old_specs: Path) -> None:
    assert sorted(p.name for p in old_specs.iterdir()) == sorted(OLD_NAMES)


@pytest.mark.parametrize("name", OLD_NAMES)
async def test_old_spec_is_refused_then_rewritten(
    name: str, old_specs: Path, tmp_path: Path
) -> None:
    folder = tmp_path / name
    shutil.copytree(old_specs / name, folder)
    with pytest.raises(KernelSpecConfigError) as refused:
        await pre_launch(folder)
    message = str(refused.value)
    assert f"kernelspec {name!r}" in message
    assert str(folder) in message

    done = subprocess.run([MIGRATE, str(folder)], capture_output=True, text=True)
    if name == "yarn_dask_python":
        assert "gp-migrate-specs" not in message
        assert done.returncode == 1
        assert "Dask-on-YARN" in done.stderr
        return
    assert f"jupyter gp-migrate-specs {name}" in message
    assert done.returncode == 0, done.stderr
    assert f"{name}: rewritten" in done.stdout
    assert list(folder.glob(".gp-migrate-backup-*/kernel.json"))
    spec = read_spec(folder)
    assert "${" not in str(spec["argv"])
    if name in NOT_RUNNABLE:
        with pytest.raises(KernelSpecConfigError, match=NOT_RUNNABLE[name]):
            await pre_launch(folder)
        return
    provisioner = await pre_launch(folder)
    assert provisioner.kernel_spec.argv == spec["argv"]


def test_r_specs_0_5_0_cannot_write_are_written_by_ours_with_its_names(
    gp050: Path, tmp_path: Path
) -> None:
    from gp_distributed.cli import main as ssh_spec
    from gp_yarn.cli import main as yarn_spec

    for command, flags in GP_CRASHES:
        crashed = gp_install(gp050, command, flags, tmp_path / "gp")
        assert crashed.returncode != 0
        assert "kernel-launchers/r" in crashed.stderr
    ours = tmp_path / "ours"
    ssh_spec(["install", f"--prefix={ours}", "--language", "R"])
    ssh_spec(
        ["install", f"--prefix={ours}", "--language", "R", "--spark", "--spark-init-mode=none"]
    )
    yarn_spec(["install", f"--prefix={ours}", "--language", "R"])
    names = {p.name: read_spec(p)["display_name"] for p in kernels_in(ours).iterdir()}
    assert names == {
        "ssh_r": "R SSH",
        "ssh_r_spark": "R SSH (with Spark)",
        "yarn_spark_r": "Spark R (YARN Cluster)",
    }


# -- end to end: one rewritten spec per backend that runs here -----------------------------------


async def run_cell(manager: AsyncKernelManager, code: str) -> str:
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        return (await execute(client, code)).stdout
    finally:
        client.stop_channels()


async def start_run_stop(kernel_name: str, env: dict[str, str]) -> str:
    manager = AsyncKernelManager(kernel_name=kernel_name)
    await manager.start_kernel(env={**os.environ, "KERNEL_USERNAME": USER, **env})
    try:
        return await run_cell(manager, "print(6 * 7)")
    finally:
        await manager.shutdown_kernel(now=True)


async def test_rewritten_ssh_spec_runs_on_this_machine(
    old_specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GP_REMOTE_HOSTS", "localhost")
    # 0.5.0's ssh spec runs a bare "python" (the rewrite keeps it): this environment's
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    with isolated_jupyter_paths(tmp_path) as prefix:
        folder = kernels_in(prefix) / "ssh_python"
        shutil.copytree(old_specs / "ssh_python", folder)
        with pytest.raises(KernelSpecConfigError, match="gp-migrate-specs ssh_python"):
            await start_run_stop("ssh_python", {})
        assert subprocess.run([MIGRATE, "ssh_python"], capture_output=True).returncode == 0
        assert (await start_run_stop("ssh_python", {})).strip() == "42"


@pytest.fixture(scope="module")
def yarn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnBackendSetup]:
    root = tmp_path_factory.mktemp("gp050-yarn")
    with yarn_backend(root, ha=False) as setup:
        yield setup


async def test_rewritten_yarn_spec_runs_on_the_rm_emulator(
    gp050: Path, yarn: YarnBackendSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in yarn.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GP_YARN_ENDPOINT")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with isolated_jupyter_paths(tmp_path / "jupyter") as prefix:
        # no --yarn-endpoint: 0.5.0 then writes an unfilled spec (see the test below); the
        # emulator's yarn-site.xml (HADOOP_CONF_DIR) names the RM
        flags = [f"--spark-home={yarn.spark_home}", "--spark-init-mode=none"]
        done = gp_install(gp050, "yarn", flags, prefix)
        assert done.returncode == 0, done.stderr[-800:]
        with pytest.raises(KernelSpecConfigError, match="gp-migrate-specs yarn_spark_python"):
            await start_run_stop("yarn_spark_python", {})
        migrated = subprocess.run([MIGRATE, "yarn_spark_python"], capture_output=True, text=True)
        assert migrated.returncode == 0, migrated.stderr
        assert read_spec(kernels_in(prefix) / "yarn_spark_python")["env"]["SPARK_HOME"] == str(
            yarn.spark_home
        )
        assert (await start_run_stop("yarn_spark_python", {})).strip() == "42"
    assert await yarn.wait_all_stopped() == []


async def test_yarn_spec_0_5_0_left_unfilled_is_refused_with_what_to_do(
    gp050: Path, tmp_path: Path
) -> None:
    done = gp_install(gp050, "yarn", ["--yarn-endpoint=http://127.0.0.1:9"], tmp_path)
    assert done.returncode == 0  # 0.5.0 swallows its own AttributeError
    folder = kernels_in(tmp_path) / "yarn_spark_python"
    assert "${install_dir}" in read_spec(folder)["argv"][0]
    with pytest.raises(KernelSpecConfigError) as refused:
        await pre_launch(folder)
    assert "template placeholders ${install_dir}" in str(refused.value)
    assert "Install it again with this backend's jupyter <x>-spec install" in str(refused.value)


# Docker and Swarm: 0.5.0's specs naming the kernel image, rewritten, run on the private dockerd.
CONTAINER_SPECS = {
    "docker_python": ["--kernel-name", "docker_python"],
    "python_swarm": ["--swarm", "--kernel-name", "python_swarm"],
}


def docker_leftovers(backend: DockerBackend, kernel_id: str) -> list[str]:
    client = backend.daemon.client()
    label = f"{KERNEL_LABEL}={kernel_id}"
    services = client.services.list(filters={"label": label})
    containers = client.containers.list(all=True, filters={"label": label})
    return [f"service {s.name}" for s in services] + [f"container {c.name}" for c in containers]


@pytest.mark.parametrize("name", list(CONTAINER_SPECS))
async def test_rewritten_container_spec_runs_on_dockerd(
    name: str,
    gp050: Path,
    docker_backend: DockerBackend,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_backend.base_url)
    monkeypatch.setenv("GP_RESPONSE_PORT", "0")
    with isolated_jupyter_paths(tmp_path) as prefix:
        flags = [*CONTAINER_SPECS[name], "--image-name", docker_backend.image]
        done = gp_install(gp050, "docker", flags, prefix)
        assert done.returncode == 0, done.stderr[-800:]
        with pytest.raises(KernelSpecConfigError, match=f"gp-migrate-specs {name}"):
            await start_run_stop(name, {})
        migrated = subprocess.run([MIGRATE, name], capture_output=True, text=True)
        assert migrated.returncode == 0, migrated.stderr
        spec = read_spec(kernels_in(prefix) / name)
        assert spec["metadata"]["kernel_provisioner"]["config"]["image_name"] == (
            docker_backend.image
        )
        manager = AsyncKernelManager(kernel_name=name)
        await manager.start_kernel(env={**os.environ, "KERNEL_USERNAME": USER})
        kernel_id = str(manager.kernel_id)
        try:
            assert (await run_cell(manager, "print(6 * 7)")).strip() == "42"
        finally:
            await manager.shutdown_kernel(now=True)
    deadline = time.monotonic() + 30
    while (left := docker_leftovers(docker_backend, kernel_id)) and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
    assert left == []


# Kubernetes: 0.5.0's k8s_python spec naming the kernel image, rewritten, on a node whose agent
# runs pods as containers of the private dockerd (the default node, whose agent runs pods as
# local processes, is cordoned meanwhile: the spec selects no node).
GP050_DOCKER_NODE = "gp-node-gp050-docker"


@contextlib.contextmanager
def cordoned(cluster: K8sCluster, node: str) -> Iterator[None]:
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(cluster.api_client())

    def patch(unschedulable: bool) -> None:
        core.patch_node(node, {"spec": {"unschedulable": unschedulable}})

    patch(True)
    try:
        yield
    finally:
        patch(False)


K8S_SPECS: dict[str, list[str]] = {"k8s_python": []}
"""The Spark-operator spec (``--crd --spark``) is not run here: its rewrite starts the Spark
context lazily (0.5.0's spec carries no mode), which needs pyspark in the image, and the suite's
kernel image has none; it stays pre_launch-only (test_old_spec_is_refused_then_rewritten)."""


@pytest.mark.parametrize("name", list(K8S_SPECS))
async def test_rewritten_k8s_spec_runs_on_a_docker_node(
    name: str,
    gp050: Path,
    k8s_cluster: K8sCluster,  # noqa: F811 - the imported fixture
    docker_backend: DockerBackend,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))
    monkeypatch.setenv("GP_RESPONSE_PORT", "0")
    agent = k8s_cluster.add_node_agent(
        GP050_DOCKER_NODE, extra=("--docker-host", docker_backend.base_url)
    )
    try:
        k8s_cluster.wait_node_ready(GP050_DOCKER_NODE)
        with cordoned(k8s_cluster, NODE_NAME), isolated_jupyter_paths(tmp_path) as prefix:
            flags = [*K8S_SPECS[name], "--image-name", docker_backend.image]
            done = gp_install(gp050, "k8s", flags, prefix)
            assert done.returncode == 0, done.stderr[-800:]
            with pytest.raises(KernelSpecConfigError, match=f"gp-migrate-specs {name}"):
                await start_run_stop(name, {})
            migrated = subprocess.run([MIGRATE, name], capture_output=True, text=True)
            assert migrated.returncode == 0, migrated.stderr
            print(f"{name}: {migrated.stdout.strip()}")
            manager = AsyncKernelManager(kernel_name=name)
            await manager.start_kernel(env={**os.environ, "KERNEL_USERNAME": USER})
            kernel_id = str(manager.kernel_id)
            try:
                assert (await run_cell(manager, "print(6 * 7)")).strip() == "42"
            finally:
                await manager.shutdown_kernel(now=True)
            api = k8s_cluster.api_client()
            deadline = time.monotonic() + 60
            while (left := kernel_objects(api, kernel_id)) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert left == []
    finally:
        k8s_cluster.remove_node_agent(agent)
