"""Warm kernel pools: kernels started ahead, claimed by start requests they can serve.

A :class:`KernelPool` keeps ``size`` ready kernel managers for one :class:`PoolIdentity`
(kernelspec + everything the kernels were started with), refilled in the background.
:class:`KernelPools` owns the pools of one kernel-manager process: it decides which pool a start
request belongs to, creates pools (``shared`` or ``per-user`` scope), bounds their number, size
and idle time, and reports what they did.  It knows nothing of how a kernel is started or
stopped: its owner (``PooledMultiKernelManager``, gp-server's ``PoolingKernelManager``) binds
:class:`PoolHooks`.  See docs/operators/pools.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from . import pool_metrics
from .pool_identity import (
    DEFAULT_IGNORED_ENV,
    PoolIdentity,
    PoolSettings,
    identity_of,
    pool_settings,
)

POOLABLE_KWARGS = frozenset({"env", "cwd", "kernel_id"})
"""Start arguments a pooled kernel can honour; a request with any other is started cold."""


@dataclass(frozen=True)
class PoolTemplate:
    """What the kernels of one pool are started with."""

    kernel_name: str
    env: Mapping[str, str]
    cwd: str | None


@dataclass
class PoolHooks:
    """What a pool's owner does for it.

    ``start(pool_kernel_id, template)`` starts a kernel under ``pool_kernel_id`` and returns its
    manager once the kernel answered a ``kernel_info_request``; ``stop(manager)`` shuts one down
    and removes what it left; ``claimed(manager, pool_kernel_id)`` runs after a claim re-keyed
    ``manager`` (records, relabels); ``may_claim(manager, pool_kernel_id)`` runs before a
    claim and may refuse it (the kernel is then dropped from the pool, not stopped: another
    replica holds it); ``spec_metadata(kernel_name)`` is the kernelspec's ``metadata``.
    """

    start: Callable[[str, PoolTemplate], Awaitable[Any]]
    stop: Callable[[Any], Awaitable[None]]
    spec_metadata: Callable[[str], Mapping[str, Any]]
    claimed: Callable[[Any, str], Awaitable[None]] | None = None
    may_claim: Callable[[Any, str], Awaitable[bool]] | None = None


@dataclass
class PooledKernel:
    manager: Any
    pool_kernel_id: str
    ready_at: float = field(default_factory=time.monotonic)


async def rekey_manager(manager: Any, kernel_id: str) -> None:
    """Give a started kernel manager (and its provisioner) the id ``kernel_id``.

    Called by :meth:`KernelPool.claim`.  A provisioner with ``adopt_kernel_id`` (every gp-*
    provisioner) relabels what it can on its backend; others (jupyter_client's
    LocalProvisioner) only take the new id.  The connection file is renamed to match.
    """
    old_id = str(manager.kernel_id)
    provisioner = manager.provisioner
    adopt = getattr(provisioner, "adopt_kernel_id", None)
    if adopt is not None:
        await adopt(kernel_id)
    elif provisioner is not None:
        provisioner.kernel_id = kernel_id
    manager.kernel_id = kernel_id
    old_file = str(manager.connection_file or "")
    if old_file and old_id in os.path.basename(old_file):
        new_file = os.path.join(
            os.path.dirname(old_file), os.path.basename(old_file).replace(old_id, kernel_id)
        )
        with contextlib.suppress(FileNotFoundError):
            os.replace(old_file, new_file)
        manager.connection_file = new_file
    launch_args = getattr(manager, "_launch_args", None)
    if isinstance(launch_args, dict) and "kernel_id" in launch_args:
        launch_args["kernel_id"] = kernel_id


class KernelPool:
    """The ready kernels of one identity.  Created and driven by :class:`KernelPools`."""

    def __init__(
        self,
        identity: PoolIdentity,
        template: PoolTemplate,
        settings: PoolSettings,
        owner: KernelPools,
    ) -> None:
        self.identity = identity
        self.template = template
        self.settings = settings
        self.owner = owner
        self.ready: deque[PooledKernel] = deque()
        self.starting: dict[str, asyncio.Task[None]] = {}
        self.served = 0
        self.failures = 0
        self.refills = 0
        self.last_refill_seconds = 0.0
        self.last_used = time.monotonic()
        self._retry_at = 0.0
        self.closed = False

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[Any]:
        log: logging.Logger | logging.LoggerAdapter[Any] = self.owner.log
        return log

    def pooled_kernel_ids(self) -> set[str]:
        return {k.pool_kernel_id for k in self.ready} | set(self.starting)

    def fill(self) -> None:
        """Start kernels until ``size`` are ready or starting (within the owner's budget)."""
        if self.closed or time.monotonic() < self._retry_at:
            return
        while len(self.ready) + len(self.starting) < self.settings.size and self.owner.may_start():
            pool_kernel_id = str(uuid.uuid4())
            task = asyncio.ensure_future(self._start_one(pool_kernel_id))
            self.starting[pool_kernel_id] = task

    async def _start_one(self, pool_kernel_id: str) -> None:
        started = time.monotonic()
        try:
            manager = await self.owner.hooks.start(pool_kernel_id, self.template)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a failed refill is logged and retried later
            self.failures += 1
            delay = min(60.0, 2.0 ** min(self.failures, 6))
            self._retry_at = time.monotonic() + delay
            self.log.warning(
                "Kernel pool %s: starting a kernel failed (retry in %gs): %s",
                self.identity.describe(),
                delay,
                err,
            )
            return
        finally:
            self.starting.pop(pool_kernel_id, None)
        seconds = time.monotonic() - started
        self.refills += 1
        self.last_refill_seconds = seconds
        self.failures = 0
        pool_metrics.refilled(self.identity.kernel_name, seconds)
        if self.closed:
            await self.owner.stop_quietly(manager)
            return
        self.ready.append(PooledKernel(manager, pool_kernel_id))
        self.owner.publish()
        self.log.info(
            "Kernel pool %s: kernel %s ready in %.2fs (%d ready)",
            self.identity.describe(),
            pool_kernel_id,
            seconds,
            len(self.ready),
        )

    def adopt(self, manager: Any, pool_kernel_id: str) -> None:
        """Take a running pooled kernel back (re-attached after a server restart)."""
        self.ready.append(PooledKernel(manager, pool_kernel_id))
        self.owner.publish()

    async def claim(self, kernel_id: str, username: str) -> Any | None:
        """A ready kernel re-keyed to ``kernel_id``, or None when none is ready and alive."""
        self.last_used = time.monotonic()
        while self.ready:
            entry = self.ready.popleft()
            started_for = str(self.template.env.get("KERNEL_USERNAME") or "")
            if username != started_for:  # never another user's kernel, whatever the digest
                self.owner.spawn(self.owner.stop_quietly(entry.manager))
                raise RuntimeError(
                    f"Kernel pool {self.identity.describe()}: a request of user {username!r} "
                    f"matched kernels started for {started_for!r}; refusing to hand one over"
                )
            if not await entry.manager.is_alive():
                self.log.warning(
                    "Kernel pool %s: pooled kernel %s died; dropping it",
                    self.identity.describe(),
                    entry.pool_kernel_id,
                )
                self.owner.spawn(self.owner.stop_quietly(entry.manager))
                continue
            may_claim = self.owner.hooks.may_claim
            if may_claim is not None and not await may_claim(entry.manager, entry.pool_kernel_id):
                continue
            await rekey_manager(entry.manager, kernel_id)
            if self.owner.hooks.claimed is not None:
                await self.owner.hooks.claimed(entry.manager, entry.pool_kernel_id)
            self.served += 1
            self.log.info(
                "Kernel pool %s: kernel %s claimed as %s",
                self.identity.describe(),
                entry.pool_kernel_id,
                kernel_id,
            )
            # Refill a moment later: the new kernel's boot must not compete for the CPU with
            # the claimed kernel's first replies (refill_delay).
            asyncio.get_running_loop().call_later(self.owner.refill_delay, self.fill)
            self.owner.publish()
            return entry.manager
        self.fill()
        return None

    async def retire_idle(self) -> None:
        """Stop ready kernels nobody claimed within ``max_idle``; the next fill replaces them."""
        if not self.settings.max_idle:
            return
        limit = time.monotonic() - self.settings.max_idle
        for entry in [e for e in self.ready if e.ready_at < limit]:
            self.ready.remove(entry)
            self.log.info(
                "Kernel pool %s: retiring kernel %s, unclaimed for %gs (max_idle)",
                self.identity.describe(),
                entry.pool_kernel_id,
                self.settings.max_idle,
            )
            await self.owner.stop_quietly(entry.manager)

    async def close(self, wait: float) -> None:
        """Stop every kernel of this pool; launches in progress get ``wait`` seconds to end
        (then they are stopped too), so nothing is left on the backend."""
        self.closed = True
        if self.starting:
            await asyncio.wait(list(self.starting.values()), timeout=wait)
            for task in list(self.starting.values()):
                task.cancel()
        while self.ready:
            await self.owner.stop_quietly(self.ready.popleft().manager)

    def stats(self) -> dict[str, Any]:
        return {
            "kernelspec": self.identity.kernel_name,
            "identity": self.identity.digest[:12],
            "user": self.identity.username,
            "size": self.settings.size,
            "ready": len(self.ready),
            "starting": len(self.starting),
            "served": self.served,
            "refills": self.refills,
            "last_refill_seconds": round(self.last_refill_seconds, 3),
            "failing": self.failures,
        }


class KernelPools(LoggingConfigurable):
    """Every pool of one kernel manager, configured by traitlets and kernelspecs."""

    pool_sizes = Dict(
        value_trait=Int(),
        config=True,
        help="""Ready kernels per pool, by kernelspec name ({"python_ssh": 2}); a kernelspec's
        metadata.kernel_provisioner.config.pool wins.  Kernelspecs not named have no pool.""",
    )
    max_idle = Float(
        0.0,
        config=True,
        help="Seconds a pooled kernel may wait unclaimed before it is replaced (0: forever).",
    )
    scope = Enum(
        ["shared", "per-user"],
        "shared",
        config=True,
        help="""shared: pools only for requests without a user identity (KERNEL_USERNAME,
        KERNEL_UID, KERNEL_GID); per-user: one pool per identity, made by its first request.""",
    )
    max_pools = Int(16, config=True, help="At most this many pools (identities) at a time.")
    max_pooled_kernels = Int(
        32, config=True, help="At most this many pooled (unclaimed) kernels in all pools."
    )
    pool_ttl = Float(
        1800.0,
        config=True,
        help="Seconds without a request after which a pool made by a request is removed.",
    )
    ignored_env = List(
        Unicode(),
        list(DEFAULT_IGNORED_ENV),
        config=True,
        help="Per-request environment variables that do not separate pools.",
    )
    match_cwd = Bool(
        True, config=True, help="Requests for another working directory do not share a pool."
    )
    maintenance_interval = Float(
        15.0, config=True, help="Seconds between checks of idle kernels and unused pools."
    )
    refill_delay = Float(
        0.5,
        config=True,
        help="""Seconds after a claim before its pool starts a replacement, so that the claimed
        kernel's first replies do not compete with another kernel's start-up.""",
    )
    close_wait = Float(
        120.0, config=True, help="Seconds shutdown waits for pooled launches in progress."
    )

    def __init__(self, hooks: PoolHooks, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hooks = hooks
        self.pools: dict[str, KernelPool] = {}
        self.misses: dict[str, int] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._maintainer: asyncio.Task[None] | None = None
        self.closed = False

    # -- what the owner calls -----------------------------------------------------------------

    def settings_for(
        self, kernel_name: str, metadata: Mapping[str, Any] | None = None
    ) -> PoolSettings:
        """``kernel_name``'s pool settings (``metadata``: its kernelspec's, read when None)."""
        if metadata is None:
            metadata = self.hooks.spec_metadata(kernel_name)
        return pool_settings(
            kernel_name, metadata, int(self.pool_sizes.get(kernel_name, 0)), self.max_idle
        )

    def identity(
        self,
        kernel_name: str,
        env: Mapping[str, str] | None,
        cwd: str | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> PoolIdentity:
        """The pool key of a request for ``kernel_name`` as its kernelspec reads now
        (``metadata``: the kernelspec's, read when None)."""
        if metadata is None:
            metadata = self.hooks.spec_metadata(kernel_name)
        return identity_of(
            kernel_name,
            env,
            cwd,
            ignored_env=tuple(self.ignored_env),
            match_cwd=self.match_cwd,
            spec_metadata=metadata,
        )

    def warm(
        self, kernel_name: str, env: Mapping[str, str] | None, cwd: str | None = None
    ) -> KernelPool | None:
        """Make (or refill) the pool of this template.  Called by the owner at start for each
        kernelspec with a pool, and by :meth:`claim` after a miss the scope allows to learn."""
        if self.closed:
            return None
        metadata = self.hooks.spec_metadata(kernel_name)
        settings = self.settings_for(kernel_name, metadata)
        if settings.size <= 0:
            return None
        identity = self.identity(kernel_name, env, cwd, metadata)
        if identity.has_user and self.scope != "per-user":
            return None
        pool = self.pools.get(identity.digest)
        if pool is None:
            if len(self.pools) >= self.max_pools and not self._evict_one():
                return None
            template = PoolTemplate(kernel_name, dict(env or {}), cwd)
            pool = KernelPool(identity, template, settings, self)
            self.pools[identity.digest] = pool
            self.log.info("Kernel pool %s: created (size %d)", identity.describe(), settings.size)
        self._ensure_maintainer()
        pool.fill()
        self.publish()
        return pool

    async def claim(
        self, kernel_name: str, kernel_id: str, start_kwargs: Mapping[str, Any]
    ) -> Any | None:
        """A ready kernel for this start request, re-keyed to ``kernel_id``; None: start it
        cold (no pool for its kernelspec or identity, arguments a pool cannot honour, or the
        pool is empty, in which case it is refilled)."""
        if self.closed or set(start_kwargs) - POOLABLE_KWARGS:
            return None
        metadata = self.hooks.spec_metadata(kernel_name)  # read once per request
        settings = self.settings_for(kernel_name, metadata)
        if settings.size <= 0:
            return None
        env = start_kwargs.get("env")
        cwd = start_kwargs.get("cwd")
        identity = self.identity(kernel_name, env, cwd, metadata)
        pool = self.pools.get(identity.digest)
        user = str(dict(env or {}).get("KERNEL_USERNAME") or "")
        manager = await pool.claim(kernel_id, user) if pool is not None else None
        if manager is not None:
            pool_metrics.claimed(kernel_name, served=True)
            return manager
        self.misses[kernel_name] = self.misses.get(kernel_name, 0) + 1
        pool_metrics.claimed(kernel_name, served=False)
        if pool is None:
            self.warm(kernel_name, env, cwd)
        return None

    def pooled_kernel_ids(self) -> set[str]:
        """Kernel ids of every pooled kernel, ready or starting (for orphan sweeps)."""
        ids: set[str] = set()
        for pool in self.pools.values():
            ids |= pool.pooled_kernel_ids()
        return ids

    def adopt(
        self, kernel_name: str, env: Mapping[str, str], cwd: str | None, manager: Any, pid: str
    ) -> bool:
        """Put a re-attached pooled kernel back in its pool; False when no pool wants it (the
        caller stops it)."""
        pool = self.warm(kernel_name, env, cwd)
        if pool is None or len(pool.ready) >= pool.settings.size:
            return False
        pool.adopt(manager, pid)
        return True

    def release(self) -> None:
        """Forget every ready pooled kernel without stopping it (the owner keeps them for the
        next server); launches in progress are still stopped by :meth:`close`."""
        for pool in self.pools.values():
            pool.ready.clear()
        self.publish()

    async def close(self) -> None:
        """Stop every pooled kernel.  Called by the owner's ``shutdown_all``."""
        self.closed = True
        if self._maintainer is not None:
            self._maintainer.cancel()
        await asyncio.gather(*(p.close(self.close_wait) for p in self.pools.values()))
        if self._background:
            await asyncio.wait(list(self._background), timeout=self.close_wait)
        self.pools.clear()
        self.publish()

    def stats(self) -> dict[str, Any]:
        """Operator-visible state: every pool, misses per kernelspec and totals."""
        pools = [p.stats() for p in self.pools.values()]
        return {
            "pools": pools,
            "misses": dict(self.misses),
            "ready": sum(p["ready"] for p in pools),
            "starting": sum(p["starting"] for p in pools),
            "served": sum(p["served"] for p in pools),
        }

    # -- for the pools ------------------------------------------------------------------------

    def may_start(self) -> bool:
        total = sum(len(p.ready) + len(p.starting) for p in self.pools.values())
        return not self.closed and total < self.max_pooled_kernels

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop_quietly(self, manager: Any) -> None:
        try:
            await self.hooks.stop(manager)
        except Exception as err:  # noqa: BLE001 - one failed stop must not stop the others
            self.log.warning("Kernel pool: stopping kernel %s failed: %s", manager.kernel_id, err)

    def publish(self) -> None:
        by_spec: dict[str, int] = {}
        for pool in self.pools.values():
            name = pool.identity.kernel_name
            by_spec[name] = by_spec.get(name, 0) + len(pool.ready)
        pool_metrics.ready(by_spec)

    def _evict_one(self) -> bool:
        """Remove the least recently used pool made by a request (one with a user)."""
        candidates = [p for p in self.pools.values() if p.identity.has_user]
        if not candidates:
            return False
        victim = min(candidates, key=lambda p: p.last_used)
        self._remove(victim, "to make room (max_pools)")
        return True

    def _remove(self, pool: KernelPool, why: str) -> None:
        self.pools.pop(pool.identity.digest, None)
        self.log.info("Kernel pool %s: removed %s", pool.identity.describe(), why)
        self.spawn(pool.close(self.close_wait))

    def _ensure_maintainer(self) -> None:
        if self._maintainer is None or self._maintainer.done():
            self._maintainer = asyncio.ensure_future(self._maintain_forever())

    async def _maintain_forever(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.maintenance_interval)
            try:
                await self.maintain()
            except Exception as err:  # noqa: BLE001 - a failed round must not end the next
                self.log.warning("Kernel pools: maintenance failed: %s", err)

    async def maintain(self) -> None:
        """Retire idle kernels, remove unused learned pools, refill.  Called every
        ``maintenance_interval`` seconds."""
        now = time.monotonic()
        for pool in list(self.pools.values()):
            if pool.identity.has_user and now - pool.last_used > self.pool_ttl:
                self._remove(pool, f"unused for {self.pool_ttl:g}s (pool_ttl)")
                continue
            try:
                template = pool.template
                current = self.identity(template.kernel_name, template.env, template.cwd)
                stale = current.digest != pool.identity.digest
            except Exception as err:  # noqa: BLE001 - a kernelspec removed or made invalid
                self.log.warning("Kernel pool %s: %s", pool.identity.describe(), err)
                stale = True
            if stale:
                self._remove(pool, "(its kernelspec changed)")
                try:
                    self.warm(pool.template.kernel_name, pool.template.env, pool.template.cwd)
                except Exception as err:  # noqa: BLE001 - logged; requests will say it too
                    self.log.warning("Kernel pool %s: %s", pool.identity.describe(), err)
                continue
            await pool.retire_idle()
            pool.fill()
        self.publish()


__all__ = [
    "POOLABLE_KWARGS",
    "KernelPool",
    "KernelPools",
    "PoolHooks",
    "PoolTemplate",
    "PooledKernel",
    "rekey_manager",
]
