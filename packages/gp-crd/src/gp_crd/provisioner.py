"""CustomResourceProvisioner and SparkOperatorProvisioner: each kernel as a custom resource.

:class:`CustomResourceProvisioner` is the virtual base: a subclass names its resource with four
class attributes (``group``, ``version``, ``plural``, ``object_kind``) and gets the rest: the
``KERNEL_*`` parameters, limits and namespaces of gp-k8s's
:class:`~gp_k8s.KubernetesProvisioner` (which it extends), the resource built as data
(:mod:`gp_crd.manifests`), created through the custom-objects API on worker threads, and its
status read from two shared watches: one list-then-watch of the resource kind
(:class:`~gp_crd.object_cache.ObjectWatchCache`) and gp-k8s's pod cache for the pods the
operator creates (found by their labels).

``get_container_status`` (as in the seeds this replaces): ``""`` while the resource is not found,
the operator's ``.status.applicationState.state`` (lower case: ``submitted``,
``submission_failed``, ``failed``...) while the application is not running, the driver pod's
phase once it runs.  Error states end the launch at once with the operator's
``.status.applicationState.errorMessage``; a driver pod that cannot start (gp-k8s's fatal
Warning events: its sandbox or a volume) ends it too, and a launch timeout names the resource's
state and the driver pod's phase, container state and warning events.  Deleting the resource
removes its pods through their ownerReferences (Kubernetes' garbage collector); stopping a
kernel returns once the driver's container stopped, and gp-k8s's reaper sees the resource and
its pods go in the background.

:class:`SparkOperatorProvisioner` (``spark-operator-provisioner``) submits a
``sparkoperator.k8s.io/v1beta2`` SparkApplication whose driver runs the kernel launcher.  In
this project's tests the Spark operator is EMULATED (tests-integration/backends/
spark_operator_emulator.py), on a real kube-apiserver.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar

from kubernetes.client.exceptions import ApiException
from traitlets import Unicode, default

from gp_k8s import operations as ops
from gp_k8s.client import CountingApiClient, path, request
from gp_k8s.diagnosis import ERROR_STATES as POD_ERROR_STATES
from gp_k8s.diagnosis import INITIAL_STATES as POD_INITIAL_STATES
from gp_k8s.diagnosis import describe, exit_code, pod_status, status_report
from gp_k8s.manifests import KERNEL_ID_LABEL, KERNEL_SELECTOR, kernel_label_value
from gp_k8s.parameters import KernelParameters
from gp_k8s.pod_cache import PodState
from gp_k8s.provisioner import UNSEEN_GRACE, KubernetesProvisioner, pod_stopped_in_cache
from gp_provisioners_core.watch import BackendWatch

from .manifests import (
    SPARK_GROUP,
    SPARK_KIND,
    SPARK_PLURAL,
    SPARK_VERSION,
    ResourceRequest,
    build_custom_object,
    build_spark_application,
)
from .object_cache import ObjectState, ObjectWatchCache

APPLICATION_ERROR_STATES = frozenset(
    {"failed", "submission_failed", "failing", "completed", "succeeding", "invalidating"}
)
APPLICATION_INITIAL_STATES = frozenset({"", "new", "submitted", "pending_rerun", "unknown"})
NAME_LIMIT = 56
"""Resource names leave room for the operator's suffixes (``<name>-driver``)."""


class CustomResourceProvisioner(KubernetesProvisioner):
    """Virtual base: a kernel as one custom resource; subclasses set the four attributes.

    gp-k8s's :class:`~gp_k8s.KubernetesProvisioner` does the launch and the clean-up (the
    namespace, the launch Secret, error mapping); this class replaces the steps that concern
    the kernel's object: its template, building, creating and deleting it, and its status.
    """

    group: ClassVar[str] = ""
    version: ClassVar[str] = ""
    plural: ClassVar[str] = ""
    object_kind: ClassVar[str] = ""
    pod_selector: ClassVar[str] = KERNEL_SELECTOR
    """Label selector of the shared watch of the pods the operator creates for kernels."""
    object_name_limit: ClassVar[int] = NAME_LIMIT
    sigkill_grace: ClassVar[int] = 0
    """A kill that cannot reach the launcher force-deletes the kernel's pods."""

    custom_resource_template_file = Unicode(
        config=True,
        help="The operator's template of the custom resource (a YAML manifest of the kind; "
        "GP_CUSTOM_RESOURCE_TEMPLATE_FILE).  Relative paths are read from the kernelspec.",
    )

    @default("custom_resource_template_file")
    def _custom_resource_template_file_default(self) -> str:
        return os.getenv("GP_CUSTOM_RESOURCE_TEMPLATE_FILE", "")

    def __init__(self, **kwargs: Any) -> None:
        if not (self.group and self.version and self.plural and self.object_kind):
            raise TypeError(
                f"{type(self).__name__} must set group, version, plural and object_kind"
            )
        super().__init__(**kwargs)
        self._objects: ObjectWatchCache | None = None

    def build_resource(self, request: ResourceRequest) -> dict[str, Any]:
        """The custom resource's body (pure; see :mod:`gp_crd.manifests`)."""
        return build_custom_object(request)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    # -- launch ----------------------------------------------------------------------------

    def _load_template(self) -> dict[str, Any] | None:
        return self.load_template(self.custom_resource_template_file, self.object_kind, "template")

    def start_watches(self, api: CountingApiClient) -> None:
        """The pod watch (gp-k8s) and the shared watch of this resource kind."""
        super().start_watches(api)
        if self._objects is None:
            self._objects = ObjectWatchCache.shared(
                api, self.group, self.version, self.plural, self.watch_namespace
            )

    def launch_watches(self) -> Sequence[BackendWatch]:
        """gp-k8s's pod and event watches, and the watch of this resource kind (the
        operator's state)."""
        objects = (self._objects,) if self._objects is not None else ()
        return (*super().launch_watches(), *objects)

    def _collection(self, namespace: str) -> str:
        return path(
            "/apis/{}/{}/namespaces/{}/{}", self.group, self.version, namespace, self.plural
        )

    def build_kernel_object(
        self, name: str, parameters: KernelParameters, cmd: list[str], env: dict[str, str]
    ) -> dict[str, Any]:
        """The kernel's custom resource, from :meth:`build_resource` (called by gp-k8s's
        ``submit_kernel``)."""
        return self.build_resource(
            ResourceRequest(
                kernel_id=str(self.kernel_id),
                name=name,
                api_version=self.api_version,
                kind=self.object_kind,
                parameters=parameters,
                command=cmd,
                env=self.pod_env(env),
                username=self.kernel_username,
                secret_env=self.launch_secret_env(),
                template=self._template,
                termination_grace_period=self.termination_grace_period,
                executor_image=self.executor_image_name,
                gpu_resource_name=self.gpu_resource_name,
            )
        )

    def kernel_objects_noun(self) -> str:
        return self.object_kind

    def template_noun(self) -> str:
        return self.object_kind

    def log_kernel_launch(self, cmd: list[str]) -> None:
        self.log.info(
            "Kernel %s: %s %s/%s submitted",
            self.kernel_id,
            self.object_kind,
            self.kernel_namespace_name,
            self.container_name,
        )

    # -- status, read from the shared watches ----------------------------------------------

    def object_state(self) -> ObjectState | None:
        if self._objects is None or not self.container_name:
            return None
        return self._objects.get(self.kernel_namespace_name, self.container_name)

    def pod_state(self) -> PodState | None:
        """The kernel's pod: the operator's driver pod, found by its kernel label."""
        cache = self._cache
        if cache is None or not self.container_name:
            return None
        obj = self.object_state()
        if obj is not None and obj.driver_pod:
            return cache.get(self.kernel_namespace_name, obj.driver_pod)
        label = kernel_label_value(str(self.kernel_id))
        for pod in cache.pods():
            if pod.namespace == self.kernel_namespace_name and pod.kernel_label == label:
                if not pod.deleting:
                    return pod
        return None

    def get_initial_states(self) -> set[str]:
        return set(APPLICATION_INITIAL_STATES | POD_INITIAL_STATES)

    def get_error_states(self) -> set[str]:
        return set(APPLICATION_ERROR_STATES | POD_ERROR_STATES)

    def get_container_status(self) -> str:
        obj = self.object_state()
        if obj is None:
            return ""
        state = obj.state.lower()
        if state != "running":
            return state or "new"
        pod = self.pod_state()
        if pod is None:
            return "pending"
        return pod_status(pod, seen=True)

    def describe_failure(self) -> str:
        obj = self.object_state()
        parts = []
        if obj is not None and obj.error_message:
            parts.append(obj.error_message)
        pod = self.pod_state()
        if pod is not None:
            parts.append(describe(pod))
        return "\n".join(parts) or "no message from the operator"

    def _object_gone(self) -> bool:
        """The watch saw this kernel's resource and it no longer exists (or, unseen, it was
        created longer than UNSEEN_GRACE ago)."""
        objects = self._objects
        if objects is None or not self.container_name or not objects.synced.is_set():
            return False
        if objects.get(self.kernel_namespace_name, self.container_name) is not None:
            return False
        if objects.has_seen(self.kernel_namespace_name, self.container_name):
            return True
        return not (self._created_at and time.monotonic() - self._created_at < UNSEEN_GRACE)

    async def detect_launch_failure(self) -> None:
        status = self.get_container_status()
        where = f"{self.object_kind} {self.kernel_namespace_name}/{self.container_name}"
        if status in self.get_error_states():
            self.fail_launch(f"{where} is {status.upper()}: {self.describe_failure()}")
        if self._submitted and self._object_gone():
            self.fail_launch(f"{where} was deleted")
        pod = self.pod_state()
        if pod is not None and self.fatal_warnings(pod):
            events = await self.pod_events(pod.namespace, pod.name)
            self.fail_launch(
                f"{where}: its pod {pod.namespace}/{pod.name} cannot start (phase "
                f"{pod.phase or 'unknown'}): {describe(pod, events + self.cached_warnings(pod))}"
            )

    async def launch_report(self) -> str:
        """The resource's state (and the operator's message), then the driver pod's phase,
        container state and warning events (gp-k8s's ``handle_launch_timeout`` adds it)."""
        if not self.container_name:
            return f"no {self.object_kind} was created"
        where = f"{self.object_kind} {self.kernel_namespace_name}/{self.container_name}"
        obj = self.object_state()
        if obj is None:
            report = f"{where}: not seen by the watch"
        else:
            report = f"{where}: state {obj.state or 'none yet'}"
            if obj.error_message:
                report += f" ({obj.error_message})"
        pod = self.pod_state()
        if pod is None:
            return f"{report}; no pod of the kernel yet"
        events = await self.pod_events(pod.namespace, pod.name)
        return (
            f"{report}; pod {pod.namespace}/{pod.name}: "
            f"{status_report(pod, events + self.cached_warnings(pod))}"
        )

    def liveness_known(self) -> bool:
        """False until both the pod watch and the custom resources' watch have synced."""
        objects = self._objects
        return super().liveness_known() and objects is not None and objects.synced.is_set()

    async def poll(self) -> int | None:
        status = self.get_container_status()
        if not status:
            return 0 if self._object_gone() or not self._submitted else None
        if status not in self.get_error_states():
            return None
        code = exit_code(self.pod_state())
        return code if code is not None else 1

    # -- stop and clean up -----------------------------------------------------------------

    async def delete_kernel_object(
        self, api: CountingApiClient, namespace: str, name: str, *, grace: int
    ) -> None:
        """Delete the custom resource (its pods go with it through their ownerReferences);
        return once the kernel's pod stopped.  The reaper sees the resource and the kernel's
        pods go.  Called by gp-k8s's ``stop_kernel_objects`` after the launch Secret is
        deleted."""
        pod = self.pod_state()
        await ops.run_blocking(self._delete_object, api, namespace, name)
        if pod is not None:
            # The kernel's pod is deleted here too, not left to the garbage collector alone: a
            # kill must not wait for the collector's graceful deletion, and a collector that has
            # not discovered this resource's kind yet (it picks up a new CRD on its next
            # resync) would leave the pod running.
            pod_grace = 0 if grace == 0 else max(grace, self.termination_grace_period)
            await ops.run_blocking(ops.delete_pod, api, namespace, pod.name, pod_grace)
        objects = self._objects
        self.track_deletion(
            self.object_kind,
            f"{self.object_kind} {namespace}/{name} and its pods",
            gone=partial(self._cached_all_gone, namespace, name),
            confirm=partial(self._all_gone, api, namespace, name),
            retry=partial(self._delete_object, api, namespace, name),
            timeout=self.deletion_timeout + self.termination_grace_period,
            on_gone=partial(objects.forget, namespace, name) if objects is not None else None,
        )
        if pod is not None:
            await self.wait_kernel_stopped(
                f"pod {namespace}/{pod.name}",
                cached=partial(pod_stopped_in_cache, self._cache, namespace, pod.name),
                confirm=partial(ops.pod_stopped, api, namespace, pod.name),
                grace=max(grace, self.termination_grace_period),
            )

    def create_kernel_object(self, api: CountingApiClient, body: dict[str, Any]) -> None:
        """POST the resource to its collection (called by gp-k8s's ``submit_kernel``)."""
        request(api, "POST", self._collection(body["metadata"]["namespace"]), body=body)

    def _delete_object(self, api: CountingApiClient, namespace: str, name: str) -> bool:
        """Delete the resource; its dependents go in the background (garbage collector)."""
        try:
            request(
                api,
                "DELETE",
                f"{self._collection(namespace)}/{path('{}', name)}",
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                },
            )
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def _cached_all_gone(self, namespace: str, name: str) -> bool | None:
        """Whether the watches saw the resource and the kernel's pods go (None: not synced)."""
        objects, pods = self._objects, self._cache
        if objects is None or pods is None:
            return None
        if not (objects.synced.is_set() and pods.synced.is_set()):
            return None
        if objects.get(namespace, name) is not None:
            return False
        label = kernel_label_value(str(self.kernel_id))
        return not any(p.namespace == namespace and p.kernel_label == label for p in pods.pods())

    def _all_gone(self, api: CountingApiClient, namespace: str, name: str) -> bool:
        """The API's answer to :meth:`_cached_all_gone` (blocking; for the reaper)."""
        try:
            request(api, "GET", f"{self._collection(namespace)}/{path('{}', name)}")
            return False
        except ApiException as err:
            if err.status != 404:
                raise
        selector = f"{KERNEL_SELECTOR},{KERNEL_ID_LABEL}={kernel_label_value(str(self.kernel_id))}"
        pods = request(
            api,
            "GET",
            path("/api/v1/namespaces/{}/pods", namespace),
            query={"labelSelector": selector},
        )
        return not pods.get("items")


class SparkOperatorProvisioner(CustomResourceProvisioner):
    """Each kernel as a SparkApplication of the Spark operator; its driver runs the launcher.

    The driver pod is the one the operator labels ``spark-role=driver`` (with the kernel's
    labels, copied from ``spec.driver.labels``).  In this project's tests the Spark operator
    is emulated (see the module docstring).
    """

    group = SPARK_GROUP
    version = SPARK_VERSION
    plural = SPARK_PLURAL
    object_kind = SPARK_KIND
    pod_selector = f"{KERNEL_SELECTOR},spark-role=driver"

    def build_resource(self, request: ResourceRequest) -> dict[str, Any]:
        return build_spark_application(request)
