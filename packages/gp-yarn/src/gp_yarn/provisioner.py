"""YarnProvisioner: each kernel is a YARN application (Spark in cluster mode).

The kernelspec's argv (``bin/run.sh``, which calls ``spark-submit --master yarn --deploy-mode
cluster --name $KERNEL_ID ... launch_ipykernel.py``) runs on this server as the submit step; the
launcher runs in the application master and answers the response manager as everywhere else.
The application is found again by its name, the kernel id (and the launch's tag), in the
process's shared applications view (``applications.py``: one RM query per interval for all
kernels), which ``poll`` and the launch checks read without calling the RM.  Kill and the
last-resort stop go through ``PUT /ws/v1/cluster/apps/{id}/state``.  The submitter runs in a
session (process group) of its own with its output relayed to the log line by line and its
last lines kept for the error of a failed submission: the core's ``RelayedProcess``.  In cluster
mode with ``spark.yarn.submit.waitAppCompletion=false`` it exits once YARN accepted the
application; a run.sh that waits runs for the application's life, so the provisioner stops it
with the kernel either way.  Every yarn-api-client call runs in a worker thread or the watcher's
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn

from gp_provisioners_core import RemoteProvisionerBase
from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchTimeoutError,
)
from gp_provisioners_core.relayed_process import RelayedProcess
from gp_provisioners_core.watch import BackendWatch

from .applications import YarnApp, YarnAppWatch, pick_app
from .endpoints import EndpointConfigError, candidate_endpoints
from .inventory import store_tag
from .launch_steps import AppLaunchSteps
from .rm_client import RMRequestError, RMSettings, RMUnavailableError
from .settings import YarnConfigMixin
from .spark_options import OPTS_ENV, QUEUE_ENV, SparkOptions, resolve_spark_options

IMPERSONATION_ENV = "GP_IMPERSONATION_ENABLED"
APP_TAG_ENV = "GP_YARN_APP_TAG"
LAUNCH_ENV_NAMES = (
    "KERNEL_ID",
    "KERNEL_USERNAME",
    IMPERSONATION_ENV,
    APP_TAG_ENV,
    QUEUE_ENV,
    OPTS_ENV,
)
"""Variables the provisioner sets for run.sh at each launch (besides GP_LAUNCH_SECRET and
GP_TRANSPORT_ENCRYPTION, set by gp-provisioners-core)."""
SUBMITTER_TAIL_LINES = 30
"""Lines of the submitter's output kept for the error of a failed submission."""


class YarnProvisioner(AppLaunchSteps, YarnConfigMixin, RemoteProvisionerBase):  # type: ignore[metaclass]
    """Runs each kernel as a YARN application submitted by the kernelspec's run.sh."""

    persisted_fields: ClassVar[tuple[str, ...]] = (
        *RemoteProvisionerBase.persisted_fields,
        "application_id",
        "app_tag",
        "launch_started_ms",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.application_id = ""
        self.app_tag = ""
        self.launch_started_ms = 0
        self._watch: YarnAppWatch | None = None
        self._submitter: RelayedProcess | None = None
        self._ended: YarnApp | None = None
        self._earlier_app_ids: set[str] = set()
        self._spark_options = SparkOptions()
        self._waiting_reported = False
        self._submit_failure_checked = False

    @property
    def has_process(self) -> bool:
        return bool(self.application_id) or self._submitter is not None

    # -- configuration ------------------------------------------------------------------------

    def rm_settings(self) -> RMSettings:
        """The ResourceManager setup of this kernel (endpoints resolved, no network)."""
        try:
            endpoints = candidate_endpoints(self.yarn_endpoint, self.alt_yarn_endpoint, os.environ)
        except EndpointConfigError as err:
            raise KernelSpecConfigError(
                f"Kernel {self.kernel_id} ({self._spec_label()}): {err}",
                kernel_id=str(self.kernel_id),
            ) from None
        verify: bool | str = self.yarn_cert_bundle or True
        return RMSettings(
            endpoints, self.yarn_endpoint_security_enabled, verify, self.yarn_request_timeout
        )

    def launch_watches(self) -> Sequence[BackendWatch]:
        """The ResourceManager's applications watcher: a failed application wakes the launch."""
        return (self.app_watch().watcher,)

    def app_watch(self) -> YarnAppWatch:
        """The shared applications view for this kernel's ResourceManager."""
        if self._watch is None:
            self._watch = YarnAppWatch.shared(
                self.rm_settings(), tuple(self.yarn_application_types), self.yarn_status_interval
            )
        return self._watch

    # -- launch -------------------------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Check the RM setup and the request's queue and Spark options, then
        gp-provisioners-core's authorization and argv; add run.sh's variables."""
        self.app_watch()  # configuration errors first, before anything is registered
        launch = await super().pre_launch(**kwargs)
        env: dict[str, str] = launch["env"]
        env.update(self._spark_options.launch_env())
        self.app_tag = f"gp-{secrets.token_hex(8)}"
        env[IMPERSONATION_ENV] = "true" if self.impersonation_enabled else "false"
        env[APP_TAG_ENV] = ",".join(filter(None, (self.app_tag, store_tag(env))))
        return launch

    async def validate_launch(self, env: dict[str, str]) -> None:
        """Check the request's queue and Spark options against the operator's allow-lists
        and, with impersonation, that the kernel user can be YARN's proxy user.  Called by the
        core's ``pre_launch`` after authorisation, before anything is registered."""
        self._spark_options = resolve_spark_options(
            env, self.spark_option_limits(), str(self.kernel_id)
        )
        if self.impersonation_enabled:
            self._check_proxy_user(self.kernel_username)

    def _check_proxy_user(self, username: str) -> None:
        bad = (
            not username
            or len(username) > 255
            or username.startswith("-")
            or any(c.isspace() or not c.isprintable() for c in username)
        )
        if bad:
            raise InvalidLaunchParameterError(
                f"KERNEL_USERNAME={username!r} cannot be a YARN proxy user for kernel "
                f"{self.kernel_id}: use a plain user name (no spaces or control characters)",
                kernel_id=str(self.kernel_id),
            )

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Start the submitter (run.sh) locally and watch for the application it creates."""
        self._reset_launch_state()
        self.launch_started_ms = int(time.time() * 1000)
        watch = self.app_watch()
        watch.track(str(self.kernel_id), self.launch_started_ms, launching=True)
        try:
            self._submitter = await asyncio.to_thread(
                RelayedProcess.start,
                cmd,
                env,
                kwargs.get("cwd"),
                self.log,
                log_prefix=f"Kernel {self.kernel_id} [submit]",
                thread_name="gp-yarn-submit-{pid}",
                tail_lines=SUBMITTER_TAIL_LINES,
            )
        except OSError as err:
            self.fail_launch(f"cannot run the kernelspec's submitter {cmd[0]!r}: {err}")

    def log_kernel_launch(self, cmd: list[str]) -> None:
        pid = self._submitter.pid if self._submitter is not None else 0
        endpoints = ", ".join(self.app_watch().client.settings.endpoints)
        self.log.info(
            "Kernel %s: submitting a YARN application named %s with %s (pid %s); "
            "ResourceManager %s",
            self.kernel_id,
            self.kernel_id,
            cmd[0],
            pid,
            endpoints,
        )

    async def confirm_remote_startup(self) -> None:
        await self.receive_connection_info()
        app = await self._application_with_host()
        self.confirm_backend(app.host, app.describe() + f", master on {app.am_host_http_address}")
        self.app_watch().settled(str(self.kernel_id))

    async def _application_with_host(self) -> YarnApp:
        """Wait (reading the shared cache) until the application's master has a host."""
        while True:
            app = self._current_app()
            if app is not None and app.is_final:
                self.fail_launch(app.describe())
            if app is not None and app.host:
                return app
            if self._remaining_launch_time() <= 0:
                await self.handle_launch_timeout()
            await asyncio.sleep(0.05)

    async def detect_launch_failure(self) -> None:
        """Fail at once when the application ended, or the submitter failed without one."""
        app = self._current_app()
        if app is not None:
            if app.is_final:
                self.fail_launch(app.describe())
            self._report_waiting(app)
            return
        submitter = self._submitter
        code = submitter.exit_code() if submitter is not None else None
        if submitter is None or code in (None, 0) or self._submit_failure_checked:
            return
        self._submit_failure_checked = True
        # It may have created the application before it failed: look once more.
        await asyncio.to_thread(self.app_watch().watcher.refresh, 3.0)
        app = self._current_app()
        if app is not None:
            if app.is_final:
                self.fail_launch(app.describe())
            return
        rm_error = self.app_watch().last_error
        tail = await asyncio.to_thread(submitter.output_tail, 0.5)
        self.fail_launch(
            f"the submitter exited with code {code} before a YARN application named "
            f"{self.kernel_id} appeared"
            + (f" (the ResourceManager query failed: {rm_error})" if rm_error else "")
            + f". Its last output:\n{tail or '(none)'}"
        )

    def _report_waiting(self, app: YarnApp) -> None:
        elapsed = self.launch_phases.elapsed
        if self._waiting_reported or app.state == "RUNNING":
            return
        if elapsed >= self.yarn_accepted_report_after:
            self._waiting_reported = True
            self.log.warning(
                "Kernel %s: after %.0fs, %s; it waits for the scheduler",
                self.kernel_id,
                elapsed,
                app.describe(),
            )

    async def handle_launch_timeout(self) -> NoReturn:
        """gp-provisioners-core's timeout error, with what YARN last said about the application."""
        detail = self._launch_status()
        try:
            await super().handle_launch_timeout()
        except LaunchTimeoutError as err:
            raise LaunchTimeoutError(
                f"{err} YARN: {detail}", kernel_id=str(self.kernel_id), phase=err.phase
            ) from None

    def _launch_status(self) -> str:
        app = self._current_app()
        if app is not None:
            return app.describe().rstrip(".") + "."
        status = f"no YARN application named {self.kernel_id} appeared"
        watch = self._watch
        if watch is not None and watch.last_error:
            status += f"; the ResourceManager query failed: {watch.last_error}"
        submitter = self._submitter
        if submitter is not None and submitter.exit_code() is not None:
            status += (
                f"; the submitter exited with code {submitter.exit_code()}, last output:\n"
                f"{submitter.output_tail() or '(none)'}"
            )
        return status + "."

    # -- life ---------------------------------------------------------------------------------

    async def poll(self) -> int | None:
        """The application's state from the shared cache: None while it lives."""
        if self._ended is not None:
            return self._ended.exit_code
        app = self._current_app()
        if app is None:
            if self.application_id and self._watch is not None:
                if self._watch.apps_of(str(self.kernel_id)) == ():
                    self.log.warning(
                        "Kernel %s: YARN no longer lists application %s; reporting it ended",
                        self.kernel_id,
                        self.application_id,
                    )
                    return 0
            return None
        if not app.is_final:
            return None
        self._ended = app
        self.log.info("Kernel %s ended: %s", self.kernel_id, app.describe())
        return app.exit_code

    def liveness_known(self) -> bool:
        """False until an applications query covering this kernel answered (the
        ResourceManager may be slow or stalled; until then ``poll`` says None)."""
        if self._ended is not None or not self.application_id:
            return True
        return self._watch is not None and self._watch.apps_of(str(self.kernel_id)) is not None

    async def send_signal(self, signum: int) -> None:
        if await self.signal_through_channel(signum):
            return
        if signum in (signal.SIGKILL, signal.SIGTERM):
            await self._kill_application()

    async def shutdown_requested(self, restart: bool = False) -> None:
        """A shutdown request went to the kernel: watch closely for the application's end."""
        if self._watch is not None and self.application_id:
            self._watch.hurry(str(self.kernel_id))

    async def terminate(self, restart: bool = False) -> None:
        if await self.shutdown_through_channel():
            if self._watch is not None:
                self._watch.hurry(str(self.kernel_id))
            return
        await self.kill(restart)

    async def kill(self, restart: bool = False) -> None:
        """Kill the application through the ResourceManager (the launcher's comm port when no
        ResourceManager answers), and the submitter if it still runs."""
        await self._stop_submitter()
        await self._kill_application()

    async def cleanup(self, restart: bool = False) -> None:
        """Stop watching; kill the application if it was last seen alive."""
        await self._stop_submitter()
        if self.application_id and self._ended is None and self._watch is not None:
            app = self._current_app()
            if app is None or not app.is_final:
                await self._kill_application()
        if self.application_id:
            self._earlier_app_ids.add(self.application_id)
        if self._watch is not None:
            self._watch.untrack(str(self.kernel_id))
        self.application_id = ""
        self._ended = None
        await super().cleanup(restart=restart)

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        if self.application_id:
            self.app_watch().track(str(self.kernel_id), self.launch_started_ms, launching=False)

    # -- helpers ------------------------------------------------------------------------------

    def _current_app(self) -> YarnApp | None:
        """This launch's application in the shared cache (no RM call); records its id."""
        if self._watch is None:
            return None
        apps = self._watch.apps_of(str(self.kernel_id))
        if not apps:
            return None
        app = pick_app(
            apps,
            app_id=self.application_id,
            tag=self.app_tag,
            since_ms=self.launch_started_ms,
            exclude=self._earlier_app_ids,
        )
        if app is not None and not self.application_id:
            self.application_id = app.id
            self.log.info(
                "Kernel %s is YARN application %s (queue %s)", self.kernel_id, app.id, app.queue
            )
        return app

    async def _kill_application(self) -> None:
        watch = self._watch
        if watch is None:
            return
        app = self._current_app()
        if app is None and not self.application_id:
            await asyncio.to_thread(watch.watcher.refresh, 5.0)
            app = self._current_app()
        if not self.application_id or (app is not None and app.is_final):
            return
        app_id = self.application_id
        try:
            state = await asyncio.to_thread(watch.client.kill, app_id)
            self.log.info(
                "Kernel %s: asked YARN to kill %s (it is %s)", self.kernel_id, app_id, state
            )
        except RMRequestError as err:
            if err.status != 404:
                self.log.warning("Kernel %s: killing %s failed: %s", self.kernel_id, app_id, err)
        except RMUnavailableError as err:
            reached = await self.signal_through_channel(signal.SIGKILL)
            self.log.error(
                "Kernel %s: could not kill YARN application %s (%s); %s",
                self.kernel_id,
                app_id,
                err,
                "killed the kernel through its launcher instead"
                if reached
                else "its launcher does not answer either: kill it in YARN",
            )
        watch.hurry(str(self.kernel_id))

    async def _stop_submitter(self) -> None:
        submitter, self._submitter = self._submitter, None
        if submitter is not None:
            # its whole process group, children that outlived it included
            await asyncio.to_thread(submitter.signal_group, signal.SIGKILL)

    def _reset_launch_state(self) -> None:
        if self.application_id:
            self._earlier_app_ids.add(self.application_id)
        self.application_id = ""
        self._ended = None
        self._submitter = None
        self._waiting_reported = False
        self._submit_failure_checked = False
