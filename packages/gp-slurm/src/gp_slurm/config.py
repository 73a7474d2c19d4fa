"""The Slurm provisioner's settings: how jobs are submitted, and the bounds of what they ask for.

Every setting is a traitlet with a ``GP_SLURM_*`` environment default, configurable as
``SlurmProvisioner.max_cpus = 8`` in ``jupyter_server_config.py`` or per kernelspec in
``metadata.kernel_provisioner.config``.  Users choose within the bounds with the
``KERNEL_SLURM_*`` variables of a start request (see ``resources.py``).
"""

from __future__ import annotations

import getpass
import os
from typing import Any, ClassVar

from traitlets import Float, Int, Set, Unicode, default, validate
from traitlets.config import Configurable

from gp_provisioners_core.config import env_float, env_set
from gp_provisioners_core.deprecated_settings import deprecated_alias

from .jobspec import REST_VERSIONS, check_env_allowlist
from .resources import ResourceLimits
from .status import DEFAULT_FATAL_REASONS


def _env_int(name: str, fallback: int) -> int:
    raw = os.getenv(name, "").strip()
    if not raw:
        return fallback
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None


class SlurmSubmissionConfig(Configurable):
    """Where and how jobs are submitted and watched."""

    rest_url = Unicode(
        config=True,
        help="""slurmrestd base URL, e.g. http://127.0.0.1:6820 (GP_SLURM_REST_URL).  Set: jobs
        go through slurmrestd with a JWT; empty (default): through sbatch on this host.""",
    )

    @default("rest_url")
    def _rest_url_default(self) -> str:
        return os.getenv("GP_SLURM_REST_URL", "")

    rest_api_version = Unicode(
        config=True,
        help=f"""slurmrestd OpenAPI version (GP_SLURM_REST_API_VERSION, default v0.0.38; one of
        {", ".join(REST_VERSIONS)}).""",
    )

    @default("rest_api_version")
    def _rest_api_version_default(self) -> str:
        return os.getenv("GP_SLURM_REST_API_VERSION", "v0.0.38")

    @validate("rest_api_version")
    def _validate_rest_api_version(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value not in REST_VERSIONS:
            raise ValueError(f"rest_api_version {value!r} is not one of {', '.join(REST_VERSIONS)}")
        return value

    rest_user = Unicode(
        config=True,
        help="User named in X-SLURM-USER-NAME (GP_SLURM_REST_USER, default the server's user).",
    )

    @default("rest_user")
    def _rest_user_default(self) -> str:
        return os.getenv("GP_SLURM_REST_USER", "") or getpass.getuser()

    rest_token = Unicode(
        config=True,
        help="""The JWT for slurmrestd (GP_SLURM_JWT, else SLURM_JWT).  A secret: prefer the
        environment or rest_token_file to a kernel.json.""",
    )

    @default("rest_token")
    def _rest_token_default(self) -> str:
        return os.getenv("GP_SLURM_JWT", "") or os.getenv("SLURM_JWT", "")

    rest_token_file = Unicode(
        config=True,
        help="""A file holding the JWT (or SLURM_JWT=...), read on every request so a rotated
        token is used at once (GP_SLURM_JWT_FILE).  Wins over rest_token.""",
    )

    @default("rest_token_file")
    def _rest_token_file_default(self) -> str:
        return os.getenv("GP_SLURM_JWT_FILE", "")

    slurm_conf = Unicode(
        config=True,
        help="slurm.conf for sbatch/squeue/scancel (GP_SLURM_CONF, else SLURM_CONF).",
    )

    @default("slurm_conf")
    def _slurm_conf_default(self) -> str:
        return os.getenv("GP_SLURM_CONF", "") or os.getenv("SLURM_CONF", "")

    slurm_bin_dir = Unicode(
        config=True,
        help="Directory of sbatch, squeue and scancel (GP_SLURM_BIN_DIR; empty: PATH).",
    )

    @default("slurm_bin_dir")
    def _slurm_bin_dir_default(self) -> str:
        return os.getenv("GP_SLURM_BIN_DIR", "")

    slurm_command_timeout = Float(
        config=True,
        help="Seconds a Slurm command or REST call may take (GP_SLURM_COMMAND_TIMEOUT, 30).",
    )

    @default("slurm_command_timeout")
    def _slurm_command_timeout_default(self) -> float:
        return env_float("GP_SLURM_COMMAND_TIMEOUT", 30.0)

    status_interval = Float(
        config=True,
        help="""Seconds between the status queries (one squeue or REST call for all of this
        process's jobs) while no kernel is starting (GP_SLURM_STATUS_INTERVAL, 3).""",
    )

    @default("status_interval")
    def _status_interval_default(self) -> float:
        return env_float("GP_SLURM_STATUS_INTERVAL", 3.0)

    launch_status_interval = Float(
        config=True,
        help="""Seconds between the status queries while a kernel starts or stops
        (GP_SLURM_LAUNCH_STATUS_INTERVAL, 0.25).""",
    )

    @default("launch_status_interval")
    def _launch_status_interval_default(self) -> float:
        return env_float("GP_SLURM_LAUNCH_STATUS_INTERVAL", 0.25)

    @validate("status_interval", "launch_status_interval", "slurm_command_timeout")
    def _validate_positive(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise ValueError(f"{proposal['trait'].name} {value:g} must be > 0")
        return value

    job_working_dir = Unicode(
        config=True,
        help="The job's working directory on its node (GP_SLURM_WORKING_DIR, default /tmp).",
    )

    @default("job_working_dir")
    def _job_working_dir_default(self) -> str:
        return os.getenv("GP_SLURM_WORKING_DIR", "/tmp")  # noqa: S108

    job_output_dir = Unicode(
        config=True,
        help="""Directory for each job's output, <kernel_id>-<job_id>.out, quoted in launch
        errors when readable here (GP_SLURM_OUTPUT_DIR; empty: /dev/null).""",
    )

    @default("job_output_dir")
    def _job_output_dir_default(self) -> str:
        return os.getenv("GP_SLURM_OUTPUT_DIR", "")

    renamed_env_allowlist_variables: ClassVar[tuple[str, ...]] = ("GP_SLURM_ENV_ALLOWLIST",)
    job_env_allowlist = deprecated_alias("env_allowlist", Set(Unicode()))

    @validate("env_allowlist")
    def _validate_env_allowlist(self, proposal: dict[str, Any]) -> set[str]:
        """SBATCH_* and SLURM_* would steer sbatch itself: refused in the allow-list."""
        names = {str(name) for name in proposal["value"]}
        check_env_allowlist(names)
        return names

    fatal_pending_reasons = Set(
        Unicode(),
        config=True,
        help="""Pending reasons that end a launch at once with Slurm's reason, instead of
        waiting for launch_timeout (GP_SLURM_FATAL_PENDING_REASONS, comma-separated; default:
        PartitionConfig, PartitionTimeLimit, JobHeldAdmin, InvalidQOS, ...).""",
    )

    @default("fatal_pending_reasons")
    def _fatal_pending_reasons_default(self) -> set[str]:
        return env_set("GP_SLURM_FATAL_PENDING_REASONS", ",".join(sorted(DEFAULT_FATAL_REASONS)))


class SlurmResourceConfig(Configurable):
    """What jobs ask for by default, and how far a request may change it."""

    partition = Unicode(config=True, help="Default partition (GP_SLURM_PARTITION; empty: Slurm's).")
    allowed_partitions = Set(
        Unicode(), config=True, help="Partitions KERNEL_SLURM_PARTITION may name."
    )
    account = Unicode(config=True, help="Default account (GP_SLURM_ACCOUNT; empty: Slurm's).")
    allowed_accounts = Set(Unicode(), config=True, help="Accounts KERNEL_SLURM_ACCOUNT may name.")
    qos = Unicode(config=True, help="Default QOS (GP_SLURM_QOS; empty: Slurm's).")
    allowed_qos = Set(Unicode(), config=True, help="QOS names KERNEL_SLURM_QOS may name.")
    time_limit = Int(
        config=True, help="Default time limit in minutes (GP_SLURM_TIME_LIMIT; 0: the partition's)."
    )
    max_time_limit = Int(
        config=True, help="Largest KERNEL_SLURM_TIME_LIMIT, minutes (GP_SLURM_MAX_TIME_LIMIT)."
    )
    cpus = Int(config=True, help="Default CPUs per kernel (GP_SLURM_CPUS, 1).")
    max_cpus = Int(config=True, help="Largest KERNEL_SLURM_CPUS (GP_SLURM_MAX_CPUS, 4).")
    memory = Int(config=True, help="Default memory in MB (GP_SLURM_MEMORY; 0: Slurm's).")
    max_memory = Int(config=True, help="Largest KERNEL_SLURM_MEMORY, MB (GP_SLURM_MAX_MEMORY).")
    gpus = Int(config=True, help="Default GPUs per kernel (GP_SLURM_GPUS, 0).")
    gpu_type = Unicode(config=True, help="Default GPU type for --gres (GP_SLURM_GPU_TYPE).")
    max_gpus = Int(config=True, help="Largest KERNEL_SLURM_GPUS count (GP_SLURM_MAX_GPUS, 0).")
    allowed_gpu_types = Set(
        Unicode(), config=True, help="GPU types KERNEL_SLURM_GPUS may name (TYPE:N)."
    )

    @default("partition")
    def _partition_default(self) -> str:
        return os.getenv("GP_SLURM_PARTITION", "")

    @default("account")
    def _account_default(self) -> str:
        return os.getenv("GP_SLURM_ACCOUNT", "")

    @default("qos")
    def _qos_default(self) -> str:
        return os.getenv("GP_SLURM_QOS", "")

    @default("gpu_type")
    def _gpu_type_default(self) -> str:
        return os.getenv("GP_SLURM_GPU_TYPE", "")

    @default("time_limit")
    def _time_limit_default(self) -> int:
        return _env_int("GP_SLURM_TIME_LIMIT", 0)

    @default("max_time_limit")
    def _max_time_limit_default(self) -> int:
        return _env_int("GP_SLURM_MAX_TIME_LIMIT", 1440)

    @default("cpus")
    def _cpus_default(self) -> int:
        return _env_int("GP_SLURM_CPUS", 1)

    @default("max_cpus")
    def _max_cpus_default(self) -> int:
        return _env_int("GP_SLURM_MAX_CPUS", 4)

    @default("memory")
    def _memory_default(self) -> int:
        return _env_int("GP_SLURM_MEMORY", 0)

    @default("max_memory")
    def _max_memory_default(self) -> int:
        return _env_int("GP_SLURM_MAX_MEMORY", 8192)

    @default("gpus")
    def _gpus_default(self) -> int:
        return _env_int("GP_SLURM_GPUS", 0)

    @default("max_gpus")
    def _max_gpus_default(self) -> int:
        return _env_int("GP_SLURM_MAX_GPUS", 0)

    @default("allowed_partitions")
    def _allowed_partitions_default(self) -> set[str]:
        return env_set("GP_SLURM_ALLOWED_PARTITIONS", "")

    @default("allowed_accounts")
    def _allowed_accounts_default(self) -> set[str]:
        return env_set("GP_SLURM_ALLOWED_ACCOUNTS", "")

    @default("allowed_qos")
    def _allowed_qos_default(self) -> set[str]:
        return env_set("GP_SLURM_ALLOWED_QOS", "")

    @default("allowed_gpu_types")
    def _allowed_gpu_types_default(self) -> set[str]:
        return env_set("GP_SLURM_ALLOWED_GPU_TYPES", "")

    def resource_limits(self) -> ResourceLimits:
        """The settings as the pure resolver's input."""
        return ResourceLimits(
            partition=self.partition,
            allowed_partitions=frozenset(self.allowed_partitions),
            account=self.account,
            allowed_accounts=frozenset(self.allowed_accounts),
            qos=self.qos,
            allowed_qos=frozenset(self.allowed_qos),
            time_limit=self.time_limit,
            max_time_limit=self.max_time_limit,
            cpus=self.cpus,
            max_cpus=self.max_cpus,
            memory=self.memory,
            max_memory=self.max_memory,
            gpus=self.gpus,
            gpu_type=self.gpu_type,
            max_gpus=self.max_gpus,
            allowed_gpu_types=frozenset(self.allowed_gpu_types),
        )
