"""What metrics and launch events cost per launch, measured on the caller's event loop.

Usage: ``python benchmarks/observability_cost.py [--launches N]``

Runs the observability calls of one successful launch (four phases, two steps, the running
gauge) and of one failed launch, ``--launches`` times each, through the real ``LaunchPhases``
with metrics and events off, metrics on, and metrics and events on with one subscribed listener
(what a client on Jupyter Server's /api/events/subscribe costs). Prints microseconds per launch
(median of 5 rounds) and the worst single call, which is what the event loop can lag by.
Prints only; never fails on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from typing import Any

from gp_provisioners_core import launch_events, metrics
from gp_provisioners_core.errors import LaunchFailedError
from gp_provisioners_core.phases import IMAGE_PULLED, PHASE_ORDER, SCHEDULED, LaunchPhases
from gp_provisioners_core.settings import Observability

LOG = logging.getLogger("bench")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False


def one_launch(index: int, failing: bool) -> float:
    """The observability calls of one launch; returns the slowest call in seconds."""
    worst = 0.0
    phases = LaunchPhases(f"k-{index}", LOG, backend="bench", kernelspec="python")
    calls: list[Any] = [lambda: phases.complete(PHASE_ORDER[0])]
    calls += [lambda: phases.note(SCHEDULED, "node-1"), lambda: phases.note(IMAGE_PULLED)]
    if failing:
        calls.append(lambda: phases.fail(LaunchFailedError("image missing", phase="submitted")))
    else:
        calls += [lambda p=p: phases.complete(p) for p in PHASE_ORDER[1:]]
        calls += [lambda: metrics.kernel_running("bench", 1)]
        calls += [lambda: metrics.kernel_running("bench", -1)]
    for call in calls:
        started = time.perf_counter()
        call()
        worst = max(worst, time.perf_counter() - started)
    return worst


async def measure(launches: int) -> tuple[float, float]:
    rounds, worst = [], 0.0
    for _ in range(5):
        started = time.perf_counter()
        for index in range(launches):
            worst = max(worst, one_launch(index, failing=index % 2 == 1))
        rounds.append((time.perf_counter() - started) / launches)
        await asyncio.sleep(0)  # let the listener tasks run, as the server's loop would
    return statistics.median(rounds), worst


async def main_async(launches: int) -> None:
    settings = Observability.instance()
    received: list[dict[str, Any]] = []

    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        received.append(data)

    rows = []
    for label, metrics_on, events_on in (
        ("metrics off, events off", False, False),
        ("metrics on, events off", True, False),
        ("metrics on, events on (1 subscriber)", True, True),
    ):
        settings.metrics_enabled, settings.events_enabled = metrics_on, events_on
        if events_on:
            from jupyter_events import EventLogger

            logger = EventLogger()
            launch_events.use_event_logger(logger)
            logger.add_listener(schema_id=launch_events.SCHEMA_ID, listener=listener)
        one_launch(0, failing=False)  # warm-up: imports, metric children, validators
        per_launch, worst = await measure(launches)
        rows.append((label, per_launch * 1e6, worst * 1e6))
        launch_events.use_event_logger(None)
    print(f"Observability cost per launch ({launches} launches x 5 rounds, median round)")
    print(f"{'configuration':40} {'us/launch':>10} {'worst call us':>14}")
    for label, per_launch, worst in rows:
        print(f"{label:40} {per_launch:10.1f} {worst:14.1f}")
    installed = metrics.available() or "no"
    print(f"(prometheus_client installed: {installed}; events seen: {len(received)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=200)
    asyncio.run(main_async(parser.parse_args().launches))


if __name__ == "__main__":
    main()
