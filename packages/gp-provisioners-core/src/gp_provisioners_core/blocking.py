"""Running blocking client libraries off the event loop, on named worker pools.

The kubernetes client, docker-py and paramiko block.  Each backend runs their calls through
:func:`run_blocking` on a pool of its own (``"gp-k8s-api"``, ``"gp-docker-sdk"``, ``"gp-ssh"``),
so that many concurrent launches on one backend neither starve the loop's default executor nor
another backend.  A pool is made on first use and lives for the process.

Its size belongs to the process, not to a kernel: :func:`configure_pool` sets it once, before
or at first use; a second call with another size raises :class:`PoolConfigurationError`
instead of one caller's choice silently losing.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_WORKERS = 16

_lock = threading.Lock()
_sizes: dict[str, int] = {}
_pools: dict[str, ThreadPoolExecutor] = {}


class PoolConfigurationError(RuntimeError):
    """A pool's size was configured twice with different values."""


def configure_pool(name: str, workers: int) -> None:
    """Fix the number of worker threads of pool ``name`` for this process.

    Called by a backend (or an application) before the pool's first use; calling it again
    with the same size is harmless.  Raises :class:`PoolConfigurationError` naming both sizes
    when the pool already has another one, and ``ValueError`` for a size below 1.
    """
    if workers < 1:
        raise ValueError(f"pool {name!r}: {workers} worker threads; give at least 1")
    with _lock:
        current = _sizes.get(name)
        if current is not None and current != workers:
            raise PoolConfigurationError(
                f"pool {name!r} already has {current} worker threads (configured or in use); "
                f"{workers} was asked for. Configure it once per process, before first use"
            )
        _sizes[name] = workers


def executor(name: str, default_workers: int = DEFAULT_WORKERS) -> ThreadPoolExecutor:
    """The pool ``name``, made on first use with its configured size (else
    ``default_workers``, which then becomes its size for the process)."""
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            workers = _sizes.setdefault(name, default_workers)
            pool = _pools[name] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return pool


def pool_size(name: str) -> int | None:
    """The size pool ``name`` has or will have, ``None`` if nothing configured or used it."""
    with _lock:
        return _sizes.get(name)


async def run_blocking(
    pool: str,
    function: Callable[..., T],
    *args: Any,
    default_workers: int = DEFAULT_WORKERS,
    **kwargs: Any,
) -> T:
    """Await ``function(*args, **kwargs)`` run on a thread of pool ``pool``.

    Called by backends for every call into a blocking client library; the caller's event loop
    keeps running meanwhile.  Exceptions of ``function`` propagate unchanged.
    """
    call = functools.partial(function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor(pool, default_workers), call)
