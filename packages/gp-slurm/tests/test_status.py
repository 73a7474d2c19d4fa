"""Job status from squeue and slurmrestd, and what each state means for a kernel."""

from __future__ import annotations

import pytest

from gp_slurm.status import (
    DEFAULT_FATAL_REASONS,
    FAILED,
    FINISHED,
    RUNNING,
    WAITING,
    JobStatus,
    classify,
    parse_rest_jobs,
    parse_squeue,
    squeue_argv,
)

SQUEUE = """\
12|RUNNING|vm|None|k-one
13|PENDING|n/a|Resources|k|two
14|PENDING|n/a|PartitionConfig|k3
garbage line
15|CANCELLED|vm|None|k4
"""


def test_squeue_argv_asks_for_the_ids_in_all_states() -> None:
    assert squeue_argv("squeue", ["10", "9", "100"]) == [
        "squeue",
        "--noheader",
        "--states=all",
        "--jobs=9,10,100",
        "--format=%i|%T|%B|%r|%j",
    ]


def test_parse_squeue() -> None:
    found = parse_squeue(SQUEUE)
    assert found["12"] == JobStatus("12", "RUNNING", "", "vm", "k-one")
    assert found["13"] == JobStatus("13", "PENDING", "Resources", "", "k|two")
    assert found["14"].describe == "PENDING (PartitionConfig)"
    assert found["15"].describe == "CANCELLED"
    assert set(found) == {"12", "13", "14", "15"}


def test_parse_rest_jobs_keeps_only_the_wanted_ids() -> None:
    payload = {
        "jobs": [
            {"job_id": 7, "job_state": "RUNNING", "state_reason": "None", "batch_host": "n1"},
            {"job_id": 8, "job_state": ["PENDING"], "state_reason": "Priority", "name": "k8"},
            {"job_id": 9, "job_state": "COMPLETED"},
        ]
    }
    found = parse_rest_jobs(payload, {"7", "8"})
    assert found == {
        "7": JobStatus("7", "RUNNING", "", "n1", ""),
        "8": JobStatus("8", "PENDING", "Priority", "", "k8"),
    }
    assert parse_rest_jobs({}, {"7"}) == {}


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (None, FINISHED),
        (JobStatus("1", "COMPLETED"), FINISHED),
        (JobStatus("1", "COMPLETING"), FINISHED),
        (JobStatus("1", "PENDING", "Resources"), WAITING),
        (JobStatus("1", "PENDING", "Priority"), WAITING),
        (JobStatus("1", "CONFIGURING"), WAITING),
        (JobStatus("1", "PENDING", "PartitionConfig"), FAILED),
        (JobStatus("1", "PENDING", "JobHeldAdmin"), FAILED),
        (JobStatus("1", "RUNNING"), RUNNING),
        (JobStatus("1", "SUSPENDED"), RUNNING),
        (JobStatus("1", "FAILED", "NonZeroExitCode"), FAILED),
        (JobStatus("1", "CANCELLED"), FAILED),
        (JobStatus("1", "TIMEOUT"), FAILED),
        (JobStatus("1", "NODE_FAIL"), FAILED),
        (JobStatus("1", "OUT_OF_MEMORY"), FAILED),
    ],
)
def test_classify(status: JobStatus | None, verdict: str) -> None:
    assert classify(status, DEFAULT_FATAL_REASONS) == verdict


def test_fatal_reasons_are_the_operators_choice() -> None:
    held = JobStatus("1", "PENDING", "PartitionConfig")
    assert classify(held, ()) == WAITING
    assert classify(JobStatus("1", "PENDING", "Resources"), {"Resources"}) == FAILED
