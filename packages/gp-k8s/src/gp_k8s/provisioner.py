"""KubernetesProvisioner (``kubernetes-provisioner``): each kernel in a pod.

The pod's container runs the kernelspec's argv (the launcher), built as data by
:func:`~gp_k8s.manifests.build_pod` from the validated ``KERNEL_*`` parameters and the
operator's template.  The launcher answers the response manager like every other backend; its
one-time launch secret travels in a Secret of the launch, not in the pod spec.  Status comes
from the process's one shared pod watch (:class:`~gp_k8s.pod_cache.PodWatchCache`): ``poll``
and launch-failure checks read it and make no request.  Every Kubernetes call runs on worker
threads (:func:`~gp_k8s.operations.run_blocking`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import yaml
from kubernetes.client.exceptions import ApiException

from gp_provisioners_core import ContainerProvisionerBase
from gp_provisioners_core.argv import travelling_env
from gp_provisioners_core.errors import InvalidLaunchParameterError, KernelSpecConfigError
from gp_provisioners_core.protocol import LAUNCH_SECRET_ENV

from . import operations as ops
from .client import CountingApiClient, get_api_client
from .diagnosis import ERROR_STATES, INITIAL_STATES, describe, exit_code, pod_status
from .launch_steps import PodLaunchSteps
from .manifests import (
    KERNEL_SELECTOR,
    PodRequest,
    build_namespace,
    build_pod,
    build_role_binding,
    build_secret,
    dns_name,
)
from .parameters import KernelParameters, resolve_parameters
from .pod_cache import PodState, PodWatchCache
from .settings import KubernetesSettings

SECRET_KEY = "launch-secret"  # noqa: S105 - the key name in the Secret, not a secret
EXECUTOR_IMAGE_ENV = "KERNEL_EXECUTOR_IMAGE"
UNSEEN_GRACE = 30.0
"""Seconds a pod this process created may stay unseen by the watch before it counts as gone."""


class KubernetesProvisioner(PodLaunchSteps, KubernetesSettings, ContainerProvisionerBase):  # type: ignore[metaclass]
    """Runs each kernel's launcher as the container of a pod.

    The launch and the clean-up are split into steps that gp-crd's ``CustomResourceProvisioner``
    reuses: it overrides only what differs (the kernel's object, its template, its watches).
    """

    pod_selector: ClassVar[str] = KERNEL_SELECTOR
    """Label selector of the shared watch of the kernels' pods (:meth:`start_watches`)."""
    object_name_limit: ClassVar[int] = 63
    """The longest name :meth:`submit_kernel` gives the kernel's object."""
    sigkill_grace: ClassVar[int] = 1
    """Grace period (seconds) of the deletion when ``send_signal(SIGKILL)`` cannot reach the
    launcher.  1 s, not 0: a grace of 0 is a force deletion."""

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
        self._template: dict[str, Any] | None = None
        self._api: CountingApiClient | None = None
        self._cache: PodWatchCache | None = None
        self._created_at = 0.0
        self._grace = 1

    # -- launch ----------------------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Validate the ``KERNEL_*`` parameters and load the pod template before anything
        is registered or created; then the shared pre-launch (authorization, argv, env)."""
        request_env = dict(kwargs.get("env") or os.environ)
        if not self.image_name:
            raise KernelSpecConfigError(
                f"Kernel {self.kernel_id}: no image configured; set image_name in the "
                "kernelspec's provisioner config (or GP_IMAGE_NAME)",
                kernel_id=str(self.kernel_id),
            )
        self._parameters = resolve_parameters(
            request_env, self.limits(self.image_name), str(self.kernel_id)
        )
        self.pod_env(request_env)  # refuses what cannot travel before anything is created
        self._template = await ops.run_blocking(self._load_template)
        return await super().pre_launch(**kwargs)

    def _load_template(self) -> dict[str, Any] | None:
        """The operator's template of the kernel's object; called by :meth:`pre_launch` on a
        worker thread.  An override loads its own file with :meth:`load_template`."""
        return self.load_template(self.pod_template_file, "Pod", "pod template")

    def load_template(self, file: str, kind: str, noun: str) -> dict[str, Any] | None:
        """Read ``file`` (relative to the kernelspec's directory) as one ``kind`` manifest;
        None when ``file`` is empty.  Errors raise ``KernelSpecConfigError`` naming the file
        as ``noun``.  Called by :meth:`_load_template` (blocking: on a worker thread)."""
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
        if self._api is None:
            self._api = await ops.run_blocking(get_api_client, self.kubeconfig, self.kube_context)
        self.start_watches(self._api)
        return self._api

    def start_watches(self, api: CountingApiClient) -> None:
        """Join the process's shared watches (the kernels' pods, with :attr:`pod_selector`).

        Called by :meth:`_ensure_client` before every launch, clean-up and re-attach; cheap
        once the caches are set.  An override joins its own watches and must call super().
        """
        if self._cache is None:
            self._cache = PodWatchCache.shared(api, self.watch_namespace, self.pod_selector)

    def pod_env(self, env: dict[str, str]) -> dict[str, str]:
        """What travels into the pod: ``KERNEL_*``, the allow-list, the kernelspec's env and
        the transport policy; never the server's other variables or the launch secret.
        A travelling variable that cannot be passed as data (a name that is not a variable
        name, a NUL byte) raises ``InvalidLaunchParameterError`` naming it.
        ``KERNEL_EXECUTOR_IMAGE`` is the configured ``executor_image_name`` (for a Spark
        kernel's executors), which a user's value cannot replace."""
        spec_env = set((getattr(self.kernel_spec, "env", None) or {}).keys())
        try:
            chosen = travelling_env(env, self.kernel_env_allowlist, spec_env)
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

        Called by gp-provisioners-core's ``launch_kernel``.  The steps a subclass may replace are
        :meth:`build_kernel_object` and :meth:`create_kernel_object` (the pod here); an
        ``ApiException`` of any step fails the launch naming :meth:`kernel_objects_noun`, a
        ``ValueError`` of the builder is an unusable template (:meth:`template_noun`).
        """
        api = await self._ensure_client()
        parameters = self._parameters
        assert parameters is not None, "pre_launch validates the parameters first"
        kernel_id = str(self.kernel_id)
        try:
            parameters = await self.ensure_kernel_namespace(api, parameters)
            name = dns_name("kernel", kernel_id, secrets.token_hex(3), limit=self.object_name_limit)
            self.launch_secret_name = f"{name}-launch"
            self.container_name = name
            await self.create_launch_secret(api, env)
            body = self.build_kernel_object(name, parameters, cmd, env)
            self._submitted = True
            self._created_at = time.monotonic()
            await ops.run_blocking(self.create_kernel_object, api, body)
        except ApiException as err:
            self.fail_launch(
                f"the Kubernetes API refused the kernel's {self.kernel_objects_noun()} in "
                f"namespace {self.kernel_namespace_name!r}: {ops.api_message(err)} "
                f"(HTTP {err.status})"
            )
        except ValueError as err:
            raise KernelSpecConfigError(
                f"Kernel {kernel_id}: the {self.template_noun()} template is unusable: {err}",
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

    def launch_secret_env(self) -> dict[str, tuple[str, str]]:
        """The launch secret as a variable read from the launch Secret (for the builders)."""
        return {LAUNCH_SECRET_ENV: (self.launch_secret_name, SECRET_KEY)}

    def build_kernel_object(
        self, name: str, parameters: KernelParameters, cmd: list[str], env: dict[str, str]
    ) -> dict[str, Any]:
        """The manifest of the kernel's object (here its pod, named ``name``).

        Called by :meth:`submit_kernel` once the namespace and the launch Secret exist.  An
        override returns its own object as data (pure; a ``ValueError`` means the operator's
        template is unusable) and overrides :meth:`create_kernel_object` to send it.
        """
        return build_pod(
            PodRequest(
                kernel_id=str(self.kernel_id),
                pod_name=name,
                parameters=parameters,
                command=cmd,
                env=self.pod_env(env),
                username=self.kernel_username,
                secret_env=self.launch_secret_env(),
                template=self._template,
            ),
            gpu_resource_name=self.gpu_resource_name,
        )

    def create_kernel_object(self, api: CountingApiClient, body: dict[str, Any]) -> None:
        """Create ``body`` (from :meth:`build_kernel_object`).  Called by :meth:`submit_kernel`
        on a worker thread (blocking); an override creates its kind and lets ``ApiException``
        through."""
        ops.create_pod(api, body)

    def kernel_objects_noun(self) -> str:
        """What a refused launch calls the kernel's objects (an override: its kind)."""
        return "objects"

    def template_noun(self) -> str:
        """What an unusable-template error calls the template (an override: its kind)."""
        return "pod"

    def log_kernel_launch(self, cmd: list[str]) -> None:
        parameters = self._parameters
        self.log.info(
            "Kernel %s: pod %s/%s submitted with image %s",
            self.kernel_id,
            self.kernel_namespace_name,
            self.container_name,
            parameters.image if parameters else self.image_name,
        )

    # -- status, read from the shared watch ------------------------------------------------

    def pod_state(self) -> PodState | None:
        if self._cache is None or not self.container_name:
            return None
        return self._cache.get(self.kernel_namespace_name, self.container_name)

    def get_initial_states(self) -> set[str]:
        return set(INITIAL_STATES)

    def get_error_states(self) -> set[str]:
        return set(ERROR_STATES)

    def get_container_status(self) -> str:
        cache = self._cache
        if cache is None or not self.container_name:
            return ""
        if not cache.synced.is_set():
            return "pending"
        state = cache.get(self.kernel_namespace_name, self.container_name)
        seen = cache.has_seen(self.kernel_namespace_name, self.container_name)
        if state is None and not seen:
            recent = self._created_at and time.monotonic() - self._created_at < UNSEEN_GRACE
            return "pending" if recent else ""
        return pod_status(state, seen=seen)

    def describe_failure(self) -> str:
        return describe(self.pod_state())

    async def detect_launch_failure(self) -> None:
        cache = self._cache
        if cache is not None and not cache.synced.is_set() and cache.last_error:
            self.fail_launch(
                f"the shared watch of kernel pods ({cache.namespace or 'all namespaces'}) "
                f"fails: {cache.last_error}; check the server's RBAC (list and watch pods)"
            )
        status = self.get_container_status()
        if status not in ERROR_STATES and not (status == "" and self._submitted):
            return
        state = self.pod_state()
        events: list[dict[str, Any]] = []
        if self._api is not None and self.container_name:
            try:
                events = await ops.run_blocking(
                    ops.pod_events, self._api, self.kernel_namespace_name, self.container_name
                )
            except ApiException as err:
                self.log.debug("Kernel %s: events unavailable: %s", self.kernel_id, err)
        where = f"pod {self.kernel_namespace_name}/{self.container_name}"
        self.fail_launch(f"{where} is {status or 'gone'}: {describe(state, events)}")

    async def poll(self) -> int | None:
        status = self.get_container_status()
        if status and status not in ERROR_STATES:
            return None
        code = exit_code(self.pod_state())
        if code is not None:
            return code
        return 1 if status else 0

    # -- stop and clean up -----------------------------------------------------------------

    async def send_signal(self, signum: int) -> None:
        if not await self.signal_through_channel(signum) and signum in (
            signal.SIGKILL,
            signal.SIGTERM,
        ):
            self._grace = (
                self.sigkill_grace if signum == signal.SIGKILL else self.termination_grace_period
            )
            await self.terminate_container_resources()

    async def terminate(self, restart: bool = False) -> None:
        self._grace = self.termination_grace_period
        await super().terminate(restart)

    async def kill(self, restart: bool = False) -> None:
        # 1 s, not 0: a grace of 0 is a force deletion, which removes the pod object before
        # the node stopped its container (kubectl turns --grace-period=0 into 1 likewise).
        self._grace = 1
        await super().kill(restart)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove whatever is left (a kernel that exited on its own still has its pod)."""
        try:
            await self.terminate_container_resources(restart)
        finally:
            await super().cleanup(restart)

    async def terminate_container_resources(self, restart: bool = False) -> None:
        """Delete the launch Secret and the kernel's object (:meth:`delete_kernel_object`);
        delete the kernel's namespace too (and wait for it) unless the kernel restarts.

        Called by gp-provisioners-core's ``terminate``/``kill``, by :meth:`send_signal` when the
        launcher
        cannot be reached, and by :meth:`cleanup`.  Idempotent.
        """
        if self._api is None and (self.container_name or self.namespace_created):
            await self._ensure_client()
        api = self._api
        if api is None:
            return
        namespace, name = self.kernel_namespace_name, self.container_name
        if name:
            if self.launch_secret_name:
                await ops.run_blocking(ops.delete_secret, api, namespace, self.launch_secret_name)
            await self.delete_kernel_object(api, namespace, name)
            self.container_name = ""
            self.launch_secret_name = ""
            self._submitted = False
        if self.namespace_created and not restart:
            await ops.run_blocking(ops.delete_namespace, api, namespace)
            gone = await ops.run_blocking(
                ops.wait_namespace_gone, api, namespace, self.deletion_timeout
            )
            if not gone:
                self.log.warning(
                    "Kernel %s: namespace %s still terminating after %gs",
                    self.kernel_id,
                    namespace,
                    self.deletion_timeout,
                )
            self.namespace_created = False
            self.kernel_namespace_name = ""

    async def delete_kernel_object(self, api: CountingApiClient, namespace: str, name: str) -> None:
        """Delete the kernel's pod with the grace period ``_grace`` and wait until it is gone.

        Called by :meth:`terminate_container_resources` after the launch Secret is deleted.
        An override deletes its own object and waits for it (and what it owns) to go.
        """
        await ops.run_blocking(ops.delete_pod, api, namespace, name, self._grace)
        await self._wait_pod_gone(namespace, name)
        if self._cache is not None:
            self._cache.forget(namespace, name)

    async def _wait_pod_gone(self, namespace: str, name: str) -> None:
        cache = self._cache
        if cache is None:
            return
        deadline = time.monotonic() + self.deletion_timeout + self._grace
        while time.monotonic() < deadline:
            if cache.synced.is_set():
                if cache.get(namespace, name) is None:
                    return
                await asyncio.sleep(0.05)
            elif self._api is not None:
                # The watch is not working: ask the API, twice a second, while we wait.
                if not await ops.run_blocking(ops.pod_exists, self._api, namespace, name):
                    return
                await asyncio.sleep(0.5)
        self.log.warning(
            "Kernel %s: pod %s/%s still present %gs after its deletion",
            self.kernel_id,
            namespace,
            name,
            self.deletion_timeout,
        )

    # -- re-attach -------------------------------------------------------------------------

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        if self.container_name:
            self._submitted = True
            await self._ensure_client()


def _with_namespace(parameters: KernelParameters, namespace: str) -> KernelParameters:
    return replace(parameters, namespace=namespace)
