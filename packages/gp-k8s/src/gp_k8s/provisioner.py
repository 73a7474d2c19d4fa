"""KubernetesProvisioner (``kubernetes-provisioner``): each kernel in a pod.

The pod's container runs the kernelspec's argv (the launcher), built as data by
:func:`~gp_k8s.manifests.build_pod` from the validated ``KERNEL_*`` parameters and the
operator's template.  The launcher answers the response manager like every other backend; its
one-time launch secret travels in a Secret of the launch, not in the pod spec.  Status comes
from the process's one shared pod watch (:class:`~gp_k8s.pod_cache.PodWatchCache`): ``poll``
and launch-failure checks read it and make no request.  Every Kubernetes call runs on worker
threads (:func:`~gp_k8s.operations.run_blocking`).

A launch fails as soon as its reason is known: the pod's status (image, scheduling, crash,
exit code) or, for a pod that cannot start, the Warning events of the shared event watch
(:class:`~gp_k8s.event_cache.PodEventWatchCache`: a sandbox or a volume the node cannot make).
Stopping a kernel returns once its container stopped; the pod object, which a node may keep
for many seconds while it tears the pod down, is seen through by the process's
:class:`~gp_k8s.reaper.Reaper` in the background.

What concerns the kernel's object itself is a :class:`~gp_k8s.kernel_object.KernelObjectKind`
(:class:`~gp_k8s.pod_kind.PodKind` here; gp-crd's custom resources are another): the
provisioner keeps the launch, the namespace, the launch Secret, the shared watches, signals,
teardown order and re-attach, and asks its kind for the rest.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import yaml
from kubernetes.client.exceptions import ApiException

from gp_provisioners_core import ContainerProvisionerBase
from gp_provisioners_core.argv import travelling_env
from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchTimeoutError,
)
from gp_provisioners_core.protocol import LAUNCH_SECRET_ENV
from gp_provisioners_core.watch import BackendWatch

from . import operations as ops
from .client import CountingApiClient, get_api_client
from .diagnosis import FATAL_WARNING_EVENTS, fatal_events, kernel_stopped
from .event_cache import PodEventWatchCache
from .kernel_object import KernelObjectContext, KernelObjectKind
from .launch_steps import PodLaunchSteps
from .manifests import (
    KERNEL_SELECTOR,
    build_namespace,
    build_role_binding,
    build_secret,
    dns_name,
)
from .parameters import KernelParameters, resolve_parameters
from .pod_cache import PodState, PodWatchCache
from .pod_kind import PodKind
from .pool_relabel import relabel_pod
from .reaper import Deletion, Reaper
from .settings import KubernetesSettings
from .user_volumes import ensure_user_claim

SECRET_KEY = "launch-secret"  # noqa: S105 - the key name in the Secret, not a secret
EXECUTOR_IMAGE_ENV = "KERNEL_EXECUTOR_IMAGE"
STOP_SLACK = 10.0
"""Seconds beyond the grace period that stopping a kernel waits for its container to end;
then it returns and the reaper carries on."""


class KubernetesProvisioner(PodLaunchSteps, KubernetesSettings, ContainerProvisionerBase):  # type: ignore[metaclass]
    """Runs each kernel's launcher as the container of a pod.

    What concerns the kernel's object (its template, building, creating and deleting it, its
    status) is delegated to a :class:`~gp_k8s.kernel_object.KernelObjectKind`, made by
    :meth:`make_object_kind` (:class:`~gp_k8s.pod_kind.PodKind` here): gp-crd's
    ``CustomResourceProvisioner`` supplies its custom-resource kind and reuses the rest.
    """

    pod_selector: ClassVar[str] = KERNEL_SELECTOR
    """Label selector of the shared watch of the kernels' pods (:meth:`start_watches`)."""
    sigkill_grace: ClassVar[int] = 1
    """Grace period (seconds) of the deletion when ``send_signal(SIGKILL)`` cannot reach the
    launcher.  1 s, not 0: a grace of 0 is a force deletion (the pod object goes before the
    node stopped its container); a subclass may choose 0 on purpose."""
    kill_grace: ClassVar[int] = 1
    """Grace period (seconds) of :meth:`kill` and of the clean-up of a kernel that already
    stopped.  1 s, not 0, for the same reason (kubectl turns ``--grace-period=0`` into 1)."""
    fatal_pod_events: ClassVar[Mapping[str, int]] = FATAL_WARNING_EVENTS
    """Warning events that end a launch while the pod has not started, with the count from
    which they do (:data:`~gp_k8s.diagnosis.FATAL_WARNING_EVENTS`)."""

    launch_check_interval: ClassVar[float] = 0.5
    """The watches in ``launch_watches`` wake the launch check on every change; this only
    bounds the wait for the time-based checks (an object not seen within its grace)."""
    persisted_fields: ClassVar[tuple[str, ...]] = (
        *ContainerProvisionerBase.persisted_fields,
        "kernel_namespace_name",
        "namespace_created",
        "launch_secret_name",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_namespace_name = ""
        self.namespace_created = False
        self.launch_secret_name = ""
        self._parameters: KernelParameters | None = None
        self.kernel_context = KernelObjectContext(self)
        """What the kernel's object kind reads (the API client, the shared caches...)."""
        self.kernel_object = self.make_object_kind(self.kernel_context)
        """The kind of object the kernel runs as (:meth:`make_object_kind`)."""

    def make_object_kind(self, context: KernelObjectContext) -> KernelObjectKind:
        """The kernel's :class:`~gp_k8s.kernel_object.KernelObjectKind` (a pod here).  Called
        once by ``__init__``; an override returns its own kind made with ``context``."""
        return PodKind(context)

    @property
    def parameters(self) -> KernelParameters | None:
        """The validated ``KERNEL_*`` parameters (None before ``validate_launch``)."""
        return self._parameters

    # -- launch ----------------------------------------------------------------------------

    async def validate_launch(self, env: dict[str, str]) -> None:
        """Validate the ``KERNEL_*`` parameters and load the pod template.  Called by the
        core's ``pre_launch`` after authorisation (an unauthorised user gets 403 whatever its
        parameters), before anything is registered or created."""
        request_env = env
        if not self.image_name:
            raise KernelSpecConfigError(
                f"Kernel {self.kernel_id}: no image configured; set image_name in the "
                "kernelspec's provisioner config (or GP_IMAGE_NAME)",
                kernel_id=str(self.kernel_id),
            )
        if self.user_volume_claim and self.create_kernel_namespace:
            raise KernelSpecConfigError(
                f"Kernel {self.kernel_id}: user_volume_claim cannot be used with "
                "create_kernel_namespace (the claim would go with the kernel's namespace); "
                "unset one of them",
                kernel_id=str(self.kernel_id),
            )
        self._parameters = resolve_parameters(
            request_env,
            self.limits(self.image_name),
            str(self.kernel_id),
            self.requested_user(request_env).name,
        )
        self.pod_env(request_env)  # refuses what cannot travel before anything is created
        self.kernel_context.template = await ops.run_blocking(self.kernel_object.load_template)

    def load_template(self, file: str, kind: str, noun: str) -> dict[str, Any] | None:
        """Read ``file`` (relative to the kernelspec's directory) as one ``kind`` manifest;
        None when ``file`` is empty.  Errors raise ``KernelSpecConfigError`` naming the file
        as ``noun``.  Called by the object kind's ``load_template`` (blocking: on a worker
        thread)."""
        if not file:
            return None
        path = Path(file)
        if not path.is_absolute():
            path = Path(getattr(self.kernel_spec, "resource_dir", "") or ".") / path
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise KernelSpecConfigError(
                f"Kernel {self.kernel_id}: {noun} {path} cannot be read: {err}",
                kernel_id=str(self.kernel_id),
            ) from err
        if not isinstance(loaded, dict) or loaded.get("kind", kind) != kind:
            raise KernelSpecConfigError(
                f"Kernel {self.kernel_id}: {noun} {path} must be one {kind} manifest",
                kernel_id=str(self.kernel_id),
            )
        return loaded

    async def _ensure_client(self) -> CountingApiClient:
        """The API client, made on first use, with the shared watches started."""
        ctx = self.kernel_context
        if ctx.api is None:
            ctx.api = await ops.run_blocking(get_api_client, self.kubeconfig, self.kube_context)
        self.start_watches(ctx.api)
        return ctx.api

    def start_watches(self, api: CountingApiClient) -> None:
        """Join the process's shared watches (the kernels' pods, with :attr:`pod_selector`,
        and the Warning events about pods), then the object kind's own
        (``KernelObjectKind.join_watches``).

        Called by :meth:`_ensure_client` before every launch, clean-up and re-attach; cheap
        once the caches are set.
        """
        ctx = self.kernel_context
        if ctx.pods is None:
            ctx.pods = PodWatchCache.shared(api, self.watch_namespace, self.pod_selector)
        if ctx.events is None:
            ctx.events = PodEventWatchCache.shared(api, self.watch_namespace)
        self.kernel_object.join_watches(api)

    def launch_watches(self) -> Sequence[BackendWatch]:
        """The pod and Warning-event watches (a pod that fails or cannot start wakes the
        launch check at once) and the object kind's own watches."""
        ctx = self.kernel_context
        shared = tuple(watch for watch in (ctx.pods, ctx.events) if watch is not None)
        return (*shared, *self.kernel_object.watches())

    def pod_env(self, env: dict[str, str]) -> dict[str, str]:
        """What travels into the pod: ``KERNEL_*``, the allow-list, the kernelspec's env and
        the transport policy; never the server's other variables or the launch secret.
        A travelling variable that cannot be passed as data (a name that is not a variable
        name, a NUL byte) raises ``InvalidLaunchParameterError`` naming it.
        ``KERNEL_EXECUTOR_IMAGE`` is the configured ``executor_image_name`` (for a Spark
        kernel's executors), which a user's value cannot replace."""
        spec_env = set((getattr(self.kernel_spec, "env", None) or {}).keys())
        try:
            chosen = travelling_env(env, self.env_allowlist, spec_env)
        except ValueError as err:
            raise InvalidLaunchParameterError(
                f"Kernel {self.kernel_id}: {err}; remove it from the start request",
                kernel_id=str(self.kernel_id),
            ) from None
        chosen.pop(LAUNCH_SECRET_ENV, None)
        chosen.pop(EXECUTOR_IMAGE_ENV, None)
        if self.executor_image_name:
            chosen[EXECUTOR_IMAGE_ENV] = self.executor_image_name
        return chosen

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Create the kernel's namespace (when one per kernel), launch Secret and object.

        Called by gp-provisioners-core's ``launch_kernel``.  The kernel's object is built and
        created by the object kind (``KernelObjectKind.build`` and ``create``); an
        ``ApiException`` of any step fails the launch naming the kind's ``noun``, a
        ``ValueError`` of the builder is an unusable template (its ``template_noun``).
        """
        api = await self._ensure_client()
        parameters = self._parameters
        assert parameters is not None, "pre_launch validates the parameters first"
        kernel_id = str(self.kernel_id)
        kind = self.kernel_object
        try:
            parameters = await self.ensure_kernel_namespace(api, parameters)
            await ensure_user_claim(api, parameters, self.option_limits(), self.kernel_username)
            name = dns_name("kernel", kernel_id, secrets.token_hex(3), limit=kind.name_limit)
            self.launch_secret_name = f"{name}-launch"
            self.container_name = name
            await self.create_launch_secret(api, env)
            body = kind.build(name, parameters, cmd, env)
            self.submitted = True
            self.kernel_context.created_at = time.monotonic()
            await ops.run_blocking(kind.create, api, body)
        except ApiException as err:
            self.fail_launch(
                f"the Kubernetes API refused the kernel's {kind.noun} in "
                f"namespace {self.kernel_namespace_name!r}: {ops.api_message(err)} "
                f"(HTTP {err.status})"
            )
        except ValueError as err:
            raise KernelSpecConfigError(
                f"Kernel {kernel_id}: the {kind.template_noun} template is unusable: {err}",
                kernel_id=kernel_id,
            ) from err

    async def ensure_kernel_namespace(
        self, api: CountingApiClient, parameters: KernelParameters
    ) -> KernelParameters:
        """Set :attr:`kernel_namespace_name`: with ``create_kernel_namespace``, create the
        kernel's own namespace and RoleBinding (once) and return the parameters moved there;
        otherwise the requested namespace.  Called by :meth:`submit_kernel`."""
        if not self.create_kernel_namespace:
            self.kernel_namespace_name = parameters.namespace
            return parameters
        if not self.kernel_namespace_name:
            kernel_id = str(self.kernel_id)
            # The kernel's namespace from a failed launch may still be terminating.
            await Reaper.shared().settled(kernel_id, self.deletion_timeout, kind="namespace")
            self.kernel_namespace_name = dns_name("gp-kernel", kernel_id)
            self.namespace_created = await ops.run_blocking(
                ops.create_namespace,
                api,
                build_namespace(self.kernel_namespace_name, kernel_id),
                build_role_binding(
                    self.kernel_namespace_name,
                    kernel_id,
                    parameters.service_account,
                    self.kernel_cluster_role,
                ),
            )
        return _with_namespace(parameters, self.kernel_namespace_name)

    async def create_launch_secret(self, api: CountingApiClient, env: dict[str, str]) -> None:
        """Create the Secret :attr:`launch_secret_name` holding the launch's one-time secret
        (from ``env``); called by :meth:`submit_kernel` before the kernel's object."""
        await ops.run_blocking(
            ops.create_secret,
            api,
            build_secret(
                self.launch_secret_name,
                self.kernel_namespace_name,
                str(self.kernel_id),
                {SECRET_KEY: env[LAUNCH_SECRET_ENV]},
            ),
        )

    def object_request(
        self, name: str, parameters: KernelParameters, cmd: list[str], env: dict[str, str]
    ) -> dict[str, Any]:
        """The fields of a :class:`~gp_k8s.manifests.PodRequest` (or of a subclass, such as
        gp-crd's ``ResourceRequest``) for the kernel's object ``name``: the kernel's id, the
        validated ``parameters``, the launcher's ``cmd``, what travels of ``env``
        (:meth:`pod_env`), the user, the launch secret and the operator's template.  Called by
        the object kind's ``build``."""
        return {
            "kernel_id": str(self.kernel_id),
            "name": name,
            "parameters": parameters,
            "command": cmd,
            "env": self.pod_env(env),
            "username": self.kernel_username,
            "secret_env": self.launch_secret_env(),
            "template": self.kernel_context.template,
        }

    def launch_secret_env(self) -> dict[str, tuple[str, str]]:
        """The launch secret as a variable read from the launch Secret (for the builders)."""
        return {LAUNCH_SECRET_ENV: (self.launch_secret_name, SECRET_KEY)}

    def build_kernel_object(
        self, name: str, parameters: KernelParameters, cmd: list[str], env: dict[str, str]
    ) -> dict[str, Any]:
        """The manifest of the kernel's object, named ``name`` (``KernelObjectKind.build``;
        pure).  For tests and tools that want the object without a cluster."""
        return self.kernel_object.build(name, parameters, cmd, env)

    def log_kernel_launch(self, cmd: list[str]) -> None:
        self.kernel_object.log_launch()

    # -- status, read from the shared watches (through the object kind) --------------------

    def pod_state(self) -> PodState | None:
        """The pod the kernel's launcher runs in (``KernelObjectKind.pod_state``; no I/O)."""
        return self.kernel_object.pod_state()

    def get_initial_states(self) -> set[str]:
        return self.kernel_object.initial_states()

    def get_error_states(self) -> set[str]:
        return self.kernel_object.error_states()

    def get_container_status(self) -> str:
        return self.kernel_object.status()

    def describe_failure(self) -> str:
        return self.kernel_object.describe_failure()

    def cached_warnings(self, state: PodState | None) -> list[dict[str, Any]]:
        """The Warning events about the pod ``state`` in the shared event watch (no I/O)."""
        events = self.kernel_context.events
        if events is None or state is None:
            return []
        found = events.warnings_for(state.namespace, state.name, state.uid)
        return [event.as_event() for event in found]

    def fatal_warnings(self, state: PodState | None) -> list[str]:
        """The :attr:`fatal_pod_events` of a pod whose kernel has not started (no I/O)."""
        if state is None or not kernel_stopped(state) or state.deleting:
            return []
        return fatal_events(self.cached_warnings(state), self.fatal_pod_events)

    async def pod_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The pod's events, asked once of the API (a launch already failed or timed out),
        with the shared watch's Warning events when the API cannot answer."""
        ctx = self.kernel_context
        if ctx.api is not None and name:
            try:
                return await ops.run_blocking(ops.pod_events, ctx.api, namespace, name)
            except Exception as err:  # noqa: BLE001 - the events only add detail
                self.log.debug("Kernel %s: events unavailable: %s", self.kernel_id, err)
        if ctx.events is None:
            return []
        return [event.as_event() for event in ctx.events.warnings_for(namespace, name)]

    async def detect_launch_failure(self) -> None:
        await self.kernel_object.detect_launch_failure()

    async def launch_report(self) -> str:
        """What the kernel's objects were doing, for a launch that timed out
        (``KernelObjectKind.launch_report``)."""
        return await self.kernel_object.launch_report()

    async def handle_launch_timeout(self) -> NoReturn:
        """The shared timeout error, with :meth:`launch_report` (what the pod was doing)."""
        report = await self.launch_report()
        try:
            await super().handle_launch_timeout()
        except LaunchTimeoutError as err:
            raise LaunchTimeoutError(
                f"{err.message} Last seen: {report}.", kernel_id=err.kernel_id, phase=err.phase
            ) from None

    def liveness_known(self) -> bool:
        """False until the pod watch and the object kind's watches have synced (the API
        server has answered)."""
        pods = self.kernel_context.pods
        return pods is not None and pods.synced.is_set() and self.kernel_object.watches_synced()

    async def poll(self) -> int | None:
        return await self.kernel_object.poll()

    async def relabel_backend(self, kernel_id: str) -> None:
        """A claimed pooled kernel (``gp_provisioners_core.pool``): its pod's ``kernel-id``
        label and annotation follow the new id; a failed patch is logged, the kernel runs on."""
        api = self.kernel_context.api
        if api is None or not self.container_name:
            return
        try:
            await ops.run_blocking(
                relabel_pod, api, self.kernel_namespace_name, self.container_name, kernel_id
            )
        except ApiException as err:
            self.log.warning("Kernel %s: pod not relabelled: %s", kernel_id, ops.api_message(err))

    # -- stop and clean up -----------------------------------------------------------------
    #
    # kill / terminate / send_signal stop the kernel: they delete its pod (and launch Secret)
    # and return once its container stopped.  Only cleanup(restart=False) deletes the kernel's
    # own namespace: jupyter_client calls kill() and terminate() with restart=False even
    # while it restarts the kernel.  What the node is slow to remove is left to the reaper.

    async def send_signal(self, signum: int) -> None:
        if not await self.signal_through_channel(signum) and signum in (
            signal.SIGKILL,
            signal.SIGTERM,
        ):
            grace = (
                self.sigkill_grace if signum == signal.SIGKILL else self.termination_grace_period
            )
            await self.stop_kernel_objects(grace=grace)

    async def terminate(self, restart: bool = False) -> None:
        await self.shutdown_through_channel()
        await self.stop_kernel_objects(grace=self.termination_grace_period)

    async def kill(self, restart: bool = False) -> None:
        await self.stop_kernel_objects(grace=self.kill_grace)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove whatever is left (a kernel that exited on its own still has its pod)."""
        try:
            await self.terminate_container_resources(restart)
        finally:
            await super().cleanup(restart)

    async def terminate_container_resources(self, restart: bool = False) -> None:
        """Stop the kernel's objects (:meth:`stop_kernel_objects`) and, unless the kernel
        restarts, delete the namespace the provisioner created for it.

        Called by :meth:`cleanup` (and gp-provisioners-core).  Returns once the kernel stopped
        and every deletion was accepted; the reaper sees the objects go.  Idempotent.
        """
        await self.stop_kernel_objects(grace=self.kill_grace)
        if self.namespace_created and not restart:
            await self.release_kernel_namespace()

    async def stop_kernel_objects(self, *, grace: int) -> None:
        """Delete the launch Secret and the kernel's object (``KernelObjectKind.delete``)
        with a grace period of ``grace`` seconds (0: force deletion), returning once the kernel
        stopped.  Called by :meth:`kill` (``kill_grace``), :meth:`terminate`
        (``termination_grace_period``), :meth:`send_signal` (``sigkill_grace`` or
        ``termination_grace_period``) and :meth:`terminate_container_resources`.  Idempotent."""
        if self.kernel_context.api is None and (self.container_name or self.namespace_created):
            await self._ensure_client()
        api = self.kernel_context.api
        if api is None or not self.container_name:
            return
        namespace, name = self.kernel_namespace_name, self.container_name
        if self.launch_secret_name:
            await ops.run_blocking(ops.delete_secret, api, namespace, self.launch_secret_name)
        await self.kernel_object.delete(api, namespace, name, grace=grace)
        self.container_name = ""
        self.launch_secret_name = ""
        self.submitted = False

    async def release_kernel_namespace(self) -> None:
        """Delete the kernel's own namespace (the deletion accepted, the reaper sees it go);
        called by :meth:`terminate_container_resources` unless the kernel restarts."""
        api = self.kernel_context.api or await self._ensure_client()
        namespace = self.kernel_namespace_name
        await ops.run_blocking(ops.delete_namespace, api, namespace)
        self.track_deletion(
            "namespace",
            f"namespace {namespace}",
            gone=lambda: None,  # no watch of namespaces: the reaper asks the API
            confirm=lambda: not ops.namespace_exists(api, namespace),
            retry=partial(ops.delete_namespace, api, namespace),
            timeout=self.deletion_timeout,
        )
        self.namespace_created = False
        self.kernel_namespace_name = ""

    def track_deletion(
        self,
        kind: str,
        what: str,
        *,
        gone: Callable[[], bool | None],
        confirm: Callable[[], bool],
        retry: Callable[[], object],
        timeout: float,
        on_gone: Callable[[], object] | None = None,
    ) -> None:
        """Hand a deleted object to the process's :class:`~gp_k8s.reaper.Reaper`: ``gone``
        reads a cache (None: cannot tell), ``confirm`` asks the API, ``retry`` deletes again
        (both blocking, run on the reaper's thread).  Called by the object kind's ``delete``."""
        Reaper.shared().track(
            Deletion(
                str(self.kernel_id), kind, what, gone, confirm, retry, timeout, on_gone=on_gone
            )
        )

    async def wait_kernel_stopped(
        self,
        what: str,
        *,
        cached: Callable[[], bool | None],
        confirm: Callable[[], bool],
        grace: float,
    ) -> None:
        """Wait until the kernel's container stopped: ``cached`` reads the watch's cache
        (None: cannot tell, then ``confirm`` asks the API twice a second).  Gives up after
        ``grace`` + :data:`STOP_SLACK` seconds with a warning (the reaper carries on).  Called
        by the object kind's ``delete``."""
        deadline = time.monotonic() + grace + STOP_SLACK
        pods = self.kernel_context.pods
        while time.monotonic() < deadline:
            version = pods.changes.version if pods is not None else 0
            stopped = cached()
            if stopped is None:
                try:
                    stopped = await ops.run_blocking(confirm)
                except ApiException as err:
                    self.log.debug("Kernel %s: %s: %s", self.kernel_id, what, err)
                    stopped = False
                if not stopped:
                    await asyncio.sleep(0.5)
                    continue
            if stopped:
                return
            if pods is not None:  # wake on the pod watch's next change
                await pods.changes.changed_since(version, max(deadline - time.monotonic(), 0))
            else:
                await asyncio.sleep(0.05)
        self.log.warning(
            "Kernel %s: the container of %s still runs %gs after its deletion; its removal "
            "continues in the background",
            self.kernel_id,
            what,
            grace + STOP_SLACK,
        )

    # -- re-attach -------------------------------------------------------------------------

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        if self.container_name:
            self.submitted = True
            await self._ensure_client()


def _with_namespace(parameters: KernelParameters, namespace: str) -> KernelParameters:
    return replace(parameters, namespace=namespace)
