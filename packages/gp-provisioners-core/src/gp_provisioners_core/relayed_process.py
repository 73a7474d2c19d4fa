"""A child process of the server whose output goes to the log as it comes.

:class:`RelayedProcess` starts a command in a session (process group) of its own, with stdin
closed and stderr joined to stdout, and relays its output to a logger line by line from a
thread of its own: each line bounded (a longer one is cut into pieces), control characters
escaped, one log record each.  The last lines are kept for the error of a failed launch.
Used by gp-distributed's local launchers and gp-yarn's ``spark-submit`` step.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

MAX_RELAYED_LINE_BYTES = 4096


def printable_line(raw: bytes) -> str:
    """One line of a child's output as text for a log: undecodable bytes replaced, the line
    end dropped and control characters (escape sequences included) escaped."""
    line = raw.decode(errors="replace").rstrip("\r\n")
    return "".join(c if c.isprintable() or c == "\t" else ascii(c)[1:-1] for c in line)


class RelayedProcess:
    """One running child process and the relay of its output.  Created by :meth:`start`."""

    def __init__(self, process: subprocess.Popen[bytes], tail_lines: int) -> None:
        self.process = process
        self.pid = process.pid
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._output_done = threading.Event()

    @classmethod
    def start(
        cls,
        cmd: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        log: logging.Logger,
        *,
        log_prefix: str,
        thread_name: str,
        tail_lines: int = 20,
    ) -> RelayedProcess:
        """Start ``cmd`` and its relay thread.  Each line is logged at INFO as ``log_prefix``
        then the line; ``{pid}`` in ``log_prefix`` and ``thread_name`` becomes the child's pid.
        Raises ``OSError`` when ``cmd`` cannot be executed.  Blocking (fork/exec): callers on
        an event loop run it in a thread."""
        process = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = cls(process, tail_lines)
        pid = str(process.pid)
        threading.Thread(
            target=started._relay_output,
            args=(log, log_prefix.replace("{pid}", pid)),
            name=thread_name.replace("{pid}", pid),
            daemon=True,
        ).start()
        return started

    def _relay_output(self, log: logging.Logger, prefix: str) -> None:
        stream = self.process.stdout
        assert stream is not None
        try:
            while raw := stream.readline(MAX_RELAYED_LINE_BYTES):
                line = printable_line(raw)
                self._tail.append(line)
                log.info("%s %s", prefix, line)
        finally:
            stream.close()
            self._output_done.set()

    def exit_code(self) -> int | None:
        """None while it runs, else its exit code (-N for signal N)."""
        return self.process.poll()

    def output_tail(self, wait: float = 0.0) -> str:
        """Its last lines of output.  With ``wait``, blocks up to ``wait`` s for an exited
        process's last lines to be relayed (then call it from a worker thread)."""
        if wait and self.process.poll() is not None:
            self._output_done.wait(wait)
        return "\n".join(self._tail)

    def signal_group(self, signum: int, wait: float = 1.0) -> None:
        """Send ``signum`` to its process group (children that outlived it included); after
        SIGKILL, reap it, blocking for at most ``wait`` s.  A group already gone is fine."""
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass
        if signum == signal.SIGKILL:
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass


__all__ = ["MAX_RELAYED_LINE_BYTES", "RelayedProcess", "printable_line"]
