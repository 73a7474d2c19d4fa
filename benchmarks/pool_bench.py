"""Warm kernel pools: time from ``start_kernel()`` to the first ``kernel_info_reply``, pooled and
cold, per backend, in one run.

Usage: ``python benchmarks/pool_bench.py [--backends local,ssh] [--runs N] [--pool-size N]``

Each backend row runs in its own worker process (``--worker``), with the backend's settings in
its environment and a private Jupyter folder.  A worker times ``--runs`` cold starts (jupyter
_client's ``AsyncMultiKernelManager``, no pool), then fills a pool of ``--pool-size`` kernels
(``PooledMultiKernelManager``), waits until it is full and times ``--runs`` claims, waiting for
the refill between claims.  "Ready" is the first ``kernel_info_reply`` on a fresh client, as a
notebook front end sees it.  Shutdown times of the cold kernels are printed too.  Figures are
printed, never judged by the exit code.  Backends that cannot run here say why.

Rows: ``local`` (jupyter_client's LocalProvisioner), ``ssh`` (gp-distributed over ssh to a real
sshd on 127.0.0.2), ``docker``, ``k8s`` and ``slurm`` (the backends of tests-integration, each
brought up for its row and stopped after it).  A row is a ``setup_*`` function in ``SETUPS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# tests-integration: the backends' bring-up modules (``backends.sshd``, ``backends.slurm``, ...).
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests-integration"))

import ssh_hosts  # sibling modules
from launch_bench import Context, install_ssh_spec, ssh_server_env

WORKER_TIMEOUT = 900.0
KERNEL_USER = "bench"


@dataclass
class Row:
    key: str
    label: str
    kernel_name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    drop_env: tuple[str, ...] = ()
    unavailable: str = ""
    cleanup: Callable[[], None] | None = None


def write_spec(data_dir: Path, name: str, spec: dict[str, Any]) -> None:
    spec_dir = data_dir / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")


def setup_local(ctx: Context) -> Row:
    data_dir = ctx.data_dir("local")
    write_spec(
        data_dir,
        "pool_local",
        {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python (LocalProvisioner)",
            "language": "python",
            "metadata": {"kernel_provisioner": {"provisioner_name": "local-provisioner"}},
        },
    )
    return Row("local", "LocalProvisioner", "pool_local", {"JUPYTER_DATA_DIR": str(data_dir)})


def setup_ssh(ctx: Context) -> Row:
    row = Row("ssh", f"gp-distributed (ssh {ssh_hosts.ADDRESS})", drop_env=("SSH_AUTH_SOCK",))
    host = ctx.ssh_host()
    if host.unavailable:
        row.unavailable = f"no sshd: {host.unavailable}"
        return row
    data_dir = ctx.data_dir("ssh")
    row.kernel_name = "pool_ssh"
    row.env = ssh_server_env(host, data_dir)
    row.unavailable = install_ssh_spec(ctx, host, data_dir, row.kernel_name)
    return row


def setup_docker(ctx: Context) -> Row:
    """gp-docker's DockerProvisioner on the private dockerd of tests-integration (host network,
    the kernel image built offline or loaded from the cache)."""
    row = Row("docker", "gp-docker (container)")
    try:
        from backends import dockerd

        reason = dockerd.dockerd_available()
        if reason:
            row.unavailable = reason
            return row
        backend = dockerd.shared_docker_backend()
    except Exception as err:
        row.unavailable = f"no private dockerd: {err}"
        return row
    row.cleanup = dockerd.stop_shared_docker_backend
    root = ctx.root / "docker"
    dockerd.DockerKernelspecs(backend, root).install("pool_docker")
    row.kernel_name = "pool_docker"
    row.env = {
        "JUPYTER_PATH": str(root / "share" / "jupyter"),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "DOCKER_HOST": backend.base_url,
    }
    return row


def setup_k8s(ctx: Context) -> Row:
    """gp-k8s on the loopback control plane of tests-integration (kube-apiserver, scheduler,
    the node agent running each pod's launcher as a local process)."""
    row = Row("k8s", "gp-k8s (pod)")
    try:
        from backends import k8s_cluster

        cluster = k8s_cluster.shared_cluster()
        k8s_cluster.ensure_namespace(cluster.api_client(), "gp-pool-bench")
    except Exception as err:
        row.unavailable = f"no Kubernetes control plane: {err}"
        return row
    row.cleanup = cluster.stop
    prefix = ctx.root / "k8s"
    row.kernel_name = k8s_cluster.install_kernelspec(
        prefix, "pool_k8s", "--namespace", "gp-pool-bench", "--launch-timeout", "300"
    )
    row.env = {
        "JUPYTER_PATH": str(prefix / "share" / "jupyter"),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "GP_KUBECONFIG": str(cluster.admin_kubeconfig),
    }
    return row


def setup_slurm(ctx: Context) -> Row:
    """gp-slurm (sbatch/squeue) on the single-node Slurm of tests-integration."""
    row = Row("slurm", "gp-slurm (batch job)")
    try:
        from backends import slurm, slurm_kernels

        reason = slurm.slurm_available()
        if reason:
            row.unavailable = reason
            return row
        cluster = slurm.SlurmCluster().start()
    except Exception as err:
        row.unavailable = f"no Slurm cluster: {err}"
        return row
    row.cleanup = cluster.stop
    root = ctx.root / "slurm"
    root.mkdir(parents=True, exist_ok=True)
    specs = slurm_kernels.install_kernelspecs(cluster, root)
    row.kernel_name = specs.cli
    row.env = {
        "JUPYTER_PATH": str(root / "share" / "jupyter"),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
    }
    return row


SETUPS: dict[str, Callable[[Context], Row]] = {
    "local": setup_local,
    "ssh": setup_ssh,
    "docker": setup_docker,
    "k8s": setup_k8s,
    "slurm": setup_slurm,
}


# -- the worker (one process per row) ---------------------------------------------------------


async def _first_kernel_info(manager: Any, kernel_id: str) -> None:
    client = manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        msg_id = client.kernel_info()
        while True:
            reply = await client.get_shell_msg(timeout=120)
            if reply["parent_header"].get("msg_id") == msg_id:
                return
    finally:
        client.stop_channels()


async def _timed_start(
    manager: Any, kernel_name: str, env: dict[str, str], returned: list[float] | None = None
) -> tuple[str, float]:
    """Start a kernel; seconds to its first kernel_info_reply (``returned`` gets the seconds
    ``start_kernel`` alone took)."""
    started = time.perf_counter()
    kernel_id = await manager.start_kernel(kernel_name=kernel_name, env=env)
    if returned is not None:
        returned.append(time.perf_counter() - started)
    await _first_kernel_info(manager, kernel_id)
    return kernel_id, time.perf_counter() - started


async def _timed_shutdown(manager: Any, kernel_id: str) -> float:
    started = time.perf_counter()
    await manager.shutdown_kernel(kernel_id)
    return time.perf_counter() - started


async def worker(request: dict[str, Any]) -> dict[str, Any]:
    from jupyter_client.multikernelmanager import AsyncMultiKernelManager

    from gp_provisioners_core.pool_manager import PooledMultiKernelManager
    from gp_provisioners_core.response_manager import ResponseManager

    ResponseManager.instance().start()  # per-process start-up (RSA key), not per launch
    name, runs, size = request["kernel_name"], request["runs"], request["pool_size"]
    env = {**os.environ, "KERNEL_USERNAME": KERNEL_USER}
    cold = AsyncMultiKernelManager()
    await _timed_start(cold, name, env)  # warm-up, untimed
    await cold.shutdown_all(now=False)
    cold_ready, cold_stop = [], []
    for _ in range(runs):
        kernel_id, seconds = await _timed_start(cold, name, env)
        cold_ready.append(seconds)
        cold_stop.append(await _timed_shutdown(cold, kernel_id))
    pooled = PooledMultiKernelManager()
    pooled.pools.pool_sizes = {name: size}
    pooled.pools.scope = "per-user"  # the requests carry KERNEL_USERNAME (root is refused)
    pooled.warm_pools([name], env)
    pooled_ready, refill, claim = [], [], []
    try:
        for _ in range(runs):
            deadline = time.monotonic() + 300
            while pooled.pools.stats()["ready"] < size:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"pool not refilled: {pooled.pools.stats()}")
                await asyncio.sleep(0.05)
            kernel_id, seconds = await _timed_start(pooled, name, env, claim)
            pooled_ready.append(seconds)
            refill.append(pooled.pools.stats()["pools"][0]["last_refill_seconds"])
            await pooled.shutdown_kernel(kernel_id, now=True)
        stats = pooled.pools.stats()
    finally:
        await pooled.shutdown_all(now=True)
    return {
        "cold_ready": cold_ready,
        "cold_stop": cold_stop,
        "pooled_ready": pooled_ready,
        "claim": claim,
        "refill": refill,
        "served": stats["served"],
        "misses": stats["misses"],
    }


# -- the driver -------------------------------------------------------------------------------


def run_row(ctx: Context, row: Row) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in row.drop_env}
    env.update(ctx.private_dirs())
    env.update(row.env)
    request = {
        "kernel_name": row.kernel_name,
        "runs": ctx.args.runs,
        "pool_size": ctx.args.pool_size,
    }
    done = subprocess.run(
        [sys.executable, __file__, "--worker"],
        input=json.dumps(request),
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout)[-1500:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}" if values else "-"


def print_table(results: list[tuple[Row, dict[str, Any]]], runs: int, size: int) -> None:
    print(f"\nWarm pools: start_kernel() -> first kernel_info_reply, median of {runs} runs")
    print(f"(pool size {size}; target: pooled <= 0.050 s on every backend; claim s: start_kernel")
    print("alone, the rest is the client connecting and one kernel_info round trip)\n")
    head = f"{'backend':<34} {'cold s':>8} {'pooled s':>9} {'claim s':>8} {'x faster':>9}"
    head += f" {'refill s':>9}"
    print(head + f" {'cold stop s':>12}")
    print("-" * (len(head) + 13))
    for row, result in results:
        if "error" in result or row.unavailable:
            why = row.unavailable or result["error"].strip().splitlines()[-1]
            print(f"{row.label:<34} not run: {why[:160]}")
            continue
        cold = statistics.median(result["cold_ready"])
        pooled = statistics.median(result["pooled_ready"])
        print(
            f"{row.label:<34} {cold:>8.3f} {pooled:>9.3f} {_median(result['claim']):>8} "
            f"{cold / pooled:>9.1f} {_median(result['refill']):>9} "
            f"{_median(result['cold_stop']):>12}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(SETUPS))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(json.loads(sys.stdin.read())))))
        return 0
    results: list[tuple[Row, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="gp-pool-bench-") as tmp:
        ctx = Context(root=Path(tmp), args=args)
        try:
            for key in args.backends.split(","):
                print(f"pool bench: {key}", file=sys.stderr, flush=True)
                row = SETUPS[key](ctx)
                try:
                    result = {} if row.unavailable else run_row(ctx, row)
                finally:
                    if row.cleanup is not None:
                        row.cleanup()
                results.append((row, result))
        finally:
            ctx.close()  # the sshd, if the ssh row started it
    print_table(results, args.runs, args.pool_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
