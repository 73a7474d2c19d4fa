"""``jupyter docker-spec install``: kernelspecs for the Docker and Swarm provisioners.

The flags follow gateway_provisioners' ``jupyter docker-spec``.  The spec's argv is the
launcher command run *inside* the container (``python /usr/local/bin/launch_ipykernel.py
--kernel-id {kernel_id} ...``); the provisioner fills the placeholders and runs it as the
container's command, as data.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gp_provisioners_core.images import DEFAULT_PREFIX, default_image
from gp_provisioners_core.installer import InstallerError, KernelSpecInstaller

from .builders import check_network

# The images docker-images/build.py builds and the release publishes, named by the core's
# gp_provisioners_core.images (registry prefix from GP_IMAGE_PREFIX at install time; these
# constants show the default prefix).
IMAGE_KINDS = {"python": "python", "R": "r", "scala": "scala"}
DEFAULT_IMAGE = default_image("python", DEFAULT_PREFIX)
DEFAULT_R_IMAGE = default_image("r", DEFAULT_PREFIX)
DEFAULT_SCALA_IMAGE = default_image("scala", DEFAULT_PREFIX)
CONTAINER_LAUNCHER = "/usr/local/bin/launch_ipykernel.py"
CONTAINER_TOREE_LAUNCHER = "/usr/local/bin/run_toree.sh"
SWARM = "docker-swarm-provisioner"


class DockerSpecInstaller(KernelSpecInstaller):
    command = "jupyter docker-spec"
    provisioner_name = "docker-provisioner"
    # gateway_provisioners 0.5.0's names (the same with --swarm)
    default_names = {
        "python": ("docker_python", "Docker Python"),
        "R": ("docker_r", "Docker R"),
        "scala": ("docker_scala", "Docker Scala"),
    }
    description = "Install a kernelspec whose kernels run in Docker containers or Swarm services."
    list_options = KernelSpecInstaller.list_options | {"allowed_images"}

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add(
            "--image-name",
            default="",
            help=f"the kernel image (GP_IMAGE_NAME; python: {DEFAULT_IMAGE}, R: {DEFAULT_R_IMAGE})",
        )
        add("--executor-image-name", default="", help="the image of Spark executors")
        add("--swarm", action="store_true", help="run kernels as Docker Swarm services")
        add("--network", default="", help="host (default), none, bridge or a network name")
        add("--allowed-images", default="", help="comma-separated KERNEL_IMAGE patterns allowed")
        add("--launcher-path", default=CONTAINER_LAUNCHER, help="the launcher inside the image")
        # Inside the image: the Python on its PATH, not this machine's.
        parser.set_defaults(python="python")

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        # gateway_provisioners read GP_IMAGE_NAME when --image-name was not given
        given = args.image_name or os.environ.get("GP_IMAGE_NAME", "")
        image = given.strip()
        if not image and given:
            raise InstallerError("--image-name must name an image")
        config: dict[str, Any] = {"image_name": image or default_image(IMAGE_KINDS[args.language])}
        if args.executor_image_name:
            config["executor_image_name"] = args.executor_image_name
        if args.network:
            try:
                config["docker_network"] = check_network(args.network)
            except ValueError as err:
                raise InstallerError(f"--network: {err}") from None
        patterns = sorted({p.strip() for p in args.allowed_images.split(",") if p.strip()})
        if patterns:
            config["allowed_images"] = patterns
        return config

    def launcher_argv(self, args: argparse.Namespace) -> list[str]:
        if not args.launcher_path.startswith("/"):
            raise InstallerError(f"--launcher-path {args.launcher_path!r} must be absolute")
        argv = super().launcher_argv(args)
        if args.language == "scala":
            return argv
        return [args.python, args.launcher_path, *argv[2:]]

    def migration_flags(self, spec: dict[str, Any]) -> list[str]:
        """A gateway_provisioners spec for the Swarm provisioner stays a Swarm spec."""
        provisioner = spec.get("metadata", {}).get("kernel_provisioner", {})
        return ["--swarm"] if provisioner.get("provisioner_name") == SWARM else []

    def scala_launcher(self, args: argparse.Namespace) -> str:
        return CONTAINER_TOREE_LAUNCHER

    def build_kernel_json(self, args: argparse.Namespace) -> dict[str, Any]:
        spec = super().build_kernel_json(args)
        if args.swarm:
            spec["metadata"]["kernel_provisioner"]["provisioner_name"] = SWARM
        return spec


def main(argv: list[str] | None = None) -> int:
    return DockerSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
