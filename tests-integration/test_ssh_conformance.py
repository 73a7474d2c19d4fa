"""The conformance suite over ssh against the three sshd hosts (127.0.0.1-3), with a Python
and an R kernel.  The hosts are loopback aliases of this machine, so the test can check and
kill the remote processes by pid directly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from backends.system_packages import cannot_run, missing_packages_message
from conftest import SshKernelspec
from test_conformance_helpers import irkernel_available

from gp_distributed.local_process import pid_is_running
from gp_provisioners_core.testing import ConformanceBackend, ProvisionerConformance
from gp_provisioners_core.testing.conformance import R

R_KERNEL_NAME = "gp_ssh_r"


class SshBackend(ConformanceBackend):
    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        assert provisioner_info["assigned_host"], "the kernel must have run on a host"
        os.kill(provisioner_info["kernel_pid"], signal.SIGKILL)

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        pids = {
            provisioner_info["launcher_pid"],
            provisioner_info["kernel_pid"],
            provisioner_info["pid"],
        }
        return [f"pid {pid} still runs" for pid in sorted(pids) if pid and pid_is_running(pid)]


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
