"""A real sshd on 127.0.0.2 for the launch benchmark's ssh rows.

It reuses ``tests-integration/backends/sshd.py`` (``SshdCluster``: host keys, a client key,
``authorized_keys`` and ``known_hosts`` generated per run), started once per bench run with a
state folder inside the bench's temporary folder and stopped at the end.  127.0.0.2 is a
loopback alias of this machine, so kernels "on the host" run this machine's Python paths.

gateway_provisioners 0.5.0 can only authenticate the OpenSSH way: ``paramiko`` with
``load_system_host_keys()`` (``~/.ssh/known_hosts``), the default keys in ``~/.ssh``
(``look_for_keys``) or the agent, ``GP_REMOTE_USER`` (else the login name) and ``GP_SSH_PORT``
(else 22).  ``private_home`` makes a HOME holding only this run's key and known_hosts, so its
workers never read or write the machine's real ``~/.ssh``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BACKENDS = Path(__file__).resolve().parents[1] / "tests-integration" / "backends"
ADDRESS = "127.0.0.2"


@dataclass
class SshHost:
    """The running sshd on ``ADDRESS`` (or why there is none: ``unavailable``)."""

    address: str = ADDRESS
    port: int = 0
    user: str = ""
    key_file: Path | None = None
    known_hosts: Path | None = None
    unavailable: str = ""
    _cluster: object | None = None

    @property
    def entry(self) -> str:
        """``host:port``: a remote_hosts entry with a port, so our provisioner uses ssh even
        though the address is this machine's."""
        return f"{self.address}:{self.port}"

    def private_home(self, home: Path) -> Path:
        """A HOME whose ``.ssh`` holds this run's client key and known_hosts (nothing else)."""
        assert self.key_file is not None
        assert self.known_hosts is not None
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ssh_dir / "id_ed25519"
        shutil.copyfile(self.key_file, key)
        key.chmod(0o600)
        shutil.copyfile(self.key_file.with_suffix(".pub"), ssh_dir / "id_ed25519.pub")
        shutil.copyfile(self.known_hosts, ssh_dir / "known_hosts")
        return home

    def stop(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()  # type: ignore[attr-defined]
            self._cluster = None


def start(state_dir: Path) -> SshHost:
    """Start sshd on ``ADDRESS``; on failure return an ``SshHost`` saying why."""
    # sshd.py imports its siblings as ``backends.*``: tests-integration must be importable too.
    for folder in (BACKENDS, BACKENDS.parent):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        import sshd  # tests-integration/backends/sshd.py
    except ImportError as err:
        return SshHost(unavailable=f"cannot import {BACKENDS / 'sshd.py'}: {err}")
    reason = sshd.sshd_available()
    if reason:
        return SshHost(unavailable=reason)
    cluster = sshd.SshdCluster(addresses=(ADDRESS,), state_dir=state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        cluster.start()
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as err:
        cluster.stop()
        return SshHost(unavailable=f"sshd on {ADDRESS} did not start: {err}")
    return SshHost(
        port=cluster.port,
        user=cluster.user,
        key_file=cluster.key_file,
        known_hosts=cluster.known_hosts,
        _cluster=cluster,
    )
