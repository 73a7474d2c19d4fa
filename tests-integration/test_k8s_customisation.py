"""Users' own pod customisations through the real kube-apiserver, scheduler and PV binder.

Each ``KERNEL_*`` customisation lands in the created pod as asked (image pull secrets, priority
and runtime classes, an affinity preset, labels, annotations, an allow-listed volume and the
user's own claim, created by the provisioner and bound by kube-controller-manager to a hostPath
PersistentVolume), and each value outside its allow-list or bound is refused before anything
is created, naming the variable.  Pods run through OUR NODE AGENT, NOT A KUBELET: it runs the
kernel as a local process and mounts no volumes, so what is shown is the pod the API accepted
and scheduled, and a kernel that answers; not a mount on a node.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from backends.customisation_objects import AFFINITY, customisation_objects
from backends.k8s_cluster import (
    K8sCluster,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
    raw,
)
from jupyter_client.manager import AsyncKernelManager

from gp_k8s.reaper import Reaper
from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.testing import isolated_jupyter_paths

NAMESPACE = "gp-custom"
PRIORITY = "gp-test-kernels"
RUNTIME = "gp-test-runc"
STORAGE_CLASS = "gp-test-manual"
PV = "gp-test-home-carol"
SETTINGS = {
    "GP_ALLOWED_IMAGE_PULL_SECRETS": "regcred",
    "GP_IMAGE_PULL_SECRETS": "base-pull",
    "GP_ALLOWED_PRIORITY_CLASSES": PRIORITY,
    "GP_ALLOWED_RUNTIME_CLASSES": RUNTIME,
    "GP_AFFINITY_PRESETS": json.dumps({"prefer-kernel-pool": AFFINITY}),
    "GP_ALLOWED_LABEL_KEYS": "team",
    "GP_ALLOWED_ANNOTATION_KEYS": "example.com/cost-centre",
    "GP_ALLOWED_VOLUMES": json.dumps(
        {"scratch": {"emptyDir": {"sizeLimit": "1Gi"}}, "shared": {"emptyDir": {}}}
    ),
    "GP_USER_VOLUME_CLAIM": "home-{username}",
    "GP_USER_VOLUME_MOUNT_PATH": "/home/jovyan/work",
    "GP_CREATE_USER_VOLUME_CLAIM": "true",
    "GP_USER_VOLUME_STORAGE_CLASS": STORAGE_CLASS,
}
ASKED = {
    "KERNEL_IMAGE_PULL_SECRETS": "regcred",
    "KERNEL_PRIORITY_CLASS_NAME": PRIORITY,
    "KERNEL_RUNTIME_CLASS_NAME": RUNTIME,
    "KERNEL_AFFINITY": "prefer-kernel-pool",
    "KERNEL_LABELS": "team=data-science",
    "KERNEL_ANNOTATIONS": '{"example.com/cost-centre": "42, north"}',
    "KERNEL_VOLUMES": "scratch=/scratch,shared=/mnt/shared:ro",
}


@pytest.fixture(scope="module")
def cluster_objects(k8s_cluster: K8sCluster) -> Iterator[K8sCluster]:
    """The namespace, the PriorityClass, RuntimeClass and the hostPath PersistentVolume the
    user's claim binds to; all removed afterwards (the claim too: users' data outlives
    kernels, so the test removes it itself)."""
    api = k8s_cluster.api_client()
    ensure_namespace(api, NAMESPACE)
    with customisation_objects(
        api,
        priority=PRIORITY,
        runtime=RUNTIME,
        volume=PV,
        storage_class=STORAGE_CLASS,
        claim=(NAMESPACE, "home-carol"),
        host_path="/tmp/gp-test-home-carol",
    ):
        yield k8s_cluster


@pytest.fixture(scope="module")
def spec(cluster_objects: K8sCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("jupyter-custom")
    with isolated_jupyter_paths(root) as prefix:
        yield install_kernelspec(
            prefix, "gp_k8s_custom", "--namespace", NAMESPACE, "--launch-timeout", "120"
        )


@pytest.fixture
def settings(k8s_cluster: K8sCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.asyncio
@pytest.mark.usefixtures("settings")
async def test_every_customisation_lands_in_the_pod(spec: str, k8s_cluster: K8sCluster) -> None:
    api = k8s_cluster.api_client()
    manager = AsyncKernelManager(kernel_name=spec)
    await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="carol", **ASKED))
    try:
        name = manager.provisioner.container_name  # type: ignore[union-attr]
        pod = raw(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
        spec_ = pod["spec"]
        assert [s["name"] for s in spec_["imagePullSecrets"]] == ["base-pull", "regcred"]
        assert spec_["priorityClassName"] == PRIORITY
        assert spec_["priority"] == 1000  # the admission plugin resolved the class
        assert spec_["runtimeClassName"] == RUNTIME
        assert spec_["affinity"] == AFFINITY
        assert pod["metadata"]["labels"]["team"] == "data-science"
        assert pod["metadata"]["annotations"]["example.com/cost-centre"] == "42, north"
        volumes = {v["name"]: v for v in spec_["volumes"]}
        assert volumes["user-volume"]["persistentVolumeClaim"] == {"claimName": "home-carol"}
        assert volumes["v-scratch"]["emptyDir"] == {"sizeLimit": "1Gi"}
        mounts = {m["mountPath"]: m for m in spec_["containers"][0]["volumeMounts"]}
        assert mounts["/home/jovyan/work"]["name"] == "user-volume"
        assert mounts["/scratch"]["name"] == "v-scratch"
        assert mounts["/mnt/shared"]["readOnly"] is True
        claim = raw(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/home-carol")
        assert claim["spec"]["storageClassName"] == STORAGE_CLASS
        assert claim["status"]["phase"] == "Bound"  # the pod was scheduled, so it was bound
        assert claim["spec"]["volumeName"] == PV
        assert await manager.is_alive()
    finally:
        await manager.shutdown_kernel(now=True)
    kernel_id = str(manager.kernel_id)
    assert await Reaper.shared().settled(kernel_id, 60)
    assert kernel_objects(api, kernel_id) == []
    # The user's data outlives the kernel.
    raw(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/home-carol")


REFUSED = [
    ("KERNEL_IMAGE_PULL_SECRETS", "other-secret"),
    ("KERNEL_PRIORITY_CLASS_NAME", "system-cluster-critical"),
    ("KERNEL_RUNTIME_CLASS_NAME", "kata"),
    ("KERNEL_AFFINITY", "everywhere"),
    ("KERNEL_AFFINITY", json.dumps(AFFINITY)),
    ("KERNEL_LABELS", "kernel-id=forged"),
    ("KERNEL_LABELS", "team=has spaces"),
    ("KERNEL_ANNOTATIONS", "gateway-provisioners/kernel-username=root"),
    ("KERNEL_ANNOTATIONS", "example.com/cost-centre=" + "x" * 2000),
    ("KERNEL_VOLUMES", "hostroot=/host"),
    ("KERNEL_VOLUMES", "scratch=/home/jovyan/work"),
    ("KERNEL_VOLUMES", "scratch=/a/../etc"),
    ("KERNEL_LABELS", ",".join(f"team=v{i}" for i in range(17))),
]


@pytest.mark.asyncio
@pytest.mark.usefixtures("settings")
@pytest.mark.parametrize(("variable", "value"), REFUSED)
async def test_refused_before_anything_is_created(
    spec: str, k8s_cluster: K8sCluster, variable: str, value: str
) -> None:
    api = k8s_cluster.api_client()
    manager = AsyncKernelManager(kernel_name=spec)
    before = raw(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims")
    started = time.monotonic()
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await manager.start_kernel(
            env=dict(os.environ, KERNEL_USERNAME="dave", **{variable: value})
        )
    assert time.monotonic() - started < 30
    message = str(refused.value)
    assert variable in message
    assert str(manager.kernel_id) in message
    assert kernel_objects(api, str(manager.kernel_id)) == []
    after = raw(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims")
    names = {c["metadata"]["name"] for c in after["items"]}
    assert "home-dave" not in names
    assert len(after["items"]) == len(before["items"])
