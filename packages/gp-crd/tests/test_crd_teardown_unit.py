"""SparkApplication teardown without a cluster: the kernel's pods go with the resource, with
the grace period the stop asked for (0, a force deletion, only for a kill behind a dead
launcher).  The Kubernetes calls are replaced by a recording fake; the Spark-operator suite
(tests-integration/test_crd_spark_conformance.py) checks the same paths end to end."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_crd.provisioner import SparkOperatorProvisioner
from gp_k8s import operations as ops
from gp_k8s.pod_cache import pod_state
from gp_k8s.testing import FakeApiServer

KERNEL_ID = "0b7c9f61-2d4e-4f7a-8a5b-5e2f6c1d9a30"
Call = tuple[str, ...]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    recorded: list[Call] = []

    def delete_pod(client: Any, namespace: str, name: str, grace: int) -> None:
        recorded.append(("delete pod", namespace, name, str(grace)))

    def delete_secret(client: Any, namespace: str, name: str) -> None:
        recorded.append(("delete secret", namespace, name))

    monkeypatch.setattr(ops, "delete_pod", delete_pod)
    monkeypatch.setattr(ops, "delete_secret", delete_secret)
    return recorded


def spark_kernel(calls: list[Call], monkeypatch: pytest.MonkeyPatch) -> SparkOperatorProvisioner:
    """A running Spark kernel (application, driver pod, launch Secret); no launcher reachable."""
    spec = KernelSpec(
        argv=["python3", "launch.py"],
        display_name="spark",
        metadata={"kernel_provisioner": {"provisioner_name": "spark-operator-provisioner"}},
    )
    p = SparkOperatorProvisioner(
        kernel_id=KERNEL_ID, kernel_spec=spec, parent=None, termination_grace_period=5
    )
    p.kernel_context.api = FakeApiServer()  # unused: the patched operations record
    p.kernel_namespace_name, p.container_name = "ns", "kernel-app"
    p.launch_secret_name = "kernel-app-launch"
    driver = {
        "metadata": {"name": "kernel-app-driver", "namespace": "ns", "labels": {}},
        "status": {"phase": "Running"},
    }
    monkeypatch.setattr(p.kernel_object, "pod_state", lambda: pod_state(driver))

    def delete_object(api: Any, namespace: str, name: str) -> bool:
        calls.append(("delete SparkApplication", namespace, name))
        return True

    def track_deletion(kind: str, what: str, **kwargs: Any) -> None:
        calls.append(("reaper tracks", what))

    async def wait_kernel_stopped(what: str, **kwargs: Any) -> None:
        calls.append(("wait stopped", what, str(kwargs["grace"])))

    monkeypatch.setattr(p.kernel_object, "delete_object", delete_object)
    monkeypatch.setattr(p, "track_deletion", track_deletion)
    monkeypatch.setattr(p, "wait_kernel_stopped", wait_kernel_stopped)
    return p


async def test_a_spark_kernel_killed_behind_a_dead_launcher_is_force_deleted(
    calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = spark_kernel(calls, monkeypatch)
    await p.send_signal(signal.SIGKILL)
    assert calls[:3] == [
        ("delete secret", "ns", "kernel-app-launch"),
        ("delete SparkApplication", "ns", "kernel-app"),
        ("delete pod", "ns", "kernel-app-driver", "0"),
    ]


async def test_a_spark_kernel_terminated_gets_its_grace(
    calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = spark_kernel(calls, monkeypatch)
    await p.terminate()
    assert ("delete pod", "ns", "kernel-app-driver", "5") in calls
    assert ("wait stopped", "pod ns/kernel-app-driver", "5") in calls
    assert ("reaper tracks", "SparkApplication ns/kernel-app and its pods") in calls


async def test_a_kill_waits_at_least_the_pods_grace(
    calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = spark_kernel(calls, monkeypatch)
    await p.kill()
    assert ("delete pod", "ns", "kernel-app-driver", "5") in calls
