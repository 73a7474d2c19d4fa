"""The ResourceManager client: yarn-api-client's ``ResourceManager``, kept on the active RM.

yarn-api-client chooses an endpoint once, when a ``ResourceManager`` is built, with a GET of
``/cluster``; a standby RM answers that with a redirect to the active one, which ``requests``
follows, so the check can pick the standby, and nothing re-checks later.  So this client asks
each candidate's ``/ws/v1/cluster/info`` (which a standby answers itself, never redirecting)
for its ``haState``, builds the ``ResourceManager`` for the ACTIVE one, and rebuilds it when a
call fails because that RM went away or stopped being active (connection refused, a redirect it
cannot follow, a non-JSON answer).

Every method blocks: call it from a worker thread (``asyncio.to_thread``) or the status
watcher's thread, never from an event loop.  One client is shared per configuration and
process (:meth:`ResourceManagerClient.shared`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from yarn_api_client import ResourceManager  # type: ignore[import-untyped]
from yarn_api_client.errors import APIError  # type: ignore[import-untyped]

from gp_provisioners_core import metrics
from gp_provisioners_core.errors import KernelSpecConfigError

log = logging.getLogger(__name__)

_STATUS = re.compile(r"status: (\d{3})")
# Answers that mean "not the active RM (any more)": a standby's redirect without a target
# (307) or its refusal (503), or a gateway in front of a dead RM (502/504).
_FAILOVER_STATUSES = {307, 502, 503, 504}


@dataclass(frozen=True)
class RMSettings:
    """What identifies a ResourceManager client: the candidate endpoints and how to talk."""

    endpoints: tuple[str, ...]
    security_enabled: bool = False
    verify: bool | str = True
    timeout: float = 10.0


class RMUnavailableError(RuntimeError):
    """No candidate endpoint is an active ResourceManager that answers."""


class RMRequestError(RuntimeError):
    """The active ResourceManager refused a request (``status`` is its HTTP status, or 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def spnego_auth() -> Any:
    """A requests auth object doing SPNEGO (Kerberos), from the ``kerberos`` extra.

    Raises :class:`KernelSpecConfigError` saying what to install when neither
    requests-kerberos nor requests-gssapi is importable.
    """
    try:
        from requests_kerberos import HTTPKerberosAuth  # type: ignore[import-not-found]

        return HTTPKerberosAuth()
    except ImportError:
        pass
    try:
        from requests_gssapi import HTTPSPNEGOAuth  # type: ignore[import-not-found]

        return HTTPSPNEGOAuth()
    except ImportError:
        pass
    raise KernelSpecConfigError(
        "yarn_endpoint_security_enabled (GP_YARN_ENDPOINT_SECURITY_ENABLED) is true, but no "
        "SPNEGO library is installed: pip install 'gp-yarn[kerberos]' (requests-kerberos), or "
        "install requests-gssapi"
    )


def status_of(error: BaseException) -> int:
    """The HTTP status in a yarn-api-client ``APIError`` message, 0 when there is none."""
    match = _STATUS.search(str(error))
    return int(match.group(1)) if match else 0


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}"


class ResourceManagerClient:
    """Calls to the active ResourceManager of one configuration, with failover."""

    _shared: ClassVar[dict[RMSettings, ResourceManagerClient]] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self, settings: RMSettings, *, resolve_rounds: int = 2, resolve_pause: float = 0.3
    ) -> None:
        if not settings.endpoints:
            raise KernelSpecConfigError("No YARN ResourceManager endpoint is configured")
        self.settings = settings
        self.resolve_rounds = resolve_rounds
        self.resolve_pause = resolve_pause
        self._auth = spnego_auth() if settings.security_enabled else None
        self._lock = threading.Lock()
        self._rm: Any = None
        self.active_endpoint = ""
        self.failovers = 0

    @classmethod
    def shared(cls, settings: RMSettings) -> ResourceManagerClient:
        """The process's client for ``settings``, created on first use."""
        with cls._shared_lock:
            client = cls._shared.get(settings)
            if client is None:
                client = cls._shared[settings] = cls(settings)
            return client

    # -- the calls the provisioner makes ----------------------------------------------------

    def applications(
        self, *, application_types: tuple[str, ...], started_time_begin: int | None
    ) -> list[dict[str, Any]]:
        """One ``GET /ws/v1/cluster/apps`` with the given filters; the app records."""
        data = self.call(
            lambda rm: rm.cluster_applications(
                application_types=list(application_types) or None,
                started_time_begin=None if started_time_begin is None else str(started_time_begin),
                de_selects=["resourceRequests"],
            ),
            name="GET apps",
        )
        apps = data.get("apps") or {}  # the RM answers {"apps": null} when none match
        found = apps.get("app") or [] if isinstance(apps, dict) else []
        return [app for app in found if isinstance(app, dict)]

    def application(self, app_id: str) -> dict[str, Any] | None:
        """``GET /ws/v1/cluster/apps/{id}``; None when the RM does not know the id (404)."""
        try:
            data = self.call(lambda rm: rm.cluster_application(app_id), name="GET app")
        except RMRequestError as err:
            if err.status == 404:
                return None
            raise
        app = data.get("app")
        return app if isinstance(app, dict) else None

    def kill(self, app_id: str) -> str:
        """``PUT /ws/v1/cluster/apps/{id}/state {"state": "KILLED"}``; the state it reports
        (the RM answers 202 with the current state while the kill is in progress)."""
        data = self.call(lambda rm: rm.cluster_application_kill(app_id), name="PUT app/state")
        return str(data.get("state", ""))

    # -- machinery ---------------------------------------------------------------------------

    def call(self, operation: Callable[[Any], Any], name: str = "request") -> dict[str, Any]:
        """Run ``operation(resource_manager)`` on the active RM; find the active RM again and
        retry once when the one in use went away.  Returns the answer's JSON data.  Each try
        counts in ``gp_backend_api_requests_total`` as ``name`` (a fixed string of the caller).

        Raises :class:`RMUnavailableError` when no active RM answers, :class:`RMRequestError`
        when the active one refuses the request.
        """
        rm = self._current()
        try:
            return self._data(_counted(operation, rm, name))
        except Exception as err:
            if not self._means_failover(err):
                raise self._refused(err) from err
            log.warning(
                "YARN ResourceManager %s did not answer as the active one (%s); looking for it",
                self.active_endpoint,
                describe(err),
            )
        rm = self._reresolve(rm)
        try:
            return self._data(_counted(operation, rm, name))
        except Exception as err:
            if self._means_failover(err):
                with self._lock:
                    self._rm = None
                raise RMUnavailableError(
                    f"YARN ResourceManager {self.active_endpoint} stopped answering: "
                    f"{describe(err)}"
                ) from err
            raise self._refused(err) from err

    def forget_active(self) -> None:
        """Drop the active RM so that the next call looks for it again."""
        with self._lock:
            self._rm = None

    @staticmethod
    def _data(response: Any) -> dict[str, Any]:
        data = getattr(response, "data", None)
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _means_failover(err: BaseException) -> bool:
        # requests' connection errors, timeouts and JSON decoding errors are all OSError.
        if isinstance(err, OSError | ValueError):
            return True
        return isinstance(err, APIError) and status_of(err) in _FAILOVER_STATUSES

    def _refused(self, err: Exception) -> Exception:
        if isinstance(err, RMUnavailableError | RMRequestError):
            return err
        return RMRequestError(
            f"YARN ResourceManager {self.active_endpoint} refused the request: {describe(err)}",
            status_of(err),
        )

    def _current(self) -> Any:
        with self._lock:
            if self._rm is None:
                self._rm = self._find_active()
            return self._rm

    def _reresolve(self, stale: Any) -> Any:
        with self._lock:
            if self._rm is stale or self._rm is None:
                self._rm = None
                self._rm = self._find_active()
                self.failovers += 1
            return self._rm

    def _find_active(self) -> Any:
        """Ask each candidate for its haState; the ResourceManager of the ACTIVE one.
        Called with the lock held."""
        reasons: dict[str, str] = {}
        for round_number in range(self.resolve_rounds):
            if round_number:
                time.sleep(self.resolve_pause * round_number)
            for endpoint in self.settings.endpoints:
                try:
                    rm = ResourceManager(
                        service_endpoints=[endpoint],
                        timeout=self.settings.timeout,
                        auth=self._auth,
                        verify=self.settings.verify,
                    )
                    info = self._data(rm.cluster_information()).get("clusterInfo") or {}
                except Exception as err:  # noqa: BLE001 - reported in the error below
                    reasons[endpoint] = describe(err)
                    continue
                ha_state = str(info.get("haState", "") or "ACTIVE").upper()
                if ha_state == "ACTIVE":
                    if endpoint != self.active_endpoint:
                        log.info("Using the active YARN ResourceManager at %s", endpoint)
                    self.active_endpoint = endpoint
                    return rm
                reasons[endpoint] = f"haState {ha_state}"
        detail = "; ".join(f"{endpoint}: {reason}" for endpoint, reason in reasons.items())
        raise RMUnavailableError(f"No active YARN ResourceManager answers ({detail})")


def _counted(operation: Callable[[Any], Any], rm: Any, name: str) -> Any:
    """``operation(rm)``, counted as one YARN API request (ok or error)."""
    try:
        answer = operation(rm)
    except Exception:
        metrics.api_request("yarn", name, ok=False)
        raise
    metrics.api_request("yarn", name, ok=True)
    return answer
