"""Status strings and fail-fast messages from pod JSON (pure; no cluster)."""

from __future__ import annotations

from typing import Any

from gp_k8s.diagnosis import ERROR_STATES, describe, exit_code, pod_status
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
