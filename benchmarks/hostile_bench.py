"""Hostile-connection benchmark: what 1,000 hostile connections cost, before and after.

Usage: ``python benchmarks/hostile_bench.py [--connections N] [--baseline REF] [--launches N]``

For the code of this checkout ("after") and of a baseline commit ("before", default b225c49,
extracted with ``git archive`` into a temporary folder), each in a fresh Python process whose
``PYTHONPATH`` puts that tree's sources first, it prints:

* **response port**: memory growth (tracemalloc, Python allocations of the whole process) and
  bytes logged per 1,000 hostile connections to the response server, with one launch pending,
  measured over a second flood after an identical first one (so one-off allocations and the
  first log line of each reason are not counted) and including the summary lines written at
  the end of the rejection-log interval (set to 2 s).
  The connections cycle through random bytes, a connection closed without data, an envelope
  whose kernel id is 40,000 characters with a newline in it (a different one each time), a
  sealed envelope for an unknown (random) kernel id, and a sealed envelope for the pending
  kernel with a wrong secret.
* **comm port**: the launcher's resident-memory growth and the bytes it wrote to its log
  (stderr, which the server relays for local and ssh kernels) per 1,000 hostile connections to
  its comm port: random bytes, unsigned requests, a bad signature, deeply nested JSON.
* **launch under flood**: median time of a gp-distributed launch on localhost (start to
  ``kernel_info_reply``) without and with a flood of hostile connections to the response port
  running the whole time (``--flood`` concurrent clients), and the ratio (target: <= 2x).

Figures are printed, never judged by the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOG_INTERVAL = 2.0  # rejection_log_interval of the measured response manager
KERNEL_USER = "bench"


# ---------------------------------------------------------------------------------------------
# The worker: runs with one tree's sources first on sys.path
# ---------------------------------------------------------------------------------------------


class ByteCounter(logging.Handler):
    """Counts the bytes and records a formatted log would have written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("[%(levelname)s %(asctime)s %(name)s] %(message)s"))
        self.bytes = 0
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.bytes += len(self.format(record).encode("utf-8", "replace")) + 1
        self.records += 1


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def hostile_response_payloads(public_key: str, pending: str, count: int) -> list[bytes | None]:
    from gp_provisioners_core.protocol import seal_v2

    ports = dict(shell_port=1, iopub_port=2, stdin_port=3, hb_port=4, control_port=5)
    long_id = "k\nWARNING forged line " + "x" * 40_000  # the message stays under 64 KiB
    payloads: list[bytes | None] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            payloads.append(os.urandom(256).replace(b"\n", b"-"))
        elif kind == 1:
            payloads.append(None)  # connect, close without data
        elif kind == 2:  # a different long id each time
            kernel_id = f"{uuid.uuid4()}{long_id}"
            forged = {"version": 2, "kernel_id": kernel_id, "key": "", "nonce": "", "conn_info": ""}
            payloads.append(base64.b64encode(json.dumps(forged).encode()))
        elif kind == 3:
            kernel_id = str(uuid.uuid4())
            info = {**ports, "ip": "127.0.0.1", "key": "k", "kernel_id": kernel_id, "pid": 7}
            payloads.append(seal_v2(public_key, kernel_id, "guess", info))
        else:
            info = {**ports, "ip": "127.0.0.1", "key": "k", "kernel_id": pending, "pid": 7}
            payloads.append(seal_v2(public_key, pending, "wrong-secret", info))
    return payloads


async def fire(address: tuple[str, int], payloads: list[bytes | None], concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(payload: bytes | None) -> None:
        async with semaphore:
            try:
                reader, writer = await asyncio.open_connection(*address)
                if payload is not None:
                    writer.write(payload + b"\n")
                    await writer.drain()
                    await asyncio.wait_for(reader.read(4096), timeout=10)
                writer.close()
            except (OSError, asyncio.TimeoutError):
                pass

    await asyncio.gather(*(one(p) for p in payloads))


def worker_response(connections: int) -> dict[str, Any]:
    from gp_provisioners_core.response_manager import ResponseManager

    logger = logging.getLogger("bench-response")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    counter = ByteCounter()
    logger.addHandler(counter)
    rm = ResponseManager(response_ip="127.0.0.1", response_port=0, key_size=2048, log=logger)
    rm.read_timeout = 2.0
    rm.rejection_log_interval = LOG_INTERVAL  # the baseline has no such setting: ignored there
    rm.start()
    pending = str(uuid.uuid4())
    rm.register_event(pending, "the-secret")
    host, port = rm.response_address.rsplit(":", 1)
    address = (host, int(port))
    payloads = hostile_response_payloads(rm.public_key, pending, connections)

    def settle(expected: int) -> None:
        """Wait until every connection was judged (RSA work queues up behind the flood) and
        the summary lines of the rejection-log interval are out."""
        deadline = time.monotonic() + 30
        while rm.rejected_count < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(LOG_INTERVAL + 1.5)
        gc.collect()

    # Warm-up: the same kind of flood once, not counted.
    asyncio.run(fire(address, hostile_response_payloads(rm.public_key, pending, connections), 20))
    settle(connections)
    tracemalloc.start()
    base_traced = tracemalloc.get_traced_memory()[0]
    base_rss, base_bytes, base_records = rss_kib(), counter.bytes, counter.records
    started = time.monotonic()
    asyncio.run(fire(address, payloads, 20))
    elapsed = time.monotonic() - started
    settle(2 * connections)
    traced = tracemalloc.get_traced_memory()[0] - base_traced
    result = {
        "connections": connections,
        "seconds": elapsed,
        "traced_kib": traced / 1024,
        "rss_kib": rss_kib() - base_rss,
        "log_bytes": counter.bytes - base_bytes,
        "log_records": counter.records - base_records,
    }
    tracemalloc.stop()
    rm.stop_response_manager()
    return result


def hostile_comm_payloads(kernel_id: str, count: int) -> list[bytes | None]:
    payloads: list[bytes | None] = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            payloads.append(os.urandom(256).replace(b"\n", b"-"))
        elif kind == 1:
            payloads.append(b'{"signum": 0}')
        elif kind == 2:
            bad = {
                "version": 2,
                "kernel_id": kernel_id,
                "request": {"signum": 0},
                "ts": int(time.time() * 1000),
                "nonce": uuid.uuid4().hex,
                "signature": "0" * 64,
            }
            payloads.append(json.dumps(bad).encode())
        else:
            payloads.append(b"[" * 20_000)
    return payloads


def worker_comm(connections: int) -> dict[str, Any]:
    from gp_provisioners_core.launchers import python_launcher
    from gp_provisioners_core.response_manager import ResponseManager

    rm = ResponseManager(response_ip="127.0.0.1", response_port=0, key_size=2048)
    rm.start()
    kernel_id = str(uuid.uuid4())
    rm.register_event(kernel_id, "comm-secret")
    workdir = Path(tempfile.mkdtemp(prefix="gp-hostile-comm-"))
    stderr_path = workdir / "launcher.log"
    env = dict(os.environ, GP_LAUNCH_SECRET="comm-secret", TMPDIR=str(workdir))
    argv = [
        sys.executable,
        str(python_launcher()),
        "--kernel-id",
        kernel_id,
        "--response-address",
        rm.response_address,
        "--public-key",
        rm.public_key,
        "--ip",
        "127.0.0.1",
    ]
    with open(stderr_path, "wb") as stderr:
        launcher = subprocess.Popen(argv, env=env, stdout=stderr, stderr=stderr)
    try:

        async def info() -> dict[str, Any]:
            return await asyncio.wait_for(rm.get_connection_info(kernel_id), timeout=60)

        conn = asyncio.run(info())
        address = ("127.0.0.1", int(conn["comm_port"]))
        asyncio.run(fire(address, hostile_comm_payloads(kernel_id, 100), 4))
        time.sleep(1.0)
        base_rss, base_bytes = rss_kib(launcher.pid), stderr_path.stat().st_size
        started = time.monotonic()
        asyncio.run(fire(address, hostile_comm_payloads(kernel_id, connections), 4))
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        return {
            "connections": connections,
            "seconds": elapsed,
            "rss_kib": rss_kib(launcher.pid) - base_rss,
            "log_bytes": stderr_path.stat().st_size - base_bytes,
            "connection_file_left": any(workdir.glob("gp-kernel-*/kernel-*.json")),
        }
    finally:
        for pid in _children(launcher.pid):
            _kill(pid)
        _kill(launcher.pid)
        launcher.wait(timeout=10)
        rm.stop_response_manager()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except OSError:
        pass


async def _flood(address: tuple[str, int], clients: int, stop: asyncio.Event) -> int:
    sent = 0

    async def client(n: int) -> None:
        nonlocal sent
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(*address)
                if n % 2:
                    writer.write(os.urandom(200).replace(b"\n", b"-") + b"\n")
                    await writer.drain()
                    await asyncio.wait_for(reader.read(4096), timeout=5)
                else:  # idle: hold the connection a while, then close
                    await asyncio.sleep(0.2)
                writer.close()
                sent += 1
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.01)

    tasks = [asyncio.ensure_future(client(n)) for n in range(clients)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return sent


def worker_launch(launches: int, flood_clients: int) -> dict[str, Any]:
    from jupyter_client.manager import AsyncKernelManager

    from gp_distributed.cli import main as install_spec
    from gp_provisioners_core import ResponseManager
    from gp_provisioners_core.testing import isolated_jupyter_paths

    logging.getLogger().addHandler(logging.NullHandler())
    tmp = Path(tempfile.mkdtemp(prefix="gp-hostile-launch-"))
    quiet: list[float] = []
    flooded: list[float] = []
    flood_connections = 0

    async def one_launch() -> float:
        km = AsyncKernelManager(kernel_name="gp_bench_hostile")
        env = dict(os.environ, KERNEL_USERNAME=KERNEL_USER)
        started = time.monotonic()
        await km.start_kernel(env=env)
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        took = time.monotonic() - started
        client.stop_channels()
        await km.shutdown_kernel(now=True)
        return took

    async def run() -> None:
        nonlocal flood_connections
        manager = ResponseManager.instance()
        manager.start()
        host, port = manager.response_address.rsplit(":", 1)
        await one_launch()  # warm-up, untimed
        order = ["quiet", "flood"] * launches
        for kind in order:
            if kind == "quiet":
                quiet.append(await one_launch())
                continue
            stop = asyncio.Event()
            flood = asyncio.ensure_future(_flood((host, int(port)), flood_clients, stop))
            await asyncio.sleep(0.5)
            flooded.append(await one_launch())
            stop.set()
            flood_connections += await flood

    with isolated_jupyter_paths(tmp) as prefix:
        install_spec(["install", "--kernel-name", "gp_bench_hostile", "--prefix", str(prefix)])
        asyncio.run(run())
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return {
        "quiet_s": statistics.median(quiet),
        "flood_s": statistics.median(flooded),
        "flood_connections": flood_connections,
        "launches": launches,
    }


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------


def baseline_tree(ref: str, into: Path) -> Path:
    tree = into / f"tree-{ref}"
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def run_worker(tree: Path, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    paths = [str(tree / "packages" / p / "src") for p in ("gp-provisioners-core", "gp-distributed")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GP_", "KERNEL_", "JUPYTER"))}
    env.update(PYTHONPATH=os.pathsep.join(paths), GP_RESPONSE_IP="127.0.0.1", GP_RESPONSE_PORT="0")
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", mode]
    command += ["--connections", str(args.connections), "--launches", str(args.launches)]
    command += ["--flood", str(args.flood)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-3:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def per_thousand(value: float, connections: int) -> float:
    return value * 1000 / max(1, connections)


def report(results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    print(f"\nHostile connections (per 1,000; {args.connections} sent per figure)")
    header = f"{'':30}{'before (' + args.baseline + ')':>22}{'after':>22}"
    print(header)

    def row(label: str, mode: str, key: str, unit: str) -> None:
        cells = []
        for variant in ("before", "after"):
            found = results[variant][mode]
            if "error" in found:
                cells.append("error")
                continue
            cells.append(f"{per_thousand(found[key], found['connections']):,.0f} {unit}")
        print(f"{label:30}{cells[0]:>22}{cells[1]:>22}")

    row("response port: memory", "response", "traced_kib", "KiB")
    row("response port: RSS", "response", "rss_kib", "KiB")
    row("response port: log", "response", "log_bytes", "bytes")
    row("response port: log records", "response", "log_records", "")
    row("comm port: launcher RSS", "comm", "rss_kib", "KiB")
    row("comm port: launcher log", "comm", "log_bytes", "bytes")
    for variant in ("before", "after"):
        comm = results[variant]["comm"]
        if "connection_file_left" in comm:
            print(
                f"{'':30}{variant}: connection file with key left in TMPDIR while running: "
                f"{comm['connection_file_left']}"
            )
    print(
        f"\nLaunch under a response-port flood ({args.flood} concurrent hostile clients), "
        f"median of {args.launches}"
    )
    for variant in ("before", "after"):
        found = results[variant].get("launch", {})
        if "error" in found or not found:
            print(f"  {variant:7} error: {found.get('error')}")
            continue
        ratio = found["flood_s"] / found["quiet_s"]
        verdict = "met" if ratio <= 2 else "NOT met"
        print(
            f"  {variant:7} quiet {found['quiet_s']:.3f}s, flooded {found['flood_s']:.3f}s "
            f"({found['flood_connections']} hostile connections): {ratio:.2f}x "
            f"(target <= 2x: {verdict})"
        )
    for variant in ("before", "after"):
        for mode, found in results[variant].items():
            if "error" in found:
                print(f"  {variant} {mode} failed: {found['error']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--baseline", default="b225c49", help="git ref measured as 'before'")
    parser.add_argument("--launches", type=int, default=3, help="timed launches per condition")
    parser.add_argument("--flood", type=int, default=50, help="concurrent flooding clients")
    parser.add_argument("--only", default="response,comm,launch")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        random.seed(0)
        if args.worker == "response":
            result = worker_response(args.connections)
        elif args.worker == "comm":
            result = worker_comm(args.connections)
        else:
            result = worker_launch(args.launches, args.flood)
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="gp-hostile-bench-") as tmp:
        trees = {"before": baseline_tree(args.baseline, Path(tmp)), "after": ROOT}
        modes = [m for m in args.only.split(",") if m]
        results: dict[str, dict[str, dict[str, Any]]] = {"before": {}, "after": {}}
        for mode in modes:
            for variant, tree in trees.items():
                print(f"measuring {mode} ({variant})...", flush=True)
                results[variant][mode] = run_worker(tree, mode, args)
        for variant in results:
            for mode in ("response", "comm", "launch"):
                results[variant].setdefault(mode, {"error": ["not run"]})
        report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
