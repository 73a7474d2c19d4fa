"""Logging what a peer sent without letting it forge log lines or flood the log.

Used by the response manager (and mirrored in the stdlib-only Python launcher): every value a
peer controls goes through :func:`printable` before it reaches a log record or an error text,
and rejections are counted per reason by :class:`RejectionLog`, which writes one line for the
first rejection of a reason and one summary line per reason per interval after that.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LIMIT = 80


def printable(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` quoted, ASCII-only, control characters escaped, at most about ``limit``
    characters: safe to put in one log line whatever a peer sent.

    Strings longer than ``limit`` are cut and say how much was left out.
    """
    text = value if isinstance(value, str) else _short_repr(value, limit)
    shown = text[:limit]
    rest = len(text) - len(shown)
    escaped = ascii(shown)
    return f"{escaped}...(+{rest} chars)" if rest > 0 else escaped


def _short_repr(value: Any, limit: int) -> str:
    if isinstance(value, (bool, int, float)) or value is None:
        text = repr(value)
    else:
        text = f"<{type(value).__name__}>"
    return text[: limit * 2]


@dataclass
class _Window:
    started: float
    suppressed: int = 0
    peers: set[str] = field(default_factory=set)


class RejectionLog:
    """Per-reason aggregation of refused connections.

    ``record`` logs the first rejection of a reason at once (with its detail) and only counts
    the following ones for ``interval`` seconds; ``flush`` (called periodically by the owner,
    and by ``record``) then writes one summary line per reason: how many, from how many peers.
    Memory is bounded: a few peers per reason are remembered for the summary, not all.
    """

    MAX_PEERS = 8

    def __init__(self, log: logging.Logger, what: str, interval: float = 10.0) -> None:
        self.log = log
        self.what = what
        self.interval = interval
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def record(self, reason: str, peer: str, detail: str) -> None:
        """One refused connection; ``detail`` must already be :func:`printable`-safe."""
        now = time.monotonic()
        self.flush(now)
        with self._lock:
            window = self._windows.get(reason)
            if window is not None:
                window.suppressed += 1
                if len(window.peers) < self.MAX_PEERS:
                    window.peers.add(peer)
                return
            self._windows[reason] = _Window(now)
        self.log.warning(
            "%s refused a connection from %s (%s): %s", self.what, peer, reason, detail
        )

    def flush(self, now: float | None = None) -> None:
        """Write the summary of every reason whose interval ended; forget quiet reasons."""
        now = time.monotonic() if now is None else now
        summaries: list[tuple[str, _Window]] = []
        with self._lock:
            for reason, window in list(self._windows.items()):
                if now - window.started >= self.interval:
                    del self._windows[reason]
                    if window.suppressed:
                        summaries.append((reason, window))
        for reason, window in summaries:
            peers = ", ".join(sorted(window.peers))
            more = "" if len(window.peers) < self.MAX_PEERS else " and others"
            self.log.warning(
                "%s refused %d more connection(s) (%s) in the last %.0fs, from %s%s",
                self.what,
                window.suppressed,
                reason,
                now - window.started,
                peers,
                more,
            )
