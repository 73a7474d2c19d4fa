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
FATAL_WARNING_EVENTS: Mapping[str, int] = {
    "FailedCreatePodSandBox": 1,
    "FailedCreatePodContainer": 1,
    "FailedPostStartHook": 1,
    "ErrImageNeverPull": 1,
    "FailedMount": 2,
    "FailedAttachVolume": 2,
    "FailedMapVolume": 2,
}
"""Warning events that end a launch while the pod has not started, with the count from which
they do: the kubelet retries these for ever (a sandbox the runtime cannot create, a volume it
cannot mount) and says so only in events.  A volume gets one retry's grace (a Secret made a
moment before the pod may be late in the kubelet's cache)."""


TRANSIENT_UNSCHEDULABLE = ("unbound immediate PersistentVolumeClaims",)
"""Scheduler messages that end by themselves: a claim made with the pod (a user volume) is
bound by the volume controller a moment later, and the scheduler retries; the launch waits
(its timeout report still names the message) instead of failing at once."""


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
        if any(reason in state.unschedulable for reason in TRANSIENT_UNSCHEDULABLE):
            return "pending"  # the scheduler tries again once the reason is gone
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


def kernel_stopped(state: PodState | None) -> bool:
    """Whether the kernel's container does not run (any more): the pod is gone, its
    container terminated or never started.  A pod the node is still deleting counts as
    stopped once its container did; the object itself may stay for many seconds after."""
    if state is None:
        return True
    container = state.container
    if container is None:
        return state.phase != "Running"
    return container.state != "running"


def fatal_events(
    events: Iterable[Mapping[str, Any]], fatal: Mapping[str, int] = FATAL_WARNING_EVENTS
) -> list[str]:
    """The Warning events among ``events`` that end a launch (``Reason: message``)."""
    found: list[str] = []
    for event in events:
        reason = str(event.get("reason") or "")
        if event.get("type") != "Warning" or reason not in fatal:
            continue
        if int(event.get("count") or 1) < fatal[reason]:
            continue
        text = f"{reason}: {event.get('message', '')}"
        if text not in found:
            found.append(text)
    return found


def status_report(state: PodState | None, events: Iterable[Mapping[str, Any]] = ()) -> str:
    """The pod's phase, its container's state and its recent Warning events, always all
    three (for a launch timeout: what the pod was doing when the launch gave up)."""
    if state is None:
        return "the pod does not exist (deleted, or never seen by the watch)"
    where = f"on node {state.node_name}" if state.node_name else "not scheduled"
    parts = [f"phase {state.phase or 'unknown'} ({where})"]
    if state.unschedulable and not state.node_name:
        parts.append(f"Unschedulable: {state.unschedulable}")
    if state.deleting:
        parts.append("being deleted")
    container = state.container
    if container is None:
        parts.append("container: no status yet")
    else:
        detail = container.state or "unknown"
        if container.state == "terminated":
            detail += f" with exit code {container.exit_code}"
        if container.reason:
            detail += (
                f" ({container.reason}{': ' + container.message if container.message else ''})"
            )
        if container.restart_count:
            detail += f", restarted {container.restart_count} time(s)"
        parts.append(f"container {detail}")
    warnings = warning_events(events)
    parts.append("warning events: " + ("; ".join(warnings) if warnings else "none"))
    return "; ".join(parts)


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
