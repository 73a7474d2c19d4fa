"""The submit step: the kernelspec's argv (``run.sh`` calling ``spark-submit``) as a local process.

The submitter runs on this server, in a session (process group) of its own, with the launch's
environment.  In cluster mode with ``spark.yarn.submit.waitAppCompletion=false`` it exits once
YARN accepted the application; a run.sh that waits keeps running for the application's life,
so the provisioner stops it with the kernel either way.  Its output goes to the log line by line
(by a thread) and its last lines are kept for the error of a failed submission.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

OUTPUT_TAIL_LINES = 30


class SubmitterProcess:
    """One submitter process.  Created by ``YarnProvisioner.submit_kernel`` (``start``)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.pid = process.pid
        self._process = process
        self._tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        self._output_done = threading.Event()

    @classmethod
    def start(
        cls,
        cmd: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        log: logging.Logger,
        kernel_id: str,
    ) -> SubmitterProcess:
        """Start ``cmd``; raises ``OSError`` when it cannot be executed."""
        process = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        submitter = cls(process)
        threading.Thread(
            target=submitter._relay_output,
            args=(log, kernel_id),
            name=f"gp-yarn-submit-{process.pid}",
            daemon=True,
        ).start()
        return submitter

    def _relay_output(self, log: logging.Logger, kernel_id: str) -> None:
        stream = self._process.stdout
        assert stream is not None
        try:
            for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                self._tail.append(line)
                log.info("Kernel %s [submit] %s", kernel_id, line)
        finally:
            stream.close()
            self._output_done.set()

    def exit_code(self) -> int | None:
        """None while it runs, else its exit code (-N for signal N)."""
        return self._process.poll()

    def output_tail(self, wait: float = 0.0) -> str:
        """Its last lines of output.  With ``wait``, blocks up to ``wait`` s for a finished
        process's last lines (then call it from a worker thread)."""
        if self._process.poll() is not None:
            self._output_done.wait(wait)
        return "\n".join(self._tail)

    def stop(self) -> None:
        """Kill its whole process group, including children that outlived it (blocking for
        at most a second); idempotent."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
