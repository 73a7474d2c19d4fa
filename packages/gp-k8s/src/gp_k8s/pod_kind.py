"""The default :class:`~gp_k8s.kernel_object.KernelObjectKind`: the kernel is one pod.

The pod is built as data by :func:`~gp_k8s.manifests.build_pod`; its status is read from the
shared pod watch, and a pod that cannot start fails the launch from the shared Warning-event
watch.  Deleting it returns once its container stopped; the reaper sees the pod object go.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from . import operations as ops
from .client import CountingApiClient
from .diagnosis import (
    ERROR_STATES,
    INITIAL_STATES,
    describe,
    exit_code,
    kernel_stopped,
    pod_status,
    status_report,
)
from .kernel_object import KernelObjectKind
from .manifests import PodRequest, build_pod
from .parameters import KernelParameters
from .pod_cache import PodState, PodWatchCache

UNSEEN_GRACE = 30.0
"""Seconds an object this process created may stay unseen by its watch before it counts as
gone."""


class PodKind(KernelObjectKind):
    """The kernel's launcher runs as the container of one pod (``kubernetes-provisioner``)."""

    def load_template(self) -> dict[str, Any] | None:
        p = self.context.provisioner
        return p.load_template(p.pod_template_file, "Pod", "pod template")

    def build(
        self, name: str, parameters: KernelParameters, cmd: list[str], env: dict[str, str]
    ) -> dict[str, Any]:
        p = self.context.provisioner
        request = PodRequest(**p.object_request(name, parameters, cmd, env))
        return build_pod(request, gpu_resource_name=p.gpu_resource_name)

    def create(self, api: CountingApiClient, body: dict[str, Any]) -> None:
        ops.create_pod(api, body)

    def log_launch(self) -> None:
        p, ctx = self.context.provisioner, self.context
        ctx.log.info(
            "Kernel %s: pod %s/%s submitted with image %s",
            ctx.kernel_id,
            ctx.namespace,
            ctx.name,
            p.parameters.image if p.parameters else p.image_name,
        )

    # -- status ------------------------------------------------------------------------------

    def pod_state(self) -> PodState | None:
        pods, ctx = self.context.pods, self.context
        if pods is None or not ctx.name:
            return None
        return pods.get(ctx.namespace, ctx.name)

    def initial_states(self) -> set[str]:
        return set(INITIAL_STATES)

    def error_states(self) -> set[str]:
        return set(ERROR_STATES)

    def status(self) -> str:
        pods, ctx = self.context.pods, self.context
        if pods is None or not ctx.name:
            return ""
        if not pods.synced.is_set():
            return "pending"
        state = pods.get(ctx.namespace, ctx.name)
        seen = pods.has_seen(ctx.namespace, ctx.name)
        if state is None and not seen:
            recent = ctx.created_at and time.monotonic() - ctx.created_at < UNSEEN_GRACE
            return "pending" if recent else ""
        return pod_status(state, seen=seen)

    def describe_failure(self) -> str:
        state = self.pod_state()
        return describe(state, self.context.provisioner.cached_warnings(state))

    async def detect_launch_failure(self) -> None:
        ctx, p = self.context, self.context.provisioner
        pods = ctx.pods
        if pods is not None and not pods.synced.is_set() and pods.last_error:
            p.fail_launch(
                f"the shared watch of kernel pods ({pods.namespace or 'all namespaces'}) "
                f"fails: {pods.last_error}; check the server's RBAC (list and watch pods)"
            )
        status = self.status()
        state = self.pod_state()
        fatal = p.fatal_warnings(state)
        failed = status in ERROR_STATES or (status == "" and ctx.submitted)
        if not failed and not fatal:
            return
        events = await p.pod_events(ctx.namespace, ctx.name)
        where = f"pod {ctx.namespace}/{ctx.name}"
        if failed:
            p.fail_launch(f"{where} is {status or 'gone'}: {describe(state, events)}")
        p.fail_launch(
            f"{where} cannot start (phase {state.phase if state else 'unknown'}): "
            f"{describe(state, events + p.cached_warnings(state))}"
        )

    async def launch_report(self) -> str:
        ctx, p = self.context, self.context.provisioner
        if not ctx.name:
            return "no pod was created"
        state = self.pod_state()
        events = await p.pod_events(ctx.namespace, ctx.name)
        report = status_report(state, events + p.cached_warnings(state))
        return f"pod {ctx.namespace}/{ctx.name}: {report}"

    async def poll(self) -> int | None:
        status = self.status()
        if status and status not in ERROR_STATES:
            return None
        code = exit_code(self.pod_state())
        if code is not None:
            return code
        return 1 if status else 0

    # -- stop --------------------------------------------------------------------------------

    async def delete(
        self, api: CountingApiClient, namespace: str, name: str, *, grace: int
    ) -> None:
        """Delete the pod; return once its container stopped, not once the pod object is gone
        (the reaper sees to that)."""
        p, pods = self.context.provisioner, self.context.pods
        await ops.run_blocking(ops.delete_pod, api, namespace, name, grace)
        p.track_deletion(
            "pod",
            f"pod {namespace}/{name}",
            gone=partial(pod_gone_in_cache, pods, namespace, name),
            confirm=lambda: not ops.pod_exists(api, namespace, name),
            retry=partial(ops.delete_pod, api, namespace, name, grace),
            timeout=p.deletion_timeout + grace,
            on_gone=partial(pods.forget, namespace, name) if pods is not None else None,
        )
        await p.wait_kernel_stopped(
            f"pod {namespace}/{name}",
            cached=partial(pod_stopped_in_cache, pods, namespace, name),
            confirm=partial(ops.pod_stopped, api, namespace, name),
            grace=grace,
        )


def pod_gone_in_cache(cache: PodWatchCache | None, namespace: str, name: str) -> bool | None:
    """Whether the watch saw the pod go; None when it cannot tell (not synced, never seen)."""
    if cache is None or not cache.synced.is_set():
        return None
    if cache.get(namespace, name) is not None:
        return False
    return True if cache.has_seen(namespace, name) else None


def pod_stopped_in_cache(cache: PodWatchCache | None, namespace: str, name: str) -> bool | None:
    """Whether the watch says the pod's kernel container stopped; None when it cannot tell."""
    if cache is None or not cache.synced.is_set():
        return None
    state = cache.get(namespace, name)
    if state is None:
        return True if cache.has_seen(namespace, name) else None
    return kernel_stopped(state)
