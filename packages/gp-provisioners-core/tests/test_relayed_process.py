"""A child's output reaches the log line by line, bounded and escaped; its group is stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import pytest

from gp_provisioners_core.relayed_process import (
    MAX_RELAYED_LINE_BYTES,
    RelayedProcess,
    printable_line,
)


def _wait_for_exit(process: RelayedProcess, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (code := process.exit_code()) is None:
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.02)
    return code


def test_output_is_relayed_and_its_tail_kept(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test-relay")
    script = (
        "import sys\n"
        "for i in range(5): print(f'line {i}')\n"
        "print('\\x1b[31mred\\x07', flush=True)\n"
        "sys.stdout.write('x' * 10000 + '\\n')\n"
        "sys.exit(3)\n"
    )
    with caplog.at_level(logging.INFO, logger="test-relay"):
        process = RelayedProcess.start(
            [sys.executable, "-c", script],
            dict(os.environ),
            None,
            log,
            log_prefix="[child {pid}]",
            thread_name="relay-{pid}",
            tail_lines=5,
        )
        assert _wait_for_exit(process) == 3
        tail = process.output_tail(wait=10).split("\n")
    messages = [r.getMessage() for r in caplog.records if r.name == "test-relay"]
    assert messages[0] == f"[child {process.pid}] line 0"
    assert f"[child {process.pid}] \\x1b[31mred\\x07" in messages
    # 10000 characters arrive as three records of at most MAX_RELAYED_LINE_BYTES
    long_parts = [m for m in messages if m.endswith("x" * 100)]
    assert len(long_parts) == 3
    assert all(len(m) <= len(f"[child {process.pid}] ") + MAX_RELAYED_LINE_BYTES for m in messages)
    assert len(tail) == 5
    assert tail[0] == "line 4"


def test_signal_group_stops_children_that_outlive_the_child() -> None:
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    process = RelayedProcess.start(
        [sys.executable, "-c", script],
        dict(os.environ),
        None,
        logging.getLogger("test-relay"),
        log_prefix="[child]",
        thread_name="relay",
    )
    deadline = time.monotonic() + 30
    while not process.output_tail():
        assert time.monotonic() < deadline, "the child printed nothing"
        time.sleep(0.02)
    grandchild = int(process.output_tail())
    process.signal_group(signal.SIGKILL)
    assert process.exit_code() == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived the group kill"
        time.sleep(0.02)
    process.signal_group(signal.SIGKILL)  # a group already gone is fine


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_printable_line_escapes_control_characters() -> None:
    assert printable_line(b"a\tb\x1b[0m\xff\r\n") == "a\tb\\x1b[0m\ufffd"
    assert printable_line("\u2028".encode()) == "\\u2028"
