"""The launch step a YARN application shows (scheduled: its master runs), as a launch event.

``AppLaunchSteps`` is mixed into :class:`~gp_yarn.provisioner.YarnProvisioner`; the core calls
``report_launch_steps`` while the launch waits for the launcher.  It reads the shared
applications cache only (no ResourceManager call).
"""

from __future__ import annotations

from typing import Any

from gp_provisioners_core.phases import SCHEDULED


class AppLaunchSteps:
    """``report_launch_steps`` for provisioners whose kernel runs in a YARN application."""

    def report_launch_steps(self, *, final: bool) -> None:
        provisioner: Any = self
        app = provisioner._current_app()
        if (app is not None and app.state == "RUNNING") or final:
            host = app.host if app is not None else ""
            detail = f"application master on {host}" if host else ""
            provisioner.launch_phases.note(SCHEDULED, detail)
