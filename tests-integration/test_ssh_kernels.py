"""gp-distributed over real sshd: one kernel's life, injection, secrets, re-attach.

Every kernel is a real ipykernel started by the launcher on an ssh host (127.0.0.x) and
reached over ZeroMQ.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from backends.ssh_fixtures import SshKernelspec
from backends.sshd import SshdCluster
from jupyter_client.manager import AsyncKernelManager

from gp_distributed import DistributedProvisioner, remote_process
from gp_distributed.ssh import (
    SshCommandError,
    SshConnectError,
    SshConnectionPool,
    SshSettings,
    resolve_target,
    run_script,
    run_script_async,
)
from gp_provisioners_core.errors import InvalidLaunchParameterError, LaunchFailedError
from gp_provisioners_core.testing import provisioner_of

pytestmark = pytest.mark.usefixtures("ssh_host_selector")


def _launcher_log(manager: AsyncKernelManager) -> str:
    return str(provisioner_of(manager, DistributedProvisioner).remote_log)


async def test_start_execute_interrupt_shutdown_on_one_host(ssh_kernelspec: SshKernelspec) -> None:
    host = ssh_kernelspec.entry("127.0.0.2")
    started = time.monotonic()
    manager = await ssh_kernelspec.start(env={"KERNEL_REMOTE_HOST": host})
    launch_seconds = time.monotonic() - started
    kernel_id = manager.kernel_id
    provisioner = provisioner_of(manager, DistributedProvisioner)
    try:
        assert provisioner.assigned_host == host
        assert manager.get_connection_info()["ip"] == "127.0.0.2"
        assert provisioner.launcher_pid
        assert provisioner.launcher_pgid == provisioner.launcher_pid
        assert provisioner.comm_port
        log = _launcher_log(manager)
        assert os.path.exists(log)
        out = await ssh_kernelspec.execute(
            manager,
            "import os, socket\n"
            "print(os.environ['KERNEL_USERNAME'], os.environ.get('GP_KERNEL_IP'),"
            " os.getpgid(0), 'GP_LAUNCH_SECRET' in os.environ)",
        )
        assert out.split() == ["alice", "127.0.0.2", str(provisioner.launcher_pgid), "False"]
        # While the comm port answers, poll makes no ssh round trip.
        ssh_calls: list[tuple[Any, ...]] = []
        real = run_script_async

        async def counting(*args: Any, **kwargs: Any) -> Any:
            ssh_calls.append(args)
            return await real(*args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(remote_process, "run_script_async", counting)
            assert [await provisioner.poll() for _ in range(20)] == [None] * 20
        assert ssh_calls == []

        # Interrupt a busy cell through the comm port.
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=30)
        msg_id = client.execute("import time; time.sleep(60)")
        await asyncio.sleep(1.0)
        await manager.interrupt_kernel()
        reply = await client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        client.stop_channels()
    finally:
        await manager.shutdown_kernel()
    assert await ssh_kernelspec.wait_no_processes([kernel_id]) == []
    assert not os.path.exists(os.path.dirname(log))
    print(f"launch over ssh took {launch_seconds:.2f}s")


async def test_launch_secret_never_on_a_command_line(ssh_kernelspec: SshKernelspec) -> None:
    manager = await ssh_kernelspec.start(
        env={"KERNEL_REMOTE_HOST": ssh_kernelspec.entry("127.0.0.3")}
    )
    try:
        launcher_pid = provisioner_of(
            manager, DistributedProvisioner
        ).pid  # the launcher itself, from its connection info
        environ = Path(f"/proc/{launcher_pid}/environ").read_bytes().split(b"\0")
        secrets = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"GP_LAUNCH_SECRET=")]
        assert secrets
        assert len(secrets[0]) >= 32
        secret = secrets[0]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                assert secret not in cmdline, f"the launch secret is on the command line of {entry}"
        # Only KERNEL_*, the launch secret, GP_TRANSPORT_ENCRYPTION and GP_KERNEL_IP travel.
        names = {e.split(b"=", 1)[0].decode() for e in environ if b"=" in e}
        assert "JUPYTER_PATH" not in names
        assert "GP_SSH_KEY_FILE" not in names
        assert {"KERNEL_ID", "KERNEL_USERNAME", "GP_TRANSPORT_ENCRYPTION"} <= names
    finally:
        await manager.shutdown_kernel()


PAYLOADS = [
    "'; touch {marker}-1; echo '",
    "$(touch {marker}-2)",
    "`touch {marker}-3`",
    '"; touch {marker}-4; echo "',
    "first line\ntouch {marker}-5\n'\n\"\nlast",
    "\\'$(touch {marker}-6)\\",
    "x; touch {marker}-7 #",
    "${{IFS}}$(touch${{IFS}}{marker}-8)",
]


async def test_kernel_values_reach_the_kernel_literally_and_run_nothing(
    ssh_kernelspec: SshKernelspec,
) -> None:
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    values = {f"KERNEL_INJECT_{i}": p.format(marker=marker) for i, p in enumerate(PAYLOADS)}
    manager = await ssh_kernelspec.start(
        env={"KERNEL_REMOTE_HOST": ssh_kernelspec.entry("127.0.0.2"), **values}
    )
    try:
        out = await ssh_kernelspec.execute(
            manager,
            "import json, os\n"
            "print(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith('KERNEL_INJECT_')}))",
        )
        assert json.loads(out) == values
    finally:
        await manager.shutdown_kernel()
    assert list(Path("/tmp").glob(Path(marker).name + "*")) == []


async def test_hostile_kernel_id_and_variable_names_are_refused(
    ssh_kernelspec: SshKernelspec,
) -> None:
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    host = ssh_kernelspec.entry("127.0.0.2")
    for kernel_id in (f"x;touch {marker}", f"$(touch {marker})", f"a\ntouch {marker}"):
        manager = AsyncKernelManager(kernel_name=ssh_kernelspec.kernel_name)
        with pytest.raises(InvalidLaunchParameterError, match="Kernel id"):
            await manager.start_kernel(
                kernel_id=kernel_id,
                env=dict(os.environ, KERNEL_USERNAME="alice", KERNEL_REMOTE_HOST=host),
            )
    with pytest.raises(InvalidLaunchParameterError, match="not a valid variable name"):
        await ssh_kernelspec.start(
            env={"KERNEL_REMOTE_HOST": host, f"KERNEL_X;touch {marker}": "1"}
        )
    assert not os.path.exists(marker)


async def test_restart_and_kill_leave_nothing_behind(ssh_kernelspec: SshKernelspec) -> None:
    manager = await ssh_kernelspec.start(
        env={"KERNEL_REMOTE_HOST": ssh_kernelspec.entry("127.0.0.3")}
    )
    kernel_id = manager.kernel_id
    first_pid, first_log = (
        provisioner_of(manager, DistributedProvisioner).launcher_pid,
        _launcher_log(manager),
    )
    try:
        await manager.restart_kernel()
        assert provisioner_of(manager, DistributedProvisioner).launcher_pid != first_pid
        assert not os.path.exists(first_log)
        out = await ssh_kernelspec.execute(manager, "print(6 * 7)")
        assert out.strip() == "42"
        left = [p for p in ssh_kernelspec.processes_of([kernel_id]) if str(first_pid) in p]
        assert left == []
    finally:
        await manager.shutdown_kernel(now=True)
    assert await ssh_kernelspec.wait_no_processes([kernel_id]) == []


REATTACH_SCRIPT = """
import asyncio, json, os, sys
from gp_provisioners_core.reattach import attach_kernel_manager

async def main():
    info = json.load(sys.stdin)
    manager = await attach_kernel_manager(sys.argv[1], info)
    alive = await manager.provisioner.poll() is None
    await manager.interrupt_kernel()
    await manager.shutdown_kernel()
    print(json.dumps({"alive": alive, "host": manager.provisioner.assigned_host}))

asyncio.run(main())
"""


async def test_another_process_reattaches_and_shuts_down(ssh_kernelspec: SshKernelspec) -> None:
    from gp_provisioners_core.reattach import serializable_provisioner_info

    host = ssh_kernelspec.entry("127.0.0.2")
    manager = await ssh_kernelspec.start(env={"KERNEL_REMOTE_HOST": host})
    kernel_id = manager.kernel_id
    info = serializable_provisioner_info(
        await provisioner_of(manager, DistributedProvisioner).get_provisioner_info()
    )
    for field in ("assigned_host", "launcher_pid", "launcher_pgid", "comm_port", "remote_log"):
        assert info[field], field
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", REATTACH_SCRIPT, ssh_kernelspec.kernel_name],
        input=json.dumps(info),
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"alive": True, "host": host}
    assert await ssh_kernelspec.wait_no_processes([kernel_id]) == []
    assert await provisioner_of(manager, DistributedProvisioner).poll() is not None
    await manager.shutdown_kernel(now=True)


async def test_kill_through_ssh_when_the_comm_port_is_gone(ssh_kernelspec: SshKernelspec) -> None:
    """SIGSTOP the launcher: the comm port no longer answers, so poll asks the host (alive),
    and shutdown falls back to signals over ssh."""
    manager = await ssh_kernelspec.start(
        env={"KERNEL_REMOTE_HOST": ssh_kernelspec.entry("127.0.0.3")}
    )
    kernel_id = manager.kernel_id
    provisioner = provisioner_of(manager, DistributedProvisioner)
    channel = provisioner.kernel_channel
    assert channel is not None, "a started kernel has its comm port channel"
    channel.timeout = 0.5
    os.kill(provisioner.pid, signal.SIGSTOP)
    try:
        assert await provisioner.poll() is None  # answered by ssh: the group still runs
        await manager.shutdown_kernel(now=True)
    finally:
        try:
            os.kill(provisioner.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert await ssh_kernelspec.wait_no_processes([kernel_id]) == []


def test_host_alias_from_ssh_config(sshd_cluster: SshdCluster) -> None:
    """Nothing set but an ssh_config: HostName, Port, User, IdentityFile and
    UserKnownHostsFile come from its Host block, as with OpenSSH."""
    settings = SshSettings(config_file=str(sshd_cluster.ssh_config))
    target = resolve_target(sshd_cluster.alias("127.0.0.3"), settings)
    assert (target.hostname, target.port) == ("127.0.0.3", sshd_cluster.port)
    result = run_script(target, 'set -- $SSH_CONNECTION; echo "$3"\n', 30)
    assert result.stdout.strip() == "127.0.0.3"


def _shell_settings(sshd_cluster: SshdCluster, **changes: object) -> SshSettings:
    return SshSettings(
        key_file=str(sshd_cluster.key_file),
        known_hosts=str(sshd_cluster.known_hosts),
        config_file="",
        user=sshd_cluster.user,
        **changes,  # type: ignore[arg-type]
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_commands_reuse_one_remote_shell_and_cannot_change_it(sshd_cluster: SshdCluster) -> None:
    """With ssh_reuse_shells (the default) commands to a host run one after the other in the
    same remote /bin/sh ($$ is that shell in a subshell), yet what a script changes (its
    directory, variables, options, exit) stays inside it and it reads nothing of the shell's
    input; a command that times out takes its shell with it.  Without the setting each
    command gets a new shell."""
    target = resolve_target(sshd_cluster.hosts["127.0.0.3"].entry, _shell_settings(sshd_cluster))
    pool = SshConnectionPool.instance()
    pool.discard(target)
    first = run_script(target, "echo $$\n", 30)
    shell_pid = int(first.stdout)  # a pid of this machine: 127.0.0.3 is a loopback alias
    changed = run_script(
        target, "cd /; GP_X=1; export GP_X; set -f; cat; echo gone >&2; exit 9\n", 30
    )
    assert (changed.exit_status, changed.stdout, changed.stderr) == (9, "", "gone\n")
    after = run_script(target, 'echo "$$ $(pwd) ${GP_X:-unset} options:$-"\n', 30)
    pid, cwd, value, options = after.stdout.split()
    assert int(pid) == shell_pid
    assert (value, cwd != "/") == ("unset", True)
    assert "f" not in options
    assert pool.idle_shells(target) == 1

    with pytest.raises(SshCommandError, match="did not finish within 1s"):
        run_script(target, "sleep 3\n", 1)
    assert pool.idle_shells(target) == 0  # the timed-out shell was closed, not kept
    assert int(run_script(target, "echo $$\n", 30).stdout) != shell_pid
    deadline = time.monotonic() + 15
    while _alive(shell_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(shell_pid)  # it ends once its command did

    fresh = resolve_target(
        sshd_cluster.hosts["127.0.0.3"].entry, _shell_settings(sshd_cluster, reuse_shells=False)
    )
    pids = {run_script(fresh, "echo $$\n", 30).stdout for _ in range(2)}
    assert len(pids) == 2


def test_a_remote_shell_that_dies_is_replaced(sshd_cluster: SshdCluster) -> None:
    target = resolve_target(sshd_cluster.hosts["127.0.0.3"].entry, _shell_settings(sshd_cluster))
    shell_pid = int(run_script(target, "echo $$\n", 30).stdout)
    with pytest.raises(SshCommandError, match="remote shell ended"):
        run_script(target, "kill -9 $$\n", 30)
    assert int(run_script(target, "echo $$\n", 30).stdout) != shell_pid
    os.kill(int(run_script(target, "echo $$\n", 30).stdout), signal.SIGKILL)  # while idle
    time.sleep(0.5)
    assert run_script(target, "echo ok\n", 30).stdout == "ok\n"

    # The connection's sshd processes end (sshd restarted) while a shell is idle: the next
    # command connects again, whether or not paramiko noticed before it was sent.
    listener = sshd_cluster.hosts["127.0.0.3"].pid
    for pid in _children(listener):
        os.kill(pid, signal.SIGKILL)
    assert run_script(target, "echo again\n", 30).stdout == "again\n"


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(parent):
            found.append(int(entry))
    return found


def test_unknown_host_key_is_refused_unless_configured(
    sshd_cluster: SshdCluster, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = SshSettings(
        key_file=str(sshd_cluster.key_file), known_hosts=str(empty), config_file=""
    )
    entry = sshd_cluster.hosts["127.0.0.1"].entry
    with pytest.raises(SshConnectError, match=r"127\.0\.0\.1.*not found in known_hosts"):
        run_script(resolve_target(entry, settings), "echo ok\n", 30)
    for policy in ("warn", "auto-add"):
        target = resolve_target(
            entry,
            SshSettings(
                key_file=str(sshd_cluster.key_file),
                known_hosts=str(empty),
                config_file="",
                host_key_policy=policy,
            ),
        )
        if policy == "warn":
            with pytest.warns(UserWarning, match="Unknown ssh-ed25519 host key"):
                assert run_script(target, "echo ok\n", 30).stdout == "ok\n"
        else:
            assert run_script(target, "echo ok\n", 30).stdout == "ok\n"
    assert empty.read_text() == ""  # known_hosts files are never rewritten


async def test_a_launcher_that_dies_fails_the_launch_with_its_remote_output(
    ssh_kernelspec: SshKernelspec,
) -> None:
    """The launcher exits on the host before answering: the launch fails within seconds with
    its exit code and the tail of its log file there, and nothing is left behind."""
    if importlib.util.find_spec("pyspark") is not None:
        pytest.skip("needs an environment without pyspark")
    prefix = ssh_kernelspec.jupyter_path.parent.parent
    cli = Path(sys.executable).with_name("jupyter-ssh-spec")
    host = ssh_kernelspec.entry("127.0.0.2")
    subprocess.run(
        [
            str(cli),
            "install",
            "--prefix",
            str(prefix),
            "--kernel-name",
            "gp_ssh_no_spark",
            "--replace",
            "--remote-hosts",
            host,
            "--spark",
            "--spark-init-mode",
            "eager",
            "--python",
            sys.executable,
        ],
        check=True,
        capture_output=True,
    )
    manager = AsyncKernelManager(kernel_name="gp_ssh_no_spark")
    started = time.monotonic()
    with pytest.raises(LaunchFailedError) as failed:
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice"))
    assert time.monotonic() - started < 20
    message = str(failed.value)
    assert f"the launcher on {host}" in message
    assert "exited with code 1" in message
    assert "needs pyspark" in message  # from the log file on the host
    log = re.search(r"\((/\S+gp-launcher-\S+) there\)", message)
    assert log, message
    assert not os.path.exists(log.group(1))  # cleaned up after the failure
    assert ssh_kernelspec.processes_of([manager.kernel_id]) == []
