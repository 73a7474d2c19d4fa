#!/usr/bin/env python3
"""Kernel launcher for Gateway Provisioners: runs next to the kernel, wherever that is.

1. Picks the kernel's five ZMQ ports (inside ``--port-range`` when given) and binds a comm port.
2. Starts the kernel (ipykernel, or ``--kernel-class-name``) as a child process.
3. Seals the connection info for the server (protocol v2: RSA-OAEP + AES-256-GCM, with the
   one-time launch secret from ``GP_LAUNCH_SECRET``; or v1 with ``--protocol-version 1``) and
   sends it to ``--response-address``, retrying with backoff until the server acknowledges.
4. Serves signed interrupt/signal/shutdown requests on the comm port until the kernel exits.

Runs with only the Python standard library, ``cryptography`` and, for CurveZMQ, ``pyzmq``; the
kernel itself needs ipykernel.  The wire format is specified in ``docs/protocol.md``.
"""

from __future__ import annotations

# Only what is needed to start the kernel is imported up front: the rest (asyncio, logging,
# the crypto) loads while the kernel boots, so the launcher adds little to start-up time.
import argparse
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any


class _LazyModule:
    """A module imported on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


if TYPE_CHECKING:
    import asyncio
    import base64
    import hashlib
    import hmac
    import logging
    import random
    import secrets
    import shutil
else:
    asyncio = _LazyModule("asyncio")
    base64 = _LazyModule("base64")
    hashlib = _LazyModule("hashlib")
    hmac = _LazyModule("hmac")
    logging = _LazyModule("logging")
    random = _LazyModule("random")
    secrets = _LazyModule("secrets")
    shutil = _LazyModule("shutil")

PROTOCOL_VERSION = 2
LAUNCH_SECRET_ENV = "GP_LAUNCH_SECRET"  # noqa: S105 - a variable name
COMM_REQUEST_MAX_SKEW_MS = 30_000
MAX_REQUEST_BYTES = 64 * 1024
COMM_MAX_CONNECTIONS = 64  # comm-port connections handled at once
COMM_MAX_CONNECTIONS_PER_PEER = 8  # of those, from one address
COMM_REFUSAL_LOG_INTERVAL = 60.0  # seconds: one summary line per refusal reason per interval
MAX_SIGNUM = 64
SEND_ATTEMPTS = 8
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
SPARK_MODES = ("lazy", "eager", "none")
R_KERNEL_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch_IRkernel.R")


class _LazyLogger:
    """The launcher's logger, created on first use (after the kernel started)."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(logging.getLogger("gp-launcher"), attribute)


log = _LazyLogger()


# ---------------------------------------------------------------------------------------------
# Protocol: sealing (launcher -> server) and comm request verification (server -> launcher)
# ---------------------------------------------------------------------------------------------


def associated_data(kernel_id: str) -> bytes:
    return f"gp-launch:v{PROTOCOL_VERSION}:{kernel_id}".encode()


def _public_key(public_key_b64: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_public_key(base64.b64decode(public_key_b64))


def seal_v2(
    public_key_b64: str,
    kernel_id: str,
    launch_secret: str,
    conn_info: dict[str, Any],
    aes_key: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """The v2 launch message (base64 of the JSON envelope), without the newline."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes_key = aes_key if aes_key is not None else secrets.token_bytes(32)
    nonce = nonce if nonce is not None else secrets.token_bytes(12)
    body = json.dumps({"launch_secret": launch_secret, "conn_info": conn_info}).encode()
    ciphertext = AESGCM(aes_key).encrypt(nonce, body, associated_data(kernel_id))
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = _public_key(public_key_b64).encrypt(aes_key, oaep)
    envelope = {
        "version": PROTOCOL_VERSION,
        "kernel_id": kernel_id,
        "key": base64.b64encode(wrapped).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "conn_info": base64.b64encode(ciphertext).decode(),
    }
    return base64.b64encode(json.dumps(envelope).encode())


def seal_v1(public_key_b64: str, conn_info: dict[str, Any]) -> bytes:
    """The legacy v1 message, for servers that predate v2 (no integrity, no authentication)."""
    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    aes_key = secrets.token_bytes(16)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(json.dumps(conn_info).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()  # noqa: S305 - v1 wire
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    wrapped = _public_key(public_key_b64).encrypt(aes_key, padding.PKCS1v15())
    envelope = {
        "version": 1,
        "key": base64.b64encode(wrapped).decode(),
        "conn_info": base64.b64encode(ciphertext).decode(),
    }
    return base64.b64encode(json.dumps(envelope).encode())


def comm_signing_input(kernel_id: str, request: dict[str, Any], ts_ms: int, nonce: str) -> bytes:
    canonical = {"kernel_id": kernel_id, "nonce": nonce, "request": request, "ts": ts_ms}
    return json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()


class CommRequestError(ValueError):
    """A comm-port request the launcher refuses; ``reason`` is a short code that is safe to
    log and to send back (``{"ok": false, "error": reason}``): it never echoes the request."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CommRequestVerifier:
    """Checks the signature, freshness and uniqueness of comm-port requests."""

    MAX_NONCES = 10_000

    def __init__(self, connection_key: str, kernel_id: str) -> None:
        self._key = connection_key.encode()
        self._kernel_id = kernel_id
        self._seen: dict[str, int] = {}

    def verify(self, message: Any, now_ms: int | None = None) -> dict[str, Any]:
        """Return the inner request, or raise CommRequestError saying why it is refused."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        if not isinstance(message, dict):
            raise CommRequestError("not a JSON object")
        request, ts, nonce = message.get("request"), message.get("ts"), message.get("nonce")
        signature = message.get("signature")
        if (
            not isinstance(request, dict)
            or type(ts) is not int
            or not isinstance(nonce, str)
            or len(nonce) > 256
        ):
            raise CommRequestError("unsigned or incomplete request")
        if not isinstance(signature, str) or message.get("kernel_id") != self._kernel_id:
            raise CommRequestError("unsigned request or another kernel's request")
        try:
            signed = comm_signing_input(self._kernel_id, request, ts, nonce)
        except (ValueError, TypeError, RecursionError):
            raise CommRequestError("unsigned or incomplete request") from None
        expected = hmac.new(self._key, signed, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise CommRequestError("bad signature")
        if abs(now_ms - ts) > COMM_REQUEST_MAX_SKEW_MS:
            raise CommRequestError("stale request")
        self._seen = {
            n: t for n, t in self._seen.items() if now_ms - t <= 2 * COMM_REQUEST_MAX_SKEW_MS
        }
        if nonce in self._seen:
            raise CommRequestError("replayed request")
        if len(self._seen) >= self.MAX_NONCES:
            raise CommRequestError("too many requests")
        self._seen[nonce] = ts
        return request


def parse_comm_request(raw: bytes, verifier: Any, protocol_version: int) -> dict[str, Any]:
    """One comm-port request as the launcher acts on it: ``{"signum": N}`` or
    ``{"shutdown": 1}``.  Raises :class:`CommRequestError` and nothing else, whatever ``raw``
    holds (non-UTF-8, deeply nested JSON, wrong types)."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise CommRequestError("not JSON") from None
    request = message if protocol_version == 1 else verifier.verify(message)
    if not isinstance(request, dict):
        raise CommRequestError("not a JSON object")
    if request.get("shutdown"):
        return {"shutdown": 1}
    signum = request.get("signum")
    if type(signum) is not int or not 0 <= signum <= MAX_SIGNUM:
        raise CommRequestError("no valid signum")
    return {"signum": signum}


class CommGate:
    """Caps comm-port connections in all and per peer address; owns the refusal log."""

    def __init__(self) -> None:
        self.open = 0
        self.by_peer: dict[str, int] = {}
        self.refusals = RefusalLog()

    def enter(self, host: str) -> bool:
        if self.open >= COMM_MAX_CONNECTIONS:
            return False
        if self.by_peer.get(host, 0) >= COMM_MAX_CONNECTIONS_PER_PEER:
            return False
        self.open += 1
        self.by_peer[host] = self.by_peer.get(host, 0) + 1
        return True

    def leave(self, host: str) -> None:
        self.open -= 1
        self.by_peer[host] -= 1
        if self.by_peer[host] <= 0:
            del self.by_peer[host]


class RefusalLog:
    """Refused comm-port connections, logged once per reason and then summed up once per
    interval, so a flood of the comm port does not flood the launcher's log (which the server
    relays for local and ssh launches).  Mirrors gp_provisioners_core.logsafe.RejectionLog."""

    def __init__(self, interval: float = COMM_REFUSAL_LOG_INTERVAL) -> None:
        self.interval = interval
        self._windows: dict[str, list[float]] = {}  # reason -> [started, suppressed]

    def record(self, reason: str, peer: str) -> None:
        now = time.monotonic()
        self.flush(now)
        window = self._windows.get(reason)
        if window is not None:
            window[1] += 1
            return
        self._windows[reason] = [now, 0]
        log.warning("Refused a comm-port request from %s: %s", peer, reason)

    def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for reason, (started, suppressed) in list(self._windows.items()):
            if now - started >= self.interval:
                del self._windows[reason]
                if suppressed:
                    log.warning(
                        "Refused %d more comm-port request(s) (%s) in the last %.0fs",
                        suppressed,
                        reason,
                        now - started,
                    )


# ---------------------------------------------------------------------------------------------
# Ports, addresses and the connection file
# ---------------------------------------------------------------------------------------------


def parse_port_range(text: str) -> tuple[int, int]:
    try:
        lower_text, upper_text = text.split("..")
        if not all(t.isascii() and t.isdigit() for t in (lower_text, upper_text)):
            raise ValueError(text)
        lower, upper = int(lower_text), int(upper_text)
    except ValueError:
        raise SystemExit(f"--port-range {text!r} is not of the form LOWER..UPPER") from None
    if (lower, upper) != (0, 0) and not 0 < lower < upper <= 65535:
        raise SystemExit(f"--port-range {text!r} is not a valid range of TCP ports")
    return lower, upper


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        raise SystemExit(f"--response-address {text!r} is not of the form IP:PORT")
    return host.strip("[]"), int(port)


def local_address_towards(host: str, port: int) -> str:
    """The address of this host that routes to the server (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, port))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def bind_in_range(ip: str, port_range: tuple[int, int], attempts: int = 50) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    lower, upper = port_range
    for _ in range(attempts):
        candidate = 0 if upper == 0 else random.randint(lower, upper)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((ip, candidate))
            return sock
        except OSError:
            sock.close()
    raise SystemExit(f"No free port on {ip} in range {lower}..{upper} after {attempts} tries")


# ---------------------------------------------------------------------------------------------
# The launcher
# ---------------------------------------------------------------------------------------------


class Launcher:
    """Starts one kernel, reports its connection info, and serves its comm port."""

    def __init__(self, args: argparse.Namespace, launch_secret: str) -> None:
        self.args = args
        self.launch_secret = launch_secret
        self.kernel_id: str = args.kernel_id
        self.response_host, self.response_port = parse_address(args.response_address)
        self.ip: str = args.ip or local_address_towards(self.response_host, self.response_port)
        self.port_range = parse_port_range(args.port_range)
        self.kernel: subprocess.Popen[bytes] | None = None
        self.conn_info: dict[str, Any] = {}
        self.connection_file = ""
        self.comm_socket = bind_in_range("" if args.comm_bind_all else self.ip, self.port_range)
        self.workdir = os.path.join(
            os.environ.get("TMPDIR", "/tmp"),  # noqa: S108 - private 0700 folder, random name
            f"gp-kernel-{self.kernel_id[:8]}-{os.urandom(6).hex()}",
        )
        os.mkdir(self.workdir, 0o700)

    @property
    def gate(self) -> CommGate:
        """Who is connected to the comm port, and what was refused (made on first use)."""
        gate = self.__dict__.get("_gate")
        if gate is None:
            gate = self.__dict__["_gate"] = CommGate()
        return gate

    @property
    def kernel_picks_ports(self) -> bool:
        """ipykernel binds port 0 and writes the ports it got back to its connection file, so
        with no port range it picks its own: no window in which another launcher on the same
        address could be handed a port we chose but had not bound yet."""
        return self.args.kernel_language == "python" and self.port_range == (0, 0)

    def build_connection_info(self) -> dict[str, Any]:
        if self.kernel_picks_ports:
            ports = [0] * len(PORT_NAMES)
        else:
            held = [bind_in_range(self.ip, self.port_range) for _ in PORT_NAMES]
            ports = [sock.getsockname()[1] for sock in held]
            for sock in held:
                sock.close()
        info: dict[str, Any] = dict(zip(PORT_NAMES, ports, strict=True))
        info.update(
            ip=self.ip,
            key=os.urandom(32).hex(),
            transport="tcp",
            signature_scheme="hmac-sha256",
            kernel_name="",
        )
        if self.args.transport_encryption != "none":
            info.update(curve_keys(self.args.transport_encryption))
        return info

    def write_connection_file(self, info: dict[str, Any]) -> str:
        path = os.path.join(self.workdir, f"kernel-{self.kernel_id}.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return path

    def kernel_command(self, connection_file: str) -> list[str]:
        if self.args.kernel_language == "R":
            return [self.args.rscript, R_KERNEL_SCRIPT, connection_file]
        cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file]
        if self.args.kernel_class_name:
            cmd.append(f"--IPKernelApp.kernel_class={self.args.kernel_class_name}")
        cmd.extend(spark_exec_lines(self.args.spark_context_initialization_mode, self.kernel_id))
        return cmd

    def start_kernel(self) -> None:
        info = self.build_connection_info()
        connection_file = self.connection_file = self.write_connection_file(info)
        env = {k: v for k, v in os.environ.items() if k != LAUNCH_SECRET_ENV}
        # ipykernel watches this pid and exits when the launcher dies, so no kernel is orphaned.
        env["JPY_PARENT_PID"] = str(os.getpid())
        self.kernel = subprocess.Popen(self.kernel_command(connection_file), env=env)
        self.conn_info = dict(
            info,
            pid=os.getpid(),
            pgid=os.getpgid(0),
            kernel_pid=self.kernel.pid,
            comm_port=self.comm_socket.getsockname()[1],
            kernel_id=self.kernel_id,
        )

    def await_kernel_ports(self, timeout: float = 300.0) -> None:
        """When the kernel picks its ports, read them back from its connection file."""
        if not self.kernel_picks_ports:
            return
        assert self.kernel is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.kernel.poll()
            if code is not None:
                raise SystemExit(f"The kernel exited with code {code} before binding its ports")
            try:
                with open(self.connection_file) as f:
                    written = json.load(f)
            except (OSError, ValueError):  # not there yet, or being written
                written = {}
            ports = [written.get(name) for name in PORT_NAMES]
            if all(isinstance(port, int) and port > 0 for port in ports):
                self.conn_info.update(zip(PORT_NAMES, ports, strict=True))
                return
            time.sleep(0.005)
        raise SystemExit(f"The kernel did not bind its ports within {timeout:g}s")

    def send_connection_info(self) -> None:
        if self.args.protocol_version == 1:
            message = seal_v1(self.args.public_key, self.conn_info)
        else:
            message = seal_v2(
                self.args.public_key, self.kernel_id, self.launch_secret, self.conn_info
            )
        delay = 0.1
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                status = self._send_once(message)
            except OSError as err:
                log.warning("Sending connection info failed (attempt %d): %s", attempt, err)
            else:
                if status.get("status") == "accepted" or self.args.protocol_version == 1:
                    return
                if status.get("reason") == "replayed" and attempt > 1:
                    # An earlier attempt got through but its acknowledgement was lost.
                    return
                raise SystemExit(f"The server refused the connection info: {status}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise SystemExit(
            f"Could not reach the server at {self.args.response_address} after "
            f"{SEND_ATTEMPTS} attempts"
        )

    def _send_once(self, message: bytes) -> dict[str, Any]:
        with socket.create_connection((self.response_host, self.response_port), timeout=10) as s:
            if self.args.protocol_version == 1:
                s.sendall(message)
                return {}
            s.sendall(message + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        if not reply.strip():
            # Closed without a status (busy, read deadline): retry rather than give up.
            raise OSError("the server closed the connection without an acknowledgement")
        try:
            status = json.loads(reply)
        except ValueError:
            raise OSError(f"unreadable acknowledgement {reply[:80]!r}") from None
        return status if isinstance(status, dict) else {}

    # -- comm port ------------------------------------------------------------------------------

    async def serve(self) -> int:
        assert self.kernel is not None
        loop = asyncio.get_running_loop()
        verifier = CommRequestVerifier(self.conn_info["key"], self.kernel_id)
        self.comm_socket.listen(128)
        self.comm_socket.setblocking(False)
        server = await asyncio.start_server(
            lambda r, w: self._handle_comm(r, w, verifier), sock=self.comm_socket
        )
        flusher = loop.create_task(self._flush_refusals())
        forget = loop.create_task(self.forget_connection_file())
        for signum in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGHUP,
            signal.SIGUSR1,
            signal.SIGUSR2,
        ):
            loop.add_signal_handler(signum, self._on_signal, signum)
        exit_code = await loop.run_in_executor(None, self.kernel.wait)
        flusher.cancel()
        forget.cancel()
        self.gate.refusals.flush(time.monotonic() + self.gate.refusals.interval)
        server.close()
        log.info("Kernel %s exited with %s", self.kernel_id, exit_code)
        return exit_code

    async def forget_connection_file(self, timeout: float = 300.0) -> None:
        """Remove the connection file (it holds the kernel's key) as soon as the kernel has
        read it, so that a launcher killed hard (SIGKILL, OOM) leaves no key behind.

        The kernel reads the file before it binds its ports: when it picked its own ports
        they are already known here; otherwise wait until its shell port accepts."""
        if not self.kernel_picks_ports:
            deadline = time.monotonic() + timeout
            port = int(self.conn_info["shell_port"])
            while time.monotonic() < deadline:
                try:
                    _, writer = await asyncio.open_connection(self.ip, port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        for path in (self.connection_file, self.workdir):
            try:
                (os.rmdir if path == self.workdir else os.unlink)(path)
            except OSError:
                pass

    async def _flush_refusals(self) -> None:
        while True:
            await asyncio.sleep(5)
            self.gate.refusals.flush()

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGTERM:
            asyncio.get_running_loop().create_task(self.stop_kernel())
        elif self.kernel is not None and self.kernel.poll() is None:
            self.kernel.send_signal(signum)

    async def _handle_comm(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, verifier: Any
    ) -> None:
        peer_info = writer.get_extra_info("peername")
        host = str(peer_info[0]) if isinstance(peer_info, tuple) and peer_info else "?"
        gate = self.gate
        if not gate.enter(host):
            gate.refusals.record("too many connections", host)
            writer.close()
            return
        try:
            await self._serve_one(reader, writer, verifier, host)
        finally:
            gate.leave(host)

    async def _serve_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, verifier: Any, host: str
    ) -> None:
        try:
            raw = await asyncio.wait_for(self._read_request(reader), timeout=5)
            request = parse_comm_request(raw, verifier, self.args.protocol_version)
            reply = await self.apply(request)
        except CommRequestError as err:
            self.gate.refusals.record(err.reason, host)
            reply = {"ok": False, "error": err.reason}
        except (asyncio.TimeoutError, OSError):
            self.gate.refusals.record("no complete request in time", host)
            reply = {"ok": False, "error": "no complete request in time"}
        try:
            if self.args.protocol_version != 1:
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request: a line (v2), or everything up to EOF (v1), at most MAX_REQUEST_BYTES."""
        data = b""
        while len(data) <= MAX_REQUEST_BYTES:
            chunk = await reader.read(MAX_REQUEST_BYTES + 1 - len(data))
            if not chunk:
                return data
            data += chunk
            if self.args.protocol_version != 1 and b"\n" in data:
                return data[: data.index(b"\n")]
        raise CommRequestError("request too large")

    async def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """Act on a request from :func:`parse_comm_request`."""
        assert self.kernel is not None
        if request.get("shutdown"):
            asyncio.get_running_loop().create_task(self.stop_kernel())
            return {"ok": True}
        signum = request["signum"]
        alive = self.kernel.poll() is None
        if alive and signum:
            try:
                self.kernel.send_signal(signum)
            except (ValueError, OSError):
                raise CommRequestError("no such signal") from None
            log.info("Sent signal %s to kernel %s", signum, self.kernel_id)
        return {"ok": True, "alive": alive}

    async def stop_kernel(self, grace: float = 5.0) -> None:
        if self.kernel is None or self.kernel.poll() is not None:
            return
        self.kernel.terminate()
        deadline = time.monotonic() + grace
        while self.kernel.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.kernel.poll() is None:
            self.kernel.kill()


def curve_keys(mode: str) -> dict[str, str]:
    try:
        import zmq

        if not zmq.has("curve"):
            raise RuntimeError("libzmq has no CurveZMQ support")
        public, secret = zmq.curve_keypair()
    except Exception as err:
        if mode == "required":
            raise SystemExit(f"Transport encryption is required but unavailable: {err}") from err
        log.warning("CurveZMQ unavailable (%s); the kernel runs without it", err)
        return {}
    return {"curve_publickey": public.decode(), "curve_secretkey": secret.decode()}


def spark_exec_lines(mode: str, kernel_id: str) -> list[str]:
    """IPython start-up lines that create the Spark context as the mode asks."""
    if mode == "none":
        return []
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        raise SystemExit(
            f"--spark-context-initialization-mode {mode} needs pyspark, which is not installed "
            "where the kernel runs; install pyspark there or use mode 'none'"
        )
    build = (
        "from pyspark.sql import SparkSession as _S; "
        f"spark = _S.builder.appName({kernel_id!r}).getOrCreate(); sc = spark.sparkContext"
    )
    if mode == "eager":
        return [f"--IPKernelApp.exec_lines={json.dumps([build])}"]
    lazy = (
        "import threading as _t; "
        "_ns = get_ipython().user_ns; "
        f"_t.Thread(target=lambda: exec({build!r}, _ns), daemon=True).start()"
    )
    return [f"--IPKernelApp.exec_lines={json.dumps([lazy])}"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-id", required=True)
    parser.add_argument("--response-address", required=True, help="IP:PORT of the server")
    parser.add_argument("--public-key", required=True, help="the server's base64 DER key")
    parser.add_argument("--port-range", default="0..0", help="LOWER..UPPER, 0..0 for any")
    parser.add_argument("--kernel-class-name", default="", help="ipykernel Kernel subclass")
    parser.add_argument("--spark-context-initialization-mode", choices=SPARK_MODES, default="none")
    parser.add_argument("--ip", default=os.getenv("GP_KERNEL_IP", ""), help="kernel address")
    parser.add_argument("--comm-bind-all", action="store_true", help="comm port on all addresses")
    parser.add_argument("--protocol-version", type=int, choices=(1, 2), default=PROTOCOL_VERSION)
    parser.add_argument(
        "--transport-encryption",
        choices=("none", "auto", "required"),
        default=os.getenv("GP_TRANSPORT_ENCRYPTION", "none"),
        help="CurveZMQ for the kernel's channels (the server sets GP_TRANSPORT_ENCRYPTION)",
    )
    parser.add_argument(
        "--kernel-language",
        choices=("python", "R"),
        default="python",
        help="python runs ipykernel; R runs IRkernel through launch_IRkernel.R next to this file",
    )
    parser.add_argument("--rscript", default=os.getenv("GP_RSCRIPT", "Rscript"), help="for R")
    parser.add_argument("--log-level", default=os.getenv("GP_LAUNCHER_LOG_LEVEL", "INFO"))
    # Accepted and ignored so that older kernelspecs keep working.
    parser.add_argument("--kernel-username", "--RemoteProcessProxy.kernel-id", default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    launch_secret = os.environ.get(LAUNCH_SECRET_ENV, "")
    if args.protocol_version == 2 and not launch_secret:
        raise SystemExit(f"{LAUNCH_SECRET_ENV} is not set: the server must pass the launch secret")
    if args.spark_context_initialization_mode != "none":
        if args.kernel_language != "python":
            raise SystemExit(
                f"--spark-context-initialization-mode {args.spark_context_initialization_mode} "
                f"is only supported for Python kernels, not {args.kernel_language}; use none"
            )
        spark_exec_lines(args.spark_context_initialization_mode, args.kernel_id)
    if args.kernel_language == "R" and not os.path.isfile(R_KERNEL_SCRIPT):
        raise SystemExit(f"--kernel-language R needs {R_KERNEL_SCRIPT} next to this launcher")
    launcher = Launcher(args, launch_secret)
    launcher.start_kernel()
    logging.basicConfig(  # only now: importing logging must not delay the kernel
        level=args.log_level.upper(),
        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s",
    )
    assert launcher.kernel is not None
    log.info("Kernel %s started as pid %s on %s", args.kernel_id, launcher.kernel.pid, launcher.ip)
    try:
        try:  # import the crypto and parse the key while the kernel boots
            _public_key(args.public_key)
        except (ValueError, TypeError) as err:
            raise SystemExit(f"--public-key is not a base64 DER public key: {err}") from None
        launcher.await_kernel_ports()
        launcher.send_connection_info()
    except SystemExit:
        assert launcher.kernel is not None
        launcher.kernel.kill()
        shutil.rmtree(launcher.workdir, ignore_errors=True)
        raise
    try:
        return asyncio.run(launcher.serve())
    finally:
        shutil.rmtree(launcher.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
