"""The slurmrestd path against a stand-in HTTP server on 127.0.0.1: paths, headers, the body,
token files re-read, Slurm's errors passed on, redirects not followed, the token never shown."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gp_slurm.jobspec import JobRequest, rest_job_body
from gp_slurm.resources import JobResources
from gp_slurm.rest import RestSubmitter
from gp_slurm.submitter import SlurmError

TOKEN = "jwt-token-value"


@dataclass
class FakeRest:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)

    def answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.answers.append((status, payload, headers or {}))


@pytest.fixture
def rest() -> Iterator[FakeRest]:
    fake = FakeRest()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fake.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(body) if body else None,
                }
            )
            status, payload, headers = fake.answers.pop(0) if fake.answers else (200, {}, {})
            raw = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def request() -> JobRequest:
    return JobRequest(
        name="kernel-1",
        script="#!/bin/sh\nexec true\n",
        environment={"KERNEL_ID": "kernel-1", "GP_LAUNCH_SECRET": "s3cret"},
        resources=JobResources(cpus=2),
    )


async def test_submit_sends_the_body_with_user_and_token(rest: FakeRest) -> None:
    rest.answer(200, {"errors": [], "job_id": 23})
    submitter = RestSubmitter(url=rest.url + "/", user="alice", token=TOKEN)
    submission = await submitter.submit(request())
    assert (submission.job_id, submission.warning) == ("23", "")
    [sent] = rest.requests
    assert (sent["method"], sent["path"]) == ("POST", "/slurm/v0.0.38/job/submit")
    assert sent["headers"]["x-slurm-user-name"] == "alice"
    assert sent["headers"]["x-slurm-user-token"] == TOKEN
    assert sent["body"] == rest_job_body(request())


async def test_a_queued_job_with_a_warning_is_submitted(rest: FakeRest) -> None:
    warning = {"error_code": 2015, "error": "Requested partition configuration not available now"}
    rest.answer(200, {"errors": [warning], "job_id": 5})
    submission = await RestSubmitter(url=rest.url, user="a", token=TOKEN).submit(request())
    assert submission == type(submission)(
        "5", "Requested partition configuration not available now"
    )


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (
            500,
            {"errors": [{"error_code": 2000, "error": "Invalid partition name specified"}]},
            "Invalid partition name specified",
        ),
        (401, b"", "authentication failed"),
        (
            400,
            {"errors": [{"description": 'Unknown key "x"', "source": "hsearch_r"}]},
            'Unknown key "x"',
        ),
        (502, b"<html>bad gateway</html>", "bad gateway"),
    ],
)
async def test_refusals_carry_slurms_reason_and_never_the_token(
    rest: FakeRest, status: int, payload: Any, expected: str
) -> None:
    rest.answer(status, payload)
    with pytest.raises(SlurmError) as refused:
        await RestSubmitter(url=rest.url, user="a", token=TOKEN).submit(request())
    assert expected in str(refused.value)
    assert TOKEN not in str(refused.value)


async def test_redirects_are_not_followed(rest: FakeRest) -> None:
    rest.answer(302, {}, {"Location": rest.url + "/elsewhere"})
    with pytest.raises(SlurmError, match="HTTP 302"):
        await RestSubmitter(url=rest.url, user="a", token=TOKEN).submit(request())
    assert len(rest.requests) == 1


def test_token_file_is_read_on_every_request(rest: FakeRest, tmp_path: Path) -> None:
    token_file = tmp_path / "jwt"
    token_file.write_text("SLURM_JWT=first\n")
    submitter = RestSubmitter(url=rest.url, user="a", token="ignored", token_file=str(token_file))
    submitter.fetch(["1"])
    token_file.write_text("second\n")
    submitter.fetch(["1"])
    tokens = [sent["headers"]["x-slurm-user-token"] for sent in rest.requests]
    assert tokens == ["first", "second"]


def test_missing_token_is_named_without_a_request(rest: FakeRest, tmp_path: Path) -> None:
    with pytest.raises(SlurmError, match="no slurmrestd token configured"):
        RestSubmitter(url=rest.url, user="a").fetch(["1"])
    with pytest.raises(SlurmError, match="cannot read the slurmrestd token file"):
        RestSubmitter(url=rest.url, user="a", token_file=str(tmp_path / "none")).fetch(["1"])
    assert rest.requests == []


def test_fetch_is_one_jobs_query(rest: FakeRest) -> None:
    rest.answer(
        200,
        {
            "errors": [],
            "jobs": [
                {"job_id": 1, "job_state": "RUNNING", "batch_host": "n1", "state_reason": "None"},
                {"job_id": 2, "job_state": "PENDING", "state_reason": "Resources"},
                {"job_id": 3, "job_state": "RUNNING"},
            ],
        },
    )
    found = RestSubmitter(url=rest.url, user="a", token=TOKEN).fetch(["1", "2", "4"])
    assert sorted(found) == ["1", "2"]
    assert found["1"].batch_host == "n1"
    assert [(r["method"], r["path"]) for r in rest.requests] == [("GET", "/slurm/v0.0.38/jobs")]


async def test_cancel_and_signal(rest: FakeRest) -> None:
    gone = {"errors": [{"error": "Invalid job id specified", "error_number": 2017}]}
    rest.answer(200, {"errors": []})
    rest.answer(200, {"errors": []})
    rest.answer(500, gone)
    rest.answer(500, {"errors": [{"error": "Access/permission denied"}]})
    submitter = RestSubmitter(url=rest.url, user="a", token=TOKEN, api_version="v0.0.37")
    await submitter.cancel("7")
    await submitter.cancel("7", 2)
    await submitter.cancel("7")  # already gone: fine
    with pytest.raises(SlurmError, match="permission denied"):
        await submitter.cancel("7")
    paths = [(r["method"], r["path"]) for r in rest.requests]
    assert paths[:2] == [
        ("DELETE", "/slurm/v0.0.37/job/7"),
        ("DELETE", "/slurm/v0.0.37/job/7?signal=2"),
    ]


async def test_cancel_by_name_cancels_only_this_users_unfinished_jobs(rest: FakeRest) -> None:
    jobs = [
        {"job_id": 1, "name": "k", "user_name": "a", "job_state": "PENDING"},
        {"job_id": 2, "name": "k", "user_name": "a", "job_state": "COMPLETED"},
        {"job_id": 3, "name": "k", "user_name": "b", "job_state": "RUNNING"},
        {"job_id": 4, "name": "other", "user_name": "a", "job_state": "RUNNING"},
        {"job_id": 5, "name": "k", "user_name": "a", "job_state": "RUNNING"},
    ]
    rest.answer(200, {"errors": [], "jobs": jobs})
    await RestSubmitter(url=rest.url, user="a", token=TOKEN).cancel_by_name("k")
    deleted = [r["path"] for r in rest.requests if r["method"] == "DELETE"]
    assert deleted == ["/slurm/v0.0.38/job/1", "/slurm/v0.0.38/job/5"]


def test_unreachable_and_bad_urls() -> None:
    with pytest.raises(SlurmError, match="unreachable"):
        RestSubmitter(url="http://127.0.0.1:9", user="a", token=TOKEN, timeout=2).fetch(["1"])
    with pytest.raises(ValueError, match="must be http"):
        RestSubmitter(url="file:///etc/passwd", user="a", token=TOKEN)
