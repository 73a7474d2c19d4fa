"""Custom-resource kernels submitted and torn down against gp-k8s's in-memory API (no
cluster), through gp-k8s's object-kind contract: the resource gp-crd creates (with the
configured GPU resource name), what a refusal says, and what stopping deletes with which grace.
tests-integration/test_crd_*.py run the same paths against a real kube-apiserver."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_crd.object_cache import ObjectWatchCache
from gp_crd.provisioner import (
    CustomResourceKind,
    CustomResourceProvisioner,
    SparkOperatorProvisioner,
)
from gp_k8s.reaper import Reaper
from gp_k8s.testing import FakeApiServer
from gp_provisioners_core.errors import LaunchFailedError
from gp_provisioners_core.protocol import LAUNCH_SECRET_ENV

KERNEL_ID = "0b7c9f61-2d4e-4f7a-8a5b-5e2f6c1d9a30"
NS = "kernels"
ARGV = ["python3", "/opt/launch.py", "--kernel-id", KERNEL_ID]
ENV = {"KERNEL_USERNAME": "alice", "KERNEL_GPUS": "1", LAUNCH_SECRET_ENV: "s3cret"}
SPARK = f"/apis/sparkoperator.k8s.io/v1beta2/namespaces/{NS}/sparkapplications"
PODS = f"/api/v1/namespaces/{NS}/pods"


class KernelPodProvisioner(CustomResourceProvisioner):
    """A custom resource whose controller makes the pod in its ``spec.podTemplate``."""

    group = "example.org"
    version = "v1"
    plural = "kernelpods"
    object_kind = "KernelPod"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    yield FakeApiServer()
    assert Reaper.shared().drain(5) == []  # every deletion was seen through


def wired(
    cls: type[CustomResourceProvisioner], api: FakeApiServer, **config: Any
) -> CustomResourceProvisioner:
    """A provisioner joined to ``api``, whose shared caches the fake feeds."""
    config = {"image_name": "kernel:1", "kernel_namespace": NS, "max_gpus": 2, **config}
    p = cls(kernel_id=KERNEL_ID, kernel_spec=KernelSpec(argv=ARGV, display_name="crd"), **config)
    api.serve(p)  # the API client, the pod and event watches
    kind = p.kernel_object
    assert isinstance(kind, CustomResourceKind)
    kind.objects = ObjectWatchCache(api, cls.group, cls.version, cls.plural, NS)
    api.watch(kind.objects)
    p.kernel_username = "alice"
    return p


async def submit(p: CustomResourceProvisioner) -> None:
    await p.validate_launch(dict(ENV))
    await p.submit_kernel(ARGV, dict(ENV))


def running_driver(api: FakeApiServer, app: str) -> str:
    """What the operator does once the application runs: its driver pod runs and the
    application's status names it (the fake feeds both to the watches)."""
    driver = f"{app}-driver"
    running = {"name": "kernel", "state": {"running": {}}}
    api.put(
        f"{PODS}/{driver}",
        {
            "metadata": {"name": driver, "namespace": NS, "labels": {"kernel-id": KERNEL_ID}},
            "status": {"phase": "Running", "containerStatuses": [running]},
        },
    )
    resource = dict(api.objects[f"{SPARK}/{app}"])
    resource["status"] = {
        "applicationState": {"state": "RUNNING"},
        "driverInfo": {"podName": driver},
    }
    api.put(f"{SPARK}/{app}", resource)
    return driver


async def test_a_spark_kernel_is_one_application_with_the_configured_gpu_name(
    api: FakeApiServer,
) -> None:
    p = wired(SparkOperatorProvisioner, api, gpu_resource_name="amd.com/gpu")
    await submit(p)
    name = p.container_name
    assert len(name) <= 56  # room for the operator's "-driver"
    assert api.sent("POST") == [
        ("POST", f"/api/v1/namespaces/{NS}/secrets"),
        ("POST", SPARK),
    ]
    app = api.objects[f"{SPARK}/{name}"]
    assert app["kind"] == "SparkApplication"
    assert app["metadata"]["labels"]["kernel-id"] == KERNEL_ID
    assert app["spec"]["driver"]["gpu"] == {"name": "amd.com/gpu", "quantity": 1}
    refs = app["spec"]["driver"]["envSecretKeyRefs"]
    assert refs[LAUNCH_SECRET_ENV] == {"name": f"{name}-launch", "key": "launch-secret"}
    assert "s3cret" not in str(app)


async def test_a_generic_resource_carries_its_pod_with_the_configured_gpu_name(
    api: FakeApiServer,
) -> None:
    p = wired(KernelPodProvisioner, api, gpu_resource_name="amd.com/gpu")
    await submit(p)
    path = f"/apis/example.org/v1/namespaces/{NS}/kernelpods/{p.container_name}"
    resource = api.objects[path]
    assert resource["kind"] == "KernelPod"
    pod = resource["spec"]["podTemplate"]
    assert pod["metadata"]["name"] == p.container_name
    container = pod["spec"]["containers"][0]
    assert container["command"] == ARGV
    assert container["resources"]["limits"]["amd.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in str(resource)


async def test_a_refused_resource_fails_the_launch_naming_its_kind(api: FakeApiServer) -> None:
    p = wired(SparkOperatorProvisioner, api)
    api.refuse("POST", SPARK, 403, "sparkapplications is forbidden")
    with pytest.raises(LaunchFailedError) as failed:
        await submit(p)
    message = str(failed.value)
    assert f"refused the kernel's SparkApplication in namespace '{NS}'" in message
    assert "sparkapplications is forbidden (HTTP 403)" in message


async def test_terminate_deletes_secret_application_and_driver_with_the_grace(
    api: FakeApiServer,
) -> None:
    p = wired(SparkOperatorProvisioner, api, termination_grace_period=5)
    await submit(p)
    app = p.container_name
    assert p.get_container_status() == "new"  # seen by the watch, no state from the operator
    driver = running_driver(api, app)
    assert p.get_container_status() == "running"
    api.requests.clear()
    await p.terminate()
    assert [(r.method, r.path) for r in api.requests][:3] == [
        ("DELETE", f"/api/v1/namespaces/{NS}/secrets/{app}-launch"),
        ("DELETE", f"{SPARK}/{app}"),
        ("DELETE", f"{PODS}/{driver}"),
    ]
    assert api.requests[1].body["propagationPolicy"] == "Background"
    assert api.requests[2].body["gracePeriodSeconds"] == 5
    assert api.objects == {}
    assert not p.has_process


@pytest.mark.parametrize(
    ("stop", "grace"), [("sigkill", 0), ("kill", 5)], ids=["SIGKILL-force", "kill-graceful"]
)
async def test_a_kill_force_deletes_the_driver_only_behind_a_dead_launcher(
    api: FakeApiServer, stop: str, grace: int
) -> None:
    p = wired(SparkOperatorProvisioner, api, termination_grace_period=5)
    await submit(p)
    driver = running_driver(api, p.container_name)
    if stop == "sigkill":
        await p.send_signal(signal.SIGKILL)
    else:
        await p.kill()
    deleted = [r.body for r in api.requests if r.path == f"{PODS}/{driver}" and r.body]
    assert [body["gracePeriodSeconds"] for body in deleted] == [grace]
