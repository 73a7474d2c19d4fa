"""The conformance suite over the distributed provisioner's local path (no ssh).

Real ipykernel processes, started by our launcher through the real response manager.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gp_distributed.cli import main as install_spec
from gp_distributed.local_process import pid_is_running
from gp_provisioners_core.testing import (
    ConformanceBackend,
    ProvisionerConformance,
    isolated_jupyter_paths,
)
from gp_provisioners_core.testing.conformance import R

KERNEL_NAME = "gp_local_conformance"


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live (non-zombie) processes whose argv contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv and pid_is_running(int(entry.name)):
            found.append(f"pid {entry.name}: {argv[:200]}")
    return found


class LocalBackend(ConformanceBackend):
    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        os.kill(provisioner_info["kernel_pid"], signal.SIGKILL)

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        """This launch's launcher and kernel processes that still run (the kernel id stays the
        same across a restart, so the pids of the launch identify it)."""
        pids = {provisioner_info["launcher_pid"], provisioner_info["kernel_pid"]}
        return [f"pid {pid} still runs" for pid in sorted(pids) if pid_is_running(pid)]


@pytest.fixture(scope="module")
def local_kernelspec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("jupyter")
    with isolated_jupyter_paths(root) as prefix:
        install_spec(["install", "--kernel-name", KERNEL_NAME, "--prefix", str(prefix)])
        r_flags = ["--kernel-name", R_KERNEL_NAME, "--language", "R", "--prefix", str(prefix)]
        install_spec(["install", *r_flags])
        yield KERNEL_NAME


R_KERNEL_NAME = "gp_local_conformance_r"


def irkernel_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(
        ["Rscript", "-e", "library(IRkernel)"], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0


class TestLocalConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(
        self, local_kernelspec: str, monkeypatch: pytest.MonkeyPatch
    ) -> LocalBackend:
        monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
        return LocalBackend(kernel_name=local_kernelspec)


@pytest.mark.skipif(
    not irkernel_available(), reason="R with IRkernel is not installed (r-cran-irkernel)"
)
class TestLocalRConformance(ProvisionerConformance):
    """The same suite with an R kernel: the code it runs is R."""

    @pytest.fixture
    def conformance_backend(
        self, local_kernelspec: str, monkeypatch: pytest.MonkeyPatch
    ) -> LocalBackend:
        monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
        return LocalBackend(kernel_name=R_KERNEL_NAME, language=R)
