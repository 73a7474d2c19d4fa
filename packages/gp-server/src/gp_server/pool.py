"""PoolingKernelManager: gp-server's persistent kernel manager with warm kernel pools.

``c.ServerApp.kernel_manager_class = "gp_server.PoolingKernelManager"``; pools are configured on
``KernelPools`` (``c.KernelPools.pool_sizes``, ``scope``, ...) and per kernelspec
(``metadata.kernel_provisioner.config.pool``).  See docs/operators/pools.md.

- A start request a pool can serve claims a pooled kernel: it is re-keyed to the requested id,
  listed as Jupyter Server lists a kernel it started, and recorded under the new id (the pooled
  record is deleted first, so that a crash in between can never leave one kernel in a pool and
  in a user's hands).
- Pooled kernels of remote provisioners are recorded like any kernel, with a ``kernel_pool``
  marker and their lease renewed by this replica: after a crash the next server re-attaches
  them into its pools (or drops them when they are gone, or stops them when no pool of the same
  identity wants them), another replica never adopts one it does not hold, and the orphan sweep
  never removes one.
- ``shutdown_all`` stops the pooled kernels (with ``keep_kernels_on_exit`` they stay recorded
  for the next server instead).
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server._tz import utcnow
from traitlets import Instance, default

from gp_provisioners_core import RemoteProvisionerBase
from gp_provisioners_core.inventory import STORE_ID_VARIABLE
from gp_provisioners_core.pool import KernelPools, PoolHooks, PoolTemplate
from gp_provisioners_core.pool_manager import start_pooled_kernel, stop_pooled_kernel

from .manager import PersistentKernelManager
from .store import KernelRecord

POOL_MARKER = "kernel_pool"
"""The provisioner-info key of a pooled kernel's record: its identity digest and cwd."""


class PoolingKernelManager(PersistentKernelManager):
    """Jupyter Server's kernel manager with persistence (``PersistentKernelManager``) and pools."""

    pools = Instance(KernelPools)

    @default("pools")
    def _pools_default(self) -> KernelPools:
        hooks = PoolHooks(
            start=self._start_pooled,
            stop=self._stop_pooled,
            spec_metadata=self._spec_metadata,
            claimed=None,
            may_claim=self._may_claim,
        )
        return KernelPools(hooks, parent=self, log=self.log)

    # -- Jupyter Server's calls ---------------------------------------------------------------

    async def start_kernel(  # type: ignore[override]
        self, *, kernel_id: str | None = None, path: Any = None, **kwargs: Any
    ) -> str:
        """Claim a pooled kernel for this request when a pool can serve it, else start cold."""
        if kernel_id is not None and kernel_id in self:
            return await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)
        kernel_name = str(kwargs.get("kernel_name") or self.default_kernel_name)
        env = self._request_env(kwargs.pop("env", None))
        new_id = kernel_id or self.new_kernel_id()
        request = {k: v for k, v in kwargs.items() if k != "kernel_name"}
        request["env"] = env
        request["kernel_id"] = new_id
        if path is not None:
            request["cwd"] = self.cwd_for_path(path, env=env)
        elif self.pools.match_cwd:
            request["cwd"] = self.cwd_for_path("", env=env)
        km = await self.pools.claim(kernel_name, new_id, request)
        if km is None:
            return await super().start_kernel(kernel_id=new_id, path=path, env=env, **kwargs)
        self._list_claimed(new_id, km)
        if self._is_recordable(new_id):
            await self.record_kernel(new_id)
        return new_id

    async def shutdown_all(self, now: bool = False) -> None:  # type: ignore[override]
        """Stop the pools (their kernels too, unless ``keep_kernels_on_exit``), then as
        ``PersistentKernelManager``."""
        if self.keep_kernels_on_exit and self._store is not None:
            kept = list(self.pools.pooled_kernel_ids())
            self.pools.release()
            await self._store.release(self.replica_id, kept)
        await self.pools.close()
        await super().shutdown_all(now=now)

    async def start_persistence(self) -> None:
        """Re-attach recorded kernels (pooled ones into their pools), then fill the pools of
        requests without a user (this server's environment, its root directory)."""
        await super().start_persistence()
        env = self._request_env(None)
        cwd = self.cwd_for_path("", env=env) if self.pools.match_cwd else None
        specs = self.kernel_spec_manager
        for name in sorted(specs.find_kernel_specs() if specs is not None else {}):
            try:
                self.pools.warm(name, env, cwd)
            except Exception as err:  # noqa: BLE001 - a bad kernelspec must not stop the rest
                self.log.error("Kernel pool %s: not started: %s", name, err)

    async def sweep(self) -> None:
        """Renew the leases of pooled kernels too, then as ``PersistentKernelManager``."""
        if self._store is not None:
            pooled = sorted(self.pools.pooled_kernel_ids())
            kept = await self._store.renew(self.replica_id, pooled, self.lease_seconds)
            for lost in set(pooled) - kept:
                self.log.warning("Kernel pool: lease of pooled kernel %s lost", lost)
        await super().sweep()

    def kernels_starting_elsewhere(self) -> set[str]:
        return self.pools.pooled_kernel_ids()

    def pool_stats(self) -> dict[str, Any]:
        """Sizes, claims served, misses and refill times of every pool (for operators)."""
        return self.pools.stats()

    # -- the pool's hooks ---------------------------------------------------------------------

    def _request_env(self, env: Any) -> dict[str, str]:
        """The env of a start request as ``PersistentKernelManager.start_kernel`` completes it."""
        full = dict(env or os.environ)
        full[STORE_ID_VARIABLE] = self.store_id
        return full

    def _spec_metadata(self, kernel_name: str) -> dict[str, Any]:
        if self.kernel_spec_manager is None:
            return {}
        spec = self.kernel_spec_manager.get_kernel_spec(kernel_name)
        return dict(spec.metadata or {})

    async def _start_pooled(self, pool_kernel_id: str, template: PoolTemplate) -> Any:
        km = await start_pooled_kernel(self, pool_kernel_id, template, 300.0)
        if isinstance(km.provisioner, RemoteProvisionerBase):
            identity = self.pools.identity(template.kernel_name, template.env, template.cwd)
            marker = {"identity": identity.digest, "cwd": template.cwd}
            await self.record_manager(pool_kernel_id, km, {POOL_MARKER: marker})
        return km

    async def _stop_pooled(self, km: Any) -> None:
        pool_kernel_id = str(km.kernel_id)
        try:
            await stop_pooled_kernel(km)
        finally:
            await self.forget_kernel(pool_kernel_id)

    async def _may_claim(self, km: Any, pool_kernel_id: str) -> bool:
        """Only a pooled kernel whose lease this replica holds is handed out; its pooled
        record is deleted before it gets the new id."""
        if self._store is None or not isinstance(km.provisioner, RemoteProvisionerBase):
            return True
        if not await self._store.acquire(pool_kernel_id, self.replica_id, self.lease_seconds):
            self.log.warning(
                "Kernel pool: pooled kernel %s is held by another replica; not handed out",
                pool_kernel_id,
            )
            return False
        await self.forget_kernel(pool_kernel_id)
        return True

    def _list_claimed(self, kernel_id: str, km: Any) -> None:
        """List a claimed kernel as Jupyter Server lists one it started."""
        self._kernels[kernel_id] = km
        self._kernel_connections[kernel_id] = 0
        km.execution_state = "idle"
        km.reason = ""
        km.last_activity = utcnow()
        self._kernel_ports[kernel_id] = km.ports
        km.start_restarter()
        self.start_watching_activity(kernel_id)
        self.add_restart_callback(kernel_id, lambda: self._handle_kernel_died(kernel_id), "dead")
        if not self._initialized_culler:
            self.initialize_culler()
        self.log.info("Kernel started: %s (claimed from a pool)", kernel_id)

    # -- re-attach after a restart ------------------------------------------------------------

    async def _reconcile(self, record: KernelRecord) -> str:
        marker = record.provisioner_info.get(POOL_MARKER)
        if not isinstance(marker, dict):
            return await super()._reconcile(record)
        pool_kernel_id = record.kernel_id
        if pool_kernel_id in self.pools.pooled_kernel_ids():
            return "pooled"
        store = await self.store()
        if not await store.acquire(pool_kernel_id, self.replica_id, self.lease_seconds):
            return "pooled elsewhere"
        try:
            km = await self._build_manager(record)
            status = await km.provisioner.poll()
        except Exception as err:  # noqa: BLE001 - one bad record must not stop the others
            self.log.error("Kernel pool: pooled kernel %s not re-attached: %s", pool_kernel_id, err)
            await store.release(self.replica_id, [pool_kernel_id])
            return "failed"
        if status is not None:
            await self._stop_pooled(km)
            return "dropped"
        cwd = marker.get("cwd")
        env = self._request_env({**os.environ, **dict(record.launch_args.get("env") or {})})
        identity = self.pools.identity(record.kernel_name, env, cwd)
        if identity.digest != marker.get("identity") or not self.pools.adopt(
            record.kernel_name, env, cwd, km, pool_kernel_id
        ):
            self.log.info(
                "Kernel pool: pooled kernel %s (%s) matches no pool of this server; stopping it",
                pool_kernel_id,
                record.kernel_name,
            )
            await self._stop_pooled(km)
            return "retired"
        self.log.info("Kernel pool: pooled kernel %s re-attached", pool_kernel_id)
        return "pooled"


__all__ = ["POOL_MARKER", "PoolingKernelManager"]
