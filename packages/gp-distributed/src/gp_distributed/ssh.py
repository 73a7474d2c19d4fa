"""The ssh transport: host entries, settings, one pooled paramiko connection per host.

Every paramiko call runs in the worker threads of :func:`ssh_executor`, never on an event loop;
coroutines reach them through :func:`run_script_async`.  A remote command is always
``/bin/sh -s`` with its script written to the channel's stdin, so nothing the script holds
(the launch secret, user values) appears on a command line, and the remote login shell, whatever
it is, only ever runs those two words.

With ``ssh_reuse_shells`` (the default) that ``/bin/sh -s`` stays open after a script and runs
the next one on the same connection: each script runs in a subshell with stdin from /dev/null,
followed by an end marker with a random nonce on stdout and stderr, so the user's login shell
start-up (``.bashrc`` and the like, often the largest part of a remote command's time) is paid
once per shell, not once per command.  At most ``ssh_max_sessions`` shells per connection exist
(busy or idle); one that fails or times out is closed, never reused.
"""

from __future__ import annotations

import concurrent.futures
import getpass
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import paramiko
from traitlets import Bool, Float, Int, Unicode, default, validate
from traitlets.config import Configurable

from gp_provisioners_core import blocking, metrics
from gp_provisioners_core.config import env_bool, env_float, env_int

HOST_KEY_POLICIES = ("reject", "warn", "auto-add")
T = TypeVar("T")
DEFAULT_SSH_PORT = 22
REMOTE_SHELL = "/bin/sh -s"
WORKER_THREADS = 32
KEEPALIVE_SECONDS = 30


class SshError(RuntimeError):
    """An ssh operation failed; the message names the host and paramiko's reason."""


class SshConnectError(SshError):
    """The host could not be reached, refused us, or is not trusted (the host is down for us)."""


class SshCommandError(SshError):
    """The host was reached but the remote command could not run or did not finish."""


# -- host entries and settings ----------------------------------------------------------------


@dataclass(frozen=True)
class HostEntry:
    """One ``remote_hosts`` entry, ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6)."""

    host: str
    user: str = ""
    port: int = 0

    @property
    def explicit(self) -> bool:
        """True when the entry itself names a user or a port (so it means an sshd)."""
        return bool(self.user or self.port)


def parse_host_entry(entry: str) -> HostEntry:
    """Split ``[user@]host[:port]``.  Raises ``ValueError`` naming the entry when malformed."""
    text = entry.strip()
    user, at, rest = text.rpartition("@")
    if at and not user:
        raise ValueError(f"host entry {entry!r} has an empty user before '@'")
    port_text = ""
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"host entry {entry!r} is not of the form [user@][ipv6]:port")
        port_text = tail[1:]
        if tail and not port_text:
            raise ValueError(f"host entry {entry!r} has an empty port after ':'")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        if not port_text:
            raise ValueError(f"host entry {entry!r} has an empty port after ':'")
    else:
        host = rest  # a bare name, or a bare IPv6 address without a port
    if not host or any(c.isspace() for c in host) or any(c.isspace() for c in user):
        raise ValueError(f"host entry {entry!r} has no host, or white space in it")
    port = 0
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise ValueError(f"host entry {entry!r} has port {port_text!r}; use 1-65535")
        port = int(port_text)
    return HostEntry(host=host, user=user, port=port)


@dataclass(frozen=True)
class SshSettings:
    """The operator's ssh settings (traits of :class:`SshConfigMixin`); empty means 'as OpenSSH
    would do for this user'."""

    user: str = ""
    port: int = 0
    key_file: str = ""
    known_hosts: str = ""
    host_key_policy: str = "reject"
    config_file: str = "~/.ssh/config"
    connect_timeout: float = 10.0
    allow_agent: bool = True
    max_sessions: int = 8
    reuse_shells: bool = True


@dataclass(frozen=True)
class SshTarget:
    """Where and how to connect for one host entry, after ~/.ssh/config and the settings."""

    entry: str
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()
    known_hosts: tuple[str, ...] = ()
    host_key_policy: str = "reject"
    connect_timeout: float = 10.0
    allow_agent: bool = True
    max_sessions: int = 8
    reuse_shells: bool = True

    @property
    def label(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}:{self.port}"

    @property
    def pool_key(self) -> tuple[Any, ...]:
        return (
            self.hostname,
            self.port,
            self.user,
            self.key_files,
            self.known_hosts,
            self.host_key_policy,
            self.allow_agent,
        )


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def load_ssh_config(path: str) -> paramiko.SSHConfig | None:
    """The parsed ssh_config at ``path``, or None when it is empty or absent."""
    if not path:
        return None
    full = _expand(path)
    if not os.path.isfile(full):
        return None
    return paramiko.SSHConfig.from_path(full)


def resolve_target(
    entry: str, settings: SshSettings, ssh_config: paramiko.SSHConfig | None = None
) -> SshTarget:
    """The connection for ``entry``: what the entry says first, then the settings, then the
    ``Host`` block of ~/.ssh/config (HostName, User, Port, IdentityFile, UserKnownHostsFile),
    then OpenSSH's defaults (this process's user, port 22, ~/.ssh keys and the agent,
    ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts).

    Raises ``ValueError`` naming the entry when it or a setting is malformed.
    """
    parsed = parse_host_entry(entry)
    config = ssh_config if ssh_config is not None else load_ssh_config(settings.config_file)
    found: dict[str, Any] = dict(config.lookup(parsed.host)) if config is not None else {}
    hostname = str(found.get("hostname") or parsed.host)
    user = parsed.user or settings.user or str(found.get("user") or "") or getpass.getuser()
    port = parsed.port or settings.port
    if not port:
        raw_port = str(found.get("port") or DEFAULT_SSH_PORT)
        if not (raw_port.isascii() and raw_port.isdigit()):
            raise ValueError(f"ssh config gives Port {raw_port!r} for host entry {entry!r}")
        port = int(raw_port)
    if settings.key_file:
        key_files: tuple[str, ...] = (_expand(settings.key_file),)
    else:
        key_files = tuple(_expand(str(p)) for p in found.get("identityfile") or ())
    if settings.known_hosts:
        known_hosts: tuple[str, ...] = tuple(
            _expand(p) for p in settings.known_hosts.split(os.pathsep) if p
        )
    elif found.get("userknownhostsfile"):
        known_hosts = tuple(_expand(p) for p in str(found["userknownhostsfile"]).split())
    else:
        known_hosts = ()
    if settings.host_key_policy not in HOST_KEY_POLICIES:
        raise ValueError(
            f"ssh host key policy {settings.host_key_policy!r} is unknown; use one of "
            + ", ".join(HOST_KEY_POLICIES)
        )
    return SshTarget(
        entry=entry,
        hostname=hostname,
        port=port,
        user=user,
        key_files=key_files,
        known_hosts=known_hosts,
        host_key_policy=settings.host_key_policy,
        connect_timeout=settings.connect_timeout,
        allow_agent=settings.allow_agent,
        max_sessions=settings.max_sessions,
        reuse_shells=settings.reuse_shells,
    )


def is_ssh_host(entry: str, is_local: Callable[[str], bool], ssh_local_hosts: bool) -> bool:
    """Whether ``entry`` is reached over ssh.  A bare name or address of this machine runs
    locally unless ``ssh_local_hosts``; an entry with a user or a port always means ssh."""
    parsed = parse_host_entry(entry)
    return ssh_local_hosts or parsed.explicit or not is_local(parsed.host)


# -- the operator's settings as traitlets -----------------------------------------------------


class SshConfigMixin(Configurable):
    """ssh settings of the distributed provisioner; each has a ``GP_SSH_*`` default."""

    ssh_user = Unicode(
        config=True,
        help="""User to log in as (GP_SSH_USER).  Empty: the entry's user@, else User from
        ~/.ssh/config, else the server's own user.""",
    )

    @default("ssh_user")
    def _ssh_user_default(self) -> str:
        return os.getenv("GP_SSH_USER", "")

    ssh_port = Int(
        config=True,
        help="sshd port (GP_SSH_PORT).  0: the entry's :port, else ~/.ssh/config, else 22.",
    )

    @default("ssh_port")
    def _ssh_port_default(self) -> int:
        return env_int("GP_SSH_PORT", 0)

    @validate("ssh_port")
    def _validate_ssh_port(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 0 <= value < 65536:
            raise ValueError(f"ssh_port {value} is not a TCP port (0 for the default)")
        return value

    ssh_key_file = Unicode(
        config=True,
        help="""Private key file (GP_SSH_KEY_FILE).  Empty: IdentityFile from ~/.ssh/config,
        the ssh agent and the ~/.ssh/id_* keys, as OpenSSH does.""",
    )

    @default("ssh_key_file")
    def _ssh_key_file_default(self) -> str:
        return os.getenv("GP_SSH_KEY_FILE", "")

    ssh_known_hosts = Unicode(
        config=True,
        help=f"""known_hosts file(s), separated by {os.pathsep!r} (GP_SSH_KNOWN_HOSTS).  Empty:
        UserKnownHostsFile from ~/.ssh/config, else ~/.ssh/known_hosts and
        /etc/ssh/ssh_known_hosts.  These files are only read, never rewritten.""",
    )

    @default("ssh_known_hosts")
    def _ssh_known_hosts_default(self) -> str:
        return os.getenv("GP_SSH_KNOWN_HOSTS", "")

    ssh_host_key_policy = Unicode(
        config=True,
        help="""What to do with a host whose key is not in known_hosts
        (GP_SSH_HOST_KEY_POLICY): reject (default: the launch fails), warn (log and connect),
        auto-add (trust it for the life of this process).""",
    )

    @default("ssh_host_key_policy")
    def _ssh_host_key_policy_default(self) -> str:
        value = os.getenv("GP_SSH_HOST_KEY_POLICY", "reject")
        if value not in HOST_KEY_POLICIES:
            raise ValueError(
                f"GP_SSH_HOST_KEY_POLICY={value!r} is unknown; use one of "
                + ", ".join(HOST_KEY_POLICIES)
            )
        return value

    @validate("ssh_host_key_policy")
    def _validate_ssh_host_key_policy(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value not in HOST_KEY_POLICIES:
            raise ValueError(
                f"ssh_host_key_policy {value!r} is unknown; use one of "
                + ", ".join(HOST_KEY_POLICIES)
            )
        return value

    ssh_config_file = Unicode(
        config=True,
        help="""ssh_config whose Host blocks apply (GP_SSH_CONFIG_FILE, default ~/.ssh/config;
        empty to ignore it).  Read: HostName, User, Port, IdentityFile, UserKnownHostsFile.""",
    )

    @default("ssh_config_file")
    def _ssh_config_file_default(self) -> str:
        return os.getenv("GP_SSH_CONFIG_FILE", "~/.ssh/config")

    ssh_connect_timeout = Float(
        config=True,
        help="Seconds to connect and authenticate to a host (GP_SSH_CONNECT_TIMEOUT, 10).",
    )

    @default("ssh_connect_timeout")
    def _ssh_connect_timeout_default(self) -> float:
        return env_float("GP_SSH_CONNECT_TIMEOUT", 10.0)

    ssh_command_timeout = Float(
        config=True,
        help="""Seconds a remote command (start, check, signal) may take
        (GP_SSH_COMMAND_TIMEOUT, 30).""",
    )

    @default("ssh_command_timeout")
    def _ssh_command_timeout_default(self) -> float:
        return env_float("GP_SSH_COMMAND_TIMEOUT", 30.0)

    ssh_max_sessions = Int(
        config=True,
        help="""Channels used at once on one host's connection (GP_SSH_MAX_SESSIONS, 8); keep
        it below the hosts' sshd MaxSessions (10 by default).""",
    )

    @default("ssh_max_sessions")
    def _ssh_max_sessions_default(self) -> int:
        return env_int("GP_SSH_MAX_SESSIONS", 8)

    ssh_allow_agent = Bool(
        config=True,
        help="Offer the keys of the ssh agent (SSH_AUTH_SOCK) (GP_SSH_ALLOW_AGENT, true).",
    )

    @default("ssh_allow_agent")
    def _ssh_allow_agent_default(self) -> bool:
        return env_bool("GP_SSH_ALLOW_AGENT", True)

    ssh_local_hosts = Bool(
        config=True,
        help="""Reach hosts that are this machine over ssh too (GP_SSH_LOCAL_HOSTS, false).
        Without it a bare local name or address (localhost, 127.0.0.1) runs the launcher as a
        local process; an entry with user@ or :port always uses ssh.""",
    )

    @default("ssh_local_hosts")
    def _ssh_local_hosts_default(self) -> bool:
        return env_bool("GP_SSH_LOCAL_HOSTS", False)

    ssh_reuse_shells = Bool(
        config=True,
        help="""Run remote commands in long-lived ``/bin/sh`` sessions on each host's pooled
        connection (GP_SSH_REUSE_SHELLS, true): the login shell's start-up (.bashrc, profile)
        runs once per session instead of once per command (launch, status, signal, cleanup).
        At most ssh_max_sessions such sessions per host stay open while the connection does.
        False: a new ssh session per command.""",
    )

    @default("ssh_reuse_shells")
    def _ssh_reuse_shells_default(self) -> bool:
        return env_bool("GP_SSH_REUSE_SHELLS", True)

    def ssh_settings(self) -> SshSettings:
        return SshSettings(
            user=self.ssh_user,
            port=self.ssh_port,
            key_file=self.ssh_key_file,
            known_hosts=self.ssh_known_hosts,
            host_key_policy=self.ssh_host_key_policy,
            config_file=self.ssh_config_file,
            connect_timeout=self.ssh_connect_timeout,
            allow_agent=self.ssh_allow_agent,
            max_sessions=max(1, self.ssh_max_sessions),
            reuse_shells=self.ssh_reuse_shells,
        )


# -- the connection pool ----------------------------------------------------------------------


_POLICIES: dict[str, type[paramiko.MissingHostKeyPolicy]] = {
    "reject": paramiko.RejectPolicy,
    "warn": paramiko.WarningPolicy,
    "auto-add": paramiko.AutoAddPolicy,
}
_SYSTEM_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


class _PooledConnection:
    def __init__(self, max_sessions: int) -> None:
        self.lock = threading.Lock()
        self.client: paramiko.SSHClient | None = None
        self.sessions = threading.BoundedSemaphore(max_sessions)
        self.error = ""
        self.failed_at = 0.0
        self.shells_lock = threading.Lock()
        self.idle_shells: list[paramiko.Channel] = []

    def take_shell(self, client: paramiko.SSHClient) -> paramiko.Channel | None:
        """An idle shell of ``client``'s connection that still runs, or None; shells of an
        older connection, or that ended, are closed and dropped."""
        transport = client.get_transport()
        with self.shells_lock:
            while self.idle_shells:
                shell = self.idle_shells.pop()
                if shell.get_transport() is transport and _shell_usable(shell):
                    return shell
                shell.close()
        return None

    def give_back(self, shell: paramiko.Channel) -> None:
        with self.shells_lock:
            self.idle_shells.append(shell)

    def close_shells(self) -> None:
        with self.shells_lock:
            shells, self.idle_shells = self.idle_shells, []
        for shell in shells:
            shell.close()


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def connect_client(target: SshTarget) -> paramiko.SSHClient:
    """A new, authenticated client for ``target`` (blocking: worker threads only).

    Raises :class:`SshConnectError` naming the target and the reason.
    """
    client = paramiko.SSHClient()
    try:
        if target.known_hosts:
            for path in target.known_hosts:
                if not os.path.isfile(path):
                    raise SshConnectError(
                        f"ssh to {target.label} failed: known_hosts file {path} does not exist"
                    )
                client.load_system_host_keys(path)
        else:
            for path in _SYSTEM_KNOWN_HOSTS:
                full = _expand(path)
                if os.path.isfile(full):
                    client.load_system_host_keys(full)
        client.set_missing_host_key_policy(_POLICIES[target.host_key_policy]())
        client.connect(
            hostname=target.hostname,
            port=target.port,
            username=target.user,
            # paramiko takes a list of key files; types-paramiko declares only str.
            key_filename=cast(Any, list(target.key_files) or None),
            timeout=target.connect_timeout,
            banner_timeout=target.connect_timeout,
            auth_timeout=target.connect_timeout,
            channel_timeout=target.connect_timeout,
            allow_agent=target.allow_agent,
            look_for_keys=not target.key_files,
        )
    except SshConnectError:
        client.close()
        raise
    except (paramiko.SSHException, OSError, EOFError, ValueError) as err:
        client.close()
        hint = ""
        if "known_hosts" in str(err) or isinstance(err, paramiko.BadHostKeyException):
            files = ", ".join(target.known_hosts) or "~/.ssh/known_hosts"
            hint = f" (known_hosts: {files}; host key policy {target.host_key_policy})"
        raise SshConnectError(f"ssh to {target.label} failed: {_describe(err)}{hint}") from err
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(KEEPALIVE_SECONDS)
    return client


class SshConnectionPool:
    """One authenticated connection per target, shared by every kernel of the process.

    Thread-safe: connecting to one host never waits for another; threads that wait while a
    connection attempt fails get that failure instead of trying again one after the other.
    Each connection allows ``max_sessions`` channels at once.
    """

    _instance: SshConnectionPool | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[tuple[Any, ...], _PooledConnection] = {}

    @classmethod
    def instance(cls) -> SshConnectionPool:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _entry(self, target: SshTarget) -> _PooledConnection:
        with self._lock:
            entry = self._connections.get(target.pool_key)
            if entry is None:
                entry = _PooledConnection(target.max_sessions)
                self._connections[target.pool_key] = entry
            return entry

    def client(self, target: SshTarget) -> paramiko.SSHClient:
        """The live client for ``target``, connecting when there is none (blocking)."""
        entry = self._entry(target)
        asked = time.monotonic()
        with entry.lock:
            client = entry.client
            if client is not None and _is_active(client):
                return client
            if entry.error and entry.failed_at >= asked:
                raise SshConnectError(entry.error)
            if client is not None:
                client.close()
                entry.client = None
            try:
                entry.client = connect_client(target)
            except SshConnectError as err:
                entry.error, entry.failed_at = str(err), time.monotonic()
                raise
            entry.error = ""
            return entry.client

    def session_slot(self, target: SshTarget) -> threading.BoundedSemaphore:
        """The semaphore that bounds the channels open at once on ``target``'s connection."""
        return self._entry(target).sessions

    def take_shell(self, target: SshTarget, client: paramiko.SSHClient) -> paramiko.Channel | None:
        """An idle remote shell on ``client`` (the caller holds a :meth:`session_slot`)."""
        return self._entry(target).take_shell(client)

    def give_back_shell(self, target: SshTarget, shell: paramiko.Channel) -> None:
        """Keep ``shell`` (which just finished a script cleanly) for the next command.

        Shells are only opened while a session slot is held and each is either busy (holding
        one) or idle here, so the channels on a connection never exceed ``max_sessions``."""
        self._entry(target).give_back(shell)

    def idle_shells(self, target: SshTarget) -> int:
        """How many remote shells on ``target``'s connection wait for a command."""
        entry = self._entry(target)
        with entry.shells_lock:
            return len(entry.idle_shells)

    def discard(self, target: SshTarget, client: paramiko.SSHClient | None = None) -> None:
        """Close ``target``'s connection (only if it is still ``client``, when given)."""
        entry = self._entry(target)
        with entry.lock:
            if entry.client is not None and (client is None or entry.client is client):
                entry.close_shells()
                entry.client.close()
                entry.client = None

    def is_connected(self, target: SshTarget) -> bool:
        entry = self._entry(target)
        with entry.lock:
            return entry.client is not None and _is_active(entry.client)

    def close_all(self) -> None:
        with self._lock:
            entries = list(self._connections.values())
            self._connections.clear()
        for entry in entries:
            entry.close_shells()
            with entry.lock:
                if entry.client is not None:
                    entry.client.close()
                    entry.client = None


def _is_active(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is not None and transport.is_active()


def _shell_usable(shell: paramiko.Channel) -> bool:
    """True while the remote shell neither ended nor closed its output."""
    return not (shell.closed or shell.eof_received or shell.exit_status_ready())


# -- running a script -------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteResult:
    exit_status: int
    stdout: str
    stderr: str


def run_script(target: SshTarget, script: str, timeout: float) -> RemoteResult:
    """Run ``script`` with ``/bin/sh -s`` on ``target``, the script on stdin (blocking).

    A dead pooled connection is replaced once.  Raises :class:`SshConnectError` when the host
    cannot be reached and :class:`SshCommandError` when the command fails to run or finish
    within ``timeout`` seconds.
    """
    pool = SshConnectionPool.instance()
    for attempt in (1, 2):
        try:
            client = pool.client(target)
        except Exception:
            metrics.api_request("distributed", "ssh connect", ok=False)
            raise
        with pool.session_slot(target):
            try:
                if target.reuse_shells:
                    result = _run_in_shell(pool, client, target, script, timeout)
                else:
                    result = _run_on(client, target, script, timeout)
                metrics.api_request("distributed", "ssh command", ok=True)
                return result
            except SshCommandError:
                metrics.api_request("distributed", "ssh command", ok=False)
                raise
            except _StaleConnection as stale:
                metrics.api_request("distributed", "ssh command", ok=False)
                pool.discard(target, client)
                if attempt == 2:
                    raise SshConnectError(
                        f"ssh to {target.label} failed: the connection broke: {stale}"
                    ) from stale
    raise AssertionError("unreachable")


class _StaleConnection(Exception):
    pass


def _run_on(
    client: paramiko.SSHClient, target: SshTarget, script: str, timeout: float
) -> RemoteResult:
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise _StaleConnection("not connected")
    try:
        channel = transport.open_session(timeout=timeout)
    except paramiko.ChannelException as err:
        raise SshCommandError(f"ssh to {target.label}: no channel: {_describe(err)}") from err
    except (paramiko.SSHException, EOFError, OSError) as err:
        raise _StaleConnection(_describe(err)) from err
    deadline = time.monotonic() + timeout
    try:
        channel.settimeout(timeout)
        channel.exec_command(REMOTE_SHELL)
        channel.sendall(script.encode())
        channel.shutdown_write()
        stdout = _read_all(channel.recv)
        stderr = _read_all(channel.recv_stderr)
        if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError("no exit status")
        status = channel.exit_status
    except TimeoutError as err:
        raise SshCommandError(
            f"ssh to {target.label}: the remote command did not finish within {timeout:g}s"
        ) from err
    except (paramiko.SSHException, EOFError, OSError) as err:
        raise SshCommandError(f"ssh to {target.label}: {_describe(err)}") from err
    finally:
        channel.close()
    return RemoteResult(status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def _open_shell(transport: paramiko.Transport, timeout: float) -> paramiko.Channel:
    """A new session running ``/bin/sh -s``; :class:`_StaleConnection` when the connection
    cannot open one (it is dead), :class:`SshCommandError` when the host refuses."""
    try:
        channel = transport.open_session(timeout=timeout)
    except paramiko.ChannelException as err:
        raise SshCommandError(f"no channel: {_describe(err)}") from err
    except (paramiko.SSHException, EOFError, OSError) as err:
        raise _StaleConnection(_describe(err)) from err
    try:
        channel.exec_command(REMOTE_SHELL)
    except (paramiko.SSHException, EOFError, OSError) as err:
        channel.close()
        raise SshCommandError(f"cannot start {REMOTE_SHELL}: {_describe(err)}") from err
    return channel


def framed_script(script: str, marker: str) -> str:
    """``script`` as one command of a long-lived shell: a subshell (its ``set``, ``cd``,
    variables and ``exit`` stay inside) reading nothing from the shell's stdin, then
    ``<newline><marker> <exit status>`` on stdout and ``<newline><marker> 0`` on stderr.

    ``marker`` must be made here (letters, digits, underscore): nothing else is formatted in.
    """
    if not (marker.isascii() and marker.replace("_", "").isalnum()):
        raise ValueError(f"bad end marker {marker!r}")
    body = script if script.endswith("\n") else script + "\n"
    return (
        f"(\n{body}) </dev/null\n"
        f"printf '\\n%s %s\\n' {marker} \"$?\"\n"
        f"printf '\\n%s 0\\n' {marker} >&2\n"
    )


def _run_in_shell(
    pool: SshConnectionPool,
    client: paramiko.SSHClient,
    target: SshTarget,
    script: str,
    timeout: float,
) -> RemoteResult:
    """Run ``script`` in an idle remote shell of ``client``'s connection (or a new one) and
    keep the shell for the next command when it finished cleanly."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise _StaleConnection("not connected")
    shell = pool.take_shell(target, client)
    reused = shell is not None
    if shell is None:
        try:
            shell = _open_shell(transport, timeout)
        except SshCommandError as err:
            raise SshCommandError(f"ssh to {target.label}: {err}") from err
    marker = "GP_END_" + secrets.token_hex(16)
    deadline = time.monotonic() + timeout
    done = sent = finished = False
    try:
        shell.sendall(framed_script(script, marker).encode())
        sent = True
        stdout, status = _read_until_marker(shell, shell.recv, marker.encode(), deadline)
        finished = True
        stderr, _ = _read_until_marker(shell, shell.recv_stderr, marker.encode(), deadline)
        done = True
    except TimeoutError as err:
        raise SshCommandError(
            f"ssh to {target.label}: the remote command did not finish within {timeout:g}s"
        ) from err
    except _ShellEnded as err:
        if reused and not (err.received or finished) and not transport.is_active():
            # The connection went away while the shell sat idle and paramiko noticed only now
            # (sshd restarted or stopped): nothing came back, so the script most likely never
            # reached a shell.  Connect again, as for a connection found dead up front.
            raise _StaleConnection("the connection closed") from err
        raise SshCommandError(
            f"ssh to {target.label}: the remote shell ended before the command finished"
            + (f" (exit status {shell.exit_status})" if shell.exit_status_ready() else "")
        ) from err
    except (paramiko.SSHException, EOFError, OSError) as err:
        if reused and not sent and not transport.is_active():
            raise _StaleConnection(_describe(err)) from err
        raise SshCommandError(f"ssh to {target.label}: {_describe(err)}") from err
    finally:
        if done:
            pool.give_back_shell(target, shell)
        else:
            shell.close()
    return RemoteResult(status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


class _ShellEnded(Exception):
    def __init__(self, received: bool) -> None:
        super().__init__("the remote shell ended")
        self.received = received  # whether the stream had given any byte


def _read_until_marker(
    channel: paramiko.Channel,
    recv: Callable[[int], bytes],
    marker: bytes,
    deadline: float,
    limit: int = 0,
) -> tuple[bytes, int]:
    """What a framed script wrote to one stream before ``<newline><marker> <status>``, and that
    status; at most ``limit`` (default MAX_COMMAND_OUTPUT) bytes are kept, the rest is read and
    dropped.  Raises ``TimeoutError`` at ``deadline`` and :class:`_ShellEnded` at end of file."""
    limit = limit or MAX_COMMAND_OUTPUT
    needle = b"\n" + marker + b" "
    hold = len(needle) + 16  # a marker line may be cut between two reads
    kept = bytearray()
    pending = bytearray()

    def keep(data: bytes | bytearray) -> None:
        room = limit - len(kept)
        if room > 0:
            kept.extend(data[:room])

    while True:
        found = pending.find(needle)
        if found >= 0:
            end = pending.find(b"\n", found + len(needle))
            if end >= 0:
                keep(pending[:found])
                code = bytes(pending[found + len(needle) : end])
                return bytes(kept), int(code) if code.isdigit() and len(code) < 6 else -1
        elif len(pending) > hold:
            keep(pending[:-hold])
            del pending[:-hold]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no end marker")
        channel.settimeout(remaining)
        chunk = recv(65536)
        if not chunk:
            raise _ShellEnded(received=bool(kept or pending))
        pending += chunk


MAX_COMMAND_OUTPUT = 4 * 1024 * 1024


def _read_all(recv: Callable[[int], bytes], limit: int = MAX_COMMAND_OUTPUT) -> bytes:
    """Everything the remote command wrote, up to ``limit`` bytes kept (the rest is read and
    dropped so the command can finish): a remote host cannot make this process hold more."""
    chunks: list[bytes] = []
    kept = 0
    while True:
        chunk = recv(65536)
        if not chunk:
            return b"".join(chunks)
        if kept < limit:
            chunks.append(chunk[: limit - kept])
            kept += len(chunks[-1])


SSH_POOL = "gp-ssh"


def ssh_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The worker threads that make every paramiko call of this process (the core's pool
    ``gp-ssh``, see ``gp_provisioners_core.blocking``)."""
    return blocking.executor(SSH_POOL, WORKER_THREADS)


async def in_ssh_thread(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in an ssh worker thread, so the event loop never blocks on it."""
    return await blocking.run_blocking(SSH_POOL, function, *args, default_workers=WORKER_THREADS)


async def run_script_async(target: SshTarget, script: str, timeout: float) -> RemoteResult:
    """:func:`run_script` in an ssh worker thread; the event loop never blocks on paramiko."""
    return await in_ssh_thread(run_script, target, script, timeout)
