"""``jupyter ssh-spec install``: kernelspecs for the distributed provisioner."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gp_core.installer import KernelSpecInstaller

from .load_balancing import ALGORITHMS


class SshSpecInstaller(KernelSpecInstaller):
    command = "jupyter ssh-spec"
    provisioner_name = "distributed-provisioner"
    default_kernel_name = "ssh_python"
    default_display_name = "Python on remote hosts"
    description = "Install a kernelspec that runs kernels on remote hosts (or this one)."

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--remote-hosts",
            default="",
            help="comma-separated hosts (default: GP_REMOTE_HOSTS at launch, else localhost)",
        )
        parser.add_argument(
            "--load-balancing-algorithm", default="", choices=("", *ALGORITHMS), help="host choice"
        )

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        config: dict[str, Any] = {}
        hosts = [h.strip() for h in args.remote_hosts.split(",") if h.strip()]
        if hosts:
            config["remote_hosts"] = hosts
        if args.load_balancing_algorithm:
            config["load_balancing_algorithm"] = args.load_balancing_algorithm
        return config


def main(argv: list[str] | None = None) -> int:
    return SshSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
