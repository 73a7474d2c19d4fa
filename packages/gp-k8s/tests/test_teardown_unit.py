"""Teardown without a cluster: which deletions kill, terminate and signals ask the API for,
and with which grace period.  The Kubernetes calls are replaced by a recording fake; the
real-apiserver suites (tests-integration/test_k8s_*.py) check the same paths end to end."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_k8s import operations as ops
from gp_k8s.provisioner import KubernetesProvisioner
from gp_k8s.testing import FakeApiServer

KERNEL_ID = "0b7c9f61-2d4e-4f7a-8a5b-5e2f6c1d9a30"


class FakeApi:
    """Records every deletion gp-k8s asks for, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.monkeypatch = monkeypatch


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    api = FakeApi(monkeypatch)

    def delete_pod(client: Any, namespace: str, name: str, grace: int) -> None:
        api.calls.append(("delete pod", namespace, name, str(grace)))

    def delete_secret(client: Any, namespace: str, name: str) -> None:
        api.calls.append(("delete secret", namespace, name))

    def delete_namespace(client: Any, namespace: str) -> None:
        api.calls.append(("delete namespace", namespace))

    monkeypatch.setattr(ops, "delete_pod", delete_pod)
    monkeypatch.setattr(ops, "delete_secret", delete_secret)
    monkeypatch.setattr(ops, "delete_namespace", delete_namespace)
    return api


def started(cls: type[KubernetesProvisioner], api: FakeApi, **config: Any) -> KubernetesProvisioner:
    """A provisioner as it is once its kernel runs: pod and launch Secret made, no launcher
    reachable (so every stop goes through the API)."""
    spec = KernelSpec(
        argv=["python3", "launch.py"],
        display_name="k8s",
        metadata={"kernel_provisioner": {"provisioner_name": "kubernetes-provisioner"}},
    )
    p = cls(kernel_id=KERNEL_ID, kernel_spec=spec, parent=None, **config)
    p.kernel_context.api = FakeApiServer()  # unused: the patched operations record
    p.kernel_namespace_name, p.container_name = "ns", "kernel-pod"
    p.launch_secret_name = "kernel-pod-launch"

    def track_deletion(kind: str, what: str, **kwargs: Any) -> None:
        api.calls.append(("reaper tracks", what))

    async def wait_kernel_stopped(what: str, **kwargs: Any) -> None:
        api.calls.append(("wait stopped", what, str(kwargs["grace"])))

    api.monkeypatch.setattr(p, "track_deletion", track_deletion)
    api.monkeypatch.setattr(p, "wait_kernel_stopped", wait_kernel_stopped)
    return p


async def test_terminate_deletes_secret_then_pod_with_the_configured_grace(fake: FakeApi) -> None:
    p = started(KubernetesProvisioner, fake, termination_grace_period=7)
    await p.terminate()
    assert fake.calls == [
        ("delete secret", "ns", "kernel-pod-launch"),
        ("delete pod", "ns", "kernel-pod", "7"),
        ("reaper tracks", "pod ns/kernel-pod"),
        ("wait stopped", "pod ns/kernel-pod", "7"),
    ]
    assert p.container_name == ""
    assert p.launch_secret_name == ""
    fake.calls.clear()
    await p.terminate()  # idempotent: nothing left to delete
    assert fake.calls == []


async def test_kill_is_quick_but_never_a_force_deletion(fake: FakeApi) -> None:
    p = started(KubernetesProvisioner, fake, termination_grace_period=30)
    await p.kill()
    assert ("delete pod", "ns", "kernel-pod", "1") in fake.calls


@pytest.mark.parametrize(
    ("signum", "grace"), [(signal.SIGKILL, "1"), (signal.SIGTERM, "9")], ids=["KILL", "TERM"]
)
async def test_an_unreachable_launcher_is_stopped_through_the_api(
    fake: FakeApi, signum: int, grace: str
) -> None:
    p = started(KubernetesProvisioner, fake, termination_grace_period=9)
    await p.send_signal(signum)
    assert ("delete pod", "ns", "kernel-pod", grace) in fake.calls


async def test_interrupt_never_deletes_anything(fake: FakeApi) -> None:
    p = started(KubernetesProvisioner, fake)
    await p.send_signal(signal.SIGINT)
    assert fake.calls == []


async def test_cleanup_of_a_kernel_in_its_own_namespace_deletes_the_namespace(
    fake: FakeApi,
) -> None:
    p = started(KubernetesProvisioner, fake)
    p.namespace_created = True
    await p.terminate_container_resources(restart=False)
    assert fake.calls[-2:] == [("delete namespace", "ns"), ("reaper tracks", "namespace ns")]
    assert not p.namespace_created


async def test_a_restart_keeps_the_kernels_namespace(fake: FakeApi) -> None:
    p = started(KubernetesProvisioner, fake)
    p.namespace_created = True
    await p.terminate_container_resources(restart=True)
    assert ("delete namespace", "ns") not in fake.calls
