"""``jupyter docker-spec install``: kernelspecs for the Docker and Swarm provisioners.

The flags follow gateway_provisioners' ``jupyter docker-spec``.  The spec's argv is the
launcher command run *inside* the container (``python /usr/local/bin/launch_ipykernel.py
--kernel-id {kernel_id} ...``); the provisioner fills the placeholders and runs it as the
container's command, as data.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gp_provisioners_core.installer import InstallerError, KernelSpecInstaller

from .builders import check_network

DEFAULT_IMAGE = "gp/kernel-py:latest"
CONTAINER_LAUNCHER = "/usr/local/bin/launch_ipykernel.py"
_DEFAULT_DISPLAY = "\0default"


class DockerSpecInstaller(KernelSpecInstaller):
    command = "jupyter docker-spec"
    provisioner_name = "docker-provisioner"
    default_kernel_name = "python_docker"
    default_display_name = _DEFAULT_DISPLAY
    description = "Install a kernelspec whose kernels run in Docker containers or Swarm services."

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--image-name", default="", help=f"the kernel image (python: {DEFAULT_IMAGE})")
        add("--executor-image-name", default="", help="the image of Spark executors")
        add("--swarm", action="store_true", help="run kernels as Docker Swarm services")
        add("--network", default="", help="host (default), none, bridge or a network name")
        add("--allowed-images", default="", help="comma-separated KERNEL_IMAGE patterns allowed")
        add("--launcher-path", default=CONTAINER_LAUNCHER, help="the launcher inside the image")
        # Inside the image: the Python on its PATH, not this machine's.
        parser.set_defaults(python="python")

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        image = args.image_name.strip()
        if not image and args.language != "python":
            raise InstallerError(
                f"--language {args.language} needs --image-name: an image with the launcher and "
                f"the {args.language} kernel (docker-images/build.py --image r builds "
                "gp/kernel-r:latest)"
            )
        if not image and args.image_name:
            raise InstallerError("--image-name must name an image")
        config: dict[str, Any] = {"image_name": image or DEFAULT_IMAGE}
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
        return [args.python, args.launcher_path, *argv[2:]]

    def build_kernel_json(self, args: argparse.Namespace) -> dict[str, Any]:
        if args.display_name == _DEFAULT_DISPLAY:
            language = "Python" if args.language == "python" else args.language
            args.display_name = f"{language} on Docker{' Swarm' if args.swarm else ''}"
        spec = super().build_kernel_json(args)
        if args.swarm:
            spec["metadata"]["kernel_provisioner"]["provisioner_name"] = "docker-swarm-provisioner"
        return spec


def main(argv: list[str] | None = None) -> int:
    return DockerSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
