"""KubernetesProvisioner pieces that need no cluster: what travels into the pod, statuses read
from the shared cache, refusals before anything is created, the entry point."""

from __future__ import annotations

import threading
import time
from importlib.metadata import entry_points
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_k8s.pod_cache import PodState, pod_state
from gp_k8s.provisioner import KubernetesProvisioner
from gp_provisioners_core.errors import InvalidLaunchParameterError, KernelSpecConfigError
from gp_provisioners_core.protocol import LAUNCH_SECRET_ENV

KERNEL_ID = "0b7c9f61-2d4e-4f7a-8a5b-5e2f6c1d9a30"


def provisioner(**config: Any) -> KubernetesProvisioner:
    spec = KernelSpec(
        argv=["python3", "launch.py"],
        display_name="k8s",
        env={"SPEC_VAR": "x"},
        metadata={"kernel_provisioner": {"provisioner_name": "kubernetes-provisioner"}},
    )
    return KubernetesProvisioner(kernel_id=KERNEL_ID, kernel_spec=spec, parent=None, **config)


def test_entry_point_is_registered() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="jupyter_client.kernel_provisioners")}
    assert names["kubernetes-provisioner"] == "gp_k8s.provisioner:KubernetesProvisioner"


def test_only_kernel_variables_travel_into_the_pod() -> None:
    p = provisioner(env_allowlist={"ALLOWED"})
    env = {
        "KERNEL_USERNAME": "alice",
        "ALLOWED": "1",
        "SPEC_VAR": "x",
        "GP_TRANSPORT_ENCRYPTION": "none",
        LAUNCH_SECRET_ENV: "s3cret",
        "AWS_SECRET_ACCESS_KEY": "server-only",
        "PATH": "/usr/bin",
    }
    assert p.pod_env(env) == {
        "KERNEL_USERNAME": "alice",
        "ALLOWED": "1",
        "SPEC_VAR": "x",
        "GP_TRANSPORT_ENCRYPTION": "none",
    }


def test_the_executor_image_is_the_configured_one() -> None:
    env = {"KERNEL_USERNAME": "alice", "KERNEL_EXECUTOR_IMAGE": "user/choice:1"}
    assert "KERNEL_EXECUTOR_IMAGE" not in provisioner().pod_env(env)
    configured = provisioner(executor_image_name="spark/executor:3").pod_env(env)
    assert configured["KERNEL_EXECUTOR_IMAGE"] == "spark/executor:3"


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ({"KERNEL_X=Y": "z"}, "'KERNEL_X=Y' is not a valid variable name"),
        ({"KERNEL_NOTE": "a\0b"}, "KERNEL_NOTE holds a NUL byte"),
    ],
)
async def test_variables_that_cannot_travel_are_refused_before_anything_is_created(
    variable: dict[str, str], expected: str
) -> None:
    p = provisioner(image_name="kernel:1")
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await p.pre_launch(env={"KERNEL_USERNAME": "alice", **variable})
    assert expected in str(refused.value)
    assert KERNEL_ID in str(refused.value)
    assert p.kernel_context.api is None


async def test_refusals_come_before_anything_is_created() -> None:
    p = provisioner(image_name="kernel:1")
    with pytest.raises(InvalidLaunchParameterError, match="KERNEL_UID='00'"):
        await p.pre_launch(env={"KERNEL_UID": "00", "KERNEL_USERNAME": "alice"})
    assert p.kernel_context.api is None  # no client was even built
    with pytest.raises(KernelSpecConfigError, match="no image configured"):
        await provisioner().pre_launch(env={"KERNEL_USERNAME": "alice"})


class FakeCache:
    def __init__(self, state: PodState | None, seen: bool, synced: bool = True) -> None:
        self.state, self.seen = state, seen
        self.synced = threading.Event()
        if synced:
            self.synced.set()

    def get(self, namespace: str, name: str) -> PodState | None:
        return self.state

    def has_seen(self, namespace: str, name: str) -> bool:
        return self.seen


def with_cache(cache: FakeCache, created_ago: float = 1.0) -> KubernetesProvisioner:
    p = provisioner(image_name="kernel:1")
    p.container_name = "kernel-x"
    p.kernel_namespace_name = "ns"
    p.kernel_context.pods = cache  # type: ignore[assignment]
    p.kernel_context.created_at = time.monotonic() - created_ago
    return p


def running() -> PodState:
    return pod_state(
        {
            "metadata": {"name": "kernel-x", "namespace": "ns"},
            "spec": {"nodeName": "n"},
            "status": {
                "phase": "Running",
                "containerStatuses": [{"name": "kernel", "state": {"running": {}}}],
            },
        }
    )


async def test_poll_reads_the_cache() -> None:
    assert await with_cache(FakeCache(running(), True)).poll() is None
    assert await with_cache(FakeCache(None, True)).poll() == 0  # gone
    # not yet seen right after creation, or before the watch synced: still starting
    assert await with_cache(FakeCache(None, False)).poll() is None
    assert await with_cache(FakeCache(None, False, synced=False), 999).poll() is None
    # never seen long after creation (e.g. deleted while no one watched): gone
    assert await with_cache(FakeCache(None, False), 999).poll() == 0
    failed = pod_state(
        {
            "metadata": {"name": "kernel-x", "namespace": "ns"},
            "status": {
                "phase": "Failed",
                "containerStatuses": [
                    {"name": "kernel", "state": {"terminated": {"exitCode": 137}}}
                ],
            },
        }
    )
    assert await with_cache(FakeCache(failed, True)).poll() == 137


@pytest.mark.asyncio
async def test_an_unreachable_api_is_one_clear_error_not_a_max_retry_error() -> None:
    from kubernetes import client as k8s_client

    from gp_k8s import operations as ops

    configuration = k8s_client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard port: nothing listens
    configuration.retries = 0
    api = k8s_client.ApiClient(configuration)
    with pytest.raises(ops.KubernetesUnreachableError) as caught:
        await ops.run_blocking(ops.delete_secret, api, "kernels", "s-launch")
    message = str(caught.value)
    assert "http://127.0.0.1:9" in message
    assert "delete_secret" in message
    assert "MaxRetryError" not in message
    assert "kubeconfig" in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [("GP_MAX_MEMORY", "lots"), ("GP_KERNEL_UID", "x1"), ("GP_MAX_CPUS", "many")],
)
def test_a_bad_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    from traitlets import TraitError

    from gp_k8s.settings import KubernetesSettings

    monkeypatch.setenv(variable, value)
    with pytest.raises((ValueError, TraitError)) as caught:
        KubernetesSettings().limits("kernel:1")
    assert variable in str(caught.value)
    assert repr(value) in str(caught.value)
