"""Launches that cannot succeed end in under 10 s with the cluster's own reason, and stopping
a kernel does not wait for its node to tear the pod down.

Real kube-apiserver and kube-scheduler; pods run through OUR NODE AGENT, NOT A KUBELET.  The
agent reports a missing image (any image not in its allow-list) as ErrImagePull (or
ErrImageNeverPull), a container that exits with its exit code and last log lines
(FallbackToLogsOnError), and restarts of a restartPolicy=Always pod as CrashLoopBackOff; the
scheduler itself reports Unschedulable.  Faults injected through pod annotations (see
node_agent.py) emulate what a real kubelet does: a sandbox that cannot be created (the pod stays
Pending, a FailedCreatePodSandBox warning repeats) and a slow teardown (a deleted pod object
stays 30 s after its container stopped).  Each case also leaves nothing behind (pod, launch
Secret), in the background where the node is slow.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends.k8s_cluster import (
    K8sCluster,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
    processes_of,
    raw,
)
from jupyter_client.manager import AsyncKernelManager

from gp_k8s.reaper import Reaper
from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    LaunchFailedError,
    LaunchTimeoutError,
)
from gp_provisioners_core.testing import isolated_jupyter_paths

NAMESPACE = "gp-failfast"
FAIL_FAST_SECONDS = 10.0
SLOW_TEARDOWN = 30
"""Seconds the node agent keeps a deleted pod object of the slow specs (a real kubelet: 6-62)."""
STOPPED_WITHIN = 15.0
"""Generous bound for shutdown(now=True): well below SLOW_TEARDOWN, so passing it proves the
provisioner does not wait for the pod object."""
SANDBOX_ERROR = (
    "failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network "
    "for sandbox (injected by the node agent)"
)
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
    slow = pod_template(root / "slow.yaml")
    sandbox = pod_template(root / "sandbox.yaml", f"FailedCreatePodSandBox: {SANDBOX_ERROR}")
    stuck = pod_template(
        root / "stuck.yaml", "NetworkNotReady: network is not ready: cni config uninitialized"
    )
    never = root / "never.yaml"
    never.write_text(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
        "    - name: kernel\n      imagePullPolicy: Never\n"
    )
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
            "badpath": install_kernelspec(
                prefix,
                "gp_k8s_badpath",
                *common,
                "--image-launcher",
                "/nonexistent/gp/launch_ipykernel.py",
            ),
            "never": install_kernelspec(
                prefix,
                "gp_k8s_never",
                *common,
                "--allowed-images",
                "gp-test/does-not-exist:1",
                "--pod-template",
                str(never),
            ),
            "slow": install_kernelspec(prefix, "gp_k8s_slow", *common, "--pod-template", str(slow)),
            "sandbox": install_kernelspec(
                prefix, "gp_k8s_sandbox", *common, "--pod-template", str(sandbox)
            ),
            "stuck": install_kernelspec(
                prefix, "gp_k8s_stuck", *common, "--pod-template", str(stuck)
            ),
        }


def pod_template(path: Path, stuck: str = "") -> Path:
    """A pod template whose pods the node agent tears down in SLOW_TEARDOWN seconds (and,
    with ``stuck``, never starts: 'Reason: message' repeats as a Warning event)."""
    lines = [
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        "  annotations:",
        f'    gp-test.node-agent/deletion-delay: "{SLOW_TEARDOWN}"',
    ]
    if stuck:
        lines.append(f"    gp-test.node-agent/stuck: {stuck!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def slow_teardowns(k8s_cluster: K8sCluster) -> Iterator[list[str]]:
    """Kernel ids whose pods the node agent tears down slowly: once the module's tests ran,
    everything of theirs must be gone (the reaper saw it through), within the teardown time
    and a margin."""
    kernel_ids: list[str] = []
    yield kernel_ids
    deadline = time.monotonic() + SLOW_TEARDOWN + 60
    left: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        left = {}
        for kernel_id in kernel_ids:
            objects = kernel_objects(k8s_cluster.api_client(), kernel_id)
            pending = Reaper.shared().pending(kernel_id)
            if objects or pending:
                left[kernel_id] = objects + [f"reaper: {p}" for p in pending]
        if not left:
            break
        time.sleep(1)
    print(f"slow teardowns of {len(kernel_ids)} kernel(s) complete; left: {left}")
    assert not left, f"left behind after the slow teardowns: {left}"


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
    """Nothing of the kernel is left once the reaper saw its deletions through (a failed
    launch returns once the kernel stopped; the pod object may still be going)."""
    assert await Reaper.shared().settled(kernel_id, 30), Reaper.shared().pending(kernel_id)
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


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_bad_launcher_path(k8s_cluster: K8sCluster, failfast_specs: dict[str, str]) -> None:
    message, seconds, kernel_id = await failed_launch(failfast_specs["badpath"])
    assert seconds < FAIL_FAST_SECONDS, message
    assert "exited with code 2" in message
    assert "/nonexistent/gp/launch_ipykernel.py" in message  # the interpreter's own words
    await assert_nothing_left(k8s_cluster, kernel_id)


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_missing_image_never_pulled(
    k8s_cluster: K8sCluster, failfast_specs: dict[str, str]
) -> None:
    message, seconds, kernel_id = await failed_launch(
        failfast_specs["never"], KERNEL_IMAGE="gp-test/does-not-exist:1"
    )
    assert seconds < FAIL_FAST_SECONDS, message
    assert "ErrImageNeverPull" in message
    assert "gp-test/does-not-exist:1" in message
    await assert_nothing_left(k8s_cluster, kernel_id)


def pods_of(k8s_cluster: K8sCluster, kernel_id: str) -> list[dict[str, Any]]:
    found = raw(
        k8s_cluster.api_client(),
        "GET",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        labelSelector=f"kernel-id={kernel_id}",
    )
    return list(found.get("items") or [])


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_stuck_sandbox_fails_fast_and_is_cleaned_up_in_the_background(
    k8s_cluster: K8sCluster, failfast_specs: dict[str, str], slow_teardowns: list[str]
) -> None:
    message, seconds, kernel_id = await failed_launch(failfast_specs["sandbox"])
    slow_teardowns.append(kernel_id)
    print(f"stuck sandbox: failed after {seconds:.1f}s: {message}")
    assert seconds < FAIL_FAST_SECONDS, message
    assert f"FailedCreatePodSandBox: {SANDBOX_ERROR}" in message
    assert "cannot start (phase Pending)" in message
    # The node keeps the deleted pod for SLOW_TEARDOWN s: the launch did not wait for it...
    assert [o.split()[0] for o in kernel_objects(k8s_cluster.api_client(), kernel_id)] == ["pod"]
    # ...and the reaper sees it through (slow_teardowns checks that it goes).
    assert Reaper.shared().pending(kernel_id)


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_timeout_of_a_stuck_pod_names_its_phase_container_and_warnings(
    k8s_cluster: K8sCluster, failfast_specs: dict[str, str], slow_teardowns: list[str]
) -> None:
    manager = AsyncKernelManager(kernel_name=failfast_specs["stuck"])
    started = time.monotonic()
    with pytest.raises(LaunchTimeoutError) as timed_out:
        await manager.start_kernel(
            env=dict(os.environ, KERNEL_USERNAME="failfast", KERNEL_LAUNCH_TIMEOUT="6")
        )
    seconds = time.monotonic() - started
    slow_teardowns.append(str(manager.kernel_id))
    message = str(timed_out.value)
    print(f"stuck pod: timed out after {seconds:.1f}s: {message}")
    assert seconds < 6 + FAIL_FAST_SECONDS, message  # the timeout, not the pod's teardown
    assert "did not start within 6s" in message
    assert "phase Pending (on node " in message
    assert "container waiting (ContainerCreating)" in message
    assert "NetworkNotReady: network is not ready: cni config uninitialized" in message


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_shutdown_now_returns_once_the_kernel_stopped(
    k8s_cluster: K8sCluster, failfast_specs: dict[str, str], slow_teardowns: list[str]
) -> None:
    manager = AsyncKernelManager(kernel_name=failfast_specs["slow"])
    await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="failfast"))
    kernel_id = str(manager.kernel_id)
    slow_teardowns.append(kernel_id)
    (pod,) = pods_of(k8s_cluster, kernel_id)
    # gp-test/kernel-py:latest with no policy would be "Always" (a pull per launch).
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert processes_of(kernel_id)
    started = time.monotonic()
    await manager.shutdown_kernel(now=True)
    seconds = time.monotonic() - started
    print(f"shutdown(now=True) returned after {seconds:.1f}s (pod teardown {SLOW_TEARDOWN}s)")
    assert seconds < STOPPED_WITHIN
    assert processes_of(kernel_id) == []  # the kernel is stopped...
    (left,) = pods_of(k8s_cluster, kernel_id)  # ...while its pod object is still there
    assert left["metadata"].get("deletionTimestamp")


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_restart_now_does_not_wait_for_the_old_pod(
    k8s_cluster: K8sCluster, failfast_specs: dict[str, str], slow_teardowns: list[str]
) -> None:
    manager = AsyncKernelManager(kernel_name=failfast_specs["slow"])
    await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="failfast"))
    kernel_id = str(manager.kernel_id)
    slow_teardowns.append(kernel_id)
    (old,) = pods_of(k8s_cluster, kernel_id)
    started = time.monotonic()
    await manager.restart_kernel(now=True)
    seconds = time.monotonic() - started
    print(f"restart(now=True) returned after {seconds:.1f}s (pod teardown {SLOW_TEARDOWN}s)")
    assert seconds < STOPPED_WITHIN + FAIL_FAST_SECONDS  # a stop and a whole new launch
    assert await manager.is_alive()
    client = manager.client()
    client.start_channels()
    try:
        await asyncio.wait_for(client.wait_for_ready(timeout=30), 40)
    finally:
        client.stop_channels()
    names = {p["metadata"]["name"] for p in pods_of(k8s_cluster, kernel_id)}
    assert old["metadata"]["name"] in names
    assert len(names) == 2
    await manager.shutdown_kernel(now=True)
