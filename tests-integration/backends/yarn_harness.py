"""Bring-up for the YARN suites: the RM emulator (one RM or an HA pair), a SPARK_HOME whose
``bin/spark-submit`` is the stand-in, yarn-site.xml, kernelspecs installed with
``jupyter-yarn-spec``, the conformance backend, and the RM-requests-per-interval figure.

YARN is tested against the emulator in ``yarn_emulator.py``, not a real ResourceManager.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script (nox -s bench): make ``backends`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.yarn_emulator import (
    FINAL_STATES,
    ResourceManagerPair,
    ResourceManagerServer,
    YarnCluster,
    group_members,
    write_yarn_site,
)
from gp_provisioners_core.testing.conformance import ConformanceBackend

STAND_IN = Path(__file__).with_name("yarn_spark_submit.py")


def make_spark_home(root: Path, jvm_spark_home: Path | None = None) -> Path:
    """A SPARK_HOME whose ``bin/spark-submit`` runs the stand-in with this Python; with
    ``jvm_spark_home`` (a real Spark), JVM applications (Scala kernels) can run too."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "spark-submit"
    jvm = f'GP_STAND_IN_JVM_SPARK_HOME="{jvm_spark_home}" ' if jvm_spark_home else ""
    script.write_text(f'#!/bin/sh\n{jvm}exec "{sys.executable}" "{STAND_IN}" "$@"\n')
    script.chmod(0o755)
    (root / "conf").mkdir(exist_ok=True)
    (root / "conf" / "spark-defaults.conf").write_text("spark.yarn.queue default\n")
    return root


@dataclass
class YarnBackendSetup:
    """One emulated RM setup: its cluster, its servers, and the files clients read."""

    cluster: YarnCluster
    servers: tuple[ResourceManagerServer, ...]
    pair: ResourceManagerPair | None
    conf_dir: Path
    spark_home: Path
    jupyter_root: Path
    kernels: dict[str, str] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[str]:
        return [server.url for server in self.servers]

    def env(self) -> dict[str, str]:
        """What the server process (and a re-attaching one) needs in its environment."""
        return {
            "HADOOP_CONF_DIR": str(self.conf_dir),
            "GP_RESPONSE_IP": "127.0.0.1",
            "GP_YARN_STATUS_INTERVAL": "1",
        }

    def install(self, kernel_name: str, *flags: str) -> str:
        """Install a yarn_spark_python kernelspec under this setup's JUPYTER_PATH."""
        from gp_yarn.cli import main

        common = ["--prefix", str(self.jupyter_root), "--kernel-name", kernel_name]
        common += ["--spark-home", str(self.spark_home), "--spark-init-mode", "none"]
        assert main(["install", "--replace", *common, *flags]) == 0
        self.kernels[kernel_name] = str(self.jupyter_root / "share/jupyter/kernels" / kernel_name)
        return kernel_name

    def leftovers(self, app_id: str = "", kernel_id: str = "") -> list[str]:
        """Live applications (by id, or every one named ``kernel_id``) and master processes."""
        apps = [self.cluster.app(app_id)] if app_id else self.cluster.apps_named(kernel_id)
        left = []
        for app in apps:
            if app.state not in FINAL_STATES:
                left.append(f"{app.id} is {app.state}")
            members = group_members(app.pgid) if app.pgid else []
            if members:
                left.append(f"{app.id}: master process group {app.pgid} still has {members}")
        return left

    async def wait_all_stopped(self, timeout: float = 10) -> list[str]:
        """Wait until every application is final and no master process runs; what is left."""
        deadline = time.monotonic() + timeout
        while True:
            left = [
                f"{a.id} is {a.state}" for a in self.cluster.apps() if a.state not in FINAL_STATES
            ]
            left += [
                f"{app}: pids {pids}" for app, pids in self.cluster.live_process_groups().items()
            ]
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.1)

    async def wait_no_leftovers(
        self, app_id: str = "", kernel_id: str = "", timeout: float = 10
    ) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = self.leftovers(app_id, kernel_id)
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.1)


@contextmanager
def yarn_backend(root: Path, *, ha: bool) -> Iterator[YarnBackendSetup]:
    """Start the emulator (one RM, or an HA pair), write yarn-site.xml and a SPARK_HOME.

    At the end every application master still running is killed, and the suite fails if
    there was any (tests must leave nothing behind).
    """
    cluster = YarnCluster(root / "cluster")
    pair: ResourceManagerPair | None = None
    if ha:
        pair = ResourceManagerPair(cluster).start()
        servers: tuple[ResourceManagerServer, ...] = pair.servers
    else:
        servers = (ResourceManagerServer(cluster, "rm1").start(),)
    setup = YarnBackendSetup(
        cluster=cluster,
        servers=servers,
        pair=pair,
        conf_dir=root / "hadoop-conf",
        spark_home=make_spark_home(root / "spark"),
        jupyter_root=root / "jupyter",
    )
    write_yarn_site(setup.conf_dir, servers)
    try:
        yield setup
    finally:
        left = cluster.shutdown()
        for server in servers:
            server.stop()
        assert not left, f"application masters were left running: {left}"


class YarnConformanceBackend(ConformanceBackend):
    """The conformance suite's view of the emulated YARN."""

    setup: YarnBackendSetup

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        """Kill the application master's process group (a crash the RM then reports)."""
        self.setup.cluster.kill_process_group(provisioner_info["application_id"])

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        return await self.setup.wait_no_leftovers(provisioner_info["application_id"], timeout=5)


def conformance_backend(setup: YarnBackendSetup, kernel_name: str) -> YarnConformanceBackend:
    backend = YarnConformanceBackend(kernel_name=kernel_name, env=setup.env(), launch_timeout=60)
    backend.setup = setup
    return backend


# -- RM requests per poll interval (for tests and `nox -s bench`) ---------------------------


async def _requests_per_interval(
    setup: YarnBackendSetup, kernels: int, interval: float, intervals: int
) -> dict[str, Any]:
    """Put ``kernels`` applications on the RM, attach one YarnProvisioner to each (as after a
    re-attach), poll them all every 20 ms for ``intervals`` watcher intervals, and count the
    RM requests of that window."""
    from jupyter_client.kernelspec import KernelSpec

    from gp_yarn.provisioner import YarnProvisioner

    cluster = setup.cluster
    provisioners = []
    for _ in range(kernels):
        kernel_id = str(uuid.uuid4())
        app_id = cluster.new_application()
        body = {
            "application-id": app_id,
            "application-name": kernel_id,
            "application-type": "SPARK",
            "am-container-spec": {"commands": {"command": "exec sleep 300"}},
        }
        assert cluster.submit(body, "bench")[0] == 202
        spec = KernelSpec(argv=["run.sh"], display_name="bench", language="python")
        provisioner = YarnProvisioner(
            kernel_id=kernel_id,
            kernel_spec=spec,
            parent=None,
            yarn_endpoint=setup.endpoints[0],
            yarn_status_interval=interval,
        )
        info = {
            "kernel_id": kernel_id,
            "connection_info": {},
            "application_id": app_id,
            "launch_started_ms": int(time.time() * 1000) - 1000,
        }
        await provisioner.load_provisioner_info(info)
        provisioners.append(provisioner)
    for app in cluster.apps():
        cluster.wait_for_state(app.id, ("RUNNING", *FINAL_STATES))
    watcher = provisioners[0].app_watch().watcher
    await asyncio.to_thread(watcher.refresh, 10.0)
    started, queries_before = time.monotonic(), watcher.queries
    polls = 0
    while time.monotonic() - started < interval * intervals:
        for provisioner in provisioners:
            assert await provisioner.poll() is None
            polls += 1
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    requests = cluster.requests.count(since=started)
    kinds = sorted(cluster.requests.by_path(since=started))
    queries = watcher.queries - queries_before
    for provisioner in provisioners:
        await provisioner.kill()
        await provisioner.cleanup()
    for app in cluster.apps():
        cluster.wait_for_state(app.id, FINAL_STATES)
    return {
        "kernels": kernels,
        "seconds": round(elapsed, 2),
        "polls": polls,
        "rm_requests": requests,
        "request_kinds": kinds,
        "watcher_queries": queries,
        "rm_requests_per_interval": round(requests * interval / elapsed, 2),
    }


def measure_rm_requests_per_interval(
    kernel_counts: tuple[int, ...] = (2, 20), interval: float = 0.5, intervals: int = 4
) -> list[dict[str, Any]]:
    """RM requests per status interval with each number of kernels (one emulated RM per
    count).  Call it from ``nox -s bench``; it prints nothing itself."""
    results = []
    for count in kernel_counts:
        with tempfile.TemporaryDirectory(prefix="gp-yarn-bench-") as tmp:
            with yarn_backend(Path(tmp), ha=False) as setup:
                results.append(
                    asyncio.run(_requests_per_interval(setup, count, interval, intervals))
                )
    return results


def main() -> int:
    os.environ.setdefault("GP_RESPONSE_IP", "127.0.0.1")
    print("gp-yarn: ResourceManager requests per status interval (emulated RM, not real YARN)")
    for row in measure_rm_requests_per_interval():
        print(
            f"  {row['kernels']:>3} kernels: {row['rm_requests_per_interval']:.2f} requests per "
            f"interval ({row['rm_requests']} requests, all {', '.join(row['request_kinds'])}; "
            f"{row['polls']} poll() calls in {row['seconds']}s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
