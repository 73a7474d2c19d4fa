"""``jupyter k8s-spec install``: kernelspecs for the Kubernetes provisioner.

The flags of gateway_provisioners' ``jupyter k8s-spec install`` (``--image-name``,
``--executor-image-name``, ``--crd`` and the common ones) plus the
operator's limits (``--tensorflow`` is refused: no TensorFlow image is built; the message
says how to bring one).  The spec's argv is the launcher's command line *inside the kernel image*
(``--python`` and ``--image-launcher``); the provisioner makes it the pod's container command.

``--crd --spark`` (as in gateway_provisioners) selects ``spark-operator-provisioner``: each
kernel is a SparkApplication of the Spark operator.  That provisioner comes with gp-crd, which
this package does not depend on; the installer refuses the flags when gp-crd is not installed
(jupyter_client would otherwise hide the spec).  ``--spark-application-template`` names the
operator's SparkApplication template.
``jupyter k8s-spec schema --kernel-name NAME`` prints the JSON Schema of the ``KERNEL_*``
parameters that kernelspec accepts; ``install`` also stores it in the kernel.json metadata.
``--pod-template FILE`` (and ``--spark-application-template FILE``) are copied into the installed
kernelspec folder and named relatively, so the spec keeps working when FILE moves or the spec is
copied to another server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from gp_provisioners_core.images import DEFAULT_PREFIX, default_image
from gp_provisioners_core.installer import InstallerError, KernelSpecInstaller
from gp_provisioners_core.installer_app import SubcommandApp
from gp_provisioners_core.resources import parse_memory

from .parameters import is_dns_label, parameter_schema
from .settings import KubernetesSettings

# The images docker-images/build.py builds and the release publishes, named by the core's
# gp_provisioners_core.images (registry prefix from GP_IMAGE_PREFIX at install time; these
# constants show the default prefix).  Kind of image per language, and per language with --spark.
IMAGE_KINDS = {"python": "python", "R": "r", "scala": "scala"}
# No Spark-R image is built: SparkR ships only in Spark's own distribution (not in the pyspark
# wheel, not on CRAN), so an R spec with --spark must name the operator's image.
SPARK_IMAGE_KINDS = {"python": "spark-python", "scala": "scala"}
DEFAULT_IMAGE = default_image("python", DEFAULT_PREFIX)
DEFAULT_R_IMAGE = default_image("r", DEFAULT_PREFIX)
DEFAULT_SPARK_IMAGE = default_image("spark-python", DEFAULT_PREFIX)
DEFAULT_SCALA_IMAGE = default_image("scala", DEFAULT_PREFIX)
TENSORFLOW_GONE = (
    "--tensorflow: no TensorFlow kernel image is built or published (gateway_provisioners' "
    "elyra/kernel-tf-py is gone). Build your own FROM a TensorFlow image with "
    "'pip install gp-provisioners-core ipykernel && jupyter image-bootstrap install "
    "--languages=Python' in its Dockerfile, then install this spec with "
    "--image-name <your image> instead of --tensorflow (docs/operators/images.md)"
)
SPARK_R_NEEDS_IMAGE = (
    "--language R --spark: no Spark-R kernel image is built or published (SparkR ships only "
    "in Spark's own distribution; gateway_provisioners' elyra/kernel-spark-r is gone). Build "
    "your own FROM an image with Spark and SparkR, with 'pip install gp-provisioners-core && "
    "jupyter image-bootstrap install --languages=R' in its Dockerfile, then install this spec "
    "with --image-name <your image> (docs/operators/images.md)"
)
IMAGE_LAUNCHER = "/usr/local/bin/launch_ipykernel.py"  # where docker-images/ puts it
IMAGE_TOREE_LAUNCHER = "/usr/local/bin/run_toree.sh"
# The operator's templates, copied into the installed kernelspec folder and named relatively
# (the provisioner reads a relative template path from the kernelspec's folder).
POD_TEMPLATE_NAME = "pod-template.yaml"
APPLICATION_TEMPLATE_NAME = "spark-application-template.yaml"
SCHEMA_METADATA_KEY = "kernel_parameters_schema"
PROVISIONER_GROUP = "jupyter_client.kernel_provisioners"

SPARK_OPERATOR_PROVISIONER = "spark-operator-provisioner"
SPARK_OPERATOR_KERNEL_NAME = "k8s_python_spark_operator"
SPARK_OPERATOR_DISPLAY_NAME = "Kubernetes Spark Operator"
SPARK_APPLICATION_KIND = "SparkApplication"


def _names(text: str) -> list[str]:
    return sorted({item.strip() for item in text.split(",") if item.strip()})


class K8sSpecInstaller(KernelSpecInstaller):
    command = "jupyter k8s-spec"
    provisioner_name = "kubernetes-provisioner"
    # gateway_provisioners 0.5.0's names; --spark adds "_spark" / " (with Spark)"
    default_names = {
        "python": ("k8s_python", "Kubernetes Python"),
        "R": ("k8s_r", "Kubernetes R"),
        "scala": ("k8s_scala", "Kubernetes Scala"),
    }
    spark_renames = True
    description = "Install a kernelspec that runs each kernel in a Kubernetes pod."
    list_options = KernelSpecInstaller.list_options | {
        "allowed_namespaces",
        "allowed_service_accounts",
        "allowed_images",
    }

    def subcommand_apps(self) -> dict[str, Any]:
        """``schema``: print the ``KERNEL_*`` parameter schema of an installed kernelspec."""
        return {"schema": (K8sSchemaApp, K8sSchemaApp.description)}

    def names_for(self, args: argparse.Namespace) -> tuple[str, str]:
        """A ``--crd --spark`` spec's default names are the Spark operator's."""
        if args.crd:
            return SPARK_OPERATOR_KERNEL_NAME, SPARK_OPERATOR_DISPLAY_NAME
        return super().names_for(args)

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        parser.set_defaults(python="python3")
        add(
            "--image-name",
            default="",
            help=f"the kernel image ({DEFAULT_IMAGE}; R: {DEFAULT_R_IMAGE})",
        )
        add("--executor-image-name", default="", help="Spark executors' image (with --spark)")
        add(
            "--tensorflow",
            action="store_true",
            help="refused: no TensorFlow image is built; give your own with --image-name",
        )
        add("--image-launcher", default=IMAGE_LAUNCHER, help="the launcher's path in the image")
        add("--namespace", default="", help="namespace of kernel pods (GP_NAMESPACE)")
        add(
            "--kubeconfig",
            default="",
            help="kubeconfig of the cluster this spec's kernels run in (default: the server's)",
        )
        add("--kube-context", default="", help="context of --kubeconfig to use")
        add("--allowed-namespaces", default="", help="KERNEL_NAMESPACE choices, comma-separated")
        add(
            "--create-kernel-namespace",
            action="store_true",
            help="one namespace per kernel, deleted with it",
        )
        add("--service-account", default="", help="the kernels' service account")
        add("--allowed-service-accounts", default="", help="KERNEL_SERVICE_ACCOUNT_NAME choices")
        add("--allowed-images", default="", help="KERNEL_IMAGE choices, comma-separated")
        add("--pod-template", default="", help="the operator's pod template (YAML file)")
        add("--max-cpus", type=float, default=None, help="largest KERNEL_CPUS")
        add("--max-memory", default="", help="largest KERNEL_MEMORY (e.g. 8Gi)")
        add("--max-gpus", type=int, default=None, help="largest KERNEL_GPUS")
        add("--kernel-uid", type=int, default=None, help="runAsUser without KERNEL_UID")
        add("--kernel-gid", type=int, default=None, help="runAsGroup without KERNEL_GID")
        add(
            "--crd",
            action="store_true",
            help="each kernel is a custom resource; with --spark, a SparkApplication of the "
            f"Spark operator ({SPARK_OPERATOR_PROVISIONER}, from gp-crd)",
        )
        add(
            "--spark-application-template",
            default="",
            help="the operator's SparkApplication template (YAML file; with --crd --spark)",
        )

    def _image(self, args: argparse.Namespace) -> str:
        # gateway_provisioners read GP_IMAGE_NAME when --image-name was not given
        if args.image_name or os.environ.get("GP_IMAGE_NAME"):
            return str(args.image_name or os.environ["GP_IMAGE_NAME"])
        kinds = SPARK_IMAGE_KINDS if args.spark else IMAGE_KINDS
        if args.language not in kinds:
            raise InstallerError(SPARK_R_NEEDS_IMAGE)
        return default_image(kinds[args.language])

    def install(self, args: argparse.Namespace) -> str:
        """Check the custom-resource flags, then install (see the base class)."""
        if args.tensorflow:
            raise InstallerError(TENSORFLOW_GONE)
        if args.crd:
            select_spark_operator(args)
        elif args.spark_application_template:
            raise InstallerError("--spark-application-template applies with --crd --spark only")
        return super().install(args)

    def provisioner_for(self, args: argparse.Namespace) -> str:
        """The provisioner the spec names: the Spark operator's with ``--crd --spark``."""
        return SPARK_OPERATOR_PROVISIONER if args.crd else self.provisioner_name

    def launcher_argv(self, args: argparse.Namespace) -> list[str]:
        argv = super().launcher_argv(args)
        if args.language != "scala":
            argv[1] = args.image_launcher
        return argv

    def scala_launcher(self, args: argparse.Namespace) -> str:
        return IMAGE_TOREE_LAUNCHER

    def add_resources(self, folder: Path, args: argparse.Namespace) -> None:
        """Copy the operator's templates into the staged spec (``backend_config`` named them
        relatively)."""
        if args.pod_template:
            shutil.copyfile(Path(args.pod_template).expanduser(), folder / POD_TEMPLATE_NAME)
        if args.crd and args.spark_application_template:
            source = Path(args.spark_application_template).expanduser()
            shutil.copyfile(source, folder / APPLICATION_TEMPLATE_NAME)

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        config: dict[str, Any] = {"image_name": self._image(args)}
        executor = args.executor_image_name or os.environ.get("GP_EXECUTOR_IMAGE_NAME", "")
        if executor or args.spark:
            config["executor_image_name"] = executor or config["image_name"]
        for flag, value in (
            ("--namespace", args.namespace),
            ("--service-account", args.service_account),
        ):
            if value and not is_dns_label(value):
                raise InstallerError(f"{flag} {value!r} is not a valid Kubernetes name")
        if args.namespace:
            config["kernel_namespace"] = args.namespace
        if args.kubeconfig:
            kubeconfig = Path(args.kubeconfig).expanduser().resolve()
            if not kubeconfig.is_file():
                raise InstallerError(f"--kubeconfig {args.kubeconfig}: no such file")
            config["kubeconfig"] = str(kubeconfig)
        if args.kube_context:
            config["kube_context"] = args.kube_context
        if args.create_kernel_namespace:
            config["create_kernel_namespace"] = True
        if args.service_account:
            config["default_kernel_service_account_name"] = args.service_account
        for key, text in (
            ("allowed_namespaces", args.allowed_namespaces),
            ("allowed_service_accounts", args.allowed_service_accounts),
            ("allowed_images", args.allowed_images),
        ):
            if _names(text):
                config[key] = _names(text)
        if args.max_cpus is not None:
            if args.max_cpus < 0:
                raise InstallerError(f"--max-cpus {args.max_cpus:g} must be >= 0")
            config["max_cpus"] = args.max_cpus
        if args.max_memory:
            try:
                parse_memory(args.max_memory)
            except ValueError as err:
                raise InstallerError(f"--max-memory: {err}") from None
            config["max_memory"] = args.max_memory
        if args.max_gpus is not None:
            if args.max_gpus < 0:
                raise InstallerError(f"--max-gpus {args.max_gpus} must be >= 0")
            config["max_gpus"] = args.max_gpus
        for flag, key, value in (
            ("--kernel-uid", "kernel_uid", args.kernel_uid),
            ("--kernel-gid", "kernel_gid", args.kernel_gid),
        ):
            if value is not None:
                if value <= 0:
                    raise InstallerError(f"{flag} {value} must be a positive id (0 is root)")
                config[key] = value
        if args.pod_template:
            self._checked_template(args.pod_template)
            config["pod_template_file"] = POD_TEMPLATE_NAME
        if args.crd and args.spark_application_template:
            checked_application_template(args.spark_application_template)
            config["custom_resource_template_file"] = APPLICATION_TEMPLATE_NAME
        return config

    @staticmethod
    def _checked_template(path_text: str) -> str:
        path = Path(path_text).expanduser().resolve()
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise InstallerError(f"--pod-template {path_text}: {err}") from None
        if not isinstance(loaded, dict) or loaded.get("kind", "Pod") != "Pod":
            raise InstallerError(f"--pod-template {path_text}: must hold one Pod manifest")
        return str(path)

    def build_kernel_json(self, args: argparse.Namespace) -> dict[str, Any]:
        spec = super().build_kernel_json(args)
        provisioner = spec["metadata"]["kernel_provisioner"]
        provisioner["provisioner_name"] = self.provisioner_for(args)
        spec["metadata"][SCHEMA_METADATA_KEY] = schema_for_config(provisioner["config"])
        return spec


class K8sSchemaApp(SubcommandApp):
    """``jupyter k8s-spec schema --kernel-name NAME``."""

    name = "jupyter-k8s-spec-schema"
    description = "Print the JSON Schema of the KERNEL_* parameters a kernelspec accepts."

    def start(self) -> None:
        """Called by the ``jupyter k8s-spec`` application: print the installed spec's schema."""
        print(json.dumps(installed_schema(self.kernel_name or "k8s_python"), indent=2))


def select_spark_operator(args: argparse.Namespace) -> None:
    """Validate ``--crd``: it needs ``--spark``, Python and gp-crd's provisioner.  Called by
    ``K8sSpecInstaller.install`` before anything is written (the default names were chosen by
    ``names_for``)."""
    if not args.spark:
        raise InstallerError(
            "--crd needs the kind of custom resource: add --spark for the Spark operator's "
            f"SparkApplication ({SPARK_OPERATOR_PROVISIONER})"
        )
    if args.language != "python":
        raise InstallerError(
            f"--crd --spark with --language {args.language}: {SPARK_OPERATOR_PROVISIONER} "
            "kernelspecs run Python kernels only; drop --language or use --language python"
        )
    if not provisioner_installed(SPARK_OPERATOR_PROVISIONER):
        raise InstallerError(
            f"--crd --spark: provisioner {SPARK_OPERATOR_PROVISIONER!r} is not installed in "
            f"{sys.prefix}; it comes with gp-crd: pip install gp-crd"
        )


def provisioner_installed(name: str) -> bool:
    """Whether jupyter_client can find provisioner ``name`` (its entry point) here."""
    from importlib.metadata import entry_points

    return any(point.name == name for point in entry_points(group=PROVISIONER_GROUP))


def checked_application_template(path_text: str) -> str:
    """The absolute path of ``path_text``, a readable YAML file holding one SparkApplication;
    raises ``InstallerError`` naming the file otherwise."""
    path = Path(path_text).expanduser().resolve()
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InstallerError(f"--spark-application-template {path_text}: {err}") from None
    if (
        not isinstance(loaded, dict)
        or loaded.get("kind", SPARK_APPLICATION_KIND) != SPARK_APPLICATION_KIND
    ):
        raise InstallerError(
            f"--spark-application-template {path_text}: must hold one "
            f"{SPARK_APPLICATION_KIND} manifest"
        )
    return str(path)


def schema_for_config(config: dict[str, Any]) -> dict[str, Any]:
    """The parameter schema of a kernelspec whose provisioner config is ``config``."""
    known = set(KubernetesSettings.class_trait_names(config=True))
    settings = KubernetesSettings(**{k: v for k, v in config.items() if k in known})
    return parameter_schema(settings.limits(str(config.get("image_name") or DEFAULT_IMAGE)))


def installed_schema(kernel_name: str) -> dict[str, Any]:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise InstallerError(f"No kernelspec named {kernel_name!r} is installed") from None
    config = dict((spec.metadata.get("kernel_provisioner") or {}).get("config") or {})
    return schema_for_config(config)


def main(argv: list[str] | None = None) -> int:
    return K8sSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
