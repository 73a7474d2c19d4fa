"""Prometheus metrics of warm kernel pools (see docs/operators/pools.md).

Like :mod:`gp_provisioners_core.metrics`: in prometheus_client's default registry, no-ops
without it or with ``Observability.metrics_enabled`` off; labels are kernelspec names (chosen by
the operator) and a two-value outcome, never user names or kernel ids.  Called by
:mod:`gp_provisioners_core.pool` on the event loop.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from . import metrics

_lock = threading.Lock()
_made: dict[str, Any] = {}
REFILL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def _objects() -> dict[str, Any] | None:
    if not metrics.available():
        return None
    with _lock:
        if not _made:
            prometheus = importlib.import_module("prometheus_client")
            _made["ready"] = prometheus.Gauge(
                "gp_kernel_pool_ready", "Pooled kernels ready to be claimed.", ("kernelspec",)
            )
            _made["claims"] = prometheus.Counter(
                "gp_kernel_pool_claims",
                "Start requests of a kernelspec with a pool: served by a pooled kernel or missed.",
                ("kernelspec", "outcome"),
            )
            _made["refill"] = prometheus.Histogram(
                "gp_kernel_pool_refill_seconds",
                "Seconds to start one pooled kernel until it answered kernel_info.",
                ("kernelspec",),
                buckets=REFILL_BUCKETS,
            )
    return _made


def ready(by_kernelspec: dict[str, int]) -> None:
    """Set the ready gauge of each kernelspec (absent ones keep their last value at 0)."""
    made = _objects()
    if made is None:
        return
    for name in _seen | set(by_kernelspec):
        made["ready"].labels(name).set(by_kernelspec.get(name, 0))
    _seen.update(by_kernelspec)


_seen: set[str] = set()


def claimed(kernelspec: str, *, served: bool) -> None:
    made = _objects()
    if made is not None:
        made["claims"].labels(kernelspec, "served" if served else "miss").inc()


def refilled(kernelspec: str, seconds: float) -> None:
    made = _objects()
    if made is not None:
        made["refill"].labels(kernelspec).observe(max(0.0, seconds))


__all__ = ["claimed", "ready", "refilled"]
