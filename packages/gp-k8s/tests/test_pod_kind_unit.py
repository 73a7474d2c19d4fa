"""A kernel pod submitted and torn down against gp-k8s's in-memory API (no cluster): which
objects the API is asked to create and delete, with which content and grace period, and what
a refusal says.  tests-integration/test_k8s_*.py run the same paths on a real kube-apiserver."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_k8s.pod_kind import PodKind
from gp_k8s.provisioner import KubernetesProvisioner
from gp_k8s.reaper import Reaper
from gp_k8s.testing import FakeApiServer
from gp_provisioners_core.errors import LaunchFailedError
from gp_provisioners_core.protocol import LAUNCH_SECRET_ENV

KERNEL_ID = "0b7c9f61-2d4e-4f7a-8a5b-5e2f6c1d9a30"
NS = "kernels"
ARGV = ["python3", "/opt/launch.py", "--kernel-id", KERNEL_ID]
ENV = {"KERNEL_USERNAME": "alice", "KERNEL_GPUS": "1", LAUNCH_SECRET_ENV: "s3cret"}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    yield FakeApiServer()
    assert Reaper.shared().drain(5) == []  # every deletion was seen through


def provisioner(api: FakeApiServer, **config: Any) -> KubernetesProvisioner:
    """A provisioner joined to ``api``, whose shared caches the fake feeds."""
    spec = KernelSpec(argv=ARGV, display_name="k8s")
    settings: dict[str, Any] = {"image_name": "kernel:1", "kernel_namespace": NS, "max_gpus": 2}
    p = KubernetesProvisioner(kernel_id=KERNEL_ID, kernel_spec=spec, **settings, **config)
    api.serve(p)
    p.kernel_username = "alice"  # what pre_launch settles
    return p


async def submitted(api: FakeApiServer, **config: Any) -> KubernetesProvisioner:
    p = provisioner(api, **config)
    await p.validate_launch(dict(ENV))
    await p.submit_kernel(ARGV, dict(ENV))
    return p


def test_the_default_kind_is_the_pod() -> None:
    assert isinstance(provisioner(FakeApiServer()).kernel_object, PodKind)


async def test_submission_creates_the_launch_secret_then_the_pod(api: FakeApiServer) -> None:
    p = await submitted(api, gpu_resource_name="amd.com/gpu")
    name = p.container_name
    assert name.startswith("kernel-")
    assert len(name) <= 63
    assert api.sent("POST") == [
        ("POST", f"/api/v1/namespaces/{NS}/secrets"),
        ("POST", f"/api/v1/namespaces/{NS}/pods"),
    ]
    secret = api.objects[f"/api/v1/namespaces/{NS}/secrets/{name}-launch"]
    assert secret["metadata"]["labels"]["kernel-id"] == KERNEL_ID
    pod = api.objects[f"/api/v1/namespaces/{NS}/pods/{name}"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "kernel:1"
    assert container["command"] == ARGV
    assert container["resources"]["limits"]["amd.com/gpu"] == "1"
    env = {e["name"]: e for e in container["env"]}
    assert env["KERNEL_USERNAME"]["value"] == "alice"
    # The launch secret travels by reference to the Secret, never in the pod spec.
    assert env[LAUNCH_SECRET_ENV]["valueFrom"]["secretKeyRef"]["name"] == f"{name}-launch"
    assert "s3cret" not in str(pod)
    assert p.has_process
    assert p.get_container_status() == "pending"  # seen by the watch, not scheduled


async def test_a_refused_pod_fails_the_launch_naming_namespace_and_status(
    api: FakeApiServer,
) -> None:
    api.refuse("POST", f"/api/v1/namespaces/{NS}/pods", 403, 'pods is forbidden: no "create"')
    with pytest.raises(LaunchFailedError) as failed:
        await submitted(api)
    message = str(failed.value)
    assert KERNEL_ID in message
    assert f"refused the kernel's objects in namespace '{NS}'" in message
    assert 'pods is forbidden: no "create" (HTTP 403)' in message


async def test_terminate_deletes_secret_then_pod_with_the_grace_and_waits(
    api: FakeApiServer,
) -> None:
    p = await submitted(api, termination_grace_period=7)
    name = p.container_name
    api.requests.clear()
    await p.terminate()
    deletions = [(r.path, (r.body or {}).get("gracePeriodSeconds")) for r in api.requests]
    assert deletions[:2] == [
        (f"/api/v1/namespaces/{NS}/secrets/{name}-launch", None),
        (f"/api/v1/namespaces/{NS}/pods/{name}", 7),
    ]
    assert api.objects == {}
    assert not p.has_process
    api.requests.clear()
    await p.cleanup(restart=False)  # idempotent: nothing left to delete
    assert api.sent("DELETE") == []


@pytest.mark.parametrize(
    ("signum", "grace"), [(signal.SIGKILL, 1), (signal.SIGTERM, 9)], ids=["KILL", "TERM"]
)
async def test_a_signal_the_launcher_cannot_take_stops_the_pod(
    api: FakeApiServer, signum: int, grace: int
) -> None:
    p = await submitted(api, termination_grace_period=9)
    pod_path = f"/api/v1/namespaces/{NS}/pods/{p.container_name}"
    await p.send_signal(signum)
    graces = [r.body["gracePeriodSeconds"] for r in api.requests if r.path == pod_path and r.body]
    assert graces == [grace]
    assert pod_path not in api.objects


async def test_a_kernel_in_its_own_namespace_gets_it_and_loses_it_on_cleanup(
    api: FakeApiServer,
) -> None:
    p = await submitted(api, create_kernel_namespace=True)
    own = p.kernel_namespace_name
    assert own.startswith("gp-kernel-")
    assert f"/api/v1/namespaces/{own}" in api.objects
    assert f"/api/v1/namespaces/{own}/pods/{p.container_name}" in api.objects
    await p.kill()
    assert f"/api/v1/namespaces/{own}" in api.objects  # a restart would keep it
    await p.cleanup(restart=False)
    assert f"/api/v1/namespaces/{own}" not in api.objects
