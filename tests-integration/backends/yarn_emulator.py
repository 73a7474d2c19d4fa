"""An emulator of the Hadoop YARN ResourceManager REST API v1, for gp-yarn's tests.

**This is not YARN.**  No ResourceManager can be run where this project is tested (no Hadoop
in Debian, PyPI or npm; Maven Central is unreachable), so gp-yarn is tested against this
emulator.  It speaks the RM REST API v1 as the Hadoop documentation specifies it, so that the
real yarn-api-client and the provisioner's REST and state-machine code are exercised:

- ``GET /ws/v1/cluster`` and ``/ws/v1/cluster/info``: ``clusterInfo`` with ``haState``
  (ACTIVE or STANDBY); ``GET /cluster`` (the web UI page yarn-api-client probes).
- ``POST /ws/v1/cluster/apps/new-application``; ``POST /ws/v1/cluster/apps`` (submit: 202
  with a Location; the application master's ``commands.command`` runs as a LOCAL process group
  through ``bash -c``, with the NodeManager-style environment plus the submitted
  ``environment`` entries, ``<LOG_DIR>`` and ``{{VAR}}`` expanded).
- ``GET /ws/v1/cluster/apps`` with ``states``, ``finalStatus``, ``user``, ``queue``,
  ``limit``, ``startedTimeBegin/End``, ``finishedTimeBegin/End``, ``applicationTypes``,
  ``applicationTags``, ``name`` and ``deSelects``; ``{"apps": null}`` when nothing matches.
- ``GET /ws/v1/cluster/apps/{id}``, ``GET`` and ``PUT /ws/v1/cluster/apps/{id}/state``
  (``{"state": "KILLED"}``: 202 with the current state while the kill runs, 200 once final).
- Errors as Hadoop's Jersey layer sends them: ``{"RemoteException": {...}}`` with 400, 404,
  405, 415.
- HA: two servers share one cluster state.  The standby answers ``/ws/v1/cluster/info``,
  ``/ws/v1/cluster/metrics`` and ``/cluster/cluster`` itself and redirects everything else to
  the active RM with 307 ("This is standby RM. The redirect url is: ..."), or, with no active
  RM, answers 307 with a ``Refresh`` header and no ``Location`` (RMWebAppFilter's behaviour).
  :meth:`ResourceManagerPair.fail_over` stops the active server (connections are refused) and
  promotes the standby; applications and their processes carry on (work-preserving recovery).

Application life: NEW -> NEW_SAVING -> SUBMITTED -> ACCEPTED -> RUNNING (when the master's
process starts; a real RM waits for the master to register) -> FINISHED (exit 0, SUCCEEDED) or
FAILED (non-zero exit once ``max-app-attempts`` are used, with YARN-style diagnostics and the
tail of the master's stderr) or KILLED (SIGTERM to the group, SIGKILL 250 ms later, like a
NodeManager).  An unknown queue fails the application at submission, as YARN does.  Tests can
make the next application fail (:meth:`YarnCluster.fail_next`) or wait in ACCEPTED with a
scheduler reason (:meth:`YarnCluster.hold_next_in_accepted`), and count the requests each
server received (:class:`RequestLog`).

Not modelled: the scheduler and resources, security (SPNEGO, ACLs), log aggregation,
node managers other than this host, and Spark's own application master (a real one fails an
application whose driver never creates a SparkContext).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

LIVE_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING")
FINAL_STATES = ("FINISHED", "FAILED", "KILLED")
ALL_STATES = LIVE_STATES + FINAL_STATES
FINAL_STATUSES = ("UNDEFINED", "SUCCEEDED", "FAILED", "KILLED")
KILL_GRACE = 0.25  # yarn.nodemanager.sleep-delay-before-sigkill.ms
# Variables a NodeManager passes from its own environment into containers (our whitelist).
CONTAINER_ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "TMPDIR")
APP_ID = re.compile(r"^application_(\d+)_(\d+)$")
STANDBY_UNREDIRECTED = ("/ws/v1/cluster/info", "/ws/v1/cluster/metrics", "/cluster/cluster")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class YarnApplication:
    """One application in the emulated RM's memory."""

    id: str
    name: str
    user: str
    queue: str
    application_type: str
    tags: list[str]
    command: str
    environment: dict[str, str]
    max_attempts: int
    started_time: int = field(default_factory=_now_ms)
    state: str = "NEW"
    final_status: str = "UNDEFINED"
    diagnostics: str = ""
    launch_time: int = 0
    finished_time: int = 0
    am_host_http_address: str = ""
    attempts: int = 0
    pgid: int = 0
    kill_requested: bool = False
    log_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    released: threading.Event = field(default_factory=threading.Event)

    def as_json(self, cluster: YarnCluster) -> dict[str, Any]:
        finished = self.finished_time or 0
        end = finished or _now_ms()
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "queue": self.queue,
            "state": self.state,
            "finalStatus": self.final_status,
            "progress": 100.0 if self.state in FINAL_STATES else 0.0,
            "trackingUI": "History" if self.state in FINAL_STATES else "ApplicationMaster",
            "trackingUrl": f"{cluster.proxy_base}/proxy/{self.id}/",
            "diagnostics": self.diagnostics,
            "clusterId": cluster.cluster_timestamp,
            "applicationType": self.application_type,
            "applicationTags": ",".join(self.tags),
            "priority": 0,
            "startedTime": self.started_time,
            "launchTime": self.launch_time,
            "finishedTime": finished,
            "elapsedTime": end - self.started_time,
            "amContainerLogs": f"http://{self.am_host_http_address}/node/containerlogs/"
            if self.am_host_http_address
            else "",
            "amHostHttpAddress": self.am_host_http_address,
            "amRPCAddress": f"{cluster.node_host}:0" if self.state == "RUNNING" else "N/A",
            "allocatedMB": 1024 if self.state == "RUNNING" else -1,
            "allocatedVCores": 1 if self.state == "RUNNING" else -1,
            "runningContainers": 1 if self.state == "RUNNING" else -1,
            "memorySeconds": 0,
            "vcoreSeconds": 0,
            "queueUsagePercentage": 0.0,
            "clusterUsagePercentage": 0.0,
            "numNonAMContainerPreempted": 0,
            "numAMContainerPreempted": 0,
            "logAggregationStatus": "DISABLED",
            "unmanagedApplication": False,
            "amNodeLabelExpression": "",
            "resourceRequests": [],
        }


class RequestLog:
    """Every request the servers received: ``(server, method, path)`` in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[float, str, str, str]] = []

    def add(self, server: str, method: str, path: str) -> None:
        with self._lock:
            self._entries.append((time.monotonic(), server, method, path))

    def count(
        self, *, method: str = "", path: str = "", server: str = "", since: float = 0.0
    ) -> int:
        with self._lock:
            return sum(
                1
                for at, srv, meth, p in self._entries
                if at >= since
                and (not method or meth == method)
                and (not path or p == path)
                and (not server or srv == server)
            )

    def by_path(self, since: float = 0.0) -> Counter[str]:
        with self._lock:
            return Counter(f"{m} {p}" for at, _, m, p in self._entries if at >= since)


class YarnCluster:
    """The shared state of one (possibly HA) ResourceManager: applications and their masters."""

    def __init__(
        self,
        work_dir: Path,
        *,
        queues: tuple[str, ...] = ("default",),
        node_host: str = "127.0.0.1",
        node_http_port: int = 8042,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.queues = set(queues)
        self.node_host = node_host
        self.node_http_port = node_http_port
        self.cluster_timestamp = _now_ms()
        self.proxy_base = "http://127.0.0.1:8088"
        self.requests = RequestLog()
        self._lock = threading.RLock()
        self._apps: dict[str, YarnApplication] = {}
        self._issued: set[str] = set()
        self._sequence = 0
        self._fail_next: list[str] = []
        self._hold_next: list[str] = []
        self.submitted_env_keys: dict[str, list[str]] = {}

    # -- test controls ----------------------------------------------------------------------

    def fail_next(self, diagnostics: str = "Application failed by the test (fail_next)") -> None:
        """The next submitted application goes to FAILED without starting its master."""
        with self._lock:
            self._fail_next.append(diagnostics)

    def hold_next_in_accepted(
        self,
        diagnostics: str = "[Emulator] Application is added to the scheduler and is not yet "
        "activated. Queue's AM resource limit exceeded.",
    ) -> None:
        """The next submitted application waits in ACCEPTED with ``diagnostics`` until it is
        killed or :meth:`release`d."""
        with self._lock:
            self._hold_next.append(diagnostics)

    def release(self, app_id: str) -> None:
        self.app(app_id).released.set()

    def app(self, app_id: str) -> YarnApplication:
        with self._lock:
            return self._apps[app_id]

    def apps(self) -> list[YarnApplication]:
        with self._lock:
            return list(self._apps.values())

    def apps_named(self, name: str) -> list[YarnApplication]:
        return [app for app in self.apps() if app.name == name]

    def live_process_groups(self) -> dict[str, list[int]]:
        """Application id -> pids (not zombies) still in its master's process group."""
        found: dict[str, list[int]] = {}
        for app in self.apps():
            pids = group_members(app.pgid) if app.pgid else []
            if pids:
                found[app.id] = pids
        return found

    def kill_process_group(self, app_id: str, signum: int = signal.SIGKILL) -> None:
        """Kill an application's master the way a crash would (not through the RM)."""
        app = self.app(app_id)
        if app.pgid:
            try:
                os.killpg(app.pgid, signum)
            except ProcessLookupError:
                pass

    def wait_for_state(self, app_id: str, states: tuple[str, ...], timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.app(app_id).state
            if state in states:
                return state
            time.sleep(0.02)
        return self.app(app_id).state

    def shutdown(self) -> list[str]:
        """Kill every master still running; return what had to be killed."""
        leftovers = []
        for app_id, pids in self.live_process_groups().items():
            leftovers.append(f"{app_id}: pids {pids}")
            self.kill_process_group(app_id)
        return leftovers

    # -- the REST operations ----------------------------------------------------------------

    def new_application(self) -> str:
        with self._lock:
            self._sequence += 1
            app_id = f"application_{self.cluster_timestamp}_{self._sequence:04d}"
            self._issued.add(app_id)
            return app_id

    def submit(self, body: dict[str, Any], user: str) -> tuple[int, str]:
        """Returns (status, message); 202 when accepted."""
        app_id = str(body.get("application-id", ""))
        spec = body.get("am-container-spec") or {}
        command = str(((spec.get("commands") or {}).get("command")) or "")
        with self._lock:
            if app_id not in self._issued:
                return 400, f"Application id {app_id!r} was not obtained from new-application"
            if app_id in self._apps:
                return (
                    400,
                    f"Application with id {app_id} is already present! Cannot add a duplicate!",
                )
            if not command:
                return 400, "am-container-spec.commands.command is required"
            entries = (spec.get("environment") or {}).get("entry") or []
            environment = {str(e["key"]): str(e.get("value", "")) for e in entries}
            tags_field = (body.get("application-tags") or {}).get("tag") or []
            tags = [tags_field] if isinstance(tags_field, str) else list(tags_field)
            app = YarnApplication(
                id=app_id,
                name=str(body.get("application-name", "") or "N/A"),
                user=user,
                queue=str(body.get("queue", "") or "default"),
                application_type=str(body.get("application-type", "") or "YARN"),
                tags=sorted({str(t).strip().lower() for t in tags if str(t).strip()}),
                command=command,
                environment=environment,
                max_attempts=int(body.get("max-app-attempts", 2) or 2),
            )
            self._apps[app_id] = app
            self.submitted_env_keys[app_id] = sorted(environment)
            fail = self._fail_next.pop(0) if self._fail_next else None
            hold = self._hold_next.pop(0) if self._hold_next else None
        threading.Thread(
            target=self._run, args=(app, fail, hold), name=f"yarn-emu-{app_id}", daemon=True
        ).start()
        return 202, ""

    def kill(self, app_id: str) -> tuple[int, str]:
        """Returns (status, state): 200 with a final state, 202 while the kill runs."""
        app = self.app(app_id)
        with self._lock:
            if app.state in FINAL_STATES:
                return 200, app.state
            app.kill_requested = True
            app.released.set()
            state = app.state
        threading.Thread(target=self._terminate, args=(app,), daemon=True).start()
        return 202, state

    # -- application life -------------------------------------------------------------------

    def _set(self, app: YarnApplication, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(app, name, value)

    def _finish(self, app: YarnApplication, state: str, final: str, diagnostics: str) -> None:
        with self._lock:
            if app.state in FINAL_STATES:
                return
            app.state, app.final_status, app.finished_time = state, final, _now_ms()
            app.diagnostics = diagnostics

    def _run(self, app: YarnApplication, fail: str | None, hold: str | None) -> None:
        for state in ("NEW_SAVING", "SUBMITTED"):
            self._set(app, state=state)
        if app.queue not in self.queues:
            self._finish(
                app,
                "FAILED",
                "FAILED",
                f"Application {app.id} submitted by user {app.user} to unknown queue: {app.queue}",
            )
            return
        self._set(app, state="ACCEPTED", diagnostics="")
        if fail is not None:
            self._finish(app, "FAILED", "FAILED", fail)
            return
        if hold is not None:
            self._set(app, diagnostics=hold)
            app.released.wait()
        while not app.kill_requested:
            code = self._run_attempt(app)
            if app.kill_requested:
                break
            if code == 0:
                self._finish(app, "FINISHED", "SUCCEEDED", "")
                return
            reason = self._attempt_diagnostics(app, code)
            if app.attempts >= app.max_attempts:
                self._finish(
                    app,
                    "FAILED",
                    "FAILED",
                    f"Application {app.id} failed {app.attempts} times (global limit ="
                    f"{app.max_attempts}; local limit is ={app.max_attempts}) due to {reason}",
                )
                return
            self._set(app, state="ACCEPTED", am_host_http_address="", diagnostics=reason)
        self._finish(app, "KILLED", "KILLED", "Application killed by user.")

    def _run_attempt(self, app: YarnApplication) -> int:
        with self._lock:
            if app.kill_requested:
                return -signal.SIGKILL
            app.attempts += 1
            attempt = app.attempts
            container = f"container_{app.id.split('_', 1)[1]}_{attempt:02d}_000001"
            log_dir = self.work_dir / "logs" / app.id / container
            work = self.work_dir / "local" / app.id / container
            log_dir.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            env = {k: os.environ[k] for k in CONTAINER_ENV_PASSTHROUGH if k in os.environ}
            env.update(
                CONTAINER_ID=container,
                APPLICATION_WEB_PROXY_BASE=f"/proxy/{app.id}",
                APP_SUBMIT_TIME_ENV=str(app.started_time),
                NM_HOST=self.node_host,
                NM_HTTP_PORT=str(self.node_http_port),
                USER=app.user,
                LOGNAME=app.user,
                HOME=str(work),
                PWD=str(work),
                LOG_DIRS=str(log_dir),
                LOCAL_DIRS=str(work),
            )
            env.update(app.environment)
            command = re.sub(r"\{\{(\w+)\}\}", lambda m: env.get(m.group(1), ""), app.command)
            command = command.replace("<LOG_DIR>", shlex.quote(str(log_dir)))
            stdout = open(log_dir / "launch.out", "wb")
            process = subprocess.Popen(
                ["bash", "-c", command],
                env=env,
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            stdout.close()
            app.process, app.pgid, app.log_dir = process, process.pid, log_dir
            app.state, app.launch_time, app.diagnostics = "RUNNING", _now_ms(), ""
            app.am_host_http_address = f"{self.node_host}:{self.node_http_port}"
        code = process.wait()
        return code

    @staticmethod
    def _attempt_diagnostics(app: YarnApplication, code: int) -> str:
        exit_code = 128 - code if code < 0 else code
        attempt = f"appattempt_{app.id.split('_', 1)[1]}_{app.attempts:06d}"
        tail = ""
        if app.log_dir is not None:
            for name in ("stderr", "launch.out"):
                path = app.log_dir / name
                if path.is_file() and path.stat().st_size:
                    tail = path.read_bytes()[-4096:].decode(errors="replace")
                    break
        return (
            f"AM Container for {attempt} exited with  exitCode: {exit_code}\n"
            "Failing this attempt.Diagnostics: [emulator] Exception from container-launch.\n"
            f"Last 4096 bytes of stderr :\n{tail}"
        )

    def _terminate(self, app: YarnApplication) -> None:
        process = app.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(app.pgid, signal.SIGTERM)
                time.sleep(KILL_GRACE)
                os.killpg(app.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        elif app.pgid:
            try:
                os.killpg(app.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if process is None:
            self._finish(app, "KILLED", "KILLED", "Application killed by user.")


def group_members(pgid: int) -> list[int]:
    """Pids (not zombies) whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


# -- the REST servers ---------------------------------------------------------------------------

_DESELECTABLE = ("resourceRequests", "timeouts", "appNodeLabelExpression", "amNodeLabelExpression")
_JAVA_CLASSES = {
    "BadRequestException": "org.apache.hadoop.yarn.webapp.BadRequestException",
    "NotFoundException": "org.apache.hadoop.yarn.webapp.NotFoundException",
    "WebApplicationException": "javax.ws.rs.WebApplicationException",
}


class _BadRequest(Exception):
    pass


class ResourceManagerServer:
    """One ResourceManager's web server (REST v1) over a shared :class:`YarnCluster`."""

    def __init__(
        self,
        cluster: YarnCluster,
        name: str = "rm1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ha_state: str = "ACTIVE",
        pair: ResourceManagerPair | None = None,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.host = host
        self.port = port
        self.ha_state = ha_state
        self.pair = pair
        self.started_on = _now_ms()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ResourceManagerServer:
        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        server.rm = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """The RM goes away: its port refuses connections from now on."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def active_url(self) -> str:
        if self.pair is not None:
            return self.pair.active_url()
        return self.url if self.ha_state == "ACTIVE" and self.running else ""


class ResourceManagerPair:
    """An HA pair over one cluster: ``rm1`` starts as STANDBY and ``rm2`` as ACTIVE, so that
    clients trying rm1 first meet a standby's redirect."""

    def __init__(self, cluster: YarnCluster, host: str = "127.0.0.1") -> None:
        self.cluster = cluster
        self.rm1 = ResourceManagerServer(cluster, "rm1", host=host, ha_state="STANDBY", pair=self)
        self.rm2 = ResourceManagerServer(cluster, "rm2", host=host, ha_state="ACTIVE", pair=self)
        self.failovers = 0

    @property
    def servers(self) -> tuple[ResourceManagerServer, ResourceManagerServer]:
        return self.rm1, self.rm2

    def start(self) -> ResourceManagerPair:
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    @property
    def active(self) -> ResourceManagerServer | None:
        return next((s for s in self.servers if s.running and s.ha_state == "ACTIVE"), None)

    def active_url(self) -> str:
        active = self.active
        return active.url if active is not None else ""

    def fail_over(self) -> ResourceManagerServer:
        """The active RM goes away (connections refused); the standby becomes active."""
        old = self.active
        assert old is not None, "no active RM to fail over from"
        new = self.rm2 if old is self.rm1 else self.rm1
        assert new.running, "the standby is down too"
        old.stop()
        old.ha_state = "STANDBY"
        new.ha_state = "ACTIVE"
        self.failovers += 1
        return new

    def restore_standby(self) -> None:
        """Bring a stopped RM back, as the standby."""
        for server in self.servers:
            if not server.running:
                server.ha_state = "STANDBY"
                server.start()


class _Handler(BaseHTTPRequestHandler):
    server_version = "Jetty(emulated-yarn-rm)"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def rm(self) -> ResourceManagerServer:
        return self.server.rm  # type: ignore[attr-defined,no-any-return]

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, "application/json;charset=utf-8", headers or {})

    def _text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, text.encode(), "text/plain;charset=utf-8", headers or {})

    def _error(self, status: int, exception: str, message: str) -> None:
        java_class = _JAVA_CLASSES.get(exception, "javax.ws.rs.WebApplicationException")
        remote = {"exception": exception, "message": message, "javaClassName": java_class}
        self._json(status, {"RemoteException": remote})

    def _dispatch(self, method: str) -> None:
        rm = self.rm
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        body = self._body()
        rm.cluster.requests.add(rm.name, method, path)
        if rm.ha_state != "ACTIVE" and not self._served_by_standby(path):
            self._standby_redirect()
            return
        try:
            self._route(method, path, parse_qs(parts.query), body)
        except _BadRequest as err:
            self._error(400, "BadRequestException", f"java.lang.Exception: {err}")

    @staticmethod
    def _served_by_standby(path: str) -> bool:
        return path in STANDBY_UNREDIRECTED or path.startswith(
            ("/conf", "/stacks", "/logLevel", "/logs", "/jmx", "/proxy")
        )

    def _standby_redirect(self) -> None:
        target = self.rm.active_url()
        if target:
            location = f"{target}{self.path}"
            self._text(
                307,
                f"This is standby RM. The redirect url is: {location}\n",
                {"Location": location},
            )
            return
        refresh = f"1;url={self.rm.url}{self.path}"
        self._text(
            307,
            "Can not find any active RM. Will retry in next 1 seconds.\n"
            "HA Zookeeper Connection State: CONNECTED\n",
            {"Refresh": refresh},
        )

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        cluster = self.rm.cluster
        if path in ("/cluster", "/cluster/cluster"):
            html = f"<html><body>ResourceManager {self.rm.name} ({self.rm.ha_state})</body></html>"
            self._send(200, html.encode(), "text/html;charset=utf-8", {})
            return
        if path in ("/ws/v1/cluster", "/ws/v1/cluster/info"):
            if self._only(method, "GET"):
                self._json(200, {"clusterInfo": self._cluster_info()})
            return
        if path == "/ws/v1/cluster/metrics":
            apps = cluster.apps()
            metrics = {
                "appsSubmitted": len(apps),
                "appsRunning": sum(a.state == "RUNNING" for a in apps),
                "appsPending": sum(a.state == "ACCEPTED" for a in apps),
                "appsCompleted": sum(a.state == "FINISHED" for a in apps),
                "appsFailed": sum(a.state == "FAILED" for a in apps),
                "appsKilled": sum(a.state == "KILLED" for a in apps),
            }
            if self._only(method, "GET"):
                self._json(200, {"clusterMetrics": metrics})
            return
        if path == "/ws/v1/cluster/apps/new-application":
            if self._only(method, "POST"):
                capability = {"memory": 8192, "vCores": 4}
                answer = {
                    "application-id": cluster.new_application(),
                    "maximum-resource-capability": capability,
                }
                self._json(200, answer)
            return
        if path == "/ws/v1/cluster/apps":
            if method == "GET":
                self._list_apps(query)
            elif method == "POST":
                self._submit(query, body)
            else:
                self._only(method, "GET")
            return
        match = re.fullmatch(r"/ws/v1/cluster/apps/([^/]+)(/state)?", path)
        if match:
            app = self._find_app(match.group(1))
            if app is None:
                return
            if match.group(2) is None:
                if self._only(method, "GET"):
                    self._json(200, {"app": app.as_json(cluster)})
            elif method == "GET":
                self._json(200, {"state": app.state})
            elif method == "PUT":
                self._put_state(app, body)
            else:
                self._only(method, "GET")
            return
        self._error(404, "NotFoundException", f"java.lang.Exception: no resource at {path}")

    def _only(self, method: str, allowed: str) -> bool:
        if method == allowed:
            return True
        self._error(405, "WebApplicationException", f"HTTP {method} is not allowed here")
        return False

    def _cluster_info(self) -> dict[str, Any]:
        rm = self.rm
        return {
            "id": rm.cluster.cluster_timestamp,
            "startedOn": rm.started_on,
            "state": "STARTED",
            "haState": rm.ha_state,
            "rmStateStoreName": "org.apache.hadoop.yarn.server.resourcemanager.recovery."
            "MemoryRMStateStore",
            "resourceManagerVersion": "3.3.6-emulated",
            "resourceManagerBuildVersion": "3.3.6-emulated (gp-yarn test emulator)",
            "hadoopVersion": "3.3.6-emulated",
            "haZooKeeperConnectionState": "CONNECTED",
        }

    def _find_app(self, app_id: str) -> YarnApplication | None:
        if not APP_ID.match(app_id):
            self._error(
                400, "BadRequestException", f"java.lang.Exception: Invalid ApplicationId: {app_id}"
            )
            return None
        try:
            return self.rm.cluster.app(app_id)
        except KeyError:
            self._error(
                404, "NotFoundException", f"java.lang.Exception: app with id: {app_id} not found"
            )
            return None

    def _submit(self, query: dict[str, list[str]], body: bytes) -> None:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/json":
            self._error(415, "WebApplicationException", f"Unsupported media type {content_type!r}")
            return
        try:
            data = json.loads(body or b"{}")
        except ValueError as err:
            raise _BadRequest(f"the submission is not JSON: {err}") from None
        if not isinstance(data, dict):
            raise _BadRequest("the submission is not a JSON object")
        user = (query.get("user.name") or ["dr.who"])[-1]
        status, message = self.rm.cluster.submit(data, user)
        if status != 202:
            raise _BadRequest(message)
        location = f"{self.rm.url}/ws/v1/cluster/apps/{data['application-id']}"
        self._send(202, b"", "application/json;charset=utf-8", {"Location": location})

    def _put_state(self, app: YarnApplication, body: bytes) -> None:
        try:
            target = str(json.loads(body or b"{}").get("state", ""))
        except (ValueError, AttributeError):
            raise _BadRequest('the body must be JSON like {"state": "KILLED"}') from None
        if target == app.state:
            self._json(200, {"state": app.state})
            return
        if target != "KILLED":
            raise _BadRequest("Only 'KILLED' is allowed as a target state.")
        status, state = self.rm.cluster.kill(app.id)
        headers = (
            {}
            if status == 200
            else {"Location": f"{self.rm.url}/ws/v1/cluster/apps/{app.id}/state"}
        )
        self._json(status, {"state": state}, headers)

    def _list_apps(self, query: dict[str, list[str]]) -> None:
        def values(name: str) -> list[str]:
            return [v.strip() for raw in query.get(name, []) for v in raw.split(",") if v.strip()]

        def number(name: str) -> int | None:
            raw = query.get(name)
            if not raw:
                return None
            try:
                value = int(raw[-1])
            except ValueError:
                raise _BadRequest(f"{name} must be a number of ms, not {raw[-1]!r}") from None
            if value < 0:
                raise _BadRequest(f"{name} must be greater than 0")
            return value

        states = {s.upper() for s in values("states") + values("state")}
        bad = sorted(states - set(ALL_STATES))
        if bad:
            raise _BadRequest(
                f"Invalid application-state {bad[0]} specified. It should be one of "
                + ", ".join(ALL_STATES)
            )
        final = [v.upper() for v in values("finalStatus")]
        if final and final[-1] not in FINAL_STATUSES:
            raise _BadRequest(f"Invalid final status {final[-1]}")
        limit = number("limit")
        if limit is not None and limit <= 0:
            raise _BadRequest("limit value must be greater then 0")
        bounds = {
            n: number(n)
            for n in ("startedTimeBegin", "startedTimeEnd", "finishedTimeBegin", "finishedTimeEnd")
        }
        types = {t.lower() for t in values("applicationTypes")}
        tags = {t.lower() for t in values("applicationTags")}
        user, queue = (query.get("user") or [""])[-1], (query.get("queue") or [""])[-1]
        name = (query.get("name") or [""])[-1]
        deselect = set(values("deSelects"))
        found = []
        for app in sorted(self.rm.cluster.apps(), key=lambda a: a.id):
            if states and app.state not in states:
                continue
            if final and app.final_status != final[-1]:
                continue
            if types and app.application_type.lower() not in types:
                continue
            if tags and not tags & set(app.tags):
                continue
            if (user and app.user != user) or (queue and app.queue != queue):
                continue
            if name and app.name != name:
                continue
            if not _within(app.started_time, bounds["startedTimeBegin"], bounds["startedTimeEnd"]):
                continue
            if (bounds["finishedTimeBegin"] or bounds["finishedTimeEnd"]) and not _within(
                app.finished_time, bounds["finishedTimeBegin"], bounds["finishedTimeEnd"]
            ):
                continue
            record = app.as_json(self.rm.cluster)
            for key in deselect & set(_DESELECTABLE):
                record.pop(key, None)
            found.append(record)
            if limit is not None and len(found) >= limit:
                break
        self._json(200, {"apps": {"app": found} if found else None})


def _within(value: int, begin: int | None, end: int | None) -> bool:
    return (begin is None or value >= begin) and (end is None or value <= end)


# -- configuration for clients -------------------------------------------------------------------


def write_yarn_site(
    conf_dir: Path, servers: list[ResourceManagerServer] | tuple[ResourceManagerServer, ...]
) -> Path:
    """A yarn-site.xml naming ``servers``: one RM, or an HA pair with rm-ids rm1, rm2, ..."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    props: dict[str, str] = {}
    if len(servers) == 1:
        props["yarn.resourcemanager.hostname"] = servers[0].host
        props["yarn.resourcemanager.webapp.address"] = servers[0].address
    else:
        props["yarn.resourcemanager.ha.enabled"] = "true"
        props["yarn.resourcemanager.ha.rm-ids"] = ",".join(s.name for s in servers)
        for server in servers:
            props[f"yarn.resourcemanager.hostname.{server.name}"] = server.host
            # The ${...} form Hadoop configurations often use, to check that it is expanded.
            props[f"yarn.resourcemanager.webapp.address.{server.name}"] = (
                f"${{yarn.resourcemanager.hostname.{server.name}}}:{server.port}"
            )
    lines = ['<?xml version="1.0"?>', "<configuration>"]
    for key, value in props.items():
        lines.append(f"  <property><name>{key}</name><value>{value}</value></property>")
    lines.append("</configuration>")
    path = conf_dir / "yarn-site.xml"
    path.write_text("\n".join(lines) + "\n")
    return path
