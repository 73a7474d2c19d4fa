"""The kernel store: one row per remote kernel, with the lease that says which replica drives it.

Two implementations share the SQL: :class:`SqliteKernelStore` (the embedded default; ``sqlite3``
runs on one worker thread, never on the event loop) and :class:`PostgresKernelStore` (psycopg 3's
async driver; several replicas share it).  Times are seconds since the epoch; a lease is
``(replica, lease_expires)`` and is taken with one conditional UPDATE, so two replicas can never
both hold it.  Lease times come from the database's clock on PostgreSQL (replicas' clocks may
differ) and from this host's clock on SQLite (one host).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS gp_kernels (
    kernel_id TEXT PRIMARY KEY,
    kernel_name TEXT NOT NULL,
    owner TEXT NOT NULL,
    provisioner_info TEXT NOT NULL,
    sealed_secrets TEXT NOT NULL,
    launch_args TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    replica TEXT NOT NULL,
    lease_expires DOUBLE PRECISION NOT NULL
)
"""
COLUMNS = (
    "kernel_id",
    "kernel_name",
    "owner",
    "provisioner_info",
    "sealed_secrets",
    "launch_args",
    "started_at",
    "updated_at",
    "replica",
    "lease_expires",
)


@dataclass
class KernelRecord:
    """What the store keeps about one kernel.

    ``provisioner_info`` is ``get_provisioner_info()`` with the connection info's secret fields
    removed; they are in ``sealed_secrets`` (see :mod:`gp_server.sealing`).  ``launch_args`` are
    the ``KERNEL_*`` variables and working directory of the launch, reused by a restart.
    """

    kernel_id: str
    kernel_name: str
    owner: str
    provisioner_info: dict[str, Any]
    sealed_secrets: str
    launch_args: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    updated_at: float = 0.0
    replica: str = ""
    lease_expires: float = 0.0

    def row(self) -> tuple[Any, ...]:
        return (
            self.kernel_id,
            self.kernel_name,
            self.owner,
            json.dumps(self.provisioner_info),
            self.sealed_secrets,
            json.dumps(self.launch_args),
            self.started_at,
            self.updated_at,
            self.replica,
            self.lease_expires,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> KernelRecord:
        values = dict(zip(COLUMNS, row, strict=True))
        values["provisioner_info"] = json.loads(values["provisioner_info"])
        values["launch_args"] = json.loads(values["launch_args"])
        values["started_at"] = float(values["started_at"])
        values["updated_at"] = float(values["updated_at"])
        values["lease_expires"] = float(values["lease_expires"])
        return cls(**values)


class KernelStore(ABC):
    """Where kernel records live.  Every method is a coroutine that never blocks the loop.

    Called by ``PersistentKernelManager``: ``put`` after a start or restart, ``delete`` after a
    shutdown, ``records`` on start and on every lease sweep, ``acquire``/``renew``/``release`` for
    the leases.  An implementation must make ``acquire`` atomic (one statement).
    """

    @abstractmethod
    async def open(self) -> None:
        """Connect and create the table when missing."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection."""

    @abstractmethod
    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``%s`` placeholders); rows for a query or a RETURNING clause."""

    now_sql: str = "%s"
    """SQL for 'now' in seconds; ``%s`` means this host's clock is passed as a parameter."""

    def _now(self, sql_params: list[Any]) -> str:
        if self.now_sql == "%s":
            sql_params.append(time.time())
        return self.now_sql

    async def put(self, record: KernelRecord, lease_seconds: float) -> None:
        """Insert or replace ``record``; the writing replica holds its lease from now on."""
        params: list[Any] = list(record.row()[:-1])
        now = self._now(params)
        params.append(lease_seconds)
        placeholders = ", ".join(["%s"] * (len(COLUMNS) - 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
        await self._execute(
            f"INSERT INTO gp_kernels ({', '.join(COLUMNS)}) VALUES ({placeholders}, {now} + %s) "  # noqa: S608 - fixed names
            f"ON CONFLICT (kernel_id) DO UPDATE SET {updates}",
            params,
        )

    async def delete(self, kernel_id: str) -> None:
        await self._execute("DELETE FROM gp_kernels WHERE kernel_id = %s", [kernel_id])

    async def get(self, kernel_id: str) -> KernelRecord | None:
        rows = await self._execute(
            f"SELECT {', '.join(COLUMNS)} FROM gp_kernels WHERE kernel_id = %s",  # noqa: S608
            [kernel_id],
        )
        return KernelRecord.from_row(rows[0]) if rows else None

    async def records(self) -> list[KernelRecord]:
        rows = await self._execute(
            f"SELECT {', '.join(COLUMNS)} FROM gp_kernels ORDER BY started_at"  # noqa: S608
        )
        return [KernelRecord.from_row(row) for row in rows]

    shared: bool = True
    """Whether several servers may use the store at once.  A store that is not shared belongs
    to one server: every record in it is that server's, whatever lease a previous process of
    it left, so ``acquire`` always succeeds."""

    async def acquire(self, kernel_id: str, replica: str, lease_seconds: float) -> bool:
        """Take (or keep) the lease of ``kernel_id`` for ``replica`` when it is free, expired
        or already ours (or the store is not shared); False when another replica holds a live
        lease."""
        if not self.shared:
            await self.release("", [kernel_id], everyone=True)
        params: list[Any] = [replica]
        now = self._now(params)
        params += [lease_seconds, kernel_id, replica]
        now_again = self._now(params)
        rows = await self._execute(
            f"UPDATE gp_kernels SET replica = %s, lease_expires = {now} + %s "  # noqa: S608
            f"WHERE kernel_id = %s AND (replica = %s OR lease_expires < {now_again}) "
            "RETURNING kernel_id",
            params,
        )
        return bool(rows)

    async def renew(self, replica: str, kernel_ids: list[str], lease_seconds: float) -> set[str]:
        """Extend ``replica``'s leases on ``kernel_ids``; the ids whose lease it still held."""
        kept: set[str] = set()
        for kernel_id in kernel_ids:
            params: list[Any] = []
            now = self._now(params)
            params += [lease_seconds, kernel_id, replica]
            rows = await self._execute(
                f"UPDATE gp_kernels SET lease_expires = {now} + %s "  # noqa: S608
                "WHERE kernel_id = %s AND replica = %s RETURNING kernel_id",
                params,
            )
            if rows:
                kept.add(kernel_id)
        return kept

    async def release(self, replica: str, kernel_ids: list[str], *, everyone: bool = False) -> None:
        """Let another replica adopt ``kernel_ids`` at once (a clean stop that keeps kernels);
        ``everyone``: whoever holds them."""
        for kernel_id in kernel_ids:
            if everyone:
                await self._execute(
                    "UPDATE gp_kernels SET lease_expires = 0 WHERE kernel_id = %s", [kernel_id]
                )
                continue
            await self._execute(
                "UPDATE gp_kernels SET lease_expires = 0 WHERE kernel_id = %s AND replica = %s",
                [kernel_id, replica],
            )

    async def database_time(self) -> float:
        """'Now' on the clock the leases use."""
        params: list[Any] = []
        now = self._now(params)
        rows = await self._execute(f"SELECT {now}", params)
        return float(rows[0][0])


class SqliteKernelStore(KernelStore):
    """The embedded store: one SQLite file, for one server process (WAL mode, so readers such
    as an operator's ``sqlite3`` shell do not block it).  Not shared: a restarted server takes
    every record back at once, whatever lease its previous process left."""

    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="gp-store")
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLite store {self.path}"

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=5000")
            connection.execute(SCHEMA.replace("DOUBLE PRECISION", "REAL"))
            self.path.chmod(0o600)
            return connection

        self._connection = await self._in_thread(connect)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._in_thread(connection.close)
        self._executor.shutdown(wait=False)

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self._connection
        if connection is None:
            raise RuntimeError(f"{self!r} is not open; call open() first")
        text = sql.replace("%s", "?")

        def run() -> list[tuple[Any, ...]]:
            return list(connection.execute(text, tuple(params)).fetchall())

        return await self._in_thread(run)

    async def _in_thread(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)


class PostgresKernelStore(KernelStore):
    """The shared store of several replicas: PostgreSQL through psycopg 3's async driver.

    ``url`` is a libpq connection string (``postgresql://user@host:port/db``); a password
    belongs in ``~/.pgpass`` or ``PGPASSWORD``, not in the URL (it would reach the log).
    """

    now_sql = "extract(epoch from clock_timestamp())::double precision"

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: Any = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgreSQL store {self.url.split('@')[-1]}"

    async def open(self) -> None:
        try:
            import psycopg
        except ImportError:
            raise RuntimeError(
                f"store_url {self.url.split('@')[-1]!r} needs psycopg 3: "
                "pip install 'gp-server[postgresql]'"
            ) from None
        self._connection = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await self._execute(SCHEMA)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._connection is None:
            raise RuntimeError(f"{self!r} is not open; call open() first")
        async with self._lock:
            cursor = await self._connection.execute(sql, list(params))
            if cursor.description is None:
                return []
            rows: list[tuple[Any, ...]] = [tuple(row) for row in await cursor.fetchall()]
            return rows


def make_store(url: str, default_sqlite: Path) -> KernelStore:
    """The store ``url`` names: ``""`` or ``sqlite:///path`` for SQLite (``default_sqlite``
    when empty), ``postgresql://...`` for PostgreSQL."""
    if not url:
        return SqliteKernelStore(default_sqlite)
    if url.startswith("sqlite:///"):
        return SqliteKernelStore(Path(url[len("sqlite:///") :]))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresKernelStore(url)
    raise ValueError(
        f"store_url {url!r} is not a store this extension knows: use sqlite:///<path> or "
        "postgresql://<user>@<host>:<port>/<database> (GP_SERVER_STORE_URL)"
    )
