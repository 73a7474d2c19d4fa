"""What a kernel's job may ask Slurm for: the operator's bounds and the per-kernel request.

Pure functions, no Slurm needed.  The provisioner builds :class:`ResourceLimits` from its
traitlets and calls :func:`resolve_resources` with the start request's environment; every
``KERNEL_SLURM_*`` value is parsed as its type and checked against the operator's allow-list or
maximum before anything is submitted.  A refused value raises :class:`ResourceRequestError`
naming the variable, the value, the kernel and the bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field

# The per-kernel variables a start request may set.
PARTITION_ENV = "KERNEL_SLURM_PARTITION"
ACCOUNT_ENV = "KERNEL_SLURM_ACCOUNT"
QOS_ENV = "KERNEL_SLURM_QOS"
TIME_LIMIT_ENV = "KERNEL_SLURM_TIME_LIMIT"
CPUS_ENV = "KERNEL_SLURM_CPUS"
MEMORY_ENV = "KERNEL_SLURM_MEMORY"
GPUS_ENV = "KERNEL_SLURM_GPUS"
RESOURCE_ENV = (
    PARTITION_ENV,
    ACCOUNT_ENV,
    QOS_ENV,
    TIME_LIMIT_ENV,
    CPUS_ENV,
    MEMORY_ENV,
    GPUS_ENV,
)

_COUNT = re.compile(r"^[1-9][0-9]{0,6}$")
_MEMORY = re.compile(r"^([1-9][0-9]{0,9})([KMGT]?)B?$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MB_PER_UNIT = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


class ResourceRequestError(ValueError):
    """A ``KERNEL_SLURM_*`` value (or an operator setting) that cannot be submitted."""


@dataclass(frozen=True)
class ResourceLimits:
    """The operator's defaults and bounds (from the provisioner's traitlets).

    Names (partition, account, qos) a request may choose come from the ``allowed_*`` sets;
    the default is always allowed.  Numbers are capped by the ``max_*`` fields; memory is in
    MB and times are in minutes (0 = leave it to Slurm's partition default).
    """

    partition: str = ""
    allowed_partitions: Set[str] = field(default_factory=frozenset)
    account: str = ""
    allowed_accounts: Set[str] = field(default_factory=frozenset)
    qos: str = ""
    allowed_qos: Set[str] = field(default_factory=frozenset)
    time_limit: int = 0
    max_time_limit: int = 1440
    cpus: int = 1
    max_cpus: int = 4
    memory: int = 0
    max_memory: int = 8192
    gpus: int = 0
    gpu_type: str = ""
    max_gpus: int = 0
    allowed_gpu_types: Set[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class JobResources:
    """What one job asks Slurm for; empty strings and zeros are left to Slurm's defaults."""

    partition: str = ""
    account: str = ""
    qos: str = ""
    time_limit: int = 0
    cpus: int = 1
    memory: int = 0
    gpus: int = 0
    gpu_type: str = ""

    @property
    def gres(self) -> str:
        """The ``--gres`` value (``gpu:N`` or ``gpu:TYPE:N``); empty without GPUs."""
        if not self.gpus:
            return ""
        return f"gpu:{self.gpu_type}:{self.gpus}" if self.gpu_type else f"gpu:{self.gpus}"


def parse_time_limit(text: str) -> int:
    """Slurm's time formats as whole minutes (seconds round up).

    ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M`` and ``D-H:M:S``, as ``sbatch --time`` reads
    them.  Raises ``ValueError`` for anything else, or for zero.
    """
    value = text.strip()
    days, dash, clock = value.partition("-") if "-" in value else ("", "", value)
    parts = clock.split(":")
    if not all(p.isascii() and p.isdigit() and len(p) <= 6 for p in parts) or (
        dash and not (days.isascii() and days.isdigit() and len(days) <= 4)
    ):
        raise ValueError(f"{text!r} is not a Slurm time (minutes, H:MM:SS or D-HH:MM:SS)")
    numbers = [int(p) for p in parts]
    if days:
        if len(numbers) > 3:
            raise ValueError(f"{text!r} is not a Slurm time (D-HH:MM:SS at most)")
        hours, minutes, seconds = [*numbers, 0, 0][:3]
        total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif len(numbers) == 1:
        total = numbers[0] * 60
    elif len(numbers) == 2:
        total = numbers[0] * 60 + numbers[1]
    elif len(numbers) == 3:
        total = (numbers[0] * 60 + numbers[1]) * 60 + numbers[2]
    else:
        raise ValueError(f"{text!r} is not a Slurm time (H:MM:SS at most without days)")
    if total <= 0:
        raise ValueError(f"{text!r} is not a positive time")
    return math.ceil(total / 60)


def parse_memory(text: str) -> int:
    """``512``, ``512M``, ``2G``, ``1T`` (case-insensitive, optional ``B``) as whole MB."""
    match = _MEMORY.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an amount of memory (e.g. 512M, 4G; plain = MB)")
    megabytes = math.ceil(int(match.group(1)) * _MB_PER_UNIT[match.group(2).upper()])
    return max(megabytes, 1)


def parse_count(text: str) -> int:
    """A positive whole number written plainly (no sign, no leading zero)."""
    if not _COUNT.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a positive whole number")
    return int(text)


def parse_gpus(text: str) -> tuple[str, int]:
    """``N`` or ``TYPE:N`` as ``(type, N)``; ``0`` means no GPUs."""
    kind, _, count = text.strip().rpartition(":")
    if count == "0" and not kind:
        return "", 0
    if kind and not _NAME.fullmatch(kind):
        raise ValueError(f"{text!r}: GPU type {kind!r} is not a plain name")
    try:
        return kind, parse_count(count)
    except ValueError:
        raise ValueError(f"{text!r} is not N or TYPE:N (e.g. 1 or a100:2)") from None


def is_plain_name(text: str) -> bool:
    """Whether ``text`` is a plain Slurm name (partition, account, QOS, GPU type)."""
    return bool(_NAME.fullmatch(text))


def resolve_resources(
    env: Mapping[str, str], limits: ResourceLimits, kernel_id: str
) -> JobResources:
    """The job's resources: the operator's defaults, overridden by the request's
    ``KERNEL_SLURM_*`` values once each passes its bound.  Raises ``ResourceRequestError``."""

    def requested(name: str) -> str:
        return env.get(name, "").strip()

    def refuse(name: str, reason: str) -> ResourceRequestError:
        return ResourceRequestError(
            f"{name}={env.get(name, '')!r} for kernel {kernel_id}: {reason}"
        )

    def choose(name: str, default: str, allowed: Set[str], setting: str) -> str:
        value = requested(name)
        if not value or value == default:
            return default
        if value not in allowed:
            choices = ", ".join(sorted({default, *allowed} - {""})) or "none"
            raise refuse(name, f"not allowed here (allowed: {choices}; operator setting {setting})")
        return value

    def bounded(
        name: str, parse: Callable[[str], int], default: int, maximum: int, unit: str, setting: str
    ) -> int:
        raw = requested(name)
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError as err:
            raise refuse(name, str(err)) from None
        if value > maximum:
            raise refuse(name, f"at most {maximum} {unit} allowed ({setting})")
        return value

    gpu_type, gpus = limits.gpu_type, limits.gpus
    if requested(GPUS_ENV):
        try:
            gpu_type, gpus = parse_gpus(requested(GPUS_ENV))
        except ValueError as err:
            raise refuse(GPUS_ENV, str(err)) from None
        if gpus > limits.max_gpus:
            raise refuse(GPUS_ENV, f"at most {limits.max_gpus} GPUs allowed (max_gpus)")
        if gpu_type and gpu_type != limits.gpu_type and gpu_type not in limits.allowed_gpu_types:
            choices = ", ".join(sorted(limits.allowed_gpu_types)) or "none"
            raise refuse(
                GPUS_ENV, f"GPU type {gpu_type!r} not allowed (allowed_gpu_types: {choices})"
            )
    return JobResources(
        partition=choose(
            PARTITION_ENV, limits.partition, limits.allowed_partitions, "allowed_partitions"
        ),
        account=choose(ACCOUNT_ENV, limits.account, limits.allowed_accounts, "allowed_accounts"),
        qos=choose(QOS_ENV, limits.qos, limits.allowed_qos, "allowed_qos"),
        time_limit=bounded(
            TIME_LIMIT_ENV,
            parse_time_limit,
            limits.time_limit,
            limits.max_time_limit,
            "minutes",
            "max_time_limit",
        ),
        cpus=bounded(CPUS_ENV, parse_count, limits.cpus, limits.max_cpus, "CPUs", "max_cpus"),
        memory=bounded(
            MEMORY_ENV, parse_memory, limits.memory, limits.max_memory, "MB", "max_memory"
        ),
        gpus=gpus,
        gpu_type=gpu_type,
    )


def check_limits(limits: ResourceLimits) -> None:
    """Raise ``ResourceRequestError`` when the operator's own defaults break their bounds."""
    problems = []
    if limits.cpus < 1 or limits.cpus > limits.max_cpus:
        problems.append(f"cpus={limits.cpus} must be between 1 and max_cpus={limits.max_cpus}")
    if limits.memory < 0 or limits.memory > limits.max_memory:
        problems.append(
            f"memory={limits.memory} must be between 0 and max_memory={limits.max_memory}"
        )
    if limits.time_limit < 0 or limits.time_limit > limits.max_time_limit:
        problems.append(
            f"time_limit={limits.time_limit} must be between 0 and "
            f"max_time_limit={limits.max_time_limit}"
        )
    if limits.gpus < 0 or limits.gpus > limits.max_gpus:
        problems.append(f"gpus={limits.gpus} must be between 0 and max_gpus={limits.max_gpus}")
    for name in (limits.partition, limits.account, limits.qos, limits.gpu_type):
        if name and not is_plain_name(name):
            problems.append(f"{name!r} is not a plain Slurm name")
    if problems:
        raise ResourceRequestError("; ".join(problems))
