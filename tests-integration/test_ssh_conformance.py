"""The conformance suite over ssh against the three sshd hosts (127.0.0.1-3), with a Python
and an R kernel.  The hosts are loopback aliases of this machine, so the test can check and
kill the remote processes by pid directly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from backends.ssh_fixtures import SshBackend, SshKernelspec
from backends.system_packages import cannot_run, missing_packages_message
from irkernel import irkernel_available
from scala_helpers import (
    SCALA_LAUNCH_TIMEOUT,
    install_scala_spec,
    require_scala_runtime,
    scala_opt_in,
    spark_job_in_new_kernel,
)

from gp_distributed.local_process import pid_is_running
from gp_provisioners_core.testing import ProvisionerConformance
from gp_provisioners_core.testing.conformance import SCALA, R, RunningKernel, wait_for

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")

R_KERNEL_NAME = "gp_ssh_r"


async def _jvm_gone(info: dict[str, Any]) -> bool:
    return not pid_is_running(info["kernel_pid"])


async def _not_alive(manager: Any) -> bool:
    return not await manager.is_alive()


class TestSshConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(self, ssh_kernelspec: SshKernelspec) -> SshBackend:
        return SshBackend(kernel_name=ssh_kernelspec.kernel_name, launch_timeout=120)


@pytest.fixture
def ssh_r_kernelspec(ssh_kernelspec: SshKernelspec) -> str:
    if not irkernel_available():
        cannot_run(missing_packages_message("r") or "R with IRkernel does not load")
    prefix = ssh_kernelspec.jupyter_path.parent.parent
    if not (ssh_kernelspec.jupyter_path / "kernels" / R_KERNEL_NAME).exists():
        cli = Path(sys.executable).with_name("jupyter-ssh-spec")
        hosts = ",".join(ssh_kernelspec.cluster.entries())
        subprocess.run(
            [
                str(cli),
                "install",
                "--prefix",
                str(prefix),
                "--kernel-name",
                R_KERNEL_NAME,
                "--language",
                "R",
                "--remote-hosts",
                hosts,
                "--python",
                sys.executable,
            ],
            check=True,
            capture_output=True,
        )
    return R_KERNEL_NAME


class TestSshRConformance(ProvisionerConformance):
    """An R kernel over ssh: the code the suite runs is R."""

    @pytest.fixture
    def conformance_backend(self, ssh_r_kernelspec: str) -> SshBackend:
        return SshBackend(kernel_name=ssh_r_kernelspec, language=R, launch_timeout=120)


# -- Scala (Apache Toree) ----------------------------------------------------------------------

SCALA_KERNEL_NAME = "gp_ssh_scala_eager"
SCALA_LAZY_KERNEL_NAME = "gp_ssh_scala_lazy"


@pytest.fixture
def ssh_scala_kernelspec(ssh_kernelspec: SshKernelspec) -> str:
    """Eager and lazy Scala specs over the same hosts (installed once per session)."""
    runtime = require_scala_runtime()
    prefix = ssh_kernelspec.jupyter_path.parent.parent
    hosts = ",".join(ssh_kernelspec.cluster.entries())
    for name, mode in ((SCALA_KERNEL_NAME, "eager"), (SCALA_LAZY_KERNEL_NAME, "lazy")):
        if not (ssh_kernelspec.jupyter_path / "kernels" / name).exists():
            install_scala_spec(
                "jupyter-ssh-spec", prefix, name, mode, runtime, "--remote-hosts", hosts,
                "--port-range", "41000..42999",
            )  # fmt: skip
    return SCALA_KERNEL_NAME


@scala_opt_in
class TestSshScalaConformance(ProvisionerConformance):
    """A Scala (Apache Toree) kernel over ssh, Spark context eager: the suite's code is Scala
    and it also runs a Spark job."""

    @pytest.fixture
    def conformance_backend(self, ssh_scala_kernelspec: str) -> SshBackend:
        return SshBackend(
            kernel_name=ssh_scala_kernelspec, language=SCALA, launch_timeout=SCALA_LAUNCH_TIMEOUT
        )

    @pytest.mark.asyncio
    async def test_lazy_context_runs_a_spark_job(self, ssh_scala_kernelspec: str) -> None:
        output, _ = await spark_job_in_new_kernel(
            SCALA_LAZY_KERNEL_NAME, {"KERNEL_USERNAME": "conformance"}
        )
        assert output == SCALA.spark_answer

    @pytest.mark.asyncio
    async def test_kernel_that_ends_on_its_own_leaves_nothing(self, kernel: RunningKernel) -> None:
        """A client's shutdown_request on Toree's control channel ends Toree: the launcher in the
        same JVM must not keep it alive (the Python launcher exits when its kernel does), so the
        JVM is gone and the provisioner sees the kernel gone without being asked to kill it."""
        info = await kernel.provisioner_info()
        kernel.client.shutdown()
        kernel.client.stop_channels()
        assert await wait_for(lambda: _jvm_gone(info), timeout=30), "the JVM still runs"
        assert await wait_for(lambda: _not_alive(kernel.manager), timeout=30)
        assert await kernel.backend.leftovers(info) == []
        await kernel.manager.shutdown_kernel(now=True)

    @pytest.mark.asyncio
    async def test_ports_are_in_the_port_range(self, kernel: RunningKernel) -> None:
        info = await kernel.provisioner_info()
        ports = [info["connection_info"][name] for name in PORT_NAMES] + [info["comm_port"]]
        assert all(41000 <= port <= 42999 for port in ports), ports
