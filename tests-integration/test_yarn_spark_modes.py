"""The Python launcher's Spark context modes, for real, on a kernel submitted to YARN (the RM
emulator; the driver's Spark runs in local mode, as the spark-submit stand-in arranges).

Opt-in: pyspark is a ~400 MB download and starts a JVM (Java 17 is on the machine), too heavy
for every CI run.  Run with ``GP_TEST_PYSPARK=1``; the kernels use the Python in
``GP_TEST_PYSPARK_PYTHON`` (default: this one), which needs pyspark, ipykernel and cryptography.

- ``eager``: the SparkSession exists before the kernel answers its first request;
- ``lazy``: the kernel answers at once and the session arrives in the background;
- ``none``: no session at all.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from backends.yarn_harness import YarnBackendSetup, yarn_backend
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.testing.kernels import execute, isolated_jupyter_paths

PYTHON = os.environ.get("GP_TEST_PYSPARK_PYTHON") or sys.executable
pytestmark = pytest.mark.skipif(
    os.environ.get("GP_TEST_PYSPARK") != "1",
    reason="opt-in: set GP_TEST_PYSPARK=1 (needs pyspark, ~400 MB, and Java 17)",
)
SPARK_STARTUP = 120.0


@pytest.fixture(scope="module")
def yarn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnBackendSetup]:
    root = tmp_path_factory.mktemp("yarn-spark")
    with yarn_backend(root, ha=False) as setup, isolated_jupyter_paths(setup.jupyter_root):
        for mode in ("eager", "lazy", "none"):
            setup.install(
                f"spark_{mode}",
                "--yarn-endpoint",
                setup.endpoints[0],
                "--python",
                PYTHON,
                "--spark-init-mode",
                mode,
                "--launch-timeout",
                str(SPARK_STARTUP),
            )
        yield setup


@pytest.fixture
async def kernel(
    request: pytest.FixtureRequest, yarn: YarnBackendSetup, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[AsyncKernelClient, float]]:
    """A kernel of the mode named by the test's parameter; yields its client and how long it
    took to answer."""
    for name, value in yarn.env().items():
        monkeypatch.setenv(name, value)
    manager = AsyncKernelManager(kernel_name=f"spark_{request.param}")
    started = time.monotonic()
    await manager.start_kernel(env={**os.environ, "KERNEL_USERNAME": "alice"})
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=SPARK_STARTUP)
        yield client, time.monotonic() - started
    finally:
        client.stop_channels()
        assert manager.provisioner is not None
        app_id = (await manager.provisioner.get_provisioner_info())["application_id"]
        await manager.shutdown_kernel(now=True)
        assert await yarn.wait_no_leftovers(app_id) == []


HAS_SPARK = "print('spark' in globals())"
DESCRIBE = "print(type(spark).__name__, sc.master, sc.appName)"


@pytest.mark.parametrize("kernel", ["eager"], indirect=True)
async def test_eager_has_the_session_before_it_answers(
    kernel: tuple[AsyncKernelClient, float],
) -> None:
    client, _ = kernel
    described = (await execute(client, DESCRIBE, timeout=30)).stdout.split()
    assert described[:2] == ["SparkSession", "local[1]"]


@pytest.mark.parametrize("kernel", ["lazy"], indirect=True)
async def test_lazy_answers_first_and_builds_the_session_in_the_background(
    kernel: tuple[AsyncKernelClient, float],
) -> None:
    client, _ = kernel
    assert (await execute(client, HAS_SPARK)).stdout.strip() == "False"
    deadline = time.monotonic() + SPARK_STARTUP
    while (await execute(client, HAS_SPARK)).stdout.strip() != "True":
        assert time.monotonic() < deadline, "the lazy Spark session never arrived"
        await asyncio.sleep(0.5)
    described = (await execute(client, DESCRIBE, timeout=30)).stdout.split()
    assert described[:2] == ["SparkSession", "local[1]"]


@pytest.mark.parametrize("kernel", ["none"], indirect=True)
async def test_none_has_no_session(kernel: tuple[AsyncKernelClient, float]) -> None:
    client, _ = kernel
    assert (await execute(client, HAS_SPARK)).stdout.strip() == "False"
