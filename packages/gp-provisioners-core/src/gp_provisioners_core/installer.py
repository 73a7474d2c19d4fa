"""The base of every ``jupyter <x>-spec install`` command.

A backend subclasses :class:`KernelSpecInstaller`, names its provisioner, adds its own flags in
``add_backend_arguments`` and its settings in ``backend_config``.  The base writes kernel.json as
data (argv is a list, config a dict: nothing is templated as text), copies the launcher into the
spec's ``scripts/`` folder, and installs the spec with jupyter_client's KernelSpecManager.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from jupyter_client.kernelspec import KernelSpecManager

from .config import parse_port_range
from .launchers import launcher_dir

LANGUAGES = ("python", "R")


class InstallerError(SystemExit):
    """A flag value that cannot be installed; the message says which and why."""


class KernelSpecInstaller:
    """Builds and installs one kernelspec from command-line flags."""

    command: ClassVar[str] = "jupyter x-spec"
    provisioner_name: ClassVar[str] = ""
    default_kernel_name: ClassVar[str] = ""
    default_display_name: ClassVar[str] = ""
    description: ClassVar[str] = "Install a kernelspec for a Gateway Provisioners provisioner."

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=self.command, description=self.description)
        commands = parser.add_subparsers(dest="subcommand", required=True)
        install = commands.add_parser("install", help="install a kernelspec")
        self.add_common_arguments(install)
        self.add_backend_arguments(install)
        return parser

    def add_common_arguments(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--kernel-name", default=self.default_kernel_name, help="the kernelspec's folder name")
        add("--display-name", default=self.default_display_name, help="the name users see")
        add("--language", default="python", choices=LANGUAGES, help="the kernel's language")
        add("--authorized-users", default="", help="comma-separated users allowed")
        add("--unauthorized-users", default="", help="comma-separated users refused")
        add("--port-range", default="", help="LOWER..UPPER ports for the kernel")
        add("--launch-timeout", type=float, default=None, help="seconds to start")
        add("--ipykernel-subclass-name", default="", help="a Kernel subclass to run")
        add("--python", default=sys.executable, help="the Python that runs the launcher")
        add("--spark", action="store_true", help="start a Spark context in the kernel")
        add("--spark-home", default="/opt/spark", help="SPARK_HOME for Spark kernels")
        add("--spark-master", default="", help="the Spark master URL")
        add("--spark-init-mode", default="lazy", choices=("lazy", "eager", "none"))
        add("--extra-spark-opts", default="", help="more spark-submit options")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--user", action="store_true", help="install for this user")
        where.add_argument("--prefix", default=None, help="install under this prefix")
        where.add_argument("--sys-prefix", action="store_true", help=f"install in {sys.prefix}")
        add("--replace", action="store_true", help="replace an existing spec of that name")

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the backend's own flags.  Called once by ``build_parser``."""

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        """The backend's entries of ``metadata.kernel_provisioner.config``."""
        return {}

    def backend_env(self, args: argparse.Namespace) -> dict[str, str]:
        """The backend's entries of the spec's ``env``."""
        return {}

    def add_resources(self, folder: Path, args: argparse.Namespace) -> None:
        """Add the backend's own files (e.g. ``bin/run.sh``) to the staged spec ``folder``.
        Called by ``install`` after the launcher was copied; the default adds nothing."""

    def launcher_argv(self, args: argparse.Namespace) -> list[str]:
        """The spec's argv: the launcher, with placeholders the provisioner fills at launch."""
        argv = [
            args.python,
            "{resource_dir}/scripts/launch_ipykernel.py",
            "--kernel-id",
            "{kernel_id}",
            "--port-range",
            "{port_range}",
            "--response-address",
            "{response_address}",
            "--public-key",
            "{public_key}",
            "--spark-context-initialization-mode",
            args.spark_init_mode if args.spark else "none",
        ]
        if args.language == "R":
            if args.spark and args.spark_init_mode != "none":
                raise InstallerError(
                    "--spark with --language R: the Spark context can only be initialized for "
                    "Python kernels; add --spark-init-mode none"
                )
            argv += ["--kernel-language", "R"]
        if args.ipykernel_subclass_name:
            if args.language != "python":
                raise InstallerError("--ipykernel-subclass-name applies to --language python only")
            argv += ["--kernel-class-name", args.ipykernel_subclass_name]
        return argv

    def build_kernel_json(self, args: argparse.Namespace) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if args.authorized_users:
            config["authorized_users"] = _user_list(args.authorized_users)
        if args.unauthorized_users:
            config["unauthorized_users"] = _user_list(args.unauthorized_users)
        if args.port_range:
            try:
                parse_port_range(args.port_range)
            except ValueError as err:
                raise InstallerError(f"--port-range: {err}") from None
            config["port_range"] = args.port_range
        if args.launch_timeout is not None:
            if args.launch_timeout <= 0:
                raise InstallerError(f"--launch-timeout {args.launch_timeout:g} must be > 0")
            config["launch_timeout"] = args.launch_timeout
        config.update(self.backend_config(args))
        env = dict(self.backend_env(args))
        if args.spark:
            env.update(SPARK_HOME=args.spark_home, SPARK_OPTS=args.extra_spark_opts)
            if args.spark_master:
                env["SPARK_MASTER"] = args.spark_master
        return {
            "argv": self.launcher_argv(args),
            "display_name": args.display_name,
            "language": args.language,
            "interrupt_mode": "signal",
            "env": env,
            "metadata": {
                "debugger": False,
                "kernel_provisioner": {"provisioner_name": self.provisioner_name, "config": config},
            },
        }

    def install(self, args: argparse.Namespace) -> str:
        """Write the spec to a staging folder and install it; return the installed path."""
        spec = self.build_kernel_json(args)
        with tempfile.TemporaryDirectory() as staging:
            folder = Path(staging) / args.kernel_name
            (folder / "scripts").mkdir(parents=True)
            (folder / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
            for language in {"python", args.language}:  # R kernels use the Python listener
                try:
                    source = launcher_dir(language)
                except FileNotFoundError as err:
                    raise InstallerError(f"--language {args.language}: {err}") from None
                for item in source.iterdir():
                    if item.is_file() and not item.name.startswith("."):
                        shutil.copy2(item, folder / "scripts" / item.name)
            self.add_resources(folder, args)
            prefix = sys.prefix if args.sys_prefix else args.prefix
            manager = KernelSpecManager()
            destination = Path(
                manager._get_destination_dir(args.kernel_name, user=args.user, prefix=prefix)
            )
            if destination.exists() and not args.replace:
                raise InstallerError(
                    f"Kernelspec {args.kernel_name!r} already exists in {destination}; "
                    "use --replace to overwrite it"
                )
            try:
                return manager.install_kernel_spec(
                    str(folder), args.kernel_name, user=args.user, prefix=prefix
                )
            except OSError as err:
                raise InstallerError(
                    f"Could not install kernelspec {args.kernel_name!r}: {err}. Use --replace to "
                    "overwrite an existing one, or --user / --prefix for another location"
                ) from err

    def main(self, argv: list[str] | None = None) -> int:
        args = self.build_parser().parse_args(argv)
        if not args.kernel_name or any(c in args.kernel_name for c in "/\\ "):
            raise InstallerError(f"--kernel-name {args.kernel_name!r} must be a plain folder name")
        if not args.display_name:
            args.display_name = args.kernel_name
        path = self.install(args)
        print(f"Installed kernelspec {args.kernel_name} in {path}")
        return 0


def _user_list(text: str) -> list[str]:
    return sorted({name.strip() for name in text.split(",") if name.strip()})
