"""pytest fixtures of the custom-resource suites (gp-crd): the SparkApplication CRD on the
Kubernetes test cluster, our Spark-operator EMULATOR (no real operator runs here), kernelspecs
from ``jupyter k8s-spec install --crd --spark``, gp-crd's shipped RBAC, and the no-leftovers
check (``crd_nothing_left``).  Registered for every suite by ``pytest_plugins`` in
``tests-integration/conftest.py``."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends.k8s_cluster import (
    KERNEL_IMAGE,
    K8sCluster,
    apply_manifests,
    ensure_namespace,
    kernel_objects,
    kernel_process_alive,
    load_manifests,
    raw,
    service_account_kubeconfig,
    wait_until_allowed,
)
from backends.spark_crd import SPARK_CRD, install_crd
from backends.spark_operator_emulator import SparkOperatorEmulator
from gp_k8s.reaper import Reaper
from gp_provisioners_core.testing import ConformanceBackend

KERNEL_NAMESPACE = "gp-crd-kernels"
SPARK_GROUP = "sparkoperator.k8s.io"
CRD_RBAC = Path(__file__).resolve().parents[2] / "packages/gp-crd/deploy/rbac-spark-operator.yaml"
SPARK_APPS = "/apis/sparkoperator.k8s.io/v1beta2/sparkapplications"


def install_crd_kernelspec(prefix: Path, name: str, *flags: str) -> str:
    """``jupyter k8s-spec install --crd --spark`` (gateway_provisioners' spelling) a spec whose
    driver runs the launcher of this checkout with this Python (the node agent runs it as a
    local process); no pyspark here, so the Spark context mode is ``none``."""
    from gp_k8s.cli import main as install

    assert (
        install(
            [
                "install",
                "--crd",
                "--spark",
                "--spark-init-mode",
                "none",
                "--prefix",
                str(prefix),
                "--kernel-name",
                name,
                "--python",
                sys.executable,
                "--image-launcher",
                "{resource_dir}/scripts/launch_ipykernel.py",
                "--namespace",
                KERNEL_NAMESPACE,
                "--replace",
                *flags,
            ]
        )
        == 0
    )
    return name


def rbac_kubeconfig(cluster: K8sCluster, server_namespace: str) -> Path:
    """Apply gp-crd's shipped RBAC (deploy/rbac-spark-operator.yaml) for a server in
    ``server_namespace`` and kernels in KERNEL_NAMESPACE; return that account's kubeconfig."""
    admin = cluster.api_client()
    ensure_namespace(admin, server_namespace)
    ensure_namespace(admin, KERNEL_NAMESPACE)
    docs = load_manifests(CRD_RBAC, {"jupyter": server_namespace, "kernels": KERNEL_NAMESPACE})
    for doc in docs:  # one Role and binding per server account: all share the kernels' namespace
        if doc["kind"] in ("Role", "RoleBinding"):
            doc["metadata"]["name"] += f"-{server_namespace}"
        if doc.get("roleRef", {}).get("kind") == "Role":
            doc["roleRef"]["name"] += f"-{server_namespace}"
    apply_manifests(admin, docs)
    user = f"system:serviceaccount:{server_namespace}:gateway-provisioners"
    wait_until_allowed(
        admin, user, "create", "sparkapplications", KERNEL_NAMESPACE, group=SPARK_GROUP
    )
    return service_account_kubeconfig(cluster, server_namespace, "gateway-provisioners")


_operator: SparkOperatorEmulator | None = None


@pytest.fixture(scope="session")
def spark_operator(k8s_cluster: K8sCluster) -> Iterator[SparkOperatorEmulator]:
    """The process's one operator emulator (two would both reconcile every SparkApplication;
    a real operator elects a leader), started on first use and stopped at the session's end."""
    global _operator
    operator = _operator
    if operator is None:
        admin = k8s_cluster.api_client()
        install_crd(admin, SPARK_CRD)
        ensure_namespace(admin, KERNEL_NAMESPACE)
        operator = SparkOperatorEmulator(k8s_cluster.api_client(), {KERNEL_IMAGE})
        operator.start()
        _operator = operator
    yield operator
    operator.stop()
    _operator = None


def crd_leftovers(api: Any, namespace: str = KERNEL_NAMESPACE) -> list[str]:
    """Every custom resource and kernel pod left in ``namespace``."""
    found = []
    for item in raw(api, "GET", SPARK_APPS).get("items") or []:
        found.append(f"sparkapplication {item['metadata']['namespace']}/{item['metadata']['name']}")
    for item in raw(api, "GET", f"/api/v1/namespaces/{namespace}/pods").get("items") or []:
        found.append(f"pod {namespace}/{item['metadata']['name']}")
    return found


@pytest.fixture
def crd_nothing_left(
    k8s_cluster: K8sCluster, spark_operator: SparkOperatorEmulator
) -> Iterator[None]:
    """After the test: zero SparkApplications and zero pods (waits briefly for deletions
    that were already requested), and no error of the operator emulator during the test.

    The emulator is the session's and runs between tests too: errors it had before this test
    (another module restarting the apiserver, say) are not this test's."""
    api = k8s_cluster.api_client()
    assert crd_leftovers(api) == [], "leftovers from an earlier test"
    errors_before = len(spark_operator.errors)
    yield
    deadline = time.monotonic() + 90  # slack after a stalled apiserver
    while crd_leftovers(api) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert crd_leftovers(api) == []
    during = spark_operator.errors[errors_before:]
    assert during == [], during


@dataclass
class SparkBackend(ConformanceBackend):
    cluster: K8sCluster | None = None

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        """Delete the driver pod at once (grace 0) behind the provisioner's back."""
        assert self.cluster is not None
        namespace = provisioner_info["kernel_namespace_name"]
        name = f"{provisioner_info['container_name']}-driver"
        await asyncio.to_thread(
            raw,
            self.cluster.api_client(),
            "DELETE",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
        )

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        """This launch's SparkApplication, driver pod, launch Secret and processes, once the
        reaper saw through what the kernel's stop deleted (bounded)."""
        assert self.cluster is not None
        await Reaper.shared().settled(str(provisioner_info["kernel_id"]), 60)
        api = self.cluster.api_client()
        namespace = provisioner_info["kernel_namespace_name"]
        name = provisioner_info["container_name"]
        found = []
        apps = await asyncio.to_thread(raw, api, "GET", SPARK_APPS)
        found += [
            f"sparkapplication {a['metadata']['name']}"
            for a in apps.get("items") or []
            if a["metadata"]["name"] == name
        ]
        objects = await asyncio.to_thread(kernel_objects, api, provisioner_info["kernel_id"])
        for own in (f"{name}-driver", provisioner_info["launch_secret_name"]):
            found += [o for o in objects if o.endswith(f"{namespace}/{own}")]
        kernel_id = str(provisioner_info["kernel_id"])
        for key in ("pid", "kernel_pid"):
            if kernel_process_alive(int(provisioner_info.get(key) or 0), kernel_id):
                found.append(f"{key} {provisioner_info[key]} still runs")
        return found
