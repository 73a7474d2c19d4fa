"""The launch steps a client sees for a kernel pod: scheduled once it has a node, image pulled
once its container runs (both certain once the launcher answered)."""

from __future__ import annotations

from gp_k8s.launch_steps import pod_steps
from gp_k8s.pod_cache import ContainerState, PodState


def test_a_pending_pod_shows_no_step() -> None:
    assert pod_steps(PodState("ns", "kernel-1", phase="Pending"), answered=False) == []


def test_scheduled_then_pulled() -> None:
    placed = PodState("ns", "kernel-1", node_name="node-a", container=ContainerState("waiting"))
    assert pod_steps(placed, answered=False) == [("scheduled", "node node-a")]
    running = PodState("ns", "kernel-1", node_name="node-a", container=ContainerState("running"))
    assert pod_steps(running, answered=False) == [
        ("scheduled", "node node-a"),
        ("image-pulled", ""),
    ]


def test_an_answer_implies_both_steps_when_the_cache_lags() -> None:
    assert pod_steps(None, answered=True) == [("scheduled", ""), ("image-pulled", "")]
