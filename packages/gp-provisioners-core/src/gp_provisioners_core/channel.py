"""KernelChannel: the server's client for a launcher's comm port."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from . import metrics
from .logsafe import printable
from .protocol import sign_comm_request

DEFAULT_REQUEST_TIMEOUT = 5.0
MAX_REPLY_BYTES = 4096


class KernelChannelError(ConnectionError):
    """The launcher did not take the request (unreachable, refused, or no answer)."""


class KernelChannel:
    """Sends signed signal and shutdown requests to one kernel's launcher.

    Created by ``RemoteProvisionerBase`` once the connection info arrives (and again from
    ``load_provisioner_info``).  Uses the caller's event loop with non-blocking sockets only.
    ``legacy`` selects the v1 wire (unsigned JSON, no reply) for launchers that spoke v1.
    """

    def __init__(
        self,
        kernel_id: str,
        host: str,
        port: int,
        connection_key: str,
        *,
        legacy: bool = False,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        log: logging.Logger | None = None,
    ) -> None:
        self.kernel_id = kernel_id
        self.host = host
        self.port = port
        self._connection_key = connection_key
        self.legacy = legacy
        self.timeout = timeout
        self.log = log or logging.getLogger(__name__)

    async def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request; return the launcher's reply (``{}`` on the legacy wire).

        Raises :class:`KernelChannelError` when the launcher cannot be reached or refuses.
        """
        if self.legacy:
            body = json.dumps(request).encode()
        else:
            signed = sign_comm_request(self._connection_key, self.kernel_id, request)
            body = json.dumps(signed).encode() + b"\n"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=MAX_REPLY_BYTES),
                timeout=self.timeout,
            )
        except (OSError, asyncio.TimeoutError) as err:
            metrics.comm_rejected("unreachable")
            raise KernelChannelError(
                f"Kernel {self.kernel_id}: comm port {self.host}:{self.port} unreachable: {err}"
            ) from err
        try:
            writer.write(body)
            if self.legacy:
                writer.write_eof()
                await writer.drain()
                return {}
            await writer.drain()
            raw = await asyncio.wait_for(reader.readline(), timeout=self.timeout)
        except ValueError as err:  # a line over MAX_REPLY_BYTES
            raise KernelChannelError(
                f"Kernel {self.kernel_id}: the comm port {self.host}:{self.port} answered with "
                f"more than {MAX_REPLY_BYTES} bytes; is it this kernel's launcher?"
            ) from err
        except (OSError, asyncio.TimeoutError) as err:
            metrics.comm_rejected("no-answer")
            raise KernelChannelError(
                f"Kernel {self.kernel_id}: no answer from comm port {self.host}:{self.port}: {err}"
            ) from err
        finally:
            writer.close()
        return self._parse_reply(raw, request)

    def _parse_reply(self, raw: bytes, request: dict[str, Any]) -> dict[str, Any]:
        """The launcher's reply; :class:`KernelChannelError` for anything but a JSON object
        with a true ``ok`` (and a boolean ``alive`` when present), whatever ``raw`` holds."""
        try:
            reply = json.loads(raw)
        except (ValueError, RecursionError):
            reply = None
        if (
            not isinstance(reply, dict)
            or reply.get("ok") is not True
            or not isinstance(reply.get("alive", False), bool)
        ):
            metrics.comm_rejected("refused")
            error = reply.get("error") if isinstance(reply, dict) else None
            said = printable(error) if error is not None else printable(raw.decode("latin-1"))
            raise KernelChannelError(
                f"Kernel {self.kernel_id}: the launcher refused {request}: {said}"
            )
        return reply

    async def send_signal(self, signum: int) -> None:
        """Ask the launcher to send ``signum`` to the kernel (2 = interrupt)."""
        await self.request({"signum": signum})

    async def is_alive(self) -> bool:
        """True while the launcher answers and reports its kernel alive."""
        try:
            reply = await self.request({"signum": 0})
        except KernelChannelError:
            return False
        return bool(reply.get("alive", True))

    async def shutdown(self) -> None:
        """Ask the launcher to stop the kernel and exit."""
        await self.request({"shutdown": 1})
