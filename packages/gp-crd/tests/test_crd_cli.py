"""Spark-operator kernelspecs: ``jupyter k8s-spec install --crd --spark`` (the
gateway_provisioners spelling) and ``jupyter crd-spec install --spark-operator`` write the same
spec, naming ``spark-operator-provisioner``, whose entry point gp-crd installs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gp_crd.cli import main
from gp_k8s.cli import DEFAULT_SPARK_IMAGE
from gp_k8s.cli import main as k8s_spec
from gp_provisioners_core.installer import InstallerError


def install(
    tmp_path: Path, *flags: str, name: str = "crd_t", command: Any = main
) -> dict[str, Any]:
    argv = ["install", "--prefix", str(tmp_path), "--kernel-name", name, "--replace", *flags]
    assert command(argv) == 0
    folder = tmp_path / "share" / "jupyter" / "kernels" / name
    assert (folder / "scripts" / "launch_ipykernel.py").is_file()
    spec: dict[str, Any] = json.loads((folder / "kernel.json").read_text())
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "spark-operator-provisioner"
    return spec


def config_of(spec: dict[str, Any]) -> dict[str, Any]:
    return dict(spec["metadata"]["kernel_provisioner"]["config"])


def test_spark_operator_flag_selects_the_provisioner(tmp_path: Path) -> None:
    spec = install(tmp_path, "--spark-operator")
    assert config_of(spec) == {
        "image_name": DEFAULT_SPARK_IMAGE,
        "executor_image_name": DEFAULT_SPARK_IMAGE,
    }
    assert "{response_address}" in spec["argv"]
    assert spec["metadata"]["kernel_parameters_schema"]["properties"]["KERNEL_IMAGE"]


def test_k8s_spec_crd_spark_writes_the_same_spec(tmp_path: Path) -> None:
    """With gp-crd installed, gp-k8s's installer finds the provisioner's entry point."""
    ours = install(tmp_path / "a", "--spark-operator", "--spark-init-mode", "none")
    theirs = install(
        tmp_path / "b", "--crd", "--spark", "--spark-init-mode", "none", command=k8s_spec
    )
    assert ours == theirs


def test_default_names_are_gateway_provisioners(tmp_path: Path) -> None:
    assert main(["install", "--prefix", str(tmp_path), "--spark-operator"]) == 0
    folder = tmp_path / "share" / "jupyter" / "kernels" / "k8s_python_spark_operator"
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["display_name"] == "Kubernetes Spark Operator"


def test_a_kind_must_be_chosen(tmp_path: Path) -> None:
    with pytest.raises(InstallerError, match="--spark-operator"):
        main(["install", "--prefix", str(tmp_path)])
    with pytest.raises(InstallerError, match="--crd needs the kind of custom resource"):
        k8s_spec(["install", "--prefix", str(tmp_path), "--crd"])


def test_application_template_flag(tmp_path: Path) -> None:
    template = tmp_path / "app.yaml"
    template.write_text("kind: SparkApplication\nspec:\n  sparkVersion: 3.4.1\n")
    config = config_of(
        install(tmp_path, "--spark-operator", "--spark-application-template", str(template))
    )
    assert config["custom_resource_template_file"] == "spark-application-template.yaml"
    copied = (
        tmp_path / "share" / "jupyter" / "kernels" / "crd_t" / "spark-application-template.yaml"
    )
    assert copied.read_text() == template.read_text()
    bad = tmp_path / "pod.yaml"
    bad.write_text("kind: Pod\n")
    missing = tmp_path / "missing.yaml"
    for path, message in ((bad, "must hold one SparkApplication"), (missing, r"missing\.yaml")):
        with pytest.raises(InstallerError, match=message):
            main(
                [
                    "install",
                    "--prefix",
                    str(tmp_path),
                    "--spark-operator",
                    "--spark-application-template",
                    str(path),
                ]
            )


def test_k8s_flags_work_here_too(tmp_path: Path) -> None:
    config = config_of(
        install(
            tmp_path,
            "--spark-operator",
            "--image-name",
            "my/spark:1",
            "--executor-image-name",
            "my/executor:1",
            "--namespace",
            "spark-kernels",
            "--allowed-images",
            "my/spark:1,my/spark:2",
            "--max-cpus",
            "2",
        )
    )
    assert config["image_name"] == "my/spark:1"
    assert config["executor_image_name"] == "my/executor:1"
    assert config["kernel_namespace"] == "spark-kernels"
    assert config["allowed_images"] == ["my/spark:1", "my/spark:2"]
    assert config["max_cpus"] == 2
    with pytest.raises(InstallerError, match="image-bootstrap"):
        install(tmp_path, "--spark-operator", "--tensorflow")


def test_console_script_is_registered() -> None:
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["jupyter-crd-spec"] == "gp_crd.cli:main"
    provisioners = {
        e.name: e.value for e in entry_points(group="jupyter_client.kernel_provisioners")
    }
    assert (
        provisioners["spark-operator-provisioner"] == "gp_crd.provisioner:SparkOperatorProvisioner"
    )
