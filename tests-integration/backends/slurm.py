"""A real single-node Slurm cluster on loopback, for the gp-slurm tests.

``SlurmCluster`` starts, from files it generates in a temporary directory:

- ``munged`` with a private key and socket (the system's munge is not used);
- ``slurmctld`` and ``slurmd`` with a minimal ``slurm.conf`` (``batch_sched_delay=0`` so a job
  starts in well under a second; the node advertises more CPUs than the machine has, so many
  1-CPU kernels fit);
- ``slurmrestd`` on 127.0.0.1 with JWT authentication (run as ``nobody``: it refuses root).

All daemons run in the foreground as children of this process and are stopped by pid (after
every job is cancelled).  Every Slurm command needs ``SLURM_CONF`` (``cluster.env()``).
Partitions: ``debug`` (default) and ``short`` (``MaxTime=5`` minutes, for the pending-reason
tests).  The node has 32 CPUs, 16000 MB and two fake GPUs of type ``fake`` (``/dev/null`` and
``/dev/zero`` stand in as their devices) so that ``--gres`` requests are really scheduled.

Usable on its own::

    python -m backends.slurm      # from tests-integration/: start, print the settings, wait
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from backends.system_packages import missing_packages_message, packages_for

SBIN = Path("/usr/sbin")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "slurmrestd")
COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
REST_API_VERSION = "v0.0.38"
NODE_CPUS = 32
NODE_MEMORY_MB = 16000
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero")
NODE_GPUS = len(FAKE_GPU_DEVICES)
GPU_TYPE = "fake"


def slurm_available() -> str:
    """'' when a Slurm cluster can be started here, else the reason it cannot."""
    packages = missing_packages_message("slurm")
    if packages:
        return packages
    missing = [name for name in DAEMONS if not (SBIN / name).exists()]
    missing += [name for name in COMMANDS if shutil.which(name) is None]
    if missing:
        return (
            f"Slurm binaries missing: {', '.join(missing)} "
            f"(apt-get install {' '.join(packages_for('slurm'))})"
        )
    if os.geteuid() != 0:
        return "the single-node Slurm cluster runs slurmd as root"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "slurmrestd needs the user 'nobody'"
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SlurmCluster:
    """One slurmctld + slurmd (+ munged, slurmrestd) on 127.0.0.1, state in ``state_dir``."""

    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gp-slurm-")))
    node_name: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    ctld_port: int = 0
    slurmd_port: int = 0
    rest_port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _node_state: str = ""

    # -- where things are ----------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.state_dir / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.state_dir / "munge" / "munge.socket"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def output_dir(self) -> Path:
        return self.state_dir / "jobs"

    def env(self) -> dict[str, str]:
        """This process's environment with ``SLURM_CONF`` pointing at the cluster."""
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def log_text(self, daemon: str) -> str:
        path = self.state_dir / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- bring-up ------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> SlurmCluster:
        reason = slurm_available()
        if reason:
            raise RuntimeError(reason)
        for sub in ("munge", "log", "state", "spool", "jobs"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        # slurmrestd (as nobody) must read the conf and reach the munge socket.
        self.state_dir.chmod(0o755)
        (self.state_dir / "munge").chmod(0o755)
        self.output_dir.chmod(0o1777)
        self.ctld_port = self.ctld_port or free_port()
        self.slurmd_port = self.slurmd_port or free_port()
        self.rest_port = self.rest_port or free_port()
        try:
            self._start_munged(timeout)
            self._write_conf()
            self._spawn("slurmctld", [str(SBIN / "slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait_for(lambda: self._run_ok(["scontrol", "ping"], "UP"), "slurmctld", timeout)
            self._spawn("slurmd", [str(SBIN / "slurmd"), "-D", "-f", str(self.conf)])
            self._wait_for(self._node_idle, "slurmd (node idle)", timeout)
            self._start_slurmrestd(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munged(self, timeout: float) -> None:
        key = self.state_dir / "munge" / "munge.key"
        subprocess.run(
            [str(SBIN / "mungekey"), "--create", f"--keyfile={key}"],
            check=True,
            capture_output=True,
        )
        munge = self.state_dir / "munge"
        self._spawn(
            "munged",
            [
                str(SBIN / "munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={self.state_dir / 'log' / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
        )
        self._wait_for(self.munge_socket.exists, "munged", timeout)
        self.munge_socket.chmod(0o777)

    def _write_conf(self) -> None:
        jwt_key = self.state_dir / "state" / "jwt.key"
        jwt_key.write_bytes(secrets.token_bytes(32))
        jwt_key.chmod(0o600)
        state, log = self.state_dir / "state", self.state_dir / "log"
        lines = [
            "ClusterName=gptest",
            f"SlurmctldHost={self.node_name}(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "AuthAltTypes=auth/jwt",
            f"AuthAltParameters=jwt_key={jwt_key}",
            "CredType=cred/munge",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=batch_sched_delay=0",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "GresTypes=gpu",
            "KillWait=5",
            "MinJobAge=300",
            "InactiveLimit=0",
            f"StateSaveLocation={state}",
            f"SlurmdSpoolDir={self.state_dir / 'spool'}",
            f"SlurmctldPidFile={state / 'slurmctld.pid'}",
            f"SlurmdPidFile={state / 'slurmd.pid'}",
            f"SlurmctldLogFile={log / 'slurmctld.log'}",
            f"SlurmdLogFile={log / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={self.node_name} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} "
            f"RealMemory={NODE_MEMORY_MB} Gres=gpu:{GPU_TYPE}:{NODE_GPUS} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node_name} Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName=short Nodes={self.node_name} MaxTime=5 State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))
        # Fake GPUs: Slurm needs a character device per GPU to count it; with task/none
        # nothing is done to the devices, so two harmless ones stand in.
        devices = FAKE_GPU_DEVICES
        (self.state_dir / "gres.conf").write_text(
            "".join(
                f"NodeName={self.node_name} Name=gpu Type={GPU_TYPE} File={device}\n"
                for device in devices
            )
        )
        self.conf.chmod(0o644)

    def _start_slurmrestd(self, timeout: float) -> None:
        self._spawn(
            "slurmrestd",
            [
                str(SBIN / "slurmrestd"),
                "-f",
                str(self.conf),
                "-a",
                "rest_auth/jwt",
                "-s",
                f"openapi/{REST_API_VERSION}",
                "-u",
                "nobody",
                "-g",
                "nogroup",
                f"127.0.0.1:{self.rest_port}",
            ],
            extra_env={"SLURM_JWT": "daemon"},
        )

        def accepting() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                return probe.connect_ex(("127.0.0.1", self.rest_port)) == 0

        self._wait_for(accepting, "slurmrestd", timeout)

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        log = open(self.state_dir / "log" / f"{name}.out", "ab")
        with log:
            self.processes[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env(), **(extra_env or {})},
                start_new_session=True,
            )

    def _wait_for(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode} while waiting for {what}: "
                        f"{self._diagnosis(name)}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {timeout}s: {self._diagnosis(what)}")
            time.sleep(0.05)

    def _diagnosis(self, name: str) -> str:
        if name.startswith("slurmd") and self._node_state:
            return f"node state: {self._node_state}"
        daemon = name.split()[0]
        out = self.state_dir / "log" / f"{daemon}.out"
        text = out.read_text(errors="replace") if out.exists() else ""
        return (text + self.log_text(daemon))[-2000:]

    def _run_ok(self, argv: list[str], expected: str) -> bool:
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=10)
        return done.returncode == 0 and expected in done.stdout

    def _node_idle(self) -> bool:
        done = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%T %E"],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=10,
        )
        if done.returncode == 0 and done.stdout.split()[:1] == ["idle"]:
            return True
        self._node_state = done.stdout.strip() or done.stderr.strip()
        return False

    # -- helpers for tests --------------------------------------------------------------------

    def token(self, lifespan: int = 3600) -> str:
        """A JWT for this process's user from ``scontrol token``."""
        done = subprocess.run(
            ["scontrol", "token", f"lifespan={lifespan}"],
            capture_output=True,
            text=True,
            env=self.env(),
            check=True,
            timeout=10,
        )
        return done.stdout.strip().split("=", 1)[1]

    def active_jobs(self) -> list[str]:
        """``id state name`` of every job not finished yet (pending, running, completing...)."""
        done = subprocess.run(
            ["squeue", "-h", "-o", "%i %T %j"],
            capture_output=True,
            text=True,
            env=self.env(),
            check=True,
            timeout=10,
        )
        return [line for line in done.stdout.splitlines() if line.strip()]

    def cancel_all(self) -> None:
        subprocess.run(
            ["scancel", "--full", "--user", pwd.getpwuid(os.geteuid()).pw_name],
            capture_output=True,
            env=self.env(),
            timeout=10,
        )

    # -- teardown -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel every job, stop the daemons (newest first) by pid, remove the state."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                self.cancel_all()
                deadline = time.monotonic() + 10
                while self.active_jobs() and time.monotonic() < deadline:
                    time.sleep(0.1)
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait(timeout=5)
        shutil.rmtree(self.state_dir, ignore_errors=True)


@contextlib.contextmanager
def slurm_cluster() -> Iterator[SlurmCluster]:
    cluster = SlurmCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


if __name__ == "__main__":
    with slurm_cluster() as running:
        print(f"SLURM_CONF={running.conf}")
        print(f"GP_SLURM_REST_URL={running.rest_url}")
        print(f"state: {running.state_dir}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
