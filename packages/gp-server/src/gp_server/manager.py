"""PersistentKernelManager: Jupyter Server's kernel manager, plus a store of remote kernels.

Every kernel whose provisioner is a gp-* remote provisioner is recorded when it starts, updated
when it restarts and forgotten when it is shut down.  When the server starts (the extension's
``_start_jupyter_server_extension`` calls :meth:`PersistentKernelManager.start_persistence`),
every record is re-attached under its old kernel id; a record whose kernel is gone is dropped.

Replicas sharing one PostgreSQL store each run a sweep every ``lease_renew_interval`` seconds:
renew the leases of the kernels they drive, list the kernels others drive (so every replica
lists every kernel and serves its websocket), and adopt a kernel whose lease expired.  Only the
lease holder drives a kernel (restarter, restart, shutdown, culling); the others are *observers*
that connect clients to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, cast

from cryptography.fernet import MultiFernet
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.factory import KernelProvisionerFactory
from jupyter_core.paths import jupyter_runtime_dir
from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Bool, Enum, Float, Int, List, TraitError, Unicode, default, validate

from gp_provisioners_core import RemoteProvisionerBase
from gp_provisioners_core.inventory import STORE_ID_VARIABLE
from gp_provisioners_core.pool_manager import new_kernel_manager

from .orphans import OrphanSweeper, SweepReport, load_inventory
from .sealing import SECRET_FIELDS, load_store_key, open_connection, seal_connection
from .store import KernelRecord, KernelStore, make_store

DEFAULT_STORE_FILE = "gp-server-kernels.sqlite"
DEFAULT_KEY_FILE = "gp-server-store.key"
JSON_SCALARS = (str, int, float, bool, type(None))
UNKNOWN_CHECK_INTERVAL = 0.5  # seconds between looks at a re-attached kernel of unknown state


class PersistentKernelManager(AsyncMappingKernelManager):
    """Records remote kernels so that they outlive this server process.

    Configure it with ``c.ServerApp.kernel_manager_class =
    "gp_server.PersistentKernelManager"``; the ``gp_server`` extension (enabled when the package
    is installed) then re-attaches the recorded kernels when the server starts.
    """

    store_url = Unicode(
        config=True,
        help="""Where kernels are recorded (GP_SERVER_STORE_URL): empty for a SQLite file in the
        server's runtime directory, sqlite:///<path>, or postgresql://<user>@<host>:<port>/<db>
        for replicas that share their kernels (needs gp-server[postgresql]).""",
    )

    @default("store_url")
    def _store_url_default(self) -> str:
        return os.environ.get("GP_SERVER_STORE_URL", "")

    @validate("store_url")
    def _validate_store_url(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        try:
            make_store(value, Path("unused"))
        except ValueError as err:
            raise TraitError(str(err)) from None
        return value

    store_key_file = Unicode(
        config=True,
        help="""File holding the Fernet key(s) that encrypt connection keys in the store
        (GP_SERVER_STORE_KEY_FILE; GP_SERVER_STORE_KEY, the key itself, wins).  Default: a file
        in the runtime directory, generated (mode 0600) on first use with a SQLite store.  A
        PostgreSQL store needs a key the operator gives every replica.""",
    )

    @default("store_key_file")
    def _store_key_file_default(self) -> str:
        return os.environ.get("GP_SERVER_STORE_KEY_FILE") or str(
            self._runtime_dir() / DEFAULT_KEY_FILE
        )

    replica_id = Unicode(
        config=True,
        help="""This server's name in kernel leases (GP_SERVER_REPLICA_ID); default host, pid and
        a random suffix, new at every start.""",
    )

    @default("replica_id")
    def _replica_id_default(self) -> str:
        return os.environ.get("GP_SERVER_REPLICA_ID") or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )

    lease_seconds = Float(
        config=True,
        help="""How long a replica's claim on a kernel lasts without renewal
        (GP_SERVER_LEASE_SECONDS, 30).  Another replica adopts the kernel once it expires.""",
    )

    @default("lease_seconds")
    def _lease_seconds_default(self) -> float:
        return float(os.environ.get("GP_SERVER_LEASE_SECONDS", "30"))

    lease_renew_interval = Float(
        config=True,
        help="""Seconds between sweeps that renew leases, list other replicas' kernels and adopt
        orphaned ones (GP_SERVER_LEASE_RENEW_INTERVAL; default a third of lease_seconds).""",
    )

    @default("lease_renew_interval")
    def _lease_renew_interval_default(self) -> float:
        raw = os.environ.get("GP_SERVER_LEASE_RENEW_INTERVAL")
        return float(raw) if raw else self.lease_seconds / 3

    @validate("lease_renew_interval")
    def _validate_lease_renew_interval(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 < value < self.lease_seconds:
            raise TraitError(
                f"lease_renew_interval {value:g} must be > 0 and below lease_seconds "
                f"({self.lease_seconds:g}), or leases expire between renewals"
            )
        return value

    reattach_concurrency = Int(
        8,
        config=True,
        help="How many recorded kernels are re-attached at the same time when the server starts.",
    )

    keep_kernels_on_exit = Bool(
        config=True,
        help="""On a clean server stop, leave remote kernels running and recorded, releasing their
        leases so another replica (or the next start) adopts them (GP_SERVER_KEEP_KERNELS_ON_EXIT,
        false: kernels are shut down as Jupyter Server always does).""",
    )

    @default("keep_kernels_on_exit")
    def _keep_kernels_on_exit_default(self) -> bool:
        return os.environ.get("GP_SERVER_KEEP_KERNELS_ON_EXIT", "").lower() in ("1", "true", "yes")

    orphan_cleanup = Enum(
        ["remove", "dry-run", "off"],
        config=True,
        help="""What happens to backend resources of this store's kernels that no record claims
        and whose owner is dead (GP_SERVER_ORPHAN_CLEANUP): remove them after
        orphan_grace_period, only log them (dry-run), or do not look (off).""",
    )

    @default("orphan_cleanup")
    def _orphan_cleanup_default(self) -> str:
        return os.environ.get("GP_SERVER_ORPHAN_CLEANUP", "remove")

    orphan_grace_period = Float(
        config=True,
        help="""Seconds a resource must have been without a record before it is removed
        (GP_SERVER_ORPHAN_GRACE_PERIOD, 300); it must cover the longest launch.""",
    )

    @default("orphan_grace_period")
    def _orphan_grace_period_default(self) -> float:
        return float(os.environ.get("GP_SERVER_ORPHAN_GRACE_PERIOD", "300"))

    orphan_sweep_interval = Float(
        config=True,
        help="Seconds between orphan sweeps (GP_SERVER_ORPHAN_SWEEP_INTERVAL, 60).",
    )

    @default("orphan_sweep_interval")
    def _orphan_sweep_interval_default(self) -> float:
        return float(os.environ.get("GP_SERVER_ORPHAN_SWEEP_INTERVAL", "60"))

    orphan_inventories = List(
        Unicode(),
        config=True,
        help="""Backends the orphan sweep lists (GP_SERVER_ORPHAN_INVENTORIES, comma-separated,
        default local): local, ssh, docker, k8s, slurm, yarn, or module:Class of another
        inventory.""",
    )

    @default("orphan_inventories")
    def _orphan_inventories_default(self) -> list[str]:
        raw = os.environ.get("GP_SERVER_ORPHAN_INVENTORIES", "local")
        return [name.strip() for name in raw.split(",") if name.strip()]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sweeper_of_orphans: OrphanSweeper | None = None
        self.last_orphan_report: SweepReport | None = None
        self._store: KernelStore | None = None
        self._fernet: MultiFernet | None = None
        self._store_lock = asyncio.Lock()
        self._observed: set[str] = set()
        self._started_at: dict[str, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._recorded_digest: dict[str, str] = {}
        self.reattach_report: dict[str, Any] = {}

    # -- the store ---------------------------------------------------------------------------

    def _runtime_dir(self) -> Path:
        return Path(self.connection_dir or jupyter_runtime_dir())

    async def store(self) -> KernelStore:
        """The open store (opened on first use).  Called by every method that records."""
        async with self._store_lock:
            if self._store is None:
                store = make_store(self.store_url, self._runtime_dir() / DEFAULT_STORE_FILE)
                generate = not self.store_url.startswith(("postgresql:", "postgres:"))
                self._fernet, origin = load_store_key(self.store_key_file, generate)
                await store.open()
                self.log.info(
                    "gp_server: kernels recorded in %r as replica %s; connection keys encrypted "
                    "under the key from %s",
                    store,
                    self.replica_id,
                    origin,
                )
                self._store = store
            return self._store

    @property
    def store_id(self) -> str:
        """A short digest naming this store; launches carry it as ``KERNEL_GP_SERVER_STORE`` so
        that orphan sweeps touch only this store's kernels."""
        where = self.store_url or str(self._runtime_dir().resolve() / DEFAULT_STORE_FILE)
        return hashlib.sha256(where.split("@")[-1].encode()).hexdigest()[:16]

    def _is_recordable(self, kernel_id: str) -> bool:
        km = self._kernels.get(kernel_id)
        return km is not None and isinstance(
            getattr(km, "provisioner", None), RemoteProvisionerBase
        )

    async def record_kernel(self, kernel_id: str) -> None:
        """Write (or rewrite) ``kernel_id``'s record from its provisioner's current state.

        Called after a start and a restart; an override must call it for any other change to
        what ``get_provisioner_info`` returns.
        """
        if not self._is_recordable(kernel_id):
            return
        await self.record_manager(kernel_id, self._kernels[kernel_id])

    async def record_manager(
        self, kernel_id: str, km: Any, extra_info: dict[str, Any] | None = None
    ) -> None:
        """Write ``km``'s record under ``kernel_id``, listed or not (a pooled kernel is not);
        ``extra_info`` is merged into the saved provisioner info.  Called by
        :meth:`record_kernel` and by ``gp_server.pool``."""
        store = await self.store()
        assert self._fernet is not None
        info = await km.provisioner.get_provisioner_info()
        info.update(extra_info or {})
        public, sealed = seal_connection(self._fernet, dict(info.get("connection_info") or {}))
        info["connection_info"] = public
        now = time.time()
        record = KernelRecord(
            kernel_id=kernel_id,
            kernel_name=str(km.kernel_name),
            owner=str(getattr(km.provisioner, "kernel_username", "") or ""),
            provisioner_info=json.loads(json.dumps(info, default=_json_default)),
            sealed_secrets=sealed,
            launch_args=_persistable_launch_args(getattr(km, "_launch_args", None) or {}),
            started_at=self._started_at.setdefault(kernel_id, now),
            updated_at=now,
            replica=self.replica_id,
        )
        await store.put(record, self.lease_seconds)
        self._recorded_digest[kernel_id] = _digest(record.provisioner_info)

    async def forget_kernel(self, kernel_id: str) -> None:
        """Delete ``kernel_id``'s record.  Called after a shutdown and when a kernel died."""
        self._started_at.pop(kernel_id, None)
        self._recorded_digest.pop(kernel_id, None)
        self._observed.discard(kernel_id)
        if self._store is not None:
            await self._store.delete(kernel_id)

    # -- what Jupyter Server calls -------------------------------------------------------------

    async def start_kernel(  # type: ignore[override]
        self, *, kernel_id: str | None = None, path: Any = None, **kwargs: Any
    ) -> str:
        """Start a kernel as Jupyter Server does, then record it when it is remote."""
        known = kernel_id is not None and kernel_id in self
        if not known:
            env = dict(kwargs.pop("env", None) or os.environ)
            env[STORE_ID_VARIABLE] = self.store_id
            kwargs["env"] = env
        new_id: str = await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)
        if not known and self._is_recordable(new_id):
            await self._ready(new_id)
            await self.record_kernel(new_id)
        return new_id

    async def restart_kernel(self, kernel_id: str, now: bool = False) -> Any:  # type: ignore[override]
        """Restart (as the lease holder only) and record the kernel's new state."""
        await self._take_over_or_refuse(kernel_id, "restart")
        result = await super().restart_kernel(kernel_id, now=now)
        await self.record_kernel(kernel_id)
        return result

    async def shutdown_kernel(  # type: ignore[override]
        self, kernel_id: str, now: bool = False, restart: bool = False
    ) -> None:
        """Shut down (as the lease holder only) and forget the kernel."""
        await self._take_over_or_refuse(kernel_id, "shut down")
        await super().shutdown_kernel(kernel_id, now=now, restart=restart)
        if not restart:
            await self.forget_kernel(kernel_id)

    def _handle_kernel_died(self, kernel_id: str) -> None:
        super()._handle_kernel_died(kernel_id)
        task = asyncio.ensure_future(self.forget_kernel(kernel_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def shutdown_all(self, now: bool = False) -> None:  # type: ignore[override]
        """Stop the sweep; then shut every kernel down (Jupyter Server's default) or, with
        ``keep_kernels_on_exit``, leave the recorded ones running and release their leases."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._background):
            task.cancel()
        if self.keep_kernels_on_exit and self._store is not None:
            kept = [k for k in self.list_kernel_ids() if self._is_recordable(k)]
            await self._store.release(self.replica_id, kept)
            for kernel_id in kept:
                self._detach(kernel_id)
            self.log.info("gp_server: left %d kernel(s) running for the next server", len(kept))
        stopped: list[str] = []
        if not self.keep_kernels_on_exit:
            for kernel_id in list(self._observed):
                self._detach(kernel_id)
            stopped = [k for k in self.list_kernel_ids() if self._is_recordable(k)]
        # jupyter_client shuts each kernel down without going through shutdown_kernel above.
        await super().shutdown_all(now=now)
        for kernel_id in stopped:
            await self.forget_kernel(kernel_id)
        if self._store is not None:
            await self._store.close()
            self._store = None

    # -- re-attach and leases -------------------------------------------------------------------

    async def start_persistence(self) -> None:
        """Open the store, re-attach every recorded kernel and start the lease sweep.

        Called once by the extension's ``_start_jupyter_server_extension`` when the event loop
        runs.  Logs what it found: ``re-attached``, ``observed`` (another replica drives it) and
        ``dropped`` (its backend resource is gone) and ``unknown`` (listed, its backend has
        not answered yet: see :meth:`_resolve_unknown`).
        """
        started = time.monotonic()
        store = await self.store()
        records = await store.records()
        gate = asyncio.Semaphore(max(1, self.reattach_concurrency))

        async def one(record: KernelRecord) -> str:
            async with gate:
                return await self._reconcile(record)

        outcomes = await asyncio.gather(*(one(r) for r in records))
        counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
        self.reattach_report = {"seconds": time.monotonic() - started, **counts}
        self.log.info(
            "gp_server: %d recorded kernel(s) in %.2fs: %s",
            len(records),
            time.monotonic() - started,
            ", ".join(f"{n} {o}" for o, n in counts.items()) or "none",
        )
        self._sweeper = asyncio.ensure_future(self._sweep_forever())
        if self.orphan_cleanup != "off":
            inventories = [load_inventory(name, self.store_id) for name in self.orphan_inventories]
            self._sweeper_of_orphans = OrphanSweeper(
                inventories, self.orphan_grace_period, self.orphan_cleanup == "dry-run", self.log
            )
            self.log.info(
                "gp_server: orphan cleanup (%s) of %s after %gs without a record",
                self.orphan_cleanup,
                ", ".join(self.orphan_inventories),
                self.orphan_grace_period,
            )
            task = asyncio.ensure_future(self._sweep_orphans_forever())
            self._background.add(task)

    async def sweep_orphans(self) -> SweepReport | None:
        """One orphan sweep against the store's records and this server's kernels.  Called
        every ``orphan_sweep_interval`` seconds from the first re-attach on."""
        if self._sweeper_of_orphans is None:
            return None
        store = await self.store()
        records = await store.records()
        recorded = {r.kernel_id for r in records} | set(self._kernels)
        recorded |= set(self._pending_kernels)
        # A kernel claimed from a pool keeps its launch id in the labels it cannot change.
        recorded |= {str(r.provisioner_info.get("launch_kernel_id") or "") for r in records}
        recorded |= self.kernels_starting_elsewhere()
        report = await self._sweeper_of_orphans.sweep(recorded)
        self.last_orphan_report = report
        return report

    def kernels_starting_elsewhere(self) -> set[str]:
        """Kernel ids this server starts outside ``start_kernel`` (not yet recorded): never
        orphans.  An override (``gp_server.pool``) adds its own."""
        return set()

    async def _sweep_orphans_forever(self) -> None:
        while True:
            try:
                await self.sweep_orphans()
            except Exception as err:  # noqa: BLE001 - a failed sweep must not end the next
                self.log.warning("gp_server: orphan sweep failed: %s", err)
            await asyncio.sleep(self.orphan_sweep_interval)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_renew_interval)
            try:
                await self.sweep()
            except Exception as err:  # noqa: BLE001 - a failed sweep must not end the next
                self.log.warning("gp_server: lease sweep failed: %s", err)

    async def sweep(self) -> None:
        """Renew our leases, give up kernels another replica took, follow the store.

        Called every ``lease_renew_interval`` seconds.  A kernel whose lease we lost (this
        process stalled past ``lease_seconds``) becomes observed, never driven twice.
        """
        store = await self.store()
        driven = [
            k for k in self.list_kernel_ids() if k not in self._observed and self._is_recordable(k)
        ]
        kept = await store.renew(self.replica_id, driven, self.lease_seconds)
        for kernel_id in sorted(set(driven) - kept):
            self.log.warning(
                "gp_server: kernel %s: lease lost to another replica; observing it from now on",
                kernel_id,
            )
            self._demote(kernel_id)
        for kernel_id in sorted(kept):
            await self._record_if_changed(kernel_id)
        records = {r.kernel_id: r for r in await store.records()}
        for kernel_id in list(self._observed):
            if kernel_id not in records:
                self.log.info("gp_server: kernel %s was shut down by its replica", kernel_id)
                self._detach(kernel_id)
        for record in records.values():
            if record.kernel_id not in self._kernels or record.kernel_id in self._observed:
                await self._reconcile(record)

    async def _record_if_changed(self, kernel_id: str) -> None:
        """Rewrite the record when the provisioner's state moved on without a restart through
        this manager (the restarter's automatic restart: new ports, new backend ids)."""
        km = self._kernels.get(kernel_id)
        if km is None or not km.ready.done():
            return
        info = await km.provisioner.get_provisioner_info()
        connection = dict(info.get("connection_info") or {})
        if not connection:
            return  # a restart in progress
        info["connection_info"] = connection
        digest = _digest(json.loads(json.dumps(info, default=_json_default)))
        if digest != self._recorded_digest.get(kernel_id):
            self.log.info("gp_server: kernel %s changed (restarted); record updated", kernel_id)
            await self.record_kernel(kernel_id)

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        """Jupyter Server's culler, for the kernels this replica drives only."""
        if kernel_id in self._observed:
            return
        await super().cull_kernel_if_idle(kernel_id)

    async def _reconcile(self, record: KernelRecord) -> str:
        """Attach ``record`` as driver when its lease is free, else as observer; drop it when
        its kernel is gone.  A kernel is listed only once it is known alive (driver) or
        attached (observer).  Returns what happened."""
        kernel_id = record.kernel_id
        store = await self.store()
        driving = await store.acquire(kernel_id, self.replica_id, self.lease_seconds)
        km = self._kernels.get(kernel_id)
        try:
            if km is None:
                km = await self._build_manager(record)
            if not driving:
                self._register(km, record)
                self._observed.add(kernel_id)
                return "observed"
            status = await km.provisioner.poll()
        except Exception as err:  # noqa: BLE001 - one bad record must not stop the others
            self.log.error(
                "gp_server: kernel %s (%s) could not be re-attached, record kept: %s",
                kernel_id,
                record.kernel_name,
                err,
            )
            if driving:
                await store.release(self.replica_id, [kernel_id])
            return "failed"
        if status is not None:
            self.log.warning(
                "gp_server: kernel %s (%s, owner %s) is gone (exit status %s); dropping its record",
                kernel_id,
                record.kernel_name,
                record.owner or "?",
                status,
            )
            self._detach(kernel_id)
            try:
                await km.provisioner.cleanup(restart=False)
            finally:
                await self.forget_kernel(kernel_id)
            return "dropped"
        was_observed = kernel_id in self._observed
        self._register(km, record)
        self._drive(kernel_id, record)
        how = "adopted from replica " + record.replica if was_observed else "re-attached"
        if not km.provisioner.liveness_known():
            km.execution_state = "unknown"
            self.log.warning(
                "gp_server: kernel %s (%s) %s; its state is unknown until its backend answers "
                "(it stays listed meanwhile)",
                kernel_id,
                record.kernel_name,
                how,
            )
            task = asyncio.ensure_future(self._resolve_unknown(kernel_id, km))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return "unknown"
        if was_observed:
            self.log.info("gp_server: kernel %s adopted from replica %s", kernel_id, record.replica)
            return "adopted"
        self.log.info("gp_server: kernel %s (%s) re-attached", kernel_id, record.kernel_name)
        return "re-attached"

    def _lists(self, kernel_id: str, km: Any) -> bool:
        """Whether this server still lists ``km`` under ``kernel_id``."""
        return self._kernels.get(kernel_id) is km

    async def _resolve_unknown(self, kernel_id: str, km: Any) -> None:
        """Follow a kernel listed as "unknown" until its backend answers: then it is "idle"
        when alive; when it ended, its restarter (already running) handles it as any death.
        Started by :meth:`_reconcile`; ends when the kernel leaves this server."""
        started = time.monotonic()
        while self._lists(kernel_id, km):
            provisioner = km.provisioner
            if isinstance(provisioner, RemoteProvisionerBase) and provisioner.liveness_known():
                status = await provisioner.poll()
                if km.execution_state == "unknown":
                    km.execution_state = "idle"
                self.log.info(
                    "gp_server: kernel %s: its backend answered after %.1fs: %s",
                    kernel_id,
                    time.monotonic() - started,
                    "alive" if status is None else f"it ended (exit status {status})",
                )
                return
            await asyncio.sleep(UNKNOWN_CHECK_INTERVAL)

    async def _build_manager(self, record: KernelRecord) -> Any:
        """A KernelManager for ``record``'s running kernel (not listed yet)."""
        assert self._fernet is not None
        kernel_id = record.kernel_id
        info = dict(record.provisioner_info)
        connection = open_connection(
            self._fernet, dict(info.get("connection_info") or {}), record.sealed_secrets, kernel_id
        )
        info["connection_info"] = connection
        km = new_kernel_manager(self, kernel_id, record.kernel_name)
        km.kernel_id = kernel_id
        provisioner = KernelProvisionerFactory.instance(
            parent=self.parent
        ).create_provisioner_instance(kernel_id, km.kernel_spec, parent=km)
        await provisioner.load_provisioner_info(info)
        km.provisioner = provisioner
        loaded = dict(connection)
        for name in ("key", "curve_publickey", "curve_secretkey"):
            if isinstance(loaded.get(name), str):
                loaded[name] = loaded[name].encode()
        km.load_connection_info(cast(KernelConnectionInfo, loaded))
        for name in ("curve_publickey", "curve_secretkey"):
            if name in loaded and hasattr(km, name):
                setattr(km, name, loaded[name])
        env = {**os.environ, **dict(record.launch_args.get("env") or {})}
        km._launch_args = {**record.launch_args, "env": env}
        # As after a start: jupyter_client gives the next restart or shutdown a fresh `ready`
        # future only when it believes a start was attempted.
        km._attempted_start = True
        if not km.ready.done():
            km.ready.set_result(None)
        return km

    def _register(self, km: Any, record: KernelRecord) -> None:
        """List ``km`` under its old kernel id, as Jupyter Server lists a kernel it started."""
        kernel_id = record.kernel_id
        if self._kernels.get(kernel_id) is km:
            return
        self._started_at[kernel_id] = record.started_at
        self._recorded_digest[kernel_id] = _digest(record.provisioner_info)
        self._kernels[kernel_id] = km
        self._kernel_connections[kernel_id] = 0
        km.execution_state = "idle"
        km.reason = ""
        km.last_activity = utcnow()
        self._kernel_ports[kernel_id] = km.ports
        self.start_watching_activity(kernel_id)
        if not self._initialized_culler:
            self.initialize_culler()

    def _drive(self, kernel_id: str, record: KernelRecord) -> None:
        """Become ``kernel_id``'s driver: its restarter and death handling run here."""
        self._observed.discard(kernel_id)
        km = self._kernels[kernel_id]
        km.start_restarter()
        self.add_restart_callback(kernel_id, lambda: self._handle_kernel_died(kernel_id), "dead")

    def _demote(self, kernel_id: str) -> None:
        km = self._kernels.get(kernel_id)
        if km is not None:
            km.stop_restarter()
        self._observed.add(kernel_id)

    def _detach(self, kernel_id: str) -> None:
        """Remove ``kernel_id`` from this server without touching the kernel."""
        km = self._kernels.get(kernel_id)
        if km is None:
            return
        km.stop_restarter()
        self.stop_watching_activity(kernel_id)
        self.stop_buffering(kernel_id)
        self._kernels.pop(kernel_id, None)
        self._kernel_connections.pop(kernel_id, None)
        self._kernel_ports.pop(kernel_id, None)
        self._observed.discard(kernel_id)

    async def _take_over_or_refuse(self, kernel_id: str, action: str) -> None:
        """Before a driver-only ``action``: make sure this replica holds the kernel's lease
        (taking it when it is free or expired), else answer 409 naming the replica that drives
        it.  A driver that stalled past its lease learns here, not at its next sweep, that
        another replica took the kernel over."""
        if not self._is_recordable(kernel_id) or self._store is None:
            return
        store = self._store
        observed = kernel_id in self._observed
        if await store.acquire(kernel_id, self.replica_id, self.lease_seconds):
            record = await store.get(kernel_id)
            if record is None or not observed:
                return
            self._drive(kernel_id, record)
            return
        record = await store.get(kernel_id)
        if record is None:
            return  # not recorded (yet): nothing to arbitrate
        if not observed:
            self.log.warning(
                "gp_server: kernel %s: lease lost to another replica; observing it from now on",
                kernel_id,
            )
            self._demote(kernel_id)
        holder = record.replica if record else "another replica"
        raise web.HTTPError(
            409,
            f"Kernel {kernel_id} is driven by replica {holder}; {action} it there, or wait up to "
            f"{self.lease_seconds:g}s (lease_seconds) for this replica to adopt it.",
        )

    async def _ready(self, kernel_id: str) -> None:
        km = self._kernels.get(kernel_id)
        ready = getattr(km, "ready", None)
        if ready is not None and not ready.done():
            await asyncio.shield(
                asyncio.wrap_future(ready) if not isinstance(ready, asyncio.Future) else ready
            )


def _digest(info: dict[str, Any]) -> str:
    """What changes when a kernel is restarted: its provisioner info, without the secret
    connection fields (sealed apart) and the launch phases' timings."""
    public = dict(info)
    public["connection_info"] = {
        k: v for k, v in dict(info.get("connection_info") or {}).items() if k not in SECRET_FIELDS
    }
    public.pop("launch_phases", None)
    return hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()


def _json_default(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else str(value)


def _persistable_launch_args(launch_args: dict[str, Any]) -> dict[str, Any]:
    """The launch arguments a restart after a re-attach needs: scalars (cwd, ...) and the
    ``KERNEL_*`` variables of the env; the rest of the env is this server's and is rebuilt."""
    kept: dict[str, Any] = {
        k: v for k, v in launch_args.items() if isinstance(v, JSON_SCALARS) and k != "kernel_id"
    }
    env = launch_args.get("env") or {}
    kept["env"] = {k: str(v) for k, v in env.items() if str(k).startswith("KERNEL_")}
    return kept
