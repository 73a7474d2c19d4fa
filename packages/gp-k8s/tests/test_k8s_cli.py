"""``jupyter k8s-spec install``: each flag lands in kernel.json; ``schema`` prints the rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gp_k8s import cli
from gp_k8s.cli import (
    DEFAULT_IMAGE,
    DEFAULT_R_IMAGE,
    DEFAULT_SPARK_IMAGE,
    IMAGE_LAUNCHER,
    main,
)
from gp_provisioners_core.installer import InstallerError
from gp_provisioners_core.testing import isolated_jupyter_paths


def install(
    tmp_path: Path,
    *flags: str,
    name: str = "k8s_t",
    provisioner: str = "kubernetes-provisioner",
) -> dict[str, Any]:
    argv = ["install", "--prefix", str(tmp_path), *flags]
    if name:
        argv += ["--kernel-name", name]
    assert main(argv) == 0
    folder = tmp_path / "share" / "jupyter" / "kernels" / (name or cli.SPARK_OPERATOR_KERNEL_NAME)
    assert (folder / "scripts" / "launch_ipykernel.py").is_file()
    spec: dict[str, Any] = json.loads((folder / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == provisioner
    return spec


def config_of(spec: dict[str, Any]) -> dict[str, Any]:
    return dict(spec["metadata"]["kernel_provisioner"]["config"])


def test_defaults(tmp_path: Path) -> None:
    spec = install(tmp_path)
    assert config_of(spec) == {"image_name": DEFAULT_IMAGE}
    assert spec["display_name"] == "Kubernetes Python"
    assert spec["argv"][:2] == ["python3", IMAGE_LAUNCHER]
    assert "{response_address}" in spec["argv"]
    assert "{public_key}" in spec["argv"]
    schema = spec["metadata"]["kernel_parameters_schema"]
    assert schema["properties"]["KERNEL_IMAGE"]["enum"] == [DEFAULT_IMAGE]


def test_image_flags(tmp_path: Path) -> None:
    assert config_of(install(tmp_path, "--image-name", "my/img:1"))["image_name"] == "my/img:1"
    spark = config_of(install(tmp_path, "--spark", "--replace"))
    assert spark["image_name"] == DEFAULT_SPARK_IMAGE
    assert spark["executor_image_name"] == DEFAULT_SPARK_IMAGE
    executor = config_of(install(tmp_path, "--executor-image-name", "ex:2", "--replace"))
    assert executor["executor_image_name"] == "ex:2"


def test_tensorflow_is_refused_with_the_way_to_bring_an_image(tmp_path: Path) -> None:
    """gateway_provisioners' --tensorflow named an image nobody builds any more: the flag is
    refused before anything is written, naming image-bootstrap and --image-name."""
    with pytest.raises(InstallerError) as refused:
        install(tmp_path, "--tensorflow", name="k8s_tf")
    message = str(refused.value)
    assert "jupyter image-bootstrap install" in message
    assert "--image-name" in message
    assert not (tmp_path / "share" / "jupyter" / "kernels" / "k8s_tf").exists()


def test_default_images_are_versioned_and_follow_the_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never :latest (a node must keep using the image it holds); GP_IMAGE_PREFIX moves every
    default to a mirror."""
    from gp_provisioners_core import __version__

    assert DEFAULT_IMAGE == f"ghcr.io/gateway-provisioners/kernel-py:{__version__}"
    monkeypatch.setenv("GP_IMAGE_PREFIX", "registry.example:5000/mirror/")
    spec = install(tmp_path, "--spark", name="k8s_mirror")
    assert config_of(spec)["image_name"] == (
        f"registry.example:5000/mirror/kernel-spark-py:{__version__}"
    )


def test_r_kernels_default_to_the_r_image(tmp_path: Path) -> None:
    """docker-images/build.py --image r builds the R image; the R kernel runs through the
    Python launcher in it."""
    spec = install(tmp_path, "--language", "R", name="k8s_r")
    assert config_of(spec)["image_name"] == DEFAULT_R_IMAGE
    assert DEFAULT_R_IMAGE.rsplit(":", 1)[0].endswith("/kernel-r")
    assert spec["language"] == "R"
    assert spec["argv"][spec["argv"].index("--kernel-language") + 1] == "R"
    mine = install(tmp_path, "--language", "R", "--image-name", "my/r:1", name="k8s_r2")
    assert config_of(mine)["image_name"] == "my/r:1"


def test_every_k8s_flag(tmp_path: Path) -> None:
    template = tmp_path / "pod.yaml"
    template.write_text("apiVersion: v1\nkind: Pod\nspec:\n  priorityClassName: kernels\n")
    spec = install(
        tmp_path,
        "--namespace",
        "kernels",
        "--allowed-namespaces",
        "team-a, team-b",
        "--service-account",
        "kernel-sa",
        "--allowed-service-accounts",
        "reader",
        "--allowed-images",
        "img:2,img:3",
        "--pod-template",
        str(template),
        "--max-cpus",
        "8",
        "--max-memory",
        "32Gi",
        "--max-gpus",
        "2",
        "--kernel-uid",
        "1000",
        "--kernel-gid",
        "100",
        "--image-launcher",
        "/opt/launch.py",
        "--python",
        "/usr/bin/python3",
    )
    assert config_of(spec) == {
        "image_name": DEFAULT_IMAGE,
        "kernel_namespace": "kernels",
        "allowed_namespaces": ["team-a", "team-b"],
        "default_kernel_service_account_name": "kernel-sa",
        "allowed_service_accounts": ["reader"],
        "allowed_images": ["img:2", "img:3"],
        "pod_template_file": "pod-template.yaml",  # copied into the spec folder
        "max_cpus": 8.0,
        "max_memory": "32Gi",
        "max_gpus": 2,
        "kernel_uid": 1000,
        "kernel_gid": 100,
    }
    assert spec["argv"][:2] == ["/usr/bin/python3", "/opt/launch.py"]
    folder = tmp_path / "share" / "jupyter" / "kernels" / "k8s_t"
    assert (folder / "pod-template.yaml").read_text() == template.read_text()
    schema = spec["metadata"]["kernel_parameters_schema"]["properties"]
    assert schema["KERNEL_NAMESPACE"]["enum"] == ["kernels", "team-a", "team-b"]
    assert "at most 8" in schema["KERNEL_CPUS"]["description"]


def test_namespace_per_kernel(tmp_path: Path) -> None:
    spec = install(tmp_path, "--create-kernel-namespace")
    assert config_of(spec)["create_kernel_namespace"] is True
    assert "KERNEL_NAMESPACE" not in spec["metadata"]["kernel_parameters_schema"]["properties"]


def test_common_flags(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--display-name",
        "K8s!",
        "--authorized-users",
        "bob,alice",
        "--unauthorized-users",
        "root",
        "--port-range",
        "40000..41000",
        "--launch-timeout",
        "90",
        "--ipykernel-subclass-name",
        "my.Kernel",
        "--spark",
        "--spark-home",
        "/spark",
        "--spark-master",
        "k8s://x",
        "--spark-init-mode",
        "eager",
        "--extra-spark-opts",
        "--conf a=b",
    )
    config = config_of(spec)
    assert config["authorized_users"] == ["alice", "bob"]
    assert config["unauthorized_users"] == ["root"]
    assert config["port_range"] == "40000..41000"
    assert config["launch_timeout"] == 90
    assert spec["display_name"] == "K8s!"
    assert spec["argv"][-2:] == ["--kernel-class-name", "my.Kernel"]
    assert "eager" in spec["argv"]
    assert spec["env"] == {
        "SPARK_HOME": "/spark",
        "SPARK_OPTS": "--conf a=b",
        "SPARK_MASTER": "k8s://x",
    }


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--namespace", "Bad_NS"], "--namespace 'Bad_NS'"),
        (["--service-account", "a b"], "--service-account 'a b'"),
        (["--max-memory", "lots"], "--max-memory"),
        (["--max-cpus", "-1"], "--max-cpus -1"),
        (["--max-gpus", "-2"], "--max-gpus -2"),
        (["--kernel-uid", "0"], "--kernel-uid 0"),
        (["--kernel-gid", "0"], "--kernel-gid 0"),
        (["--pod-template", "/nonexistent.yaml"], "--pod-template /nonexistent.yaml"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, flags: list[str], expected: str) -> None:
    with pytest.raises(InstallerError) as refused:
        main(["install", "--prefix", str(tmp_path), *flags])
    assert expected in str(refused.value)


def test_template_must_be_a_pod(tmp_path: Path) -> None:
    template = tmp_path / "svc.yaml"
    template.write_text("kind: Service\n")
    with pytest.raises(InstallerError, match="one Pod manifest"):
        main(["install", "--prefix", str(tmp_path), "--pod-template", str(template)])


def test_schema_command_and_console_script(tmp_path: Path) -> None:
    with isolated_jupyter_paths(tmp_path) as prefix:
        install(prefix, "--max-cpus", "2", "--allowed-images", "x:1", name="k8s_schema")
        env = dict(os.environ)
        completed = subprocess.run(
            [sys.executable, "-m", "gp_k8s.cli", "schema", "--kernel-name", "k8s_schema"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    schema = json.loads(completed.stdout)
    assert schema["properties"]["KERNEL_IMAGE"]["enum"] == [DEFAULT_IMAGE, "x:1"]
    assert "at most 2" in schema["properties"]["KERNEL_CPUS"]["description"]


# -- --crd --spark: the Spark operator (gateway_provisioners' spelling) --------------------------


@pytest.fixture
def gp_crd_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """This package's tests run without gp-crd; stand in for its entry point's presence (the
    lookup itself is tested below, and gp-crd's tests install with it for real)."""
    monkeypatch.setattr(cli, "provisioner_installed", lambda name: True)


@pytest.mark.usefixtures("gp_crd_installed")
def test_crd_spark_selects_the_spark_operator(tmp_path: Path) -> None:
    template = tmp_path / "app.yaml"
    template.write_text("kind: SparkApplication\nspec:\n  sparkVersion: 3.4.1\n")
    spec = install(
        tmp_path,
        "--crd",
        "--spark",
        "--spark-application-template",
        str(template),
        name="",
        provisioner="spark-operator-provisioner",
    )
    assert spec["display_name"] == "Kubernetes Spark Operator"
    assert spec["language"] == "python"
    config = config_of(spec)
    assert config["image_name"] == DEFAULT_SPARK_IMAGE
    assert config["executor_image_name"] == DEFAULT_SPARK_IMAGE
    assert config["custom_resource_template_file"] == "spark-application-template.yaml"
    folder = tmp_path / "share" / "jupyter" / "kernels" / cli.SPARK_OPERATOR_KERNEL_NAME
    assert (folder / "spark-application-template.yaml").read_text() == template.read_text()
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == "lazy"
    assert spec["env"]["SPARK_HOME"] == "/opt/spark"
    assert spec["metadata"]["kernel_parameters_schema"]["properties"]["KERNEL_IMAGE"]


@pytest.mark.usefixtures("gp_crd_installed")
def test_crd_spark_keeps_chosen_names_and_images(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--crd",
        "--spark",
        "--display-name",
        "Spark on k8s",
        "--image-name",
        "my/driver:1",
        "--executor-image-name",
        "my/executor:1",
        "--spark-init-mode",
        "none",
        name="my_spark",
        provisioner="spark-operator-provisioner",
    )
    assert spec["display_name"] == "Spark on k8s"
    config = config_of(spec)
    assert (config["image_name"], config["executor_image_name"]) == ("my/driver:1", "my/executor:1")
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == "none"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--crd"], "--crd needs the kind of custom resource: add --spark"),
        (["--crd", "--spark", "--language", "R"], "--crd --spark with --language R"),
        (["--spark-application-template", "app.yaml"], "applies with --crd --spark only"),
        (
            ["--crd", "--spark", "--spark-application-template", "/nonexistent/app.yaml"],
            "--spark-application-template /nonexistent/app.yaml",
        ),
    ],
)
@pytest.mark.usefixtures("gp_crd_installed")
def test_bad_crd_flags_are_named(tmp_path: Path, flags: list[str], expected: str) -> None:
    with pytest.raises(InstallerError) as refused:
        main(["install", "--prefix", str(tmp_path), *flags])
    assert expected in str(refused.value)
    assert not (tmp_path / "share").exists()  # nothing was installed


@pytest.mark.usefixtures("gp_crd_installed")
def test_application_template_must_be_a_spark_application(tmp_path: Path) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text("kind: Pod\n")
    with pytest.raises(InstallerError, match="must hold one SparkApplication manifest"):
        main(
            [
                "install",
                "--prefix",
                str(tmp_path),
                "--crd",
                "--spark",
                "--spark-application-template",
                str(pod),
            ]
        )


def test_crd_spark_without_gp_crd_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "provisioner_installed", lambda name: False)
    with pytest.raises(InstallerError, match="pip install gp-crd"):
        main(["install", "--prefix", str(tmp_path), "--crd", "--spark"])


def test_provisioner_lookup_reads_the_entry_points() -> None:
    assert cli.provisioner_installed("kubernetes-provisioner")
    assert not cli.provisioner_installed("no-such-provisioner")


def test_kubeconfig_and_context_per_spec(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "other-cluster.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    config = config_of(install(tmp_path, "--kubeconfig", str(kubeconfig), "--kube-context", "east"))
    assert config["kubeconfig"] == str(kubeconfig.resolve())
    assert config["kube_context"] == "east"
    assert "kubeconfig" not in config_of(install(tmp_path, name="k8s_default"))


def test_missing_kubeconfig_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstallerError, match=r"--kubeconfig .*no such file"):
        main(["install", "--prefix", str(tmp_path), "--kubeconfig", str(tmp_path / "nope")])


def test_migrating_a_tensorflow_spec_stops_with_the_way_to_bring_an_image(tmp_path: Path) -> None:
    """A gateway_provisioners spec on elyra/kernel-tf-py has no image of ours to move to: the
    migration refuses it (instead of silently giving it the plain Python image)."""
    from gp_provisioners_core.migrate import MigrateError, migrate_spec

    folder = tmp_path / "k8s_tf"
    folder.mkdir()
    spec = {
        "argv": ["python", f"{folder}/scripts/launch_kubernetes.py", "--kernel-id", "{kernel_id}"],
        "display_name": "Kubernetes TensorFlow",
        "language": "python",
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": "kubernetes-provisioner",
                "config": {"image_name": "elyra/kernel-tf-py:0.5.0"},
            }
        },
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    with pytest.raises(MigrateError, match="image-bootstrap"):
        migrate_spec(folder)
    assert json.loads((folder / "kernel.json").read_text()) == spec


def test_r_with_spark_needs_an_image_of_the_operators(tmp_path: Path) -> None:
    """No Spark-R image is built, so ``--language R --spark`` must not quietly name the plain
    R image (a "with Spark" kernel without Spark): it refuses before writing anything, naming
    --image-name; with it, the spec runs that image."""
    with pytest.raises(InstallerError, match=r"--language R --spark: .*--image-name <your image>"):
        main(["install", "--prefix", str(tmp_path), "--language", "R", "--spark"])
    assert not (tmp_path / "share").exists()
    spec = install(tmp_path, "--language", "R", "--spark", "--image-name", "my/spark-r:3")
    assert config_of(spec)["image_name"] == "my/spark-r:3"
    assert config_of(spec)["executor_image_name"] == "my/spark-r:3"


def old_r_spark_spec(folder: Path, image: str) -> dict[str, Any]:
    """gateway_provisioners 0.5.0's ``k8s-spec install --language R --spark`` spec, on
    ``image``, written into ``folder``."""
    (folder / "bin").mkdir(parents=True)
    # 0.5.0's run.sh: spark-submit of its v1 launcher (PROG_HOME marks it)
    (folder / "bin" / "run.sh").write_text('PROG_HOME="$(cd "`dirname "$0"`"/..; pwd)"\n')
    spec = {
        "argv": [f"{folder}/bin/run.sh", "--kernel-id", "{kernel_id}",
                 "--spark-context-initialization-mode", "lazy"],
        "env": {"SPARK_HOME": "/opt/spark", "SPARK_OPTS": "--master k8s://x"},
        "display_name": "Kubernetes R (with Spark)",
        "language": "R",
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": "kubernetes-provisioner",
                "config": {"image_name": image, "executor_image_name": image},
            }
        },
    }  # fmt: skip
    (folder / "kernel.json").write_text(json.dumps(spec))
    return spec


def test_migrating_a_spark_r_spec_asks_for_an_image_then_uses_it(tmp_path: Path) -> None:
    from gp_provisioners_core.migrate import MigrateError, migrate_spec

    folder = tmp_path / "k8s_r_spark"
    spec = old_r_spark_spec(folder, "elyra/kernel-spark-r:0.5.0")
    with pytest.raises(MigrateError, match="gp-migrate-specs k8s_r_spark --image-name"):
        migrate_spec(folder)
    assert json.loads((folder / "kernel.json").read_text()) == spec  # nothing moved
    said = migrate_spec(folder, image_name="registry.example/spark-r:1")
    assert "replaced by registry.example/spark-r:1 (--image-name)" in said
    new = json.loads((folder / "kernel.json").read_text())
    config = new["metadata"]["kernel_provisioner"]["config"]
    assert config["image_name"] == config["executor_image_name"] == "registry.example/spark-r:1"
    assert new["argv"][-2:] == ["--kernel-language", "R"]
    assert new["env"]["SPARK_HOME"] == "/opt/spark"


def test_migrating_a_spark_r_spec_on_the_users_own_image_keeps_it(tmp_path: Path) -> None:
    from gp_provisioners_core.migrate import migrate_spec

    folder = tmp_path / "k8s_r_spark"
    old_r_spark_spec(folder, "team/spark-r:2024")
    migrate_spec(folder)
    config = json.loads((folder / "kernel.json").read_text())["metadata"]["kernel_provisioner"]
    assert config["config"]["image_name"] == "team/spark-r:2024"
