"""Evidence that the event loop kept running while a test awaited something that blocks.

Every backend has tests of the form "this blocking SDK or subprocess call runs off the loop":
they await the call inside :func:`loop_ticks` and assert the loop turned meanwhile::

    async with loop_ticks() as ticks:
        await provisioner_call()
    assert ticks.count >= 5

A tick is counted only after a whole ``interval`` of sleep came back, so a call that holds
the loop for its whole duration leaves the count at 0 or 1, however long it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class LoopTicks:
    """How many ``interval`` sleeps the loop completed inside :func:`loop_ticks`."""

    count: int = 0


@contextlib.asynccontextmanager
async def loop_ticks(interval: float = 0.01) -> AsyncIterator[LoopTicks]:
    """Count the loop's turns (one per ``interval`` s of sleep) while the body runs.  Called
    by the packages' tests from a running event loop; the counting task stops on exit."""
    ticks = LoopTicks()

    async def tick() -> None:
        while True:
            await asyncio.sleep(interval)
            ticks.count += 1

    task = asyncio.create_task(tick())
    try:
        yield ticks
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["LoopTicks", "loop_ticks"]
