"""jupyter_client's ``AsyncMultiKernelManager`` with warm kernel pools.

``start_kernel`` first asks :class:`~gp_provisioners_core.pool.KernelPools` for a ready kernel
of the request's identity; a claimed kernel is listed under the requested id at once, anything
else starts cold exactly as before.  ``shutdown_all`` stops the pooled kernels too.  Use it in
any application that drives kernels through jupyter_client (the benchmark does); Jupyter Server
uses gp-server's ``PoolingKernelManager``.  See docs/operators/pools.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from jupyter_client.multikernelmanager import AsyncMultiKernelManager, DuplicateKernelError
from traitlets import Float, Instance, default

from .pool import KernelPools, PoolHooks, PoolTemplate


def new_kernel_manager(owner: Any, kernel_id: str, kernel_name: str) -> Any:
    """A kernel manager for ``kernel_id`` made as jupyter_client's ``MultiKernelManager``
    makes one (``owner.kernel_manager_factory``, the connection file in
    ``owner.connection_dir``, ``owner``'s kernelspec manager).  Called for pooled kernels here
    and by gp-server when it re-attaches a stored kernel."""
    constructor: dict[str, Any] = {}
    if owner.kernel_spec_manager:
        constructor["kernel_spec_manager"] = owner.kernel_spec_manager
    return owner.kernel_manager_factory(
        connection_file=os.path.join(owner.connection_dir, f"kernel-{kernel_id}.json"),
        parent=owner,
        log=owner.log,
        kernel_name=kernel_name,
        **constructor,
    )


async def start_pooled_kernel(
    owner: Any, pool_kernel_id: str, template: PoolTemplate, ready_timeout: float
) -> Any:
    """Start one kernel for a pool with ``owner.kernel_manager_factory`` and wait until it has
    answered ``kernel_info``.  Called through :class:`PoolHooks` ``start`` by the pool owners;
    on failure the half-started kernel is shut down before the error propagates."""
    manager = new_kernel_manager(owner, pool_kernel_id, template.kernel_name)
    kwargs: dict[str, Any] = {"kernel_id": pool_kernel_id, "env": dict(template.env)}
    if template.cwd is not None:
        kwargs["cwd"] = template.cwd
    try:
        await manager.start_kernel(**kwargs)
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=ready_timeout)
        finally:
            client.stop_channels()
    except BaseException:
        if manager.has_kernel:
            await manager.shutdown_kernel(now=True)
        raise
    return manager


async def stop_pooled_kernel(manager: Any) -> None:
    """Shut one pooled kernel down and remove what it left (connection file, backend)."""
    if manager.has_kernel:
        await manager.shutdown_kernel(now=True)
    else:
        await manager.cleanup_resources()


class PooledMultiKernelManager(AsyncMultiKernelManager):
    """``AsyncMultiKernelManager`` whose kernelspecs may have warm pools."""

    pools = Instance(KernelPools)
    ready_timeout = Float(
        120.0, config=True, help="Seconds a pooled kernel may take to answer kernel_info."
    )

    @default("pools")
    def _pools_default(self) -> KernelPools:
        hooks = PoolHooks(
            start=lambda pid, template: start_pooled_kernel(
                self, pid, template, float(self.ready_timeout)
            ),
            stop=stop_pooled_kernel,
            spec_metadata=self._spec_metadata,
        )
        return KernelPools(hooks, parent=self, log=self.log)

    def _spec_metadata(self, kernel_name: str) -> Mapping[str, Any]:
        specs = self.kernel_spec_manager
        if specs is None:
            return {}
        spec = specs.get_kernel_spec(kernel_name)
        return dict(spec.metadata or {})

    def warm_pools(
        self, kernel_names: list[str], env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> None:
        """Make and fill the pools of ``kernel_names`` for requests carrying ``env`` (default
        this process's environment) and ``cwd``.  Needs a running event loop."""
        for name in kernel_names:
            self.pools.warm(name, dict(os.environ if env is None else env), cwd)

    async def _async_start_kernel(self, *, kernel_name: str | None = None, **kwargs: Any) -> str:
        name = kernel_name or self.default_kernel_name
        kernel_id = str(kwargs.get("kernel_id") or self.new_kernel_id(**kwargs))
        if kernel_id in self:
            raise DuplicateKernelError(f"Kernel already exists: {kernel_id}")
        request = {**kwargs, "kernel_id": kernel_id}
        request.setdefault("env", dict(os.environ))
        manager = await self.pools.claim(name, kernel_id, request)
        if manager is not None:
            self._kernels[kernel_id] = manager
            return kernel_id
        return str(await super()._async_start_kernel(kernel_name=name, **request))

    start_kernel = _async_start_kernel

    async def _async_shutdown_all(self, now: bool = False) -> None:
        await self.pools.close()
        await super()._async_shutdown_all(now=now)

    shutdown_all = _async_shutdown_all


__all__ = ["PooledMultiKernelManager", "start_pooled_kernel", "stop_pooled_kernel"]
