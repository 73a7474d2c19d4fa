"""How many Slurm status queries gp-slurm makes per interval as the kernel count grows.

For ``nox -s bench`` (prints figures, never fails on them)::

    python tests-integration/bench_slurm.py [--kernels 2,10] [--window 5] [--rest]

Starts the single-node Slurm of ``backends/slurm.py``, installs a kernelspec, starts the largest
number of kernels as jobs at once, then for each count (largest first, shutting kernels down in
between) counts the shared watcher's queries over ``--window`` seconds.  The figure should stay
flat: one ``squeue`` (or REST jobs query) per ``status_interval`` whatever the kernel count.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.slurm import slurm_available, slurm_cluster
from backends.slurm_kernels import (
    STATUS_INTERVAL,
    SlurmKernelspecs,
    install_kernelspecs,
    kernelspec_environment,
)
from jupyter_client.manager import AsyncKernelManager


@dataclass
class QueryCount:
    kernels: int
    window: float
    queries: int
    interval: float

    @property
    def per_interval(self) -> float:
        return self.queries / (self.window / self.interval)


async def count_queries(watcher: Any, window: float) -> int:
    """The queries ``watcher`` (a ``BatchedStatusWatcher``) made during ``window`` seconds."""
    before = watcher.queries
    await asyncio.sleep(window)
    return int(watcher.queries - before)


async def start_kernels(
    specs: SlurmKernelspecs, kernel_name: str, count: int
) -> list[AsyncKernelManager]:
    """``count`` kernels started at once, each ready (answering) when returned."""
    managers = await asyncio.gather(*(specs.start(kernel_name) for _ in range(count)))
    return list(managers)


async def shutdown(managers: list[AsyncKernelManager]) -> None:
    await asyncio.gather(*(m.shutdown_kernel(now=False) for m in managers))


async def measure(
    specs: SlurmKernelspecs, kernel_name: str, counts: list[int], window: float
) -> list[QueryCount]:
    """Query counts over ``window`` with each of ``counts`` kernels running (largest first)."""
    running = await start_kernels(specs, kernel_name, max(counts))
    watcher = running[0].provisioner.watcher()  # type: ignore[union-attr]
    rows = []
    try:
        for count in sorted(counts, reverse=True):
            extra, running = running[count:], running[:count]
            await shutdown(extra)
            queries = await count_queries(watcher, window)
            rows.append(QueryCount(count, window, queries, watcher.interval))
    finally:
        await shutdown(running)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", default="2,10", help="kernel counts, comma-separated")
    parser.add_argument("--window", type=float, default=5.0, help="seconds counted per count")
    parser.add_argument("--rest", action="store_true", help="submit through slurmrestd")
    args = parser.parse_args(argv)
    reason = slurm_available()
    if reason:
        print(f"bench_slurm: skipped: {reason}")
        return 0
    counts = [int(n) for n in args.kernels.split(",") if n.strip()]
    started = time.monotonic()
    with slurm_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        specs = install_kernelspecs(cluster, Path(tmp))
        with kernelspec_environment(Path(tmp)):
            name = specs.rest if args.rest else specs.cli
            rows = asyncio.run(measure(specs, name, counts, args.window))
    path = "slurmrestd" if args.rest else "squeue"
    print(f"gp-slurm {path} queries (status_interval {STATUS_INTERVAL:g}s):")
    print(f"{'kernels':>8} {'window s':>9} {'queries':>8} {'per interval':>13}")
    for row in sorted(rows, key=lambda r: r.kernels):
        print(f"{row.kernels:>8} {row.window:>9.1f} {row.queries:>8} {row.per_interval:>13.2f}")
    print(f"(total {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
