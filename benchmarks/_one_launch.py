"""One timed kernel launch in a fresh process; prints one JSON object on stdout.

Run by ``launch_bench.py`` with the Python of the variant under test (it may be another venv,
so this file uses only the standard library and jupyter_client).  Phases, all on one event loop
watched by a 1 ms ticker:

0. unless ``--cold``, per-process warm-up a running server has behind it (imports, entry
   points, interface discovery; untimed, see ``warm_process``);
1. optional pre-start of the provisioner package's response server (per-process work, untimed);
   with ``--prior-launch``, one untimed kernel started and shut down first (a server that has
   run kernels on that host before: its ssh connection and remote shells are open); with
   ``--warm-ssh``, gp-distributed's ssh warm-up (what its server extension runs at server start:
   connection and one idle remote shell per host of the kernelspecs, no kernel) instead;
2. launch: ``await km.start_kernel()`` then one ``kernel_info_request`` until its reply;
3. idle: ``--idle`` seconds with the client's channels open;
4. shutdown: ``await km.shutdown_kernel()`` (graceful).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import sys
import time
import traceback
from typing import Any

TICK = 0.001  # seconds the ticker sleeps; overshoot beyond this is loop lag


class Ticker:
    """Sleeps ``TICK`` in a loop and records each sleep's overshoot in milliseconds."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            before = clock()
            await asyncio.sleep(TICK)
            self.samples.append((clock() - before - TICK) * 1000.0)

    def take(self) -> list[float]:
        """The samples since the last ``take`` (one phase's worth)."""
        samples, self.samples = self.samples, []
        return samples

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def prestart(kind: str) -> float | None:
    """Start the provisioner package's response server before timing; return seconds taken."""
    started = time.perf_counter()
    if kind == "gp_provisioners_core":
        from gp_provisioners_core import ResponseManager

        ResponseManager.instance().start()
        try:  # the server extension makes the metrics at server start-up: do it here too
            from gp_provisioners_core import metrics
        except ImportError:  # an older core
            pass
        else:
            metrics.available()
        if os.environ.get("GP_BENCH_LAUNCH_EVENTS") == "1":
            subscribe_to_launch_events()
    elif kind == "gateway_provisioners":
        # Its constructor generates the RSA key, binds the socket and starts its
        # PeriodicCallback on the running loop; normally this happens in the first launch.
        from gateway_provisioners.response_manager import ResponseManager

        ResponseManager.instance()
    elif kind != "none":
        raise SystemExit(f"unknown --prestart {kind!r}")
    else:
        return None
    return time.perf_counter() - started


async def warm_ssh() -> float:
    """Run gp-distributed's ssh warm-up on this process's kernelspecs, as its server extension
    does at server start, and wait for it; return seconds.  Raises when a host was not warmed."""
    from jupyter_client.kernelspec import KernelSpecManager

    from gp_distributed.warmup import warm_up

    started = time.perf_counter()
    results = await warm_up(KernelSpecManager())
    failed = [r.error for r in results if r.error]
    if not results or failed:
        raise RuntimeError(f"the ssh warm-up warmed nothing: {failed}")
    return time.perf_counter() - started


def subscribe_to_launch_events() -> None:
    """Give the provisioners an event logger with one listener, as Jupyter Server does for a
    client on /api/events/subscribe (the listener serializes each event, as that one does)."""
    from jupyter_events import EventLogger

    from gp_provisioners_core import launch_events

    received: list[str] = []

    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        received.append(json.dumps(dict(schema_id=schema_id, **data)))

    logger = EventLogger()
    launch_events.use_event_logger(logger)
    logger.add_listener(schema_id=launch_events.SCHEMA_ID, listener=listener)


def warm_process(kernel_name: str) -> float:
    """Do the once-per-process work a long-running server has already done; return seconds.

    Imports (the kernelspec lookup imports IPython to find its kernel folder; the provisioner
    entry point imports the provisioner's package), entry-point discovery and network interface
    discovery.  It uses a throwaway manager: the timed launch still reads its kernelspec.
    """
    started = time.perf_counter()
    import jupyter_client.asynchronous.client  # noqa: F401 - km.client() imports it
    from jupyter_client import localinterfaces
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import KernelProvisionerFactory

    spec = AsyncKernelManager(kernel_name=kernel_name).kernel_spec
    factory = KernelProvisionerFactory.instance()
    if factory.is_provisioner_available(spec):
        name = factory._get_provisioner_config(spec).get("provisioner_name")
        factory.provisioners[name].load()
    localinterfaces.public_ips()
    return time.perf_counter() - started


async def wait_for_kernel_info(km: Any, kc: Any, timeout: float) -> None:
    """Send one kernel_info_request and wait for a kernel_info_reply (no iopub flush)."""
    deadline = time.monotonic() + timeout
    kc.kernel_info()  # the DEALER socket queues it until the kernel's shell port answers
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no kernel_info_reply within {timeout:g}s")
        try:
            msg = await kc.get_shell_msg(timeout=min(1.0, remaining))
        except queue.Empty:
            if not await km.is_alive():
                raise RuntimeError("the kernel died before replying to kernel_info") from None
            continue
        if msg["msg_type"] == "kernel_info_reply":
            return


def processes_naming(kernel_id: str) -> list[int]:
    """Pids (not this one) whose command line names ``kernel_id``: launchers, kernels, helpers.

    Every variant puts the kernel id on the command line (``--kernel-id`` or the connection
    file name), so this also finds processes the provisioner never knew of.
    """
    found = []
    needle = kernel_id.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if needle in cmdline.read() and alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"ok": False, "python": sys.executable}
    result["warm_s"] = None if args.cold else warm_process(args.kernel_name)
    result["server_start_s"] = prestart(args.prestart)

    from jupyter_client.manager import AsyncKernelManager

    if args.warm_ssh:
        result["ssh_warm_up_s"] = await warm_ssh()
    if args.prior_launch:
        started = time.perf_counter()
        prior = AsyncKernelManager(kernel_name=args.kernel_name)
        await prior.start_kernel()
        await prior.shutdown_kernel()
        result["prior_launch_s"] = time.perf_counter() - started

    km = AsyncKernelManager(kernel_name=args.kernel_name)
    ticker = Ticker()
    ticker.start()
    await asyncio.sleep(0.05)  # let the ticker settle; these samples are dropped
    ticker.take()
    kc = None
    try:
        started = time.perf_counter()
        await km.start_kernel()
        result["start_kernel_s"] = time.perf_counter() - started
        kc = km.client()
        kc.start_channels()
        await wait_for_kernel_info(km, kc, args.timeout)
        result["ready_s"] = time.perf_counter() - started
        launch = ticker.take()
        result["launch_lag_max_ms"] = max(launch, default=0.0)
        result["launch_ticks"] = len(launch)
        result["kernel_id"] = km.kernel_id

        await asyncio.sleep(args.idle)
        idle = ticker.take()
        result["idle_lag_median_ms"] = _median(idle)
        result["idle_lag_max_ms"] = max(idle, default=0.0)
        result["idle_ticks"] = len(idle)

        started = time.perf_counter()
        await km.shutdown_kernel(now=args.warmup)
        result["shutdown_s"] = time.perf_counter() - started
        result["shutdown_lag_max_ms"] = max(ticker.take(), default=0.0)
        result["ok"] = True
    except BaseException as err:
        result["error"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
        if km.has_kernel:
            try:
                await km.shutdown_kernel(now=True)
            except BaseException:
                traceback.print_exc()
    finally:
        await ticker.stop()
        if kc is not None:
            kc.stop_channels()
    # Leak check (untimed): nothing naming the kernel may outlive shutdown by 2 s.
    result["leftover_pids"] = []
    if km.kernel_id:
        result["kernel_id"] = km.kernel_id
        deadline = time.monotonic() + 2.0
        while processes_naming(km.kernel_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        result["leftover_pids"] = processes_naming(km.kernel_id)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-name", required=True)
    parser.add_argument(
        "--prestart",
        default="none",
        choices=("none", "gp_provisioners_core", "gateway_provisioners"),
    )
    parser.add_argument(
        "--cold", action="store_true", help="skip the per-process warm-up (time a first launch)"
    )
    parser.add_argument(
        "--prior-launch",
        action="store_true",
        help="start and shut down one kernel (untimed) before the timed one, in this process",
    )
    parser.add_argument(
        "--warm-ssh",
        action="store_true",
        help="run gp-distributed's ssh warm-up (untimed) before the timed launch",
    )
    parser.add_argument("--idle", type=float, default=2.0, help="idle seconds after ready")
    parser.add_argument(
        "--warmup", action="store_true", help="an untimed warm-up: no idle, immediate shutdown"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for ready")
    parser.add_argument("--debug", action="store_true", help="DEBUG logging on stderr")
    args = parser.parse_args()
    if args.debug:
        import logging

        logging.basicConfig(
            level=logging.DEBUG, format="%(relativeCreated)8.0f %(name)s %(levelname)s %(message)s"
        )
        logging.getLogger("traitlets").setLevel(logging.DEBUG)
    if args.warmup:
        args.idle = 0.0
    try:
        result = asyncio.run(run(args))
    except Exception as err:  # before the launch (warm-up, pre-start): still answer in JSON
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
