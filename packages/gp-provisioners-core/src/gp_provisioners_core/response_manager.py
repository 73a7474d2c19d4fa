"""The response manager: receives each launcher's sealed connection info.

One per server process.  It runs an asyncio TCP server on a dedicated thread with its own event
loop, so neither RSA work nor a slow or hostile client can delay the caller's loop.  Each
connection is handled concurrently with a read deadline and a size cap.  Provisioners register
a pending launch with :meth:`ResponseManager.register_event` and await
:meth:`ResponseManager.get_connection_info`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hmac
import ipaddress
import json
import os
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.localinterfaces import public_ips
from traitlets import Bool, Float, Int, TraitError, Unicode, default, validate
from traitlets.config import Config, SingletonConfigurable

from . import metrics
from .config import env_float, env_int, validate_settings
from .logsafe import RejectionLog, printable
from .protocol import (
    DEFAULT_KEY_SIZE,
    MINIMUM_KEY_SIZE,
    OpenedMessage,
    ProtocolError,
    ServerKeyPair,
    is_host,
    open_message,
)

DEFAULT_RESPONSE_PORT = 8877
ALL_INTERFACES = ("*", "0.0.0.0", "::")  # noqa: S104 - an operator's explicit choice


@dataclass
class _PendingLaunch:
    launch_secret: str
    allow_legacy: bool
    future: concurrent.futures.Future[OpenedMessage] = field(
        default_factory=concurrent.futures.Future
    )


class ResponseManagerConfigError(RuntimeError):
    """A second configuration of the process's response manager asks for other settings than
    the ones it was made with (one response server serves every kernel of the process)."""


class ResponseManager(SingletonConfigurable):
    """Receives connection info from launchers; one instance per process (:meth:`shared`)."""

    @classmethod
    def shared(cls, config: Config | None = None) -> ResponseManager:
        """The process's response manager, made from ``config`` on the first call.

        Called by ``RemoteProvisionerBase`` at each launch (with the provisioner's config,
        which carries the kernelspec's own settings) and by applications that start it early.
        A later call whose ``ResponseManager`` settings differ from those the manager was made
        with raises :class:`ResponseManagerConfigError` naming each setting, both values and
        where to configure it, instead of silently keeping the first caller's settings.
        Settings a later config leaves out are not a conflict.
        """
        wanted = _section(config, cls.__name__)
        if not cls.initialized():
            manager = cls.instance(config=config) if config is not None else cls.instance()
            manager._made_with = wanted
            return manager
        manager = cls.instance()
        made_with: dict[str, Any] = getattr(manager, "_made_with", {})
        differing = sorted(
            name
            for name, value in wanted.items()
            if name in manager.trait_names(config=True)
            and made_with.get(name, getattr(manager, name)) != value
        )
        if differing:
            detail = "; ".join(
                f"{name}={wanted[name]!r} asked, {made_with.get(name, getattr(manager, name))!r}"
                " in use"
                for name in differing
            )
            raise ResponseManagerConfigError(
                f"The response manager of this process is already configured: {detail}. One "
                "response server serves every kernel of a process, so set c.ResponseManager."
                f"{differing[0]} (or its GP_* variable) once, in the server's configuration, "
                "not per kernelspec"
            )
        return manager

    response_ip = Unicode(
        config=True,
        help="""The address launchers are told to answer to (GP_RESPONSE_IP): an IPv4 or IPv6
        address, or a host name that resolves where the launchers run (a Kubernetes Service
        name, for instance).  Default: this host's first non-loopback address, or 127.0.0.1
        when it has none.  The response server binds it too, unless response_bind_ip says
        otherwise.""",
    )

    @default("response_ip")
    def _response_ip_default(self) -> str:
        configured = os.getenv("GP_RESPONSE_IP", "").strip()
        if configured:
            return configured
        addresses = public_ips()
        return addresses[0] if addresses else "127.0.0.1"

    @validate("response_ip")
    def _validate_response_ip(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).strip()
        if not is_host(value):
            raise TraitError(
                f"response_ip (GP_RESPONSE_IP) {printable(proposal['value'])} is neither an IP "
                "address nor a host name; set it to an address or name of this host that "
                "kernels can reach (e.g. 10.0.0.5, [fd00::5] or gp-response.jupyter.svc)"
            )
        return value.removeprefix("[").removesuffix("]")

    response_bind_ip = Unicode(
        config=True,
        help="""The address the response server listens on (GP_RESPONSE_BIND_IP): an IP
        address of this host, or * (also 0.0.0.0 or ::) for all interfaces.  Empty (the
        default) binds response_ip when that is an IP address, and all interfaces when it is a
        host name.  Launchers are always told response_ip.""",
    )

    @default("response_bind_ip")
    def _response_bind_ip_default(self) -> str:
        return os.getenv("GP_RESPONSE_BIND_IP", "").strip()

    @validate("response_bind_ip")
    def _validate_response_bind_ip(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).strip().removeprefix("[").removesuffix("]")
        if value in ("", *ALL_INTERFACES):
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise TraitError(
                f"response_bind_ip (GP_RESPONSE_BIND_IP) {printable(proposal['value'])} is not "
                "an IP address; use an address of this host, or * for all interfaces"
            ) from None
        return value

    response_port = Int(
        config=True,
        help="""The port of the response server (GP_RESPONSE_PORT, default 8877).  0 asks the
        system for a free port.  When the port is taken, the next ones are tried
        (response_port_retries) and the port finally used is logged as a warning.""",
    )

    @default("response_port")
    def _response_port_default(self) -> int:
        return env_int("GP_RESPONSE_PORT", DEFAULT_RESPONSE_PORT)

    @validate("response_port")
    def _validate_response_port(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 0 <= value <= 65535:
            raise TraitError(
                f"response_port (GP_RESPONSE_PORT) {value} is not a TCP port; use 0..65535"
            )
        return value

    response_port_retries = Int(
        10,
        config=True,
        help="How many following ports to try when response_port is taken "
        "(GP_RESPONSE_PORT_RETRIES).",
    )

    @default("response_port_retries")
    def _response_port_retries_default(self) -> int:
        return env_int("GP_RESPONSE_PORT_RETRIES", 10)

    key_size = Int(
        DEFAULT_KEY_SIZE,
        config=True,
        help=f"""RSA key size of this process's ephemeral key pair (GP_RESPONSE_KEY_SIZE,
        >= {MINIMUM_KEY_SIZE}, default {DEFAULT_KEY_SIZE}).""",
    )

    @default("key_size")
    def _key_size_default(self) -> int:
        return env_int("GP_RESPONSE_KEY_SIZE", DEFAULT_KEY_SIZE)

    @validate("key_size")
    def _validate_key_size(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not MINIMUM_KEY_SIZE <= value <= 16384:
            raise TraitError(
                f"key_size (GP_RESPONSE_KEY_SIZE) {value} is out of range; use "
                f"{MINIMUM_KEY_SIZE}..16384 bits (default {DEFAULT_KEY_SIZE})"
            )
        return value

    read_timeout = Float(
        config=True,
        help="Seconds a launcher has to send its whole message (GP_RESPONSE_READ_TIMEOUT, 5).",
    )

    @default("read_timeout")
    def _read_timeout_default(self) -> float:
        return env_float("GP_RESPONSE_READ_TIMEOUT", 5.0)

    @validate("read_timeout", "rejection_log_interval")
    def _validate_positive_seconds(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 < value <= 3600:
            raise TraitError(
                f"{proposal['trait'].name} {value!r} must be > 0 and <= 3600 seconds"
                + (
                    " (GP_RESPONSE_READ_TIMEOUT)"
                    if proposal["trait"].name == "read_timeout"
                    else ""
                )
            )
        return value

    max_message_bytes = Int(
        64 * 1024, config=True, help="Messages larger than this are refused unread."
    )

    max_connections = Int(
        config=True,
        help="Connections handled at once (GP_RESPONSE_MAX_CONNECTIONS, 512); more are closed "
        "at once.",
    )

    @default("max_connections")
    def _max_connections_default(self) -> int:
        return env_int("GP_RESPONSE_MAX_CONNECTIONS", 512)

    max_connections_per_peer = Int(
        config=True,
        help="""Connections one peer address may have open at once
        (GP_RESPONSE_MAX_CONNECTIONS_PER_PEER, 64); more from that address are closed at once,
        so one host cannot take every slot of max_connections.""",
    )

    @default("max_connections_per_peer")
    def _max_connections_per_peer_default(self) -> int:
        return env_int("GP_RESPONSE_MAX_CONNECTIONS_PER_PEER", 64)

    @validate("max_connections", "max_connections_per_peer", "max_message_bytes")
    def _validate_positive_count(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            variable = {
                "max_connections": " (GP_RESPONSE_MAX_CONNECTIONS)",
                "max_connections_per_peer": " (GP_RESPONSE_MAX_CONNECTIONS_PER_PEER)",
            }.get(proposal["trait"].name, "")
            raise TraitError(f"{proposal['trait'].name}{variable} {value} must be at least 1")
        return value

    log_rejections = Bool(True, config=True, help="Log refused messages as warnings.")

    rejection_log_interval = Float(
        10.0,
        config=True,
        help="""Seconds over which refusals of one reason are summed up in one log line: the
        first refusal of a reason is logged with its detail, the following ones of that reason
        in one summary line per interval.""",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Defaults from GP_* variables are checked now, at start-up, not at first use.
        validate_settings(
            self,
            "response_ip",
            "response_bind_ip",
            "response_port",
            "key_size",
            "read_timeout",
            "max_connections",
            "max_connections_per_peer",
        )
        self._lock = threading.Lock()
        self._pending: dict[str, _PendingLaunch] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._key_pair: ServerKeyPair | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_errors: list[BaseException] = []
        self._bound: tuple[str, int] | None = None
        self._open_connections = 0
        self._open_by_peer: collections.Counter[str] = collections.Counter()
        self._rejection_log = RejectionLog(self.log, "Response server", self.rejection_log_interval)
        self._flusher: asyncio.Task[None] | None = None
        self._rejections: OrderedDict[str, list[str]] = OrderedDict()
        self._legacy_refused_at: collections.deque[float] = collections.deque(maxlen=1000)
        self.rejected_count = 0
        self._made_with: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the key pair and start the server thread; idempotent and thread-safe.

        Blocks until the server listens (the RSA key is made on the server's thread, which
        takes up to a second or more for 3072 bits).  From a coroutine, await
        :meth:`start_async` instead, so the caller's event loop keeps running meanwhile.
        ``RemoteProvisionerBase.pre_launch`` does; an application may call either at start-up
        to move the key generation out of the first launch.
        """
        with self._lock:
            if self._thread is not None:
                started = self._started
            else:
                started = self._started = threading.Event()
                self._start_errors = []
                self._thread = threading.Thread(
                    target=self._run,
                    args=(started, self._start_errors),
                    name="gp-response-manager",
                    daemon=True,
                )
                self._thread.start()
        started.wait()
        if self._start_errors:
            with self._lock:
                self._thread = None
            raise self._start_errors[0]

    async def start_async(self) -> None:
        """:meth:`start` on a worker thread: the caller's event loop is not blocked while the
        key pair is made and the port bound."""
        if self._bound is not None and self._key_pair is not None:
            return
        await asyncio.to_thread(self.start)

    def _run(self, started: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._key_pair = ServerKeyPair.generate(self.key_size)
            self._server = loop.run_until_complete(self._bind())
        except BaseException as err:  # noqa: BLE001 - handed to the starting thread
            errors.append(err)
            started.set()
            loop.close()
            return
        self._flusher = loop.create_task(self._flush_rejection_log())
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _flush_rejection_log(self) -> None:
        while True:
            await asyncio.sleep(min(self.rejection_log_interval, 1.0))
            self._rejection_log.flush()

    def _bind_host(self) -> str | None:
        """The address to listen on; None for all interfaces (IPv4 and IPv6)."""
        bind = self.response_bind_ip
        if bind in ALL_INTERFACES:
            return None
        if bind:
            return bind
        try:
            ipaddress.ip_address(self.response_ip)
        except ValueError:
            return None  # advertised as a host name (e.g. a Service): listen everywhere
        return self.response_ip

    async def _bind(self) -> asyncio.base_events.Server:
        host = self._bind_host()
        where = host or "all interfaces"
        first = self.response_port
        attempts = 1 if first == 0 else max(1, self.response_port_retries + 1)
        last_error: OSError | None = None
        for offset in range(attempts):
            port = first + offset if first else 0
            try:
                if host is None:
                    server = await asyncio.start_server(
                        self._handle_connection, sock=_all_interfaces_socket(port)
                    )
                else:
                    server = await asyncio.start_server(
                        self._handle_connection, host=host, port=port, reuse_address=True
                    )
            except OSError as err:
                last_error = err
                continue
            bound_port = server.sockets[0].getsockname()[1]
            self._bound = (self.response_ip, bound_port)
            if first and bound_port != first:
                self.log.warning(
                    "Response port %s on %s was taken; the response server uses port %s instead",
                    first,
                    where,
                    bound_port,
                )
            else:
                self.log.info(
                    "Response server listening on %s port %s; launchers answer to %s",
                    where,
                    bound_port,
                    self.response_address,
                )
            return server
        raise OSError(
            f"The response server could not bind {where} ports {first}..{first + attempts - 1}: "
            f"{last_error}. Set GP_RESPONSE_PORT to a free port, or GP_RESPONSE_BIND_IP / "
            "GP_RESPONSE_IP to an address of this host."
        )

    def stop_response_manager(self) -> None:
        """Close the server and fail every pending launch.  Called at process shutdown."""
        with self._lock:
            loop, thread, server = self._loop, self._thread, self._server
            self._thread = None
            self._bound = None
            pending = list(self._pending.items())
            self._pending.clear()
        for kernel_id, launch in pending:
            if not launch.future.done():
                launch.future.set_exception(
                    RuntimeError(f"The response manager stopped before kernel {kernel_id} answered")
                )
        if loop is None or thread is None:
            return

        async def _close() -> None:
            if server is not None:
                server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(_close(), loop)
        thread.join(timeout=5)

    # -- what provisioners use ---------------------------------------------------------------

    @property
    def public_key(self) -> str:
        """Base64 DER (SubjectPublicKeyInfo) of this process's public key: ``{public_key}``."""
        self.start()
        assert self._key_pair is not None
        return self._key_pair.public_key_b64

    @property
    def response_address(self) -> str:
        """``host:port`` (``[ip]:port`` for IPv6) that launchers send to: ``{response_address}``.

        The host is ``response_ip`` (an address or a host name), whatever is bound."""
        if self._bound is None:
            self.start()
        assert self._bound is not None
        ip, port = self._bound
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    @property
    def bound_address(self) -> tuple[str, int]:
        """The (host, port) the server listens on; host ``""`` for all interfaces."""
        self.start()
        assert self._server is not None
        return (self._bind_host() or "", self._server.sockets[0].getsockname()[1])

    def register_event(
        self, kernel_id: str, launch_secret: str = "", *, allow_legacy: bool = False
    ) -> None:
        """Expect one answer for ``kernel_id``, authenticated by ``launch_secret``.

        Called by ``RemoteProvisionerBase.pre_launch`` before the launch is submitted.  A new
        registration (restart) replaces the previous one for the same kernel.
        """
        self.start()
        with self._lock:
            old = self._pending.pop(kernel_id, None)
            self._pending[kernel_id] = _PendingLaunch(launch_secret, allow_legacy)
            self._answered.pop(kernel_id, None)
        if old is not None and not old.future.done():
            old.future.cancel()

    def unregister_event(self, kernel_id: str) -> None:
        """Forget a pending launch (failed or abandoned).  Called by provisioner cleanup."""
        with self._lock:
            launch = self._pending.pop(kernel_id, None)
        if launch is not None and not launch.future.done():
            launch.future.cancel()

    async def get_connection_info(self, kernel_id: str) -> dict[str, Any]:
        """Wait for ``kernel_id``'s connection info; the caller bounds the wait.

        Raises ``KeyError`` when the kernel was never registered.
        """
        return (await self.get_launch_message(kernel_id)).conn_info

    async def get_launch_message(self, kernel_id: str) -> OpenedMessage:
        """Like ``get_connection_info``, with the protocol version the launcher spoke."""
        with self._lock:
            launch = self._pending.get(kernel_id)
        if launch is None:
            raise KeyError(f"Kernel {kernel_id} has no pending launch")
        return await asyncio.wrap_future(launch.future)

    # -- the server side (runs on the response thread) ---------------------------------------

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = _peer_name(writer)
        host = peer.rpartition(":")[0] or peer
        if self._open_connections >= self.max_connections:
            self._reject(peer, "too-many-connections", "connection limit reached", None)
            writer.close()
            return
        if self._open_by_peer[host] >= self.max_connections_per_peer:
            self._reject(
                peer, "too-many-connections", "this address has too many connections open", None
            )
            writer.close()
            return
        self._open_connections += 1
        self._open_by_peer[host] += 1
        try:
            status = await self._receive(reader, peer)
            if status is not None:
                writer.write(json.dumps(status).encode() + b"\n")
                await asyncio.wait_for(writer.drain(), timeout=self.read_timeout)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            self._open_connections -= 1
            self._open_by_peer[host] -= 1
            if self._open_by_peer[host] <= 0:
                del self._open_by_peer[host]
            writer.close()

    async def _receive(self, reader: asyncio.StreamReader, peer: str) -> dict[str, str] | None:
        try:
            data = await asyncio.wait_for(self._read_message(reader), timeout=self.read_timeout)
        except asyncio.TimeoutError:
            self._reject(peer, "timeout", f"no complete message within {self.read_timeout}s", None)
            return None
        except _TooLarge:
            self._reject(peer, "too-large", f"message over {self.max_message_bytes} bytes", None)
            return {"status": "rejected", "reason": "too-large"}
        if not data.strip():
            self._reject(peer, "empty", "the connection closed without a message", None)
            return None
        with self._lock:
            # The v1 (PKCS#1 v1.5) path is only reachable while some launch allows legacy.
            legacy_wanted = any(p.allow_legacy for p in self._pending.values())
        try:
            # RSA work runs on a worker thread so a burst of sealed envelopes cannot stall
            # the accept loop and the read deadlines of other connections.
            message = await asyncio.to_thread(
                open_message, data, self._key_pair_or_fail(), allow_legacy=legacy_wanted
            )
        except ProtocolError as err:
            self._reject(peer, err.reason, err.detail, err.kernel_id)
            return {"status": "rejected", "reason": err.reason}
        return self._accept(message, peer)

    async def _read_message(self, reader: asyncio.StreamReader) -> bytes:
        limit = self.max_message_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await reader.read(min(65536, limit + 1))
            if not chunk:
                break
            newline = chunk.find(b"\n")
            if newline >= 0:
                chunks.append(chunk[:newline])
                size += newline
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise _TooLarge
        if size > limit:
            raise _TooLarge
        return b"".join(chunks)

    def _accept(self, message: OpenedMessage, peer: str) -> dict[str, str]:
        kernel_id = message.kernel_id
        with self._lock:
            launch = self._pending.get(kernel_id)
            replayed = kernel_id in self._answered
            verdict = _judge(message, launch, replayed)
            if verdict is None:
                self._answered[kernel_id] = None
                while len(self._answered) > 10_000:
                    self._answered.popitem(last=False)
        if verdict is not None:
            reason, detail = verdict
            self._reject(peer, reason, detail, kernel_id)
            return {"status": "rejected", "reason": reason}
        assert launch is not None
        if message.version == 1:
            self.log.warning(
                "Kernel %s answered with the legacy v1 protocol (no integrity or sender "
                "authentication); accepted because allow_legacy_launchers is on",
                kernel_id,
            )
        if not launch.future.done():
            launch.future.set_result(message)
        self.log.debug("Connection info for kernel %s received from %s", kernel_id, peer)
        return {"status": "accepted"}

    def rejections_for(self, kernel_id: str) -> list[str]:
        """Reason codes of the messages refused for ``kernel_id`` (for launch-timeout errors)."""
        with self._lock:
            return list(self._rejections.get(kernel_id, []))

    def legacy_refusals_since(self, monotonic_time: float) -> int:
        """How many v1 payloads were refused unread since ``monotonic_time``."""
        with self._lock:
            return sum(1 for at in self._legacy_refused_at if at >= monotonic_time)

    def _reject(self, peer: str, reason: str, detail: str, kernel_id: str | None) -> None:
        self.rejected_count += 1
        metrics.response_rejected(reason)
        if reason == "legacy-refused":
            with self._lock:
                self._legacy_refused_at.append(time.monotonic())
        if kernel_id:
            with self._lock:
                # Only launches that are pending: ids a peer invents cost no memory here.
                if kernel_id in self._pending:
                    reasons = self._rejections.setdefault(kernel_id, [])
                    if len(reasons) < 20:
                        reasons.append(reason)
                    while len(self._rejections) > 10_000:
                        self._rejections.popitem(last=False)
        if self.log_rejections:
            self._rejection_log.log = self.log
            self._rejection_log.interval = self.rejection_log_interval
            about = f"for kernel {printable(kernel_id)}: " if kernel_id else ""
            self._rejection_log.record(reason, peer, about + detail)

    def _key_pair_or_fail(self) -> ServerKeyPair:
        if self._key_pair is None:
            raise ProtocolError("not-ready", "the response manager has no key pair")
        return self._key_pair


def _section(config: Config | None, name: str) -> dict[str, Any]:
    """The settings ``config`` gives class ``name`` (a plain dict; empty when none)."""
    if config is None or name not in config:
        return {}
    return {key: value for key, value in config[name].items() if not key[:1].isupper()}


def _judge(
    message: OpenedMessage, launch: _PendingLaunch | None, replayed: bool
) -> tuple[str, str] | None:
    """Decide whether a decrypted message answers a pending launch; ``None`` accepts it."""
    if replayed:
        return "replayed", "this kernel already answered; the message is a replay"
    if launch is None:
        return "unknown-kernel", "no launch is pending for this kernel id"
    if message.version == 1:
        if not launch.allow_legacy:
            return "legacy-refused", "a v1 launcher answered but allow_legacy_launchers is off"
        return None
    assert message.launch_secret is not None
    if not hmac.compare_digest(message.launch_secret.encode(), launch.launch_secret.encode()):
        return "bad-secret", "the launch secret does not match this launch"
    return None


def _all_interfaces_socket(port: int) -> socket.socket:
    """A listening socket on every interface: one dual-stack IPv6 socket where the host has
    IPv6 (one port for both families, also with port 0), else IPv4 0.0.0.0."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address: tuple[str, int] = ("0.0.0.0", port)  # noqa: S104 - asked for all interfaces
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = ("::", port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _TooLarge(Exception):
    pass


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
