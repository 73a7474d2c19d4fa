"""``jupyter gp-migrate-specs`` on the Spark-operator spec gateway_provisioners 0.5.0 wrote
(``k8s-spec install --crd --spark``): rewritten to ours with its settings (Spark context mode
included), and its Jinja SparkApplication template, which ours never reads, named with what
replaces it."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from gp_crd.provisioner import SparkOperatorProvisioner
from gp_k8s.cli import DEFAULT_SPARK_IMAGE
from gp_provisioners_core.migrate import BACKUP_PREFIX, migrate_spec

NAME = "k8s_python_spark_operator"
OLD_TEMPLATE = "sparkoperator.k8s.io-v1beta2.yaml.j2"


def gp050_spark_operator_spec(root: Path) -> Path:
    """The folder 0.5.0 writes, in its shape (argv, config, scripts/ with its template)."""
    folder = root / NAME
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "launch_custom_resource.py").write_text("# gateway_provisioners'\n")
    (folder / "scripts" / OLD_TEMPLATE).write_text(
        "kind: SparkApplication\nspec:\n  sparkConf:\n    spark.edited: '{{ kernel_id }}'\n"
    )
    spec = {
        "argv": [
            "python",
            f"{folder}/scripts/launch_custom_resource.py",
            *("--kernel-id", "{kernel_id}", "--port-range", "{port_range}"),
            *("--response-address", "{response_address}", "--public-key", "{public_key}"),
            *("--transport-encryption", "{transport_encryption}"),
            *("--kernel-class-name", "ipykernel.ipkernel.IPythonKernel"),
        ],
        "env": {},
        "display_name": "Kubernetes Spark Operator",
        "language": "python",
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {
                "provisioner_name": "spark-operator-provisioner",
                "config": {
                    "image_name": "elyra/kernel-spark-py:0.5.0",
                    "executor_image_name": "elyra/kernel-spark-py:0.5.0",
                    "launch_timeout": 30,
                },
            },
        },
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    return folder


def test_rewrite_keeps_settings_and_names_the_unread_template(tmp_path: Path) -> None:
    folder = gp050_spark_operator_spec(tmp_path)
    said = migrate_spec(folder)
    assert f"{NAME}: rewritten" in said
    assert f"scripts/{OLD_TEMPLATE} is not read by ours" in said
    assert "custom_resource_template_file" in said
    assert "--spark-application-template" in said
    (backup,) = folder.glob(f"{BACKUP_PREFIX}*")
    assert (backup / "scripts" / OLD_TEMPLATE).is_file()
    spec = json.loads((folder / "kernel.json").read_text())
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "spark-operator-provisioner"
    assert provisioner["config"] == {
        "image_name": DEFAULT_SPARK_IMAGE,
        "executor_image_name": DEFAULT_SPARK_IMAGE,
        "launch_timeout": 30,
    }
    argv = spec["argv"]
    assert argv[1] == "/usr/local/bin/launch_ipykernel.py"  # in the image, not on the server
    # 0.5.0's argv names no mode and its launch_custom_resource.py then passed "none" on
    assert argv[argv.index("--spark-context-initialization-mode") + 1] == "none"


def test_a_mode_the_old_argv_names_is_kept(tmp_path: Path) -> None:
    folder = gp050_spark_operator_spec(tmp_path)
    spec = json.loads((folder / "kernel.json").read_text())
    spec["argv"] += ["--spark-context-initialization-mode", "eager"]
    (folder / "kernel.json").write_text(json.dumps(spec))
    migrate_spec(folder)
    argv = json.loads((folder / "kernel.json").read_text())["argv"]
    assert argv[argv.index("--spark-context-initialization-mode") + 1] == "eager"


def test_following_the_note_gives_the_provisioner_the_settings(tmp_path: Path) -> None:
    """What the note says to do: a SparkApplication manifest in the spec folder, named in the
    config as custom_resource_template_file, is the template the provisioner reads."""
    folder = gp050_spark_operator_spec(tmp_path)
    migrate_spec(folder)
    (folder / "spark-app.yaml").write_text(
        "apiVersion: sparkoperator.k8s.io/v1beta2\nkind: SparkApplication\n"
        "spec:\n  sparkConf:\n    spark.edited: 'yes'\n"
    )
    spec = json.loads((folder / "kernel.json").read_text())
    spec["metadata"]["kernel_provisioner"]["config"]["custom_resource_template_file"] = (
        "spark-app.yaml"
    )
    (folder / "kernel.json").write_text(json.dumps(spec))
    kernel_spec = KernelSpecManager(kernel_dirs=[str(tmp_path)]).get_kernel_spec(NAME)
    config = kernel_spec.metadata["kernel_provisioner"]["config"]
    p = SparkOperatorProvisioner(kernel_id="k", kernel_spec=kernel_spec, parent=None, **config)
    template = p.load_template(p.custom_resource_template_file, "SparkApplication", "template")
    assert template is not None
    assert template["spec"]["sparkConf"] == {"spark.edited": "yes"}
