"""Users' customisations of a Spark-operator kernel through the real kube-apiserver.

A customised launch produces the SparkApplication as asked (resources, pull secrets, priority
and runtime classes, an affinity preset, node selector, tolerations, labels and annotations on
the driver and the executors, allow-listed volumes and the user's own claim mounted in the
driver), stored through the SparkApplication CRD of backends/spark_crd.py; the driver pod made
from it is admitted (the priority class resolved) and scheduled (the user's claim, created by
the provisioner, bound by kube-controller-manager), and its kernel answers.  A value outside
its allow-list or bound is refused before anything is created, naming the variable.

THE SPARK OPERATOR IS EMULATED (backends/spark_operator_emulator.py) and pods run through OUR
NODE AGENT, NOT A KUBELET: it runs the kernel as a local process and mounts no volumes, so what
is shown is the application and the driver pod the API accepted and scheduled, not a mount on
a node.  The provisioner authenticates as the cluster's admin here (gp-crd's shipped RBAC has
no claim rights unless the operator adds them; see test_crd_spark_conformance.py for the
shipped RBAC).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from backends.crd_fixtures import (
    KERNEL_NAMESPACE,
    install_crd_kernelspec,
)
from backends.customisation_objects import AFFINITY, customisation_objects
from backends.k8s_cluster import (
    KERNEL_IMAGE,
    NODE_NAME,
    K8sCluster,
    kernel_objects,
    raw,
)
from jupyter_client.manager import AsyncKernelManager

from gp_k8s.reaper import Reaper
from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.testing import isolated_jupyter_paths

APPS = f"/apis/sparkoperator.k8s.io/v1beta2/namespaces/{KERNEL_NAMESPACE}/sparkapplications"
CLAIMS = f"/api/v1/namespaces/{KERNEL_NAMESPACE}/persistentvolumeclaims"
PRIORITY = "gp-test-spark-kernels"
RUNTIME = "gp-test-spark-runc"
STORAGE_CLASS = "gp-test-spark-manual"
PV = "gp-test-spark-home-erin"
SETTINGS = {
    "GP_MAX_MEMORY": "2Gi",
    "GP_ALLOWED_NODE_SELECTOR_KEYS": "kubernetes.io/hostname",
    "GP_ALLOWED_TOLERATION_KEYS": "gp-test/dedicated",
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
    "KERNEL_CPUS": "0.5",
    "KERNEL_MEMORY": "256Mi",
    "KERNEL_NODE_SELECTOR": f"kubernetes.io/hostname={NODE_NAME}",
    "KERNEL_TOLERATIONS": "gp-test/dedicated:NoSchedule",
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
    """The PriorityClass, RuntimeClass and hostPath PersistentVolume the user's claim binds
    to; all removed afterwards, with the claim (users' data outlives kernels, so the test
    removes it itself)."""
    api = k8s_cluster.api_client()
    with customisation_objects(
        api,
        priority=PRIORITY,
        runtime=RUNTIME,
        volume=PV,
        storage_class=STORAGE_CLASS,
        claim=(KERNEL_NAMESPACE, "home-erin"),
        host_path="/tmp/gp-test-spark-home-erin",
    ):
        yield k8s_cluster


@pytest.fixture(scope="module")
def spec(
    cluster_objects: K8sCluster, spark_operator: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("jupyter-crd-custom")
    with isolated_jupyter_paths(root) as prefix:
        yield install_crd_kernelspec(
            prefix, "gp_spark_custom", "--image-name", KERNEL_IMAGE, "--launch-timeout", "120"
        )


@pytest.fixture
def settings(k8s_cluster: K8sCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.asyncio
@pytest.mark.usefixtures("settings", "crd_nothing_left")
async def test_a_customised_launch_produces_the_application_as_asked(
    spec: str, k8s_cluster: K8sCluster
) -> None:
    api = k8s_cluster.api_client()
    manager = AsyncKernelManager(kernel_name=spec)
    await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="erin", **ASKED))
    try:
        name = manager.provisioner.container_name  # type: ignore[union-attr]
        app = raw(api, "GET", f"{APPS}/{name}")["spec"]  # as stored, after the CRD's pruning
        driver, executor = app["driver"], app["executor"]
        assert driver["cores"] == 1
        assert driver["coreRequest"] == "500m"
        assert driver["memory"] == "256m"
        assert app["imagePullSecrets"] == ["base-pull", "regcred"]
        toleration = {"key": "gp-test/dedicated", "operator": "Exists", "effect": "NoSchedule"}
        for pods in (driver, executor):
            assert pods["nodeSelector"] == {"kubernetes.io/hostname": NODE_NAME}
            assert pods["tolerations"] == [toleration]
            assert pods["affinity"] == AFFINITY
            assert pods["priorityClassName"] == PRIORITY
            assert pods["runtimeClassName"] == RUNTIME
            assert pods["labels"]["team"] == "data-science"
            assert pods["annotations"]["example.com/cost-centre"] == "42, north"
        volumes = {v["name"]: v for v in app["volumes"]}
        assert volumes["user-volume"]["persistentVolumeClaim"] == {"claimName": "home-erin"}
        assert volumes["v-scratch"]["emptyDir"] == {"sizeLimit": "1Gi"}
        mounts = {m["mountPath"]: m for m in driver["volumeMounts"]}
        assert mounts["/home/jovyan/work"]["name"] == "user-volume"
        assert mounts["/scratch"]["name"] == "v-scratch"
        assert mounts["/mnt/shared"]["readOnly"] is True

        # The driver pod the (emulated) operator made from it, as the API admitted it.
        pod = raw(api, "GET", f"/api/v1/namespaces/{KERNEL_NAMESPACE}/pods/{name}-driver")
        pod_spec = pod["spec"]
        assert pod_spec["priority"] == 1000  # the admission plugin resolved the class
        assert pod_spec["runtimeClassName"] == RUNTIME
        assert [s["name"] for s in pod_spec["imagePullSecrets"]] == ["base-pull", "regcred"]
        assert pod_spec["containers"][0]["resources"]["requests"]["cpu"] == "500m"
        assert pod["metadata"]["labels"]["team"] == "data-science"
        claim = raw(api, "GET", f"{CLAIMS}/home-erin")
        assert claim["spec"]["storageClassName"] == STORAGE_CLASS
        assert claim["status"]["phase"] == "Bound"  # the pod was scheduled, so it was bound
        assert await manager.is_alive()
    finally:
        await manager.shutdown_kernel(now=True)
    kernel_id = str(manager.kernel_id)
    assert await Reaper.shared().settled(kernel_id, 60)
    assert kernel_objects(api, kernel_id) == []
    raw(api, "GET", f"{CLAIMS}/home-erin")  # the user's data outlives the kernel


REFUSED = [
    ("KERNEL_CPUS", "5"),
    ("KERNEL_MEMORY", "3Gi"),
    ("KERNEL_GPUS", "1"),
    ("KERNEL_NODE_SELECTOR", "zone=eu"),
    ("KERNEL_TOLERATIONS", "dedicated:NoSchedule"),
    ("KERNEL_IMAGE_PULL_SECRETS", "other-secret"),
    ("KERNEL_PRIORITY_CLASS_NAME", "system-cluster-critical"),
    ("KERNEL_RUNTIME_CLASS_NAME", "kata"),
    ("KERNEL_AFFINITY", json.dumps(AFFINITY)),
    ("KERNEL_LABELS", "kernel-id=forged"),
    ("KERNEL_ANNOTATIONS", "gateway-provisioners/kernel-username=root"),
    ("KERNEL_VOLUMES", "hostroot=/host"),
]


@pytest.mark.asyncio
@pytest.mark.usefixtures("settings", "crd_nothing_left")
@pytest.mark.parametrize(("variable", "value"), REFUSED)
async def test_a_refused_launch_creates_nothing(
    spec: str, k8s_cluster: K8sCluster, variable: str, value: str
) -> None:
    api = k8s_cluster.api_client()
    claims = {c["metadata"]["name"] for c in raw(api, "GET", CLAIMS)["items"]}
    manager = AsyncKernelManager(kernel_name=spec)
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await manager.start_kernel(
            env=dict(os.environ, KERNEL_USERNAME="frank", **{variable: value})
        )
    message = str(refused.value)
    assert variable in message
    assert str(manager.kernel_id) in message
    assert raw(api, "GET", APPS)["items"] == []
    assert kernel_objects(api, str(manager.kernel_id)) == []
    after = {c["metadata"]["name"] for c in raw(api, "GET", CLAIMS)["items"]}
    assert after == claims
    assert "home-frank" not in after
