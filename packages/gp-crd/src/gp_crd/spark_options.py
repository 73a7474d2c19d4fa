"""The kernel's resources and its user's customisations, set into a SparkApplication as data.

gp-k8s validates every value before anything is created (its ``validate_launch`` calls
:func:`gp_k8s.parameters.resolve_parameters`, which refuses a value outside its allow-list or
bound naming the variable); this module only places the validated
:class:`~gp_k8s.parameters.KernelParameters` where the Spark operator reads them.  Pure: no
I/O, no cluster.

=============================  =====================================================
``KERNEL_CPUS``                driver ``cores`` (whole cores, rounded up) and
                               ``coreRequest`` (the exact request, millicores)
``KERNEL_CPUS_LIMIT``          driver ``coreLimit``
``KERNEL_MEMORY(_LIMIT)``      driver ``memory``: Spark gives the driver one amount (request
                               and limit, plus its overhead), the larger of the two
``KERNEL_GPUS(_LIMIT)``        driver ``gpu`` (``gpu_resource_name``, the larger of the two)
``KERNEL_NODE_SELECTOR``       ``nodeSelector`` of the driver and the executors
``KERNEL_TOLERATIONS``         ``tolerations`` of the driver and the executors
``KERNEL_AFFINITY``            ``affinity`` of the driver and the executors
``KERNEL_PRIORITY_CLASS_NAME`` ``priorityClassName`` of the driver and the executors
``KERNEL_RUNTIME_CLASS_NAME``  ``runtimeClassName`` of the driver and the executors
``KERNEL_LABELS``              ``labels`` of the driver and the executors
``KERNEL_ANNOTATIONS``         ``annotations`` of the driver and the executors
``KERNEL_IMAGE_PULL_SECRETS``  ``spec.imagePullSecrets`` (names; the whole application)
``KERNEL_VOLUMES``, the        ``spec.volumes``, mounted in the driver
user's claim                   (``driver.volumeMounts``); executors mount what the template
                               mounts
=============================  =====================================================

The executors get the placement and identity of the kernel (where its pods run, who pays for
them), not its resources or volumes: their size is the operator's (``spec.executor`` of the
template), and a user's ReadWriteOnce claim cannot follow executors to other nodes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

from gp_k8s.manifests import set_placement
from gp_k8s.parameters import KernelParameters, format_cpus
from gp_k8s.pod_options import PodOptions


def spark_memory(size: int) -> str:
    """Bytes as Spark's memory string (whole MiB, rounded up): 1536 MiB -> ``"1536m"``."""
    return f"{max(1, math.ceil(size / 1024**2))}m"


def set_driver_resources(
    driver: dict[str, Any], p: KernelParameters, gpu_resource_name: str
) -> None:
    """Set the kernel's cpus, memory and GPUs into the Spark ``driver`` (see the module
    docstring); keep the template's values the request does not set.

    The one place gp-crd reads the kernel's resources: when their bounds move out of gp-k8s,
    re-point this function.  Called by :func:`gp_crd.manifests.build_spark_application`."""
    if p.cpus:
        driver["cores"] = max(1, math.ceil(p.cpus))
        driver["coreRequest"] = format_cpus(p.cpus)
    else:
        driver["cores"] = driver.get("cores", 1)
    if p.cpus_limit:
        driver["coreLimit"] = format_cpus(p.cpus_limit)
    memory = max(p.memory, p.memory_limit)
    if memory:
        driver["memory"] = spark_memory(memory)
    gpus = max(p.gpus, p.gpus_limit)
    if gpus:
        driver["gpu"] = {"name": gpu_resource_name, "quantity": gpus}


def _executor(spec: dict[str, Any]) -> dict[str, Any]:
    executor = spec.setdefault("executor", {})
    if not isinstance(executor, dict):
        raise ValueError("the SparkApplication template's spec.executor must be a mapping")
    return executor


def _places_executors(p: KernelParameters) -> bool:
    o = p.options
    return bool(
        p.node_selector
        or p.tolerations
        or o.affinity is not None
        or o.priority_class
        or o.runtime_class
        or o.labels
        or o.annotations
    )


def _set_pod_choices(target: dict[str, Any], p: KernelParameters) -> None:
    """Placement and identity of one Spark pod spec (the driver's or the executors')."""
    o: PodOptions = p.options
    set_placement(target, p)
    if o.affinity is not None:
        target["affinity"] = copy.deepcopy(dict(o.affinity))
    if o.priority_class:
        target["priorityClassName"] = o.priority_class
    if o.runtime_class:
        target["runtimeClassName"] = o.runtime_class
    for key, value in o.labels:
        target.setdefault("labels", {})[key] = value
    for key, value in o.annotations:
        target.setdefault("annotations", {})[key] = value


def _set_volumes(spec: dict[str, Any], driver: dict[str, Any], o: PodOptions) -> None:
    for volume in o.volumes:
        source = copy.deepcopy(dict(volume.source))
        spec.setdefault("volumes", []).append({"name": volume.name, **source})
        mount: dict[str, Any] = {"name": volume.name, "mountPath": volume.mount_path}
        if volume.read_only:
            mount["readOnly"] = True
        driver.setdefault("volumeMounts", []).append(mount)


def _set_pull_secrets(spec: dict[str, Any], names: Sequence[str]) -> None:
    if not names:
        return
    secrets = spec.setdefault("imagePullSecrets", [])
    if not isinstance(secrets, list):
        raise ValueError("the SparkApplication template's spec.imagePullSecrets must be a list")
    secrets.extend(name for name in names if name not in secrets)


def set_spark_choices(spec: dict[str, Any], driver: dict[str, Any], p: KernelParameters) -> None:
    """Set the kernel's placement and its user's customisations (see the module docstring)
    into a SparkApplication's ``spec`` and its ``driver`` (dicts from the operator's
    template, which keeps what the request does not set); the executors' spec is touched only
    when there is something to set.  A template whose ``executor`` or ``imagePullSecrets``
    has the wrong type raises ``ValueError``.  Called by
    :func:`gp_crd.manifests.build_spark_application`."""
    _set_pod_choices(driver, p)
    if _places_executors(p):
        _set_pod_choices(_executor(spec), p)
    _set_pull_secrets(spec, p.options.image_pull_secrets)
    _set_volumes(spec, driver, p.options)


__all__ = ["set_driver_resources", "set_spark_choices", "spark_memory"]
