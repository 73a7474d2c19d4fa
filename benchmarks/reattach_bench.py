"""Re-attach benchmark (gp-server): how long a restarted Jupyter Server takes to find its kernels.

Usage: ``python benchmarks/reattach_bench.py [--kernels 50] [--concurrency 8]``

Starts a Jupyter Server with ``gp_server.PersistentKernelManager`` (SQLite store), starts N
local kernels (the distributed provisioner on this host) through its REST API, kills the server
with SIGKILL, starts it again on the same store and reports:

- the manager's own figure: from opening the store to the last kernel re-attached (its log line
  ``gp_server: N recorded kernel(s) in S s``);
- from the new server's process start until ``GET /api/kernels`` lists all N;
- one execute on the last kernel through the new server's websocket.

Everything runs on loopback in a temporary Jupyter environment; the kernels are shut down at
the end.  Prints figures; never fails on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests-integration"))

from jupyter_server_helpers import (  # noqa: E402 - after the path setup
    KernelSocket,
    Server,
    start_server,
    stop_server,
)

from gp_distributed.cli import main as install_spec  # noqa: E402
from gp_provisioners_core.testing import isolated_jupyter_paths  # noqa: E402

SPEC = "bench_reattach"
REPORT = re.compile(r"gp_server: (\d+) recorded kernel\(s\) in ([0-9.]+)s: (.*)")


def server(root: Path, store: Path, log: Path, concurrency: int) -> Server:
    return start_server(
        root,
        log,
        "--ServerApp.kernel_manager_class=gp_server.PersistentKernelManager",
        f"--PersistentKernelManager.store_url=sqlite:///{store}",
        f"--PersistentKernelManager.reattach_concurrency={concurrency}",
        "--PersistentKernelManager.orphan_cleanup=off",
        env={"GP_SERVER_STORE_KEY_FILE": str(store.parent / "store.key")},
    )


async def bench(kernels: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gp-reattach-bench-") as tmp:
        work = Path(tmp)
        with isolated_jupyter_paths(work / "jupyter") as prefix:
            install_spec(["install", "--prefix", str(prefix), "--kernel-name", SPEC])
            store = work / "kernels.sqlite"
            first = server(work / "jupyter", store, work / "first.log", concurrency)
            ids: list[str] = []
            try:
                started = time.monotonic()
                for _ in range(kernels):
                    code, model = await first.call("POST", "/api/kernels", {"name": SPEC})
                    if code != 201:
                        raise RuntimeError(f"kernel start answered {code}: {model}")
                    ids.append(model["id"])
                print(f"started {kernels} local kernels in {time.monotonic() - started:.1f}s")
            finally:
                first.process.kill()
                first.process.wait()
            launched = time.monotonic()
            second = server(work / "jupyter", store, work / "second.log", concurrency)
            listening = time.monotonic() - launched
            try:
                while True:
                    code, listed = await second.call("GET", "/api/kernels")
                    if code == 200 and {k["id"] for k in listed} >= set(ids):
                        break
                    await asyncio.sleep(0.05)
                listed_after = time.monotonic() - launched
                found = REPORT.search(second.log_text())
                while found is None:
                    await asyncio.sleep(0.05)
                    found = REPORT.search(second.log_text())
                channel = await KernelSocket.open(second, ids[-1])
                try:
                    result = await channel.execute("print(6 * 7)")
                finally:
                    channel.close()
                print(
                    f"re-attach of {found.group(1)} kernels (concurrency {concurrency}): "
                    f"{float(found.group(2)):.2f}s in the manager ({found.group(3)}); "
                    f"server listening {listening:.2f}s after its process started, all "
                    f"kernels listed at {listed_after:.2f}s; "
                    f"first execute on a re-attached kernel: "
                    f"{result['finished'] - result['started']:.3f}s"
                )
            finally:
                for kernel_id in ids:
                    await second.call("DELETE", f"/api/kernels/{kernel_id}")
                stop_server(second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(bench(args.kernels, args.concurrency))


if __name__ == "__main__":
    main()
