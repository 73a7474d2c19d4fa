"""RemoteProvisionerBase: the launch sequence every remote provisioner shares.

jupyter_client's KernelManager calls, in order: ``pre_launch`` (authorize, validate, build argv
and env), ``launch_kernel`` (``submit_kernel`` then ``confirm_remote_startup``), then ``poll``,
``send_signal``, ``terminate``/``kill``, ``wait`` and ``cleanup`` over the kernel's life.  A
backend implements ``submit_kernel``, ``confirm_remote_startup`` (usually by calling
``receive_connection_info`` and ``confirm_backend``), ``poll``, ``send_signal``,
``terminate``, ``kill``, ``has_process`` and ``log_kernel_launch``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
import unicodedata
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn, cast

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.localinterfaces import is_local_ip, local_ips
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import TraitError

from . import metrics
from . import phases as phase
from .argv import is_valid_kernel_id, substitute_argv
from .channel import KernelChannel, KernelChannelError
from .coexistence import warn_if_shadowed
from .config import (
    RemoteProvisionerConfigMixin,
    apply_kernelspec_overrides,
    is_decimal,
    validate_settings,
)
from .errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchFailedError,
    LaunchTimeoutError,
    ProvisionerError,
    UnauthorizedUserError,
)
from .legacy_env import apply_legacy_environment
from .legacy_specs import check_kernelspec
from .logsafe import printable
from .phases import LaunchPhases
from .pool_identity import POOL_CONFIG_KEY
from .protocol import LAUNCH_SECRET_ENV
from .response_manager import ResponseManager
from .users import KernelUser, kernel_username, root_refusal_hint
from .watch import BackendWatch, any_change

# Connection-info keys handed to jupyter_client; the launcher's extras stay with the provisioner.
CONNECTION_KEYS = (
    "shell_port",
    "iopub_port",
    "stdin_port",
    "hb_port",
    "control_port",
    "ip",
    "key",
    "transport",
    "signature_scheme",
    "kernel_name",
    "curve_publickey",
    "curve_secretkey",
)
_CONSTRUCTOR_KEYS = {"kernel_id", "kernel_spec", "parent", "config", "log"}


class RemoteProvisionerBase(RemoteProvisionerConfigMixin, KernelProvisionerBase):  # type: ignore[metaclass]
    """Base of every provisioner whose kernel is started by a launcher that answers back.

    The fields in ``persisted_fields`` are what ``get_provisioner_info`` saves and
    ``load_provisioner_info`` restores; a subclass appends the ids of its backend objects.
    """

    persisted_fields: ClassVar[tuple[str, ...]] = (
        "assigned_host",
        "assigned_ip",
        "comm_port",
        "pid",
        "pgid",
        "kernel_pid",
        "legacy_launcher",
        "kernel_username",
        "launch_kernel_id",
    )
    launch_check_interval: ClassVar[float] = 0.1
    """Seconds between ``detect_launch_failure`` calls while a launch waits.  With
    ``launch_watches``, a change of those watches calls it at once and this interval only
    bounds how long a check waits for one."""
    backend_label: ClassVar[str] = ""
    """The ``backend`` label of metrics and launch events; empty: the package's name without
    ``gp_`` (``gp_docker.docker_provisioner`` -> ``docker``)."""

    def __init__(self, **kwargs: Any) -> None:
        # Once per process, before any setting reads its GP_* default: gateway_provisioners'
        # dropped variables, and gateway_provisioners itself installed next to us.
        apply_legacy_environment()
        warn_if_shadowed()
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k not in _CONSTRUCTOR_KEYS}
        overrides.pop(POOL_CONFIG_KEY, None)  # the kernel manager's pools read it (pool.py)
        super().__init__(**kwargs)
        apply_kernelspec_overrides(self, overrides, self._spec_label())
        try:
            validate_settings(
                self, "min_port_range_size", "port_range", "max_launch_timeout", "launch_timeout"
            )
        except (TraitError, ValueError) as err:
            raise KernelSpecConfigError(
                f"Kernelspec {self._spec_label()}: the provisioner's settings are invalid: {err}",
                kernel_id=str(self.kernel_id or ""),
            ) from err
        self.assigned_host: str = ""
        self.assigned_ip: str = ""
        self.comm_port: int = 0
        self.pid: int = 0
        self.pgid: int = 0
        self.kernel_pid: int = 0
        self.legacy_launcher: bool = False
        self.kernel_username: str = ""
        self.launch_kernel_id: str = str(self.kernel_id or "")
        """The id the kernel was launched with; differs from ``kernel_id`` once a pool's
        kernel was claimed under another id (the launcher and backend labels keep it)."""
        self.kernel_channel: KernelChannel | None = None
        self.launch_phases = self._new_launch_phases(self.kernel_id or "")
        self._counted_running = False
        self.transport_encryption: str = "none"
        self._effective_launch_timeout: float = self.launch_timeout

    # -- what KernelManager calls ------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Refuse a kernelspec that cannot run here (e.g. one gateway_provisioners wrote, see
        ``legacy_specs``), authorize the user, validate the request, and build argv and env as
        data.

        Subclasses that override it must call ``super().pre_launch(**kwargs)`` and return its
        result (with their additions); anything that can refuse a launch should run before
        they submit anything.  A refusal here is counted as a ``refused`` launch.
        """
        try:
            return await self._prepare_launch(**kwargs)
        except ProvisionerError as err:
            self.launch_phases.fail(err, phase=phase.PRE_LAUNCH)
            raise

    async def _prepare_launch(self, **kwargs: Any) -> dict[str, Any]:
        kernel_id = str(self.kernel_id)
        if not is_valid_kernel_id(kernel_id):
            raise InvalidLaunchParameterError(
                f"Kernel id {printable(kernel_id)} may hold only letters, digits, '.', '_' and '-' "
                "(at most 128); start the kernel with another id",
                kernel_id=kernel_id,
            )
        spec = self.kernel_spec
        metadata = (getattr(spec, "metadata", None) or {}).get("kernel_provisioner") or {}
        check_kernelspec(
            spec,
            str(metadata.get("provisioner_name") or type(self).__name__),
            allow_legacy_launchers=self.allow_legacy_launchers,
            kernel_id=kernel_id,
        )
        self.launch_phases = self._new_launch_phases(kernel_id)
        self.launch_kernel_id = kernel_id
        env: dict[str, str] = dict(kwargs.pop("env", None) or os.environ)
        user = self.requested_user(env)
        self.kernel_username = user.name
        self.authorize_user(user.name, user)
        self._effective_launch_timeout = self._requested_launch_timeout(env)
        self.transport_encryption = self._transport_encryption_policy()
        await self.validate_launch(env)

        # The key pair is made on the response server's thread; this loop keeps running.
        manager = ResponseManager.shared(self.config)
        await manager.start_async()
        launch_secret = secrets.token_urlsafe(32)
        manager.register_event(kernel_id, launch_secret, allow_legacy=self.legacy_allowed())
        env.update(
            KERNEL_ID=kernel_id,
            KERNEL_USERNAME=self.kernel_username,
            GP_TRANSPORT_ENCRYPTION=self.transport_encryption,
        )
        env[LAUNCH_SECRET_ENV] = launch_secret
        extra = kwargs.pop("extra_arguments", None) or []
        cmd, unknown = substitute_argv(
            list(self.kernel_spec.argv) + list(extra), self.argv_substitutions()
        )
        if unknown:
            self.log.warning(
                "Kernel %s: kernelspec %s has argv placeholders no one fills: %s",
                kernel_id,
                self._spec_label(),
                ", ".join(sorted(unknown)),
            )
        kwargs.pop("cmd", None)
        return await super().pre_launch(cmd=cmd, env=env, **kwargs)

    async def validate_launch(self, env: dict[str, str]) -> None:
        """Check the start request against the backend's bounds; refuse it before anything
        exists.

        Called by ``pre_launch`` once per launch, after the user is authorised (so an
        unauthorised user always gets 403, whatever else is wrong) and before the launch is
        registered with the response manager or anything is submitted (so a refusal leaves
        nothing to undo).  ``env`` is the request's environment (``KERNEL_*`` values).  An
        override parses and checks what the backend takes from it (resources, image, user ids,
        variables that travel), keeps the settled values on ``self`` for ``submit_kernel``,
        and raises ``InvalidLaunchParameterError`` (the request) or ``KernelSpecConfigError``
        (the operator's settings) naming the value, the kernel id and the fix.  Overrides of
        a backend that builds on another call ``await super().validate_launch(env)``.
        """

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Submit the work, then wait until the kernel is confirmed; return its connection info.

        Subclasses implement ``submit_kernel`` and ``confirm_remote_startup`` rather than
        overriding this.  A failure cleans up what was submitted before it is raised.
        """
        try:
            await self.submit_kernel(cmd, kwargs.pop("env"), **kwargs)
            self.launch_phases.complete(phase.SUBMITTED)
            self.log_kernel_launch(cmd)
            await self.confirm_remote_startup()
            await self.wait_for_kernel_ports()
            self.launch_phases.complete(phase.READY, f"total {self.launch_phases.elapsed:.3f}s")
            self._count_running(True)
        except BaseException as err:
            await self._abandon_launch(err)
            raise
        return self.connection_info

    async def _abandon_launch(self, err: BaseException) -> None:
        # Not logged here: jupyter_client's KernelManager logs every failed start once (with
        # its traceback); logging it here too made two or three ERROR records per failure.
        self.launch_phases.fail(err)
        ResponseManager.shared(self.config).unregister_event(str(self.kernel_id))
        try:
            await self.kill()
        except Exception as kill_error:  # noqa: BLE001 - the launch error matters more
            self.log.warning(
                "Kernel %s: cleanup after a failed launch: %s", self.kernel_id, kill_error
            )
        await self.cleanup(restart=False)

    @abstractmethod
    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Hand the launch to the backend (a process, an ssh command, a pod, a job, ...).

        Called by ``launch_kernel`` once per launch.  Must return as soon as the backend took
        the work, record the backend's ids on ``self`` (and in ``persisted_fields``), and raise
        ``LaunchFailedError`` (via ``fail_launch``) when the backend refuses it.
        """

    @abstractmethod
    async def confirm_remote_startup(self) -> None:
        """Wait until the launcher answered and the backend says where the kernel runs.

        Called by ``launch_kernel`` after ``submit_kernel``.  Implementations normally call
        ``await self.receive_connection_info()`` and then ``self.confirm_backend(host)``.
        """

    @abstractmethod
    def log_kernel_launch(self, cmd: list[str]) -> None:
        """Log, once, what was submitted and where (never secrets or the env)."""

    @abstractmethod
    async def poll(self) -> int | None:
        """None while the kernel lives, else an exit code.  Called often: no per-call backend
        round trips when a shared watcher can answer."""

    def liveness_known(self) -> bool:
        """Whether ``poll``'s None rests on an answer about this kernel (True), or only on the
        absence of one (False: the backend has not answered since this process started or
        re-attached, e.g. its watch has not synced during an API stall).

        Called by gp-server after a re-attach: a kernel whose liveness is not known is listed
        with execution state "unknown", never dropped, until this turns True.  The default
        suits a backend whose ``poll`` asks it (or the launcher) directly; a backend that
        answers ``poll`` from a shared watcher's cache must override it, without I/O.
        """
        return True

    @abstractmethod
    async def send_signal(self, signum: int) -> None:
        """Deliver ``signum`` to the kernel: the comm port first, the backend as the last resort."""

    @abstractmethod
    async def kill(self, restart: bool = False) -> None:
        """Stop the kernel at once and release its backend resources."""

    @abstractmethod
    async def terminate(self, restart: bool = False) -> None:
        """Ask the kernel to stop (gracefully where the backend allows)."""

    async def wait(self) -> int | None:
        """Wait until ``poll`` reports the kernel gone; return its exit code."""
        while True:
            status = await self.poll()
            if status is not None:
                return status
            await asyncio.sleep(0.05)

    async def cleanup(self, restart: bool = False) -> None:
        """Forget the launch; subclasses release their files and watches, then call super.

        Does not start the response manager (a re-attached kernel's cleanup must not make an
        RSA key on the event loop)."""
        self._count_running(False)
        await self.relabelled()  # a claim's relabel must not race the removal of its objects
        ResponseManager.shared(self.config).unregister_event(str(self.kernel_id))
        self.kernel_channel = None

    async def get_provisioner_info(self) -> dict[str, Any]:
        """Everything another process needs to re-attach to this kernel (JSON-serializable)."""
        info = await super().get_provisioner_info()
        connection = dict(info.get("connection_info") or {})
        if isinstance(connection.get("key"), bytes):
            connection["key"] = connection["key"].decode()
        info["connection_info"] = connection
        info.update({name: getattr(self, name) for name in self.persisted_fields})
        info["launch_phases"] = self.launch_phases.as_dict()
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Restore the state saved by ``get_provisioner_info`` and reopen the comm channel."""
        await super().load_provisioner_info(provisioner_info)
        connection: dict[str, Any] = dict(self.connection_info)
        if isinstance(connection.get("key"), str):
            connection["key"] = connection["key"].encode()
        self.connection_info = cast(KernelConnectionInfo, connection)
        for name in self.persisted_fields:
            if name in provisioner_info:
                setattr(self, name, provisioner_info[name])
        for name in ("pid", "pgid", "kernel_pid", "comm_port"):
            value = getattr(self, name, 0)
            limit = 65536 if name == "comm_port" else 2**31
            if type(value) is not int or not 0 <= value < limit:
                raise ValueError(
                    f"Kernel {self.kernel_id}: saved provisioner info has {name}={value!r}, "
                    "which is not a valid number; the kernel cannot be re-attached"
                )
        self._open_kernel_channel()
        self._count_running(True)

    async def adopt_kernel_id(self, kernel_id: str) -> None:
        """Take ``kernel_id`` as this running kernel's id.

        Called by a kernel pool (``gp_provisioners_core.pool.rekey_manager``) when a pooled
        kernel is claimed by a start request.  The id changes at once; the backend's names and
        labels follow in the background (:meth:`relabel_backend`), so a claim never waits for a
        backend API call.  What the backend cannot change keeps ``launch_kernel_id``.
        """
        if not is_valid_kernel_id(kernel_id):
            raise InvalidLaunchParameterError(
                f"Kernel id {printable(kernel_id)} may hold only letters, digits, '.', '_' and '-'",
                kernel_id=kernel_id,
            )
        if not self.launch_kernel_id:
            self.launch_kernel_id = str(self.kernel_id)
        ResponseManager.shared(self.config).unregister_event(self.launch_kernel_id)
        self.kernel_id = kernel_id
        self._relabelling = asyncio.ensure_future(self._relabel_quietly(kernel_id))

    async def relabel_backend(self, kernel_id: str) -> None:
        """Rename or relabel this kernel's backend objects for ``kernel_id`` (a claimed pooled
        kernel).  Runs in the background after :meth:`adopt_kernel_id`; a backend overrides it
        (default: nothing to change).  An error is logged, never stops the kernel."""

    async def relabelled(self) -> None:
        """Wait until the background relabel of a claim (if any) has finished.  Called by
        :meth:`cleanup` and by tests that look at the backend right after a claim."""
        task = getattr(self, "_relabelling", None)
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=30)

    async def _relabel_quietly(self, kernel_id: str) -> None:
        try:
            await self.relabel_backend(kernel_id)
        except Exception as err:  # noqa: BLE001 - a failed relabel must not stop the kernel
            self.log.warning("Kernel %s: backend objects not relabelled: %s", kernel_id, err)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return recommended

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return recommended

    # -- helpers for subclasses ----------------------------------------------------------------

    @property
    def response_manager(self) -> ResponseManager:
        """The process's response manager, configured from this provisioner's config
        (``c.ResponseManager.*``) when this is the first to ask for it.  Blocks while it
        starts: ``pre_launch`` has already started it without blocking the loop."""
        manager = ResponseManager.shared(self.config)
        manager.start()
        return manager

    def declared_launcher_protocol(self) -> int:
        """The launcher protocol version the kernelspec declares
        (``metadata.kernel_provisioner.launcher_protocol_version``, default 2).

        It is a property of the kernelspec's launcher, not of the operator's settings, so it
        is read from the kernelspec alone.  Raises ``KernelSpecConfigError`` for anything but
        1 or 2.
        """
        metadata = getattr(self.kernel_spec, "metadata", None) or {}
        section = metadata.get("kernel_provisioner") or {}
        declared = section.get("launcher_protocol_version", 2) if isinstance(section, dict) else 2
        if type(declared) is not int or declared not in (1, 2):
            raise KernelSpecConfigError(
                f"Kernelspec {self._spec_label()}: metadata.kernel_provisioner."
                f"launcher_protocol_version is {declared!r}; use 1 (a legacy launcher) or 2",
                kernel_id=str(self.kernel_id),
            )
        return declared

    def legacy_allowed(self) -> bool:
        """Whether a v1 payload may answer this launch: the operator allows legacy launchers
        (``allow_legacy_launchers``) and the kernelspec declares a v1 launcher.  Called by
        ``pre_launch``; an override must keep both conditions."""
        declared_v1 = self.declared_launcher_protocol() == 1
        if declared_v1 and not self.allow_legacy_launchers:
            self.log.warning(
                "Kernel %s: kernelspec %s declares a legacy (v1) launcher, but "
                "allow_legacy_launchers is off: its answer will be refused",
                self.kernel_id,
                self._spec_label(),
            )
        return declared_v1 and self.allow_legacy_launchers

    def argv_substitutions(self) -> dict[str, str]:
        """Values for the kernelspec's argv placeholders; subclasses may add their own."""
        parent = self.parent
        values = {
            "kernel_id": str(self.kernel_id),
            "response_address": self.response_manager.response_address,
            "public_key": self.response_manager.public_key,
            "port_range": self.port_range,
            "prefix": sys.prefix,
            "python": sys.executable,
            "resource_dir": str(getattr(self.kernel_spec, "resource_dir", "")),
            # none | auto | required: the launcher's --transport-encryption (gateway_provisioners
            # specs pass it; the same value also travels as GP_TRANSPORT_ENCRYPTION)
            "transport_encryption": self.transport_encryption,
        }
        connection_file = getattr(parent, "connection_file", "")
        if connection_file:
            values["connection_file"] = connection_file
        return values

    def requested_user(self, env: dict[str, str]) -> KernelUser:
        """The kernel's user for the start request's ``env``: its KERNEL_USERNAME, else
        ``default_kernel_username``, else JupyterHub's user (JUPYTERHUB_USER of this server's
        process), else this process's owner.  Called by :meth:`pre_launch` (and by subclasses
        that authorize before it); an override returns a :class:`KernelUser`."""
        return kernel_username(env, self.default_kernel_username)

    def authorize_user(self, username: str, user: KernelUser | None = None) -> None:
        """Refuse ``username`` when listed as unauthorized or missing from a non-empty
        authorized list (denial wins).  Raises HTTP 403 before anything is started; for root
        the message says what to set (``user`` tells where the name came from).

        Names are compared after :func:`normalize_username` on both sides, so ``" Root"``,
        ``"ROOT"`` and root in full-width letters are all root."""
        name = normalize_username(username)
        denied = {normalize_username(u) for u in self.unauthorized_users}
        allowed = {normalize_username(u) for u in self.authorized_users}
        refused = not name or name in denied or (bool(allowed) and name not in allowed)
        if not refused:
            return
        config_class = type(self).__name__
        if name == "root" and name in denied:
            advice = root_refusal_hint(
                user or KernelUser(username, "the start request's KERNEL_USERNAME"), config_class
            )
        else:
            advice = (
                f"Ask the operator to adjust c.{config_class}.authorized_users / "
                "unauthorized_users (GP_AUTHORIZED_USERS, GP_UNAUTHORIZED_USERS), or start "
                "it as another KERNEL_USERNAME"
            )
        raise UnauthorizedUserError(
            f"User {printable(username)} is not authorized to start kernel {self.kernel_id} "
            f"({self._spec_label()}). {advice}.",
            kernel_id=str(self.kernel_id),
        )

    async def receive_connection_info(self) -> None:
        """Wait for the launcher's sealed connection info while watching the backend.

        Calls ``detect_launch_failure`` on every change of the ``launch_watches`` and at least
        every ``launch_check_interval`` seconds, so a failed launch ends at once with the
        backend's reason; ends with ``handle_launch_timeout`` at ``launch_timeout``.
        """
        kernel_id = str(self.kernel_id)
        receiving = asyncio.ensure_future(self.response_manager.get_launch_message(kernel_id))
        watches = self.launch_watches()
        try:
            versions = [watch.changes.version for watch in watches]
            while not receiving.done():
                remaining = self._remaining_launch_time()
                if remaining <= 0:
                    await self.handle_launch_timeout()
                timeout = min(self.launch_check_interval, remaining)
                if watches:
                    changed = asyncio.ensure_future(any_change(watches, versions, timeout))
                    await asyncio.wait({receiving, changed}, return_when=asyncio.FIRST_COMPLETED)
                    changed.cancel()
                else:
                    await asyncio.wait({receiving}, timeout=timeout)
                if not receiving.done():
                    versions = [watch.changes.version for watch in watches]
                    self._report_launch_steps(final=False)
                    await self.detect_launch_failure()
            message = receiving.result()
        finally:
            if not receiving.done():
                receiving.cancel()
        self._report_launch_steps(final=True)
        info = message.conn_info
        self.legacy_launcher = message.version == 1
        self.pid = int(info.get("pid") or 0)
        self.pgid = int(info.get("pgid") or 0)
        self.kernel_pid = int(info.get("kernel_pid") or 0)
        self.comm_port = int(info.get("comm_port") or 0)
        self.assigned_ip = str(info["ip"])
        kernel_name = getattr(self.parent, "kernel_name", "") or ""
        connection: dict[str, Any] = {k: info[k] for k in CONNECTION_KEYS if k in info}
        connection["kernel_name"] = kernel_name
        connection["key"] = str(info["key"]).encode()  # jupyter_client keeps the key as bytes
        self.connection_info = cast(KernelConnectionInfo, connection)
        self._check_transport_encryption()
        self._open_kernel_channel()
        self.launch_phases.complete(
            phase.CONNECTION_INFO, f"v{message.version} launcher on {self.assigned_ip}"
        )

    def launch_watches(self) -> Sequence[BackendWatch]:
        """The shared watches whose changes can end this kernel's launch (its container
        failed, its job was refused...): a change wakes ``receive_connection_info`` to call
        ``detect_launch_failure`` at once instead of at the next ``launch_check_interval``.

        Called once per launch, after ``submit_kernel``.  The default names none (the launch
        checks every ``launch_check_interval``); a backend with watchers returns them (cheap,
        no I/O) and may then raise ``launch_check_interval``.
        """
        return ()

    def confirm_backend(self, host: str, detail: str = "") -> None:
        """Record where the kernel runs and close the 'backend-confirmed' phase."""
        self.assigned_host = host
        self.launch_phases.complete(phase.CONFIRMED, detail or f"running on {host}")

    async def wait_for_kernel_ports(self) -> None:
        """Wait until the kernel accepts connections on its shell port (it is up and bound)."""
        ip, port = self.connection_info["ip"], int(self.connection_info["shell_port"])
        while True:
            try:
                _, writer = await asyncio.open_connection(ip, port)
            except OSError:
                await self.detect_launch_failure()
                if self._remaining_launch_time() <= 0:
                    await self.handle_launch_timeout()
                await asyncio.sleep(0.01)
                continue
            writer.close()
            return

    def report_launch_steps(self, *, final: bool) -> None:
        """Report the steps the backend has taken so far (``self.launch_phases.note``:
        ``phases.SCHEDULED``, ``phases.IMAGE_PULLED``), each once.

        Called by ``receive_connection_info`` before each ``detect_launch_failure`` and once
        more (``final=True``) when the launcher answered, before that phase closes: a step the
        answer implies but the backend's cache has not shown yet may be reported then.  Must be
        cheap (read a watcher's cache).  The default reports nothing.
        """

    async def detect_launch_failure(self) -> None:
        """Raise (through ``fail_launch``) when the backend reports the launch failed.

        Called repeatedly while a launch waits; it must be cheap (read a watcher's cache, not
        call the backend).  The default detects nothing.
        """

    async def handle_launch_timeout(self) -> NoReturn:
        """Raise ``LaunchTimeoutError`` naming the phase that did not finish.  Subclasses may
        override to add the backend's last known status, then call super."""
        manager = self.response_manager
        refused = manager.rejections_for(str(self.kernel_id))
        hint = ""
        if refused:
            hint = (
                f" The response server refused {len(refused)} message(s) for this kernel "
                f"(reasons: {', '.join(sorted(set(refused)))})."
            )
        if manager.legacy_refusals_since(self.launch_phases.started):
            hint += (
                " During this launch the response server refused a payload of the legacy v1 "
                "protocol: if this kernel's launcher is an old one, declare it in the "
                "kernelspec (metadata.kernel_provisioner.launcher_protocol_version: 1) and "
                "enable allow_legacy_launchers, or update the kernel image."
            )
        raise LaunchTimeoutError(
            f"Kernel {self.kernel_id} did not start within {self._effective_launch_timeout:g}s: "
            f"phase '{self.launch_phases.current}' did not finish "
            f"(done: {self.launch_phases.summary()}).{hint} Check the backend, or raise "
            "launch_timeout (GP_LAUNCH_TIMEOUT / KERNEL_LAUNCH_TIMEOUT).",
            kernel_id=str(self.kernel_id),
            phase=self.launch_phases.current,
        )

    def fail_launch(self, reason: str, *, failure_reason: str = "") -> NoReturn:
        """Raise ``LaunchFailedError`` for the current phase with the backend's ``reason``.

        ``failure_reason`` (optional) classifies it for metrics and launch events, one of
        ``metrics.FAILURE_REASONS`` (``image-unavailable``, ``unschedulable``, ...). Not logged
        here: the KernelManager that called ``launch_kernel`` logs the failure."""
        raise LaunchFailedError(
            f"Kernel {self.kernel_id} failed in launch phase '{self.launch_phases.current}' "
            f"after {self.launch_phases.elapsed:.1f}s: {reason}",
            kernel_id=str(self.kernel_id),
            phase=self.launch_phases.current,
            failure_reason=failure_reason,
        )

    def log_and_raise(self, error: Exception) -> NoReturn:
        """Log ``error`` at error level, then raise it.  For failures outside a launch (a
        launch failure is logged by jupyter_client's KernelManager: use ``fail_launch``)."""
        self.log.error("%s", error)
        raise error

    async def signal_through_channel(self, signum: int) -> bool:
        """Send ``signum`` through the launcher; False when it cannot be reached."""
        if self.kernel_channel is None:
            return False
        try:
            if signum == 0:
                return await self.kernel_channel.is_alive()
            await self.kernel_channel.send_signal(signum)
        except KernelChannelError as err:
            self.log.debug("%s", err)
            return False
        return True

    async def shutdown_through_channel(self) -> bool:
        """Ask the launcher to stop the kernel; False when it cannot be reached."""
        if self.kernel_channel is None:
            return False
        try:
            await self.kernel_channel.shutdown()
        except KernelChannelError as err:
            self.log.debug("%s", err)
            return False
        return True

    @staticmethod
    def get_current_time() -> float:
        return time.monotonic()

    @staticmethod
    def get_time_diff(start: float, end: float | None = None) -> float:
        return (end if end is not None else time.monotonic()) - start

    @staticmethod
    def ip_is_local(ip: str) -> bool:
        return is_local_ip(ip) or ip in ("localhost", "0.0.0.0") or ip in local_ips()  # noqa: S104

    # -- internals -------------------------------------------------------------------------------

    def metrics_backend(self) -> str:
        """The ``backend`` label of this provisioner's metrics and launch events."""
        if self.backend_label:
            return self.backend_label
        package = type(self).__module__.split(".", 1)[0]
        return package.removeprefix("gp_") or package

    def _new_launch_phases(self, kernel_id: str) -> LaunchPhases:
        kernelspec = str(getattr(self.parent, "kernel_name", "") or "")
        return LaunchPhases(
            kernel_id, self.log, backend=self.metrics_backend(), kernelspec=kernelspec
        )

    def _report_launch_steps(self, *, final: bool) -> None:
        try:
            self.report_launch_steps(final=final)
        except Exception as err:  # noqa: BLE001 - reporting a step never fails a launch
            self.log.debug("Kernel %s: launch steps not reported: %s", self.kernel_id, err)

    def _count_running(self, running: bool) -> None:
        """Keep ``gp_kernels_running`` right: +1 once per launched or re-attached kernel, -1 at
        its cleanup (a restart cleans up, then launches again)."""
        if running != self._counted_running:
            self._counted_running = running
            metrics.kernel_running(self.metrics_backend(), 1 if running else -1)

    def _spec_label(self) -> str:
        spec = self.kernel_spec
        if spec is None:
            return "(no kernelspec)"
        where = getattr(spec, "resource_dir", "") or ""
        return f"'{spec.display_name}' ({where})" if where else f"'{spec.display_name}'"

    def _remaining_launch_time(self) -> float:
        return self._effective_launch_timeout - self.launch_phases.elapsed

    def _requested_launch_timeout(self, env: dict[str, str]) -> float:
        raw = env.get("KERNEL_LAUNCH_TIMEOUT")
        if raw is None or raw == "":
            return self.launch_timeout
        try:
            if not is_decimal(raw):
                raise ValueError("not a plain decimal number")
            value = float(raw)
            if not 0 < value <= self.max_launch_timeout:
                raise TraitError("out of range")
        except (ValueError, TraitError):
            raise InvalidLaunchParameterError(
                f"KERNEL_LAUNCH_TIMEOUT={raw!r} for kernel {self.kernel_id} must be a number of "
                f"seconds > 0 and <= {self.max_launch_timeout:g}",
                kernel_id=str(self.kernel_id),
            ) from None
        return value

    def _transport_encryption_policy(self) -> str:
        manager = self.parent
        policy_of = getattr(manager, "_transport_encryption_policy", None)
        supports = getattr(manager, "_kernel_supports_curve_encryption", None)
        if policy_of is None or supports is None:
            return "none"
        policy = str(policy_of())
        if policy == "required" or (policy == "auto" and supports()):
            return policy
        return "none"

    def _check_transport_encryption(self) -> None:
        if self.transport_encryption == "none":
            return
        has_keys = "curve_publickey" in self.connection_info
        if not has_keys and self.transport_encryption == "required":
            self.fail_launch(
                "transport encryption is required but the launcher sent no CurveZMQ keys "
                "(its pyzmq lacks Curve support, or it is a legacy launcher)"
            )
        manager = self.parent
        if has_keys and manager is not None:
            manager.curve_publickey = self.connection_info["curve_publickey"].encode()
            manager.curve_secretkey = self.connection_info["curve_secretkey"].encode()

    def _open_kernel_channel(self) -> None:
        raw_key = self.connection_info.get("key", b"")
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        if self.comm_port and self.assigned_ip and key:
            self.kernel_channel = KernelChannel(
                self.launch_kernel_id or str(self.kernel_id),
                self.assigned_ip,
                self.comm_port,
                key,
                legacy=self.legacy_launcher,
                log=self.log,
            )


def normalize_username(name: str) -> str:
    """``name`` as compared with the allow and deny lists: Unicode NFKC, surrounding white
    space removed, case folded."""
    return unicodedata.normalize("NFKC", str(name)).strip().casefold()


__all__ = ["CONNECTION_KEYS", "RemoteProvisionerBase", "normalize_username"]
