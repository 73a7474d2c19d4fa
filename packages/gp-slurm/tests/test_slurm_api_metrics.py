"""slurmrestd request labels stay bounded: job ids never reach a metric label."""

from __future__ import annotations

from gp_slurm.api_metrics import rest_operation


def test_job_ids_are_replaced() -> None:
    assert rest_operation("delete", "/job/4711?signal=2") == "DELETE /job/{id}"
    assert rest_operation("GET", "/jobs") == "GET /jobs"
    assert rest_operation("POST", "/job/submit") == "POST /job/submit"
