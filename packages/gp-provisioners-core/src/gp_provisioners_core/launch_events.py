"""Launch phases as Jupyter events, streamed by Jupyter Server on ``/api/events/subscribe``.

The schema (``event_schemas/kernel-launch-v1.json``, published in ``docs/schemas/``) is
registered with the server's ``EventLogger`` by the server extension
(:mod:`gp_provisioners_core.jupyter_extension`), which hands the logger to :func:`use_event_logger`.
Without a server (or with ``Observability.events_enabled`` off) :func:`emit` does nothing.

Payloads are built here from plain values, never from connection info or the environment, so
they cannot carry a connection key or a launch secret; text fields are cut to
``Observability.event_detail_limit`` characters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from .settings import Observability

SCHEMA_ID = "https://gateway-provisioners.github.io/gp/events/kernel-launch/v1"
SCHEMA_VERSION = "1"
SCHEMA_FILE = "kernel-launch-v1.json"

log = logging.getLogger(__name__)

_lock = threading.Lock()
_event_logger: Any = None
_loop: asyncio.AbstractEventLoop | None = None


def schema_path() -> Path:
    """The schema file shipped in the package (``gp_provisioners_core/event_schemas``)."""
    return Path(str(resources.files("gp_provisioners_core") / "event_schemas" / SCHEMA_FILE))


def schema() -> dict[str, Any]:
    """The launch event schema as data."""
    loaded: dict[str, Any] = json.loads(schema_path().read_text())
    return loaded


def use_event_logger(event_logger: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Register the launch schema with ``event_logger`` (a ``jupyter_events.EventLogger``) and
    emit to it from now on; ``None`` stops emitting.

    Called by the server extension's ``_load_jupyter_server_extension`` with
    ``serverapp.event_logger``; tests may call it with their own logger.  ``loop`` is the loop
    events are delivered on (the server's); emits from other threads are handed to it.
    """
    global _event_logger, _loop
    if event_logger is not None and SCHEMA_ID not in getattr(event_logger, "schemas", ()):
        event_logger.register_event_schema(schema_path())
        _warm_validator(event_logger)
    with _lock:
        _event_logger = event_logger
        _loop = loop


def _warm_validator(event_logger: Any) -> None:
    """Validate one sample event now (at server start-up), so that the validator's one-off
    set-up does not land on the event loop during the first launch."""
    sample = launch_event(
        kernel_id="warm-up",
        backend="none",
        kernelspec="none",
        phase="ready",
        status="done",
        elapsed=0.0,
    )
    try:
        event_logger.schemas.validate_event(SCHEMA_ID, sample)
    except Exception as err:  # noqa: BLE001 - a warm-up only
        log.debug("Launch event schema warm-up failed: %s", err)


def active() -> bool:
    """True when launch events reach an event logger."""
    return _event_logger is not None and Observability.instance().events_enabled


def _cut(text: str) -> str:
    limit = max(16, Observability.instance().event_detail_limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def launch_event(
    *,
    kernel_id: str,
    backend: str,
    kernelspec: str,
    phase: str,
    status: str,
    elapsed: float,
    duration: float | None = None,
    detail: str = "",
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    """The payload of one launch event (see the schema for the fields)."""
    data: dict[str, Any] = {
        "kernel_id": kernel_id[:128],
        "backend": backend[:64],
        "kernelspec": kernelspec[:256],
        "phase": phase,
        "status": status,
        "elapsed_seconds": round(max(0.0, elapsed), 4),
    }
    if duration is not None:
        data["duration_seconds"] = round(max(0.0, duration), 4)
    if detail:
        data["detail"] = _cut(detail)
    if reason:
        data["reason"] = reason
    if message:
        data["message"] = _cut(message)
    return data


def emit(data: dict[str, Any]) -> None:
    """Emit one launch event; a no-op without an event logger.

    Called by ``LaunchPhases`` (on the provisioner's event loop).  The event logger schedules
    its listeners (the ``/api/events/subscribe`` websockets) as tasks on the running loop, so a
    call from another thread is handed to the loop of an earlier emit (or the one given to
    ``use_event_logger``); without one, the event is emitted in the caller's thread.  A payload
    the schema refuses is logged and dropped: observability never fails a launch.
    """
    global _loop
    event_logger, loop = _event_logger, _loop
    if event_logger is None or not Observability.instance().events_enabled:
        return
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and loop is None:
        _loop = running  # the first emit comes from the server's loop: remember it
    if running is None and loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(_emit_now, event_logger, data)
        return
    _emit_now(event_logger, data)


def _emit_now(event_logger: Any, data: dict[str, Any]) -> None:
    try:
        event_logger.emit(schema_id=SCHEMA_ID, data=data)
    except Exception as err:  # noqa: BLE001 - an event must never break a launch
        log.warning("Launch event for kernel %s not emitted: %s", data.get("kernel_id"), err)


__all__ = [
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "active",
    "emit",
    "launch_event",
    "schema",
    "schema_path",
    "use_event_logger",
]
