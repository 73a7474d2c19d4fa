"""``jupyter yarn-spec install``: Spark-on-YARN (cluster mode) kernelspecs for the YARN provisioner.

The installed spec holds a ``kernel.json`` whose argv is ``bin/run.sh`` plus the launcher's
flags (placeholders the provisioner fills at launch), the launcher in ``scripts/``, and the
static ``bin/run.sh``.  Nothing is templated into any file: flags land in kernel.json as data
(the provisioner config and the spec's ``env``), and run.sh reads them from its environment.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from gp_provisioners_core.installer import (
    DEFAULT_KERNEL_CLASS,
    InstallerError,
    KernelSpecInstaller,
    scala_mode,
)

from .endpoints import EndpointConfigError, normalize_endpoint

RUN_SH = "kernelspecs/yarn_spark_python/bin/run.sh"
SCALA_RUN_SH = "kernelspecs/yarn_spark_scala/bin/run.sh"


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")


def run_sh_source(language: str = "python") -> Path:
    """The run.sh shipped with this package for ``language`` (Scala has its own)."""
    return Path(str(files("gp_yarn").joinpath(SCALA_RUN_SH if language == "scala" else RUN_SH)))


class YarnSpecInstaller(KernelSpecInstaller):
    command = "jupyter yarn-spec"
    provisioner_name = "yarn-provisioner"
    # gateway_provisioners 0.5.0's names
    default_names = {
        "python": ("yarn_spark_python", "Spark Python (YARN Cluster)"),
        "R": ("yarn_spark_r", "Spark R (YARN Cluster)"),
        "scala": ("yarn_spark_scala", "Spark Scala (YARN Cluster)"),
    }
    description = (
        "Install a kernelspec that runs kernels as YARN applications (Spark cluster mode)."
    )

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--yarn-endpoint", default="", help="ResourceManager http(s)://host:port")
        add("--alt-yarn-endpoint", default="", help="the other ResourceManager of an HA pair")
        add(
            "--yarn-endpoint-security-enabled",
            nargs="?",
            const=True,
            default=None,
            type=parse_bool,
            help="SPNEGO/Kerberos towards the ResourceManager (needs gp-yarn[kerberos])",
        )
        add(
            "--impersonation-enabled",
            nargs="?",
            const=True,
            default=None,
            type=parse_bool,
            help="submit as KERNEL_USERNAME (spark-submit --proxy-user)",
        )
        # Default by language: lazy for Python, none for R (set in launcher_argv).
        parser.set_defaults(spark_init_mode=None)
        add(
            "--dask",
            action="store_true",
            help="Dask on YARN (gateway_provisioners): not supported by gp-yarn, refused",
        )
        add("--extra-dask-opts", default="", help="with --dask only (refused)")
        add(
            "--python-root",
            default="",
            help="the Python installation that runs the launcher in YARN (uses ROOT/bin/python; "
            "default: --python)",
        )

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        if args.dask or args.extra_dask_opts:
            raise InstallerError(
                "--dask: gp-yarn runs Spark kernels only (Dask-on-YARN kernelspecs of "
                "gateway_provisioners are not supported); drop --dask and --extra-dask-opts"
            )
        config: dict[str, Any] = {}
        for flag, name in (("yarn_endpoint", "yarn_endpoint"), ("alt_yarn_endpoint", "")):
            value = str(getattr(args, flag)).strip()
            if not value:
                continue
            try:
                normalize_endpoint(value)
            except EndpointConfigError as err:
                raise InstallerError(f"--{flag.replace('_', '-')}: {err}") from None
            config[name or flag] = value
        if "alt_yarn_endpoint" in config and "yarn_endpoint" not in config:
            raise InstallerError(
                "--alt-yarn-endpoint needs --yarn-endpoint (the pair is tried in that order)"
            )
        if args.yarn_endpoint_security_enabled is not None:
            config["yarn_endpoint_security_enabled"] = args.yarn_endpoint_security_enabled
        if args.impersonation_enabled is not None:
            config["impersonation_enabled"] = args.impersonation_enabled
        return config

    def backend_env(self, args: argparse.Namespace) -> dict[str, str]:
        if "${" in args.extra_spark_opts or "$(" in args.extra_spark_opts:
            raise InstallerError(
                f"--extra-spark-opts {args.extra_spark_opts!r}: run.sh passes these options as "
                "they are and expands no ${...} or $(...) in them; write the values out"
            )
        if args.spark_master and args.spark_master != "yarn":
            raise InstallerError(
                f"--spark-master {args.spark_master!r}: YARN kernels always use --master yarn"
            )
        python = str(Path(args.python_root) / "bin" / "python") if args.python_root else args.python
        return {
            "SPARK_HOME": args.spark_home,
            "SPARK_OPTS": " ".join(args.extra_spark_opts.split()),
            "PYSPARK_PYTHON": python,
        }

    def scala_launcher(self, args: argparse.Namespace) -> str:
        """Scala kernels have their own run.sh, which submits the Toree launcher jar."""
        return "{resource_dir}/bin/run.sh"

    def launcher_argv(self, args: argparse.Namespace) -> list[str]:
        if args.language == "scala":
            return [self.scala_launcher(args), *self.launcher_flags(args, scala_mode(args))]
        r_kernel = args.language == "R"
        mode = args.spark_init_mode or ("none" if r_kernel else "lazy")
        if r_kernel and mode != "none":
            raise InstallerError(
                f"--spark-init-mode {mode} with --language R: the launcher starts a Spark "
                "context for Python kernels only; use --spark-init-mode none (and SparkR in "
                "the notebook)"
            )
        if r_kernel and args.ipykernel_subclass_name:
            raise InstallerError("--ipykernel-subclass-name applies to --language python only")
        if mode == "none" and args.language == "python":
            print(
                "Note: with --spark-init-mode none no SparkContext starts; Spark's YARN "
                "application master fails after spark.yarn.am.waitTime (100 s) without one.",
                file=sys.stderr,
            )
        argv = ["{resource_dir}/bin/run.sh", *self.launcher_flags(args, mode)]
        if r_kernel:
            argv += ["--kernel-language", "R"]
        else:
            argv += ["--kernel-class-name", args.ipykernel_subclass_name or DEFAULT_KERNEL_CLASS]
        return argv

    def add_resources(self, folder: Path, args: argparse.Namespace) -> None:
        target = folder / "bin" / "run.sh"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_sh_source(args.language), target)
        target.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    return YarnSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
