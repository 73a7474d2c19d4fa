"""Errors a user can see when a kernel launch is refused or fails.

They are ``tornado.web.HTTPError`` subclasses so that Jupyter Server answers with the right
status (403 for a refused user) and our message; outside a server they are plain exceptions
(also ``RuntimeError``) whose text names the kernel, the phase and the reason.
"""

from __future__ import annotations

from tornado.web import HTTPError


class ProvisionerError(HTTPError, RuntimeError):
    """Base of the errors raised by gp provisioners; ``str()`` is the whole message."""

    def __init__(self, status_code: int, message: str, *, kernel_id: str = "") -> None:
        # log_message is a %-format string for tornado; escape it so that user text is literal.
        super().__init__(status_code, message.replace("%", "%%"), reason=None)
        self.message = message
        self.kernel_id = kernel_id

    def __str__(self) -> str:
        return self.message


class UnauthorizedUserError(ProvisionerError):
    """KERNEL_USERNAME is not allowed to start kernels here (HTTP 403)."""

    def __init__(self, message: str, *, kernel_id: str = "") -> None:
        super().__init__(403, message, kernel_id=kernel_id)


class KernelSpecConfigError(ProvisionerError):
    """The kernelspec or the operator's configuration is invalid (HTTP 500: fix the server)."""

    def __init__(self, message: str, *, kernel_id: str = "") -> None:
        super().__init__(500, message, kernel_id=kernel_id)


class InvalidLaunchParameterError(ProvisionerError):
    """A value in the start request (a ``KERNEL_*`` variable, the kernel id) is refused
    (HTTP 400: fix the request)."""

    def __init__(self, message: str, *, kernel_id: str = "") -> None:
        super().__init__(400, message, kernel_id=kernel_id)

    @classmethod
    def for_value(
        cls, name: str, value: str, why: str, kernel_id: str
    ) -> InvalidLaunchParameterError:
        """The refusal of one start-request value, as ``NAME='value' for kernel K is refused:
        why`` (the value cut at 200 characters).  ``why`` says what is allowed, so that the
        user knows what to send instead.  Called by the backends' parameter checks."""
        shown = value if len(value) <= 200 else value[:200] + "..."
        return cls(
            f"{name}={shown!r} for kernel {kernel_id} is refused: {why}", kernel_id=kernel_id
        )


class LaunchFailedError(ProvisionerError):
    """The launch failed in a known phase, for a reason the backend gave (HTTP 500).

    ``failure_reason`` is optional: one of ``gp_provisioners_core.metrics.FAILURE_REASONS``
    (e.g. ``image-unavailable``), for metrics and launch events; others are ignored.
    """

    def __init__(
        self, message: str, *, kernel_id: str = "", phase: str = "", failure_reason: str = ""
    ) -> None:
        super().__init__(500, message, kernel_id=kernel_id)
        self.phase = phase
        self.failure_reason = failure_reason


class LaunchTimeoutError(LaunchFailedError):
    """The launch did not finish within launch_timeout (HTTP 500)."""
