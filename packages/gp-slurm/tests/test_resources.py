"""The per-kernel resource request: Slurm's formats parsed as types, operator bounds enforced,
errors that name the variable, the value, the kernel and the bound."""

from __future__ import annotations

import pytest

from gp_slurm.resources import (
    JobResources,
    ResourceLimits,
    ResourceRequestError,
    check_limits,
    parse_gpus,
    parse_memory,
    parse_time_limit,
    resolve_resources,
)

LIMITS = ResourceLimits(
    partition="debug",
    allowed_partitions=frozenset({"short", "gpu"}),
    account="lab",
    allowed_accounts=frozenset({"other-lab"}),
    qos="normal",
    allowed_qos=frozenset({"high"}),
    time_limit=60,
    max_time_limit=240,
    cpus=1,
    max_cpus=8,
    memory=1024,
    max_memory=16384,
    gpus=0,
    max_gpus=2,
    allowed_gpu_types=frozenset({"a100"}),
)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("30", 30),
        ("1:30", 2),  # minutes:seconds, seconds round up
        ("2:00:00", 120),
        ("1-0", 1440),
        ("1-2:30", 1590),
        ("0-0:0:1", 1),
        (" 45 ", 45),
    ],
)
def test_slurm_time_formats(text: str, minutes: int) -> None:
    assert parse_time_limit(text) == minutes


@pytest.mark.parametrize("text", ["", "0", "abc", "1:2:3:4", "-5", "1-2:3:4:5", "1.5", "x-1"])
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_time_limit(text)


@pytest.mark.parametrize(
    ("text", "megabytes"),
    [("512", 512), ("512M", 512), ("2G", 2048), ("2gb", 2048), ("1T", 1048576), ("100K", 1)],
)
def test_memory_formats(text: str, megabytes: int) -> None:
    assert parse_memory(text) == megabytes


@pytest.mark.parametrize("text", ["", "0", "-1G", "1.5G", "lots", "1P", "01G"])
def test_bad_memory_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="memory"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("text", "parsed"), [("1", ("", 1)), ("a100:2", ("a100", 2)), ("0", ("", 0))]
)
def test_gpu_formats(text: str, parsed: tuple[str, int]) -> None:
    assert parse_gpus(text) == parsed


@pytest.mark.parametrize("text", ["a100", "x y:1", "a100:-1", "a100:01", ":1x"])
def test_bad_gpus_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not N or TYPE:N|not a plain name"):
        parse_gpus(text)


def test_defaults_without_a_request() -> None:
    assert resolve_resources({}, LIMITS, "k1") == JobResources(
        partition="debug", account="lab", qos="normal", time_limit=60, cpus=1, memory=1024
    )


def test_a_request_within_bounds() -> None:
    env = {
        "KERNEL_SLURM_PARTITION": "gpu",
        "KERNEL_SLURM_ACCOUNT": "other-lab",
        "KERNEL_SLURM_QOS": "high",
        "KERNEL_SLURM_TIME_LIMIT": "4:00:00",
        "KERNEL_SLURM_CPUS": "8",
        "KERNEL_SLURM_MEMORY": "16G",
        "KERNEL_SLURM_GPUS": "a100:2",
    }
    resources = resolve_resources(env, LIMITS, "k1")
    assert resources == JobResources("gpu", "other-lab", "high", 240, 8, 16384, 2, "a100")
    assert resources.gres == "gpu:a100:2"
    assert resolve_resources({"KERNEL_SLURM_GPUS": "1"}, LIMITS, "k").gres == "gpu:1"


def test_the_default_name_is_always_allowed_and_blank_means_default() -> None:
    env = {"KERNEL_SLURM_PARTITION": "debug", "KERNEL_SLURM_QOS": " ", "KERNEL_SLURM_CPUS": ""}
    resources = resolve_resources(env, LIMITS, "k1")
    assert (resources.partition, resources.qos, resources.cpus) == ("debug", "normal", 1)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("KERNEL_SLURM_PARTITION", "bigmem", "not allowed here (allowed: debug, gpu, short"),
        ("KERNEL_SLURM_ACCOUNT", "root", "allowed_accounts"),
        ("KERNEL_SLURM_QOS", "urgent", "allowed_qos"),
        ("KERNEL_SLURM_TIME_LIMIT", "5:00:00", "at most 240 minutes allowed (max_time_limit)"),
        ("KERNEL_SLURM_TIME_LIMIT", "soon", "is not a Slurm time"),
        ("KERNEL_SLURM_CPUS", "9", "at most 8 CPUs allowed (max_cpus)"),
        ("KERNEL_SLURM_CPUS", "0", "not a positive whole number"),
        ("KERNEL_SLURM_CPUS", "08", "not a positive whole number"),
        ("KERNEL_SLURM_CPUS", "2; rm -rf /", "not a positive whole number"),
        ("KERNEL_SLURM_MEMORY", "17G", "at most 16384 MB allowed (max_memory)"),
        ("KERNEL_SLURM_GPUS", "3", "at most 2 GPUs allowed (max_gpus)"),
        ("KERNEL_SLURM_GPUS", "h100:1", "GPU type 'h100' not allowed"),
    ],
)
def test_refusals_name_variable_value_kernel_and_bound(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ResourceRequestError) as refused:
        resolve_resources({name: value}, LIMITS, "kernel-7")
    message = str(refused.value)
    assert message.startswith(f"{name}={value!r} for kernel kernel-7: ")
    assert expected in message


def test_no_names_to_choose_when_the_operator_allows_none() -> None:
    with pytest.raises(ResourceRequestError, match=r"allowed: none"):
        resolve_resources({"KERNEL_SLURM_QOS": "high"}, ResourceLimits(), "k")


def test_operator_limits_are_checked() -> None:
    check_limits(LIMITS)
    for broken, expected in (
        (ResourceLimits(cpus=5, max_cpus=4), "cpus=5"),
        (ResourceLimits(cpus=0), "cpus=0"),
        (ResourceLimits(memory=9000, max_memory=8192), "memory=9000"),
        (ResourceLimits(time_limit=2000), "time_limit=2000"),
        (ResourceLimits(gpus=1), "gpus=1"),
        (ResourceLimits(partition="a b"), "'a b' is not a plain Slurm name"),
    ):
        with pytest.raises(ResourceRequestError, match=expected):
            check_limits(broken)
