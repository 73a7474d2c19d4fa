"""The submit step: the kernelspec's argv (``run.sh`` calling ``spark-submit``) as a local process.

The submitter runs on this server, in a session (process group) of its own, with the launch's
environment.  In cluster mode with ``spark.yarn.submit.waitAppCompletion=false`` it exits once
YARN accepted the application; a run.sh that waits keeps running for the application's life,
so the provisioner stops it with the kernel either way.  Its output goes to the log line by line
(by a thread; bounded lines, control characters escaped: the core's ``RelayedProcess``) and its
last lines are kept for the error of a failed submission.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping, Sequence

from gp_provisioners_core.relayed_process import RelayedProcess

OUTPUT_TAIL_LINES = 30


class SubmitterProcess:
    """One submitter process.  Created by ``YarnProvisioner.submit_kernel`` (``start``)."""

    def __init__(self, process: RelayedProcess) -> None:
        self.pid = process.pid
        self._process = process

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
        return cls(
            RelayedProcess.start(
                cmd,
                env,
                cwd,
                log,
                log_prefix=f"Kernel {kernel_id} [submit]",
                thread_name="gp-yarn-submit-{pid}",
                tail_lines=OUTPUT_TAIL_LINES,
            )
        )

    def exit_code(self) -> int | None:
        """None while it runs, else its exit code (-N for signal N)."""
        return self._process.exit_code()

    def output_tail(self, wait: float = 0.0) -> str:
        """Its last lines of output.  With ``wait``, blocks up to ``wait`` s for a finished
        process's last lines (then call it from a worker thread)."""
        return self._process.output_tail(wait)

    def stop(self) -> None:
        """Kill its whole process group, including children that outlived it (blocking for
        at most a second); idempotent."""
        self._process.signal_group(signal.SIGKILL)
