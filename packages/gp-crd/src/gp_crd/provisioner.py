"""CustomResourceProvisioner and SparkOperatorProvisioner: each kernel as a custom resource.

:class:`CustomResourceProvisioner` is the virtual base: a subclass names its resource with four
class attributes (``group``, ``version``, ``plural``, ``object_kind``) and gets the rest: the
``KERNEL_*`` parameters, limits and namespaces of gp-k8s's
:class:`~gp_k8s.KubernetesProvisioner` (which it extends), and :class:`CustomResourceKind`, the
:class:`~gp_k8s.kernel_object.KernelObjectKind` gp-k8s delegates the kernel's object to: the
resource built as data (:mod:`gp_crd.manifests`), created through the custom-objects API on
worker threads, and its status read from two shared watches: one list-then-watch of the
resource kind (:class:`~gp_crd.object_cache.ObjectWatchCache`) and gp-k8s's pod cache for the
pods the operator creates (found by their labels).  The kind reads the kernel through gp-k8s's
public :class:`~gp_k8s.kernel_object.KernelObjectContext` only.

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
from gp_k8s.kernel_object import KernelObjectContext, KernelObjectKind
from gp_k8s.manifests import KERNEL_ID_LABEL, KERNEL_SELECTOR, kernel_label_value
from gp_k8s.parameters import KernelParameters
from gp_k8s.pod_cache import PodState
from gp_k8s.pod_kind import UNSEEN_GRACE, pod_stopped_in_cache
from gp_k8s.provisioner import KubernetesProvisioner
from gp_k8s.watch_cache import Collection
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
    namespace, the launch Secret, error mapping); the kernel's object is a
    :class:`CustomResourceKind` (:meth:`make_object_kind`): its template, building, creating
    and deleting it, and its status.
    """

    group: ClassVar[str] = ""
    version: ClassVar[str] = ""
    plural: ClassVar[str] = ""
    object_kind: ClassVar[str] = ""
    pod_selector: ClassVar[str] = KERNEL_SELECTOR
    """Label selector of the shared watch of the pods the operator creates for kernels."""
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

    def make_object_kind(self, context: KernelObjectContext) -> KernelObjectKind:
        """This resource kind (called once by gp-k8s's ``__init__``)."""
        return CustomResourceKind(context, self)

    def build_resource(self, request: ResourceRequest) -> dict[str, Any]:
        """The custom resource's body (pure; see :mod:`gp_crd.manifests`).  Called by
        :meth:`CustomResourceKind.build`; a subclass returns its operator's resource."""
        return build_custom_object(request)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @classmethod
    def collection(cls) -> Collection:
        """This resource kind's API collection (what the shared watch lists)."""
        return Collection(cls.group, cls.version, cls.plural)

    def object_state(self) -> ObjectState | None:
        """The kernel's resource as the shared watch last saw it (no I/O)."""
        kind = self.kernel_object
        return kind.object_state() if isinstance(kind, CustomResourceKind) else None


class CustomResourceKind(KernelObjectKind):
    """The kernel as one custom resource of ``resource``'s kind, whose operator makes the pod
    the launcher runs in (found by the kernel's label, or the operator's ``driverInfo``).

    ``resource`` names the kind (``group``, ``version``, ``plural``, ``object_kind``), its
    template (``custom_resource_template_file``) and builder (``build_resource``).
    """

    name_limit = NAME_LIMIT

    def __init__(self, context: KernelObjectContext, resource: CustomResourceProvisioner) -> None:
        super().__init__(context)
        self.resource = resource
        self.noun = self.template_noun = resource.object_kind
        self.objects: ObjectWatchCache | None = None
        """The process's shared watch of this resource kind, once joined."""

    def collection(self, namespace: str) -> str:
        """The URL path of this resource kind in ``namespace``."""
        return self.resource.collection().path(namespace)

    # -- launch ------------------------------------------------------------------------------

    def load_template(self) -> dict[str, Any] | None:
        r = self.resource
        return r.load_template(r.custom_resource_template_file, r.object_kind, "template")

    def join_watches(self, api: CountingApiClient) -> None:
        if self.objects is None:
            self.objects = ObjectWatchCache.shared(
                api, self.resource.collection(), self.resource.watch_namespace
            )

    def watches(self) -> Sequence[BackendWatch]:
        """The watch of this resource kind (the operator's state)."""
        return (self.objects,) if self.objects is not None else ()

    def watches_synced(self) -> bool:
        return self.objects is not None and self.objects.synced.is_set()

    def build(
        self, name: str, parameters: KernelParameters, cmd: list[str], env: dict[str, str]
    ) -> dict[str, Any]:
        """The kernel's custom resource, from the provisioner's ``build_resource``."""
        r = self.resource
        return r.build_resource(
            ResourceRequest(
                **r.object_request(name, parameters, cmd, env),
                api_version=r.api_version,
                kind=r.object_kind,
                termination_grace_period=r.termination_grace_period,
                executor_image=r.executor_image_name,
                gpu_resource_name=r.gpu_resource_name,
            )
        )

    def create(self, api: CountingApiClient, body: dict[str, Any]) -> None:
        """POST the resource to its collection."""
        request(api, "POST", self.collection(body["metadata"]["namespace"]), body=body)

    def log_launch(self) -> None:
        ctx = self.context
        ctx.log.info(
            "Kernel %s: %s %s/%s submitted",
            ctx.kernel_id,
            self.resource.object_kind,
            ctx.namespace,
            ctx.name,
        )

    # -- status, read from the shared watches ----------------------------------------------

    def object_state(self) -> ObjectState | None:
        ctx = self.context
        if self.objects is None or not ctx.name:
            return None
        return self.objects.get(ctx.namespace, ctx.name)

    def pod_state(self) -> PodState | None:
        """The kernel's pod: the operator's driver pod, found by its kernel label."""
        ctx = self.context
        pods = ctx.pods
        if pods is None or not ctx.name:
            return None
        obj = self.object_state()
        if obj is not None and obj.driver_pod:
            return pods.get(ctx.namespace, obj.driver_pod)
        label = kernel_label_value(ctx.kernel_id)
        for pod in pods.pods():
            if pod.namespace == ctx.namespace and pod.kernel_label == label:
                if not pod.deleting:
                    return pod
        return None

    def initial_states(self) -> set[str]:
        return set(APPLICATION_INITIAL_STATES | POD_INITIAL_STATES)

    def error_states(self) -> set[str]:
        return set(APPLICATION_ERROR_STATES | POD_ERROR_STATES)

    def status(self) -> str:
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

    def object_gone(self) -> bool:
        """The watch saw this kernel's resource and it no longer exists (or, unseen, it was
        created longer than UNSEEN_GRACE ago)."""
        objects, ctx = self.objects, self.context
        if objects is None or not ctx.name or not objects.synced.is_set():
            return False
        if objects.get(ctx.namespace, ctx.name) is not None:
            return False
        if objects.has_seen(ctx.namespace, ctx.name):
            return True
        return not (ctx.created_at and time.monotonic() - ctx.created_at < UNSEEN_GRACE)

    def where(self) -> str:
        ctx = self.context
        return f"{self.resource.object_kind} {ctx.namespace}/{ctx.name}"

    async def detect_launch_failure(self) -> None:
        p = self.context.provisioner
        status = self.status()
        if status in self.error_states():
            p.fail_launch(f"{self.where()} is {status.upper()}: {self.describe_failure()}")
        if self.context.submitted and self.object_gone():
            p.fail_launch(f"{self.where()} was deleted")
        pod = self.pod_state()
        if pod is not None and p.fatal_warnings(pod):
            events = await p.pod_events(pod.namespace, pod.name)
            p.fail_launch(
                f"{self.where()}: its pod {pod.namespace}/{pod.name} cannot start (phase "
                f"{pod.phase or 'unknown'}): {describe(pod, events + p.cached_warnings(pod))}"
            )

    async def launch_report(self) -> str:
        """The resource's state (and the operator's message), then the driver pod's phase,
        container state and warning events."""
        p = self.context.provisioner
        if not self.context.name:
            return f"no {self.resource.object_kind} was created"
        obj = self.object_state()
        if obj is None:
            report = f"{self.where()}: not seen by the watch"
        else:
            report = f"{self.where()}: state {obj.state or 'none yet'}"
            if obj.error_message:
                report += f" ({obj.error_message})"
        pod = self.pod_state()
        if pod is None:
            return f"{report}; no pod of the kernel yet"
        events = await p.pod_events(pod.namespace, pod.name)
        return (
            f"{report}; pod {pod.namespace}/{pod.name}: "
            f"{status_report(pod, events + p.cached_warnings(pod))}"
        )

    async def poll(self) -> int | None:
        status = self.status()
        if not status:
            return 0 if self.object_gone() or not self.context.submitted else None
        if status not in self.error_states():
            return None
        code = exit_code(self.pod_state())
        return code if code is not None else 1

    # -- stop --------------------------------------------------------------------------------

    async def delete(
        self, api: CountingApiClient, namespace: str, name: str, *, grace: int
    ) -> None:
        """Delete the custom resource (its pods go with it through their ownerReferences);
        return once the kernel's pod stopped.  The reaper sees the resource and the kernel's
        pods go."""
        p, kind = self.context.provisioner, self.resource.object_kind
        pod = self.pod_state()
        await ops.run_blocking(self.delete_object, api, namespace, name)
        if pod is not None:
            # The kernel's pod is deleted here too, not left to the garbage collector alone: a
            # kill must not wait for the collector's graceful deletion, and a collector that has
            # not discovered this resource's kind yet (it picks up a new CRD on its next
            # resync) would leave the pod running.
            pod_grace = 0 if grace == 0 else max(grace, p.termination_grace_period)
            await ops.run_blocking(ops.delete_pod, api, namespace, pod.name, pod_grace)
        objects = self.objects
        p.track_deletion(
            kind,
            f"{kind} {namespace}/{name} and its pods",
            gone=partial(self.cached_all_gone, namespace, name),
            confirm=partial(self.all_gone, api, namespace, name),
            retry=partial(self.delete_object, api, namespace, name),
            timeout=p.deletion_timeout + p.termination_grace_period,
            on_gone=partial(objects.forget, namespace, name) if objects is not None else None,
        )
        if pod is not None:
            await p.wait_kernel_stopped(
                f"pod {namespace}/{pod.name}",
                cached=partial(pod_stopped_in_cache, self.context.pods, namespace, pod.name),
                confirm=partial(ops.pod_stopped, api, namespace, pod.name),
                grace=max(grace, p.termination_grace_period),
            )

    def delete_object(self, api: CountingApiClient, namespace: str, name: str) -> bool:
        """Delete the resource; its dependents go in the background (garbage collector).
        False when it was already gone (blocking; a worker thread or the reaper's)."""
        try:
            request(
                api,
                "DELETE",
                f"{self.collection(namespace)}/{path('{}', name)}",
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

    def cached_all_gone(self, namespace: str, name: str) -> bool | None:
        """Whether the watches saw the resource and the kernel's pods go (None: not synced)."""
        objects, pods = self.objects, self.context.pods
        if objects is None or pods is None:
            return None
        if not (objects.synced.is_set() and pods.synced.is_set()):
            return None
        if objects.get(namespace, name) is not None:
            return False
        label = kernel_label_value(self.context.kernel_id)
        return not any(p.namespace == namespace and p.kernel_label == label for p in pods.pods())

    def all_gone(self, api: CountingApiClient, namespace: str, name: str) -> bool:
        """The API's answer to :meth:`cached_all_gone` (blocking; for the reaper)."""
        try:
            request(api, "GET", f"{self.collection(namespace)}/{path('{}', name)}")
            return False
        except ApiException as err:
            if err.status != 404:
                raise
        label = kernel_label_value(self.context.kernel_id)
        selector = f"{KERNEL_SELECTOR},{KERNEL_ID_LABEL}={label}"
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
