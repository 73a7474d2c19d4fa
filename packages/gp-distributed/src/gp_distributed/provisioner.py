"""DistributedProvisioner: kernels on a pool of plain hosts.

The host for each kernel comes from ``remote_hosts`` by ``load_balancing_algorithm``.  A host
that is this machine runs the launcher as a local process (no ssh); the whole launch protocol
still runs (response manager, sealed connection info, signed comm-port requests).
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any, ClassVar

from gp_core import RemoteProvisionerBase
from gp_core.errors import InvalidLaunchParameterError, KernelSpecConfigError
from traitlets import Float, List, Unicode, default, validate

from .load_balancing import ALGORITHMS, HostSelector
from .local_process import LocalLauncherProcess, pid_is_running


class DistributedProvisioner(RemoteProvisionerBase):
    """Starts each kernel's launcher on one host of ``remote_hosts``."""

    remote_hosts = List(
        Unicode(),
        config=True,
        help="""Hosts kernels may run on (GP_REMOTE_HOSTS, comma-separated, default
        localhost).  A kernelspec may narrow it in its provisioner config.""",
    )

    @default("remote_hosts")
    def _remote_hosts_default(self) -> list[str]:
        raw = os.getenv("GP_REMOTE_HOSTS", "localhost")
        return [host.strip() for host in raw.split(",") if host.strip()]

    @validate("remote_hosts")
    def _validate_remote_hosts(self, proposal: dict[str, Any]) -> list[str]:
        hosts = [str(h).strip() for h in proposal["value"] if str(h).strip()]
        if not hosts:
            raise ValueError("remote_hosts must name at least one host")
        return hosts

    load_balancing_algorithm = Unicode(
        config=True,
        help=f"""How the next host is chosen: {' or '.join(ALGORITHMS)}
        (GP_LOAD_BALANCING_ALGORITHM, default round-robin).  least-connection counts this
        process's live kernels per host and breaks ties round-robin.""",
    )

    @default("load_balancing_algorithm")
    def _load_balancing_algorithm_default(self) -> str:
        return os.getenv("GP_LOAD_BALANCING_ALGORITHM", "round-robin")

    @validate("load_balancing_algorithm")
    def _validate_load_balancing_algorithm(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value not in ALGORITHMS:
            raise ValueError(
                f"load_balancing_algorithm {value!r} is unknown; choose one of {', '.join(ALGORITHMS)}"
            )
        return value

    host_cool_down = Float(
        config=True,
        help="Seconds a host that failed a launch is skipped (GP_HOST_COOL_DOWN, default 60).",
    )

    @default("host_cool_down")
    def _host_cool_down_default(self) -> float:
        return float(os.getenv("GP_HOST_COOL_DOWN", "60"))

    persisted_fields: ClassVar[tuple[str, ...]] = (
        *RemoteProvisionerBase.persisted_fields,
        "launcher_pid",
        "launcher_pgid",
    )
    launch_check_interval: ClassVar[float] = 0.05

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.launcher_pid = 0
        self.launcher_pgid = 0
        self._process: LocalLauncherProcess | None = None
        self._counted_host = ""

    @property
    def has_process(self) -> bool:
        return self._process is not None or bool(self.launcher_pid)

    # -- launch ----------------------------------------------------------------------------

    def choose_host(self, env: dict[str, str]) -> str:
        """The host for this kernel: ``KERNEL_REMOTE_HOST`` when allowed, else the balancer's."""
        pinned = env.get("KERNEL_REMOTE_HOST", "").strip()
        if pinned:
            if pinned not in self.remote_hosts:
                raise InvalidLaunchParameterError(
                    f"KERNEL_REMOTE_HOST={pinned!r} for kernel {self.kernel_id} is not one of the "
                    f"allowed hosts ({', '.join(self.remote_hosts)})",
                    kernel_id=str(self.kernel_id),
                )
            HostSelector.shared().choose([pinned], "round-robin")
            return pinned
        try:
            return HostSelector.shared().choose(self.remote_hosts, self.load_balancing_algorithm)
        except ValueError as err:
            raise KernelSpecConfigError(f"Kernel {self.kernel_id}: {err}") from err
        except LookupError as err:
            self.fail_launch(str(err))

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Start the launcher on the chosen host.  Called by ``launch_kernel``."""
        host = self.choose_host(env)
        self._counted_host = host
        self.assigned_host = host
        if not self.ip_is_local(host):
            self.fail_launch(
                f"host {host!r} is not this machine, and this gp-distributed has no ssh transport "
                "configured; use localhost"
            )
        self._process = await asyncio.to_thread(
            LocalLauncherProcess.start, cmd, env, kwargs.get("cwd"), self.log
        )
        self.launcher_pid = self._process.pid
        self.launcher_pgid = self._process.pgid

    async def confirm_remote_startup(self) -> None:
        await self.receive_connection_info()
        self.confirm_backend(self.assigned_host, f"launcher pid {self.launcher_pid}")

    def log_kernel_launch(self, cmd: list[str]) -> None:
        self.log.info(
            "Kernel %s: launcher started on %s as pid %s: %s",
            self.kernel_id,
            self.assigned_host,
            self.launcher_pid,
            cmd[1] if len(cmd) > 1 else cmd[0],
        )

    async def detect_launch_failure(self) -> None:
        process = self._process
        if process is None:
            return
        code = process.exit_code()
        if code is not None:
            await asyncio.sleep(0.05)  # let the output relay catch the last lines
            self.fail_launch(
                f"the launcher on {self.assigned_host} exited with code {code} before the kernel "
                f"was ready. Its last output:\n{process.output_tail() or '(none)'}"
            )

    # -- life --------------------------------------------------------------------------------

    async def poll(self) -> int | None:
        process = self._local_process()
        if process is None:
            return 0
        return process.exit_code()

    async def send_signal(self, signum: int) -> None:
        if await self.signal_through_channel(signum):
            return
        process = self._local_process()
        if process is not None and signum:
            target = self.kernel_pid if signum == signal.SIGINT and self.kernel_pid else 0
            if target:
                try:
                    os.kill(target, signum)
                except ProcessLookupError:
                    pass
            else:
                process.signal_group(signum)

    async def terminate(self, restart: bool = False) -> None:
        if await self.shutdown_through_channel():
            return
        process = self._local_process()
        if process is not None:
            process.signal_group(signal.SIGTERM)

    async def kill(self, restart: bool = False) -> None:
        process = self._local_process()
        if process is not None:
            await asyncio.to_thread(process.signal_group, signal.SIGKILL)

    async def cleanup(self, restart: bool = False) -> None:
        if self._counted_host:
            HostSelector.shared().release(self._counted_host)
            self._counted_host = ""
        self._process = None
        self.launcher_pid = 0
        self.launcher_pgid = 0
        await super().cleanup(restart=restart)

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        if self.launcher_pid:
            self._process = LocalLauncherProcess.attached(self.launcher_pid, self.launcher_pgid)

    def _local_process(self) -> LocalLauncherProcess | None:
        if self._process is None and self.launcher_pid and pid_is_running(self.launcher_pid):
            self._process = LocalLauncherProcess.attached(self.launcher_pid, self.launcher_pgid)
        return self._process
