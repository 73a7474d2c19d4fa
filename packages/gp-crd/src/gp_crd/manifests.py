"""Pure builders of the custom resources a kernel needs.

Like :mod:`gp_k8s.manifests`, everything is Python data: the operator's template (parsed YAML)
is the base, and validated values (:class:`~gp_k8s.parameters.KernelParameters`) are set into
it as strings and numbers.  No function here does I/O.

- :func:`build_custom_object`: the generic body of :class:`~gp_crd.CustomResourceProvisioner`:
  ``spec.podTemplate`` holds the kernel's pod (built by gp-k8s's :func:`~gp_k8s.manifests.
  build_pod`), for a controller that creates the pod from it.
- :func:`build_spark_application`: a ``sparkoperator.k8s.io/v1beta2`` SparkApplication whose
  driver runs the kernel launcher: ``mainApplicationFile`` is the launcher, ``arguments`` the
  rest of its argv, and the Python that runs it is ``PYSPARK_DRIVER_PYTHON`` (as spark-submit
  does for Python applications).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gp_k8s.manifests import (
    KERNEL_ID_ANNOTATION,
    PodRequest,
    build_pod,
    kernel_env,
    kernel_labels,
    set_kernel_metadata,
    set_run_as,
)

from .spark_options import set_driver_resources, set_spark_choices
from .spark_options import spark_memory as spark_memory  # re-exported: its old home

SPARK_GROUP = "sparkoperator.k8s.io"
SPARK_VERSION = "v1beta2"
SPARK_PLURAL = "sparkapplications"
SPARK_KIND = "SparkApplication"
DEFAULT_SPARK_VERSION = "3.5.0"
LOCAL_SCHEME = "local://"


@dataclass(frozen=True, kw_only=True)
class ResourceRequest(PodRequest):
    """Everything a custom-resource builder needs, already validated: gp-k8s's
    :class:`~gp_k8s.manifests.PodRequest` (``name`` is the resource's, ``template`` the
    operator's template of the resource) and what only a resource has."""

    api_version: str
    kind: str
    termination_grace_period: int = 10
    executor_image: str = ""
    """The Spark executors' image (``executor_image_name``); empty: the application's."""
    gpu_resource_name: str = "nvidia.com/gpu"
    """The extended resource GPUs are requested as (gp-k8s's ``gpu_resource_name``)."""


def _metadata(obj: dict[str, Any], request: ResourceRequest) -> dict[str, Any]:
    metadata = set_kernel_metadata(
        obj,
        api_version=request.api_version,
        kind=request.kind,
        name=request.name,
        namespace=request.parameters.namespace,
        kernel_id=request.kernel_id,
        username=request.username,
    )
    obj.pop("status", None)
    return metadata


def build_custom_object(request: ResourceRequest) -> dict[str, Any]:
    """The generic custom resource: kernel labels, and the kernel's pod in
    ``spec.podTemplate`` (its ``metadata.name`` is the resource's name)."""
    obj: dict[str, Any] = copy.deepcopy(dict(request.template or {}))
    _metadata(obj, request)
    spec = obj.setdefault("spec", {})
    pod_template = spec.get("podTemplate")
    # The pod is the request's, from the resource template's podTemplate (named as the resource).
    template = pod_template if isinstance(pod_template, Mapping) else None
    pod = build_pod(
        replace(request, template=template), gpu_resource_name=request.gpu_resource_name
    )
    pod["spec"]["terminationGracePeriodSeconds"] = request.termination_grace_period
    spec["podTemplate"] = pod
    return obj


def build_spark_application(request: ResourceRequest) -> dict[str, Any]:
    """The kernel's SparkApplication as a dict; see the module docstring.

    The operator's template (a SparkApplication manifest) is the base: its ``sparkConf``,
    ``sparkVersion``, ``executor``, ``volumes`` and so on are kept.  This sets the name,
    namespace, kernel labels (on the resource and, through ``driver.labels``, on the driver
    pod), image (and the executors' image when one is configured), the launcher, the driver's
    env, service account, resources and numeric ids, and the placement and customisations the
    user chose (:mod:`gp_crd.spark_options`: node selector, tolerations, affinity, priority
    and runtime classes, labels and annotations on the driver and the executors; pull
    secrets; volumes mounted in the driver).
    """
    if len(request.command) < 2:
        raise ValueError(
            f"the launcher argv {list(request.command)!r} needs an interpreter and a script"
        )
    p = request.parameters
    obj: dict[str, Any] = copy.deepcopy(dict(request.template or {}))
    _metadata(obj, request)
    spec: dict[str, Any] = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise ValueError("the SparkApplication template's spec must be a mapping")
    spec["type"] = "Python"
    spec.setdefault("pythonVersion", "3")
    spec["mode"] = "cluster"
    spec["image"] = p.image
    spec.setdefault("imagePullPolicy", "IfNotPresent")
    spec.setdefault("sparkVersion", DEFAULT_SPARK_VERSION)
    spec["mainApplicationFile"] = LOCAL_SCHEME + str(request.command[1])
    spec["arguments"] = [str(arg) for arg in request.command[2:]]
    spec["restartPolicy"] = {"type": "Never"}
    if request.executor_image:
        executor = spec.setdefault("executor", {})
        if not isinstance(executor, dict):
            raise ValueError("the SparkApplication template's spec.executor must be a mapping")
        executor["image"] = request.executor_image

    driver: dict[str, Any] = spec.setdefault("driver", {})
    driver.setdefault("labels", {}).update(kernel_labels(request.kernel_id))
    driver_annotations = driver.setdefault("annotations", {})
    driver_annotations[KERNEL_ID_ANNOTATION] = request.kernel_id
    driver["serviceAccount"] = p.service_account
    driver["terminationGracePeriodSeconds"] = request.termination_grace_period
    set_driver_resources(driver, p, request.gpu_resource_name)
    set_run_as(driver, p, fs_group=False)
    set_spark_choices(spec, driver, p)

    # An empty value is left out (EnvVar's value defaults to ""): kube-apiserver's CRD
    # validation refuses "" for a string field as null (seen with v1.20).
    python = {"name": "PYSPARK_DRIVER_PYTHON", "value": str(request.command[0])}
    driver["env"] = kernel_env(
        driver.get("env"), request.env, {"PYSPARK_DRIVER_PYTHON": python}, omit_empty=True
    )
    if request.secret_env:
        refs = driver.setdefault("envSecretKeyRefs", {})
        for name, (secret, key) in request.secret_env.items():
            refs[name] = {"name": secret, "key": key}
    return obj
