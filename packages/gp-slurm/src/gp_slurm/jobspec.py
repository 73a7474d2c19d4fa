"""Pure builders of what is submitted: the batch script, the job's environment, the ``sbatch``
argv and the slurmrestd job body.

Nothing here runs a command.  Values travel as data: the script is the kernelspec's argv, each
argument quoted with ``shlex.quote`` after ``exec``; the environment never appears in the
script or on a command line (``sbatch`` receives it as its own environment with
``--export=ALL``; slurmrestd receives it in the body's ``environment`` field).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gp_provisioners_core.inventory import launch_store_id

from .resources import JobResources

# Names sbatch or Slurm would read as options or overwrite: never taken from a request.
_RESERVED_PREFIXES = ("SBATCH_", "SLURM_", "SALLOC_", "SRUN_")
REST_VERSIONS = ("v0.0.36", "v0.0.37", "v0.0.38")
STORE_COMMENT_PREFIX = "gp-server-store="
"""A gp-server launch's job comment: ``gp-server-store=<store id>`` (what the orphan inventory
lists; Slurm shows no job's environment)."""


@dataclass(frozen=True)
class JobRequest:
    """Everything one submission needs, whichever way it is submitted."""

    name: str
    script: str
    environment: Mapping[str, str]
    resources: JobResources
    working_dir: str = "/tmp"  # noqa: S108 - Slurm's own default is the submit dir
    output: str = "/dev/null"


def batch_script(argv: Sequence[str]) -> str:
    """A ``/bin/sh`` batch script that replaces itself with ``argv`` (so the launcher is the
    job's batch process and receives Slurm's signals)."""
    if not argv:
        raise ValueError("the kernelspec's argv is empty")
    return "#!/bin/sh\n" + "exec " + shlex.join(argv) + "\n"


def check_env_allowlist(names: Iterable[str]) -> None:
    """Refuse allow-list entries sbatch would read as its options (``SBATCH_*``, ``SLURM_*``)."""
    for name in names:
        if name.startswith(_RESERVED_PREFIXES):
            raise ValueError(
                f"{name!r} cannot travel to Slurm jobs: sbatch reads {name.split('_')[0]}_* "
                "variables as its own options; use the provisioner's resource settings instead"
            )


def store_comment(environment: Mapping[str, str]) -> str:
    """The job comment naming the gp-server store of the launch ('' when none, or when the
    value is not a store id: hex digits only)."""
    store = launch_store_id(environment)
    return STORE_COMMENT_PREFIX + store if store else ""


def sbatch_argv(sbatch: str, request: JobRequest) -> list[str]:
    """``sbatch --parsable ...`` for ``request``; the script goes to its stdin."""
    res = request.resources
    argv = [
        sbatch,
        "--parsable",
        f"--job-name={request.name}",
        "--export=ALL",
        "--no-requeue",
        "--nodes=1",
        "--ntasks=1",
        f"--chdir={request.working_dir}",
        f"--output={request.output}",
        f"--cpus-per-task={res.cpus}",
    ]
    if res.partition:
        argv.append(f"--partition={res.partition}")
    if res.account:
        argv.append(f"--account={res.account}")
    if res.qos:
        argv.append(f"--qos={res.qos}")
    if res.time_limit:
        argv.append(f"--time={res.time_limit}")
    if res.memory:
        argv.append(f"--mem={res.memory}M")
    if res.gres:
        argv.append(f"--gres={res.gres}")
    comment = store_comment(request.environment)
    if comment:
        argv.append(f"--comment={comment}")
    return argv


def rest_job_body(request: JobRequest, api_version: str = "v0.0.38") -> dict[str, Any]:
    """The ``POST /slurm/<version>/job/submit`` body for ``request`` (OpenAPI v0.0.36-38)."""
    if api_version not in REST_VERSIONS:
        raise ValueError(
            f"slurmrestd API {api_version!r} is not supported; "
            f"use one of {', '.join(REST_VERSIONS)}"
        )
    res = request.resources
    job: dict[str, Any] = {
        "name": request.name,
        "environment": dict(request.environment),
        "current_working_directory": request.working_dir,
        "standard_output": request.output,
        "requeue": False,
        "nodes": 1,
        "tasks": 1,
        "cpus_per_task": res.cpus,
    }
    if res.partition:
        job["partition"] = res.partition
    if res.account:
        job["account"] = res.account
    if res.qos:
        job["qos"] = res.qos
    if res.time_limit:
        job["time_limit"] = res.time_limit
    if res.memory:
        job["memory_per_node"] = res.memory
    if res.gres:
        job["gres"] = res.gres
    comment = store_comment(request.environment)
    if comment:
        job["comment"] = comment
    return {"job": job, "script": request.script}


def parse_sbatch_job_id(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``ID`` or ``ID;CLUSTER``)."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    if not (job_id.isascii() and job_id.isdigit()):
        raise ValueError(f"sbatch printed no job id: {stdout.strip()[:200]!r}")
    return job_id
