"""``jupyter crd-spec install --spark-operator``: kernelspecs for the Spark operator.

The same kernelspec as gp-k8s's ``jupyter k8s-spec install --crd --spark`` (the
gateway_provisioners spelling), under gp-crd's own command: every ``k8s-spec`` flag works here
too, and ``--spark-operator`` names the kind of custom resource.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gp_k8s.cli import SPARK_OPERATOR_DISPLAY_NAME, SPARK_OPERATOR_KERNEL_NAME, K8sSpecInstaller
from gp_provisioners_core.installer import InstallerError


class CrdSpecInstaller(K8sSpecInstaller):
    command = "jupyter crd-spec"
    default_names = {"python": (SPARK_OPERATOR_KERNEL_NAME, SPARK_OPERATOR_DISPLAY_NAME)}
    description = "Install a kernelspec that runs each kernel as a custom resource."

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_backend_arguments(parser)
        parser.add_argument(
            "--spark-operator",
            action="store_true",
            help="each kernel is a SparkApplication of the Spark operator (required; the same "
            "as k8s-spec's --crd --spark)",
        )

    def prepare(self, args: argparse.Namespace) -> None:
        """Require the kind of custom resource, then prepare as ``k8s-spec --crd --spark``.
        Called by ``run`` and by the migrate command."""
        if not args.spark_operator:
            raise InstallerError(
                "choose the kind of custom resource: --spark-operator (the only one so far)"
            )
        args.crd = args.spark = True
        super().prepare(args)

    def migration_flags(self, spec: dict[str, Any]) -> list[str]:
        """A gateway_provisioners spark-operator spec is a SparkApplication spec.  Its argv
        names no Spark context mode, and 0.5.0's server-side launcher then started the driver
        with ``none``: the rewrite keeps ``none`` (no ``spark``/``sc`` made at start, no
        executors requested before the notebook asks).  Called by ``jupyter gp-migrate-specs``."""
        argv = [str(arg) for arg in spec.get("argv") or []]
        if "--spark-context-initialization-mode" in argv:
            return ["--spark-operator"]
        return ["--spark-operator", "--spark-init-mode", "none"]


def main(argv: list[str] | None = None) -> int:
    return CrdSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
