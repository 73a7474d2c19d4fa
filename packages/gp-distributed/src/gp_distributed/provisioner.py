"""DistributedProvisioner: kernels on a pool of plain hosts.

The host for each kernel comes from ``remote_hosts`` by ``load_balancing_algorithm``.  A host
entry is ``[user@]host[:port]``; it is reached over ssh (paramiko, one pooled connection per
host, see ``ssh.py``) unless it is a bare name or address of this machine, which runs the
launcher as a local process.  Either way the whole launch protocol runs (response manager,
sealed connection info, signed comm-port requests).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar, NoReturn

from traitlets import Bool, Float, List, Set, Unicode, default, validate

from gp_provisioners_core import RemoteProvisionerBase
from gp_provisioners_core.argv import travelling_env
from gp_provisioners_core.channel import KernelChannelError
from gp_provisioners_core.config import env_bool, env_float
from gp_provisioners_core.deprecated_settings import deprecated_alias
from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchTimeoutError,
)
from gp_provisioners_core.watch import BackendWatch

from .load_balancing import ALGORITHMS, HostSelector
from .local_process import LocalLauncherProcess, pid_is_running
from .remote_commands import LauncherStatus, RemoteLauncherRef
from .remote_process import LaunchWatcher, RemoteLauncher
from .ssh import (
    SshConfigMixin,
    SshConnectError,
    SshError,
    SshTarget,
    in_ssh_thread,
    is_ssh_host,
    parse_host_entry,
    resolve_target,
)

UNKNOWN_EXIT_CODE = 1


class DistributedProvisioner(SshConfigMixin, RemoteProvisionerBase):  # type: ignore[metaclass]
    """Starts each kernel's launcher on one host of ``remote_hosts``."""

    remote_hosts = List(
        Unicode(),
        config=True,
        help="""Hosts kernels may run on, as [user@]host[:port] (GP_REMOTE_HOSTS,
        comma-separated, default localhost).  A kernelspec may narrow it in its provisioner
        config.""",
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
        for host in hosts:
            parse_host_entry(host)  # raises ValueError naming a malformed entry
        return hosts

    load_balancing_algorithm = Unicode(
        config=True,
        help=f"""How the next host is chosen: {" or ".join(ALGORITHMS)}
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
                f"load_balancing_algorithm {value!r} is unknown; choose one of "
                + ", ".join(ALGORITHMS)
            )
        return value

    host_cool_down = Float(
        config=True,
        help="""Seconds a host that failed a launch (or stopped answering ssh) is skipped
        (GP_HOST_COOL_DOWN, default 60).""",
    )

    @default("host_cool_down")
    def _host_cool_down_default(self) -> float:
        return env_float("GP_HOST_COOL_DOWN", 60.0)

    renamed_env_allowlist_variables = ("GP_REMOTE_ENV_ALLOWLIST",)
    remote_env_allowlist = deprecated_alias("env_allowlist", Set(Unicode()))

    ssh_kernel_ip_from_connection = Bool(
        config=True,
        help="""Bind remote kernels to the address their ssh connection reached (from
        SSH_CONNECTION, passed as GP_KERNEL_IP unless the host sets one)
        (GP_SSH_KERNEL_IP_FROM_CONNECTION, true).  False: the launcher picks the address that
        routes to the response address.""",
    )

    @default("ssh_kernel_ip_from_connection")
    def _ssh_kernel_ip_from_connection_default(self) -> bool:
        return env_bool("GP_SSH_KERNEL_IP_FROM_CONNECTION", True)

    ssh_launch_check_interval = Float(
        config=True,
        help="""Seconds between the checks of the launches waiting on one ssh host, made for
        all of them in one command (GP_SSH_LAUNCH_CHECK_INTERVAL, 1.0).""",
    )

    @default("ssh_launch_check_interval")
    def _ssh_launch_check_interval_default(self) -> float:
        return env_float("GP_SSH_LAUNCH_CHECK_INTERVAL", 1.0)

    persisted_fields: ClassVar[tuple[str, ...]] = (
        *RemoteProvisionerBase.persisted_fields,
        "launcher_pid",
        "launcher_pgid",
        "remote_log",
    )
    launch_check_interval: ClassVar[float] = 0.05

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.launcher_pid = 0
        self.launcher_pgid = 0
        self.remote_log = ""
        self._process: LocalLauncherProcess | None = None
        self._remote: RemoteLauncher | None = None
        self._watcher: LaunchWatcher | None = None
        self._remote_exit: int | None = None
        self._shutdown_asked = False
        self._host_unreachable = False
        self._counted_host = ""

    @property
    def has_process(self) -> bool:
        return self._process is not None or self._remote is not None or bool(self.launcher_pid)

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
            try:
                HostSelector.shared().choose([pinned], "round-robin")
            except LookupError:
                self.fail_launch(
                    f"KERNEL_REMOTE_HOST={pinned!r} failed recently and is skipped for up to "
                    f"{self.host_cool_down:g}s (host_cool_down); try again later or another host"
                )
            return pinned
        try:
            return HostSelector.shared().choose(self.remote_hosts, self.load_balancing_algorithm)
        except ValueError as err:
            raise KernelSpecConfigError(f"Kernel {self.kernel_id}: {err}") from err
        except LookupError as err:
            self.fail_launch(str(err))

    def uses_ssh(self, host: str) -> bool:
        """Whether ``host`` (a ``remote_hosts`` entry) is reached over ssh."""
        return is_ssh_host(host, self.ip_is_local, self.ssh_local_hosts)

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Start the launcher on the chosen host.  Called by ``launch_kernel``."""
        self._reset_launch_state()
        host = self.choose_host(env)
        self._counted_host = host
        self.assigned_host = host
        if self.uses_ssh(host):
            await self._submit_over_ssh(host, cmd, env, kwargs.get("cwd"))
            return
        self._process = await asyncio.to_thread(
            LocalLauncherProcess.start, cmd, env, kwargs.get("cwd"), self.log
        )
        self.launcher_pid = self._process.pid
        self.launcher_pgid = self._process.pgid

    async def _submit_over_ssh(
        self, host: str, cmd: list[str], env: dict[str, str], cwd: str | None
    ) -> None:
        target = await self._ssh_target(host)
        spec_env = getattr(self.kernel_spec, "env", None) or {}
        try:
            travelling = travelling_env(env, self.env_allowlist, spec_env)
        except ValueError as err:
            raise InvalidLaunchParameterError(
                f"Kernel {self.kernel_id}: {err}", kernel_id=str(self.kernel_id)
            ) from err
        try:
            self._remote = await RemoteLauncher.start(
                target,
                str(self.kernel_id),
                cmd,
                travelling,
                cwd=cwd,
                kernel_ip_from_connection=self.ssh_kernel_ip_from_connection,
                timeout=self.ssh_command_timeout,
            )
        except SshConnectError as err:
            self._mark_host_unreachable(host, err)
            self.fail_launch(f"cannot reach host {host} over ssh: {err}")
        except SshError as err:
            self.fail_launch(f"could not start the launcher on host {host}: {err}")
        self.launcher_pid = self._remote.pid
        self.launcher_pgid = self._remote.pgid
        self.remote_log = self._remote.log_path
        self._watcher = LaunchWatcher.for_target(
            target, self.ssh_launch_check_interval, self.ssh_command_timeout
        )
        self._watcher.watch(self._remote.ref)

    async def confirm_remote_startup(self) -> None:
        await self.receive_connection_info()
        if self._remote is not None and not self._remote.pgid and self.pgid > 1:
            # A host without setsid(1): act on the process group the launcher reported.
            self._remote = RemoteLauncher(
                self._remote.target, replace(self._remote.ref, pgid=self.pgid)
            )
            self.launcher_pgid = self.pgid
        where = f"{self.assigned_host} (ssh)" if self._remote is not None else self.assigned_host
        self.confirm_backend(self.assigned_host, f"launcher pid {self.launcher_pid} on {where}")

    async def wait_for_kernel_ports(self) -> None:
        await super().wait_for_kernel_ports()
        self._stop_watching()

    def log_kernel_launch(self, cmd: list[str]) -> None:
        how = f"over ssh, output in {self.remote_log}" if self._remote is not None else "locally"
        self.log.info(
            "Kernel %s: launcher started on %s as pid %s (%s): %s",
            self.kernel_id,
            self.assigned_host,
            self.launcher_pid,
            how,
            cmd[1] if len(cmd) > 1 else cmd[0],
        )

    def launch_watches(self) -> Sequence[BackendWatch]:
        """The host's launch watcher (remote launches): a launcher that exited wakes the
        launch check.  A local launcher's exit is seen every ``launch_check_interval``."""
        return (self._watcher,) if self._watcher is not None else ()

    async def detect_launch_failure(self) -> None:
        if self._remote is not None:
            self._detect_remote_launch_failure()
            return
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

    def _detect_remote_launch_failure(self) -> None:
        """Read the host watcher's latest finding (no ssh command here)."""
        if self._watcher is None:
            return
        finding = self._watcher.report(str(self.kernel_id))
        if finding is None:
            return
        host = self.assigned_host
        if isinstance(finding, SshConnectError):
            self._mark_host_unreachable(host, finding)
            self.fail_launch(f"lost host {host} while the kernel started: {finding}")
        if isinstance(finding, SshError):
            self.fail_launch(f"checking the launcher on host {host} failed: {finding}")
        what = (
            f"exited with code {finding.exit_code}"
            if finding.exit_code is not None
            else "was killed"
        )
        tail = "\n".join(finding.tail) or "(none)"
        self.fail_launch(
            f"the launcher on {host} (pid {self.launcher_pid}) {what} before the kernel was "
            f"ready. Its last output ({self.remote_log} there):\n{tail}"
        )

    async def handle_launch_timeout(self) -> NoReturn:
        """The base's timeout error, plus what the launcher on the ssh host last wrote."""
        launcher = self._remote
        if launcher is None or self._host_unreachable:
            await super().handle_launch_timeout()
        try:
            status = await launcher.status(self.ssh_command_timeout, always_tail=True)
            state = "still runs" if status.running else f"ended ({status.state})"
            detail = (
                f" The launcher on {self.assigned_host} {state}; its last output "
                f"({self.remote_log} there):\n" + ("\n".join(status.tail) or "(none)")
            )
        except SshError as err:
            detail = f" Checking the launcher on {self.assigned_host} failed: {err}"
        try:
            await super().handle_launch_timeout()
        except LaunchTimeoutError as err:
            raise LaunchTimeoutError(
                f"{err}{detail}", kernel_id=err.kernel_id, phase=err.phase
            ) from None

    # -- life --------------------------------------------------------------------------------

    async def poll(self) -> int | None:
        if self._is_remote():
            return await self._poll_remote()
        process = self._local_process()
        if process is None:
            return 0
        return process.exit_code()

    async def _poll_remote(self) -> int | None:
        """The comm port answers for a live launcher; only when it does not, one ssh command
        asks the host (and a host that does not answer ssh either counts as dead)."""
        if self._remote_exit is not None:
            return self._remote_exit
        if self.kernel_channel is not None:
            try:
                reply = await self.kernel_channel.request({"signum": 0})
            except KernelChannelError as err:
                self.log.debug("%s", err)
                if self._shutdown_asked:
                    # The kernel was asked to shut down and its launcher is gone: no ssh
                    # round trip to confirm it; cleanup() still kills whatever is left.
                    return self._exited(0)
            else:
                if reply.get("alive", True):
                    return None
                return self._exited(0)
        launcher = await self._remote_launcher()
        if launcher is None:
            return 0
        if self._host_unreachable:
            return self._exited(UNKNOWN_EXIT_CODE)
        try:
            status = await launcher.status(self.ssh_command_timeout)
        except SshConnectError as err:
            self._mark_host_unreachable(self.assigned_host, err)
            self.log.warning(
                "Kernel %s: reported dead: its comm port and host %s do not answer (%s)",
                self.kernel_id,
                self.assigned_host,
                err,
            )
            return self._exited(UNKNOWN_EXIT_CODE)
        except SshError as err:
            self.log.warning("Kernel %s: could not check it: %s", self.kernel_id, err)
            return None
        if status.running:
            return None
        code = self._exit_code_of(status)
        self.log.warning(
            "Kernel %s on %s ended (launcher %s). Its last output (%s there):\n%s",
            self.kernel_id,
            self.assigned_host,
            f"exit code {status.exit_code}" if status.exit_code is not None else "killed",
            self.remote_log,
            "\n".join(status.tail) or "(none)",
        )
        return self._exited(code)

    @staticmethod
    def _exit_code_of(status: LauncherStatus) -> int:
        return status.exit_code if status.exit_code is not None else UNKNOWN_EXIT_CODE

    def _exited(self, code: int) -> int:
        self._remote_exit = code
        return code

    async def send_signal(self, signum: int) -> None:
        if await self.signal_through_channel(signum):
            return
        if self._is_remote():
            launcher = await self._remote_launcher()
            if launcher is not None and signum and not self._host_unreachable:
                target = self.kernel_pid if signum == signal.SIGINT and self.kernel_pid else 0
                await self._ssh_quietly(
                    "signal", launcher.signal(signum, self.ssh_command_timeout, target)
                )
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

    async def shutdown_requested(self, restart: bool = False) -> None:
        """jupyter_client sent the kernel a shutdown_request: from now on a launcher that no
        longer answers its comm port has ended (see ``_poll_remote``)."""
        self._shutdown_asked = True
        await super().shutdown_requested(restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        if await self.shutdown_through_channel():
            return
        if self._is_remote():
            launcher = await self._remote_launcher()
            if launcher is not None and not self._host_unreachable:
                await self._ssh_quietly(
                    "terminate", launcher.signal(signal.SIGTERM, self.ssh_command_timeout)
                )
            return
        process = self._local_process()
        if process is not None:
            process.signal_group(signal.SIGTERM)

    async def kill(self, restart: bool = False) -> None:
        if self._is_remote():
            launcher = await self._remote_launcher()
            if launcher is not None and not self._host_unreachable:
                await self._ssh_quietly(
                    "kill", launcher.signal(signal.SIGKILL, self.ssh_command_timeout)
                )
            return
        process = self._local_process()
        if process is not None:
            await asyncio.to_thread(process.signal_group, signal.SIGKILL)

    async def cleanup(self, restart: bool = False) -> None:
        self._stop_watching()
        if self._is_remote():
            launcher = await self._remote_launcher()
            if launcher is not None and not self._host_unreachable:
                ending = self._shutdown_asked and self._remote_exit is not None
                await self._ssh_quietly(
                    "cleanup", launcher.cleanup(self.ssh_command_timeout, ending)
                )
        if self._counted_host:
            HostSelector.shared().release(self._counted_host)
            self._counted_host = ""
        self._process = None
        self._remote = None
        self.launcher_pid = 0
        self.launcher_pgid = 0
        self.remote_log = ""
        await super().cleanup(restart=restart)

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        if self.assigned_host:
            HostSelector.shared().attach(self.assigned_host)
            self._counted_host = self.assigned_host
        if self.launcher_pid and not self._is_remote():
            self._process = LocalLauncherProcess.attached(self.launcher_pid, self.launcher_pgid)

    # -- helpers -------------------------------------------------------------------------------

    def _reset_launch_state(self) -> None:
        self._process = None
        self._remote = None
        self._remote_exit = None
        self._shutdown_asked = False
        self._host_unreachable = False
        self.launcher_pid = 0
        self.launcher_pgid = 0
        self.remote_log = ""

    async def _ssh_target(self, host: str) -> SshTarget:
        """Resolve ``host`` in an ssh worker thread (~/.ssh/config is read, and a ``Match exec``
        block in it may run a command)."""
        try:
            return await in_ssh_thread(resolve_target, host, self.ssh_settings())
        except ValueError as err:
            raise KernelSpecConfigError(f"Kernel {self.kernel_id}: {err}") from err

    def _is_remote(self) -> bool:
        if self._remote is not None:
            return True
        if self._process is not None or not self.assigned_host:
            return False
        try:
            return self.uses_ssh(self.assigned_host)
        except ValueError:
            return False

    async def _remote_launcher(self) -> RemoteLauncher | None:
        """The launcher over ssh, rebuilt from the persisted fields after a re-attach."""
        if self._remote is None and self.launcher_pid and self.assigned_host:
            ref = RemoteLauncherRef(
                self.launch_kernel_id or str(self.kernel_id),
                self.launcher_pid,
                self.launcher_pgid,
                self.remote_log,
            )
            self._remote = RemoteLauncher(await self._ssh_target(self.assigned_host), ref)
        return self._remote

    def _mark_host_unreachable(self, host: str, err: Exception) -> None:
        self._host_unreachable = True
        HostSelector.shared().cool_down(host, self.host_cool_down)
        self.log.warning(
            "Host %s is skipped for %gs (host_cool_down): %s", host, self.host_cool_down, err
        )

    async def _ssh_quietly(self, action: str, operation: Any) -> None:
        """Await one ssh ``operation``; log (not raise) its failure, marking a lost host."""
        try:
            await operation
        except SshConnectError as err:
            self._mark_host_unreachable(self.assigned_host, err)
            self.log.warning("Kernel %s: %s over ssh failed: %s", self.kernel_id, action, err)
        except SshError as err:
            self.log.warning("Kernel %s: %s over ssh failed: %s", self.kernel_id, action, err)

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.unwatch(self.launch_kernel_id or str(self.kernel_id))
            self._watcher = None

    def _local_process(self) -> LocalLauncherProcess | None:
        if self._process is None and self.launcher_pid and pid_is_running(self.launcher_pid):
            self._process = LocalLauncherProcess.attached(self.launcher_pid, self.launcher_pgid)
        return self._process
