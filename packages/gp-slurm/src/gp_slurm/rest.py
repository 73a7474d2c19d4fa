"""Submission through slurmrestd (OpenAPI v0.0.36-38) with JWT authentication.

Plain HTTP(S) with the standard library, run in worker threads (``asyncio.to_thread``) from
async code and directly on the watcher's thread for the batched ``GET .../jobs``.  The token
(``X-SLURM-USER-TOKEN``) is read from ``token_file`` on every request when one is given, so a
rotated token is picked up; it never appears in a message or a log line, and redirects are not
followed (a redirect would carry the token elsewhere).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gp_provisioners_core import metrics

from .api_metrics import BACKEND, rest_operation
from .jobspec import JobRequest, rest_job_body
from .status import WAITING_STATES, JobStatus, parse_rest_jobs
from .submitter import (
    SlurmError,
    SlurmSubmitter,
    SlurmTimeoutError,
    Submission,
    already_finished,
)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def rest_errors(payload: Any) -> str:
    """Slurm's reasons from an answer's ``errors`` list, joined; '' when there are none."""
    if not isinstance(payload, dict):
        return ""
    reasons = []
    for error in payload.get("errors") or []:
        if isinstance(error, dict):
            text = str(error.get("error") or "")
            detail = str(error.get("description") or "")
            reasons.append(f"{text}: {detail}" if detail and detail != text else text or detail)
        else:
            reasons.append(str(error))
    return "; ".join(r for r in reasons if r)


@dataclass
class RestSubmitter(SlurmSubmitter):
    """Jobs through slurmrestd at ``url`` as ``user`` with a JWT."""

    url: str
    user: str
    token: str = field(default="", repr=False)
    token_file: str = ""
    api_version: str = "v0.0.38"
    timeout: float = 30.0
    kind: str = "rest"

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"slurmrestd URL {self.url!r} must be http(s)://host:port")
        self.url = self.url.rstrip("/")

    @property
    def watcher_name(self) -> str:
        return f"slurm-rest:{self.url}:{self.api_version}:{self.user}"

    def describe(self) -> str:
        return f"slurmrestd {self.url} ({self.api_version}) as {self.user}"

    def _token(self) -> str:
        if self.token_file:
            try:
                text = Path(self.token_file).read_text().strip()
            except OSError as err:
                raise SlurmError(f"cannot read the slurmrestd token file: {err}") from None
            return text.split("=", 1)[1] if text.startswith("SLURM_JWT=") else text
        if not self.token:
            raise SlurmError("no slurmrestd token configured (GP_SLURM_JWT or rest_token_file)")
        return self.token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Blocking: one request; returns the HTTP status and the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __post_init__
            f"{self.url}/slurm/{self.api_version}{path}", data=data, method=method
        )
        request.add_header("X-SLURM-USER-NAME", self.user)
        request.add_header("X-SLURM-USER-TOKEN", self._token())
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        operation = rest_operation(method, path)
        try:
            with _OPENER.open(request, timeout=self.timeout) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except (TimeoutError, urllib.error.URLError) as err:
            metrics.api_request(BACKEND, operation, ok=False)
            if isinstance(err, TimeoutError) or isinstance(err.reason, TimeoutError):
                raise SlurmTimeoutError(
                    f"slurmrestd at {self.url} gave no answer within {self.timeout:g}s"
                ) from None
            raise SlurmError(f"slurmrestd at {self.url} unreachable: {err}") from None
        except (OSError, ValueError) as err:
            metrics.api_request(BACKEND, operation, ok=False)
            raise SlurmError(f"slurmrestd at {self.url} unreachable: {err}") from None
        metrics.api_request(BACKEND, operation, ok=200 <= status <= 299)
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            payload = {"errors": [{"error": raw.decode(errors="replace")[:300]}]}
        return status, payload

    @staticmethod
    def _failure(status: int, payload: Any) -> str:
        """Slurm's reasons in an answer, or what the HTTP status says; '' for a clean 2xx."""
        reasons = rest_errors(payload)
        if status == 401:
            return reasons or "authentication failed (check the token and rest_user)"
        if status >= 300 and not reasons:
            return f"slurmrestd answered HTTP {status}"
        return reasons

    def _checked(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.call(method, path, body)
        failure = self._failure(status, payload)
        if failure:
            raise SlurmError(failure)
        return payload

    async def submit(self, request: JobRequest) -> Submission:
        body = rest_job_body(request, self.api_version)
        status, payload = await asyncio.to_thread(self.call, "POST", "/job/submit", body)
        failure = self._failure(status, payload)
        job_id = str(payload.get("job_id", "")) if isinstance(payload, dict) else ""
        if job_id.isascii() and job_id.isdigit():
            return Submission(job_id, failure)  # queued, perhaps with a warning
        raise SlurmError(failure or f"slurmrestd answered HTTP {status} without a job id")

    async def cancel(self, job_id: str, signum: int | None = None) -> None:
        query = f"?signal={signum}" if signum is not None else ""
        try:
            await asyncio.to_thread(self._checked, "DELETE", f"/job/{job_id}{query}")
        except SlurmError as err:
            if not already_finished(str(err)):
                raise

    async def cancel_by_name(self, name: str) -> None:
        payload = await asyncio.to_thread(self._checked, "GET", "/jobs")
        for job in payload.get("jobs") or []:
            state = str(job.get("job_state") or "")
            mine = job.get("name") == name and job.get("user_name") == self.user
            if mine and (state in WAITING_STATES or state == "RUNNING"):
                await self.cancel(str(job.get("job_id")))

    async def rename(self, job_id: str, name: str) -> None:
        await asyncio.to_thread(self._checked, "POST", f"/job/{job_id}", {"name": name})

    def fetch(self, job_ids: Collection[str]) -> dict[str, JobStatus]:
        return parse_rest_jobs(self._checked("GET", "/jobs"), job_ids)
