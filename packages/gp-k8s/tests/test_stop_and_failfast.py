"""Failing fast and stopping without waiting for the pod object, against a fake cluster.

The fake is the real shared caches (pods, warning events) fed by hand, and the blocking API
calls of :mod:`gp_k8s.operations` replaced by a node that, like a real kubelet, stops the
container at once but keeps the deleted pod object until the test lets it go.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec
from kubernetes.client import ApiClient

from gp_k8s import operations as ops
from gp_k8s.event_cache import PodEventWatchCache
from gp_k8s.pod_cache import PodWatchCache
from gp_k8s.provisioner import KubernetesProvisioner
from gp_k8s.reaper import Reaper
from gp_provisioners_core.errors import LaunchFailedError, LaunchTimeoutError

KERNEL_ID = "5a0e7c1d-1111-4f7a-8a5b-5e2f6c1d9a30"
NS, POD = "kernels", "kernel-5a0e7c1d-abc123"
SANDBOX = (
    "failed to create pod sandbox: rpc error: code = Unknown desc = failed to start sandbox: "
    "failed to create containerd task: OCI runtime create failed"
)


def pod_json(
    phase: str = "Pending", container: dict[str, Any] | None = None, deleting: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": POD,
        "namespace": NS,
        "uid": "uid-1",
        "labels": {"kernel-id": KERNEL_ID},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase}
    if container is not None:
        status["containerStatuses"] = [{"name": "kernel", "state": container}]
    return {"metadata": metadata, "spec": {"nodeName": "node-1"}, "status": status}


def warning(reason: str, message: str, count: int = 1, name: str = "e1") -> dict[str, Any]:
    return {
        "metadata": {"name": f"{POD}.{name}", "namespace": NS},
        "involvedObject": {"kind": "Pod", "name": POD, "namespace": NS, "uid": "uid-1"},
        "type": "Warning",
        "reason": reason,
        "message": message,
        "count": count,
        "lastTimestamp": "2026-01-01T00:00:01Z",
    }


class SlowNode:
    """The API as the provisioner sees it, with a node that keeps deleted pods."""

    def __init__(self, pods: PodWatchCache) -> None:
        self.pods = pods
        self.deleted: list[tuple[str, str, int]] = []
        self.namespaces_deleted: list[str] = []
        self.namespaces = {NS}
        self.secrets_deleted: list[str] = []
        self.events: list[dict[str, Any]] = []

    def delete_pod(self, api: Any, namespace: str, name: str, grace: int) -> bool:
        self.deleted.append((namespace, name, grace))
        current = self.pods.get(namespace, name)
        if current is None:
            return False
        # The kubelet stops the container and reports it; the object stays (slow teardown).
        terminated = {"terminated": {"exitCode": 137, "reason": "Error"}}
        self.pods.apply(
            {"type": "MODIFIED", "object": pod_json("Running", terminated, deleting=True)}
        )
        return True

    def release(self) -> None:
        """The node finished tearing the pod down."""
        self.pods.apply({"type": "DELETED", "object": pod_json("Running", deleting=True)})

    def pod_exists(self, api: Any, namespace: str, name: str) -> bool:
        return self.pods.get(namespace, name) is not None

    def delete_secret(self, api: Any, namespace: str, name: str) -> None:
        self.secrets_deleted.append(name)

    def delete_namespace(self, api: Any, name: str) -> None:
        self.namespaces_deleted.append(name)

    def namespace_exists(self, api: Any, name: str) -> bool:
        return name in self.namespaces

    def pod_events(self, api: Any, namespace: str, name: str) -> list[dict[str, Any]]:
        return list(self.events)


def pods_of(p: KubernetesProvisioner) -> PodWatchCache:
    """The shared pod cache the fixture wired in."""
    assert p.kernel_context.pods is not None
    return p.kernel_context.pods


def events_of(p: KubernetesProvisioner) -> PodEventWatchCache:
    """The shared event cache the fixture wired in."""
    assert p.kernel_context.events is not None
    return p.kernel_context.events


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KubernetesProvisioner, SlowNode]]:
    pods = PodWatchCache(ApiClient(), NS)
    events = PodEventWatchCache(ApiClient(), NS)
    pods.synced.set()
    events.synced.set()
    node = SlowNode(pods)
    for name in (
        "delete_pod",
        "pod_exists",
        "delete_secret",
        "delete_namespace",
        "namespace_exists",
        "pod_events",
    ):
        monkeypatch.setattr(ops, name, getattr(node, name))
    spec = KernelSpec(argv=["python3", "launch.py"], display_name="k8s")
    p = KubernetesProvisioner(
        kernel_id=KERNEL_ID, kernel_spec=spec, parent=None, image_name="kernel:1"
    )
    p.kernel_context.api = object()  # type: ignore[assignment]
    p.kernel_context.pods, p.kernel_context.events = pods, events
    p.kernel_namespace_name, p.container_name = NS, POD
    p.launch_secret_name = f"{POD}-launch"
    p.submitted, p.kernel_context.created_at = True, time.monotonic()
    yield p, node
    node.release()
    Reaper.shared().drain(5)


async def test_a_stuck_sandbox_ends_the_launch_with_the_nodes_words(
    cluster: tuple[KubernetesProvisioner, SlowNode],
) -> None:
    p, _ = cluster
    creating = {"waiting": {"reason": "ContainerCreating"}}
    pods_of(p).apply({"type": "ADDED", "object": pod_json("Pending", creating)})
    await p.detect_launch_failure()  # pending, no warning: nothing to report yet
    events_of(p).apply({"type": "ADDED", "object": warning("FailedCreatePodSandBox", SANDBOX)})
    with pytest.raises(LaunchFailedError) as failed:
        await p.detect_launch_failure()
    message = str(failed.value)
    assert KERNEL_ID in message
    assert f"pod {NS}/{POD} cannot start (phase Pending)" in message
    assert f"FailedCreatePodSandBox: {SANDBOX}" in message


async def test_a_volume_failure_needs_one_retry_before_it_ends_the_launch(
    cluster: tuple[KubernetesProvisioner, SlowNode],
) -> None:
    p, _ = cluster
    pods_of(p).apply({"type": "ADDED", "object": pod_json("Pending")})
    mount = 'MountVolume.SetUp failed for volume "data" : configmap "data" not found'
    events_of(p).apply({"type": "ADDED", "object": warning("FailedMount", mount)})
    await p.detect_launch_failure()
    events_of(p).apply({"type": "MODIFIED", "object": warning("FailedMount", mount, count=2)})
    with pytest.raises(LaunchFailedError, match='configmap "data" not found'):
        await p.detect_launch_failure()


async def test_warnings_of_a_running_kernel_do_not_end_anything(
    cluster: tuple[KubernetesProvisioner, SlowNode],
) -> None:
    p, _ = cluster
    pods_of(p).apply({"type": "ADDED", "object": pod_json("Running", {"running": {}})})
    events_of(p).apply({"type": "ADDED", "object": warning("FailedCreatePodSandBox", SANDBOX)})
    await p.detect_launch_failure()


async def test_a_timeout_names_phase_container_state_and_warnings(
    cluster: tuple[KubernetesProvisioner, SlowNode],
) -> None:
    p, node = cluster
    creating = {"waiting": {"reason": "ContainerCreating"}}
    pods_of(p).apply({"type": "ADDED", "object": pod_json("Pending", creating)})
    node.events = [warning("NetworkNotReady", "network is not ready: cni config uninitialized")]
    with pytest.raises(LaunchTimeoutError) as timed_out:
        await p.handle_launch_timeout()
    message = str(timed_out.value)
    assert "did not start within" in message
    assert f"pod {NS}/{POD}: phase Pending (on node node-1)" in message
    assert "container waiting (ContainerCreating)" in message
    assert "NetworkNotReady: network is not ready" in message
    # Without any warning the report still says so.
    node.events = []
    with pytest.raises(LaunchTimeoutError, match="warning events: none"):
        await p.handle_launch_timeout()


async def test_kill_returns_once_the_container_stopped_not_when_the_pod_is_gone(
    cluster: tuple[KubernetesProvisioner, SlowNode],
) -> None:
    p, node = cluster
    pods_of(p).apply({"type": "ADDED", "object": pod_json("Running", {"running": {}})})
    started = time.monotonic()
    await p.kill()
    assert time.monotonic() - started < 5  # the pod object stays until release()
    assert node.deleted == [(NS, POD, 1)]
    assert node.secrets_deleted == [f"{POD}-launch"]
    assert not p.has_process
    assert Reaper.shared().pending(KERNEL_ID) == [f"pod {NS}/{POD}"]
    node.release()
    assert Reaper.shared().drain(5) == []
    assert not pods_of(p).has_seen(NS, POD)


async def test_cleanup_after_a_failed_launch_does_not_wait_and_is_seen_through(
    cluster: tuple[KubernetesProvisioner, SlowNode],
) -> None:
    p, node = cluster
    p.namespace_created = True
    pods_of(p).apply({"type": "ADDED", "object": pod_json("Pending")})
    started = time.monotonic()
    await p.kill()  # what a failed launch does: kill, then cleanup
    await p.cleanup(restart=False)
    assert time.monotonic() - started < 5
    assert node.namespaces_deleted == [NS]
    reaper = Reaper.shared()
    assert sorted(reaper.pending(KERNEL_ID)) == [f"namespace {NS}", f"pod {NS}/{POD}"]
    node.release()
    node.namespaces.discard(NS)
    assert reaper.drain(10) == []


async def test_restart_keeps_the_kernels_namespace(
    cluster: tuple[KubernetesProvisioner, SlowNode],
) -> None:
    # jupyter_client kills with restart=False even while restarting: only cleanup decides.
    p, node = cluster
    p.namespace_created = True
    pods_of(p).apply({"type": "ADDED", "object": pod_json("Running", {"running": {}})})
    await p.kill(restart=False)
    await p.cleanup(restart=True)
    assert node.namespaces_deleted == []
    assert p.namespace_created
    await p.cleanup(restart=False)
    assert node.namespaces_deleted == [NS]
    node.namespaces.discard(NS)
