"""The pure builders: batch script, job environment, sbatch argv, REST body, sbatch output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gp_slurm.jobspec import (
    JobRequest,
    batch_script,
    check_env_allowlist,
    parse_sbatch_job_id,
    rest_job_body,
    sbatch_argv,
)
from gp_slurm.resources import JobResources

HOSTILE = ["a b", "$(touch /tmp/gp-pwned)", "'quoted'", '"double"', "`id`", "x;y", "*", "\\n"]


def test_batch_script_runs_argv_literally(tmp_path: Path) -> None:
    script = batch_script(["printf", "%s\\n", *HOSTILE])
    assert script.startswith("#!/bin/sh\nexec printf ")
    path = tmp_path / "job.sh"
    path.write_text(script)
    done = subprocess.run(["/bin/sh", str(path)], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == HOSTILE


def test_batch_script_needs_an_argv() -> None:
    with pytest.raises(ValueError, match="argv is empty"):
        batch_script([])


@pytest.mark.parametrize("name", ["SBATCH_PARTITION", "SLURM_CONF", "SRUN_CPUS_PER_TASK"])
def test_sbatch_option_variables_cannot_be_allowed(name: str) -> None:
    with pytest.raises(ValueError, match="sbatch reads"):
        check_env_allowlist([name])


def _request(**resources: object) -> JobRequest:
    return JobRequest(
        name="k1",
        script="#!/bin/sh\nexec true\n",
        environment={"KERNEL_ID": "k1", "GP_LAUNCH_SECRET": "s3cret"},
        resources=JobResources(**resources),  # type: ignore[arg-type]
        working_dir="/work",
        output="/out/k1-%j.out",
    )


def test_sbatch_argv_minimal_and_full() -> None:
    base = [
        "/usr/bin/sbatch",
        "--parsable",
        "--job-name=k1",
        "--export=ALL",
        "--no-requeue",
        "--nodes=1",
        "--ntasks=1",
        "--chdir=/work",
        "--output=/out/k1-%j.out",
        "--cpus-per-task=1",
    ]
    assert sbatch_argv("/usr/bin/sbatch", _request()) == base
    full = _request(
        partition="gpu",
        account="lab",
        qos="high",
        time_limit=90,
        cpus=4,
        memory=2048,
        gpus=2,
        gpu_type="a100",
    )
    assert sbatch_argv("sbatch", full)[9:] == [
        "--cpus-per-task=4",
        "--partition=gpu",
        "--account=lab",
        "--qos=high",
        "--time=90",
        "--mem=2048M",
        "--gres=gpu:a100:2",
    ]
    assert not any("s3cret" in arg for arg in sbatch_argv("sbatch", full))


def test_rest_body() -> None:
    body = rest_job_body(_request(partition="gpu", time_limit=90, memory=2048, gpus=1))
    assert body == {
        "job": {
            "name": "k1",
            "environment": {"KERNEL_ID": "k1", "GP_LAUNCH_SECRET": "s3cret"},
            "current_working_directory": "/work",
            "standard_output": "/out/k1-%j.out",
            "requeue": False,
            "nodes": 1,
            "tasks": 1,
            "cpus_per_task": 1,
            "partition": "gpu",
            "time_limit": 90,
            "memory_per_node": 2048,
            "gres": "gpu:1",
        },
        "script": "#!/bin/sh\nexec true\n",
    }
    with pytest.raises(ValueError, match=r"v0\.0\.40"):
        rest_job_body(_request(), "v0.0.40")


@pytest.mark.parametrize(("out", "job_id"), [("42\n", "42"), ("17;cluster\n", "17")])
def test_sbatch_job_id(out: str, job_id: str) -> None:
    assert parse_sbatch_job_id(out) == job_id


@pytest.mark.parametrize("out", ["", "Submitted batch job 4\n", "x;y"])
def test_sbatch_without_job_id(out: str) -> None:
    with pytest.raises(ValueError, match="no job id"):
        parse_sbatch_job_id(out)
