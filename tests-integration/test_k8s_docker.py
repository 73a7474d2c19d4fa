"""The conformance suite with the project's kernel image in dockerd, through the real
kube-apiserver and scheduler.

Pods run through OUR NODE AGENT, NOT A KUBELET: a second agent ("gp-node-docker") runs each
pod's container with the private dockerd of backends/dockerd.py on the host network.  The suite
runs once per kernel image (backends/kernel_images.py: Python, R, Spark-Python from
docker-images/, and one built FROM a plain Debian + Python base with ``jupyter image-bootstrap
install``), each with the kernelspec ``jupyter k8s-spec install --image-name <image>`` writes
(``--language R`` / ``--spark`` for those): its argv (``python3
/usr/local/bin/launch_ipykernel.py ...``) is the installer's.  The node is tainted, and only
this module's kernelspecs (the operator pod template given with ``--pod-template``) tolerate
the taint and select the node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from backends.dockerd import DockerBackend
from backends.k8s_cluster import (
    K8sCluster,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
    raw,
)
from backends.kernel_images import IMAGES, KernelImage, ensure_kernel_image
from scala_helpers import scala_opt_in

from gp_k8s.reaper import Reaper
from gp_provisioners_core.testing import (
    ConformanceBackend,
    ProvisionerConformance,
    isolated_jupyter_paths,
)

NODE = "gp-node-docker"
NAMESPACE = "gp-docker-kernels"
POD_TEMPLATE = """\
apiVersion: v1
kind: Pod
spec:
  nodeSelector:
    gateway-provisioners/runtime: docker
  tolerations:
    - key: gateway-provisioners/runtime
      operator: Equal
      value: docker
      effect: NoSchedule
"""


@dataclass
class DockerNodeBackend(ConformanceBackend):
    cluster: K8sCluster | None = None
    docker: DockerBackend | None = None

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        assert self.cluster is not None
        raw(
            self.cluster.api_client(),
            "DELETE",
            f"/api/v1/namespaces/{provisioner_info['kernel_namespace_name']}/pods/"
            f"{provisioner_info['container_name']}",
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
        )

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        """This launch's pod and Secret, and its container in dockerd.  A pod that already
        ended is deleted at once and its node removes the container afterwards (as a
        kubelet's container cleanup does): the container gets a few seconds to go."""
        assert self.cluster is not None
        assert self.docker is not None
        # stopping returns once the container stopped; the reaper sees the pod object go
        await Reaper.shared().settled(str(provisioner_info["kernel_id"]), 60)
        pod = provisioner_info["container_name"]
        found = [
            o
            for o in kernel_objects(self.cluster.api_client(), provisioner_info["kernel_id"])
            if o.endswith(pod) or o.endswith(provisioner_info["launch_secret_name"])
        ]
        client = self.docker.daemon.client()
        deadline = time.monotonic() + 15
        while True:
            names = [
                str(c.attrs.get("Names") or c.id)
                for c in client.containers.list(all=True, sparse=True, filters={"name": f"_{pod}_"})
            ]  # sparse: no inspect of a container that may be going away meanwhile
            if not names or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        found += [f"container {name}" for name in names]
        return found


@pytest.fixture(scope="module")
def docker_node(k8s_cluster: K8sCluster, docker_backend: DockerBackend) -> Iterator[str]:
    agent = k8s_cluster.add_node_agent(
        NODE,
        extra=(
            "--docker-host",
            docker_backend.base_url,
            "--label",
            "gateway-provisioners/runtime=docker",
            "--taint",
            "gateway-provisioners/runtime=docker:NoSchedule",
        ),
    )
    try:
        k8s_cluster.wait_node_ready(NODE)
        yield NODE
    finally:
        k8s_cluster.remove_node_agent(agent)


@pytest.fixture(scope="module")
def jupyter_prefix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A JUPYTER_PATH of this module's own and the operator's pod template."""
    root = tmp_path_factory.mktemp("jupyter-k8s-docker")
    template = root / "docker-node.yaml"
    template.write_text(POD_TEMPLATE)
    with isolated_jupyter_paths(root) as prefix:
        yield prefix, template


@pytest.fixture(scope="module", params=list(IMAGES))
def docker_kernelspec(
    request: pytest.FixtureRequest,
    k8s_cluster: K8sCluster,
    docker_backend: DockerBackend,
    docker_node: str,
    jupyter_prefix: tuple[Path, Path],
) -> tuple[KernelImage, str]:
    """One kernel image in the node's dockerd and its kernelspec, as the installer writes it."""
    from backends.system_packages import cannot_run

    from gp_k8s.cli import main as install

    ensure_namespace(k8s_cluster.api_client(), NAMESPACE)
    try:
        image, outcome = ensure_kernel_image(docker_backend.base_url, request.param)
    except RuntimeError as err:  # build.py's BuildUnavailable / BuildFailed
        cannot_run(f"kernel image {request.param} cannot be made here: {err}")
    print(f"{image.tag}: {outcome}")
    prefix, template = jupyter_prefix
    name = f"gp_k8s_docker_{request.param.replace('-', '_')}"
    install(
        [
            *("install", "--prefix", str(prefix), "--kernel-name", name, "--replace"),
            *("--image-name", image.tag, *image.flags),
            *("--namespace", NAMESPACE, "--launch-timeout", "120"),
            *("--pod-template", str(template)),
        ]
    )
    return image, name


class TestK8sDockerNodeConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(
        self,
        k8s_cluster: K8sCluster,
        docker_backend: DockerBackend,
        docker_kernelspec: tuple[KernelImage, str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> DockerNodeBackend:
        monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
        monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))
        image, kernel_name = docker_kernelspec
        return DockerNodeBackend(
            kernel_name=kernel_name,
            language=image.language,
            launch_timeout=120,
            cluster=k8s_cluster,
            docker=docker_backend,
        )


# -- Scala (Apache Toree) in the Scala image ---------------------------------------------------

SCALA_KERNEL = "gp_k8s_docker_scala"


@pytest.fixture(scope="module")
def scala_kernelspec(
    k8s_cluster: K8sCluster,
    docker_backend: DockerBackend,
    docker_node: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A Scala spec (eager Spark context) whose pod runs the Scala image on the docker node."""
    from scala_helpers import SCALA_LAUNCH_TIMEOUT, ensure_scala_image

    image = ensure_scala_image(docker_backend.daemon)
    ensure_namespace(k8s_cluster.api_client(), NAMESPACE)
    root = tmp_path_factory.mktemp("jupyter-k8s-docker-scala")
    template = root / "docker-node.yaml"
    template.write_text(POD_TEMPLATE)
    with isolated_jupyter_paths(root) as prefix:
        yield install_kernelspec(
            prefix, SCALA_KERNEL, "--namespace", NAMESPACE, "--language", "Scala",
            "--spark-init-mode", "eager", "--launch-timeout", str(SCALA_LAUNCH_TIMEOUT),
            "--image-name", image, "--pod-template", str(template),
        )  # fmt: skip


@scala_opt_in
class TestK8sDockerNodeScalaConformance(ProvisionerConformance):
    """A Scala kernel in a pod of the Scala image: Scala snippets and a Spark job."""

    @pytest.fixture
    def conformance_backend(
        self,
        k8s_cluster: K8sCluster,
        docker_backend: DockerBackend,
        scala_kernelspec: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> DockerNodeBackend:
        from scala_helpers import SCALA_LAUNCH_TIMEOUT

        from gp_provisioners_core.testing.conformance import SCALA

        monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
        monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))
        return DockerNodeBackend(
            kernel_name=scala_kernelspec,
            language=SCALA,
            launch_timeout=SCALA_LAUNCH_TIMEOUT,
            cluster=k8s_cluster,
            docker=docker_backend,
        )
