"""Launch events of kernels on a real Slurm cluster, as a subscriber of the server's event
logger receives them: the job's scheduling shows between submission and the launcher's answer,
and a job Slurm refuses is a failed 'submitted' phase with Slurm's reason."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from backends.slurm_kernels import SlurmKernelspecs
from jupyter_events import EventLogger

from gp_provisioners_core import launch_events
from gp_provisioners_core.errors import LaunchFailedError


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def listener(logger: EventLogger, schema_id: str, data: dict[str, Any]) -> None:
        received.append(data)

    logger = EventLogger()
    launch_events.use_event_logger(logger)
    logger.add_listener(schema_id=launch_events.SCHEMA_ID, listener=listener)
    yield received
    launch_events.use_event_logger(None)


async def of_kernel(events: list[dict[str, Any]], kernel_id: str) -> list[dict[str, Any]]:
    for _ in range(5):
        await asyncio.sleep(0)  # the listener tasks
    return [e for e in events if e["kernel_id"] == kernel_id]


async def test_a_slurm_launch_is_scheduled_before_the_launcher_answers(
    slurm_kernelspecs: SlurmKernelspecs, events: list[dict[str, Any]]
) -> None:
    manager = await slurm_kernelspecs.start(slurm_kernelspecs.cli)
    try:
        mine = await of_kernel(events, str(manager.kernel_id))
        assert [(e["phase"], e["status"]) for e in mine] == [
            ("submitted", "done"),
            ("scheduled", "progress"),
            ("connection-info-received", "done"),
            ("backend-confirmed", "done"),
            ("ready", "done"),
        ]
        assert {e["backend"] for e in mine} == {"slurm"}
    finally:
        await manager.shutdown_kernel()


async def test_a_refused_job_is_a_failed_submission_with_slurms_reason(
    slurm_kernelspecs: SlurmKernelspecs, events: list[dict[str, Any]]
) -> None:
    with pytest.raises(LaunchFailedError) as failure:
        await slurm_kernelspecs.start(
            slurm_kernelspecs.cli, env={"KERNEL_SLURM_PARTITION": "nosuchpartition"}
        )
    mine = await of_kernel(events, str(failure.value.kernel_id))
    assert [(e["phase"], e["status"]) for e in mine] == [("submitted", "failed")]
    assert mine[0]["reason"] == "submit-refused"
    assert "Invalid partition name specified" in mine[0]["message"]
