"""RM requests per status interval stay flat as kernels grow: the same with 20 kernels as with
2 (one applications query per interval serves every kernel; ``poll()`` makes no request).
Measured against the RM emulator (backends/yarn_emulator.py), not a real ResourceManager.
"""

from __future__ import annotations

import pytest
from backends.yarn_harness import measure_rm_requests_per_interval


def test_rm_requests_per_interval_do_not_grow_with_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    two, twenty = measure_rm_requests_per_interval((2, 20), interval=0.5, intervals=4)
    print(two, twenty, sep="\n")
    for row in (two, twenty):
        # Every RM request of the window is the watcher's batched applications query...
        assert row["request_kinds"] == ["GET /ws/v1/cluster/apps"], row
        assert abs(row["rm_requests"] - row["watcher_queries"]) <= 1, row
        # ...and the many poll() calls made none.
        assert row["polls"] >= 50 * row["kernels"] / 2, row
    assert round(two["rm_requests_per_interval"]) == round(twenty["rm_requests_per_interval"]) == 1
