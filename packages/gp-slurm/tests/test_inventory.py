"""The Slurm orphan inventory's pure parts: the store comment and the squeue listing."""

from __future__ import annotations

from gp_slurm.inventory import parse_listing
from gp_slurm.jobspec import JobRequest, rest_job_body, sbatch_argv, store_comment
from gp_slurm.resources import JobResources

STORE = "0123456789abcdef"


def request(env: dict[str, str]) -> JobRequest:
    return JobRequest("kid", "#!/bin/sh\n", env, JobResources(cpus=1))


def test_a_gp_server_launch_carries_its_store_in_the_job_comment() -> None:
    env = {"KERNEL_GP_SERVER_STORE": STORE}
    assert f"--comment=gp-server-store={STORE}" in sbatch_argv("sbatch", request(env))
    assert rest_job_body(request(env))["job"]["comment"] == f"gp-server-store={STORE}"
    assert not any(a.startswith("--comment") for a in sbatch_argv("sbatch", request({})))
    assert "comment" not in rest_job_body(request({}))["job"]


def test_a_store_id_that_is_not_hex_is_not_written() -> None:
    assert store_comment({"KERNEL_GP_SERVER_STORE": "x --uid=0"}) == ""
    assert store_comment({"KERNEL_GP_SERVER_STORE": "a" * 65}) == ""


def test_listing_keeps_only_the_store_jobs() -> None:
    text = (
        f"12|kernel-a|gp-server-store={STORE}|2026-12-05T06:40:12\n"
        "13|kernel-b|gp-server-store=ffff|2026-12-05T06:40:13\n"
        "14|other|(null)|2026-12-05T06:40:14\n"
        f"15|odd|name|gp-server-store={STORE}|Unknown\n"
        "garbage\n"
    )
    found = parse_listing(text, STORE)
    assert [(r.name, r.kernel_id) for r in found] == [("12", "kernel-a"), ("15", "odd|name")]
    assert found[0].created_at is not None
    assert found[1].created_at is None
    assert found[0].describe() == "slurm job 12 (kernel kernel-a)"
