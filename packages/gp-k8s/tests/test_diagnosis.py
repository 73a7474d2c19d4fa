"""Status strings and fail-fast messages from pod JSON (pure; no cluster)."""

from __future__ import annotations

from typing import Any

from gp_k8s.diagnosis import (
    ERROR_STATES,
    describe,
    exit_code,
    fatal_events,
    kernel_stopped,
    pod_status,
    status_report,
)
from gp_k8s.pod_cache import pod_state


def pod(status: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "kernel-a",
            "namespace": "ns",
            "labels": {"kernel-id": "a"},
            **metadata,
        },
        "spec": {"nodeName": status.pop("_node", "node")},
        "status": status,
    }


def container(state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "kernel", "state": state, **extra}]}


def test_unseen_and_gone() -> None:
    assert pod_status(None, seen=False) == "pending"
    assert pod_status(None, seen=True) == ""
    assert describe(None) == "the pod was deleted"


def test_unschedulable_carries_the_scheduler_message() -> None:
    state = pod_state(
        pod(
            {
                "_node": "",
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Insufficient cpu.",
                    }
                ],
            }
        )
    )
    assert pod_status(state, seen=True) == "unschedulable" in ERROR_STATES
    assert "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu." in describe(state)


def test_a_claim_not_bound_yet_is_waited_for_not_fatal() -> None:
    """A user volume's claim is made with the pod; until the volume controller binds it the
    scheduler says Unschedulable, then retries: the launch waits, the report keeps the reason."""
    message = "0/1 nodes are available: 1 pod has unbound immediate PersistentVolumeClaims."
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    state = pod_state(
        pod({"_node": "", "phase": "Pending", "conditions": [{**condition, "message": message}]})
    )
    assert pod_status(state, seen=True) == "pending"
    assert f"Unschedulable: {message}" in describe(state)


def test_image_pull_errors() -> None:
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        state = pod_state(
            pod(
                {
                    "phase": "Pending",
                    **container({"waiting": {"reason": reason, "message": "nope"}}),
                }
            )
        )
        assert pod_status(state, seen=True) == reason.lower()
        assert pod_status(state, seen=True) in ERROR_STATES
        assert f"{reason}: nope" in describe(
            state, [{"type": "Warning", "reason": "Failed", "message": "Failed to pull image"}]
        )


def test_terminated_with_exit_code_and_last_lines() -> None:
    logs = "\n".join(f"line {i}" for i in range(50)) + "\nTraceback: boom"
    state = pod_state(
        pod(
            {
                "phase": "Failed",
                **container({"terminated": {"exitCode": 3, "reason": "Error", "message": logs}}),
            }
        )
    )
    assert pod_status(state, seen=True) == "failed"
    assert exit_code(state) == 3
    text = describe(state)
    assert "exited with code 3 (Error)" in text
    assert "Traceback: boom" in text
    assert "line 0\n" not in text  # only the last lines


def test_crash_loop_reports_last_exit() -> None:
    state = pod_state(
        pod(
            {
                "phase": "Running",
                **container(
                    {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
                    restartCount=2,
                    lastState={"terminated": {"exitCode": 1, "reason": "Error", "message": "bad"}},
                ),
            }
        )
    )
    assert pod_status(state, seen=True) == "crashloopbackoff"
    text = describe(state)
    assert "CrashLoopBackOff: back-off 10s" in text
    assert "last exit code 1" in text
    assert "bad" in text


def test_running_and_terminating() -> None:
    running = pod_state(pod({"phase": "Running", **container({"running": {}})}))
    assert pod_status(running, seen=True) == "running"
    assert exit_code(running) is None
    deleting = pod_state(
        pod(
            {"phase": "Running", **container({"running": {}})},
            deletionTimestamp="2024-01-01T00:00:00Z",
        )
    )
    assert pod_status(deleting, seen=True) == "terminating"


def test_kernel_stopped() -> None:
    assert kernel_stopped(None)
    assert kernel_stopped(pod_state(pod({"phase": "Pending"})))
    creating = pod_state(pod({"phase": "Pending", **container({"waiting": {}})}))
    assert kernel_stopped(creating)
    running = pod_state(pod({"phase": "Running", **container({"running": {}})}))
    assert not kernel_stopped(running)
    # deleted but still running on its node: not stopped yet
    deleting = pod_state(
        pod({"phase": "Running", **container({"running": {}})}, deletionTimestamp="t")
    )
    assert not kernel_stopped(deleting)
    terminated = pod_state(
        pod({"phase": "Running", **container({"terminated": {"exitCode": 137}})})
    )
    assert kernel_stopped(terminated)


def test_fatal_events_and_their_counts() -> None:
    events: list[dict[str, Any]] = [
        {"type": "Warning", "reason": "FailedCreatePodSandBox", "message": "no sandbox"},
        {"type": "Warning", "reason": "FailedMount", "message": "no volume", "count": 1},
        {"type": "Normal", "reason": "FailedMount", "message": "not a warning", "count": 9},
        {"type": "Warning", "reason": "BackOff", "message": "not fatal"},
    ]
    assert fatal_events(events) == ["FailedCreatePodSandBox: no sandbox"]
    events[1]["count"] = 2
    assert fatal_events(events) == [
        "FailedCreatePodSandBox: no sandbox",
        "FailedMount: no volume",
    ]


def test_status_report_always_has_phase_container_and_warnings() -> None:
    stuck = pod_state(
        pod({"phase": "Pending", **container({"waiting": {"reason": "ContainerCreating"}})})
    )
    warnings = [{"type": "Warning", "reason": "FailedCreatePodSandBox", "message": "boom"}]
    assert status_report(stuck, warnings) == (
        "phase Pending (on node node); container waiting (ContainerCreating); "
        "warning events: FailedCreatePodSandBox: boom"
    )
    bare = pod_state(pod({"_node": "", "phase": "Pending"}))
    assert status_report(bare) == (
        "phase Pending (not scheduled); container: no status yet; warning events: none"
    )
    assert "does not exist" in status_report(None)
