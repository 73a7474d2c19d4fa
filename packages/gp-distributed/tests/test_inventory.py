"""The ssh orphan inventory's scripts, run with /bin/sh on this host (what ssh runs remotely)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from gp_distributed.inventory import listing_script, parse_listing, removal_script

STORE = uuid.uuid4().hex[:16]  # this run's own: another run's launchers never match


def sh(script: str) -> str:
    return subprocess.run(
        ["/bin/sh", "-s"], input=script, capture_output=True, text=True, check=True, timeout=30
    ).stdout


def test_a_launcher_of_the_store_is_listed_then_killed_with_its_session() -> None:
    kernel_id = str(uuid.uuid4())
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", "--kernel-id", kernel_id]
    ours = subprocess.Popen(
        sleeper, env={**os.environ, "KERNEL_GP_SERVER_STORE": STORE}, start_new_session=True
    )
    other = subprocess.Popen(
        sleeper, env={**os.environ, "KERNEL_GP_SERVER_STORE": "ffff"}, start_new_session=True
    )
    try:
        found = parse_listing("h1", sh(listing_script(STORE)))
        assert [(r.name, r.kernel_id) for r in found] == [(f"h1/{ours.pid}", kernel_id)]
        sh(removal_script(other.pid, STORE))  # not the store's: left alone
        sh(removal_script(ours.pid, STORE))
        deadline = time.monotonic() + 10
        while ours.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ours.poll() is not None
        assert other.poll() is None
    finally:
        for process in (ours, other):
            process.kill()
            process.wait()


def test_listing_lines_that_are_not_ours_are_ignored() -> None:
    text = "GP_ORPHAN 12 bad/id;rm\nnoise\nGP_ORPHAN x 0b7c1d2e-aaaa-bbbb-cccc-123456789abc\n"
    assert parse_listing("h", text) == []
