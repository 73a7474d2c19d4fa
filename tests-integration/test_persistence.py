"""Kernels that outlive the server (gp-server): a real Jupyter Server is killed with SIGKILL and
started again on the same store; the kernel is listed under its old id and keeps its state.

Local kernels (the distributed provisioner on this host); the store is SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
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
    wait_until_gone,
)

PY = "persist_python"


@pytest.fixture(scope="module")
def kernelspecs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with local_kernelspecs(tmp_path_factory.mktemp("jupyter"), PY) as root:
        yield root


def persistent_server(root: Path, store: Path, log: Path, *extra: str) -> Server:
    return store_server(root, store, log, *extra)


def kill_processes_with(text: str) -> None:
    """SIGKILL every process whose command line holds ``text`` (the kernel and its launcher)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in argv:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)


@pytest.mark.asyncio
async def test_kernel_survives_kill_9_of_the_server(kernelspecs: Path, tmp_path: Path) -> None:
    store = tmp_path / "kernels.sqlite"
    first = persistent_server(kernelspecs, store, tmp_path / "first.log")
    try:
        kernel_id = await new_kernel(first, PY)
        assert (await run(first, kernel_id, "answer = 41"))["error"] == ""
    finally:
        kill_hard(first)
    assert processes_with(kernel_id), "the kernel died with the server"

    second = persistent_server(kernelspecs, store, tmp_path / "second.log")
    try:
        assert kernel_id in await listed_ids(second, kernel_id), second.log_text()[-3000:]
        result = await run(second, kernel_id, "print(answer + 1)")
        assert result["stdout"] == "42\n", result
        assert f"kernel {kernel_id} ({PY}) re-attached" in second.log_text()

        code, _ = await second.call("POST", f"/api/kernels/{kernel_id}/interrupt")
        assert code == 204
        code, _ = await second.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 204
        assert await wait_until_gone(kernel_id) == []
    finally:
        stop_server(second)
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM gp_kernels").fetchone() == (0,)


@pytest.mark.asyncio
async def test_store_holds_no_connection_key_in_clear(kernelspecs: Path, tmp_path: Path) -> None:
    store = tmp_path / "kernels.sqlite"
    server = persistent_server(kernelspecs, store, tmp_path / "server.log")
    try:
        kernel_id = await new_kernel(server, PY)
        with sqlite3.connect(store) as db:
            (info, sealed, owner, name) = db.execute(
                "SELECT provisioner_info, sealed_secrets, owner, kernel_name FROM gp_kernels "
                "WHERE kernel_id = ?",
                (kernel_id,),
            ).fetchone()
        assert (owner, name) == ("alice", PY)
        assert '"key"' not in info
        assert "shell_port" in info
        assert sealed.startswith("gAAAA")  # a Fernet token
        files = [store, store.with_name(store.name + "-wal")]
        raw = b"".join(f.read_bytes() for f in files if f.exists())
        key = await kernel_key(server, kernel_id)
        assert key
        assert key.encode() not in raw
        assert (store.stat().st_mode & 0o777) == 0o600
    finally:
        stop_server(server)


async def kernel_key(server: Server, kernel_id: str) -> str:
    """The kernel's connection key, as the kernel itself reports it."""
    result = await run(
        server,
        kernel_id,
        "from ipykernel.kernelapp import IPKernelApp\n"
        "print(IPKernelApp.instance().session.key.decode())",
    )
    return str(result["stdout"]).strip()


@pytest.mark.asyncio
async def test_a_record_whose_kernel_is_gone_is_dropped(kernelspecs: Path, tmp_path: Path) -> None:
    store = tmp_path / "kernels.sqlite"
    first = persistent_server(kernelspecs, store, tmp_path / "first.log")
    try:
        kernel_id = await new_kernel(first, PY)
    finally:
        kill_hard(first)
    kill_processes_with(kernel_id)
    assert await wait_until_gone(kernel_id) == []

    second = persistent_server(kernelspecs, store, tmp_path / "second.log")
    try:
        deadline = time.monotonic() + 60
        while "dropping its record" not in second.log_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert f"kernel {kernel_id} ({PY}, owner alice) is gone" in second.log_text()
        code, kernels = await second.call("GET", "/api/kernels")
        assert code == 200
        assert kernel_id not in [k["id"] for k in kernels]
    finally:
        stop_server(second)
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM gp_kernels").fetchone() == (0,)


def delete_store(store: Path) -> None:
    for path in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        path.unlink(missing_ok=True)


@pytest.mark.asyncio
async def test_orphans_of_a_lost_store_are_listed_in_dry_run_then_removed(
    kernelspecs: Path, tmp_path: Path
) -> None:
    store = tmp_path / "kernels.sqlite"
    first = persistent_server(kernelspecs, store, tmp_path / "first.log")
    try:
        kernel_id = await new_kernel(first, PY)
    finally:
        kill_hard(first)
    delete_store(store)
    assert processes_with(kernel_id)

    sweeping: tuple[str, ...] = ("--PersistentKernelManager.orphan_grace_period=2",)
    sweeping += ("--PersistentKernelManager.orphan_sweep_interval=0.5",)
    dry = persistent_server(
        kernelspecs,
        store,
        tmp_path / "dry.log",
        *sweeping,
        "--PersistentKernelManager.orphan_cleanup=dry-run",
    )
    try:
        assert await wait_for_log(dry, f"(kernel {kernel_id}), "), dry.log_text()[-3000:]
        assert "dry run, not removed" in dry.log_text()
        assert processes_with(kernel_id), "dry-run removed the kernel"
    finally:
        stop_server(dry)
    assert processes_with(kernel_id)

    cleaning = persistent_server(kernelspecs, store, tmp_path / "clean.log", *sweeping)
    try:
        assert await wait_for_log(cleaning, "removed orphan local process"), cleaning.log_text()[
            -3000:
        ]
        assert f"(kernel {kernel_id})" in cleaning.log_text()
        assert await wait_until_gone(kernel_id) == []
    finally:
        stop_server(cleaning)


@pytest.mark.asyncio
async def test_keep_kernels_on_exit_survives_a_clean_stop(
    kernelspecs: Path, tmp_path: Path
) -> None:
    store = tmp_path / "kernels.sqlite"
    keep = "--PersistentKernelManager.keep_kernels_on_exit=True"
    first = persistent_server(kernelspecs, store, tmp_path / "first.log", keep)
    try:
        kernel_id = await new_kernel(first, PY)
        assert (await run(first, kernel_id, "kept = 'yes'"))["error"] == ""
    finally:
        stop_server(first)  # SIGTERM: Jupyter Server's clean shutdown
    assert "left 1 kernel(s) running for the next server" in first.log_text()
    assert processes_with(kernel_id)

    second = persistent_server(kernelspecs, store, tmp_path / "second.log")
    try:
        assert kernel_id in await listed_ids(second, kernel_id), second.log_text()[-3000:]
        assert (await run(second, kernel_id, "print(kept)"))["stdout"] == "yes\n"
        code, _ = await second.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 204
        assert await wait_until_gone(kernel_id) == []
    finally:
        stop_server(second)


@pytest.mark.asyncio
async def test_a_re_attached_kernel_restarts_and_is_recorded_again(
    kernelspecs: Path, tmp_path: Path
) -> None:
    store = tmp_path / "kernels.sqlite"
    first = persistent_server(kernelspecs, store, tmp_path / "first.log")
    try:
        kernel_id = await new_kernel(first, PY)
    finally:
        kill_hard(first)
    second = persistent_server(kernelspecs, store, tmp_path / "second.log")
    try:
        assert kernel_id in await listed_ids(second, kernel_id), second.log_text()[-3000:]
        code, _ = await second.call("POST", f"/api/kernels/{kernel_id}/restart")
        assert code == 200, second.log_text()[-3000:]
        assert (await run(second, kernel_id, "after = 'restart'"))["error"] == ""
    finally:
        kill_hard(second)
    third = persistent_server(kernelspecs, store, tmp_path / "third.log")
    try:
        assert kernel_id in await listed_ids(third, kernel_id), third.log_text()[-3000:]
        assert (await run(third, kernel_id, "print(after)"))["stdout"] == "restart\n"
        code, _ = await third.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 204
        assert await wait_until_gone(kernel_id) == []
    finally:
        stop_server(third)


@pytest.mark.asyncio
async def test_a_clean_stop_shuts_kernels_down_and_forgets_them(
    kernelspecs: Path, tmp_path: Path
) -> None:
    store = tmp_path / "kernels.sqlite"
    server = persistent_server(kernelspecs, store, tmp_path / "server.log")
    try:
        kernel_id = await new_kernel(server, PY)
    finally:
        stop_server(server)  # SIGTERM: Jupyter Server shuts every kernel down
    assert await wait_until_gone(kernel_id) == []
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM gp_kernels").fetchone() == (0,)


@pytest.mark.asyncio
async def test_a_re_attached_kernel_restarted_then_deleted_leaves_nothing(
    kernelspecs: Path, tmp_path: Path
) -> None:
    store = tmp_path / "kernels.sqlite"
    first = persistent_server(kernelspecs, store, tmp_path / "first.log")
    try:
        kernel_id = await new_kernel(first, PY)
    finally:
        kill_hard(first)
    second = persistent_server(kernelspecs, store, tmp_path / "second.log")
    try:
        assert kernel_id in await listed_ids(second, kernel_id), second.log_text()[-3000:]
        code, _ = await second.call("POST", f"/api/kernels/{kernel_id}/restart")
        assert code == 200, second.log_text()[-3000:]
        code, _ = await second.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 204
        assert await wait_until_gone(kernel_id) == []
    finally:
        stop_server(second)
