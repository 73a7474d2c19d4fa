"""Submission through Slurm's commands on this host: ``sbatch``, ``squeue``, ``scancel``.

``sbatch`` runs with the job's environment as its own environment (``--export=ALL``), so the
launch secret never appears on a command line; the script goes to its stdin.  Every command
gets ``SLURM_CONF`` when one is configured.  ``submit``/``cancel`` are asyncio subprocesses;
``fetch`` (the watcher's thread) is a plain subprocess.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gp_provisioners_core import metrics

from .api_metrics import BACKEND
from .jobspec import JobRequest, parse_sbatch_job_id, sbatch_argv
from .status import JobStatus, parse_squeue, squeue_argv
from .submitter import (
    SlurmError,
    SlurmSubmitter,
    SlurmTimeoutError,
    Submission,
    already_finished,
)


def _last_lines(text: bytes | str, limit: int = 600) -> str:
    raw = text.decode(errors="replace") if isinstance(text, bytes) else text
    return " ".join(line.strip() for line in raw.strip().splitlines())[-limit:]


@dataclass
class CommandSubmitter(SlurmSubmitter):
    """Jobs through ``sbatch``/``squeue``/``scancel`` (found in ``bin_dir`` or on PATH)."""

    bin_dir: str = ""
    slurm_conf: str = ""
    timeout: float = 30.0
    kind: str = "sbatch"

    @property
    def watcher_name(self) -> str:
        return f"slurm-squeue:{self.command('squeue')}:{self.slurm_conf}"

    def describe(self) -> str:
        conf = f" (SLURM_CONF={self.slurm_conf})" if self.slurm_conf else ""
        return f"sbatch on this host{conf}"

    def command(self, name: str) -> str:
        if self.bin_dir:
            return os.path.join(self.bin_dir, name)
        return shutil.which(name) or name

    def command_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (the server's environment by default) plus ``SLURM_CONF``."""
        env = dict(os.environ if base is None else base)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env

    async def _run(
        self, argv: list[str], env: dict[str, str], stdin: bytes | None = None
    ) -> tuple[int, bytes, bytes]:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as error:
            metrics.api_request(BACKEND, os.path.basename(argv[0]), ok=False)
            raise SlurmError(f"cannot run {argv[0]}: {error}") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), self.timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            name = os.path.basename(argv[0])
            metrics.api_request(BACKEND, name, ok=False)
            raise SlurmTimeoutError(f"{name} gave no answer within {self.timeout:g}s") from None
        except asyncio.CancelledError:
            process.kill()
            raise
        code = int(process.returncode or 0)
        metrics.api_request(BACKEND, os.path.basename(argv[0]), ok=code == 0)
        return code, out, err

    async def submit(self, request: JobRequest) -> Submission:
        argv = sbatch_argv(self.command("sbatch"), request)
        env = self.command_env(request.environment)
        code, out, err = await self._run(argv, env, request.script.encode())
        if code != 0:
            raise SlurmError(_last_lines(err) or f"sbatch exited with code {code}")
        try:
            job_id = parse_sbatch_job_id(out.decode(errors="replace"))
        except ValueError as error:
            raise SlurmError(str(error)) from None
        return Submission(job_id, _last_lines(err))

    async def cancel(self, job_id: str, signum: int | None = None) -> None:
        argv = [self.command("scancel")]
        if signum is not None:
            argv += [f"--signal={signum}", "--full"]
        code, _, err = await self._run([*argv, job_id], self.command_env())
        message = _last_lines(err)
        if code != 0 and not already_finished(message):
            raise SlurmError(message or f"scancel exited with code {code}")

    async def cancel_by_name(self, name: str) -> None:
        argv = [
            self.command("scancel"),
            f"--name={name}",
            f"--user={pwd.getpwuid(os.getuid()).pw_name}",
        ]
        code, _, err = await self._run(argv, self.command_env())
        if code != 0:
            raise SlurmError(_last_lines(err) or f"scancel exited with code {code}")

    async def rename(self, job_id: str, name: str) -> None:
        argv = [self.command("scontrol"), "update", f"JobId={job_id}", f"JobName={name}"]
        code, _, err = await self._run(argv, self.command_env())
        if code != 0:
            raise SlurmError(_last_lines(err) or f"scontrol update exited with code {code}")

    def fetch(self, job_ids: Collection[str]) -> dict[str, JobStatus]:
        try:
            done = subprocess.run(
                squeue_argv(self.command("squeue"), job_ids),
                capture_output=True,
                text=True,
                env=self.command_env(),
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            metrics.api_request(BACKEND, "squeue", ok=False)
            raise
        metrics.api_request(BACKEND, "squeue", ok=done.returncode == 0)
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:
                return {}  # every id is forgotten: they all finished
            raise SlurmError(_last_lines(done.stderr) or f"squeue exited {done.returncode}")
        return parse_squeue(done.stdout)
