"""Users' customisations of a Spark-operator kernel: each lands in the SparkApplication as
asked, and each value outside its allow-list or bound is refused in ``pre_launch``, before
anything is created, naming the variable and the kernel.

The values go through the provisioner's public path: gp-k8s's ``resolve_parameters`` under the
provisioner's ``limits()`` (what its ``validate_launch`` does), then ``build_kernel_object``.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from jupyter_client.kernelspec import KernelSpec

from gp_crd.manifests import ResourceRequest, build_spark_application
from gp_crd.provisioner import SparkOperatorProvisioner
from gp_k8s.parameters import resolve_parameters
from gp_provisioners_core.errors import InvalidLaunchParameterError

KERNEL_ID = "5e0c3b1a-7d2f-4c9e-9a41-2b8f0d6e1c77"
NAME = "kernel-app"
ARGV = ["/usr/bin/python3", "/opt/launch_ipykernel.py", "--kernel-id", KERNEL_ID]
AFFINITY = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 10,
                "preference": {
                    "matchExpressions": [{"key": "pool", "operator": "In", "values": ["k"]}]
                },
            }
        ]
    }
}
CONFIG: dict[str, Any] = {
    "image_name": "img:1",
    "kernel_namespace": "ns",
    "max_cpus": 4.0,
    "max_memory": "8Gi",
    "max_gpus": 2,
    "allowed_node_selector_keys": {"pool"},
    "allowed_toleration_keys": {"gpu"},
    "image_pull_secrets": ["base-pull"],
    "allowed_image_pull_secrets": {"regcred"},
    "allowed_priority_classes": {"kernels"},
    "allowed_runtime_classes": {"gvisor"},
    "affinity_presets": {"prefer-pool": AFFINITY},
    "allowed_label_keys": {"team"},
    "allowed_annotation_keys": {"example.com/cost-centre"},
    "allowed_volumes": {
        "scratch": {"emptyDir": {"sizeLimit": "1Gi"}},
        "data": {"persistentVolumeClaim": {"claimName": "data-{username}"}},
    },
}


def provisioner(**config: Any) -> SparkOperatorProvisioner:
    spec = KernelSpec(
        argv=["python3", "launch.py"],
        display_name="spark",
        metadata={"kernel_provisioner": {"provisioner_name": "spark-operator-provisioner"}},
    )
    return SparkOperatorProvisioner(
        kernel_id=KERNEL_ID, kernel_spec=spec, parent=None, **{**CONFIG, **config}
    )


def application(env: dict[str, str], **config: Any) -> dict[str, Any]:
    """The SparkApplication a start request with ``env`` (user carol) gets."""
    p = provisioner(**config)
    parameters = resolve_parameters(env, p.limits(p.image_name), KERNEL_ID, "carol")
    return p.build_kernel_object(NAME, parameters, ARGV, {})


def test_resources_land_in_the_driver() -> None:
    driver = application(
        {
            "KERNEL_CPUS": "1.5",
            "KERNEL_CPUS_LIMIT": "2",
            "KERNEL_MEMORY": "1536Mi",
            "KERNEL_GPUS": "1",
        }
    )["spec"]["driver"]
    assert driver["cores"] == 2  # Spark counts whole cores...
    assert driver["coreRequest"] == "1500m"  # ...and requests exactly what was asked
    assert driver["coreLimit"] == "2000m"
    assert driver["memory"] == "1536m"
    assert driver["gpu"] == {"name": "nvidia.com/gpu", "quantity": 1}


def test_a_memory_limit_is_the_drivers_one_memory_amount() -> None:
    """Spark sets one memory amount (request and limit): the larger of the two asked for."""
    env = {"KERNEL_MEMORY": "1Gi", "KERNEL_MEMORY_LIMIT": "2Gi"}
    assert application(env)["spec"]["driver"]["memory"] == "2048m"
    assert application({"KERNEL_MEMORY_LIMIT": "512Mi"})["spec"]["driver"]["memory"] == "512m"
    gpus = application({"KERNEL_GPUS_LIMIT": "2"}, gpu_resource_name="amd.com/gpu")
    assert gpus["spec"]["driver"]["gpu"] == {"name": "amd.com/gpu", "quantity": 2}


PLACED = [
    ("KERNEL_NODE_SELECTOR", "pool=kernels", "nodeSelector", {"pool": "kernels"}),
    (
        "KERNEL_TOLERATIONS",
        "gpu:NoSchedule",
        "tolerations",
        [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    ),
    ("KERNEL_AFFINITY", "prefer-pool", "affinity", AFFINITY),
    ("KERNEL_PRIORITY_CLASS_NAME", "kernels", "priorityClassName", "kernels"),
    ("KERNEL_RUNTIME_CLASS_NAME", "gvisor", "runtimeClassName", "gvisor"),
]


@pytest.mark.parametrize(("variable", "value", "field", "expected"), PLACED)
def test_placement_lands_in_the_driver_and_the_executors(
    variable: str, value: str, field: str, expected: Any
) -> None:
    spec = application({variable: value})["spec"]
    assert spec["driver"][field] == expected
    assert spec["executor"][field] == expected
    # Without the variable neither pod spec gets the field.
    plain = application({})["spec"]
    assert field not in plain["driver"]
    assert "executor" not in plain


def test_labels_and_annotations_land_in_the_driver_and_the_executors() -> None:
    spec = application(
        {
            "KERNEL_LABELS": "team=data-science",
            "KERNEL_ANNOTATIONS": '{"example.com/cost-centre": "42, north"}',
        }
    )["spec"]
    for pods in (spec["driver"], spec["executor"]):
        assert pods["labels"]["team"] == "data-science"
        assert pods["annotations"]["example.com/cost-centre"] == "42, north"
    # The kernel's own labels stay on the driver, and only there.
    assert spec["driver"]["labels"]["kernel-id"] == KERNEL_ID
    assert "kernel-id" not in spec["executor"]["labels"]


def test_pull_secrets_are_the_applications() -> None:
    spec = application({"KERNEL_IMAGE_PULL_SECRETS": "regcred"})["spec"]
    assert spec["imagePullSecrets"] == ["base-pull", "regcred"]  # names, as v1beta2 has them
    assert application({})["spec"]["imagePullSecrets"] == ["base-pull"]


def test_volumes_and_the_users_claim_are_mounted_in_the_driver() -> None:
    spec = application(
        {"KERNEL_VOLUMES": "scratch=/scratch,data=/mnt/data:ro"},
        user_volume_claim="home-{username}",
        user_volume_mount_path="/home/jovyan/work",
    )["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["user-volume"] == {
        "name": "user-volume",
        "persistentVolumeClaim": {"claimName": "home-carol"},
    }
    assert volumes["v-scratch"] == {"name": "v-scratch", "emptyDir": {"sizeLimit": "1Gi"}}
    # The user's name enters an allow-listed source as data.
    assert volumes["v-data"]["persistentVolumeClaim"] == {"claimName": "data-carol"}
    mounts = {m["mountPath"]: m for m in spec["driver"]["volumeMounts"]}
    assert mounts == {
        "/home/jovyan/work": {"name": "user-volume", "mountPath": "/home/jovyan/work"},
        "/scratch": {"name": "v-scratch", "mountPath": "/scratch"},
        "/mnt/data": {"name": "v-data", "mountPath": "/mnt/data", "readOnly": True},
    }
    assert "executor" not in spec  # executors mount what the operator's template mounts


def from_template(template: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The builder's SparkApplication from the operator's ``template`` for ``env``."""
    p = provisioner()
    parameters = resolve_parameters(env, p.limits(p.image_name), KERNEL_ID, "carol")
    return build_spark_application(
        ResourceRequest(
            kernel_id=KERNEL_ID,
            name=NAME,
            api_version="sparkoperator.k8s.io/v1beta2",
            kind="SparkApplication",
            parameters=parameters,
            command=ARGV,
            env={},
            template=template,
        )
    )


def test_the_template_keeps_its_own_and_gets_the_users() -> None:
    template = yaml.safe_load(
        "kind: SparkApplication\n"
        "spec:\n"
        "  imagePullSecrets: [operator-pull]\n"
        "  volumes: [{name: conf, configMap: {name: spark-conf}}]\n"
        "  driver:\n"
        "    volumeMounts: [{name: conf, mountPath: /opt/spark/conf}]\n"
        "    labels: {site: a}\n"
        "    nodeSelector: {disk: ssd}\n"
        "  executor: {instances: 2, nodeSelector: {disk: ssd}}\n"
    )
    spec = from_template(
        template,
        {
            "KERNEL_IMAGE_PULL_SECRETS": "regcred",
            "KERNEL_VOLUMES": "scratch=/scratch",
            "KERNEL_LABELS": "team=a",
            "KERNEL_NODE_SELECTOR": "pool=kernels",
        },
    )["spec"]
    assert spec["imagePullSecrets"] == ["operator-pull", "base-pull", "regcred"]
    assert [v["name"] for v in spec["volumes"]] == ["conf", "v-scratch"]
    assert [m["name"] for m in spec["driver"]["volumeMounts"]] == ["conf", "v-scratch"]
    assert spec["driver"]["labels"]["site"] == "a"
    assert spec["driver"]["labels"]["team"] == "a"
    assert spec["driver"]["nodeSelector"] == {"disk": "ssd", "pool": "kernels"}
    assert spec["executor"] == {
        "instances": 2,
        "nodeSelector": {"disk": "ssd", "pool": "kernels"},
        "labels": {"team": "a"},
    }
    assert template["spec"]["imagePullSecrets"] == ["operator-pull"]  # not modified


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"executor": "big"}, "spec.executor"), ({"imagePullSecrets": "x"}, "spec.imagePullSecrets")],
)
def test_a_template_of_the_wrong_shape_is_named(spec: dict[str, Any], field: str) -> None:
    template = {"kind": "SparkApplication", "spec": spec}
    env = {"KERNEL_LABELS": "team=a", "KERNEL_IMAGE_PULL_SECRETS": "regcred"}
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        from_template(template, env)


REFUSED = [
    ("KERNEL_CPUS", "5"),
    ("KERNEL_CPUS_LIMIT", "4.5"),
    ("KERNEL_MEMORY", "9Gi"),
    ("KERNEL_MEMORY_LIMIT", "1Ti"),
    ("KERNEL_GPUS", "3"),
    ("KERNEL_GPUS_LIMIT", "many"),
    ("KERNEL_NODE_SELECTOR", "zone=eu"),
    ("KERNEL_TOLERATIONS", "dedicated:NoSchedule"),
    ("KERNEL_AFFINITY", "everywhere"),
    ("KERNEL_PRIORITY_CLASS_NAME", "system-cluster-critical"),
    ("KERNEL_RUNTIME_CLASS_NAME", "kata"),
    ("KERNEL_LABELS", "kernel-id=forged"),
    ("KERNEL_LABELS", "owner=mallory"),
    ("KERNEL_ANNOTATIONS", "gateway-provisioners/kernel-username=root"),
    ("KERNEL_IMAGE_PULL_SECRETS", "other-secret"),
    ("KERNEL_VOLUMES", "hostroot=/host"),
    ("KERNEL_VOLUMES", "scratch=/a/../etc"),
]


@pytest.mark.parametrize(("variable", "value"), REFUSED)
async def test_refused_in_pre_launch_naming_the_variable(variable: str, value: str) -> None:
    p = provisioner()
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await p.pre_launch(env={"KERNEL_USERNAME": "dave", variable: value})
    message = str(refused.value)
    assert variable in message
    assert KERNEL_ID in message
    assert p.container_name == ""  # no object was named, let alone created
