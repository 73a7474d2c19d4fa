"""The SQLite store and its leases, as PersistentKernelManager uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gp_server.store import KernelRecord, PostgresKernelStore, SqliteKernelStore, make_store


def record(kernel_id: str = "k-1", replica: str = "a") -> KernelRecord:
    return KernelRecord(
        kernel_id=kernel_id,
        kernel_name="python",
        owner="alice",
        provisioner_info={"kernel_id": kernel_id, "pid": 12, "connection_info": {"ip": "1.2.3.4"}},
        sealed_secrets="token",
        launch_args={"cwd": "/home/alice", "env": {"KERNEL_USERNAME": "alice"}},
        started_at=100.0,
        updated_at=100.0,
        replica=replica,
    )


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened = SqliteKernelStore(tmp_path / "store" / "kernels.sqlite")
    await opened.open()
    yield opened
    await opened.close()


async def test_put_get_list_delete_round_trip(store: SqliteKernelStore) -> None:
    await store.put(record("k-1"), lease_seconds=30)
    await store.put(record("k-2"), lease_seconds=30)
    got = await store.get("k-1")
    assert got is not None
    assert got.provisioner_info["pid"] == 12
    assert got.launch_args["env"] == {"KERNEL_USERNAME": "alice"}
    assert [r.kernel_id for r in await store.records()] == ["k-1", "k-2"]
    await store.delete("k-1")
    assert await store.get("k-1") is None
    assert [r.kernel_id for r in await store.records()] == ["k-2"]


async def test_the_store_file_is_private(store: SqliteKernelStore) -> None:
    assert (store.path.stat().st_mode & 0o777) == 0o600


async def test_a_live_lease_keeps_other_replicas_out(store: SqliteKernelStore) -> None:
    store.shared = True  # as PostgreSQL: several servers
    await store.put(record(replica="a"), lease_seconds=30)
    assert not await store.acquire("k-1", "b", 30)
    assert await store.acquire("k-1", "a", 30)
    assert (await store.get("k-1")).replica == "a"  # type: ignore[union-attr]


async def test_an_expired_lease_goes_to_the_first_replica_that_asks(
    store: SqliteKernelStore,
) -> None:
    store.shared = True
    await store.put(record(replica="a"), lease_seconds=-1)
    assert await store.acquire("k-1", "b", 30)
    assert not await store.acquire("k-1", "c", 30)
    assert await store.renew("a", ["k-1"], 30) == set()
    assert await store.renew("b", ["k-1"], 30) == {"k-1"}


async def test_a_server_restarted_on_its_own_store_takes_its_kernels_back(
    store: SqliteKernelStore,
) -> None:
    await store.put(record(replica="a-before-kill-9"), lease_seconds=30)
    assert await store.acquire("k-1", "a-after-restart", 30)
    assert (await store.get("k-1")).replica == "a-after-restart"  # type: ignore[union-attr]


async def test_release_hands_the_kernel_over_at_once(store: SqliteKernelStore) -> None:
    store.shared = True
    await store.put(record(replica="a"), lease_seconds=30)
    await store.release("a", ["k-1"])
    assert await store.acquire("k-1", "b", 30)


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    closed = SqliteKernelStore(tmp_path / "k.sqlite")
    with pytest.raises(RuntimeError, match="is not open; call open"):
        await closed.records()


def test_make_store_understands_the_urls(tmp_path: Path) -> None:
    default = make_store("", tmp_path / "d.sqlite")
    assert isinstance(default, SqliteKernelStore)
    assert default.path == tmp_path / "d.sqlite"
    named = make_store("sqlite:////var/lib/gp/k.sqlite", tmp_path)
    assert isinstance(named, SqliteKernelStore)
    assert named.path == Path("/var/lib/gp/k.sqlite")
    shared = make_store("postgresql://jupyter@db:5432/kernels", tmp_path)
    assert isinstance(shared, PostgresKernelStore)
    assert "jupyter@" not in repr(shared)
    with pytest.raises(ValueError, match=r"store_url 'mysql://x' is not a store"):
        make_store("mysql://x", tmp_path)
