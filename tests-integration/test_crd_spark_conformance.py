"""The conformance suite over SparkOperatorProvisioner, and its fail-fast path.

Real etcd, kube-apiserver, kube-controller-manager (its garbage collector removes driver pods
with their SparkApplication) and kube-scheduler on loopback, with the SparkApplication CRD of
backends/spark_crd.py.  THE SPARK OPERATOR IS EMULATED (backends/spark_operator_emulator.py),
and pods run through OUR NODE AGENT, NOT A KUBELET: the driver container runs the launcher of
this checkout as a local process (spark context mode none).  The provisioner runs as the
service account of gp-crd's shipped RBAC (deploy/rbac-spark-operator.yaml), so the suite also
shows that those grants are enough; the kernelspecs come from ``jupyter k8s-spec install --crd
--spark``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends.crd_fixtures import (
    SparkBackend,
    install_crd_kernelspec,
    rbac_kubeconfig,
)
from backends.k8s_cluster import K8sCluster
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.testing import ProvisionerConformance, isolated_jupyter_paths

FORBIDDEN_IMAGE = "gp-test/not-allowed:1"


@pytest.fixture(scope="module")
def crd_kernelspecs(
    k8s_cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("jupyter-crd")
    with isolated_jupyter_paths(root) as prefix:
        from backends.k8s_cluster import KERNEL_IMAGE

        yield {
            "ok": install_crd_kernelspec(
                prefix, "gp_spark_op", "--image-name", KERNEL_IMAGE, "--launch-timeout", "120"
            ),
            "forbidden": install_crd_kernelspec(
                prefix, "gp_spark_op_bad", "--image-name", FORBIDDEN_IMAGE, "--launch-timeout", "60"
            ),
        }


@pytest.fixture(scope="module")
def server_kubeconfig(k8s_cluster: K8sCluster) -> Path:
    """The host application's credentials: gp-crd's shipped RBAC, nothing more."""
    return rbac_kubeconfig(k8s_cluster, "gp-crd-server")


@pytest.fixture
def crd_env(server_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_KUBECONFIG", str(server_kubeconfig))


@pytest.mark.usefixtures("crd_nothing_left", "crd_env")
class TestSparkOperatorConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(
        self, k8s_cluster: K8sCluster, crd_kernelspecs: dict[str, str]
    ) -> SparkBackend:
        return SparkBackend(
            kernel_name=crd_kernelspecs["ok"], launch_timeout=120, cluster=k8s_cluster
        )


@pytest.mark.asyncio
@pytest.mark.usefixtures("crd_nothing_left", "crd_env")
async def test_submission_failure_ends_launch_with_operator_message(
    crd_kernelspecs: dict[str, str],
) -> None:
    manager = AsyncKernelManager(kernel_name=crd_kernelspecs["forbidden"])
    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the message is what matters
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="crd-test"))
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert elapsed < 10, f"took {elapsed:.1f}s: {message}"
    assert "SUBMISSION_FAILED" in message
    assert "failed to run spark-submit" in message
    assert f"image {FORBIDDEN_IMAGE!r} is not allowed" in message
    if manager.has_kernel:
        await manager.shutdown_kernel(now=True)
    await manager.cleanup_resources()
    print(f"submission failure reported in {elapsed:.2f}s: {message.splitlines()[0]}")
