"""The contract between a backend's inventory and gp-server's orphan sweep.

A backend that can list what this project created on it (containers and services by label, pods
by label, processes by launcher argv, jobs by name) offers a :class:`ResourceInventory` whose
listing is made of :class:`BackendResource` records. gp-server's ``OrphanSweeper`` compares the
listing with its store and removes what no record claims. Defined here, in the core that every
backend and gp-server depend on, so neither side depends on the other.

A server that persists its kernels puts ``KERNEL_GP_SERVER_STORE=<store id>`` into every launch's
environment (:data:`STORE_ID_VARIABLE`); an inventory lists only resources carrying its store
id, so two deployments on one backend never remove each other's kernels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

STORE_ID_VARIABLE = "KERNEL_GP_SERVER_STORE"
MAX_STORE_ID_CHARS = 64


def launch_store_id(env: Mapping[str, str]) -> str:
    """The store id a launch's environment names (:data:`STORE_ID_VARIABLE`), or '' when it
    names none or the value is not a store id (lowercase hex digits, at most 64).  Called by
    backends that mark what they submit with the id in a field of their own (a Slurm job
    comment, a YARN application tag), where nothing else may be written."""
    store = env.get(STORE_ID_VARIABLE, "")
    if len(store) > MAX_STORE_ID_CHARS or not all(c in "0123456789abcdef" for c in store):
        return ""
    return store


@dataclass(frozen=True)
class BackendResource:
    """One thing a backend runs for one kernel."""

    backend: str
    kind: str
    name: str
    kernel_id: str
    created_at: float | None = None
    """Seconds since the epoch when the backend says; None when it does not."""
    owner_alive: bool = False
    """True when the backend knows the process that started it still lives (never an orphan)."""

    def describe(self) -> str:
        return f"{self.backend} {self.kind} {self.name} (kernel {self.kernel_id})"


class ResourceInventory(Protocol):
    """What a backend offers the sweeper.  Both methods must run blocking calls off the loop.

    Constructed with ``store_id``: list only resources whose launch environment has
    ``KERNEL_GP_SERVER_STORE=<store_id>``.
    """

    name: str

    async def list_resources(self) -> list[BackendResource]:
        """Everything of ours on this backend (labelled or named by kernel id)."""
        ...

    async def remove(self, resource: BackendResource) -> None:
        """Remove ``resource`` (and what it owns); idempotent."""
        ...
