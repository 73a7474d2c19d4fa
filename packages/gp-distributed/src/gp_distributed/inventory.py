"""What gp-distributed started on ssh hosts, for gp-server's orphan sweep.

A remote kernel's launcher runs in a session of its own under a ``/bin/sh`` wrapper whose
command line carries ``--kernel-id <id>``, with ``KERNEL_GP_SERVER_STORE=<store id>`` in its
environment when a gp-server launched it.  Listing runs one script per host (``/bin/sh -s``
over ssh, like every remote command of this package) that prints the session leaders carrying
the store's marker; removal kills that session on its host, only while its leader still
carries the marker.  The hosts are ``GP_REMOTE_HOSTS``; ssh is configured as for the
provisioner (``GP_SSH_*``).  Every call runs off the event loop.  Kernels on this host (no ssh)
are the ``local`` inventory's.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from typing import Any

from gp_provisioners_core.argv import is_valid_kernel_id
from gp_provisioners_core.inventory import STORE_ID_VARIABLE, BackendResource

from .ssh import SshConfigMixin, SshError, resolve_target, run_script

MAX_LISTED = 10_000  # lines of a host's answer that are read


def _has_marker(pid: str, marker: str) -> str:
    return f"tr '\\000' '\\n' < /proc/{pid}/environ 2>/dev/null | grep -qxF -- {marker}"


def listing_script(store_id: str) -> str:
    """Prints ``GP_ORPHAN <pid> <kernel id>`` for each session leader whose environment holds
    the store's marker and whose command line names a kernel id."""
    marker = shlex.quote(f"{STORE_ID_VARIABLE}={store_id}")
    return (
        "for d in /proc/[0-9]*; do\n"
        '  p="${d#/proc/}"\n'
        f"  {_has_marker('$p', marker)} || continue\n"
        "  s=$(sed 's/.*) //' \"$d/stat\" 2>/dev/null | cut -d' ' -f4)\n"
        '  [ "$s" = "$p" ] || continue\n'
        "  k=$(tr '\\000' '\\n' < \"$d/cmdline\" 2>/dev/null | grep -A1 -x -- --kernel-id "
        "| tail -n 1)\n"
        '  [ -n "$k" ] && echo "GP_ORPHAN $p $k"\n'
        "done\n"
        "exit 0\n"
    )


def removal_script(pid: int, store_id: str) -> str:
    """Kill session ``pid`` while its leader still carries the store's marker."""
    marker = shlex.quote(f"{STORE_ID_VARIABLE}={store_id}")
    return f"if {_has_marker(str(pid), marker)}; then kill -s KILL -- -{pid}; fi\nexit 0\n"


def parse_listing(host: str, stdout: str) -> list[BackendResource]:
    found = []
    for line in stdout.splitlines()[:MAX_LISTED]:
        words = line.split()
        if len(words) != 3 or words[0] != "GP_ORPHAN" or not words[1].isdigit():
            continue
        if not is_valid_kernel_id(words[2]):
            continue
        found.append(BackendResource("ssh", "launcher", f"{host}/{words[1]}", words[2]))
    return found


class SshLauncherInventory(SshConfigMixin):
    """Launchers of one store's kernels on the hosts of ``GP_REMOTE_HOSTS``."""

    name = "ssh"

    def __init__(self, store_id: str) -> None:
        super().__init__()
        self.store_id = store_id
        raw = os.environ.get("GP_REMOTE_HOSTS", "")
        self.hosts = [h.strip() for h in raw.split(",") if h.strip()]

    async def list_resources(self) -> list[BackendResource]:
        found: list[BackendResource] = []
        for host in self.hosts:
            found += await asyncio.to_thread(self._list_host, host)
        return found

    def _list_host(self, host: str) -> list[BackendResource]:
        target = resolve_target(host, self.ssh_settings())
        try:
            result = run_script(target, listing_script(self.store_id), self.ssh_command_timeout)
        except SshError as err:
            raise RuntimeError(f"host {host}: {err}") from None
        return parse_listing(host, result.stdout)

    async def remove(self, resource: Any) -> None:
        host, _, pid = str(resource.name).rpartition("/")
        target = resolve_target(host, self.ssh_settings())
        script = removal_script(int(pid), self.store_id)
        await asyncio.to_thread(run_script, target, script, self.ssh_command_timeout)
