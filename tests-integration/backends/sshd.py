"""Real sshd hosts on loopback addresses, for the gp-distributed ssh tests.

``SshdCluster`` starts one ``/usr/sbin/sshd`` per address (127.0.0.1, 127.0.0.2, 127.0.0.3 by
default) on one port, with host keys, a client key, ``authorized_keys``, ``known_hosts`` and an
``ssh_config`` (aliases ``gp-ssh1..N``) generated per run in a temporary directory, and tears
them down.  Every process it stops is one it started (or a child of one), found by pid.

Usable on its own::

    python -m backends.sshd      # from tests-integration/: start, print the settings, wait
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backends.system_packages import missing_packages_message

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
DEFAULT_ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
PRIVSEP_DIR = Path("/run/sshd")


def sshd_available() -> str:
    """'' when sshd can run here, else the reason it cannot (the suites fail with it)."""
    missing = missing_packages_message("ssh")
    if missing:
        return missing
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing (apt-get install openssh-server)"
    if shutil.which(SSH_KEYGEN) is None:
        return "ssh-keygen is missing (apt-get install openssh-client)"
    return ""


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def pick_port(addresses: Sequence[str], preferred: int = 2222) -> int:
    """``preferred`` when it is free on every address, else a free port that is."""
    if all(_port_free(a, preferred) for a in addresses):
        return preferred
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if all(_port_free(a, port) for a in addresses):
            return port
    raise RuntimeError(f"no port free on all of {', '.join(addresses)}")


def _children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (read from /proc), deepest last."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


@dataclass
class SshdHost:
    address: str
    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def entry(self) -> str:
        """The ``host:port`` entry for ``remote_hosts``."""
        return f"{self.address}:{self.port}"

    @property
    def pid(self) -> int:
        """The running sshd's pid (AssertionError when it is stopped)."""
        assert self.process is not None, f"sshd on {self.address} is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class SshdCluster:
    """Several sshd on loopback addresses sharing one port and one client key."""

    addresses: Sequence[str] = DEFAULT_ADDRESSES
    port: int = 0
    user: str = field(default_factory=lambda: os.environ.get("USER") or "root")
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gp-sshd-")))
    hosts: dict[str, SshdHost] = field(default_factory=dict)

    @property
    def key_file(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    def entries(self) -> list[str]:
        return [host.entry for host in self.hosts.values()]

    def alias(self, address: str) -> str:
        return f"gp-ssh{list(self.addresses).index(address) + 1}"

    # -- bring-up ----------------------------------------------------------------------------

    def start(self) -> SshdCluster:
        reason = sshd_available()
        if reason:
            raise RuntimeError(reason)
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.port = self.port or pick_port(self.addresses)
        self._keygen(self.key_file, "gp-tests client")
        (self.state_dir / "authorized_keys").write_text(
            (self.state_dir / "id_ed25519.pub").read_text()
        )
        known: list[str] = []
        aliases: list[str] = []
        for index, address in enumerate(self.addresses, start=1):
            host_key = self.state_dir / f"host{index}_ed25519"
            self._keygen(host_key, f"gp-tests host {address}")
            algorithm, blob = (host_key.with_suffix(".pub")).read_text().split()[:2]
            known.append(f"[{address}]:{self.port} {algorithm} {blob}")
            config = self.state_dir / f"sshd{index}.conf"
            config.write_text(
                "\n".join(
                    [
                        f"ListenAddress {address}:{self.port}",
                        f"HostKey {host_key}",
                        f"PidFile {self.state_dir / f'sshd{index}.pid'}",
                        "PermitRootLogin prohibit-password",
                        "PasswordAuthentication no",
                        "KbdInteractiveAuthentication no",
                        "UsePAM no",
                        "StrictModes no",
                        f"AuthorizedKeysFile {self.state_dir / 'authorized_keys'}",
                        "Subsystem sftp internal-sftp",
                        "LogLevel INFO",
                        "",
                    ]
                )
            )
            aliases.append(
                f"Host {self.alias(address)}\n  HostName {address}\n  Port {self.port}\n"
                f"  User {self.user}\n  IdentityFile {self.key_file}\n"
                f"  UserKnownHostsFile {self.known_hosts}\n  StrictHostKeyChecking yes\n"
                "  BatchMode yes\n"
            )
            self.hosts[address] = SshdHost(
                address, self.port, config, self.state_dir / f"sshd{index}.log"
            )
        self.known_hosts.write_text("\n".join(known) + "\n")
        self.ssh_config.write_text("\n".join(aliases))
        for address in self.addresses:
            self.start_host(address)
        return self

    def _keygen(self, path: Path, comment: str) -> None:
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
        )

    def start_host(self, address: str, timeout: float = 10.0) -> None:
        """Start (or restart) the sshd of ``address`` and wait until it accepts connections."""
        host = self.hosts[address]
        if host.running:
            return
        host.process = subprocess.Popen(
            [SSHD, "-D", "-f", str(host.config), "-E", str(host.log)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                if probe.connect_ex((address, host.port)) == 0:
                    return
            if host.process.poll() is not None or time.monotonic() > deadline:
                log = host.log.read_text() if host.log.exists() else ""
                raise RuntimeError(f"sshd on {host.entry} did not start: {log[-2000:]}")
            time.sleep(0.02)

    def stop_host(self, address: str) -> None:
        """Take ``address`` down: stop its sshd and every session it serves (not the kernels
        the sessions started in sessions of their own)."""
        host = self.hosts[address]
        process = host.process
        if process is None:
            return
        sessions = _children_of(process.pid)
        _kill(process.pid, signal.SIGTERM)
        for pid in sessions:
            _kill(pid, signal.SIGKILL)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        host.process = None

    def stop(self) -> None:
        for address in list(self.hosts):
            self.stop_host(address)
        shutil.rmtree(self.state_dir, ignore_errors=True)


@contextlib.contextmanager
def sshd_cluster(addresses: Sequence[str] = DEFAULT_ADDRESSES) -> Iterator[SshdCluster]:
    cluster = SshdCluster(addresses=addresses)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


if __name__ == "__main__":
    with sshd_cluster() as running:
        print(f"hosts: {','.join(running.entries())}")
        print(f"GP_SSH_KEY_FILE={running.key_file}")
        print(f"GP_SSH_KNOWN_HOSTS={running.known_hosts}")
        print(f"ssh config: {running.ssh_config}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
