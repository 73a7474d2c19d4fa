"""Figures for benchmarks and tests: how many Docker API calls polling costs.

``measure_poll_api_calls`` polls every given provisioner at an interval for a window and
counts the HTTP requests the process's Docker clients made meanwhile (the shared events
watcher and task watcher included).  With the events cache it stays flat as kernels grow::

    window = await measure_poll_api_calls([km.provisioner for km in managers], seconds=60)
    print(window.summary())

``run_poll_bench`` does the whole round for a kernelspec: start N kernels at once, measure,
shut them down, for each N asked.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .docker_api import API_CALLS


@dataclass(frozen=True)
class PollWindow:
    """What one measuring window saw."""

    kernels: int
    seconds: float
    polls: int
    api_calls: int
    by_endpoint: dict[str, int] = field(default_factory=dict)
    alive: int = 0

    def summary(self) -> str:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_endpoint.items())) or "none"
        return (
            f"{self.kernels} kernels ({self.alive} alive), {self.polls} polls in "
            f"{self.seconds:.1f}s: {self.api_calls} Docker API calls ({detail})"
        )


def api_call_counts() -> dict[str, int]:
    """Requests made so far by this process's Docker clients, by endpoint."""
    return API_CALLS.snapshot()


async def measure_poll_api_calls(
    provisioners: Sequence[Any], seconds: float = 60.0, interval: float = 3.0
) -> PollWindow:
    """Poll each provisioner every ``interval`` seconds for ``seconds``; count API calls."""
    before = API_CALLS.snapshot()
    started = time.monotonic()
    polls = alive = 0
    while True:
        alive = 0
        for provisioner in provisioners:
            alive += (await provisioner.poll()) is None
            polls += 1
        remaining = seconds - (time.monotonic() - started)
        if remaining <= 0:
            break
        await asyncio.sleep(min(interval, remaining))
    after = API_CALLS.snapshot()
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    return PollWindow(
        kernels=len(provisioners),
        seconds=time.monotonic() - started,
        polls=polls,
        api_calls=sum(diff.values()),
        by_endpoint=diff,
        alive=alive,
    )


async def run_poll_bench(
    kernel_name: str,
    kernel_counts: Sequence[int] = (1, 20),
    seconds: float = 60.0,
    interval: float = 3.0,
    env: Mapping[str, str] | None = None,
) -> list[PollWindow]:
    """For each count: start that many kernels of ``kernel_name`` at once, poll them all for
    ``seconds``, shut them down.  One window per count (the calls should not grow)."""
    from jupyter_client.manager import AsyncKernelManager

    launch_env = dict(os.environ if env is None else env)
    launch_env.setdefault("KERNEL_USERNAME", "bench")
    windows = []
    for count in kernel_counts:
        managers = [AsyncKernelManager(kernel_name=kernel_name) for _ in range(count)]
        try:
            await asyncio.gather(*(m.start_kernel(env=launch_env) for m in managers))
            provisioners = [m.provisioner for m in managers]
            windows.append(await measure_poll_api_calls(provisioners, seconds, interval))
        finally:
            await asyncio.gather(
                *(m.shutdown_kernel(now=True) for m in managers if m.has_kernel),
                return_exceptions=True,
            )
    return windows
