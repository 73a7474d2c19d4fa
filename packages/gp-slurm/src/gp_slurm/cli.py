"""``jupyter slurm-spec install``: kernelspecs for the Slurm provisioner.

Each flag becomes an entry of ``metadata.kernel_provisioner.config`` (only the flags given),
checked here with the same parsers the provisioner uses at launch.  The slurmrestd token is
never written to kernel.json: give ``--rest-token-file`` or set GP_SLURM_JWT for the server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from gp_provisioners_core.installer import InstallerError, KernelSpecInstaller

from .jobspec import REST_VERSIONS, check_env_allowlist
from .resources import is_plain_name, parse_memory, parse_time_limit

# flag dest -> traitlet name, for the plain text settings
_TEXT_SETTINGS = {
    "rest_url": "rest_url",
    "rest_api_version": "rest_api_version",
    "rest_user": "rest_user",
    "rest_token_file": "rest_token_file",
    "slurm_conf": "slurm_conf",
    "slurm_bin_dir": "slurm_bin_dir",
    "partition": "partition",
    "account": "account",
    "qos": "qos",
    "gpu_type": "gpu_type",
    "working_dir": "job_working_dir",
    "output_dir": "job_output_dir",
}
_LIST_SETTINGS = {
    "allowed_partitions": "allowed_partitions",
    "allowed_accounts": "allowed_accounts",
    "allowed_qos": "allowed_qos",
    "allowed_gpu_types": "allowed_gpu_types",
    "env_allowlist": "env_allowlist",
}
_COUNT_SETTINGS = ("cpus", "max_cpus", "gpus", "max_gpus")


def _names(text: str) -> list[str]:
    return sorted({item.strip() for item in text.split(",") if item.strip()})


class SlurmSpecInstaller(KernelSpecInstaller):
    command = "jupyter slurm-spec"
    provisioner_name = "slurm-provisioner"
    default_names = {
        "python": ("slurm_python", "Python on Slurm"),
        "R": ("slurm_r", "R on Slurm"),
        "scala": ("slurm_scala", "Scala on Slurm"),
    }
    list_options = KernelSpecInstaller.list_options | set(_LIST_SETTINGS)
    description = "Install a kernelspec that runs each kernel as a Slurm batch job."

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--rest-url", default="", help="slurmrestd URL (empty: sbatch on this host)")
        add("--rest-api-version", default="", choices=("", *REST_VERSIONS))
        add("--rest-user", default="", help="X-SLURM-USER-NAME (default: the server's user)")
        add("--rest-token-file", default="", help="file holding the JWT (never the token)")
        add("--slurm-conf", default="", help="slurm.conf for the commands (SLURM_CONF)")
        add("--slurm-bin-dir", default="", help="where sbatch/squeue/scancel are")
        add("--partition", default="", help="default partition")
        add("--allowed-partitions", default="", help="partitions users may pick (comma-sep.)")
        add("--account", default="", help="default account")
        add("--allowed-accounts", default="", help="accounts users may pick (comma-separated)")
        add("--qos", default="", help="default QOS")
        add("--allowed-qos", default="", help="QOS users may pick (comma-separated)")
        add("--time-limit", default="", help="default time limit (minutes or D-HH:MM:SS)")
        add("--max-time-limit", default="", help="largest time limit users may ask for")
        add("--cpus", type=int, default=None, help="default CPUs per kernel")
        add("--max-cpus", type=int, default=None, help="most CPUs users may ask for")
        add("--memory", default="", help="default memory (e.g. 2G; plain = MB)")
        add("--max-memory", default="", help="most memory users may ask for")
        add("--gpus", type=int, default=None, help="default GPUs per kernel")
        add("--gpu-type", default="", help="default GPU type (--gres=gpu:TYPE:N)")
        add("--max-gpus", type=int, default=None, help="most GPUs users may ask for")
        add("--allowed-gpu-types", default="", help="GPU types users may pick (comma-sep.)")
        add("--working-dir", default="", help="the job's working directory")
        add("--output-dir", default="", help="directory for the jobs' output files")
        add("--env-allowlist", default="", help="more variables the job receives (comma-sep.)")
        add("--status-interval", type=float, default=None, help="seconds between squeue calls")

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for dest, name in _TEXT_SETTINGS.items():
            if getattr(args, dest):
                config[name] = getattr(args, dest)
        for dest, name in _LIST_SETTINGS.items():
            if getattr(args, dest):
                config[name] = _names(getattr(args, dest))
        for dest in _COUNT_SETTINGS:
            value = getattr(args, dest)
            if value is not None:
                if value < 0:
                    raise InstallerError(f"--{dest.replace('_', '-')} {value} must be >= 0")
                config[dest] = value
        for dest, parse in (("time_limit", parse_time_limit), ("max_time_limit", parse_time_limit)):
            self._parsed(args, config, dest, parse)
        for dest in ("memory", "max_memory"):
            self._parsed(args, config, dest, parse_memory)
        if args.status_interval is not None:
            if args.status_interval <= 0:
                raise InstallerError(f"--status-interval {args.status_interval:g} must be > 0")
            config["status_interval"] = args.status_interval
        if args.rest_url:
            parts = urlsplit(args.rest_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InstallerError(f"--rest-url {args.rest_url!r} must be http(s)://host:port")
        try:
            check_env_allowlist(config.get("env_allowlist", []))
        except ValueError as err:
            raise InstallerError(f"--env-allowlist: {err}") from None
        self._check_bounds(config)
        return config

    @staticmethod
    def _parsed(
        args: argparse.Namespace,
        config: dict[str, Any],
        dest: str,
        parse: Callable[[str], int],
    ) -> None:
        raw = getattr(args, dest)
        if not raw:
            return
        try:
            config[dest] = parse(raw)
        except ValueError as err:
            raise InstallerError(f"--{dest.replace('_', '-')}: {err}") from None

    @staticmethod
    def _check_bounds(config: dict[str, Any]) -> None:
        """A default given with its maximum must not exceed it; names must be plain (the rest
        is checked at launch against the server's settings)."""
        for low, high in (
            ("cpus", "max_cpus"),
            ("memory", "max_memory"),
            ("time_limit", "max_time_limit"),
            ("gpus", "max_gpus"),
        ):
            if low in config and high in config and config[low] > config[high]:
                raise InstallerError(
                    f"--{low.replace('_', '-')} {config[low]} exceeds "
                    f"--{high.replace('_', '-')} {config[high]}"
                )
        if config.get("cpus") == 0:
            raise InstallerError("--cpus 0: a kernel needs at least one CPU")
        for name in ("partition", "account", "qos", "gpu_type"):
            if name in config and not is_plain_name(config[name]):
                raise InstallerError(
                    f"--{name.replace('_', '-')} {config[name]!r} is not a plain name"
                )


def main(argv: list[str] | None = None) -> int:
    return SlurmSpecInstaller().main(argv)


if __name__ == "__main__":
    sys.exit(main())
