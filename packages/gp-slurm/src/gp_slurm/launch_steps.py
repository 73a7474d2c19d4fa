"""The launch step a Slurm job shows (scheduled: it runs on a node), as a launch event.

``JobLaunchSteps`` is mixed into :class:`~gp_slurm.provisioner.SlurmProvisioner`; the core calls
``report_launch_steps`` while the launch waits for the launcher.  It reads the shared status
watcher's cache only.
"""

from __future__ import annotations

from typing import Any

from gp_provisioners_core.phases import SCHEDULED


class JobLaunchSteps:
    """``report_launch_steps`` for provisioners whose kernel runs in a Slurm job."""

    def report_launch_steps(self, *, final: bool) -> None:
        provisioner: Any = self
        status = provisioner.job_status()[1]
        running = status is not None and status.state in ("RUNNING", "COMPLETING")
        if running or final:
            host = status.batch_host if status is not None else ""
            provisioner.launch_phases.note(SCHEDULED, f"node {host}" if host else "")
