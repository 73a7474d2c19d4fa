"""The conformance suite for both gp-docker provisioners, against a real dockerd and Swarm.

Real kernels in containers, started by the launcher inside them, answering the response manager
on 127.0.0.1 (host networking).  The Docker provisioner's suite runs once per kernel image:
each image docker-images/build.py makes (Python, R, Spark-Python) and one built FROM a plain
Debian + Python base with ``jupyter image-bootstrap install``
(backends/kernel_images.py), each with the kernelspec ``jupyter docker-spec install
--image-name <image>`` writes (``--language R`` / ``--spark`` for those), unmodified.  Swarm's
suite runs on the Python image.
"""

from __future__ import annotations

import re
import time

import pytest
from backends.docker_fixtures import DockerContainerBackend, SwarmServiceBackend
from backends.dockerd import DockerKernelspecs
from backends.kernel_images import IMAGES, KernelImage, ensure_kernel_image

from gp_provisioners_core.testing.conformance import ConformanceBackend, ProvisionerConformance


@pytest.fixture(scope="module", params=list(IMAGES))
def image_spec(
    request: pytest.FixtureRequest, docker_kernelspecs: DockerKernelspecs
) -> tuple[KernelImage, str]:
    """One kernel image in the daemon and its kernelspec, as the installer writes it."""
    from backends.system_packages import cannot_run

    base_url = docker_kernelspecs.backend.base_url
    started = time.monotonic()
    try:
        image, outcome = ensure_kernel_image(base_url, request.param)
    except RuntimeError as err:  # build.py's BuildUnavailable / BuildFailed
        cannot_run(f"kernel image {request.param} cannot be made here: {err}")
    print(f"{image.tag}: {outcome} in {time.monotonic() - started:.1f}s")
    name = f"gp_docker_{request.param.replace('-', '_')}"
    docker_kernelspecs.install(name, "--image-name", image.tag, *image.flags)
    return image, name


class TestDockerConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(
        self, docker_kernelspecs: DockerKernelspecs, image_spec: tuple[KernelImage, str]
    ) -> ConformanceBackend:
        image, kernel_name = image_spec
        return DockerContainerBackend(
            kernel_name=kernel_name,
            base_url=docker_kernelspecs.backend.base_url,
            language=image.language,
            launch_timeout=120,
        )


class TestSwarmConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(self, docker_kernelspecs: DockerKernelspecs) -> ConformanceBackend:
        return SwarmServiceBackend(
            kernel_name=docker_kernelspecs.swarm, base_url=docker_kernelspecs.backend.base_url
        )


@pytest.mark.asyncio
async def test_spark_image_runs_spark(docker_kernelspecs: DockerKernelspecs) -> None:
    """The Spark-Python image's ``--spark`` kernel has a working Spark session (local mode,
    the JVM from Debian's Java 17): a job runs and returns its count."""
    from jupyter_client.manager import AsyncKernelManager

    from gp_provisioners_core.testing.kernels import execute

    try:
        image, _ = ensure_kernel_image(docker_kernelspecs.backend.base_url, "spark-python")
    except RuntimeError as err:
        pytest.fail(f"the Spark image cannot be made here: {err}")
    docker_kernelspecs.install("gp_docker_spark_job", "--image-name", image.tag, *image.flags)
    manager = AsyncKernelManager(kernel_name="gp_docker_spark_job")
    await manager.start_kernel(env={"KERNEL_USERNAME": "spark"})
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=120)
        # lazy mode (the --spark default) makes the session in a thread while the kernel
        # starts: wait for it in the cell, then run a job
        job = (
            "import time\n"
            "deadline = time.monotonic() + 150\n"
            "while 'spark' not in globals() and time.monotonic() < deadline:\n"
            "    time.sleep(0.2)\n"
            "print(spark.range(1000).filter('id % 7 = 0').count())\n"
        )
        result = await execute(client, job, timeout=180)
        # the JVM's warnings and progress bar share the cell's stdout
        lines = [line.strip() for line in re.split(r"[\r\n]", result.stdout)]
        assert "143" in lines, result
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
