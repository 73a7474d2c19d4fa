"""Host entries, target resolution and the remote scripts, without any sshd.

The scripts are run by the local ``/bin/sh -s`` exactly as sshd would run them, so quoting,
detaching, status, signals and clean-up are checked for real.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import paramiko
import pytest

from gp_distributed.remote_commands import (
    LOG_TAIL_LINES,
    RemoteLauncherRef,
    cleanup_script,
    launch_script,
    parse_launched,
    parse_status,
    signal_script,
    status_script,
)
from gp_distributed.ssh import (
    HostEntry,
    SshSettings,
    is_ssh_host,
    parse_host_entry,
    resolve_target,
)

# -- host entries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("node1", HostEntry("node1")),
        ("node1:2222", HostEntry("node1", port=2222)),
        ("alice@node1", HostEntry("node1", user="alice")),
        ("alice@node1:2222", HostEntry("node1", user="alice", port=2222)),
        ("  10.0.0.7:22 ", HostEntry("10.0.0.7", port=22)),
        ("[::1]:2222", HostEntry("::1", port=2222)),
        ("bob@[fe80::1]", HostEntry("fe80::1", user="bob")),
        ("::1", HostEntry("::1")),
        ("svc@corp@node1", HostEntry("node1", user="svc@corp")),
    ],
)
def test_parse_host_entry(entry: str, expected: HostEntry) -> None:
    assert parse_host_entry(entry) == expected


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("", "no host"),
        ("@node1", "empty user"),
        ("node1:", "empty port"),
        ("node1:ssh", "port 'ssh'"),
        ("node1:70000", "port '70000'"),
        ("node 1", "white space"),
        ("[::1", "ipv6"),
        ("[::1]2222", "ipv6"),
    ],
)
def test_parse_host_entry_refuses(entry: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as refused:
        parse_host_entry(entry)
    assert repr(entry) in str(refused.value)


def test_is_ssh_host() -> None:
    def local(host: str) -> bool:
        return host in ("localhost", "127.0.0.1")

    assert not is_ssh_host("localhost", local, ssh_local_hosts=False)
    assert not is_ssh_host("127.0.0.1", local, ssh_local_hosts=False)
    assert is_ssh_host("127.0.0.1:2222", local, ssh_local_hosts=False)
    assert is_ssh_host("me@localhost", local, ssh_local_hosts=False)
    assert is_ssh_host("localhost", local, ssh_local_hosts=True)
    assert is_ssh_host("node1", local, ssh_local_hosts=False)


SSH_CONFIG = """
Host bk1
  HostName 10.1.2.3
  User carol
  Port 2200
  IdentityFile ~/.ssh/bk1_key
  UserKnownHostsFile /etc/gp/known_hosts

Host *
  User dave
"""


def test_resolve_target_follows_ssh_config_like_openssh() -> None:
    config = paramiko.SSHConfig.from_text(SSH_CONFIG)
    target = resolve_target("bk1", SshSettings(), config)
    assert (target.hostname, target.user, target.port) == ("10.1.2.3", "carol", 2200)
    assert target.key_files == (os.path.expanduser("~/.ssh/bk1_key"),)
    assert target.known_hosts == ("/etc/gp/known_hosts",)
    assert target.host_key_policy == "reject"
    other = resolve_target("node9", SshSettings(), config)
    assert (other.hostname, other.user, other.port, other.key_files) == ("node9", "dave", 22, ())


def test_resolve_target_precedence_entry_then_settings_then_config() -> None:
    config = paramiko.SSHConfig.from_text(SSH_CONFIG)
    settings = SshSettings(user="svc", port=2022, key_file="/keys/gp", known_hosts="/kh/a:/kh/b")
    target = resolve_target("bk1", settings, config)
    assert (target.hostname, target.user, target.port) == ("10.1.2.3", "svc", 2022)
    assert target.key_files == ("/keys/gp",)
    assert target.known_hosts == ("/kh/a", "/kh/b")
    pinned = resolve_target("erin@bk1:2999", settings, config)
    assert (pinned.user, pinned.port, pinned.label) == ("erin", 2999, "erin@10.1.2.3:2999")


def test_resolve_target_defaults_without_any_config(tmp_path: Path) -> None:
    settings = SshSettings(config_file=str(tmp_path / "absent"))
    target = resolve_target("node1", settings)
    assert (target.hostname, target.port, target.key_files, target.known_hosts) == (
        "node1",
        22,
        (),
        (),
    )
    assert target.user == os.environ.get("USER", target.user)
    with pytest.raises(ValueError, match="host key policy 'trust-all'"):
        resolve_target("node1", SshSettings(host_key_policy="trust-all", config_file=""))


# -- the scripts, run by the local /bin/sh -s -----------------------------------------------------

HOSTILE = [
    "'; touch {marker}-1; echo '",
    "$(touch {marker}-2)",
    "`touch {marker}-3`",
    '"; touch {marker}-4; echo "',
    "one\ntouch {marker}-5\n'\"\ntwo",
    "\\'$(touch {marker}-6)\\",
    "--help",
    "*",
    "",
    "${{HOME}} $HOME ~",
]

REPORTER = (
    "import json, os, sys, time\n"
    "out = sys.argv[1]\n"
    "data = {'argv': sys.argv[2:], 'pid': os.getpid(), 'pgid': os.getpgid(0),"
    " 'sid': os.getsid(0), 'cwd': os.getcwd(),"
    " 'env': {k: v for k, v in os.environ.items() if k.startswith(('KERNEL_', 'GP_'))}}\n"
    "json.dump(data, open(out + '.tmp', 'w')); os.rename(out + '.tmp', out)\n"
    "print('reporter done', flush=True)\n"
    "time.sleep(float(os.environ.get('KERNEL_SLEEP', '0')))\n"
    "sys.exit(int(os.environ.get('KERNEL_EXIT', '0')))\n"
)


def run_sh(script: str, env: dict[str, str] | None = None, timeout: float = 10) -> str:
    result = subprocess.run(
        ["/bin/sh", "-s"],
        input=script,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else dict(os.environ),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def exit_file(log_path: str) -> Path:
    return Path(log_path).parent / "exit"


def wait_for(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


@pytest.fixture
def marker() -> str:
    return f"/tmp/pwned-{uuid.uuid4().hex}"


def launch(
    tmp_path: Path, args: list[str], env: dict[str, str], kernel_id: str = "k-123", **kw: object
) -> tuple[str, Path]:
    out = tmp_path / "report.json"
    argv = [sys.executable, "-c", REPORTER, str(out), *args]
    shell_env = dict(os.environ, TMPDIR=str(tmp_path), SSH_CONNECTION="127.0.0.1 5000 127.0.0.7 22")
    return run_sh(launch_script(argv, env, kernel_id, **kw), shell_env), out  # type: ignore[arg-type]


def test_launch_script_passes_argv_and_env_as_literal_data(tmp_path: Path, marker: str) -> None:
    args = [p.format(marker=marker) for p in HOSTILE]
    env = {f"KERNEL_V{i}": p.format(marker=marker) for i, p in enumerate(HOSTILE)}
    env["GP_LAUNCH_SECRET"] = "never-on-a-command-line"
    stdout, out = launch(tmp_path, args, env, cwd=str(tmp_path))
    launched = parse_launched(stdout)
    assert launched is not None
    wait_for(out)
    report = json.loads(out.read_text())
    assert report["argv"] == args
    assert {k: v for k, v in report["env"].items() if k.startswith("KERNEL_V")} == {
        k: v for k, v in env.items() if k.startswith("KERNEL_V")
    }
    assert report["env"]["GP_LAUNCH_SECRET"] == "never-on-a-command-line"
    assert report["env"]["GP_KERNEL_IP"] == "127.0.0.7"  # from SSH_CONNECTION
    assert report["cwd"] == str(tmp_path)
    assert list(Path("/tmp").glob(Path(marker).name + "*")) == []
    # Detached: its own session and process group, led by the recorded pid.
    assert launched.pid == launched.pgid == report["sid"] == report["pgid"]
    assert launched.log_path.startswith(str(tmp_path / "gp-launcher-k-123."))
    assert launched.log_path.endswith("/launcher.log")
    assert os.stat(os.path.dirname(launched.log_path)).st_mode & 0o777 == 0o700
    wait_for(exit_file(launched.log_path))
    assert "reporter done" in Path(launched.log_path).read_text()
    assert exit_file(launched.log_path).read_text().strip() == "0"


def test_launch_script_keeps_a_kernel_ip_the_host_sets(tmp_path: Path) -> None:
    stdout, out = launch(tmp_path, [], {"GP_KERNEL_IP": "10.9.9.9"})
    wait_for(out)
    assert json.loads(out.read_text())["env"]["GP_KERNEL_IP"] == "10.9.9.9"
    (tmp_path / "second").mkdir()
    stdout, second = launch(tmp_path / "second", [], {}, kernel_ip_from_connection=False)
    wait_for(second)
    assert parse_launched(stdout) is not None
    assert "GP_KERNEL_IP" not in json.loads(second.read_text())["env"]


def test_launch_script_returns_while_the_launcher_runs(tmp_path: Path) -> None:
    """The shell (and so the ssh channel) ends at once; the launcher keeps running."""
    started = time.monotonic()
    stdout, out = launch(tmp_path, [], {"KERNEL_SLEEP": "30"})
    assert time.monotonic() - started < 5
    launched = parse_launched(stdout)
    assert launched is not None
    ref = RemoteLauncherRef("k-123", launched.pid, launched.pgid, launched.log_path)
    wait_for(out)
    try:
        statuses = parse_status(run_sh(status_script([ref])))
        assert statuses["k-123"].running
    finally:
        assert "GP_SIGNALED" in run_sh(signal_script(ref, signal.SIGKILL))
    deadline = time.monotonic() + 10
    while parse_status(run_sh(status_script([ref])))["k-123"].running:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "GP_GONE" in run_sh(signal_script(ref, signal.SIGTERM))


def test_status_reports_exit_code_and_log_tail(tmp_path: Path) -> None:
    stdout, _ = launch(tmp_path, [], {"KERNEL_EXIT": "3"}, kernel_id="k-exit")
    launched = parse_launched(stdout)
    assert launched is not None
    wait_for(exit_file(launched.log_path))
    with open(launched.log_path, "a") as log:
        for i in range(LOG_TAIL_LINES + 5):
            log.write(f"line {i} with 'quotes' and $(stuff)\n")
    ref = RemoteLauncherRef("k-exit", launched.pid, launched.pgid, launched.log_path)
    gone = RemoteLauncherRef("k-gone", 999_999_999, 0, str(tmp_path / "no-such-log"))
    statuses = parse_status(run_sh(status_script([ref, gone])))
    assert statuses["k-exit"].state == "exited"
    assert statuses["k-exit"].exit_code == 3
    assert len(statuses["k-exit"].tail) == LOG_TAIL_LINES
    assert statuses["k-exit"].tail[-1] == f"line {LOG_TAIL_LINES + 4} with 'quotes' and $(stuff)"
    assert statuses["k-gone"].state == "gone"
    assert statuses["k-gone"].exit_code is None

    run_sh(cleanup_script(ref))
    assert not os.path.exists(os.path.dirname(launched.log_path))


def test_cleanup_kills_what_is_left_of_the_kernel(tmp_path: Path) -> None:
    stdout, out = launch(tmp_path, [], {"KERNEL_SLEEP": "60"}, kernel_id="k-left")
    launched = parse_launched(stdout)
    assert launched is not None
    wait_for(out)
    ref = RemoteLauncherRef("k-left", launched.pid, launched.pgid, launched.log_path)
    run_sh(cleanup_script(ref))
    deadline = time.monotonic() + 10
    while parse_status(run_sh(status_script([ref])))["k-left"].running:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not os.path.exists(os.path.dirname(launched.log_path))


def _start_finishing_launcher(tmp_path: Path, kernel_id: str) -> tuple[RemoteLauncherRef, Path]:
    """A launcher that writes ``finished`` 0.5 s after it starts, then exits by itself."""
    done = tmp_path / f"finished-{kernel_id}"
    code = "import sys, time; time.sleep(0.5); open(sys.argv[1], 'w').close()"
    shell_env = dict(os.environ, TMPDIR=str(tmp_path))
    launched = parse_launched(
        run_sh(launch_script([sys.executable, "-c", code, str(done)], {}, kernel_id), shell_env)
    )
    assert launched is not None
    return RemoteLauncherRef(kernel_id, launched.pid, launched.pgid, launched.log_path), done


def test_cleanup_of_an_ending_launcher_lets_it_finish_first(tmp_path: Path) -> None:
    """After a requested shutdown the launcher still removes its folder (the kernel's key)
    once its comm port closed: the cleanup waits for its exit, never longer than the grace."""
    ref, done = _start_finishing_launcher(tmp_path, "k-ending")
    run_sh(cleanup_script(ref, ending=True))
    assert done.exists()  # not killed before it finished
    assert not os.path.exists(os.path.dirname(ref.log_path))

    killed, never = _start_finishing_launcher(tmp_path, "k-not-ending")
    run_sh(cleanup_script(killed))  # not known to be ending: killed at once
    time.sleep(1.0)
    assert not never.exists()

    stdout, out = launch(tmp_path, [], {"KERNEL_SLEEP": "60"}, kernel_id="k-stuck")
    launched = parse_launched(stdout)
    assert launched is not None
    wait_for(out)
    stuck = RemoteLauncherRef("k-stuck", launched.pid, launched.pgid, launched.log_path)
    started = time.monotonic()
    run_sh(cleanup_script(stuck, ending=True))
    # the grace is bounded (2 s), then the kill: far less than the launcher's 60 s sleep (a
    # generous bound, for a loaded machine; the speed itself is the benchmark's business)
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 10
    while parse_status(run_sh(status_script([stuck])))["k-stuck"].running:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_signal_script_spares_a_group_without_the_kernel() -> None:
    """A recycled process group (no process naming the kernel) is never signalled."""
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        ref = RemoteLauncherRef("k-not-here", sleeper.pid, sleeper.pid, "")
        assert "GP_GONE" in run_sh(signal_script(ref, signal.SIGKILL))
        assert sleeper.poll() is None
        assert not parse_status(run_sh(status_script([ref])))["k-not-here"].running
    finally:
        sleeper.kill()
        sleeper.wait()


def test_scripts_quote_the_kernel_id_and_paths() -> None:
    ref = RemoteLauncherRef("k'1", 10, 10, "/tmp/a b'c")
    for script in (
        status_script([ref]),
        signal_script(ref, signal.SIGINT, 11),
        cleanup_script(ref),
        cleanup_script(RemoteLauncherRef("k'1", 10, 10, "/tmp/a b'c/launcher.log"), True),
    ):
        assert "'k'\"'\"'1'" in script
    assert "kill -s INT 11" in signal_script(ref, signal.SIGINT, 11)
    assert "kill -s TERM -- -10" in signal_script(ref, signal.SIGTERM)
    with pytest.raises(ValueError, match="argv is empty"):
        launch_script([], {}, "k1")


def test_launch_script_without_setsid_falls_back_to_nohup(tmp_path: Path) -> None:
    """Hosts without setsid(1) (macOS): the launcher still detaches; its group is unknown (0)
    until the launcher reports it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mktemp", "nohup"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    out = tmp_path / "report.json"
    argv = [sys.executable, "-c", REPORTER, str(out)]
    env = dict(os.environ, PATH=str(bin_dir), TMPDIR=str(tmp_path))
    launched = parse_launched(run_sh(launch_script(argv, {}, "k-nohup"), env))
    assert launched is not None
    assert launched.pgid == 0
    wait_for(out)
    assert json.loads(out.read_text())["pid"] != launched.pid  # the wrapper's child
    wait_for(exit_file(launched.log_path))


def test_a_kernel_log_line_cannot_forge_a_status() -> None:
    # str.splitlines() splits at \x1c and \u2028 too: a log line could forge a GP_STATUS line.
    stdout = (
        "GP_STATUS k-1 gone\n"
        "GP_LOG k-1 x\x1cGP_STATUS k-2 running\n"
        "GP_LOG k-1 y\u2028GP_STATUS k-3 exited 0\n"
        "GP_LOG k-1 \x1b[31mred\x1b[0m\n"
    )
    statuses = parse_status(stdout)
    assert set(statuses) == {"k-1"}
    assert all("\x1b" not in line and "\x1c" not in line for line in statuses["k-1"].tail)
    assert "\\x1b[31mred" in statuses["k-1"].tail[2]


def test_status_parsing_is_bounded() -> None:
    huge = "GP_STATUS k-1 exited 3\n" + "GP_LOG k-1 " + "z" * 100_000 + "\n"
    huge += "GP_LOG k-1 more\n" * 10_000
    huge += "GP_STATUS " + "k" * 500 + " running\n"  # not a kernel id
    huge += "GP_STATUS k-2 exited \u0661\n"  # an Arabic digit is not an exit code
    huge += "GP_STATUS k-3 sleeping\n"  # not a state
    statuses = parse_status(huge)
    assert set(statuses) == {"k-1", "k-2"}
    assert statuses["k-1"].exit_code == 3
    assert statuses["k-2"].exit_code is None
    assert len(statuses["k-1"].tail) == 20
    assert all(len(line) <= 510 for line in statuses["k-1"].tail)


def test_launched_line_needs_ascii_numbers_and_a_path() -> None:
    assert parse_launched("GP_LAUNCHED \u0661\u0662 0 /tmp/x/launcher.log\n") is None
    assert parse_launched("GP_LAUNCHED 0 0 /tmp/x/launcher.log\n") is None
    launched = parse_launched("noise\x1cGP_LAUNCHED 12 12 /tmp/x/launcher.log\r\n")
    assert launched is None
    launched = parse_launched("GP_LAUNCHED 12 12 /tmp/x/launcher.log\r\n")
    assert launched is not None
    assert (launched.pid, launched.pgid, launched.log_path) == (12, 12, "/tmp/x/launcher.log")
