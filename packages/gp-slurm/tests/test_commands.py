"""The sbatch/squeue/scancel path against stand-in commands that record what they were given:
the environment (with the launch secret) goes to sbatch as its environment, never its argv;
the script goes to its stdin; errors carry Slurm's text; nothing blocks the event loop."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gp_provisioners_core.testing import loop_ticks
from gp_slurm.commands import CommandSubmitter
from gp_slurm.jobspec import JobRequest, batch_script
from gp_slurm.resources import JobResources
from gp_slurm.submitter import SlurmError, SlurmTimeoutError

RECORDER = """#!{python}
import json, os, sys, time
record = {{"argv": sys.argv[1:], "env": dict(os.environ), "stdin": sys.stdin.read()}}
with open({log!r}, "a") as log:
    log.write(json.dumps(record) + "\\n")
time.sleep({sleep})
sys.stderr.write({stderr!r})
sys.stdout.write({stdout!r})
sys.exit({code})
"""


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


def fake_command(
    bin_dir: Path,
    name: str,
    *,
    stdout: str = "",
    stderr: str = "",
    code: int = 0,
    sleep: float = 0.0,
) -> Path:
    log = bin_dir / f"{name}.log"
    script = bin_dir / name
    script.write_text(
        RECORDER.format(
            python=sys.executable,
            log=str(log),
            sleep=sleep,
            stderr=stderr,
            stdout=stdout,
            code=code,
        )
    )
    script.chmod(0o755)
    return log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def request() -> JobRequest:
    return JobRequest(
        name="kernel-1",
        script=batch_script(["/usr/bin/python3", "launch.py", "--kernel-id", "kernel-1"]),
        environment={"KERNEL_ID": "kernel-1", "GP_LAUNCH_SECRET": "s3cret-value"},
        resources=JobResources(partition="debug", cpus=2),
    )


async def test_sbatch_gets_env_as_environment_and_script_on_stdin(bin_dir: Path) -> None:
    log = fake_command(bin_dir, "sbatch", stdout="42\n", stderr="sbatch: a warning\n")
    submitter = CommandSubmitter(bin_dir=str(bin_dir), slurm_conf="/etc/test/slurm.conf")
    submission = await submitter.submit(request())
    assert (submission.job_id, submission.warning) == ("42", "sbatch: a warning")
    [call] = calls(log)
    assert "--job-name=kernel-1" in call["argv"]
    assert "--partition=debug" in call["argv"]
    assert not any("s3cret" in arg for arg in call["argv"])
    assert call["stdin"] == request().script
    env = {k: v for k, v in call["env"].items() if k not in ("PWD", "SHLVL", "_", "LC_CTYPE")}
    assert env == {
        "KERNEL_ID": "kernel-1",
        "GP_LAUNCH_SECRET": "s3cret-value",
        "SLURM_CONF": "/etc/test/slurm.conf",
    }


async def test_sbatch_refusal_carries_slurms_reason(bin_dir: Path) -> None:
    reason = "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    fake_command(bin_dir, "sbatch", stderr=reason, code=1)
    with pytest.raises(SlurmError, match="Invalid partition name specified"):
        await CommandSubmitter(bin_dir=str(bin_dir)).submit(request())


async def test_sbatch_without_job_id_is_an_error(bin_dir: Path) -> None:
    fake_command(bin_dir, "sbatch", stdout="Submitted batch job\n")
    with pytest.raises(SlurmError, match="no job id"):
        await CommandSubmitter(bin_dir=str(bin_dir)).submit(request())


async def test_missing_command_is_named(tmp_path: Path) -> None:
    with pytest.raises(SlurmError, match=r"cannot run .*sbatch"):
        await CommandSubmitter(bin_dir=str(tmp_path / "nowhere")).submit(request())


async def test_a_slow_sbatch_times_out_without_blocking_the_loop(bin_dir: Path) -> None:
    fake_command(bin_dir, "sbatch", stdout="1\n", sleep=5)
    started = time.monotonic()
    async with loop_ticks() as ticks:
        with pytest.raises(SlurmTimeoutError, match=r"no answer within 0\.5s"):
            await CommandSubmitter(bin_dir=str(bin_dir), timeout=0.5).submit(request())
    assert time.monotonic() - started < 3
    assert ticks.count > 10  # the loop kept running while sbatch hung


async def test_scancel(bin_dir: Path) -> None:
    log = fake_command(bin_dir, "scancel")
    submitter = CommandSubmitter(bin_dir=str(bin_dir), slurm_conf="/c")
    await submitter.cancel("42")
    await submitter.cancel("42", 2)
    await submitter.cancel_by_name("kernel-1")
    argvs = [call["argv"] for call in calls(log)]
    assert argvs[0] == ["42"]
    assert argvs[1] == ["--signal=2", "--full", "42"]
    assert argvs[2][0] == "--name=kernel-1"
    assert argvs[2][1].startswith("--user=")
    assert all(call["env"]["SLURM_CONF"] == "/c" for call in calls(log))


async def test_scancel_of_a_finished_job_is_fine_other_errors_are_not(bin_dir: Path) -> None:
    done = "scancel: error: Kill job error on job id 42: Job/step already completing or completed"
    fake_command(bin_dir, "scancel", stderr=done, code=1)
    await CommandSubmitter(bin_dir=str(bin_dir)).cancel("42")
    fake_command(bin_dir, "scancel", stderr="scancel: error: Access/permission denied", code=1)
    with pytest.raises(SlurmError, match="permission denied"):
        await CommandSubmitter(bin_dir=str(bin_dir)).cancel("42")


def test_squeue_one_call_for_all_ids(bin_dir: Path) -> None:
    log = fake_command(
        bin_dir, "squeue", stdout="7|RUNNING|n1|None|k7\n9|PENDING|n/a|Priority|k9\n"
    )
    found = CommandSubmitter(bin_dir=str(bin_dir)).fetch(["7", "9", "8"])
    assert sorted(found) == ["7", "9"]
    assert found["9"].reason == "Priority"
    [call] = calls(log)
    assert "--jobs=7,8,9" in call["argv"]


def test_squeue_forgot_every_job_means_all_finished(bin_dir: Path) -> None:
    fake_command(
        bin_dir, "squeue", stderr="slurm_load_jobs error: Invalid job id specified", code=1
    )
    assert CommandSubmitter(bin_dir=str(bin_dir)).fetch(["5"]) == {}
    fake_command(bin_dir, "squeue", stderr="Unable to contact slurm controller", code=1)
    with pytest.raises(SlurmError, match="Unable to contact slurm controller"):
        CommandSubmitter(bin_dir=str(bin_dir)).fetch(["5"])
