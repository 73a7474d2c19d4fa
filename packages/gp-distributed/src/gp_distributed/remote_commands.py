"""Pure builders of the shell scripts run on ssh hosts, and parsers of what they print.

Every value goes into a script through ``shlex.quote`` (kernel ids, argv, env values, paths);
nothing is formatted into shell text unquoted except the integers and signal names made here.
The scripts are written to ``/bin/sh -s`` on stdin (see ``ssh.run_script``), so the launch
secret and the user's values never appear on a command line.

The launcher starts in a session of its own (``setsid``) under a small ``/bin/sh`` wrapper that
appends its output to ``launcher.log`` and writes its exit code to ``exit``, both in a private
directory made by ``mktemp -d`` (so no other user can plant files or links there); the ssh
channel then closes.  Its pid is the wrapper's, its process group the wrapper's session, which
also holds the launcher and the kernel.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gp_provisioners_core.argv import is_valid_kernel_id

LOG_TAIL_LINES = 20
MAX_STATUS_OUTPUT = 1024 * 1024  # characters of a status script's output that are read
MAX_TAIL_LINE_CHARS = 500  # a longer log line is cut (and says so)
_NUMBER = re.compile(r"[0-9]{1,10}")
_EXIT_CODE = re.compile(r"-?[0-9]{1,4}")
_SAFE_PATH = re.compile(r"/[^\x00-\x1f\x7f]{1,4095}")
LOG_NAME = "launcher.log"
EXIT_NAME = "exit"
_WRAPPER = f'"$@" >>"$0/{LOG_NAME}" 2>&1 </dev/null; echo $? >"$0/{EXIT_NAME}"'


def launch_script(
    argv: Sequence[str],
    env: Mapping[str, str],
    kernel_id: str,
    cwd: str | None = None,
    kernel_ip_from_connection: bool = True,
) -> str:
    """The script that starts ``argv`` detached with ``env`` and prints
    ``GP_LAUNCHED <pid> <pgid> <log>`` (pgid 0 when the host has no ``setsid``)."""
    if not argv:
        raise ValueError("the kernelspec's argv is empty")
    lines = ["set -f"]
    lines += [f"{name}={shlex.quote(value)}; export {name}" for name, value in env.items()]
    if kernel_ip_from_connection:
        # Bind the kernel to the address this ssh connection reached, unless told otherwise.
        lines.append(
            'if [ -z "${GP_KERNEL_IP:-}" ] && [ -n "${SSH_CONNECTION:-}" ]; then '
            "set -- $SSH_CONNECTION; GP_KERNEL_IP=$3; export GP_KERNEL_IP; set --; fi"
        )
    template = shlex.quote(f"gp-launcher-{kernel_id}.XXXXXXXX")
    lines.append(
        f'gp_dir=$(mktemp -d "${{TMPDIR:-/tmp}}/"{template}) || '
        '{ echo "GP_ERROR cannot create a directory in ${TMPDIR:-/tmp}"; exit 90; }'
    )
    if cwd:
        lines.append(f"cd {shlex.quote(cwd)} 2>/dev/null || :")
    command = " ".join(shlex.quote(arg) for arg in argv)
    wrapped = f'/bin/sh -c {shlex.quote(_WRAPPER)} "$gp_dir" {command}'
    lines += [
        "if command -v setsid >/dev/null 2>&1; then",
        f"  setsid {wrapped} </dev/null >/dev/null 2>&1 &",
        f'  echo "GP_LAUNCHED $! $! $gp_dir/{LOG_NAME}"',
        "else",
        f"  nohup {wrapped} </dev/null >/dev/null 2>&1 &",
        f'  echo "GP_LAUNCHED $! 0 $gp_dir/{LOG_NAME}"',
        "fi",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Launched:
    pid: int
    pgid: int
    log_path: str


def parse_launched(stdout: str) -> Launched | None:
    """The ``GP_LAUNCHED`` line of a launch script's output, or None (never raises)."""
    for line in _lines(stdout):
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[0] == "GP_LAUNCHED" and _NUMBER.fullmatch(parts[1]):
            pgid = int(parts[2]) if _NUMBER.fullmatch(parts[2]) else 0
            if 0 < int(parts[1]) and _SAFE_PATH.fullmatch(parts[3]):
                return Launched(int(parts[1]), pgid, parts[3])
    return None


def _lines(output: str) -> list[str]:
    """``output`` cut to MAX_STATUS_OUTPUT characters and split at ``\n`` only.

    ``str.splitlines`` also splits at ``\x1c``, ``\x85``, ``\u2028`` and friends, so a
    kernel that prints one of them in its log could forge a ``GP_STATUS`` line in the tail.
    """
    return [line.removesuffix("\r") for line in output[:MAX_STATUS_OUTPUT].split("\n")]


def _escaped(line: str) -> str:
    """A tailed log line with control characters escaped, cut to MAX_TAIL_LINE_CHARS."""
    cut = line[:MAX_TAIL_LINE_CHARS]
    shown = "".join(c if c.isprintable() or c == "\t" else ascii(c)[1:-1] for c in cut)
    return shown + ("..." if len(line) > len(cut) else "")


# -- checking on launchers ----------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteLauncherRef:
    """What identifies one launcher on its host."""

    kernel_id: str
    pid: int
    pgid: int
    log_path: str


@dataclass
class LauncherStatus:
    """``running``, ``exited`` (with its exit code) or ``gone`` (killed, no exit code)."""

    state: str
    exit_code: int | None = None
    tail: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == "running"


def _group_alive(ref: RemoteLauncherRef) -> str:
    """Shell test: a process of this kernel is still in the launcher's process group."""
    kid = shlex.quote(ref.kernel_id)
    if ref.pgid > 1:
        return (
            "{ if command -v pgrep >/dev/null 2>&1; then "
            f"pgrep -g {ref.pgid} -f -- {kid} >/dev/null 2>&1; "
            f"else kill -0 {ref.pid} 2>/dev/null; fi; }}"
        )
    return f"kill -0 {ref.pid} 2>/dev/null"


_STATUS_FUNCTIONS = f"""gp_tail() {{
  tail -n {LOG_TAIL_LINES} "$2/{LOG_NAME}" 2>/dev/null | while IFS= read -r gp_line; do
    printf 'GP_LOG %s %s\\n' "$1" "$gp_line"
  done
}}
gp_exited() {{
  [ -n "$2" ] && [ -s "$2/{EXIT_NAME}" ] || return 1
  echo "GP_STATUS $1 exited $(cat "$2/{EXIT_NAME}")"; gp_tail "$1" "$2"
}}
"""


def _run_dir(ref: RemoteLauncherRef) -> str:
    """The launcher's private directory on its host ('' when unknown)."""
    if not ref.log_path.endswith("/" + LOG_NAME):
        return ""
    return posixpath.dirname(ref.log_path)


def status_script(refs: Sequence[RemoteLauncherRef], always_tail: bool = False) -> str:
    """One script reporting ``GP_STATUS <kernel_id> running|exited <code>|gone`` for each of
    ``refs``, and the last log lines (``GP_LOG <kernel_id> <line>``) of those not running (of
    all with ``always_tail``)."""
    lines = ["set -f", _STATUS_FUNCTIONS]
    for ref in refs:
        kid, run_dir = shlex.quote(ref.kernel_id), shlex.quote(_run_dir(ref))
        tail = f"gp_tail {kid} {run_dir}"
        running_tail = f"; {tail}" if always_tail else ""
        lines.append(
            f"gp_exited {kid} {run_dir} || if {_group_alive(ref)}; then "
            f"echo GP_STATUS {kid} running{running_tail}; "
            f"else echo GP_STATUS {kid} gone; {tail}; fi"
        )
    return "\n".join(lines) + "\n"


def parse_status(stdout: str) -> dict[str, LauncherStatus]:
    """The statuses a :func:`status_script` printed, by kernel id.

    Total and bounded, whatever the remote host printed: it never raises, reads at most
    MAX_STATUS_OUTPUT characters, keeps at most LOG_TAIL_LINES lines of at most
    MAX_TAIL_LINE_CHARS per kernel with control characters escaped, and only takes status
    lines for valid kernel ids with a known state.
    """
    statuses: dict[str, LauncherStatus] = {}
    for line in _lines(stdout):
        if line.startswith("GP_STATUS "):
            parts = line.split(" ")
            if len(parts) < 3 or not is_valid_kernel_id(parts[1]):
                continue
            state = parts[2]
            if state not in ("running", "exited", "gone"):
                continue
            code: int | None = None
            if state == "exited":
                raw = parts[3] if len(parts) > 3 else ""
                code = int(raw) if _EXIT_CODE.fullmatch(raw) else None
            statuses[parts[1]] = LauncherStatus(state, code)
        elif line.startswith("GP_LOG "):
            _, kid, *rest = line.split(" ", 2)
            status = statuses.get(kid)
            if status is not None and len(status.tail) < LOG_TAIL_LINES:
                status.tail.append(_escaped(rest[0] if rest else ""))
    return statuses


def signal_script(ref: RemoteLauncherRef, signum: int, pid: int = 0) -> str:
    """Send ``signum`` to the launcher's process group (or to ``pid`` of that group), only
    while the group still holds a process of this kernel.  Prints ``GP_SIGNALED`` or
    ``GP_GONE``."""
    name = signal.Signals(signum).name.removeprefix("SIG")
    target = str(pid) if pid else (f"-- -{ref.pgid}" if ref.pgid > 1 else str(ref.pid))
    return (
        f"if {_group_alive(ref)}; then kill -s {name} {target} 2>/dev/null; echo GP_SIGNALED; "
        "else echo GP_GONE; fi\n"
    )


EXIT_GRACE_TICKS = 40  # 50 ms each: how long a cleanup lets an ending launcher finish


def cleanup_script(ref: RemoteLauncherRef, ending: bool = False) -> str:
    """Kill whatever of this kernel still runs in the launcher's group; remove its directory.

    ``ending``: the launcher is known to be on its way out (a shutdown was requested and its
    comm port closed).  It still removes its private folder, which holds the kernel's
    connection file, after that port closed: wait until its wrapper wrote the exit file (at
    most EXIT_GRACE_TICKS x 50 ms, only while the group still runs) before the kill."""
    kill = signal_script(ref, signal.SIGKILL)
    run_dir = _run_dir(ref)
    if not run_dir:
        return kill
    wait = ""
    if ending:
        exit_file = shlex.quote(posixpath.join(run_dir, EXIT_NAME))
        wait = (
            f"gp_i=0; while [ ! -s {exit_file} ] && [ $gp_i -lt {EXIT_GRACE_TICKS} ] && "
            f"{_group_alive(ref)}; do sleep 0.05 2>/dev/null || break; gp_i=$((gp_i + 1)); "
            "done\n"
        )
    files = " ".join(shlex.quote(posixpath.join(run_dir, n)) for n in (LOG_NAME, EXIT_NAME))
    return f"{wait}{kill}rm -f -- {files}\nrmdir -- {shlex.quote(run_dir)} 2>/dev/null || :\n"
