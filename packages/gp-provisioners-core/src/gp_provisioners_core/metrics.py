"""Prometheus metrics of launches, running kernels, backend API calls and refused messages.

The metrics live in prometheus_client's default registry, the one Jupyter Server serves on
``/metrics``.  prometheus_client is optional: without it (or with
``Observability.metrics_enabled`` off) every function here is a no-op.  Label values are
bounded: backend and kernelspec names (both chosen by the operator), phase names, and the
reason vocabularies below; never kernel ids or user names.

Callers: :class:`~gp_provisioners_core.phases.LaunchPhases` (launches, phase durations,
failures), ``RemoteProvisionerBase`` (running kernels), the response manager (response-port
rejections), ``KernelChannel`` (comm-port rejections) and each backend's API and watch code
(API requests, watch restarts).  Every function is cheap and thread-safe (a lock-protected
counter update), so it is safe on the event loop and on watcher threads.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from .settings import Observability

LAUNCH_OUTCOMES = ("success", "failure", "refused")
"""``refused``: the request was turned down before anything was submitted (user, parameters)."""

FAILURE_REASONS = (
    "unauthorized",
    "invalid-request",
    "configuration",
    "submit-refused",
    "image-unavailable",
    "unschedulable",
    "kernel-exited",
    "backend-error",
    "launcher-error",
    "timeout",
    "cancelled",
    "internal-error",
)
"""The bounded vocabulary of ``gp_kernel_launch_failures_total{reason}`` (and of the
``reason`` of a ``failed`` launch event); anything else is counted as ``backend-error``."""

RESPONSE_REJECTION_REASONS = (
    "too-many-connections",
    "timeout",
    "too-large",
    "empty",
    "malformed",
    "undecryptable",
    "unsupported-version",
    "legacy-refused",
    "replayed",
    "unknown-kernel",
    "bad-secret",
    "not-ready",
)
COMM_REJECTION_REASONS = ("unreachable", "no-answer", "refused")
API_OUTCOMES = ("ok", "error")
WATCH_RESTART_REASONS = ("gone", "error", "closed")
OTHER = "other"

# Launches take from well under a second (local) to minutes (an image pull, a YARN queue).
LAUNCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def bounded(value: str, vocabulary: tuple[str, ...], fallback: str = OTHER) -> str:
    """``value`` when it is in ``vocabulary``, else ``fallback``: keeps label sets bounded."""
    return value if value in vocabulary else fallback


class _Metrics:
    """The metric objects, made once per process in the default registry."""

    def __init__(self, prometheus: Any) -> None:
        counter, gauge, histogram = (
            prometheus.Counter,
            prometheus.Gauge,
            prometheus.Histogram,
        )
        self.launches = counter(
            "gp_kernel_launches",
            "Kernel launches that ended, by backend, kernelspec and outcome.",
            ("backend", "kernelspec", "outcome"),
        )
        self.launch_duration = histogram(
            "gp_kernel_launch_duration_seconds",
            "Seconds from the start of a launch to its end (ready or failed).",
            ("backend", "kernelspec", "outcome"),
            buckets=LAUNCH_BUCKETS,
        )
        self.phase_duration = histogram(
            "gp_kernel_launch_phase_duration_seconds",
            "Seconds each finished launch phase took.",
            ("backend", "phase"),
            buckets=LAUNCH_BUCKETS,
        )
        self.failures = counter(
            "gp_kernel_launch_failures",
            "Failed or refused launches, by backend, the phase that failed and a bounded reason.",
            ("backend", "phase", "reason"),
        )
        self.running = gauge(
            "gp_kernels_running",
            "Kernels this server process runs (launched or re-attached, not yet cleaned up).",
            ("backend",),
        )
        self.api_requests = counter(
            "gp_backend_api_requests",
            "Requests to a backend's API (HTTP, CLI or ssh), by backend, operation and outcome.",
            ("backend", "operation", "outcome"),
        )
        self.watch_restarts = counter(
            "gp_backend_watch_restarts",
            "Restarts of a backend's shared watch or event stream, by reason.",
            ("backend", "reason"),
        )
        self.response_rejections = counter(
            "gp_response_rejections",
            "Messages the response server refused, by reason.",
            ("reason",),
        )
        self.comm_rejections = counter(
            "gp_comm_port_rejections",
            "Requests to a launcher's comm port that failed, by reason.",
            ("reason",),
        )


_lock = threading.Lock()
_metrics: _Metrics | None = None
_unavailable = False


def _load_prometheus() -> Any:
    """prometheus_client, or None when it is not installed."""
    try:
        return importlib.import_module("prometheus_client")
    except ImportError:
        return None


def _get() -> _Metrics | None:
    """The process's metrics; None when metrics are off or prometheus_client is missing."""
    global _metrics, _unavailable
    if _metrics is not None:
        return _metrics if Observability.instance().metrics_enabled else None
    if _unavailable or not Observability.instance().metrics_enabled:
        return None
    with _lock:
        if _metrics is None and not _unavailable:
            prometheus = _load_prometheus()
            if prometheus is None:
                _unavailable = True
                return None
            _metrics = _Metrics(prometheus)
    return _metrics


def available() -> bool:
    """True when metrics are recorded (prometheus_client installed and metrics enabled)."""
    return _get() is not None


def launch_ended(
    backend: str,
    kernelspec: str,
    outcome: str,
    seconds: float,
    *,
    phase: str = "",
    reason: str = "",
) -> None:
    """Count one finished launch and observe its total duration.

    Called by ``LaunchPhases`` when a launch is ready (``success``) or fails (``failure``,
    ``refused``, with the phase that failed and a reason from ``FAILURE_REASONS``).
    """
    metrics = _get()
    if metrics is None:
        return
    outcome = bounded(outcome, LAUNCH_OUTCOMES, "failure")
    metrics.launches.labels(backend, kernelspec, outcome).inc()
    metrics.launch_duration.labels(backend, kernelspec, outcome).observe(max(0.0, seconds))
    if outcome != "success":
        metrics.failures.labels(
            backend, phase or "none", bounded(reason, FAILURE_REASONS, "backend-error")
        ).inc()


def phase_done(backend: str, phase: str, seconds: float) -> None:
    """Observe one finished phase.  Called by ``LaunchPhases.complete``."""
    metrics = _get()
    if metrics is not None:
        metrics.phase_duration.labels(backend, phase).observe(max(0.0, seconds))


def kernel_running(backend: str, delta: int) -> None:
    """Add ``delta`` (+1 or -1) to the running kernels of ``backend``.

    Called by ``RemoteProvisionerBase`` when a launch is ready or a kernel re-attached (+1) and
    at cleanup of such a kernel (-1).
    """
    metrics = _get()
    if metrics is not None:
        metrics.running.labels(backend).inc(delta)


def api_request(backend: str, operation: str, ok: bool = True) -> None:
    """Count one request to a backend's API.

    Called by each backend at its one place of API calls (gp_k8s ``client.request``, the Docker
    client wrapper, ``squeue``/``sbatch``/slurmrestd calls, the YARN RM client, ssh commands).
    ``operation`` must come from a fixed list of the caller (an HTTP verb, a command name),
    never from a URL or a user's value.
    """
    metrics = _get()
    if metrics is not None:
        metrics.api_requests.labels(backend, operation, "ok" if ok else "error").inc()


def watch_restarted(backend: str, reason: str) -> None:
    """Count one restart of a shared watch: ``gone`` (a relist after 410 Gone), ``error`` (the
    stream failed), ``closed`` (the server ended it).  Called by the backends' watch threads."""
    metrics = _get()
    if metrics is not None:
        metrics.watch_restarts.labels(backend, bounded(reason, WATCH_RESTART_REASONS)).inc()


def response_rejected(reason: str) -> None:
    """Count a message refused by the response server.  Called by ``ResponseManager._reject``
    (on the response thread)."""
    metrics = _get()
    if metrics is not None:
        metrics.response_rejections.labels(bounded(reason, RESPONSE_REJECTION_REASONS)).inc()


def comm_rejected(reason: str) -> None:
    """Count a comm-port request that failed.  Called by ``KernelChannel.request``."""
    metrics = _get()
    if metrics is not None:
        metrics.comm_rejections.labels(bounded(reason, COMM_REJECTION_REASONS)).inc()


__all__ = [
    "API_OUTCOMES",
    "COMM_REJECTION_REASONS",
    "FAILURE_REASONS",
    "LAUNCH_OUTCOMES",
    "RESPONSE_REJECTION_REASONS",
    "WATCH_RESTART_REASONS",
    "api_request",
    "available",
    "bounded",
    "comm_rejected",
    "kernel_running",
    "launch_ended",
    "phase_done",
    "response_rejected",
    "watch_restarted",
]
