"""Job status as Slurm reports it, parsed from ``squeue`` or slurmrestd, and what it means.

Pure functions.  :class:`JobStatus` is what the shared ``BatchedStatusWatcher`` caches for each
job id; :func:`classify` turns it into "waiting", "running", "failed" or "finished" for the
provisioner.  A job Slurm no longer lists (it forgets finished jobs after ``MinJobAge``) is
finished.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SQUEUE_FIELDS = "%i|%T|%B|%r|%j"
"""``squeue --format``: job id, state (long), batch host, reason, name (last: it may hold '|')."""

WAITING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "RESV_DEL_HOLD"})
RUNNING_STATES = frozenset(
    {"RUNNING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT", "REQUEUE_FED"}
)
FINISHED_STATES = frozenset({"COMPLETED", "COMPLETING"})
# Anything else (FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE,
# PREEMPTED, REVOKED, SPECIAL_EXIT, ...) is a failure.

DEFAULT_FATAL_REASONS = frozenset(
    {
        # The request can never run where it was sent.
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "QOSJobLimit",
        "DependencyNeverSatisfied",
        "ReqNodeNotAvail",
        "NodeDown",
        "PartitionDown",
        "PartitionInactive",
        "AccountNotAllowed",
        "QOSNotAllowed",
        # Held: nobody will release a kernel's job in time.
        "JobHeldAdmin",
        "JobHeldUser",
        "launch failed requeued held",
    }
)
"""Pending reasons that end a launch at once (operators can change the set)."""


@dataclass(frozen=True)
class JobStatus:
    """One job as the scheduler reports it."""

    job_id: str
    state: str
    reason: str = ""
    batch_host: str = ""
    name: str = ""

    @property
    def describe(self) -> str:
        """``STATE (reason)`` for messages; the reason is left out when Slurm gives none."""
        return f"{self.state} ({self.reason})" if self.reason else self.state


WAITING, RUNNING, FINISHED, FAILED = "waiting", "running", "finished", "failed"


def classify(
    status: JobStatus | None, fatal_reasons: Collection[str] = DEFAULT_FATAL_REASONS
) -> str:
    """``waiting`` / ``running`` / ``finished`` / ``failed`` for a job's last status.

    ``None`` (Slurm no longer lists the job) is ``finished``; a pending job whose reason is
    in ``fatal_reasons`` is ``failed``.
    """
    if status is None or status.state in FINISHED_STATES:
        return FINISHED
    if status.state in WAITING_STATES:
        return FAILED if status.reason in fatal_reasons else WAITING
    if status.state in RUNNING_STATES:
        return RUNNING
    return FAILED


def _clean(value: str) -> str:
    value = value.strip()
    return "" if value in ("None", "n/a", "(null)") else value


def squeue_argv(squeue: str, job_ids: Iterable[str]) -> list[str]:
    """One ``squeue`` call for ``job_ids`` in every state (finished ones included)."""
    ids = sorted(job_ids, key=lambda j: (len(j), j))
    return [
        squeue,
        "--noheader",
        "--states=all",
        f"--jobs={','.join(ids)}",
        f"--format={SQUEUE_FIELDS}",
    ]


def parse_squeue(text: str) -> dict[str, JobStatus]:
    """The statuses in ``squeue --format=SQUEUE_FIELDS`` output, by job id."""
    found: dict[str, JobStatus] = {}
    for line in text.splitlines():
        parts = line.split("|", 4)
        if len(parts) != 5 or not (parts[0].strip().isascii() and parts[0].strip().isdigit()):
            continue
        job_id, state, host, reason, name = parts
        found[job_id.strip()] = JobStatus(
            job_id=job_id.strip(),
            state=state.strip().split()[0] if state.strip() else "UNKNOWN",
            reason=_clean(reason),
            batch_host=_clean(host),
            name=name.strip(),
        )
    return found


def _state_of(value: Any) -> str:
    # v0.0.36-39 give a string; v0.0.40+ give a list of flags, the base state first.
    if isinstance(value, list):
        return str(value[0]) if value else "UNKNOWN"
    return str(value or "UNKNOWN")


def parse_rest_jobs(payload: Mapping[str, Any], wanted: Collection[str]) -> dict[str, JobStatus]:
    """The statuses of the ``wanted`` job ids in a slurmrestd ``GET .../jobs`` answer."""
    found: dict[str, JobStatus] = {}
    for job in payload.get("jobs") or []:
        job_id = str(job.get("job_id", ""))
        if job_id not in wanted:
            continue
        found[job_id] = JobStatus(
            job_id=job_id,
            state=_state_of(job.get("job_state")),
            reason=_clean(str(job.get("state_reason") or "")),
            batch_host=_clean(str(job.get("batch_host") or "")),
            name=str(job.get("name") or ""),
        )
    return found
