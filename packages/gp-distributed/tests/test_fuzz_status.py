"""Fuzzing (Hypothesis) of the parsers of what an ssh host prints back: whatever the remote
output holds, they never raise, stay bounded, and a log line cannot forge a status."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gp_distributed.remote_commands import (
    LOG_TAIL_LINES,
    MAX_TAIL_LINE_CHARS,
    parse_launched,
    parse_status,
)
from gp_provisioners_core.argv import is_valid_kernel_id
from gp_provisioners_core.testing.fuzz import count_case

kernel_ids = st.sampled_from(["k-1", "k-2", "x" * 200, "bad id", ""])
tokens = st.one_of(
    st.sampled_from(["GP_STATUS", "GP_LOG", "GP_LAUNCHED", "running", "exited", "gone", "\n"]),
    kernel_ids,
    st.text(max_size=30),
    st.integers().map(str),
    st.sampled_from(["\x1c", "\x85", "\u2028", "\r", "\x1b[2J", "\u0661"]),
)
outputs = st.lists(tokens, max_size=60).map(" ".join) | st.text(max_size=2000)


@given(stdout=outputs)
def test_status_parser_is_total_and_bounded(stdout: str) -> None:
    count_case("status")
    statuses = parse_status(stdout)
    for kernel_id, status in statuses.items():
        assert is_valid_kernel_id(kernel_id)
        assert status.state in ("running", "exited", "gone")
        assert status.exit_code is None or -9999 <= status.exit_code <= 9999
        assert len(status.tail) <= LOG_TAIL_LINES
        for line in status.tail:
            assert len(line) <= MAX_TAIL_LINE_CHARS + 3
            assert all(c.isprintable() or c == "\t" for c in line)
    # A status line only comes from a line of its own.
    for kernel_id in statuses:
        assert any(
            line.removesuffix("\r").startswith(f"GP_STATUS {kernel_id} ")
            for line in stdout.split("\n")
        )


@given(stdout=outputs)
def test_launched_parser_is_total(stdout: str) -> None:
    count_case("launched")
    launched = parse_launched(stdout)
    if launched is not None:
        assert launched.pid > 0
        assert launched.pgid >= 0
        assert launched.log_path.startswith("/")
        assert "\n" not in launched.log_path
