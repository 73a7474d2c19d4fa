"""The launch steps a kernel pod shows (scheduled, image pulled), as launch events.

``PodLaunchSteps`` is mixed into :class:`~gp_k8s.provisioner.KubernetesProvisioner`; the core
calls ``report_launch_steps`` while the launch waits for the launcher (see
``RemoteProvisionerBase.report_launch_steps``).  It reads the shared pod cache only.
"""

from __future__ import annotations

from typing import Any

from gp_provisioners_core.phases import IMAGE_PULLED, SCHEDULED

from .pod_cache import PodState


def pod_steps(state: PodState | None, *, answered: bool) -> list[tuple[str, str]]:
    """The steps ``state`` shows, in order, with their detail.

    A pod with a node is scheduled; a container that runs or ran has its image.  When the
    launcher already ``answered``, both are certain even if the cache lags behind.
    """
    node = state.node_name if state is not None else ""
    container = state.container if state is not None else None
    steps: list[tuple[str, str]] = []
    if node or answered:
        steps.append((SCHEDULED, f"node {node}" if node else ""))
    if (container is not None and container.state in ("running", "terminated")) or answered:
        steps.append((IMAGE_PULLED, ""))
    return steps


class PodLaunchSteps:
    """``report_launch_steps`` for provisioners whose kernel runs in a pod (each step is
    reported once: ``LaunchPhases.note`` ignores repeats)."""

    def report_launch_steps(self, *, final: bool) -> None:
        provisioner: Any = self
        for step, detail in pod_steps(provisioner.pod_state(), answered=final):
            provisioner.launch_phases.note(step, detail)
