"""Our stand-in for the kubelet: the node of the gp-k8s test cluster.  NOT a kubelet.

A stock kubelet must not run here (it probes cloud credential providers and resolves registry
names off the machine; see shared/notes/kubernetes.md).  This agent speaks the real API of the
real kube-apiserver instead, the way a kubelet does:

- registers a Node (Ready, InternalIP 127.0.0.1, capacity) and renews its Lease in
  ``kube-node-lease`` and its Ready heartbeat;
- lists then watches the pods bound to it (``spec.nodeName``), resuming on resourceVersion;
- runs each pod's first container as a LOCAL PROCESS (``command`` + ``args``, the pod's env with
  ``value``, ``fieldRef`` and ``secretKeyRef`` resolved, ``workingDir``, ``runAsUser`` /
  ``runAsGroup`` when it runs as root) in its own process group; or, with ``--docker-host``,
  for images that dockerd holds (the project's kernel image), as a container of that daemon on
  the host network (``command`` as the entrypoint, env through the Docker API);
- patches ``pods/status``: phase, podIP/hostIP 127.0.0.1, conditions, container statuses with
  waiting reasons, exit codes and (``FallbackToLogsOnError``) the last log lines;
- restarts containers of ``restartPolicy: Always/OnFailure`` pods with back-off, reporting
  ``CrashLoopBackOff``;
- handles deletion: SIGTERM to the process group, SIGKILL after the grace period, then the final
  delete; a force-deleted pod's processes are killed at once;
- gives each container the cluster's Service names as cluster DNS would answer them (an
  ``/etc/hosts`` of its own: bind-mounted in a private mount namespace for a local process,
  Docker's extra hosts for a container); OUR SERVICE PROXY (service_proxy.py), not
  kube-proxy, routes those loopback ClusterIPs to the Services' pods;
- emits Events (Pulled, Created, Started, Failed, BackOff, Killing; Scheduled comes from the
  real scheduler) and simulates a missing image (``ErrImagePull`` then ``ImagePullBackOff``) for
  every image not in the ``--images`` allow-list (``ErrImageNeverPull`` with
  ``imagePullPolicy: Never``).  No image is ever pulled: nothing leaves the machine.

Faults a test injects through the pod's annotations (a pod template sets them):

- ``gp-test.node-agent/deletion-delay: "30"``: a deleted pod's container is stopped and
  reported terminated at once, but the pod object stays for 30 more seconds, as a real kubelet
  keeps it while it tears the sandbox and volumes down (6-62 s measured);
- ``gp-test.node-agent/stuck: "Reason: message"``: the container never starts (phase Pending,
  waiting in ``ContainerCreating``) and a Warning event ``Reason`` with ``message`` repeats
  every 2 s (its count grows), as the kubelet reports ``FailedCreatePodSandBox`` or
  ``FailedMount``.

Run: ``python node_agent.py --kubeconfig K --node-name N --images a,b --workdir D
[--docker-host unix:///path/docker.sock] [--label K=V] [--taint K=V:NoSchedule]``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import logging
import os
import queue
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

if not __package__:  # run as a script by k8s_cluster: make ``backends`` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backends.service_proxy import hosts_lines

log = logging.getLogger("node-agent")
NODE_IP = "127.0.0.1"
LEASE_SECONDS = 40
HEARTBEAT = 10.0
TERMINATION_LOG_BYTES = 2048
TERMINATION_LOG_LINES = 80
IMAGE_BACKOFF_AFTER = 2.0
BASE_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "VIRTUAL_ENV")
DELETION_DELAY = "gp-test.node-agent/deletion-delay"
STUCK = "gp-test.node-agent/stuck"
STUCK_REPEAT = 2.0


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def q(name: str) -> str:
    return quote(name, safe="")


class Api:
    """Plain JSON requests through the official client (dicts in, dicts out)."""

    def __init__(self, kubeconfig: str) -> None:
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        configuration.connection_pool_maxsize = 32
        self.client = k8s.ApiClient(configuration)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: Any = 30,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()) or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.client.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        if stream:
            return response.response
        data = response.read()  # type: ignore[no-untyped-call]
        return json.loads(data) if data else {}


def host_entries(lines: list[str]) -> dict[str, str]:
    """``/etc/hosts`` lines as Docker's extra hosts (name -> address).  A container given extra
    hosts gets a hosts file of Docker's making, not the host's: the host's own names (its
    hostname, which a JVM resolves at start) must travel with the Services' names."""
    entries: dict[str, str] = {}
    for line in lines:
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            if name != "localhost":
                entries.setdefault(name, fields[0])
    return entries


class LocalRun:
    """A pod's container run as a local process group."""

    def __init__(self, process: subprocess.Popen[bytes], log_file: Path) -> None:
        self.process = process
        self.log_file = log_file

    @property
    def container_id(self) -> str:
        return f"gp-local://{self.process.pid}"

    def poll(self) -> int | None:
        code = self.process.poll()
        if code is None:
            return None
        return code if code >= 0 else 128 - code  # killed by signal N: 128 + N

    def stop(self, grace: float) -> None:
        process = self.process
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        except ProcessLookupError:
            return
        try:
            process.wait(max(grace, 0.1))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the group's leftovers too
        except ProcessLookupError:
            pass
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            log.error("process group %s survived SIGKILL", process.pid)

    def log_tail(self) -> str:
        try:
            data = self.log_file.read_bytes()[-TERMINATION_LOG_BYTES:]
        except OSError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-TERMINATION_LOG_LINES:])

    def remove(self) -> None:
        pass


class DockerRun:
    """A pod's container run by dockerd on the host network."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.exit_code: int | None = None
        threading.Thread(target=self._wait, name=f"wait-{container.name}", daemon=True).start()

    def _wait(self) -> None:
        try:
            self.exit_code = int(self.container.wait()["StatusCode"])
        except Exception:
            self.exit_code = 137

    @property
    def container_id(self) -> str:
        return f"docker://{self.container.id}"

    def poll(self) -> int | None:
        return self.exit_code

    def stop(self, grace: float) -> None:
        if self.exit_code is not None:
            return
        try:
            if grace > 0:
                self.container.stop(timeout=int(max(grace, 1)))
            else:
                self.container.kill()
        except Exception as err:
            log.debug("stopping %s: %s", self.container.name, err)

    def log_tail(self) -> str:
        try:
            data = self.container.logs(tail=TERMINATION_LOG_LINES)[-TERMINATION_LOG_BYTES:]
        except Exception:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines())

    def remove(self) -> None:
        try:
            self.container.remove(force=True)
        except Exception as err:
            log.debug("removing %s: %s", self.container.name, err)


class PodWorker(threading.Thread):
    """Runs one pod from start to its final deletion; fed watch updates through a queue."""

    def __init__(self, agent: NodeAgent, pod: dict[str, Any]) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        super().__init__(name=f"pod-{self.pod_name}", daemon=True)
        spec = pod["spec"]
        self.container: dict[str, Any] = spec["containers"][0]
        self.restart_policy: str = spec.get("restartPolicy") or "Always"
        self.updates: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.process: LocalRun | DockerRun | None = None
        self.log_file = agent.workdir / f"{self.namespace}_{self.pod_name}_{self.uid[:8]}.log"
        self.started_at = ""
        self.restart_count = 0
        self.last_terminated: dict[str, Any] | None = None
        self.restart_at = 0.0
        self.backoff = 10.0
        self.runtime = agent.runtime_for(str(self.container.get("image") or ""))
        self.image_ok = bool(self.runtime)
        self.pull_failed_at = 0.0
        self.backoff_reported = False
        self.finished = False  # the container will not run again
        self.config_error = ""
        annotations = pod["metadata"].get("annotations") or {}
        self.deletion_delay = float(annotations.get(DELETION_DELAY) or 0)
        reason, _, message = str(annotations.get(STUCK) or "").partition(":")
        self.stuck = (reason.strip(), message.strip()) if reason.strip() else None
        self.stuck_event = ""
        self.stuck_count = 0
        self.stuck_at = 0.0

    # -- API helpers -------------------------------------------------------------------------

    def event(self, kind: str, reason: str, message: str, name: str = "", count: int = 1) -> None:
        """Post an Event about the pod; with ``name`` and ``count`` > 1, update that event's
        count (the kubelet's recorder aggregates a repeated event the same way)."""
        name = name or f"{self.pod_name}.{uuid.uuid4().hex[:16]}"
        if count > 1:
            try:
                self.agent.api.call(
                    "PATCH",
                    f"/api/v1/namespaces/{q(self.namespace)}/events/{q(name)}",
                    {"count": count, "lastTimestamp": now()},
                    content_type="application/merge-patch+json",
                )
                return
            except ApiException as err:
                if err.status != 404:
                    log.warning("event %s for %s failed: %s", reason, self.pod_name, err.reason)
                    return
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.pod_name,
                "namespace": self.namespace,
                "uid": self.uid,
                "fieldPath": f"spec.containers{{{self.container['name']}}}",
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.agent.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.agent.node_name,
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
        }
        try:
            self.agent.api.call("POST", f"/api/v1/namespaces/{q(self.namespace)}/events", body)
        except ApiException as err:
            if err.status != 404:  # the namespace may be going away
                log.warning("event %s for %s failed: %s", reason, self.pod_name, err.reason)

    def patch_status(self, phase: str, state: dict[str, Any], ready: bool) -> None:
        image = str(self.container.get("image", ""))
        container_status: dict[str, Any] = {
            "name": self.container["name"],
            "image": image,
            "imageID": f"{self.runtime}://{image}" if self.image_ok else "",
            "ready": ready,
            "started": "running" in state,
            "restartCount": self.restart_count,
            "state": state,
        }
        if self.process is not None:
            container_status["containerID"] = self.process.container_id
        if self.last_terminated is not None:
            container_status["lastState"] = {"terminated": self.last_terminated}
        flag = "True" if ready else "False"
        conditions = [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
            {"type": "Ready", "status": flag, "lastTransitionTime": now()},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now()},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
        ]
        if not ready:
            for condition in conditions[1:3]:
                condition["reason"] = "ContainersNotReady"
        status = {
            "status": {
                "phase": phase,
                "hostIP": NODE_IP,
                "podIP": NODE_IP,
                "podIPs": [{"ip": NODE_IP}],
                "startTime": self.started_at or now(),
                "conditions": conditions,
                "containerStatuses": [container_status],
            }
        }
        try:
            self.agent.api.call(
                "PATCH",
                f"/api/v1/namespaces/{q(self.namespace)}/pods/{q(self.pod_name)}/status",
                status,
                content_type="application/merge-patch+json",
            )
        except ApiException as err:
            if err.status != 404:
                log.warning("status of %s failed: %s %s", self.pod_name, err.status, err.reason)

    # -- the container -----------------------------------------------------------------------

    def resolve_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.runtime == "local":  # an image brings its own PATH, HOME, ...
            env = {k: os.environ[k] for k in BASE_ENV_NAMES if k in os.environ}
            env["HOSTNAME"] = self.pod_name
        meta, spec = self.pod["metadata"], self.pod["spec"]
        fields = {
            "metadata.name": self.pod_name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.agent.node_name,
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": NODE_IP,
            "status.hostIP": NODE_IP,
        }
        for entry in self.container.get("env") or []:
            name = entry["name"]
            source = entry.get("valueFrom") or {}
            if not source:  # an empty value is omitted from the stored pod, as a kubelet knows
                env[name] = str(entry.get("value") or "")
                continue
            if "fieldRef" in source:
                field_path = source["fieldRef"]["fieldPath"]
                if field_path.startswith("metadata.labels['"):
                    env[name] = meta.get("labels", {}).get(field_path[17:-2], "")
                else:
                    env[name] = fields.get(field_path, "")
            elif "secretKeyRef" in source:
                env[name] = self.secret_value(source["secretKeyRef"])
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                cm = self.agent.api.call(
                    "GET", f"/api/v1/namespaces/{q(self.namespace)}/configmaps/{q(ref['name'])}"
                )
                env[name] = (cm.get("data") or {}).get(ref["key"], "")
        return env

    def secret_value(self, ref: Mapping[str, Any]) -> str:
        try:
            secret = self.agent.api.call(
                "GET", f"/api/v1/namespaces/{q(self.namespace)}/secrets/{q(ref['name'])}"
            )
        except ApiException as err:
            if err.status == 404 and not ref.get("optional"):
                raise LookupError(f'secret "{ref["name"]}" not found') from None
            raise
        data = secret.get("data") or {}
        if ref["key"] not in data:
            raise LookupError(
                f"couldn't find key {ref['key']} in Secret {self.namespace}/{ref['name']}"
            )
        return base64.b64decode(data[ref["key"]]).decode()

    def credentials(self, always: bool = False) -> dict[str, int]:
        """runAsUser / runAsGroup (container over pod); local processes only switch user
        when the agent runs as root."""
        if os.geteuid() != 0 and not always:
            return {}
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = self.container.get("securityContext") or {}
        ids: dict[str, int] = {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if uid is not None:
            ids["user"] = int(uid)
        if gid is not None:
            ids["group"] = int(gid)
        return ids

    def report_stuck(self) -> None:
        """The container cannot be created (the ``stuck`` fault): say why again."""
        assert self.stuck is not None
        reason, message = self.stuck
        if not self.stuck_event:
            self.stuck_event = f"{self.pod_name}.{uuid.uuid4().hex[:16]}"
            self.patch_status("Pending", {"waiting": {"reason": "ContainerCreating"}}, False)
        self.stuck_count += 1
        self.stuck_at = time.monotonic()
        self.event("Warning", reason, message, self.stuck_event, self.stuck_count)

    def start_container(self) -> None:
        image = self.container.get("image", "")
        if self.stuck is not None:
            self.report_stuck()
            return
        if not self.image_ok and self.container.get("imagePullPolicy") == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self.event("Warning", "ErrImageNeverPull", message)
            self.finish_config_error("ErrImageNeverPull", message)
            self.backoff_reported = True
            return
        if not self.image_ok:
            self.pull_failed_at = time.monotonic()
            self.event("Normal", "Pulling", f'Pulling image "{image}"')
            message = (
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": {image}: not found'
            )
            self.event("Warning", "Failed", f'Failed to pull image "{image}": {message}')
            self.event("Warning", "Failed", "Error: ErrImagePull")
            self.patch_status(
                "Pending", {"waiting": {"reason": "ErrImagePull", "message": message}}, False
            )
            return
        argv = [str(a) for a in (self.container.get("command") or [])]
        argv += [str(a) for a in (self.container.get("args") or [])]
        if not argv:
            self.finish_config_error(
                "CreateContainerError",
                "the node agent needs the container's command (it does not read images)",
            )
            return
        try:
            env = self.resolve_env()
        except LookupError as err:
            self.finish_config_error("CreateContainerConfigError", str(err))
            return
        if self.restart_count == 0:
            self.event("Normal", "Pulled", f'Container image "{image}" already present on machine')
        self.event("Normal", "Created", f"Created container {self.container['name']}")
        try:
            if self.runtime == "docker":
                self.process = self.start_docker(argv, env)
            else:
                self.process = self.start_local(argv, env)
        except Exception as err:
            message = f"failed to start container process {argv[0]!r}: {err}"
            self.event("Warning", "Failed", f"Error: {message}")
            self.report_exit(128, "StartError", message)
            return
        self.started_at = self.started_at or now()
        self.event("Normal", "Started", f"Started container {self.container['name']}")
        self.patch_status("Running", {"running": {"startedAt": now()}}, True)

    def service_hosts(self) -> list[str]:
        """``/etc/hosts`` lines for the cluster's Services, seen from this pod's namespace."""
        try:
            services = self.agent.api.call("GET", "/api/v1/services").get("items") or []
        except (ApiException, OSError) as err:  # the pod still runs, without the names
            log.warning("pod %s: cannot list Services for its hosts file: %s", self.pod_name, err)
            return []
        return hosts_lines(services, self.namespace)

    def with_cluster_names(self, argv: list[str]) -> tuple[list[str], dict[str, int]]:
        """``argv`` wrapped to run in a mount namespace of its own whose ``/etc/hosts`` is the
        host's plus the Services' names; the user switch then happens inside (setpriv), after
        the mount.  Only as root (unshare and mount need it): otherwise ``argv`` as it is."""
        credentials = self.credentials()
        if os.geteuid() != 0:
            return argv, credentials
        hosts = self.log_file.with_suffix(".hosts")
        names = ["# the cluster's Services (service_proxy.py routes them)", *self.service_hosts()]
        hosts.write_text(Path("/etc/hosts").read_text() + "\n".join(names) + "\n")
        switch = []
        if "user" in credentials:
            switch.append(f"--reuid={int(credentials['user'])}")
        if "group" in credentials:
            switch.append(f"--regid={int(credentials['group'])}")
        wrapped = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c"]
        wrapped += ['mount --bind "$0" /etc/hosts && exec "$@"', str(hosts)]
        if switch:  # a container's process has no supplementary groups of the host's
            wrapped += ["setpriv", *switch, "--clear-groups", "--"]
        return wrapped + argv, {}

    def start_local(self, argv: list[str], env: dict[str, str]) -> LocalRun:
        workdir = self.container.get("workingDir") or str(self.agent.workdir)
        argv, credentials = self.with_cluster_names(argv)
        with self.log_file.open("ab") as handle:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=workdir if os.path.isdir(workdir) else str(self.agent.workdir),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **credentials,  # type: ignore[call-overload]
            )
        return LocalRun(process, self.log_file)

    def start_docker(self, argv: list[str], env: dict[str, str]) -> DockerRun:
        """``command`` replaces the image's entrypoint, as in Kubernetes; the env travels
        through the Docker API (never on a command line)."""
        ids = self.credentials(always=True)
        user = ""
        if "user" in ids:
            user = str(ids["user"]) + (f":{ids['group']}" if "group" in ids else "")
        container = self.agent.docker().containers.run(
            self.container["image"],
            command=argv[1:],
            entrypoint=[argv[0]],
            environment=env,
            network_mode="host",
            detach=True,
            name=f"k8s_{self.container['name']}_{self.pod_name}_{self.uid[:8]}",
            labels={"gateway-provisioners.node-agent/pod-uid": self.uid},
            user=user or None,
            working_dir=self.container.get("workingDir") or None,
            extra_hosts=host_entries(
                [*Path("/etc/hosts").read_text().splitlines(), *self.service_hosts()]
            ),
        )
        return DockerRun(container)

    def finish_config_error(self, reason: str, message: str) -> None:
        self.config_error = reason
        self.event("Warning", "Failed", f"Error: {message}")
        self.patch_status("Pending", {"waiting": {"reason": reason, "message": message}}, False)

    def log_tail(self) -> str:
        return self.process.log_tail() if self.process is not None else ""

    def report_exit(self, code: int, reason: str = "", message: str = "") -> None:
        policy = self.container.get("terminationMessagePolicy", "File")
        if not message and code != 0 and policy == "FallbackToLogsOnError":
            message = self.log_tail()
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": self.started_at or now(),
            "finishedAt": now(),
        }
        if message:
            terminated["message"] = message
        if self.process is not None:
            terminated["containerID"] = self.process.container_id
        restart = self.restart_policy == "Always" or (
            self.restart_policy == "OnFailure" and code != 0
        )
        if not restart:
            self.finished = True
            self.patch_status(
                "Succeeded" if code == 0 else "Failed", {"terminated": terminated}, False
            )
            return
        self.last_terminated = terminated
        self.restart_count += 1
        self.restart_at = time.monotonic() + self.backoff
        message = (
            f"back-off {self.backoff:g}s restarting failed container={self.container['name']} "
            f"pod={self.pod_name}_{self.namespace}({self.uid})"
        )
        self.backoff = min(self.backoff * 2, 300.0)
        self.event("Warning", "BackOff", "Back-off restarting failed container")
        self.patch_status(
            "Running", {"waiting": {"reason": "CrashLoopBackOff", "message": message}}, False
        )

    def kill(self, grace: float) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        self.event("Normal", "Killing", f"Stopping container {self.container['name']}")
        process.stop(grace)

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.lifecycle()
        except Exception:
            log.exception("pod %s/%s: worker failed", self.namespace, self.pod_name)
        finally:
            if self.process is not None:
                self.process.stop(0)
                self.process.remove()
            self.agent.forget(self.uid)

    def lifecycle(self) -> None:
        self.start_container()
        while True:
            try:
                kind, pod = self.updates.get(timeout=0.1)
            except queue.Empty:
                kind, pod = "", {}
            if kind == "DELETED":
                self.kill(0)
                return
            if kind and pod["metadata"].get("deletionTimestamp"):
                grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
                self.kill(grace)
                if self.deletion_delay and not self.tear_down_slowly():
                    return  # force-deleted meanwhile
                if self.process is not None:
                    self.process.remove()  # the pod object goes only when its container did
                self.final_delete()
                return
            if self.stuck is not None:
                if time.monotonic() - self.stuck_at >= STUCK_REPEAT:
                    self.report_stuck()
                continue
            if self.process is not None and not self.finished and self.restart_at == 0:
                code = self.process.poll()
                if code is not None:
                    self.report_exit(code)
            if self.restart_at and time.monotonic() >= self.restart_at:
                self.restart_at = 0.0
                if self.process is not None:
                    self.process.remove()
                self.start_container()
            if (
                not self.image_ok
                and not self.backoff_reported
                and time.monotonic() - self.pull_failed_at > IMAGE_BACKOFF_AFTER
            ):
                self.backoff_reported = True
                image = self.container.get("image", "")
                message = f'Back-off pulling image "{image}"'
                self.event("Normal", "BackOff", message)
                self.event("Warning", "Failed", "Error: ImagePullBackOff")
                self.patch_status(
                    "Pending",
                    {"waiting": {"reason": "ImagePullBackOff", "message": message}},
                    False,
                )

    def tear_down_slowly(self) -> bool:
        """The ``deletion-delay`` fault: report the stopped container, then keep the pod
        object for the delay.  False when the pod was force-deleted meanwhile."""
        process = self.process
        if process is not None and not self.finished:
            code = process.poll()
            terminated: dict[str, Any] = {
                "exitCode": 137 if code is None else code,
                "reason": "Error" if code else "Completed",
                "startedAt": self.started_at or now(),
                "finishedAt": now(),
                "containerID": process.container_id,
            }
            self.finished = True
            self.patch_status(
                "Failed" if terminated["exitCode"] else "Succeeded",
                {"terminated": terminated},
                False,
            )
        log.info("pod %s: keeping the deleted pod %gs", self.pod_name, self.deletion_delay)
        deadline = time.monotonic() + self.deletion_delay
        while time.monotonic() < deadline:
            try:
                kind, _ = self.updates.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "DELETED":
                return False
        return True

    def final_delete(self) -> None:
        """What the kubelet does once the containers are gone: delete with grace 0."""
        try:
            self.agent.api.call(
                "DELETE",
                f"/api/v1/namespaces/{q(self.namespace)}/pods/{q(self.pod_name)}",
                {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except ApiException as err:
            if err.status not in (404, 409):
                log.warning("final delete of %s failed: %s", self.pod_name, err.reason)


class NodeAgent:
    def __init__(
        self,
        api: Api,
        node_name: str,
        images: set[str],
        workdir: Path,
        *,
        docker_host: str = "",
        labels: Mapping[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> None:
        self.api = api
        self.node_name = node_name
        self.images = images
        self.workdir = workdir
        self.docker_host = docker_host
        self.labels = dict(labels or {})
        self.taints = list(taints or [])
        self._docker: Any = None
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.resource_version = ""

    def docker(self) -> Any:
        if self._docker is None:
            import docker  # only with --docker-host

            self._docker = docker.DockerClient(base_url=self.docker_host, timeout=60)
        return self._docker

    def runtime_for(self, image: str) -> str:
        """``docker`` when dockerd holds the image, ``local`` for an allow-listed image that
        runs as a local process, ``""`` when the image is missing (ErrImagePull)."""
        if self.docker_host:
            try:
                self.docker().images.get(image)
                return "docker"
            except Exception as err:
                log.info("image %s not in dockerd: %s", image, type(err).__name__)
        return "local" if image in self.images else ""

    # -- node --------------------------------------------------------------------------------

    def node_status(self) -> dict[str, Any]:
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "250", "ephemeral-storage": "100Gi"}
        conditions = [
            {
                "type": kind,
                "status": "False",
                "reason": f"KubeletHas{reason}",
                "message": f"node agent has {reason.lower()}",
                "lastHeartbeatTime": now(),
                "lastTransitionTime": now(),
            }
            for kind, reason in (
                ("MemoryPressure", "SufficientMemory"),
                ("DiskPressure", "NoDiskPressure"),
                ("PIDPressure", "SufficientPID"),
            )
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "gp test node agent is posting ready status (not a kubelet)",
                "lastHeartbeatTime": now(),
                "lastTransitionTime": now(),
            }
        )
        return {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": NODE_IP},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": "gp-node-agent",
                    "systemUUID": "gp-node-agent",
                    "bootID": "gp-node-agent",
                    "kernelVersion": os.uname().release,
                    "osImage": "gp node agent (local processes)",
                    "containerRuntimeVersion": "gp-local://1",
                    "kubeletVersion": "v1.20.2",
                    "kubeProxyVersion": "v1.20.2",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }

    def register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "gateway-provisioners/node-agent": "true",
                    **self.labels,
                },
            },
            "spec": {"taints": self.taints} if self.taints else {},
        }
        try:
            self.api.call("POST", "/api/v1/nodes", node)
        except ApiException as err:
            if err.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        self.api.call(
            "PATCH",
            f"/api/v1/nodes/{q(self.node_name)}/status",
            self.node_status(),
            content_type="application/merge-patch+json",
        )
        lease_path = (
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{q(self.node_name)}"
        )
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now_micro(),
            },
        }
        try:
            self.api.call(
                "PATCH",
                lease_path,
                {"spec": lease["spec"]},
                content_type="application/merge-patch+json",
            )
        except ApiException as err:
            if err.status != 404:
                raise
            try:
                self.api.call(
                    "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease
                )
            except ApiException as create_error:
                if create_error.status not in (404, 409):  # namespace not there yet
                    raise

    def heartbeat_loop(self) -> None:
        while not self.stopped.wait(HEARTBEAT):
            try:
                self.heartbeat()
            except Exception as err:
                log.warning("heartbeat failed: %s", err)

    # -- pods --------------------------------------------------------------------------------

    def forget(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)

    def dispatch(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if worker is None:
                if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                    if kind != "DELETED":
                        # Bound, but deleted before we ran it: nothing to stop.
                        threading.Thread(
                            target=PodWorker(self, pod).final_delete, daemon=True
                        ).start()
                    return
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
                return
        worker.updates.put((kind, pod))

    def pods_path(self) -> str:
        return "/api/v1/pods"

    def list_pods(self) -> None:
        body = self.api.call(
            "GET", self.pods_path(), query={"fieldSelector": f"spec.nodeName={self.node_name}"}
        )
        live = set()
        for pod in body.get("items") or []:
            live.add(pod["metadata"]["uid"])
            self.dispatch("MODIFIED", pod)
        with self.lock:
            gone = [w for uid, w in self.workers.items() if uid not in live]
        for worker in gone:
            worker.updates.put(("DELETED", worker.pod))
        self.resource_version = body["metadata"]["resourceVersion"]

    def watch_pods(self) -> None:
        response = self.api.call(
            "GET",
            self.pods_path(),
            query={
                "fieldSelector": f"spec.nodeName={self.node_name}",
                "watch": "true",
                "resourceVersion": self.resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(random.randint(120, 240)),
            },
            stream=True,
            timeout=(10, 300),
        )
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        self.resource_version = ""
                        return
                    raise RuntimeError(obj.get("message"))
                self.resource_version = obj["metadata"].get("resourceVersion", "")
                if kind != "BOOKMARK":
                    self.dispatch(kind, obj)
        finally:
            response.close()

    def run(self) -> None:
        self.register()
        threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True).start()
        while not self.stopped.is_set():
            try:
                if not self.resource_version:
                    self.list_pods()
                self.watch_pods()
            except ApiException as err:
                if err.status == 410:
                    self.resource_version = ""
                    continue
                log.warning("pod watch failed: %s %s", err.status, err.reason)
                time.sleep(1)
            except Exception as err:
                if self.stopped.is_set():
                    break
                log.warning("pod watch failed: %s", err)
                time.sleep(1)

    def shutdown(self, *_: Any) -> None:
        """Stop: kill and remove every container (their pods stay as they are)."""
        self.stopped.set()
        with self.lock:
            runs = [w.process for w in self.workers.values() if w.process is not None]
        for run in runs:
            run.stop(0)
            run.remove()
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", default="gp-node-agent")
    parser.add_argument("--images", default="", help="images 'present on the machine'")
    parser.add_argument("--workdir", default=".")
    parser.add_argument("--docker-host", default="", help="run images dockerd holds there")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE node label")
    parser.add_argument("--taint", action="append", default=[], help="KEY=VALUE:EFFECT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    images = {i.strip() for i in args.images.split(",") if i.strip()}
    labels = dict(item.split("=", 1) for item in args.label)
    taints = []
    for item in args.taint:
        body, _, effect = item.partition(":")
        key, _, value = body.partition("=")
        taints.append({"key": key, "value": value, "effect": effect or "NoSchedule"})
    agent = NodeAgent(
        Api(args.kubeconfig),
        args.node_name,
        images,
        workdir,
        docker_host=args.docker_host,
        labels=labels,
        taints=taints,
    )
    signal.signal(signal.SIGTERM, agent.shutdown)
    signal.signal(signal.SIGINT, agent.shutdown)
    log.info("node agent %s (not a kubelet) running images %s", args.node_name, sorted(images))
    agent.run()


if __name__ == "__main__":
    main()
