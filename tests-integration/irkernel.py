"""Small helpers shared by the end-to-end suites (no tests here)."""

from __future__ import annotations

import functools
import shutil
import subprocess


@functools.cache
def irkernel_available() -> bool:
    """True when Rscript runs and IRkernel loads (Debian: r-base-core, r-cran-irkernel)."""
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(
        ["Rscript", "-e", "library(IRkernel)"], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0
