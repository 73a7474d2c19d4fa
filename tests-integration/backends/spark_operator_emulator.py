"""OUR EMULATOR of the Spark operator (the real operator cannot run here), on the real apiserver.

It speaks the real API through the official client: it watches SparkApplications
(sparkoperator.k8s.io/v1beta2) cluster-wide, and for each new one either

- creates the driver pod as the operator's spark-submit would: name ``<app>-driver``, the
  labels ``spark-role=driver``, ``spark-app-selector``, ``sparkoperator.k8s.io/app-name``,
  ``sparkoperator.k8s.io/launched-by-spark-operator``, ``sparkoperator.k8s.io/submission-id``
  plus ``spec.driver.labels``; env from ``spec.driver.env`` and ``envSecretKeyRefs`` plus
  ``SPARK_APPLICATION_ID`` and ``SPARK_DRIVER_BIND_ADDRESS``; the driver's annotations,
  resources (``memory``, ``coreRequest``, ``coreLimit``), security context, node selector,
  tolerations, affinity, priority and runtime classes and volume mounts (with the
  application's volumes they name), and the application's ``imagePullSecrets``; an
  ownerReference to the application (so the garbage collector deletes the pod with it); and sets
  ``.status.applicationState.state`` to ``SUBMITTED`` with ``driverInfo.podName``; or
- when the image is not allowed (or ``sparkConf`` holds ``spark.gp.emulator.failSubmission``)
  sets ``SUBMISSION_FAILED`` with an ``errorMessage``, and creates nothing.

Then it follows the driver pods: ``Running`` -> ``RUNNING``, ``Succeeded`` -> ``COMPLETED``,
``Failed`` -> ``FAILED`` (with the exit code), pod deleted -> ``FAILED`` ("driver pod not
found").  The driver container runs the application as a local process through the node agent:
``PYSPARK_DRIVER_PYTHON <mainApplicationFile> <arguments>`` stands in for the image's
spark-submit entrypoint (no Spark runs; kernels use spark context mode ``none``).

:class:`OperatorEmulator` is the generic part (watch a kind, create one pod per object, mirror
the pod's phase into ``.status.applicationState``), reused by the tests' tiny controller.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Self, cast

from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from gp_k8s.client import path, request

log = logging.getLogger(__name__)
FAIL_SUBMISSION_CONF = "spark.gp.emulator.failSubmission"
TERMINAL = frozenset({"FAILED", "SUBMISSION_FAILED", "COMPLETED"})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class OperatorEmulator:
    """Watch one custom resource kind; one pod per object; status mirrors the pod."""

    group = ""
    version = ""
    plural = ""
    kind = ""
    pod_selector = ""
    """Labels of the pods this controller owns (its pod watch)."""
    app_label = ""
    """The pod label naming the owning object."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api = api_client
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._states: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.submitted = 0
        self.errors: list[str] = []
        # successful listings per watch loop: a loop that listed after a moment has recovered
        self.listings: dict[str, int] = {"objects": 0, "pods": 0}

    # -- hooks --------------------------------------------------------------------------------

    def refusal(self, obj: dict[str, Any]) -> str:
        """Why this object cannot be submitted ("" when it can)."""
        return ""

    def build_pod(self, obj: dict[str, Any], submission_id: str) -> dict[str, Any]:
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        for target in (self._watch_objects, self._watch_pods):
            thread = threading.Thread(target=self._loop, args=(target,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _loop(self, target: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                target()
            except Exception as err:
                if not self._stop.is_set():
                    self.errors.append(f"{type(err).__name__}: {err}")
                    log.warning("%s emulator: %s", self.kind, err)
                    self._stop.wait(0.5)

    def _watch_objects(self) -> None:
        listed = cast(
            dict[str, Any],
            self.custom.list_cluster_custom_object(self.group, self.version, self.plural),
        )
        self.listings["objects"] += 1
        for item in listed.get("items") or []:
            self.on_object("ADDED", item)
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]  # untyped client
            self.custom.list_cluster_custom_object,
            self.group,
            self.version,
            self.plural,
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=5,
        )
        for event in stream:
            if self._stop.is_set():
                return
            self.on_object(event["type"], event["object"])

    def _watch_pods(self) -> None:
        listed = self.core.list_pod_for_all_namespaces(label_selector=self.pod_selector)
        self.listings["pods"] += 1
        assert listed.metadata is not None
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]  # untyped client
            self.core.list_pod_for_all_namespaces,
            label_selector=self.pod_selector,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        )
        for event in stream:
            if self._stop.is_set():
                return
            pod = self.api.sanitize_for_serialization(event["object"])  # type: ignore[no-untyped-call]
            self.on_pod(event["type"], pod)

    # -- reconcile ----------------------------------------------------------------------------

    def on_object(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        state = ((obj.get("status") or {}).get("applicationState") or {}).get("state") or ""
        with self._lock:
            if kind == "DELETED":
                self._states.pop(key, None)
                return
            known = self._states.get(key)
            self._states[key] = state or known or ""
            if state or known is not None or meta.get("deletionTimestamp"):
                return
            self._states[key] = "NEW"
        refused = self.refusal(obj)
        if refused:
            self.set_state(key, "SUBMISSION_FAILED", refused, submissionAttempts=1)
            return
        submission_id = str(uuid.uuid4())
        pod = self.build_pod(obj, submission_id)
        pod["metadata"]["ownerReferences"] = [
            {
                "apiVersion": f"{self.group}/{self.version}",
                "kind": self.kind,
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        try:
            request(self.api, "POST", path("/api/v1/namespaces/{}/pods", key[0]), body=pod)
        except ApiException as err:
            self.set_state(
                key,
                "SUBMISSION_FAILED",
                f"failed to create driver pod {pod['metadata']['name']}: {err.reason} "
                f"(HTTP {err.status}) {err.body or ''}".strip(),
                submissionAttempts=1,
            )
            return
        self.submitted += 1
        self.set_state(
            key,
            "SUBMITTED",
            driverInfo={"podName": pod["metadata"]["name"]},
            submissionID=submission_id,
            submissionAttempts=1,
            lastSubmissionAttemptTime=_now(),
            sparkApplicationId=pod["metadata"]["labels"].get("spark-app-selector", ""),
        )

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        app = (meta.get("labels") or {}).get(self.app_label)
        if not app:
            return
        key = (meta["namespace"], app)
        with self._lock:
            current = self._states.get(key)
        if current is None or current in TERMINAL:
            return
        status = pod.get("status") or {}
        phase = status.get("phase")
        if kind == "DELETED":
            self.set_state(key, "FAILED", "driver pod not found", terminationTime=_now())
        elif phase == "Running" and current != "RUNNING":
            self.set_state(key, "RUNNING")
        elif phase == "Succeeded":
            self.set_state(key, "COMPLETED", terminationTime=_now())
        elif phase == "Failed":
            code, reason = "", status.get("reason") or ""
            for entry in status.get("containerStatuses") or []:
                terminated = (entry.get("state") or {}).get("terminated") or {}
                if terminated:
                    code, reason = terminated.get("exitCode", ""), terminated.get("reason", "")
            self.set_state(
                key,
                "FAILED",
                f"driver container failed with ExitCode: {code}, Reason: {reason}",
                terminationTime=_now(),
            )

    def set_state(self, key: tuple[str, str], state: str, error: str = "", **status: Any) -> None:
        with self._lock:
            if key not in self._states:
                return
            self._states[key] = state
        application: dict[str, Any] = {"state": state, "errorMessage": error or None}
        body = {"status": {"applicationState": application, **status}}
        try:
            request(
                self.api,
                "PATCH",
                path(
                    "/apis/{}/{}/namespaces/{}/{}/{}/status",
                    self.group,
                    self.version,
                    key[0],
                    self.plural,
                    key[1],
                ),
                body=body,
                content_type="application/merge-patch+json",
            )
        except ApiException as err:
            if err.status != 404:
                raise


class SparkOperatorEmulator(OperatorEmulator):
    """The Spark operator's behaviour for SparkApplications; see the module docstring."""

    group = "sparkoperator.k8s.io"
    version = "v1beta2"
    plural = "sparkapplications"
    kind = "SparkApplication"
    pod_selector = "sparkoperator.k8s.io/launched-by-spark-operator=true,spark-role=driver"
    app_label = "sparkoperator.k8s.io/app-name"

    def __init__(self, api_client: k8s.ApiClient, allowed_images: set[str]) -> None:
        super().__init__(api_client)
        self.allowed_images = set(allowed_images)

    def refusal(self, obj: dict[str, Any]) -> str:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        where = f"SparkApplication {meta['namespace']}/{meta['name']}"
        forced = (spec.get("sparkConf") or {}).get(FAIL_SUBMISSION_CONF)
        if forced:
            return f"failed to run spark-submit for {where}: {forced}"
        image = spec.get("image") or ""
        if image not in self.allowed_images:
            return (
                f"failed to run spark-submit for {where}: image {image!r} is not allowed "
                f"(allowed: {', '.join(sorted(self.allowed_images))})"
            )
        return ""

    def build_pod(self, obj: dict[str, Any], submission_id: str) -> dict[str, Any]:
        meta, spec = obj["metadata"], obj["spec"]
        driver = spec.get("driver") or {}
        app_id = f"spark-{meta['uid'].replace('-', '')}"
        env = [dict(entry) for entry in driver.get("env") or []]
        for name, ref in (driver.get("envSecretKeyRefs") or {}).items():
            env.append(
                {
                    "name": name,
                    "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}},
                }
            )
        env += [
            {"name": "SPARK_APPLICATION_ID", "value": app_id},
            {
                "name": "SPARK_DRIVER_BIND_ADDRESS",
                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
            },
        ]
        python = next(
            (e.get("value") for e in env if e["name"] == "PYSPARK_DRIVER_PYTHON"), "python3"
        )
        main_file = str(spec["mainApplicationFile"]).removeprefix("local://")
        resources: dict[str, Any] = {}
        if driver.get("memory"):
            resources.setdefault("requests", {})["memory"] = str(driver["memory"]).replace(
                "m", "Mi"
            )
        if driver.get("coreLimit"):
            resources.setdefault("limits", {})["cpu"] = driver["coreLimit"]
        if driver.get("coreRequest"):
            resources.setdefault("requests", {})["cpu"] = driver["coreRequest"]
        labels = {
            **(driver.get("labels") or {}),
            "spark-role": "driver",
            "spark-app-selector": app_id,
            "spark-version": str(spec.get("sparkVersion") or ""),
            "sparkoperator.k8s.io/app-name": meta["name"],
            "sparkoperator.k8s.io/launched-by-spark-operator": "true",
            "sparkoperator.k8s.io/submission-id": submission_id,
        }
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "serviceAccountName": driver.get("serviceAccount") or "default",
            "terminationGracePeriodSeconds": int(driver.get("terminationGracePeriodSeconds", 30)),
            "containers": [
                {
                    "name": "spark-kubernetes-driver",
                    "image": spec.get("image") or "",
                    "imagePullPolicy": spec.get("imagePullPolicy") or "IfNotPresent",
                    "command": [python, main_file, *(spec.get("arguments") or [])],
                    "env": env,
                    "resources": resources,
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        }
        if driver.get("securityContext"):
            pod_spec["securityContext"] = dict(driver["securityContext"])
        if driver.get("nodeSelector"):
            pod_spec["nodeSelector"] = dict(driver["nodeSelector"])
        if driver.get("tolerations"):
            pod_spec["tolerations"] = list(driver["tolerations"])
        for field in ("affinity", "priorityClassName", "runtimeClassName"):
            if driver.get(field):
                pod_spec[field] = driver[field]
        if spec.get("imagePullSecrets"):
            pod_spec["imagePullSecrets"] = [{"name": n} for n in spec["imagePullSecrets"]]
        mounts = list(driver.get("volumeMounts") or [])
        if mounts:
            # The application's volumes that the driver mounts (as the operator's webhook and
            # Spark's pod template do).
            mounted = {m["name"] for m in mounts}
            pod_spec["volumes"] = [v for v in spec.get("volumes") or [] if v["name"] in mounted]
            pod_spec["containers"][0]["volumeMounts"] = mounts
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-driver",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": dict(driver.get("annotations") or {}),
            },
            "spec": pod_spec,
        }
