"""Choosing a host for the next kernel: pure logic, no I/O."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

ALGORITHMS = ("round-robin", "least-connection")


class HostSelector:
    """Picks hosts round-robin or by fewest live kernels, skipping hosts in cool-down.

    One instance per process is shared by every DistributedProvisioner (``shared()``), so the
    rotation and the live-kernel counts cover all kernels of the process.
    """

    _shared: HostSelector | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_index = 0
        self._live: Counter[str] = Counter()
        self._cooling_until: dict[str, float] = {}

    @classmethod
    def shared(cls) -> HostSelector:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def choose(self, hosts: Sequence[str], algorithm: str, now: float | None = None) -> str:
        """Return the host for the next kernel and count it as live.

        Raises ``ValueError`` naming the algorithm when it is unknown, and ``LookupError`` when
        every host is cooling down after a failure.
        """
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"load_balancing_algorithm {algorithm!r} is unknown; choose one of "
                + ", ".join(ALGORITHMS)
            )
        if not hosts:
            raise LookupError("remote_hosts is empty")
        now = time.monotonic() if now is None else now
        with self._lock:
            usable = [h for h in hosts if self._cooling_until.get(h, 0.0) <= now]
            if not usable:
                raise LookupError(
                    "every host in remote_hosts is cooling down after a failure: "
                    + ", ".join(hosts)
                )
            rotation = [usable[(self._next_index + i) % len(usable)] for i in range(len(usable))]
            if algorithm == "least-connection":
                fewest = min(self._live[h] for h in usable)
                host = next(h for h in rotation if self._live[h] == fewest)
            else:
                host = rotation[0]
            self._next_index = (usable.index(host) + 1) % len(usable)
            self._live[host] += 1
            return host

    @classmethod
    def reset_shared(cls) -> HostSelector:
        """Replace the shared instance with a fresh one (rotation, counts and cool-downs
        forgotten); for tests and for an application that reloads its configuration."""
        with cls._shared_lock:
            cls._shared = cls()
            return cls._shared

    def attach(self, host: str) -> None:
        """Count a kernel this process re-attached to (started elsewhere) as live on ``host``."""
        with self._lock:
            self._live[host] += 1

    def release(self, host: str) -> None:
        """A kernel on ``host`` ended (or its launch failed)."""
        with self._lock:
            if self._live[host] > 0:
                self._live[host] -= 1

    def cool_down(self, host: str, seconds: float, now: float | None = None) -> None:
        """Skip ``host`` for ``seconds`` (it was unreachable or refused a launch)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._cooling_until[host] = now + seconds

    def is_cooling(self, host: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._cooling_until.get(host, 0.0) > now

    def live_kernels(self, host: str) -> int:
        with self._lock:
            return self._live[host]
