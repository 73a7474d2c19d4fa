"""Scala (Apache Toree) kernels in containers of the Scala image (docker-images/scala), on the
suites' private dockerd: the conformance suite with Scala snippets and a Spark job (eager
context), and a Spark job with a lazy context.  The image is built once (its tarball is
cached like the Python image's); the kernel is one JVM: run_toree.sh, the Java launcher, Toree.
"""

from __future__ import annotations

import pytest
from backends.docker_fixtures import DockerContainerBackend
from backends.dockerd import DockerBackend, DockerKernelspecs
from scala_helpers import (
    SCALA_LAUNCH_TIMEOUT,
    ensure_scala_image,
    scala_opt_in,
    spark_job_in_new_kernel,
)

from gp_provisioners_core.testing.conformance import SCALA, ProvisionerConformance

pytestmark = scala_opt_in


EAGER = "gp_docker_scala_eager"
LAZY = "gp_docker_scala_lazy"


@pytest.fixture(scope="session")
def scala_image(docker_backend: DockerBackend) -> str:
    return ensure_scala_image(docker_backend.daemon)


@pytest.fixture(scope="session")
def docker_scala_specs(
    docker_kernelspecs: DockerKernelspecs, scala_image: str
) -> DockerKernelspecs:
    for name, mode in ((EAGER, "eager"), (LAZY, "lazy")):
        docker_kernelspecs.install(
            name, "--language", "Scala", "--image-name", scala_image,
            "--spark-init-mode", mode, "--launch-timeout", str(SCALA_LAUNCH_TIMEOUT),
        )  # fmt: skip
    return docker_kernelspecs


class TestDockerScalaConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(self, docker_scala_specs: DockerKernelspecs) -> DockerContainerBackend:
        return DockerContainerBackend(
            kernel_name=EAGER,
            language=SCALA,
            launch_timeout=SCALA_LAUNCH_TIMEOUT,
            base_url=docker_scala_specs.backend.base_url,
        )

    @pytest.mark.asyncio
    async def test_lazy_context_runs_a_spark_job(
        self, docker_scala_specs: DockerKernelspecs
    ) -> None:
        output, _ = await spark_job_in_new_kernel(LAZY, {"KERNEL_USERNAME": "conformance"})
        assert output == SCALA.spark_answer
