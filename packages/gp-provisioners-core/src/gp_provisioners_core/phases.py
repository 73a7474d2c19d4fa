"""Launch phases: what a launch is doing now, and how long each step took."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from . import launch_events, metrics
from .errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchFailedError,
    LaunchTimeoutError,
    UnauthorizedUserError,
)

SUBMITTED = "submitted"
CONNECTION_INFO = "connection-info-received"
CONFIRMED = "backend-confirmed"
READY = "ready"
PHASE_ORDER = (SUBMITTED, CONNECTION_INFO, CONFIRMED, READY)
# Steps inside a phase that some backends report (``LaunchPhases.note``): events, not phases.
SCHEDULED = "scheduled"
IMAGE_PULLED = "image-pulled"
PRE_LAUNCH = "pre-launch"


@dataclass
class LaunchPhases:
    """The phases of one launch, in order.

    ``current`` names the phase being worked on (the one that failed, if the launch fails);
    ``durations`` holds the seconds each finished phase took.  Owned by ``RemoteProvisionerBase``
    and kept in its state, so a failed launch and ``get_provisioner_info`` can report them.

    The single source of a launch's log lines, metrics (:mod:`.metrics`) and Jupyter events
    (:mod:`.launch_events`): ``complete``, ``note`` and ``fail`` do all three.  ``backend`` and
    ``kernelspec`` label them (both bounded, operator-chosen names).
    """

    kernel_id: str
    log: logging.Logger
    started: float = field(default_factory=time.monotonic)
    durations: dict[str, float] = field(default_factory=dict)
    current: str = SUBMITTED
    _phase_started: float = field(default_factory=time.monotonic)
    backend: str = ""
    kernelspec: str = ""
    ended: bool = False
    noted: set[str] = field(default_factory=set)

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
        metrics.phase_done(self.backend, phase, self.durations[phase])
        self._emit(phase, "done", duration=self.durations[phase], detail=detail)
        if phase == READY and not self.ended:
            self.ended = True
            metrics.launch_ended(self.backend, self.kernelspec, "success", self.elapsed)

    def note(self, step: str, detail: str = "") -> None:
        """Report a step inside the current phase that the backend knows of (``SCHEDULED``,
        ``IMAGE_PULLED``): logged and emitted as a ``progress`` event; the phase does not
        change.  Each step is reported once per launch (later calls do nothing).  Called by
        backends' ``report_launch_steps`` as their watch sees the step.
        """
        if step in self.noted:
            return
        self.noted.add(step)
        suffix = f" ({detail})" if detail else ""
        self.log.info(
            "Kernel %s launch step '%s' after %.3fs%s", self.kernel_id, step, self.elapsed, suffix
        )
        self._emit(step, "progress", detail=detail)

    def fail(self, error: BaseException, *, phase: str = "") -> None:
        """Record that the launch ended with ``error``: the failure metrics and a ``failed``
        event naming the phase (``phase``, else the current one) and a bounded reason.

        Called once per launch by ``RemoteProvisionerBase`` (a refused ``pre_launch`` with
        ``phase=PRE_LAUNCH``, a failed ``launch_kernel``); later calls do nothing.
        """
        if self.ended:
            return
        self.ended = True
        where = phase or getattr(error, "phase", "") or self.current
        reason = failure_reason(error, where)
        outcome = "refused" if where == PRE_LAUNCH else "failure"
        metrics.launch_ended(
            self.backend, self.kernelspec, outcome, self.elapsed, phase=where, reason=reason
        )
        message = str(error) or type(error).__name__
        self._emit(where, "failed", reason=reason, message=message)

    def _emit(
        self,
        phase: str,
        status: str,
        *,
        duration: float | None = None,
        detail: str = "",
        reason: str = "",
        message: str = "",
    ) -> None:
        if not launch_events.active():
            return
        launch_events.emit(
            launch_events.launch_event(
                kernel_id=self.kernel_id,
                backend=self.backend,
                kernelspec=self.kernelspec,
                phase=phase if phase in EVENT_PHASES else self.current,
                status=status,
                elapsed=self.elapsed,
                duration=duration,
                detail=detail,
                reason=reason,
                message=message,
            )
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> str:
        parts = [f"{name} {seconds:.3f}s" for name, seconds in self.durations.items()]
        return ", ".join(parts) if parts else "no phase finished"

    def as_dict(self) -> dict[str, object]:
        return {"current": self.current, "durations": dict(self.durations)}


EVENT_PHASES = (PRE_LAUNCH, SUBMITTED, SCHEDULED, IMAGE_PULLED, CONNECTION_INFO, CONFIRMED, READY)


def failure_reason(error: BaseException, phase: str = "") -> str:
    """The bounded reason (one of ``metrics.FAILURE_REASONS``) of a launch that raised ``error``.

    A ``LaunchFailedError`` may carry its own (``failure_reason``, set by the backend through
    ``fail_launch(..., failure_reason=...)``); otherwise the error's type and the phase decide.
    """
    if isinstance(error, UnauthorizedUserError):
        return "unauthorized"
    if isinstance(error, InvalidLaunchParameterError):
        return "invalid-request"
    if isinstance(error, KernelSpecConfigError):
        return "configuration"
    if isinstance(error, LaunchTimeoutError):
        return "timeout"
    if isinstance(error, LaunchFailedError):
        given = getattr(error, "failure_reason", "")
        if given in metrics.FAILURE_REASONS:
            return str(given)
        return "submit-refused" if phase == SUBMITTED else "backend-error"
    if isinstance(error, asyncio.CancelledError | KeyboardInterrupt):
        return "cancelled"
    return "internal-error"
