"""How jobs reach Slurm: the interface both submission paths implement.

``submit``/``cancel`` run on the caller's event loop without blocking it (asyncio subprocesses,
or worker threads for HTTP).  ``fetch`` is the batched status query the shared
``BatchedStatusWatcher`` runs on its own thread: one call for every watched job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass

from .jobspec import JobRequest
from .status import JobStatus


class SlurmError(RuntimeError):
    """Slurm refused or failed a request; the message is Slurm's own reason."""


class SlurmTimeoutError(SlurmError):
    """Slurm gave no answer in time: the request may or may not have been carried out."""


@dataclass(frozen=True)
class Submission:
    """A job Slurm accepted, and the warning it gave with it (e.g. "Requested partition
    configuration not available now": the job is queued all the same)."""

    job_id: str
    warning: str = ""


class SlurmSubmitter(ABC):
    """One way of talking to Slurm (``sbatch``/``squeue``/``scancel``, or slurmrestd)."""

    kind: str = ""

    @property
    @abstractmethod
    def watcher_name(self) -> str:
        """The shared watcher's name: equal for submitters that query the same cluster the
        same way, so that they share one query per interval."""

    @abstractmethod
    def describe(self) -> str:
        """Where jobs go, for log lines (never a token)."""

    @abstractmethod
    async def submit(self, request: JobRequest) -> Submission:
        """Submit the job.  Raises ``SlurmError`` with Slurm's reason when no job was made."""

    @abstractmethod
    async def cancel(self, job_id: str, signum: int | None = None) -> None:
        """Cancel the job (or send it ``signum``).  A job that already ended is not an error;
        anything else raises ``SlurmError``."""

    @abstractmethod
    async def cancel_by_name(self, name: str) -> None:
        """Cancel this user's unfinished jobs called ``name`` (after a submission whose answer
        was lost, e.g. by a timeout)."""

    async def rename(self, job_id: str, name: str) -> None:
        """Give the job another name (a claimed pooled kernel's new id).  Called by
        ``SlurmProvisioner.adopt_kernel_id``; raises ``SlurmError``.  Default: not supported."""
        raise SlurmError(f"{self.describe()} cannot rename jobs")

    @abstractmethod
    def fetch(self, job_ids: Collection[str]) -> dict[str, JobStatus]:
        """Blocking: the status of each of ``job_ids`` Slurm still lists, in one query."""


ALREADY_FINISHED = (
    "already completing or completed",
    "Invalid job id specified",
    "Job has already finished",
)


def already_finished(message: str) -> bool:
    """Whether a cancel error only says the job is gone already."""
    return any(text.lower() in message.lower() for text in ALREADY_FINISHED)
