"""What gp-slurm submitted to a cluster, for gp-server's orphan sweep.

A kernel's job is named after its kernel id; a gp-server launch also gives it the comment
``gp-server-store=<store id>`` (``jobspec.store_comment``: Slurm shows no job's environment),
which is how one store's jobs are told from another's.  Listing is one ``squeue`` call for the
server's user (pending, running and suspended jobs); removal is ``scancel``.  Both run off the
event loop.  The commands are found as the provisioner finds them (``GP_SLURM_BIN_DIR``,
``GP_SLURM_CONF`` / ``SLURM_CONF``, ``GP_SLURM_COMMAND_TIMEOUT``); a slurmrestd-only setup
(no ``squeue`` on the server's host) has no inventory yet.
"""

from __future__ import annotations

import asyncio
import getpass
import subprocess
import time
from typing import Any

from gp_provisioners_core.inventory import BackendResource

from .commands import CommandSubmitter
from .config import SlurmSubmissionConfig
from .jobspec import STORE_COMMENT_PREFIX

SQUEUE_FORMAT = "%i|%j|%k|%V"  # job id, name, comment, submit time (the cluster's local time)


def parse_listing(text: str, store_id: str) -> list[BackendResource]:
    """The jobs of ``store_id`` in ``squeue --format=SQUEUE_FORMAT`` output."""
    wanted = STORE_COMMENT_PREFIX + store_id
    found = []
    for line in text.splitlines():
        if line.count("|") < 3:
            continue
        job_id, rest = line.split("|", 1)
        rest, submitted = rest.rsplit("|", 1)
        name, comment = rest.rsplit("|", 1)
        if comment.strip() != wanted:
            continue
        found.append(
            BackendResource("slurm", "job", job_id.strip(), name.strip(), _epoch(submitted))
        )
    return found


def _epoch(submitted: str) -> float | None:
    try:
        return time.mktime(time.strptime(submitted.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


class SlurmJobInventory:
    """Pending and running kernel jobs of one store, submitted by this server's user."""

    name = "slurm"

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        config = SlurmSubmissionConfig()
        self.commands = CommandSubmitter(
            bin_dir=config.slurm_bin_dir,
            slurm_conf=config.slurm_conf,
            timeout=config.slurm_command_timeout,
        )

    async def list_resources(self) -> list[BackendResource]:
        return await asyncio.to_thread(self._list)

    def _list(self) -> list[BackendResource]:
        argv = [
            self.commands.command("squeue"),
            "--noheader",
            f"--user={getpass.getuser()}",
            "--states=PENDING,RUNNING,SUSPENDED,CONFIGURING,REQUEUED,RESIZING",
            f"--format={SQUEUE_FORMAT}",
        ]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=self.commands.command_env(),
            timeout=self.commands.timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"squeue exited with code {done.returncode}: {done.stderr.strip()[-300:]}"
            )
        return parse_listing(done.stdout, self.store_id)

    async def remove(self, resource: Any) -> None:
        await self.commands.cancel(str(resource.name))
