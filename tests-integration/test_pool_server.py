"""Warm pools under a real Jupyter Server with gp-server's PoolingKernelManager (SQLite store,
kernels of the distributed provisioner on this host).

What an operator notices: the pool fills from the kernelspec's opt-in; a start request is served
by the pooled kernel under the requested id and runs code; the pooled kernel and the claimed one
survive a kill -9 of the server (the claimed one listed again, the pooled one back in the pool)
and the orphan sweep removes neither (a claimed kernel's launcher still carries its launch id);
a clean stop leaves no kernel process and no record behind.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_server_helpers import (
    Server,
    kill_hard,
    listed_ids,
    local_kernelspecs,
    new_kernel,
    processes_with,
    run,
    stop_server,
    store_server,
    wait_for_log,
)

PY = "pooled_persist_python"


@pytest.fixture(scope="module")
def kernelspecs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with local_kernelspecs(tmp_path_factory.mktemp("jupyter"), PY, pool={"size": 1}) as root:
        yield root


def pooling_server(root: Path, store: Path, log: Path, *extra: str) -> Server:
    return store_server(
        root,
        store,
        log,
        # The server's environment carries KERNEL_USERNAME=alice: a single-user server.
        "--KernelPools.scope=per-user",
        "--PoolingKernelManager.orphan_grace_period=1",
        "--PoolingKernelManager.orphan_sweep_interval=0.5",
        *extra,
        manager="PoolingKernelManager",
    )


def records(store: Path) -> dict[str, dict[str, object]]:
    """The store's records; none while the server has not created its schema yet (a loaded
    machine can take seconds to start it, and this polls from the start)."""
    with sqlite3.connect(store) as db:
        try:
            rows = db.execute("SELECT kernel_id, provisioner_info FROM gp_kernels").fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" not in str(err):
                raise
            rows = []
    return {kernel_id: json.loads(info) for kernel_id, info in rows}


async def wait_for_pooled_record(store: Path, exclude: set[str], timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kernel_id, info in records(store).items():
            if "kernel_pool" in info and kernel_id not in exclude:
                return kernel_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"no pooled kernel recorded in {timeout}s: {list(records(store))}")


@pytest.mark.asyncio
async def test_pool_serves_survives_a_crash_and_leaves_nothing(
    kernelspecs: Path, tmp_path: Path
) -> None:
    store = tmp_path / "kernels.sqlite"
    first = pooling_server(kernelspecs, store, tmp_path / "first.log")
    try:
        pooled_id = await wait_for_pooled_record(store, set())
        kernel_id = await new_kernel(first, PY)
        assert kernel_id != pooled_id
        assert f"Kernel started: {kernel_id} (claimed from a pool)" in first.log_text()
        assert (await run(first, kernel_id, "answer = 41"))["error"] == ""
        saved = records(store)
        assert pooled_id not in saved
        assert saved[kernel_id]["launch_kernel_id"] == pooled_id
        assert "kernel_pool" not in saved[kernel_id]
        refill_id = await wait_for_pooled_record(store, {pooled_id, kernel_id})
        code, stats = await first.call("GET", "/api/gp/pools")
        assert code == 200, stats
        assert stats["served"] == 1
        assert [p["kernelspec"] for p in stats["pools"]] == [PY]
    finally:
        kill_hard(first)
    assert processes_with(pooled_id), "the claimed kernel died with the server"
    assert processes_with(refill_id), "the pooled kernel died with the server"

    second = pooling_server(kernelspecs, store, tmp_path / "second.log")
    try:
        assert kernel_id in await listed_ids(second, kernel_id), second.log_text()[-3000:]
        assert await wait_for_log(second, f"pooled kernel {refill_id} re-attached")
        assert refill_id not in await listed_ids(second, kernel_id)  # pooled, not listed
        await asyncio.sleep(3)  # several orphan sweeps with a 1 s grace period
        assert (await run(second, kernel_id, "print(answer + 1)"))["stdout"] == "42\n"
        assert "removed orphan" not in second.log_text(), second.log_text()[-3000:]
        code, model = await second.call("POST", "/api/kernels", {"name": PY})
        assert code == 201, model
        assert f"kernel {refill_id} claimed as {model['id']}" in second.log_text()
        await wait_for_pooled_record(store, {refill_id, kernel_id, model["id"]})
    finally:
        stop_server(second)  # SIGTERM: a clean stop stops pooled and listed kernels
    assert records(store) == {}
    for launch_id in (pooled_id, refill_id):
        assert processes_with(launch_id) == []
