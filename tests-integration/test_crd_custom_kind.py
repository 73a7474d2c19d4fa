"""Subclassing CustomResourceProvisioner for another CRD needs only the four attributes.

A tiny CRD (``KernelPod``, group gp.example.org) and a tiny controller written here (the generic
part of our operator emulator): it creates the pod in ``spec.podTemplate`` with an ownerReference
to the object and mirrors the pod's phase into ``.status.applicationState``.  Real apiserver,
controller-manager and scheduler; pods run through our node agent (not a kubelet).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from backends.crd_fixtures import install_crd_kernelspec
from backends.k8s_cluster import KERNEL_IMAGE, K8sCluster, ensure_namespace, raw
from backends.spark_crd import SPARK_SCHEMA, crd, install_crd
from backends.spark_operator_emulator import OperatorEmulator
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from gp_crd import CustomResourceProvisioner
from gp_provisioners_core.testing import isolated_jupyter_paths
from gp_provisioners_core.testing.kernels import execute

GROUP, VERSION, PLURAL, KIND = "gp.example.org", "v1", "kernelpods", "KernelPod"
NAMESPACE = "gp-crd-tiny"
TINY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "podTemplate": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            },
        },
        "status": SPARK_SCHEMA["properties"]["status"],
    },
}


class KernelPodProvisioner(CustomResourceProvisioner):
    """The whole subclass: four attributes."""

    group = GROUP
    version = VERSION
    plural = PLURAL
    object_kind = KIND


class TinyController(OperatorEmulator):
    group, version, plural, kind = GROUP, VERSION, PLURAL, KIND
    pod_selector = "tiny-controller=owned"
    app_label = "tiny-controller/object"

    def build_pod(self, obj: dict[str, Any], submission_id: str) -> dict[str, Any]:
        pod: dict[str, Any] = dict(obj["spec"]["podTemplate"])
        labels = pod["metadata"].setdefault("labels", {})
        labels.update({"tiny-controller": "owned", self.app_label: obj["metadata"]["name"]})
        return pod


class _EntryPoint:
    name = "kernel-pod-provisioner"
    value = f"{__name__}:KernelPodProvisioner"
    loaded: ClassVar[type] = KernelPodProvisioner

    def load(self) -> type:
        return self.loaded


@pytest.fixture(scope="module")
def tiny_kind(k8s_cluster: K8sCluster) -> Iterator[TinyController]:
    admin = k8s_cluster.api_client()
    install_crd(admin, crd(GROUP, VERSION, PLURAL, KIND, TINY_SCHEMA))
    ensure_namespace(admin, NAMESPACE)
    controller = TinyController(k8s_cluster.api_client()).start()
    yield controller
    controller.stop()


def _left(api: Any) -> list[str]:
    objects = raw(api, "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}")
    pods = raw(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods")
    return [f"kernelpod {o['metadata']['name']}" for o in objects.get("items") or []] + [
        f"pod {p['metadata']['name']}" for p in pods.get("items") or []
    ]


def test_subclass_sets_only_the_four_attributes() -> None:
    own = {k for k in vars(KernelPodProvisioner) if not k.startswith("_")}
    assert own == {"group", "version", "plural", "object_kind"}
    with pytest.raises(TypeError, match="must set group"):
        CustomResourceProvisioner()


@pytest.mark.asyncio
async def test_tiny_kind_runs_a_kernel_and_leaves_nothing(
    k8s_cluster: K8sCluster,
    tiny_kind: TinyController,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))
    factory = KernelProvisionerFactory.instance()
    monkeypatch.setitem(factory.provisioners, _EntryPoint.name, _EntryPoint())
    api = k8s_cluster.api_client()
    assert _left(api) == []
    with isolated_jupyter_paths(tmp_path) as prefix:
        name = install_crd_kernelspec(
            prefix, "gp_tiny", "--image-name", KERNEL_IMAGE, "--namespace", NAMESPACE
        )
        kernel_json = prefix / "share" / "jupyter" / "kernels" / name / "kernel.json"
        text = kernel_json.read_text().replace("spark-operator-provisioner", _EntryPoint.name)
        kernel_json.write_text(text)
        manager = AsyncKernelManager(kernel_name=name)
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="tiny"))
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            result = await execute(client, "print(6 * 7)")
            assert result.stdout.strip() == "42"
            provisioner = manager.provisioner
            assert isinstance(provisioner, KernelPodProvisioner)
            assert provisioner.get_container_status() == "running"
            pod = raw(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"][0]
            owner = pod["metadata"]["ownerReferences"][0]
            assert (owner["kind"], owner["name"]) == (KIND, provisioner.container_name)
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=False)
    # Only the KernelPod was deleted: the garbage collector removed its pod.
    deadline = time.monotonic() + 30
    while _left(api) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _left(api) == []
