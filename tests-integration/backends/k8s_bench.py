"""How many API requests gp-k8s makes while idle kernels are polled.

gateway-provisioners' KubernetesProvisioner reads each kernel's pod on every poll (one request
per kernel per 3-second restarter interval); gp-k8s reads the shared watch's cache, so the
count per interval stays flat as kernels are added.  ``idle_request_table`` measures it against
a real cluster (``nox -s bench`` prints it); the integration suite asserts it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from gp_k8s.client import api_request_count

RESTARTER_INTERVAL = 3.0
"""jupyter_client's KernelRestarter polls every kernel this often (seconds)."""


@dataclass(frozen=True)
class IdleRequestRow:
    kernels: int
    requests_per_interval: float
    per_kernel_polling: int
    """What one request per kernel per poll (gateway-provisioners) would make."""
    start_seconds: float


async def idle_requests_per_interval(
    managers: Sequence[AsyncKernelManager],
    *,
    interval: float = RESTARTER_INTERVAL,
    intervals: int = 3,
) -> float:
    """Poll every kernel once per ``interval`` (as the restarter does) for ``intervals``
    intervals; return the mean number of gp-k8s API requests per interval."""
    before = api_request_count()
    for _ in range(intervals):
        started = time.monotonic()
        alive = await asyncio.gather(*(manager.is_alive() for manager in managers))
        if not all(alive):
            raise RuntimeError(f"{alive.count(False)} kernel(s) died while idle")
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    return (api_request_count() - before) / intervals


async def start_kernels(
    kernel_name: str, count: int, env: Mapping[str, str] | None = None
) -> list[AsyncKernelManager]:
    """Start ``count`` kernels concurrently and wait until each answers."""

    async def one() -> AsyncKernelManager:
        manager = AsyncKernelManager(kernel_name=kernel_name)
        await manager.start_kernel(env=dict(env or os.environ))
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=600)
        finally:
            client.stop_channels()
        return manager

    results: list[Any] = await asyncio.gather(
        *(one() for _ in range(count)), return_exceptions=True
    )
    started = [r for r in results if isinstance(r, AsyncKernelManager)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await shutdown_kernels(started)
        raise errors[0]
    return started


async def shutdown_kernels(managers: Sequence[AsyncKernelManager], now: bool = True) -> None:
    """Shut every kernel down concurrently (``now=False``: the graceful way)."""
    await asyncio.gather(*(m.shutdown_kernel(now=now) for m in managers if m.has_kernel))


async def idle_request_table(
    kernel_name: str,
    counts: Sequence[int] = (5, 50),
    env: Mapping[str, str] | None = None,
    intervals: int = 3,
) -> list[IdleRequestRow]:
    """Grow to each kernel count in turn, measuring idle requests per interval at each."""
    managers: list[AsyncKernelManager] = []
    rows: list[IdleRequestRow] = []
    try:
        for count in sorted(counts):
            started = time.monotonic()
            managers += await start_kernels(kernel_name, count - len(managers), env)
            start_seconds = time.monotonic() - started
            rate = await idle_requests_per_interval(managers, intervals=intervals)
            rows.append(IdleRequestRow(count, rate, count, start_seconds))
    finally:
        await shutdown_kernels(managers)
    return rows


def format_table(rows: Sequence[IdleRequestRow]) -> str:
    lines = [
        "kernels  gp-k8s requests/3s  one-per-kernel polling/3s  start (s)",
        *(
            f"{row.kernels:7d}  {row.requests_per_interval:18.2f}  "
            f"{row.per_kernel_polling:25d}  {row.start_seconds:9.1f}"
            for row in rows
        ),
    ]
    return "\n".join(lines)
