"""Shared by the Scala (Apache Toree) suites: install a Scala kernelspec for a runtime, and
the second Spark context mode's check (the conformance kit covers the first)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backends import dockerd
from backends.scala_runtime import ScalaRuntime, missing_jdk, scala_runtime
from backends.system_packages import cannot_run
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.testing.conformance import SCALA
from gp_provisioners_core.testing.kernels import execute

SCALA_LAUNCH_TIMEOUT = 240.0

# Each Scala test starts a JVM with Spark and Toree (15-60 s to the first reply on the shared
# 2-core CI machine), and the runtime is a ~330 MB download: the suites are opt-in, as the
# PySpark one is (GP_TEST_PYSPARK).  docs/operators/scala.md has the figures.
scala_opt_in = pytest.mark.skipif(
    os.environ.get("GP_TEST_SCALA") != "1",
    reason="opt-in: set GP_TEST_SCALA=1 (Toree kernels; needs a JDK, ~330 MB of Spark/Toree)",
)


def require_scala_runtime() -> ScalaRuntime:
    """The JDK check, then Spark and Toree (installed into the shared cache on first use)."""
    reason = missing_jdk()
    if reason:
        cannot_run(reason)
    return scala_runtime()


def install_scala_spec(
    cli: str, prefix: Path, name: str, mode: str, runtime: ScalaRuntime, *extra: str
) -> Path:
    """``jupyter-<x>-spec install --language Scala`` into ``prefix``; returns the spec folder.
    The installing Python has no apache-toree package, so the assembly is put into ``lib/``
    the way the installer would have (the installer's own copy is tested in its unit tests)."""
    command = Path(sys.executable).with_name(cli)
    subprocess.run(
        [
            str(command), "install", "--prefix", str(prefix), "--kernel-name", name,
            "--language", "scala", "--spark", "--spark-init-mode", mode,
            "--spark-home", str(runtime.spark_home),
            "--launch-timeout", str(SCALA_LAUNCH_TIMEOUT), *extra,
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    folder = prefix / "share" / "jupyter" / "kernels" / name
    if (folder / "lib").is_dir():
        put_toree_assembly(folder, runtime)
    return folder


def put_toree_assembly(folder: Path, runtime: ScalaRuntime) -> None:
    """Copy the Toree assembly into the spec ``folder``'s ``lib/``, as a user does where the
    installing Python has no apache-toree (and as gateway_provisioners 0.5.0's specs needed)."""
    shutil.copy2(runtime.toree_jar, folder / "lib" / runtime.toree_jar.name)


def ensure_scala_image(daemon: dockerd.DockerDaemon) -> str:
    """The Scala kernel image (docker-images/build.py --image scala) in ``daemon``: present,
    loaded from its cached tarball or built (about 4 minutes cold); its tag."""
    started = time.monotonic()
    try:
        outcome = dockerd.ensure_kernel_image(daemon, dockerd.SCALA_KERNEL_IMAGE, image="scala")
    except dockerd.BackendUnavailable as err:
        cannot_run(f"the Scala image cannot be built: {err}")
    print(f"{dockerd.SCALA_KERNEL_IMAGE}: {outcome} in {time.monotonic() - started:.1f}s")
    return dockerd.SCALA_KERNEL_IMAGE


async def spark_job_in_new_kernel(kernel_name: str, env: dict[str, str]) -> tuple[str, float]:
    """Start ``kernel_name``, run the Spark job, shut down; return its output and how long the
    kernel took to answer kernel_info."""
    manager = AsyncKernelManager(kernel_name=kernel_name)
    started = time.monotonic()
    await manager.start_kernel(env={**os.environ, **env})
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=SCALA_LAUNCH_TIMEOUT)
        ready = time.monotonic() - started
        result = await execute(client, SCALA.spark_job, timeout=240)
        assert result.error_name == "", result
        return result.stdout.strip(), ready
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
