"""SlurmProvisioner's decisions, with a stand-in Slurm: what is refused before submission,
what is submitted, how the shared watcher's answers end a launch or a kernel, and that every
way out cancels a job that may still be queued or running."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchFailedError,
    LaunchTimeoutError,
)
from gp_provisioners_core.response_manager import ResponseManager
from gp_slurm import SlurmProvisioner
from gp_slurm.jobspec import JobRequest
from gp_slurm.status import JobStatus
from gp_slurm.submitter import SlurmError, SlurmSubmitter, SlurmTimeoutError, Submission

ARGV = [
    sys.executable,
    "{resource_dir}/scripts/launch_ipykernel.py",
    "--kernel-id",
    "{kernel_id}",
    "--response-address",
    "{response_address}",
    "--public-key",
    "{public_key}",
]


@dataclass
class FakeSlurm(SlurmSubmitter):
    name: str = field(default_factory=lambda: f"fake-{uuid.uuid4().hex}")
    statuses: dict[str, JobStatus] = field(default_factory=dict)
    submitted: list[JobRequest] = field(default_factory=list)
    cancelled: list[tuple[str, int | None]] = field(default_factory=list)
    refuse: SlurmError | None = None
    kind: str = "fake"

    @property
    def watcher_name(self) -> str:
        return self.name

    def describe(self) -> str:
        return "fake slurm"

    async def submit(self, request: JobRequest) -> Submission:
        if self.refuse is not None:
            raise self.refuse
        self.submitted.append(request)
        job_id = str(100 + len(self.submitted) - 1)
        self.statuses[job_id] = JobStatus(job_id, "PENDING", "", "", request.name)
        return Submission(job_id)

    async def cancel(self, job_id: str, signum: int | None = None) -> None:
        self.cancelled.append((job_id, signum))
        if signum is None and job_id in self.statuses:
            self.statuses[job_id] = JobStatus(job_id, "CANCELLED")

    async def cancel_by_name(self, name: str) -> None:
        self.cancelled.append((f"name={name}", None))

    def fetch(self, job_ids: Collection[str]) -> dict[str, JobStatus]:
        return {job_id: s for job_id, s in dict(self.statuses).items() if job_id in job_ids}

    def set(self, job_id: str, state: str, reason: str = "", host: str = "") -> None:
        self.statuses[job_id] = JobStatus(job_id, state, reason, host)


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_RESPONSE_PORT", "0")


@pytest.fixture
def fake() -> Iterator[FakeSlurm]:
    slurm = FakeSlurm()
    yield slurm
    from gp_provisioners_core.watcher import BatchedStatusWatcher

    watcher = BatchedStatusWatcher._registry.pop(slurm.name, None)
    if watcher is not None:
        watcher.stop()


def provisioner(fake: FakeSlurm, **config: Any) -> SlurmProvisioner:
    spec = KernelSpec(
        argv=ARGV,
        display_name="Slurm test",
        language="python",
        env={"SPEC_VAR": "from-spec"},
        metadata={"kernel_provisioner": {"provisioner_name": "slurm-provisioner"}},
    )
    config.setdefault("status_interval", 0.05)
    config.setdefault("launch_status_interval", 0.05)
    created = SlurmProvisioner(kernel_id=str(uuid.uuid4()), kernel_spec=spec, **config)
    created._submitter = fake
    return created


def request_env(**extra: str) -> dict[str, str]:
    return {"KERNEL_USERNAME": "alice", "PATH": "/usr/bin", "SERVER_ONLY": "stays", **extra}


async def submitted(prov: SlurmProvisioner, **extra: str) -> str:
    launch = await prov.pre_launch(env=request_env(**extra))
    await prov.submit_kernel(launch["cmd"], launch["env"])
    return prov.job_id


async def refreshed(prov: SlurmProvisioner) -> None:
    assert await asyncio.to_thread(prov.watcher().refresh, 5)


async def test_out_of_bounds_request_is_refused_before_anything_is_submitted(
    fake: FakeSlurm,
) -> None:
    prov = provisioner(fake, max_cpus=2)
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await prov.pre_launch(env=request_env(KERNEL_SLURM_CPUS="3"))
    assert refused.value.status_code == 400
    assert str(refused.value) == (
        f"KERNEL_SLURM_CPUS='3' for kernel {prov.kernel_id}: at most 2 CPUs allowed (max_cpus)"
    )
    assert fake.submitted == []
    assert str(prov.kernel_id) not in ResponseManager.instance()._pending  # no launch waits


async def test_operator_settings_that_break_their_bounds_are_a_config_error(
    fake: FakeSlurm,
) -> None:
    with pytest.raises(KernelSpecConfigError, match="cpus=3 must be between 1 and max_cpus=2"):
        await provisioner(fake, cpus=3, max_cpus=2).pre_launch(env=request_env())
    with pytest.raises(KernelSpecConfigError, match=r"env_allowlist.*SBATCH_PARTITION"):
        provisioner(fake, env_allowlist=["SBATCH_PARTITION"])
    # The old name forwards to the new one, so its values are checked the same way.
    with pytest.raises(KernelSpecConfigError, match=r"job_env_allowlist.*SBATCH_PARTITION"):
        provisioner(fake, job_env_allowlist=["SBATCH_PARTITION"])


async def test_submission_names_the_job_and_sends_only_the_allowed_env(
    fake: FakeSlurm, tmp_path: Path
) -> None:
    prov = provisioner(fake, job_output_dir=str(tmp_path), env_allowlist=["PATH"])
    job_id = await submitted(prov, KERNEL_SLURM_CPUS="2", KERNEL_EXTRA="x")
    [request] = fake.submitted
    kernel_id = str(prov.kernel_id)
    assert request.name == kernel_id
    assert request.resources.cpus == 2
    assert request.script.startswith(f"#!/bin/sh\nexec {sys.executable} ")
    assert f"--kernel-id {kernel_id}" in request.script
    env = dict(request.environment)
    assert env.pop("GP_LAUNCH_SECRET")
    assert env == {
        "KERNEL_USERNAME": "alice",
        "KERNEL_EXTRA": "x",
        "KERNEL_SLURM_CPUS": "2",
        "KERNEL_ID": kernel_id,
        "GP_TRANSPORT_ENCRYPTION": "none",
        "PATH": "/usr/bin",
        "SPEC_VAR": "from-spec",
    }
    assert request.output == f"{tmp_path}/{kernel_id}-%j.out"
    assert prov.job_output == f"{tmp_path}/{kernel_id}-{job_id}.out"
    assert prov.has_process
    assert (await prov.get_provisioner_info())["job_id"] == job_id


async def test_a_refused_submission_fails_with_slurms_reason(fake: FakeSlurm) -> None:
    fake.refuse = SlurmError("Invalid partition name specified")
    prov = provisioner(fake)
    launch = await prov.pre_launch(env=request_env())
    with pytest.raises(LaunchFailedError) as failed:
        await prov.launch_kernel(launch["cmd"], env=launch["env"])
    assert failed.value.phase == "submitted"
    assert "Slurm refused the job (fake slurm): Invalid partition name specified" in str(
        failed.value
    )
    assert fake.cancelled == []  # nothing was queued
    assert not prov.has_process


async def test_an_unanswered_submission_is_cancelled_by_name(fake: FakeSlurm) -> None:
    fake.refuse = SlurmTimeoutError("sbatch gave no answer within 30s")
    prov = provisioner(fake)
    launch = await prov.pre_launch(env=request_env())
    with pytest.raises(LaunchFailedError, match="no answer"):
        await prov.launch_kernel(launch["cmd"], env=launch["env"])
    assert fake.cancelled == [(f"name={prov.kernel_id}", None)]


async def test_pending_is_logged_once_per_reason_then_a_fatal_reason_fails(
    fake: FakeSlurm, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    prov = provisioner(fake)
    job_id = await submitted(prov)
    fake.set(job_id, "PENDING", "Priority")
    await refreshed(prov)
    await prov.detect_launch_failure()
    await prov.detect_launch_failure()
    waiting = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waiting) == 1
    assert f"Slurm job {job_id} is PENDING (Priority)" in waiting[0]
    fake.set(job_id, "PENDING", "JobHeldAdmin")
    await refreshed(prov)
    with pytest.raises(LaunchFailedError, match=rf"Slurm job {job_id} is PENDING \(JobHeldAdmin\)"):
        await prov.detect_launch_failure()


async def test_a_failed_job_fails_the_launch_with_its_last_output(
    fake: FakeSlurm, tmp_path: Path
) -> None:
    prov = provisioner(fake, job_output_dir=str(tmp_path))
    job_id = await submitted(prov)
    Path(prov.job_output).write_text("line 1\nModuleNotFoundError: No module named 'ipykernel'\n")
    fake.set(job_id, "FAILED", "NonZeroExitCode")
    await refreshed(prov)
    with pytest.raises(LaunchFailedError) as failed:
        await prov.detect_launch_failure()
    message = str(failed.value)
    assert f"Slurm job {job_id} is FAILED (NonZeroExitCode)" in message
    assert "No module named 'ipykernel'" in message


async def test_a_job_that_left_the_queue_before_answering_fails_the_launch(
    fake: FakeSlurm,
) -> None:
    prov = provisioner(fake)
    job_id = await submitted(prov)
    del fake.statuses[job_id]
    await refreshed(prov)
    with pytest.raises(LaunchFailedError, match="left the queue before the launcher answered"):
        await prov.detect_launch_failure()


async def test_the_timeout_names_the_jobs_last_state(fake: FakeSlurm) -> None:
    prov = provisioner(fake)
    job_id = await submitted(prov, KERNEL_LAUNCH_TIMEOUT="0.5")
    fake.set(job_id, "PENDING", "Resources")
    await refreshed(prov)
    with pytest.raises(LaunchTimeoutError) as timed_out:
        await prov.handle_launch_timeout()
    assert f"Slurm job {job_id}: PENDING (Resources)." in str(timed_out.value)
    assert "did not start within 0.5s" in str(timed_out.value)


@pytest.mark.parametrize(
    ("state", "code"),
    [("RUNNING", None), ("PENDING", None), ("COMPLETED", 0), ("CANCELLED", 1), (None, 0)],
)
async def test_poll_reads_the_watcher(fake: FakeSlurm, state: str | None, code: int | None) -> None:
    prov = provisioner(fake)
    job_id = await submitted(prov)
    if state is None:
        del fake.statuses[job_id]
    else:
        fake.set(job_id, state)
    await refreshed(prov)
    assert await prov.poll() == code


async def test_poll_without_a_job_and_before_the_first_answer(fake: FakeSlurm) -> None:
    prov = provisioner(fake)
    assert await prov.poll() == 0
    prov.job_id = "999"
    assert await prov.poll() is None  # not seen yet: alive until the watcher says otherwise


async def test_kill_cancels_once_and_cleanup_forgets(fake: FakeSlurm) -> None:
    prov = provisioner(fake)
    job_id = await submitted(prov)
    await prov.kill()
    await prov.cleanup()
    assert fake.cancelled == [(job_id, None)]
    assert not prov.has_process
    assert prov.watcher().observe(job_id) is None


@pytest.mark.parametrize(("state", "cancels"), [("RUNNING", True), ("COMPLETED", False)])
async def test_cleanup_cancels_a_job_that_may_still_run(
    fake: FakeSlurm, state: str, cancels: bool
) -> None:
    prov = provisioner(fake)
    job_id = await submitted(prov)
    fake.set(job_id, state)
    await refreshed(prov)
    await prov.cleanup()
    assert fake.cancelled == ([(job_id, None)] if cancels else [])


async def test_signals_and_terminate_without_the_launcher_go_to_slurm(fake: FakeSlurm) -> None:
    prov = provisioner(fake)
    job_id = await submitted(prov)
    await prov.send_signal(2)
    await prov.send_signal(0)
    await prov.terminate()
    assert fake.cancelled == [(job_id, 2), (job_id, None)]


async def test_reattach_watches_the_saved_job(fake: FakeSlurm) -> None:
    first = provisioner(fake)
    job_id = await submitted(first)
    fake.set(job_id, "RUNNING", host="node7")
    info = await first.get_provisioner_info()
    first.watcher().unwatch(job_id)
    second = provisioner(fake)
    second.kernel_id = first.kernel_id
    await second.load_provisioner_info(info)
    assert second.job_id == job_id
    await refreshed(second)
    assert second.job_status() == (True, JobStatus(job_id, "RUNNING", "", "node7"))
    assert await second.poll() is None
