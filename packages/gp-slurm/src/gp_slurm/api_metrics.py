"""Bounded labels for the Slurm calls counted in ``gp_backend_api_requests_total``.

Called by the command runner (``sbatch``, ``scancel``, ``squeue``: the command's name is the
operation) and the slurmrestd client (the verb and the path with job ids replaced).
"""

from __future__ import annotations

import re

BACKEND = "slurm"
_JOB_ID = re.compile(r"/\d+(?=/|$)")


def rest_operation(method: str, path: str) -> str:
    """``DELETE /job/123?signal=2`` -> ``DELETE /job/{id}``."""
    return f"{method.upper()} {_JOB_ID.sub('/{id}', path.split('?', 1)[0])}"
