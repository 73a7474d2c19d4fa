"""``jupyter crd-spec install --spark-operator``: kernelspecs for the Spark operator.

gp-k8s's ``jupyter k8s-spec install`` has no flag that selects the Spark operator, so this
command extends it: every ``k8s-spec`` flag works here too, ``--spark-operator`` selects
``spark-operator-provisioner`` (and the Spark kernel image by default), and
``--spark-application-template`` names the operator's SparkApplication template.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from gp_core.installer import InstallerError
from gp_k8s.cli import DEFAULT_SPARK_IMAGE, K8sSpecInstaller

from .manifests import SPARK_KIND


class CrdSpecInstaller(K8sSpecInstaller):
    command = "jupyter crd-spec"
    provisioner_name = "spark-operator-provisioner"
    default_kernel_name = "spark_operator_python"
    default_display_name = "Spark Operator (Kubernetes) Python"
    description = "Install a kernelspec that runs each kernel as a custom resource."

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_backend_arguments(parser)
        add = parser.add_argument
        add(
            "--spark-operator",
            action="store_true",
            help="each kernel is a SparkApplication of the Spark operator (required)",
        )
        add(
            "--spark-application-template",
            default="",
            help="the operator's SparkApplication template (YAML file)",
        )

    def _image(self, args: argparse.Namespace) -> str:
        if not args.image_name and not args.tensorflow:
            return DEFAULT_SPARK_IMAGE
        return super()._image(args)

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        if not args.spark_operator:
            raise InstallerError(
                "choose the kind of custom resource: --spark-operator (the only one so far)"
            )
        config = super().backend_config(args)
        if args.spark_application_template:
            config["custom_resource_template_file"] = _checked_template(
                args.spark_application_template
            )
        return config


def _checked_template(path_text: str) -> str:
    path = Path(path_text).expanduser().resolve()
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InstallerError(f"--spark-application-template {path_text}: {err}") from None
    if not isinstance(loaded, dict) or loaded.get("kind", SPARK_KIND) != SPARK_KIND:
        raise InstallerError(
            f"--spark-application-template {path_text}: must hold one {SPARK_KIND} manifest"
        )
    return str(path)


def main(argv: list[str] | None = None) -> int:
    return CrdSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
