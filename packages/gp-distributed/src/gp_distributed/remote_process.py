"""A launcher on an ssh host, and the per-host watcher of launches in progress.

``RemoteLauncher`` is the remote twin of ``LocalLauncherProcess``: it starts the launcher with
one short ssh command and then acts on it by pid and process group.  ``LaunchWatcher`` (one per
host and process) checks every launch still waiting on that host with one batched command per
interval, so ``detect_launch_failure`` reads a cache and the number of ssh commands does not
grow with the number of kernels being started.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gp_provisioners_core.watch import ChangeSignal

from .remote_commands import (
    LauncherStatus,
    RemoteLauncherRef,
    cleanup_script,
    launch_script,
    parse_launched,
    parse_status,
    signal_script,
    status_script,
)
from .ssh import SshCommandError, SshError, SshTarget, run_script, run_script_async


@dataclass
class RemoteLauncher:
    """One launcher started over ssh: its host, pid, process group and log file there."""

    target: SshTarget
    ref: RemoteLauncherRef

    @property
    def pid(self) -> int:
        return self.ref.pid

    @property
    def pgid(self) -> int:
        return self.ref.pgid

    @property
    def log_path(self) -> str:
        return self.ref.log_path

    @classmethod
    async def start(
        cls,
        target: SshTarget,
        kernel_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: str | None,
        kernel_ip_from_connection: bool,
        timeout: float,
    ) -> RemoteLauncher:
        """Start ``argv`` on ``target``; return once it runs detached there.

        Raises ``SshConnectError`` when the host cannot be reached and ``SshCommandError`` when
        the start command fails (with its output).
        """
        script = launch_script(argv, env, kernel_id, cwd, kernel_ip_from_connection)
        result = await run_script_async(target, script, timeout)
        launched = parse_launched(result.stdout)
        if result.exit_status != 0 or launched is None:
            output = "\n".join(s for s in (result.stdout.strip(), result.stderr.strip()) if s)
            raise SshCommandError(
                f"starting the launcher on {target.label} failed with exit status "
                f"{result.exit_status}: {output[-2000:] or '(no output)'}"
            )
        return cls(
            target, RemoteLauncherRef(kernel_id, launched.pid, launched.pgid, launched.log_path)
        )

    async def status(self, timeout: float, always_tail: bool = False) -> LauncherStatus:
        """Whether the launcher (or its kernel) still runs, in one ssh command; with the last
        lines of its log when it does not (or ``always_tail``)."""
        script = status_script([self.ref], always_tail=always_tail)
        result = await run_script_async(self.target, script, timeout)
        found = parse_status(result.stdout).get(self.ref.kernel_id)
        if found is None:
            raise SshCommandError(
                f"checking kernel {self.ref.kernel_id} on {self.target.label} printed no status "
                f"(exit status {result.exit_status}): {result.stderr.strip()[-500:]}"
            )
        return found

    async def signal(self, signum: int, timeout: float, pid: int = 0) -> bool:
        """Send ``signum`` to the launcher's group (or ``pid``); False when it is gone."""
        result = await run_script_async(self.target, signal_script(self.ref, signum, pid), timeout)
        return "GP_SIGNALED" in result.stdout

    async def cleanup(self, timeout: float, ending: bool = False) -> None:
        """Kill what is left of this kernel on the host and remove its log files; with
        ``ending`` (it was asked to shut down and its comm port closed) first let the launcher
        finish its own clean-up for a moment (see ``cleanup_script``)."""
        await run_script_async(self.target, cleanup_script(self.ref, ending), timeout)


class LaunchWatcher:
    """Checks the launches still waiting on one host, all in one command per interval.

    ``watch`` starts a daemon thread when the first launch is added; the thread ends when the
    last one is removed.  ``report`` returns the latest finding for a kernel: None while it
    runs (or before the first check), a :class:`LauncherStatus` once it exited or vanished, or
    the :class:`SshError` of a failed check.
    """

    _registry: dict[tuple[object, ...], LaunchWatcher] = {}
    _registry_lock = threading.Lock()

    def __init__(self, target: SshTarget, interval: float, timeout: float) -> None:
        self.target = target
        self.interval = interval
        self.timeout = timeout
        self._lock = threading.Lock()
        self._watched: dict[str, RemoteLauncherRef] = {}
        self._reports: dict[str, LauncherStatus | SshError] = {}
        self._thread: threading.Thread | None = None
        self.checks = 0
        self.answered = False
        self.changes = ChangeSignal()
        """Notified when a check found a launcher that exited or could not be checked."""
        self.log = logging.getLogger(__name__)

    @classmethod
    def for_target(cls, target: SshTarget, interval: float, timeout: float) -> LaunchWatcher:
        with cls._registry_lock:
            watcher = cls._registry.get(target.pool_key)
            if watcher is None:
                watcher = cls(target, interval, timeout)
                cls._registry[target.pool_key] = watcher
            return watcher

    def watch(self, ref: RemoteLauncherRef) -> None:
        with self._lock:
            self._watched[ref.kernel_id] = ref
            self._reports.pop(ref.kernel_id, None)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"gp-ssh-watch-{self.target.label}", daemon=True
                )
                self._thread.start()

    def unwatch(self, kernel_id: str) -> None:
        with self._lock:
            self._watched.pop(kernel_id, None)
            self._reports.pop(kernel_id, None)

    def is_synced(self) -> bool:
        """Whether a check has run since the watcher started (the ``BackendWatch`` contract)."""
        return self.answered

    def report(self, kernel_id: str) -> LauncherStatus | SshError | None:
        with self._lock:
            return self._reports.get(kernel_id)

    def _run(self) -> None:
        stop = threading.Event()
        while True:
            stop.wait(self.interval)
            with self._lock:
                refs = list(self._watched.values())
                if not refs:
                    self._thread = None
                    return
            findings: dict[str, LauncherStatus | SshError] = {}
            try:
                result = run_script(self.target, status_script(refs), self.timeout)
                self.checks += 1
                for kernel_id, status in parse_status(result.stdout).items():
                    if not status.running:
                        findings[kernel_id] = status
            except SshError as err:
                findings = {ref.kernel_id: err for ref in refs}
            except Exception as err:  # the thread must survive and report
                self.log.exception("Checking launches on %s failed", self.target.label)
                findings = {ref.kernel_id: SshCommandError(str(err)) for ref in refs}
            checked = {ref.kernel_id: ref for ref in refs}
            with self._lock:
                self.answered = True
                for kernel_id, finding in findings.items():
                    # A kernel unwatched meanwhile, or launched again under its id, is skipped.
                    if self._watched.get(kernel_id) is checked.get(kernel_id, False):
                        self._reports[kernel_id] = finding
            if findings:
                self.changes.notify()
