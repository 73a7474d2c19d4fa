"""Orphan cleanup: backend resources of ours that no record (and no live owner) claims.

"Ours" means started by a server using the same store: ``PersistentKernelManager`` adds
``KERNEL_GP_SERVER_STORE=<store id>`` to every launch's environment (``KERNEL_*`` variables
travel with the kernel to every backend), and an inventory lists only resources carrying it, so
two deployments on one backend never remove each other's kernels.

Each backend can list what this project created there (an *inventory*: processes by their
launcher argv, containers and services by label, pods by label, jobs by name).  The
:class:`OrphanSweeper` compares that list with the store: a resource whose kernel id has no
record, and whose owner (when the backend can tell) is dead, is removed once it has been an
orphan for ``grace_period`` seconds, or only reported in dry-run mode.  The grace period covers
a launch in progress: a kernel is recorded when it is ready, not when it is submitted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from gp_provisioners_core.inventory import STORE_ID_VARIABLE, BackendResource, ResourceInventory


@dataclass
class SweepReport:
    removed: list[BackendResource]
    would_remove: list[BackendResource]
    waiting: list[BackendResource]
    failed: list[str]


class OrphanSweeper:
    """Finds and removes orphans.  Called by ``PersistentKernelManager`` after its re-attach
    and then every ``orphan_sweep_interval`` seconds; ``recorded`` is every kernel id of the
    store plus the ones this server is starting."""

    def __init__(
        self,
        inventories: list[ResourceInventory],
        grace_period: float,
        dry_run: bool,
        log: logging.Logger,
    ) -> None:
        self.inventories = inventories
        self.grace_period = grace_period
        self.dry_run = dry_run
        self.log = log
        self._first_seen: dict[tuple[str, str, str], float] = {}

    async def sweep(self, recorded: set[str]) -> SweepReport:
        report = SweepReport([], [], [], [])
        now = time.time()
        seen: set[tuple[str, str, str]] = set()
        for inventory in self.inventories:
            try:
                resources = await inventory.list_resources()
            except Exception as err:  # noqa: BLE001 - one backend down must not stop the rest
                report.failed.append(f"{inventory.name}: listing failed: {err}")
                self.log.warning("gp_server: orphan sweep of %s: %s", inventory.name, err)
                continue
            for resource in resources:
                if resource.kernel_id in recorded or resource.owner_alive:
                    continue
                key = (resource.backend, resource.kind, resource.name)
                seen.add(key)
                since = self._first_seen.setdefault(key, now)
                if resource.created_at is not None:
                    since = min(since, resource.created_at)
                age = now - since
                if age < self.grace_period:
                    report.waiting.append(resource)
                    continue
                if self.dry_run:
                    report.would_remove.append(resource)
                    self.log.warning(
                        "gp_server: orphan %s, %.0fs without a record; dry run, not removed",
                        resource.describe(),
                        age,
                    )
                    continue
                try:
                    await inventory.remove(resource)
                except Exception as err:  # noqa: BLE001 - reported, retried next sweep
                    report.failed.append(f"{resource.describe()}: {err}")
                    self.log.warning("gp_server: removing orphan %s: %s", resource.describe(), err)
                    continue
                report.removed.append(resource)
                self.log.warning(
                    "gp_server: removed orphan %s, %.0fs without a record",
                    resource.describe(),
                    age,
                )
        for key in set(self._first_seen) - seen:
            del self._first_seen[key]
        return report


# -- the local inventory (gp-distributed's launchers on this host) -------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def local_launchers(store_id: str) -> list[BackendResource]:
    """The gp launchers of ``store_id`` running on this host: session leaders whose argv carries
    ``--kernel-id`` and ``--response-address`` (the distributed provisioner starts each in a
    session of its own) and whose environment names the store.  Their owner lives while their
    parent is not init (pid 1), which adopts them when the server that started them dies."""
    marker = f"{STORE_ID_VARIABLE}={store_id}".encode()
    found = []
    boot = _boot_time()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "--kernel-id" not in words or "--response-address" not in words:
            continue
        pid = int(entry.name)
        state, ppid, session, started = stat[0], int(stat[1]), int(stat[3]), int(stat[19])
        if session != pid or state == "Z":
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:
            continue
        index = words.index("--kernel-id") + 1
        if index >= len(words):
            continue
        found.append(
            BackendResource(
                backend="local",
                kind="process",
                name=str(pid),
                kernel_id=words[index],
                created_at=boot + started / _CLOCK_TICKS,
                owner_alive=ppid > 1,
            )
        )
    return found


class LocalProcessInventory:
    """Launchers the distributed provisioner started on this host."""

    name = "local"

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id

    async def list_resources(self) -> list[BackendResource]:
        return await asyncio.to_thread(local_launchers, self.store_id)

    async def remove(self, resource: BackendResource) -> None:
        await asyncio.to_thread(_kill_session, int(resource.name))


def _kill_session(pgid: int) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


INVENTORIES = {
    "local": "gp_server.orphans:LocalProcessInventory",
    "docker": "gp_docker.inventory:DockerContainerInventory",
    "k8s": "gp_k8s.inventory:KubernetesPodInventory",
    "ssh": "gp_distributed.inventory:SshLauncherInventory",
    "slurm": "gp_slurm.inventory:SlurmJobInventory",
    "yarn": "gp_yarn.inventory:YarnApplicationInventory",
}
"""Built-in inventory names for ``orphan_inventories``; any ``module:Class`` works too."""


def load_inventory(spec: str, store_id: str) -> ResourceInventory:
    """An inventory from a name in :data:`INVENTORIES` or a ``module:Class`` path."""
    import importlib

    target = INVENTORIES.get(spec, spec)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise ValueError(
            f"orphan_inventories entry {spec!r} is neither one of {', '.join(INVENTORIES)} nor "
            "a module:Class path"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"orphan_inventories entry {spec!r} needs {module_name}, which does not import "
            f"({err}); install the backend's package or remove the entry"
        ) from None
    inventory: ResourceInventory = getattr(module, class_name)(store_id)
    return inventory
