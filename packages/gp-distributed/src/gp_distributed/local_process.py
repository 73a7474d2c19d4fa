"""Running a launcher as a local process: the distributed provisioner's path for this host."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from gp_provisioners_core.relayed_process import RelayedProcess

OUTPUT_TAIL_LINES = 20


class LocalLauncherProcess:
    """One launcher process on this machine, in a session (process group) of its own.

    Its output is relayed to the log line by line by a thread, and the last lines are kept for
    the error of a failed launch (the core's ``RelayedProcess``).  Created by
    ``DistributedProvisioner.submit_kernel``; after a re-attach in another process only the pid
    and pgid are known (``attached``).
    """

    def __init__(self, pid: int, pgid: int, process: RelayedProcess | None = None) -> None:
        self.pid = pid
        self.pgid = pgid
        self._process = process

    @classmethod
    def start(
        cls, cmd: Sequence[str], env: Mapping[str, str], cwd: str | None, log: logging.Logger
    ) -> LocalLauncherProcess:
        process = RelayedProcess.start(
            cmd,
            env,
            cwd,
            log,
            log_prefix="[launcher {pid}]",
            thread_name="gp-output-{pid}",
            tail_lines=OUTPUT_TAIL_LINES,
        )
        return cls(process.pid, process.pid, process)

    @classmethod
    def attached(cls, pid: int, pgid: int) -> LocalLauncherProcess:
        return cls(pid, pgid)

    def output_tail(self) -> str:
        return self._process.output_tail() if self._process is not None else ""

    def exit_code(self) -> int | None:
        """None while the launcher runs, else its exit code (-N for signal N)."""
        if self._process is not None:
            return self._process.exit_code()
        return None if pid_is_running(self.pid) else 0

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the launcher's process group (launcher and kernel)."""
        if self._process is not None:
            self._process.signal_group(signum)
            return
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass


def pid_is_running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
