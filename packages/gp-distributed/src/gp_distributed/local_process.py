"""Running a launcher as a local process: the distributed provisioner's path for this host."""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

OUTPUT_TAIL_LINES = 20


MAX_RELAYED_LINE_BYTES = 4096


class LocalLauncherProcess:
    """One launcher process on this machine, in a session (process group) of its own.

    Its output is relayed to the log line by line by a thread, and the last lines are kept for
    the error of a failed launch.  Created by ``DistributedProvisioner.submit_kernel``; after a
    re-attach in another process only the pid and pgid are known (``attached``).
    """

    def __init__(self, pid: int, pgid: int, process: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.pgid = pgid
        self._process = process
        self._tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)

    @classmethod
    def start(
        cls, cmd: Sequence[str], env: Mapping[str, str], cwd: str | None, log: logging.Logger
    ) -> LocalLauncherProcess:
        process = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        launched = cls(process.pid, process.pid, process)
        threading.Thread(
            target=launched._relay_output, args=(log,), name=f"gp-output-{process.pid}", daemon=True
        ).start()
        return launched

    @classmethod
    def attached(cls, pid: int, pgid: int) -> LocalLauncherProcess:
        return cls(pid, pgid)

    def _relay_output(self, log: logging.Logger) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        stdout = self._process.stdout
        while raw := stdout.readline(MAX_RELAYED_LINE_BYTES):
            # Bounded (a line without a newline is cut into pieces) and one log line each:
            # control characters the kernel printed are escaped.
            line = raw.decode(errors="replace").rstrip("\r\n")
            line = "".join(c if c.isprintable() or c == "\t" else ascii(c)[1:-1] for c in line)
            self._tail.append(line)
            log.info("[launcher %s] %s", self.pid, line)
        stdout.close()

    def output_tail(self) -> str:
        return "\n".join(self._tail)

    def exit_code(self) -> int | None:
        """None while the launcher runs, else its exit code (-N for signal N)."""
        if self._process is not None:
            return self._process.poll()
        return None if pid_is_running(self.pid) else 0

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the launcher's process group (launcher and kernel)."""
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass
        if self._process is not None and signum == signal.SIGKILL:
            try:
                self._process.wait(timeout=1)
            except subprocess.TimeoutExpired:
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
