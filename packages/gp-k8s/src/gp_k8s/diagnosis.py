"""Fail-fast diagnosis of a kernel pod, in the cluster's own words.

Pure functions of a :class:`~gp_k8s.pod_cache.PodState` (from the shared cache) and the pod's
Events (fetched once, when a failure is already known): which status string the provisioner
reports, whether it ends the launch, and the message the user sees (the scheduler's message,
the image pull error, the exit code with the container's last log lines, warning events).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .pod_cache import PodState

# Waiting reasons that never fix themselves during a launch.
FAILING_WAIT_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
ERROR_STATES = frozenset(
    {"failed", "succeeded", "unschedulable", "terminating"}
    | {reason.lower() for reason in FAILING_WAIT_REASONS}
)
INITIAL_STATES = frozenset({"pending", "unknown", ""})
MAX_LOG_LINES = 20


def pod_status(state: PodState | None, *, seen: bool) -> str:
    """The status string of the kernel's pod, lower case.

    ``""`` means gone (the cache saw the pod, and it no longer exists); a pod the cache has
    not seen yet is ``"pending"``.
    """
    if state is None:
        return "" if seen else "pending"
    container = state.container
    if state.deleting:
        return "terminating"
    if state.unschedulable and not state.node_name:
        return "unschedulable"
    if container is not None and container.state == "waiting":
        if container.reason in FAILING_WAIT_REASONS:
            return container.reason.lower()
    if state.phase in ("Failed", "Succeeded"):
        return state.phase.lower()
    if container is not None and container.state == "terminated":
        return "failed" if container.exit_code else "succeeded"
    return (state.phase or "pending").lower()


def exit_code(state: PodState | None) -> int | None:
    """The kernel container's exit code, when it terminated."""
    if state is None or state.container is None:
        return None
    if state.container.state == "terminated":
        return state.container.exit_code
    return None


def _last_lines(text: str, count: int = MAX_LOG_LINES) -> str:
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    return "\n".join(lines[-count:])


def describe(state: PodState | None, events: Iterable[Mapping[str, Any]] = ()) -> str:
    """What went wrong with the pod, for the launch error and the log."""
    if state is None:
        return "the pod was deleted"
    parts: list[str] = []
    container = state.container
    if state.deleting:
        parts.append(f"pod {state.namespace}/{state.name} is being deleted")
    if state.unschedulable and not state.node_name:
        parts.append(f"Unschedulable: {state.unschedulable}")
    if container is not None:
        if container.state == "waiting" and container.reason:
            parts.append(f"{container.reason}: {container.message}".rstrip(": "))
        if container.state == "terminated":
            parts.append(
                f"container exited with code {container.exit_code}"
                + (f" ({container.reason})" if container.reason else "")
            )
            if container.message:
                parts.append("last log lines:\n" + _last_lines(container.message))
        elif container.last_exit_code is not None:
            parts.append(
                f"restarted {container.restart_count} time(s); last exit code "
                f"{container.last_exit_code}"
                + (f" ({container.last_reason})" if container.last_reason else "")
            )
            if container.last_message:
                parts.append("last log lines:\n" + _last_lines(container.last_message))
    if state.phase in ("Failed", "Succeeded") and (state.reason or state.message):
        parts.append(f"pod {state.phase}: {state.reason} {state.message}".strip())
    warnings = warning_events(events)
    if warnings:
        parts.append("events: " + "; ".join(warnings))
    if not parts:
        parts.append(f"pod phase {state.phase or 'unknown'}")
    return "\n".join(parts)


def warning_events(events: Iterable[Mapping[str, Any]], limit: int = 5) -> list[str]:
    """The pod's distinct Warning events, oldest first, as ``Reason: message``."""
    found: list[str] = []
    for event in events:
        if event.get("type") != "Warning":
            continue
        text = f"{event.get('reason', '')}: {event.get('message', '')}"
        if text not in found:
            found.append(text)
    return found[-limit:]
