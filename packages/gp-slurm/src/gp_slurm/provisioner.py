"""SlurmProvisioner: each kernel is a Slurm batch job running our launcher.

The job is named after the kernel id and submitted with ``sbatch`` on this host, or through
slurmrestd when ``rest_url`` is set.  Its resources come from the operator's settings and the
request's ``KERNEL_SLURM_*`` values, checked before submission (``resources.py``).  One shared
``BatchedStatusWatcher`` per cluster and process runs one ``squeue`` (or one REST jobs query)
per interval for every kernel; ``poll`` and launch-failure detection only read its cache.  The
kernel's host is the job's batch host; a job Slurm no longer lists is finished.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from gp_provisioners_core import RemoteProvisionerBase
from gp_provisioners_core.argv import travelling_env
from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchTimeoutError,
)
from gp_provisioners_core.watch import BackendWatch
from gp_provisioners_core.watcher import BatchedStatusWatcher

from .commands import CommandSubmitter
from .config import SlurmResourceConfig, SlurmSubmissionConfig
from .jobspec import JobRequest, batch_script
from .launch_steps import JobLaunchSteps
from .resources import JobResources, ResourceRequestError, check_limits, resolve_resources
from .rest import RestSubmitter
from .status import FAILED, FINISHED, WAITING, JobStatus, classify
from .submitter import SlurmError, SlurmSubmitter, SlurmTimeoutError

OUTPUT_TAIL_LINES = 20


class SlurmProvisioner(  # type: ignore[metaclass]
    JobLaunchSteps, SlurmSubmissionConfig, SlurmResourceConfig, RemoteProvisionerBase
):
    """Runs each kernel's launcher as a Slurm batch job."""

    persisted_fields: ClassVar[tuple[str, ...]] = (
        *RemoteProvisionerBase.persisted_fields,
        "job_id",
        "job_output",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = ""
        self.job_output = ""
        self.resources = JobResources()
        self._submitting = False
        self._submit_uncertain = False
        self._cancelled = False
        self._exit_code: int | None = None
        self._last_reported = ""
        self._submitter: SlurmSubmitter | None = None

    @property
    def has_process(self) -> bool:
        return self._submitting or bool(self.job_id)

    # -- the backend ---------------------------------------------------------------------------

    def submitter(self) -> SlurmSubmitter:
        """slurmrestd when ``rest_url`` is set, else the commands on this host."""
        if self._submitter is None:
            timeout = self.slurm_command_timeout
            if self.rest_url:
                try:
                    self._submitter = RestSubmitter(
                        url=self.rest_url,
                        user=self.rest_user,
                        token=self.rest_token,
                        token_file=self.rest_token_file,
                        api_version=self.rest_api_version,
                        timeout=timeout,
                    )
                except ValueError as err:
                    raise KernelSpecConfigError(f"Kernel {self.kernel_id}: {err}") from None
            else:
                self._submitter = CommandSubmitter(
                    bin_dir=self.slurm_bin_dir, slurm_conf=self.slurm_conf, timeout=timeout
                )
        return self._submitter

    def watcher(self) -> BatchedStatusWatcher[JobStatus]:
        """The process's shared status watcher for this cluster (created on first use)."""
        backend = self.submitter()
        return BatchedStatusWatcher.get_or_create(
            backend.watcher_name,
            backend.fetch,
            interval=self.status_interval,
            launch_interval=self.launch_status_interval,
        )

    def launch_watches(self) -> Sequence[BackendWatch]:
        """The cluster's job watcher: a job that failed or was refused wakes the launch."""
        return (self.watcher(),)

    def job_status(self) -> tuple[bool, JobStatus | None]:
        """(seen, status) of this kernel's job from the watcher's cache (no query)."""
        observation = self.watcher().observe(self.job_id) if self.job_id else None
        if observation is None:
            return False, None
        return True, observation.status

    # -- launch ----------------------------------------------------------------------------------

    async def validate_launch(self, env: dict[str, str]) -> None:
        """Settle the job's resources from the request's ``KERNEL_SLURM_*`` values (a value out
        of bounds is refused here) and check how jobs are submitted.  Called by the core's
        ``pre_launch`` after authorisation, before anything is registered or submitted."""
        kernel_id = str(self.kernel_id)
        try:
            check_limits(self.resource_limits())
        except ResourceRequestError as err:
            raise KernelSpecConfigError(
                f"Kernel {kernel_id} ({self._spec_label()}): Slurm settings: {err}",
                kernel_id=kernel_id,
            ) from None
        try:
            self.resources = resolve_resources(env, self.resource_limits(), kernel_id)
        except ResourceRequestError as err:
            raise InvalidLaunchParameterError(str(err), kernel_id=kernel_id) from None
        self.submitter()

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Submit the launcher as a job named after the kernel id.  Called by ``launch_kernel``."""
        self._reset_job_state()
        kernel_id = str(self.kernel_id)
        spec_env = getattr(self.kernel_spec, "env", None) or {}
        try:
            environment = travelling_env(env, self.env_allowlist, spec_env)
        except ValueError as err:
            raise InvalidLaunchParameterError(
                f"Kernel {kernel_id}: {err}", kernel_id=kernel_id
            ) from None
        output = (
            os.path.join(self.job_output_dir, f"{kernel_id}-%j.out")
            if self.job_output_dir
            else "/dev/null"
        )
        request = JobRequest(
            name=kernel_id,
            script=batch_script(cmd),
            environment=environment,
            resources=self.resources,
            working_dir=self.job_working_dir,
            output=output,
        )
        backend = self.submitter()
        self._submitting = True
        try:
            submission = await backend.submit(request)
        except SlurmError as err:
            self._submit_uncertain = isinstance(err, SlurmTimeoutError)
            self.fail_launch(f"Slurm refused the job ({backend.describe()}): {err}")
        self.job_id = submission.job_id
        if submission.warning:
            self.log.warning(
                "Kernel %s: Slurm queued job %s with a warning: %s",
                kernel_id,
                self.job_id,
                submission.warning,
            )
        self.job_output = output.replace("%j", self.job_id)
        self.watcher().watch(self.job_id, launching=True)

    def log_kernel_launch(self, cmd: list[str]) -> None:
        res = self.resources
        asked = [f"cpus={res.cpus}"]
        asked += [f"partition={res.partition}"] if res.partition else []
        asked += [f"time={res.time_limit}min"] if res.time_limit else []
        asked += [f"mem={res.memory}M"] if res.memory else []
        asked += [f"gres={res.gres}"] if res.gres else []
        self.log.info(
            "Kernel %s: Slurm job %s submitted through %s (%s), output %s: %s",
            self.kernel_id,
            self.job_id,
            self.submitter().describe(),
            ", ".join(asked),
            self.job_output,
            cmd[1] if len(cmd) > 1 else cmd[0],
        )

    async def confirm_remote_startup(self) -> None:
        await self.receive_connection_info()
        status = self.job_status()[1]
        if not (status and status.batch_host):
            await asyncio.to_thread(self.watcher().refresh, self.slurm_command_timeout)
            status = self.job_status()[1]
        host = status.batch_host if status and status.batch_host else self.assigned_ip
        state = status.state if status else "not listed"
        self.confirm_backend(host, f"Slurm job {self.job_id} {state} on {host}")

    async def wait_for_kernel_ports(self) -> None:
        await super().wait_for_kernel_ports()
        self.watcher().launched(self.job_id)

    async def detect_launch_failure(self) -> None:
        """End the launch when the watcher's last answer says the job failed, was cancelled,
        ended, or waits for a reason that never clears; log other pending reasons."""
        seen, status = self.job_status()
        if not seen:
            return
        verdict = classify(status, self.fatal_pending_reasons)
        if verdict == WAITING and status is not None:
            self._report_waiting(status)
        elif verdict == FAILED and status is not None:
            await self._fail_with_output(f"Slurm job {self.job_id} is {status.describe}")
        elif verdict == FINISHED:
            what = f"ended ({status.describe})" if status else "left the queue"
            await self._fail_with_output(
                f"Slurm job {self.job_id} {what} before the launcher answered"
            )

    def _report_waiting(self, status: JobStatus) -> None:
        if status.describe != self._last_reported:
            self._last_reported = status.describe
            self.log.info(
                "Kernel %s: Slurm job %s is %s after %.1fs; waiting",
                self.kernel_id,
                self.job_id,
                status.describe,
                self.launch_phases.elapsed,
            )

    async def _fail_with_output(self, reason: str) -> NoReturn:
        tail = await asyncio.to_thread(self._output_tail)
        self.fail_launch(f"{reason}{tail}")

    def _output_tail(self) -> str:
        if not self.job_output or self.job_output == "/dev/null":
            return ""
        try:
            lines = Path(self.job_output).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        if not lines:
            return ""
        shown = "\n".join(lines[-OUTPUT_TAIL_LINES:])
        return f". Its last output ({self.job_output}):\n{shown}"

    async def handle_launch_timeout(self) -> NoReturn:
        """gp-provisioners-core's timeout error, plus the job's last known state and any query
        failure."""
        try:
            await super().handle_launch_timeout()
        except LaunchTimeoutError as err:
            seen, status = self.job_status()
            known = status.describe if status else ("not listed" if seen else "not seen yet")
            error = self.watcher().last_error
            extra = f" Slurm job {self.job_id}: {known}."
            extra += f" The last status query failed: {error}." if error else ""
            raise LaunchTimeoutError(
                f"{err}{extra}", kernel_id=err.kernel_id, phase=err.phase
            ) from None

    # -- life --------------------------------------------------------------------------------

    async def poll(self) -> int | None:
        """None while the job waits or runs, per the watcher's last answer; 0 once it
        completed or left the queue, 1 when it failed or was cancelled."""
        if self._exit_code is not None:
            return self._exit_code
        if not self.job_id:
            return 0
        seen, status = self.job_status()
        if not seen:
            return None
        verdict = classify(status, ())
        if verdict in (FINISHED, FAILED):
            self._exit_code = 0 if verdict == FINISHED else 1
            return self._exit_code
        return None

    def liveness_known(self) -> bool:
        """False until a status query answered about this kernel's job (slurmctld may be
        slow or stalled; until then ``poll`` says None, not ended)."""
        return self._exit_code is not None or not self.job_id or self.job_status()[0]

    async def shutdown_requested(self, restart: bool = False) -> None:
        """The kernel was asked to stop: watch its job at the short interval until it ends."""
        self._watch_closely()

    async def send_signal(self, signum: int) -> None:
        if await self.signal_through_channel(signum) or not self.job_id or not signum:
            return
        if signum in (signal.SIGTERM, signal.SIGKILL):
            await self._cancel_job()
            return
        try:
            await self.submitter().cancel(self.job_id, signum)
        except SlurmError as err:
            self.log.warning(
                "Kernel %s: signal %s to Slurm job %s failed: %s",
                self.kernel_id,
                signum,
                self.job_id,
                err,
            )

    async def terminate(self, restart: bool = False) -> None:
        """Ask the launcher to stop the kernel; cancel the job when it cannot be reached."""
        if await self.shutdown_through_channel():
            self._watch_closely()
            return
        await self._cancel_job()

    async def kill(self, restart: bool = False) -> None:
        """Cancel the job (``scancel`` or REST ``DELETE``)."""
        await self._cancel_job()

    async def cleanup(self, restart: bool = False) -> None:
        """Cancel the job if it may still be queued or running, stop watching it, forget it."""
        if self.job_id and self._exit_code is None and not self._cancelled:
            seen, status = self.job_status()
            if not seen or classify(status, ()) not in (FINISHED, FAILED):
                await self._cancel_job()
        if self.job_id:
            self.watcher().unwatch(self.job_id)
        self._reset_job_state()
        await super().cleanup(restart=restart)

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        if self.job_id:
            self.watcher().watch(self.job_id, launching=False)

    async def relabel_backend(self, kernel_id: str) -> None:
        """A claimed pooled kernel (``gp_provisioners_core.pool``): its job is renamed for the
        new id (``scontrol update JobName``); its output file and environment keep the launch
        id.  A failed rename is logged; the kernel runs on."""
        if not self.job_id:
            return
        try:
            await self.submitter().rename(self.job_id, kernel_id)
        except SlurmError as err:
            self.log.warning("Kernel %s: job %s not renamed: %s", kernel_id, self.job_id, err)

    # -- helpers -------------------------------------------------------------------------------

    async def _cancel_job(self) -> None:
        if self._exit_code is not None:
            return  # the job has ended already
        backend = self.submitter()
        try:
            if self.job_id:
                await backend.cancel(self.job_id)
                self._cancelled = True
                self._watch_closely()
            elif self._submit_uncertain:
                await backend.cancel_by_name(str(self.kernel_id))
        except SlurmError as err:
            self.log.warning(
                "Kernel %s: cancelling Slurm job %s failed: %s",
                self.kernel_id,
                self.job_id or f"named {self.kernel_id}",
                err,
            )

    def _watch_closely(self) -> None:
        if self.job_id:
            self.watcher().watch(self.job_id, launching=True)

    def _reset_job_state(self) -> None:
        self.job_id = ""
        self.job_output = ""
        self._submitting = False
        self._submit_uncertain = False
        self._cancelled = False
        self._exit_code = None
        self._last_reported = ""
