"""Two Jupyter Server replicas sharing a real PostgreSQL store (gp-server).

Both list the same kernels; a kernel started on one runs code through the other's websocket;
only its driver may shut it down; when the driver is killed (SIGKILL) the other adopts it once
the lease expires and serves it over REST and websocket, state intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from backends.postgres import PostgresServer, running_postgres, why_not_available
from backends.system_packages import cannot_run
from cryptography.fernet import Fernet
from jupyter_server_helpers import (
    Server,
    kill_hard,
    listed_ids,
    local_kernelspecs,
    new_kernel,
    run,
    start_server,
    stop_server,
    wait_for_log,
    wait_until_gone,
)
from test_persistence import PY

LEASE_SECONDS = "6"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    reason = why_not_available()
    if reason:
        cannot_run(reason)
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def kernelspecs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with local_kernelspecs(tmp_path_factory.mktemp("jupyter"), PY) as root:
        yield root


def replica(root: Path, postgres: PostgresServer, key: str, log: Path, name: str) -> Server:
    return start_server(
        root,
        log,
        "--ServerApp.kernel_manager_class=gp_server.PersistentKernelManager",
        env={
            "GP_SERVER_STORE_URL": postgres.url,
            "GP_SERVER_STORE_KEY": key,
            "GP_SERVER_REPLICA_ID": name,
            "GP_SERVER_LEASE_SECONDS": LEASE_SECONDS,
            "GP_SERVER_LEASE_RENEW_INTERVAL": "1",
            "GP_SERVER_ORPHAN_CLEANUP": "off",
        },
    )


@pytest.mark.asyncio
async def test_the_other_replica_serves_and_then_adopts_a_kernel(
    kernelspecs: Path, postgres: PostgresServer, tmp_path: Path
) -> None:
    key = Fernet.generate_key().decode()
    first = replica(kernelspecs, postgres, key, tmp_path / "a.log", "replica-a")
    second = replica(kernelspecs, postgres, key, tmp_path / "b.log", "replica-b")
    try:
        kernel_id = await new_kernel(first, PY)
        assert (await run(first, kernel_id, "shared = 'from a'"))["error"] == ""

        # B lists A's kernel and runs code on it; only A may shut it down.
        assert kernel_id in await listed_ids(second, kernel_id), second.log_text()[-3000:]
        result = await run(second, kernel_id, "print(shared)")
        assert result["stdout"] == "from a\n", result
        code, body = await second.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 409, body
        assert "driven by replica replica-a" in body["message"]
    finally:
        kill_hard(first)
    try:
        assert await wait_for_log(second, f"kernel {kernel_id} adopted from replica replica-a"), (
            second.log_text()[-3000:]
        )
        code, kernels = await second.call("GET", "/api/kernels")
        assert code == 200
        assert kernel_id in [k["id"] for k in kernels]
        result = await run(second, kernel_id, "print(shared, 6 * 7)")
        assert result["stdout"] == "from a 42\n", result
        code, _ = await second.call("POST", f"/api/kernels/{kernel_id}/interrupt")
        assert code == 204
        code, _ = await second.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 204
        assert await wait_until_gone(kernel_id) == []
    finally:
        stop_server(second)
