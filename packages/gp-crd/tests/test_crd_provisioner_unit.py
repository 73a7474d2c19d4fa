"""SparkOperatorProvisioner status and failure mapping, read from the two shared caches
(filled by hand here: no cluster)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_crd.object_cache import ObjectWatchCache
from gp_crd.provisioner import CustomResourceKind, SparkOperatorProvisioner
from gp_k8s.event_cache import PodEventWatchCache
from gp_k8s.pod_cache import PodWatchCache
from gp_provisioners_core.errors import KernelSpecConfigError, LaunchFailedError, LaunchTimeoutError

KERNEL_ID = "0b7c9f61-2d4e-4f7a-8a5b-5e2f6c1d9a30"
NAME = "kernel-app"


def provisioner(**config: Any) -> SparkOperatorProvisioner:
    spec = KernelSpec(
        argv=["python3", "launch.py"],
        display_name="spark",
        metadata={"kernel_provisioner": {"provisioner_name": "spark-operator-provisioner"}},
    )
    return SparkOperatorProvisioner(kernel_id=KERNEL_ID, kernel_spec=spec, parent=None, **config)


def wired() -> tuple[SparkOperatorProvisioner, ObjectWatchCache, PodWatchCache]:
    p = provisioner()
    objects = ObjectWatchCache(object(), "g", "v", "p", "ns")  # type: ignore[arg-type]
    pods = PodWatchCache(object(), "ns")  # type: ignore[arg-type]
    objects.synced.set()
    pods.synced.set()
    kind = p.kernel_object
    assert isinstance(kind, CustomResourceKind)
    kind.objects, p.kernel_context.pods = objects, pods
    p.kernel_namespace_name, p.container_name = "ns", NAME
    p.submitted, p.kernel_context.created_at = True, time.monotonic()
    return p, objects, pods


def app(state: str = "", error: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"driverInfo": {"podName": f"{NAME}-driver"}}
    if state:
        status["applicationState"] = {"state": state, "errorMessage": error}
    return {"metadata": {"name": NAME, "namespace": "ns"}, "status": status}


def driver(phase: str, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{NAME}-driver",
            "namespace": "ns",
            "labels": {"kernel-id": KERNEL_ID},
        },
        "status": {"phase": phase, **extra},
    }


async def test_status_follows_object_then_driver_pod() -> None:
    p, objects, pods = wired()
    assert p.get_container_status() == ""
    assert await p.poll() is None  # not seen yet, just created
    objects.apply({"type": "ADDED", "object": app()})
    assert p.get_container_status() == "new"
    objects.apply({"type": "MODIFIED", "object": app("SUBMITTED")})
    assert p.get_container_status() == "submitted"
    assert "submitted" in p.get_initial_states()
    objects.apply({"type": "MODIFIED", "object": app("RUNNING")})
    assert p.get_container_status() == "pending"  # the driver pod is not in the cache yet
    pods.apply({"type": "ADDED", "object": driver("Running")})
    assert p.get_container_status() == "running"
    assert await p.poll() is None
    await p.detect_launch_failure()  # nothing to report


async def test_submission_failure_ends_the_launch_with_the_operator_message() -> None:
    p, objects, _ = wired()
    objects.apply({"type": "ADDED", "object": app("SUBMISSION_FAILED", "image is not allowed")})
    assert p.get_container_status() == "submission_failed"
    with pytest.raises(Exception, match="SUBMISSION_FAILED: image is not allowed"):
        await p.detect_launch_failure()
    assert await p.poll() == 1


async def test_deleted_object_ends_the_launch_and_polls_as_exited() -> None:
    p, objects, _ = wired()
    objects.apply({"type": "ADDED", "object": app("SUBMITTED")})
    objects.apply({"type": "DELETED", "object": app("SUBMITTED")})
    with pytest.raises(Exception, match="was deleted"):
        await p.detect_launch_failure()
    assert await p.poll() == 0


async def test_wrong_template_kind_is_refused(tmp_path: Any) -> None:
    template = tmp_path / "t.yaml"
    template.write_text("kind: Pod\n")
    p = provisioner(custom_resource_template_file=str(template), image_name="img:1")
    with pytest.raises(KernelSpecConfigError, match="must be one SparkApplication"):
        await p.pre_launch(env={"KERNEL_USERNAME": "alice"})


async def test_a_re_attached_kernel_is_not_dead_before_the_watches_sync() -> None:
    """After a re-attach (no creation time, watches not listed yet, e.g. a stalled API
    server), poll answers "still running" (None), never an exit code; the first listing then
    decides."""
    p, objects, pods = wired()
    p.kernel_context.created_at = 0.0
    objects.synced.clear()
    pods.synced.clear()
    assert await p.poll() is None
    objects.synced.set()
    pods.synced.set()
    assert await p.poll() == 0  # listed, and the object is not there: gone


async def test_a_driver_pod_that_cannot_start_ends_the_launch_and_a_timeout_names_it() -> None:
    p, objects, pods = wired()
    events = PodEventWatchCache(object(), "ns")  # type: ignore[arg-type]
    events.synced.set()
    p.kernel_context.events = events
    objects.apply({"type": "ADDED", "object": app("RUNNING")})
    creating = {"containerStatuses": [{"name": "kernel", "state": {"waiting": {}}}]}
    pods.apply({"type": "ADDED", "object": driver("Pending", **creating)})
    with pytest.raises(LaunchTimeoutError) as timed_out:
        await p.handle_launch_timeout()
    assert f"SparkApplication ns/{NAME}: state RUNNING; pod ns/{NAME}-driver: phase Pending" in str(
        timed_out.value
    )
    assert "warning events: none" in str(timed_out.value)
    await p.detect_launch_failure()  # pending, no warning: nothing to report yet
    sandbox = {
        "metadata": {"name": "e1", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": f"{NAME}-driver"},
        "type": "Warning",
        "reason": "FailedCreatePodSandBox",
        "message": "no sandbox for you",
    }
    events.apply({"type": "ADDED", "object": sandbox})
    with pytest.raises(LaunchFailedError) as failed:
        await p.detect_launch_failure()
    assert f"its pod ns/{NAME}-driver cannot start (phase Pending)" in str(failed.value)
    assert "FailedCreatePodSandBox: no sandbox for you" in str(failed.value)


def test_configured_gpu_resource_name_reaches_the_spark_application() -> None:
    """gp-k8s's gpu_resource_name was lost on the custom-resource path (nvidia.com/gpu was
    hard-coded there)."""
    from gp_k8s.parameters import KernelParameters

    p = provisioner(gpu_resource_name="amd.com/gpu")
    parameters = KernelParameters(image="img:1", namespace="ns", service_account="sa", gpus=1)
    obj = p.build_kernel_object(NAME, parameters, ["python3", "launch.py"], {})
    assert obj["spec"]["driver"]["gpu"] == {"name": "amd.com/gpu", "quantity": 1}
