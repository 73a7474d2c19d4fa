"""The conformance suite: what every provisioner must do with a real kernel on a real backend.

Use it from a backend's tests::

    class TestDockerConformance(ProvisionerConformance):
        @pytest.fixture
        def conformance_backend(self, docker_daemon) -> ConformanceBackend:
            return MyDockerBackend(kernel_name="docker_python", env={...})

Every test starts a kernel through ``jupyter_client.AsyncKernelManager`` with the named
kernelspec, so the provisioner runs exactly as under Jupyter Server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from ..errors import UnauthorizedUserError
from ..reattach import serializable_provisioner_info
from .kernels import execute


@dataclass(frozen=True)
class LanguageSnippets:
    """The code the suite runs, in the kernel's language."""

    print_answer: str
    sleep_long: str
    set_variable: str
    read_variable: str
    answer: str = "42"
    interrupt_error: str = ""
    missing_variable_error: str = ""
    # Seconds from the interrupt to the end of the interrupted cell
    interrupt_within: float = 2.0
    # True when ``sleep_long`` prints before it sleeps: the suite interrupts only once that
    # output arrived (a compiled language reports busy long before the sleep starts)
    sleep_prints_first: bool = False
    # A Spark job and what it prints, for kernels that have a Spark context (empty: no test)
    spark_job: str = ""
    spark_answer: str = ""


PYTHON = LanguageSnippets(
    print_answer="print(6 * 7)",
    sleep_long="import time; time.sleep(60)",
    set_variable="conformance_value = 1",
    read_variable="print(conformance_value)",
    interrupt_error="KeyboardInterrupt",
    missing_variable_error="NameError",
)

R = LanguageSnippets(
    print_answer="cat(6 * 7, '\\n')",
    sleep_long="Sys.sleep(60)",
    set_variable="conformance_value <- 1",
    read_variable="cat(conformance_value, '\\n')",
)


# Apache Toree: the kernel is a Spark driver, so the suite also runs a Spark job.  Toree sends
# a cell's output from a background flush that may come after the cell's idle status: the
# snippets flush it themselves.
SCALA = LanguageSnippets(
    print_answer="println(6 * 7); Console.flush()",
    sleep_long='println("sleeping"); Console.flush(); Thread.sleep(60000)',
    sleep_prints_first=True,
    # Toree reports any exception of a cell with five runs of its Scala compiler (0.6 to 0.8
    # CPU-s, 2 to 3 s at load 27 on the 2-core CI machine); the launcher reports an interrupted
    # cell's exception itself, without compiling (InterruptReport: 0.01 to 0.05 CPU-s), so the
    # bound is the 2 s, as for Python and R (docs/operators/scala.md).
    interrupt_within=2.0,
    set_variable="val conformanceValue = 1",
    read_variable="println(conformanceValue); Console.flush()",
    spark_job="println(sc.parallelize(1 to 100).sum); Console.flush()",
    spark_answer="5050.0",
)


@dataclass
class ConformanceBackend(ABC):
    """How the suite reaches one backend.  Subclass per backend; keep it small."""

    kernel_name: str
    env: dict[str, str] = field(default_factory=dict)
    language: LanguageSnippets = PYTHON
    launch_timeout: float = 60.0

    def start_env(self, **extra: str) -> dict[str, str]:
        """The env a client sends with its start request."""
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("KERNEL_USERNAME", "conformance")
        env.update(extra)
        return env

    @abstractmethod
    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        """Kill the kernel the way a crash would (``kill -9`` its processes, ``docker kill``,
        delete the pod), without telling the provisioner."""

    @abstractmethod
    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        """Describe everything of this kernel still present on the backend (processes,
        containers, pods, jobs); empty when nothing is left."""


@dataclass
class RunningKernel:
    manager: AsyncKernelManager
    client: AsyncKernelClient
    backend: ConformanceBackend

    async def provisioner_info(self) -> dict[str, Any]:
        assert self.manager.provisioner is not None
        return serializable_provisioner_info(await self.manager.provisioner.get_provisioner_info())


async def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll an async ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return bool(await predicate())


class ProvisionerConformance:
    """The shared tests.  Subclasses provide the ``conformance_backend`` fixture."""

    @pytest.fixture
    async def kernel(self, conformance_backend: ConformanceBackend) -> AsyncIterator[RunningKernel]:
        manager = AsyncKernelManager(kernel_name=conformance_backend.kernel_name)
        await manager.start_kernel(env=conformance_backend.start_env())
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=conformance_backend.launch_timeout)
            running = RunningKernel(manager, client, conformance_backend)
            yield running
        finally:
            running_client = getattr(running, "client", client) if "running" in locals() else client
            running_client.stop_channels()
            if manager.has_kernel:
                await manager.shutdown_kernel(now=True)

    @pytest.mark.asyncio
    async def test_start_and_execute(self, kernel: RunningKernel) -> None:
        result = await execute(kernel.client, kernel.backend.language.print_answer)
        assert result.stdout.strip() == kernel.backend.language.answer
        assert result.error_name == ""

    @pytest.mark.asyncio
    async def test_spark_job_runs(self, kernel: RunningKernel) -> None:
        language = kernel.backend.language
        if not language.spark_job:
            pytest.skip("this kernel's language has no Spark job in the suite")
        result = await execute(kernel.client, language.spark_job, timeout=180)
        assert result.error_name == ""
        assert result.stdout.strip() == language.spark_answer

    @pytest.mark.asyncio
    async def test_interrupt_busy_cell_within_two_seconds(self, kernel: RunningKernel) -> None:
        language = kernel.backend.language
        busy, printed = asyncio.Event(), asyncio.Event()
        running = asyncio.ensure_future(
            execute(kernel.client, language.sleep_long, on_busy=busy, on_output=printed)
        )
        if language.sleep_prints_first:
            await asyncio.wait_for(printed.wait(), timeout=60)
        else:
            await asyncio.wait_for(busy.wait(), timeout=30)
        await asyncio.sleep(0.3)  # let the cell really enter its sleep
        interrupted_at = time.monotonic()
        await kernel.manager.interrupt_kernel()
        result = await asyncio.wait_for(running, timeout=10)
        took = time.monotonic() - interrupted_at
        print(f"{kernel.backend.kernel_name}: the cell ended {took:.2f}s after the interrupt")
        assert took < language.interrupt_within, f"the cell ended {took:.2f}s after the interrupt"
        if language.interrupt_error:
            assert result.error_name == language.interrupt_error
        after = await execute(kernel.client, language.print_answer)
        assert after.stdout.strip() == language.answer

    @pytest.mark.asyncio
    async def test_restart_gives_a_fresh_kernel(self, kernel: RunningKernel) -> None:
        language = kernel.backend.language
        await execute(kernel.client, language.set_variable)
        before = await kernel.provisioner_info()
        await kernel.manager.restart_kernel()
        # A remote kernel gets new ports on restart: reconnect, as Jupyter Server does.
        kernel.client.stop_channels()
        kernel.client = kernel.manager.client()
        kernel.client.start_channels()
        await kernel.client.wait_for_ready(timeout=kernel.backend.launch_timeout)
        result = await execute(kernel.client, language.read_variable)
        if language.missing_variable_error:
            assert result.error_name == language.missing_variable_error
        assert language.answer not in result.stdout
        assert (await execute(kernel.client, language.print_answer)).stdout.strip() == "42"
        after = await kernel.provisioner_info()
        assert after["connection_info"] != before["connection_info"]
        assert await kernel.backend.leftovers(before) == []

    @pytest.mark.asyncio
    async def test_shutdown_leaves_nothing(self, kernel: RunningKernel) -> None:
        info = await kernel.provisioner_info()
        kernel.client.stop_channels()
        await kernel.manager.shutdown_kernel()
        assert not await kernel.manager.is_alive()
        assert await kernel.backend.leftovers(info) == []

    @pytest.mark.asyncio
    async def test_killed_kernel_is_detected(self, kernel: RunningKernel) -> None:
        info = await kernel.provisioner_info()
        await kernel.backend.kill_kernel_hard(info)
        assert await wait_for(lambda: _not_alive(kernel.manager), timeout=15)
        await kernel.manager.shutdown_kernel(now=True)
        assert await kernel.backend.leftovers(info) == []

    @pytest.mark.asyncio
    async def test_reattach_from_a_second_process(self, kernel: RunningKernel) -> None:
        info = await kernel.provisioner_info()
        request = {
            "kernel_name": kernel.backend.kernel_name,
            "provisioner_info": info,
            "code": kernel.backend.language.print_answer,
            "shutdown": True,
        }
        kernel.client.stop_channels()
        completed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gp_provisioners_core.testing.reattach_worker"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=120,
            env=kernel.backend.start_env(),
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        reply = json.loads(completed.stdout.strip().splitlines()[-1])
        assert reply["stdout"].strip() == kernel.backend.language.answer
        assert reply["alive_after"] is False
        assert await wait_for(lambda: _not_alive(kernel.manager), timeout=15)
        assert await kernel.backend.leftovers(info) == []

    @pytest.mark.asyncio
    async def test_unauthorized_user_is_refused_before_anything_starts(
        self, conformance_backend: ConformanceBackend
    ) -> None:
        manager = AsyncKernelManager(kernel_name=conformance_backend.kernel_name)
        with pytest.raises(UnauthorizedUserError) as refused:
            await manager.start_kernel(env=conformance_backend.start_env(KERNEL_USERNAME="root"))
        assert refused.value.status_code == 403
        assert "root" in str(refused.value)
        assert not manager.has_kernel


async def _not_alive(manager: AsyncKernelManager) -> bool:
    return not await manager.is_alive()
