"""Launch phases: what a launch is doing now, and how long each step took."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

SUBMITTED = "submitted"
CONNECTION_INFO = "connection-info-received"
CONFIRMED = "backend-confirmed"
READY = "ready"
PHASE_ORDER = (SUBMITTED, CONNECTION_INFO, CONFIRMED, READY)


@dataclass
class LaunchPhases:
    """The phases of one launch, in order.

    ``current`` names the phase being worked on (the one that failed, if the launch fails);
    ``durations`` holds the seconds each finished phase took.  Owned by ``RemoteProvisionerBase``
    and kept in its state, so a failed launch and ``get_provisioner_info`` can report them.
    """

    kernel_id: str
    log: logging.Logger
    started: float = field(default_factory=time.monotonic)
    durations: dict[str, float] = field(default_factory=dict)
    current: str = SUBMITTED
    _phase_started: float = field(default_factory=time.monotonic)

    def complete(self, phase: str, detail: str = "") -> None:
        """Mark ``phase`` done, log its duration, and move to the next phase."""
        now = time.monotonic()
        self.durations[phase] = round(now - self._phase_started, 4)
        self._phase_started = now
        following = PHASE_ORDER.index(phase) + 1 if phase in PHASE_ORDER else len(PHASE_ORDER)
        self.current = PHASE_ORDER[following] if following < len(PHASE_ORDER) else "done"
        suffix = f" ({detail})" if detail else ""
        self.log.info(
            "Kernel %s launch phase '%s' done in %.3fs%s",
            self.kernel_id,
            phase,
            self.durations[phase],
            suffix,
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> str:
        parts = [f"{name} {seconds:.3f}s" for name, seconds in self.durations.items()]
        return ", ".join(parts) if parts else "no phase finished"

    def as_dict(self) -> dict[str, object]:
        return {"current": self.current, "durations": dict(self.durations)}
