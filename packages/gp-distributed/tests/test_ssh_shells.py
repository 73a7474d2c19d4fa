"""Framing of scripts for long-lived remote shells, and reading their output back, with a
stand-in channel (the real sshd cases are in tests-integration/test_ssh_kernels.py)."""

from __future__ import annotations

import subprocess
import time

import pytest

from gp_distributed import ssh

MARKER = "GP_END_" + "ab" * 16


class FakeChannel:
    """Hands out pre-recorded chunks of one stream, then end of file."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.timeouts: list[float] = []

    def settimeout(self, seconds: float) -> None:
        self.timeouts.append(seconds)

    def recv(self, size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def read(chunks: list[bytes], limit: int = 0) -> tuple[bytes, int]:
    channel = FakeChannel(chunks)
    return ssh._read_until_marker(
        channel,  # type: ignore[arg-type]
        channel.recv,
        MARKER.encode(),
        time.monotonic() + 5,
        limit,
    )


def run_framed(script: str) -> subprocess.CompletedProcess[bytes]:
    """The framed script through a real /bin/sh -s, as the remote shell runs it."""
    return subprocess.run(
        ["/bin/sh", "-s"], input=ssh.framed_script(script, MARKER).encode(), capture_output=True
    )


def test_output_and_exit_status_come_back_through_a_real_shell() -> None:
    done = run_framed("echo out; echo err >&2; exit 7\n")
    assert read([done.stdout]) == (b"out\n", 7)
    assert read([done.stderr]) == (b"err\n", 0)


def test_output_without_a_final_newline_is_kept_exactly() -> None:
    done = run_framed("printf 'no newline'")
    assert read([done.stdout]) == (b"no newline", 0)


def test_the_script_cannot_change_the_long_lived_shell_or_read_its_input() -> None:
    """cd, set, variables, exit and reads of stdin stay in the script's subshell: the next
    framed command in the same shell starts as the first did."""
    first = ssh.framed_script("cd /; set -f; GP_X=1; export GP_X; cat; exit 3\n", MARKER)
    second = ssh.framed_script('echo "$(pwd) ${GP_X:-unset} $-"; echo *\n', "GP_END_2")
    done = subprocess.run(
        ["/bin/sh", "-s"], input=(first + second).encode(), capture_output=True, cwd="/tmp"
    )
    stdout = done.stdout.decode()
    assert f"\n{MARKER} 3\n" in stdout  # cat read nothing: the second script was not eaten
    line = stdout.split(f"\n{MARKER} 3\n", 1)[1].splitlines()[0]
    assert line.split()[:2] == ["/tmp", "unset"]
    assert "f" not in line.split()[2]  # globbing is on again
    assert "\nGP_END_2 0\n" in stdout


def test_a_marker_cut_between_reads_is_found() -> None:
    stream = b"line one\nline two\n\n" + MARKER.encode() + b" 0\n"
    for cut in range(1, len(stream)):
        assert read([stream[:cut], stream[cut:]]) == (b"line one\nline two\n", 0)
    assert read([bytes([b]) for b in stream]) == (b"line one\nline two\n", 0)


def test_a_line_with_another_nonce_is_output_not_the_end() -> None:
    forged = b"\nGP_END_" + b"cd" * 16 + b" 0\n"
    stream = forged + b"after\n\n" + MARKER.encode() + b" 1\n"
    assert read([stream]) == (forged + b"after\n", 1)


def test_output_beyond_the_limit_is_read_and_dropped() -> None:
    body = b"x" * 5000
    assert read([body[:3000], body[3000:], b"\n" + MARKER.encode() + b" 0\n"], limit=1000) == (
        b"x" * 1000,
        0,
    )


def test_end_of_file_before_the_marker_means_the_shell_ended() -> None:
    with pytest.raises(ssh._ShellEnded):
        read([b"partial output\n"])


def test_no_marker_by_the_deadline_is_a_timeout() -> None:
    channel = FakeChannel([b"x"] * 10)
    with pytest.raises(TimeoutError):
        ssh._read_until_marker(
            channel,  # type: ignore[arg-type]
            channel.recv,
            MARKER.encode(),
            time.monotonic() - 1,
        )


def test_only_a_marker_made_here_is_formatted_into_the_shell_text() -> None:
    for bad in ("GP_END_$(id)", "GP END", "GP_END_x;rm", "GP_END_\u0661"):
        with pytest.raises(ValueError, match="bad end marker"):
            ssh.framed_script("true\n", bad)
