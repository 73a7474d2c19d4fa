"""The custom-resource builders are pure: user values go in as data, the template is kept."""

from __future__ import annotations

from typing import Any

import pytest

from gp_crd.manifests import (
    ResourceRequest,
    build_custom_object,
    build_spark_application,
    spark_memory,
)
from gp_k8s.parameters import KernelParameters

ARGV = ["/usr/bin/python3", "/opt/launch_ipykernel.py", "--kernel-id", "k1", "--port-range", "0..0"]


def request(**overrides: Any) -> ResourceRequest:
    values: dict[str, Any] = {
        "kernel_id": "k1",
        "name": "kernel-k1-abc",
        "api_version": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "parameters": KernelParameters(
            image="img:1", namespace="ns", service_account="sa", cpus=1.5, memory=1536 * 1024**2
        ),
        "command": ARGV,
        "env": {"KERNEL_USERNAME": "alice\n---\nkind: Secret"},
        "username": "alice",
        "secret_env": {"GP_LAUNCH_SECRET": ("kernel-k1-abc-launch", "launch-secret")},
    }
    values.update(overrides)
    return ResourceRequest(**values)


def test_spark_application_runs_the_launcher_in_the_driver() -> None:
    app = build_spark_application(request())
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert app["kind"] == "SparkApplication"
    assert app["metadata"]["name"] == "kernel-k1-abc"
    assert app["metadata"]["namespace"] == "ns"
    assert app["metadata"]["labels"]["kernel-id"] == "k1"
    spec = app["spec"]
    assert spec["type"] == "Python"
    assert spec["mode"] == "cluster"
    assert spec["image"] == "img:1"
    assert spec["mainApplicationFile"] == "local:///opt/launch_ipykernel.py"
    assert spec["arguments"] == ARGV[2:]
    driver = spec["driver"]
    assert driver["labels"]["kernel-id"] == "k1"
    assert driver["serviceAccount"] == "sa"
    assert driver["cores"] == 2
    assert driver["memory"] == "1536m"
    env = {e["name"]: e for e in driver["env"]}
    assert env["PYSPARK_DRIVER_PYTHON"]["value"] == "/usr/bin/python3"
    # A hostile value stays one inert string.
    assert env["KERNEL_USERNAME"]["value"] == "alice\n---\nkind: Secret"
    assert "GP_LAUNCH_SECRET" not in env
    assert driver["envSecretKeyRefs"]["GP_LAUNCH_SECRET"] == {
        "name": "kernel-k1-abc-launch",
        "key": "launch-secret",
    }


def test_template_is_kept_and_overridden_where_the_kernel_decides() -> None:
    template: dict[str, Any] = {
        "kind": "SparkApplication",
        "metadata": {"name": "x", "uid": "old", "labels": {"team": "a"}},
        "spec": {
            "sparkVersion": "3.4.1",
            "image": "template-image",
            "sparkConf": {"spark.ui.enabled": "false"},
            "driver": {"env": [{"name": "FROM_TEMPLATE", "value": "1"}]},
            "executor": {"instances": 2},
        },
        "status": {"applicationState": {"state": "RUNNING"}},
    }
    app = build_spark_application(request(template=template))
    assert app["metadata"]["labels"]["team"] == "a"
    assert "uid" not in app["metadata"]
    assert "status" not in app
    assert app["spec"]["sparkVersion"] == "3.4.1"
    assert app["spec"]["image"] == "img:1"
    assert app["spec"]["executor"] == {"instances": 2}
    assert app["spec"]["sparkConf"] == {"spark.ui.enabled": "false"}
    names = [e["name"] for e in app["spec"]["driver"]["env"]]
    assert "FROM_TEMPLATE" in names
    assert template["metadata"]["name"] == "x"  # the template itself is not modified


def test_bounded_parameters_reach_the_driver() -> None:
    parameters = KernelParameters(
        image="img:1",
        namespace="ns",
        service_account="sa",
        uid=1000,
        gid=100,
        cpus_limit=2.0,
        node_selector=(("disk", "ssd"),),
        tolerations=(("gpu", "", "NoSchedule"),),
    )
    driver = build_spark_application(request(parameters=parameters))["spec"]["driver"]
    assert driver["securityContext"] == {"runAsUser": 1000, "runAsNonRoot": True, "runAsGroup": 100}
    assert driver["coreLimit"] == "2000m"
    assert driver["nodeSelector"] == {"disk": "ssd"}
    assert driver["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_launcher_argv_must_name_a_script() -> None:
    with pytest.raises(ValueError, match="interpreter and a script"):
        build_spark_application(request(command=["python3"]))


def test_spark_memory() -> None:
    assert spark_memory(1) == "1m"
    assert spark_memory(1024**3) == "1024m"
    assert spark_memory(1024**2 + 1) == "2m"


def test_generic_object_carries_the_kernel_pod() -> None:
    obj = build_custom_object(
        request(api_version="example.org/v1", kind="KernelPod", template={"spec": {"x": 1}})
    )
    assert obj["apiVersion"] == "example.org/v1"
    assert obj["kind"] == "KernelPod"
    assert obj["spec"]["x"] == 1
    pod = obj["spec"]["podTemplate"]
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == "kernel-k1-abc"
    assert pod["metadata"]["labels"]["kernel-id"] == "k1"
    assert pod["spec"]["containers"][0]["command"] == ARGV
    assert pod["spec"]["terminationGracePeriodSeconds"] == 10
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_the_configured_executor_image_is_the_executors() -> None:
    template = {"kind": "SparkApplication", "spec": {"executor": {"instances": 2}}}
    app = build_spark_application(request(template=template, executor_image="ex:2"))
    assert app["spec"]["executor"] == {"instances": 2, "image": "ex:2"}
    assert app["spec"]["image"] == "img:1"
    assert "executor" not in build_spark_application(request())["spec"]
    with pytest.raises(ValueError, match=r"spec\.executor must be a mapping"):
        build_spark_application(
            request(template={"spec": {"executor": "big"}}, executor_image="ex:2")
        )


def test_an_empty_variable_is_set_without_a_value() -> None:
    """EnvVar's value defaults to ""; the apiserver's CRD validation refuses an explicit ""."""
    app = build_spark_application(request(env={"SPARK_OPTS": "", "KERNEL_USERNAME": "alice"}))
    env = {e["name"]: e for e in app["spec"]["driver"]["env"]}
    assert env["SPARK_OPTS"] == {"name": "SPARK_OPTS"}
    assert env["KERNEL_USERNAME"] == {"name": "KERNEL_USERNAME", "value": "alice"}


def test_the_operators_gpu_resource_name_reaches_both_kinds_of_resource() -> None:
    parameters = KernelParameters(image="img:1", namespace="ns", service_account="sa", gpus=2)
    amd = request(parameters=parameters, gpu_resource_name="amd.com/gpu")
    driver = build_spark_application(amd)["spec"]["driver"]
    assert driver["gpu"] == {"name": "amd.com/gpu", "quantity": 2}
    generic = build_custom_object(amd)
    [container] = generic["spec"]["podTemplate"]["spec"]["containers"]
    assert container["resources"]["limits"]["amd.com/gpu"] == "2"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
