"""Launches that cannot succeed end in under 10 s with the cluster's own reason.

Real kube-apiserver and kube-scheduler; pods run through OUR NODE AGENT, NOT A KUBELET.  The
agent reports a missing image (any image not in its allow-list) as ErrImagePull, a container
that exits with its exit code and last log lines (FallbackToLogsOnError), and restarts of a
restartPolicy=Always pod as CrashLoopBackOff; the scheduler itself reports Unschedulable.
Each case also leaves nothing behind (pod, launch Secret).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

sys.path.insert(0, str(Path(__file__).parent))

from backends.k8s_cluster import (
    K8sCluster,
    ensure_namespace,
    install_kernelspec,
    k8s_cluster,
    kernel_objects,
    processes_of,
)

from gp_provisioners_core.errors import InvalidLaunchParameterError, LaunchFailedError
from gp_provisioners_core.testing import isolated_jupyter_paths

__all__ = ["k8s_cluster"]

NAMESPACE = "gp-failfast"
FAIL_FAST_SECONDS = 10.0
CRASHER = """\
import sys
for i in range(40):
    print(f"starting step {i}")
print("Traceback (most recent call last):")
print("ModuleNotFoundError: No module named 'fancy_kernel_dependency'")
sys.exit(3)
"""


@pytest.fixture(scope="module")
def failfast_specs(
    k8s_cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    ensure_namespace(k8s_cluster.api_client(), NAMESPACE)
    root = tmp_path_factory.mktemp("jupyter-failfast")
    crasher = root / "crasher.py"
    crasher.write_text(CRASHER)
    always = root / "always.yaml"
    always.write_text("apiVersion: v1\nkind: Pod\nspec:\n  restartPolicy: Always\n")
    common = ["--namespace", NAMESPACE, "--launch-timeout", "60"]
    with isolated_jupyter_paths(root) as prefix:
        yield {
            "main": install_kernelspec(
                prefix,
                "gp_k8s_failfast",
                *common,
                "--allowed-images",
                "gp-test/does-not-exist:1",
                "--max-cpus",
                "64",
            ),
            "crash": install_kernelspec(
                prefix, "gp_k8s_crash", *common, "--image-launcher", str(crasher)
            ),
            "crashloop": install_kernelspec(
                prefix,
                "gp_k8s_crashloop",
                *common,
                "--image-launcher",
                str(crasher),
                "--pod-template",
                str(always),
            ),
        }


@pytest.fixture
def admin_kubeconfig(k8s_cluster: K8sCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))


async def failed_launch(kernel_name: str, **env: str) -> tuple[str, float, str]:
    """Start a kernel that must fail; return the error text, the seconds it took, its id."""
    manager = AsyncKernelManager(kernel_name=kernel_name)
    started = time.monotonic()
    with pytest.raises(LaunchFailedError) as failed:
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="failfast", **env))
    return str(failed.value), time.monotonic() - started, str(manager.kernel_id)


async def assert_nothing_left(k8s_cluster: K8sCluster, kernel_id: str) -> None:
    assert kernel_objects(k8s_cluster.api_client(), kernel_id) == []
    deadline = time.monotonic() + 10
    while processes_of(kernel_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(kernel_id) == []


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_missing_image(k8s_cluster: K8sCluster, failfast_specs: dict[str, str]) -> None:
    message, seconds, kernel_id = await failed_launch(
        failfast_specs["main"], KERNEL_IMAGE="gp-test/does-not-exist:1"
    )
    assert seconds < FAIL_FAST_SECONDS, message
    assert "ErrImagePull" in message or "ImagePullBackOff" in message
    assert "gp-test/does-not-exist:1" in message
    await assert_nothing_left(k8s_cluster, kernel_id)


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_unschedulable_request(
    k8s_cluster: K8sCluster, failfast_specs: dict[str, str]
) -> None:
    message, seconds, kernel_id = await failed_launch(failfast_specs["main"], KERNEL_CPUS="32")
    assert seconds < FAIL_FAST_SECONDS, message
    assert "Unschedulable" in message
    assert "Insufficient cpu" in message  # the scheduler's own words
    await assert_nothing_left(k8s_cluster, kernel_id)


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_crashing_container(k8s_cluster: K8sCluster, failfast_specs: dict[str, str]) -> None:
    message, seconds, kernel_id = await failed_launch(failfast_specs["crash"])
    assert seconds < FAIL_FAST_SECONDS, message
    assert "exited with code 3" in message
    assert "No module named 'fancy_kernel_dependency'" in message  # last log lines
    await assert_nothing_left(k8s_cluster, kernel_id)


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_crash_loop(k8s_cluster: K8sCluster, failfast_specs: dict[str, str]) -> None:
    message, seconds, kernel_id = await failed_launch(failfast_specs["crashloop"])
    assert seconds < FAIL_FAST_SECONDS, message
    assert "CrashLoopBackOff" in message
    assert "last exit code 3" in message
    await assert_nothing_left(k8s_cluster, kernel_id)


@pytest.mark.usefixtures("admin_kubeconfig")
@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KERNEL_UID": "00"}, "KERNEL_UID='00'"),
        ({"KERNEL_IMAGE": "evil/miner:latest"}, "KERNEL_IMAGE='evil/miner:latest'"),
        ({"KERNEL_NAMESPACE": "kube-system"}, "KERNEL_NAMESPACE='kube-system'"),
        ({"KERNEL_SERVICE_ACCOUNT_NAME": "admin"}, "KERNEL_SERVICE_ACCOUNT_NAME='admin'"),
        ({"KERNEL_MEMORY": "1Ti"}, "KERNEL_MEMORY='1Ti'"),
    ],
)
async def test_refused_parameters_create_nothing(
    k8s_cluster: K8sCluster, failfast_specs: dict[str, str], env: dict[str, str], named: str
) -> None:
    manager = AsyncKernelManager(kernel_name=failfast_specs["main"])
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="failfast", **env))
    assert named in str(refused.value)
    assert str(manager.kernel_id) in str(refused.value)
    assert refused.value.status_code == 400
    assert kernel_objects(k8s_cluster.api_client(), str(manager.kernel_id)) == []
