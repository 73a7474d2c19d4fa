"""Fuzzing (Hypothesis) of the Slurm job builders and parsers: any KERNEL_SLURM_* request gives
a ResourceRequestError or bounded resources; the batch script runs exactly the argv it was
given; squeue output of any shape parses without raising."""

from __future__ import annotations

import shlex

from hypothesis import given
from hypothesis import strategies as st

from gp_provisioners_core.testing.fuzz import count_case
from gp_slurm.jobspec import batch_script
from gp_slurm.resources import RESOURCE_ENV, ResourceLimits, ResourceRequestError, resolve_resources
from gp_slurm.status import parse_squeue

KERNEL_ID = "3f1c2a9e-8d7b-4c6a-9e5f-0123456789ab"
LIMITS = ResourceLimits(
    partition="batch",
    allowed_partitions=frozenset(["gpu"]),
    max_gpus=2,
    allowed_gpu_types=frozenset(["a100"]),
)
values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["1", "0", "2G", "1-00:00:00", "a100:1", "gpu", "\u0661", "99999999", "5\n"]),
)


@given(request=st.dictionaries(st.sampled_from(RESOURCE_ENV), values, max_size=7))
def test_resources_from_any_request(request: dict[str, str]) -> None:
    count_case("slurm-resources")
    try:
        resources = resolve_resources(request, LIMITS, KERNEL_ID)
    except ResourceRequestError as refused:
        assert KERNEL_ID in str(refused)
        return
    assert resources.partition in ("batch", "gpu")
    assert 0 <= resources.gpus <= LIMITS.max_gpus
    assert resources.cpus <= LIMITS.max_cpus
    assert resources.memory <= LIMITS.max_memory
    assert resources.time_limit <= LIMITS.max_time_limit


@given(
    argv=st.lists(st.text(min_size=0, max_size=30).filter(lambda a: "\x00" not in a), min_size=1)
)
def test_batch_script_runs_exactly_its_argv(argv: list[str]) -> None:
    count_case("slurm-batch-script")
    script = batch_script(argv)
    assert script.startswith("#!/bin/sh\nexec ")
    assert shlex.split(script.removeprefix("#!/bin/sh\nexec ")) == argv


@given(text=st.text(max_size=1000) | st.lists(st.text(max_size=15), max_size=20).map("|".join))
def test_squeue_parser_is_total(text: str) -> None:
    count_case("squeue")
    for job_id, status in parse_squeue(text).items():
        assert job_id.isascii()
        assert job_id.isdigit()
        assert status.job_id == job_id
