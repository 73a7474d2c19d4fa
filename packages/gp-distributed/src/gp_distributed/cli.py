"""``jupyter ssh-spec install``: kernelspecs for the distributed provisioner."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gp_provisioners_core.installer import InstallerError, KernelSpecInstaller

from .load_balancing import ALGORITHMS
from .ssh import HOST_KEY_POLICIES, parse_host_entry


class SshSpecInstaller(KernelSpecInstaller):
    command = "jupyter ssh-spec"
    provisioner_name = "distributed-provisioner"
    # gateway_provisioners 0.5.0's names; --spark adds "_spark" / " (with Spark)"
    default_names = {
        "python": ("ssh_python", "Python SSH"),
        "R": ("ssh_r", "R SSH"),
        "scala": ("ssh_scala", "Scala SSH"),
    }
    spark_renames = True
    description = "Install a kernelspec that runs kernels on remote hosts (or this one)."
    list_options = KernelSpecInstaller.list_options | {"remote_hosts"}

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--remote-hosts",
            default="",
            help="hosts, repeated (--remote-hosts=h1 --remote-hosts=h2) or comma-separated "
            "(default: GP_REMOTE_HOSTS at launch, else localhost)",
        )
        parser.add_argument(
            "--load-balancing-algorithm", default="", choices=("", *ALGORITHMS), help="host choice"
        )
        parser.add_argument("--ssh-user", default="", help="user to log in as (GP_SSH_USER)")
        parser.add_argument("--ssh-port", type=int, default=0, help="sshd port (GP_SSH_PORT)")
        parser.add_argument("--ssh-key-file", default="", help="private key (GP_SSH_KEY_FILE)")
        parser.add_argument(
            "--ssh-known-hosts", default="", help="known_hosts file (GP_SSH_KNOWN_HOSTS)"
        )
        parser.add_argument(
            "--ssh-host-key-policy",
            default="",
            choices=("", *HOST_KEY_POLICIES),
            help="unknown host keys: reject (default), warn or auto-add",
        )

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        config: dict[str, Any] = {}
        hosts = [h.strip() for h in args.remote_hosts.split(",") if h.strip()]
        for host in hosts:
            try:
                parse_host_entry(host)
            except ValueError as err:
                raise InstallerError(f"--remote-hosts: {err}") from None
        if hosts:
            config["remote_hosts"] = hosts
        if args.load_balancing_algorithm:
            config["load_balancing_algorithm"] = args.load_balancing_algorithm
        if not 0 <= args.ssh_port < 65536:
            raise InstallerError(f"--ssh-port {args.ssh_port} is not a TCP port")
        ssh_settings = {
            "ssh_user": args.ssh_user,
            "ssh_port": args.ssh_port,
            "ssh_key_file": args.ssh_key_file,
            "ssh_known_hosts": args.ssh_known_hosts,
            "ssh_host_key_policy": args.ssh_host_key_policy,
        }
        config.update({name: value for name, value in ssh_settings.items() if value})
        return config


def main(argv: list[str] | None = None) -> int:
    return SshSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
