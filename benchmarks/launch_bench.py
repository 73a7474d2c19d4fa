"""Kernel launch benchmark: gp-distributed (localhost, ssh) vs LocalProvisioner and gp 0.5.0.

Usage: ``python benchmarks/launch_bench.py [--runs N] [--gp050-python PATH]`` (see ``--help``)

Each launch runs in a fresh Python process (``_one_launch.py``) with the variant's own Python
and a private JUPYTER_DATA_DIR / JUPYTER_CONFIG_DIR / JUPYTER_RUNTIME_DIR / IPYTHONDIR under a
temporary folder, so nothing is read from or written to the user's Jupyter setup.  Runs
alternate between the variants (the order rotates every round) after one untimed warm-up
launch per variant.  Timings are printed, never judged by the exit code.

A variant is a row: a name, a Python, a kernelspec (installed by the variant's factory) and an
environment.  To add one, write another ``make_*`` function and list it in
``VARIANT_FACTORIES``.  The ssh rows share one real sshd on 127.0.0.2 (``ssh_hosts.py``), started
by the first ssh row's factory and stopped at the end of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import setup_gp050  # sibling modules of this script
import ssh_hosts

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_one_launch.py"
KERNEL_USER = "bench"
FREE_PORT = "{free_port}"  # an env value replaced by a free TCP port for each launch
LAUNCH_TIMEOUT = 120.0  # seconds one worker process may take in all


@dataclass
class Variant:
    """One benchmark row."""

    key: str
    label: str
    python: str = sys.executable
    kernel_name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    drop_env: tuple[str, ...] = ()  # variables of the caller the worker must not see
    prestart: str = (
        "none"  # "none", "gp_provisioners_core" or "gateway_provisioners" (see _one_launch.py)
    )
    runs: int = 0  # timed launches; 0: --runs
    prior_launch: bool = False  # one untimed launch in the worker first (connections reused)
    warm_ssh: bool = False  # gp-distributed's ssh warm-up ran in the worker first (untimed)
    shared_tmp: Path | None = None  # a TMPDIR shared by all launches (files named by kernel id)
    note: str = ""
    unavailable: str = ""  # why the row cannot run; empty when it can


@dataclass
class Context:
    """What every variant factory gets: the private folders and the command-line options."""

    root: Path  # temporary; removed at the end
    args: argparse.Namespace
    _ssh: ssh_hosts.SshHost | None = None

    def data_dir(self, key: str) -> Path:
        path = self.root / f"data-{key}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def private_dirs(self) -> dict[str, str]:
        """JUPYTER_CONFIG_DIR, JUPYTER_RUNTIME_DIR and IPYTHONDIR of every worker (and kernel)."""
        private = self.root / "home"
        dirs = {}
        for name, sub in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("IPYTHONDIR", "ipython"),
        ):
            (private / sub).mkdir(parents=True, exist_ok=True)
            dirs[name] = str(private / sub)
        return dirs

    def ssh_host(self) -> ssh_hosts.SshHost:
        """The sshd on 127.0.0.2, started on first use (``unavailable`` says why not)."""
        if self._ssh is None:
            print(f"starting sshd on {ssh_hosts.ADDRESS}", file=sys.stderr, flush=True)
            self._ssh = ssh_hosts.start(self.root / "sshd")
        return self._ssh

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.stop()


# -- variants ---------------------------------------------------------------------------------

SSH_DROP_ENV = ("SSH_AUTH_SOCK",)  # no agent: the run's key only


def remote_kernel_env(ctx: Context, data_dir: Path) -> dict[str, str]:
    """A kernelspec ``env`` for kernels on ssh hosts: the private Jupyter/IPython folders (an
    ssh session starts from the login's HOME and environment, not the worker's)."""
    return {**ctx.private_dirs(), "JUPYTER_DATA_DIR": str(data_dir), "JUPYTER_PLATFORM_DIRS": "1"}


def add_spec_env(spec_file: Path, env: dict[str, str]) -> None:
    spec = json.loads(spec_file.read_text())
    spec["env"] = {**spec.get("env", {}), **env}
    spec_file.write_text(json.dumps(spec, indent=2) + "\n")


def make_local(ctx: Context) -> Variant:
    """jupyter_client's LocalProvisioner with a plain ipykernel kernelspec."""
    data_dir = ctx.data_dir("local")
    spec_dir = data_dir / "kernels" / "bench_local"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {  # what `python -m ipykernel install` writes
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (LocalProvisioner)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
    return Variant(
        key="local",
        label="LocalProvisioner",
        kernel_name="bench_local",
        env={"JUPYTER_DATA_DIR": str(data_dir)},
    )


GP_NOTE = (
    "ResponseManager.instance().start() ran before timing: per-process server start-up "
    "(RSA key generation), not per-launch work"
)


def install_gp_spec(data_dir: Path, kernel_name: str, remote_hosts: str) -> str:
    """``jupyter-ssh-spec install`` (ours) into ``data_dir``; '' or why it failed."""
    env = {**os.environ, "JUPYTER_DATA_DIR": str(data_dir)}
    install = [
        sys.executable,
        "-m",
        "gp_distributed.cli",
        "install",
        "--user",
        "--replace",
        f"--kernel-name={kernel_name}",
        f"--remote-hosts={remote_hosts}",
        f"--python={sys.executable}",  # absolute: ssh hosts run this Python path too
    ]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return f"jupyter-ssh-spec install failed: {_tail(done.stderr)}"
    return ""


def make_gp_distributed(ctx: Context) -> Variant:
    """Our DistributedProvisioner with remote_hosts=localhost (launcher as a local process)."""
    data_dir = ctx.data_dir("gp")
    kernel_name = "bench_gp_distributed"
    variant = Variant(
        key="gp",
        label="gp-distributed (localhost)",
        kernel_name=kernel_name,
        env={
            "JUPYTER_DATA_DIR": str(data_dir),
            "GP_RESPONSE_IP": "127.0.0.1",
            "GP_RESPONSE_PORT": "0",
            "GP_REMOTE_HOSTS": "localhost",
        },
        prestart="gp_provisioners_core",
        note=GP_NOTE,
    )
    variant.unavailable = install_gp_spec(data_dir, kernel_name, "localhost")
    return variant


def make_gp_ssh(ctx: Context) -> Variant:
    """Our DistributedProvisioner over ssh to the bench's sshd on 127.0.0.2.

    The entry is ``127.0.0.2:<port>``: an entry with a port always uses ssh, even for an
    address of this machine.  Authentication: the GP_SSH_* settings only (the run's key and
    known_hosts, no ~/.ssh/config, no agent).
    """
    host = ctx.ssh_host()
    variant = Variant(
        key="gp_ssh",
        label=f"gp-distributed (ssh {host.address})",
        prestart="gp_provisioners_core",
        drop_env=SSH_DROP_ENV,
        note=GP_NOTE,
    )
    if host.unavailable:
        variant.unavailable = f"no sshd: {host.unavailable}"
        return variant
    data_dir = ctx.data_dir("gp_ssh")
    variant.kernel_name = "bench_gp_ssh"
    variant.env = {
        **ssh_server_env(host, data_dir),
        # The remote launcher's mktemp folder then lands in the launch's TMPDIR (leak check).
        "GP_REMOTE_ENV_ALLOWLIST": "TMPDIR",
    }
    variant.unavailable = install_ssh_spec(ctx, host, data_dir, variant.kernel_name)
    return variant


def ssh_server_env(host: ssh_hosts.SshHost, data_dir: Path) -> dict[str, str]:
    """The server side's settings of a gp-distributed row on the run's sshd."""
    return {
        "JUPYTER_DATA_DIR": str(data_dir),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "GP_SSH_USER": host.user,
        "GP_SSH_KEY_FILE": str(host.key_file),
        "GP_SSH_KNOWN_HOSTS": str(host.known_hosts),
        "GP_SSH_CONFIG_FILE": "",
        "GP_SSH_ALLOW_AGENT": "false",
    }


def install_ssh_spec(ctx: Context, host: ssh_hosts.SshHost, data_dir: Path, name: str) -> str:
    """Our ssh kernelspec ``name`` for ``host`` in ``data_dir``, its kernels given the private
    folders (:func:`remote_kernel_env`); '' or why it failed.  Also used by pool_bench."""
    unavailable = install_gp_spec(data_dir, name, host.entry)
    if not unavailable:
        add_spec_env(data_dir / "kernels" / name / "kernel.json", remote_kernel_env(ctx, data_dir))
    return unavailable


def make_gp_ssh_reused(ctx: Context) -> Variant:
    """The ``gp_ssh`` row in a worker that started and shut down one kernel on the host first
    (untimed), as a server that has run kernels there before: the ssh connection and remote
    shells are open, so this is the cold kernel start without the per-process connection."""
    variant = make_gp_ssh(ctx)
    variant.key = "gp_ssh_reused"
    variant.label = f"gp-distributed (ssh {ssh_hosts.ADDRESS}, reused)"
    variant.prior_launch = True
    variant.note += "; one untimed kernel on the host first, in the same process"
    return variant


def make_gp_ssh_warmed(ctx: Context) -> Variant:
    """The ``gp_ssh`` row in a worker whose ssh warm-up ran first (untimed), as a server
    whose gp-distributed extension warmed its hosts at start: the connection and one idle
    remote shell are open, no kernel ran on the host before."""
    variant = make_gp_ssh(ctx)
    variant.key = "gp_ssh_warmed"
    variant.label = f"gp-distributed (ssh {ssh_hosts.ADDRESS}, warmed)"
    variant.warm_ssh = True
    variant.note += "; gp_distributed.warmup.warm_up() ran first, in the same process"
    return variant


def make_gp_ssh_sessions(ctx: Context) -> Variant:
    """``gp_ssh_reused`` with ``GP_SSH_REUSE_SHELLS=false``: a new ssh session (and login
    shell) per remote command, as before long-lived shells.  Not in the default run."""
    variant = make_gp_ssh_reused(ctx)
    variant.key = "gp_ssh_sessions"
    variant.label = f"gp-distributed (ssh {ssh_hosts.ADDRESS}, reused, no shells)"
    variant.env = {**variant.env, "GP_SSH_REUSE_SHELLS": "false"}
    return variant


def make_gp050(ctx: Context) -> Variant:
    """gateway_provisioners 0.5.0's distributed-provisioner on localhost, in its own venv."""
    variant = gp050_variant(ctx, "gp050", "localhost")
    # Each graceful shutdown takes ~29 s here (see README): --gp050-runs may trim this row.
    if ctx.args.gp050_runs and ctx.args.gp050_runs < ctx.args.runs:
        variant.runs = ctx.args.gp050_runs
        variant.note += (
            f"; {variant.runs} run(s) instead of {ctx.args.runs} (--gp050-runs): each graceful "
            "shutdown takes ~29 s"
        )
    setup_gp050_row(ctx, variant, "localhost")
    return variant


def make_gp050_ssh(ctx: Context) -> Variant:
    """gateway_provisioners 0.5.0's distributed-provisioner over ssh to 127.0.0.2.

    127.0.0.2 is not one of jupyter_client's local IPs, so it uses ssh (paramiko).  It has no
    key or known_hosts settings: it reads ~/.ssh/known_hosts (``load_system_host_keys``,
    RejectPolicy) and the default ~/.ssh keys, as GP_REMOTE_USER on GP_SSH_PORT; so its
    workers get a private HOME holding the run's key and known_hosts.
    """
    host = ctx.ssh_host()
    variant = gp050_variant(ctx, "gp050_ssh", f"ssh {host.address}")
    variant.drop_env = SSH_DROP_ENV
    if host.unavailable:
        variant.unavailable = f"no sshd: {host.unavailable}"
    if variant.unavailable:
        return variant
    data_dir = ctx.data_dir("gp050_ssh")
    # It passes no TMPDIR to the host (only KERNEL_ID, KERNEL_USERNAME and the spec's env), so
    # its launcher's connection files would land in the host's /tmp: give them a folder here.
    variant.shared_tmp = ctx.root / "tmp" / "gp050_ssh-host"
    variant.shared_tmp.mkdir(parents=True)
    spec_env = {**remote_kernel_env(ctx, data_dir), "TMPDIR": str(variant.shared_tmp)}
    setup_gp050_row(ctx, variant, host.address, spec_env, data_dir)
    home = host.private_home(ctx.root / "gp050-ssh-home")
    variant.env.update(
        {
            "HOME": str(home),
            "GP_REMOTE_USER": host.user,
            "GP_SSH_PORT": str(host.port),
        }
    )
    return variant


def gp050_variant(ctx: Context, key: str, where: str) -> Variant:
    return Variant(
        key=key,
        label=f"gateway_provisioners 0.5.0 ({where})",
        prestart="gateway_provisioners",
        note="ResponseManager.instance() was created before timing (normally the first launch "
        "creates it: RSA key, socket, 0.1 ms PeriodicCallback); GP_RESPONSE_PORT is a free "
        "port picked per launch, as it cannot use 0",
    )


def setup_gp050_row(
    ctx: Context,
    variant: Variant,
    remote_hosts: str,
    spec_env: dict[str, str] | None = None,
    data_dir: Path | None = None,
) -> None:
    """Its venv (cached) and a kernelspec for ``remote_hosts``; fills in ``variant``."""
    try:
        info = setup_gp050.setup(
            cache_dir=ctx.args.cache_dir / "gp050",
            python=ctx.args.gp050_python,
            data_dir=data_dir or ctx.data_dir(variant.key),
            kernel_name=f"bench_{variant.key}",
            remote_hosts=remote_hosts,
            spec_env=spec_env,
        )
    except setup_gp050.Unavailable as err:
        variant.unavailable = str(err)
        return
    except (OSError, subprocess.SubprocessError) as err:
        variant.unavailable = f"setup failed: {err}"
        return
    logs = ctx.root / "gp050-kernel-logs"
    logs.mkdir(exist_ok=True)
    variant.python = info["python"]
    variant.kernel_name = info["kernel_name"]
    variant.env = {
        "JUPYTER_DATA_DIR": info["data_dir"],
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": FREE_PORT,  # with 0 it would announce port 0 to the launcher
        "GP_REMOTE_HOSTS": remote_hosts,
        "GP_KERNEL_LOG_DIR": str(logs),  # default /tmp/kernel-<id>.log
    }


def make_gp_observability_off(ctx: Context) -> Variant:
    """The ``gp`` row with metrics and launch events switched off (``Observability``)."""
    variant = make_gp_distributed(ctx)
    variant.key, variant.label = "gp_obs_off", "gp-distributed (localhost), metrics+events off"
    switches = {"GP_METRICS_ENABLED": "false", "GP_LAUNCH_EVENTS_ENABLED": "false"}
    variant.env = {**variant.env, **switches}
    return variant


def make_gp_observability_on(ctx: Context) -> Variant:
    """The ``gp`` row with metrics on and a subscribed launch-event listener, as in a Jupyter
    Server with one client on /api/events/subscribe (``_one_launch.py`` attaches it)."""
    variant = make_gp_distributed(ctx)
    variant.key, variant.label = "gp_obs_on", "gp-distributed (localhost), metrics+events on"
    variant.env = {
        **variant.env,
        "GP_METRICS_ENABLED": "true",
        "GP_LAUNCH_EVENTS_ENABLED": "true",
        "GP_BENCH_LAUNCH_EVENTS": "1",
    }
    return variant


def scala_runtime_paths() -> tuple[Path, Path] | None:
    """SPARK_HOME and the Toree assembly from the Scala suites' shared cache, if installed
    (``python tests-integration/backends/scala_runtime.py`` installs it)."""
    cache = Path(os.environ.get("GP_CACHE_DIR", Path.home() / ".cache" / "gateway-provisioners"))
    for site in sorted((cache / "scala").glob("venv-*/lib/python3*/site-packages")):
        jars = sorted(site.glob("toree/lib/toree-assembly-*.jar"))
        if (site / "pyspark" / "bin" / "spark-submit").is_file() and jars:
            return site / "pyspark", jars[-1]
    return None


def make_gp_scala(ctx: Context) -> Variant:
    """A Scala (Apache Toree) kernel from our DistributedProvisioner on localhost: the JVM
    starts, Toree binds its ports, the Java launcher reports them (lazy Spark context)."""
    data_dir = ctx.data_dir("gp_scala")
    kernel_name = "bench_gp_scala"
    variant = Variant(
        key="gp_scala",
        label="gp-distributed Scala/Toree (localhost)",
        kernel_name=kernel_name,
        env={
            "JUPYTER_DATA_DIR": str(data_dir),
            "GP_RESPONSE_IP": "127.0.0.1",
            "GP_RESPONSE_PORT": "0",
            "GP_REMOTE_HOSTS": "localhost",
        },
        prestart="gp_provisioners_core",
        runs=min(ctx.args.runs, 3),
        note=GP_NOTE + "; a JVM per launch: at most 3 runs",
    )
    runtime = scala_runtime_paths()
    if runtime is None or not shutil.which("javac"):
        variant.unavailable = (
            "no Spark/Toree runtime or JDK: apt-get install openjdk-17-jdk-headless; "
            "python tests-integration/backends/scala_runtime.py"
        )
        return variant
    spark_home, toree_jar = runtime
    env = {**os.environ, "JUPYTER_DATA_DIR": str(data_dir)}
    install = [
        sys.executable, "-m", "gp_distributed.cli", "install", "--user", "--replace",
        f"--kernel-name={kernel_name}", "--language=Scala", "--remote-hosts=localhost",
        f"--spark-home={spark_home}", "--launch-timeout=110",
    ]  # fmt: skip
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        variant.unavailable = f"jupyter-ssh-spec install failed: {_tail(done.stderr)}"
        return variant
    shutil.copy2(toree_jar, data_dir / "kernels" / kernel_name / "lib" / toree_jar.name)
    return variant


VARIANT_FACTORIES: dict[str, Callable[[Context], Variant]] = {
    "local": make_local,
    "gp": make_gp_distributed,
    "gp_obs_off": make_gp_observability_off,
    "gp_obs_on": make_gp_observability_on,
    "gp_ssh": make_gp_ssh,
    "gp_ssh_warmed": make_gp_ssh_warmed,
    "gp_ssh_reused": make_gp_ssh_reused,
    "gp_ssh_sessions": make_gp_ssh_sessions,
    "gp050": make_gp050,
    "gp050_ssh": make_gp050_ssh,
    "gp_scala": make_gp_scala,
}
BASELINE = "local"
DEFAULT_VARIANTS = [key for key in VARIANT_FACTORIES if key != "gp_ssh_sessions"]


# -- running ----------------------------------------------------------------------------------


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_env(ctx: Context, variant: Variant) -> dict[str, str]:
    """The launch's environment: ours minus Jupyter/GP/KERNEL settings, plus the variant's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER_", "GP_", "KERNEL_", "IPYTHON")) and k not in variant.drop_env
    }
    env.update(ctx.private_dirs())
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["KERNEL_USERNAME"] = KERNEL_USER  # root is refused by default
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in variant.env.items():
        env[key] = str(_free_port()) if value == FREE_PORT else value
    return env


def launch_once(ctx: Context, variant: Variant, label: str) -> dict[str, Any]:
    """Run one launch in a new process; return its JSON result (``ok`` False on failure)."""
    log_file = ctx.root / f"{variant.key}-{label}.log"
    tmp = ctx.root / "tmp" / f"{variant.key}-{label}"  # TMPDIR: files left here are leaks
    tmp.mkdir(parents=True)
    cmd = [
        variant.python,
        str(WORKER),
        f"--kernel-name={variant.kernel_name}",
        f"--prestart={variant.prestart}",
        f"--idle={ctx.args.idle}",
    ]
    if ctx.args.cold:
        cmd.append("--cold")
    if variant.prior_launch and label != "warmup":
        cmd.append("--prior-launch")
    if variant.warm_ssh:
        cmd.append("--warm-ssh")
    if label == "warmup":
        cmd.append("--warmup")
    if ctx.args.debug:
        cmd.append("--debug")
    with open(log_file, "w") as stderr:
        proc = subprocess.Popen(
            cmd,
            env={**worker_env(ctx, variant), "TMPDIR": str(tmp)},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ctx.root,
        )
        try:
            out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            return {"ok": False, "error": f"worker timed out after {LAUNCH_TIMEOUT:g}s"}
    lines = out.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"ok": False, "error": f"worker exit {proc.returncode}, no JSON result"}
    if not result.get("ok"):
        result["stderr_tail"] = _tail(log_file.read_text(), 8)
    leftovers = result.get("leftover_pids") or []
    if leftovers:
        print(
            f"  {variant.label}: {len(leftovers)} process(es) outlived shutdown; stopping them",
            file=sys.stderr,
        )
        _kill_leftovers(leftovers, result.get("kernel_id", ""))
    left_files = [str(f.relative_to(tmp)) for f in tmp.rglob("*") if not f.is_dir()]
    kernel_id = result.get("kernel_id")
    if variant.shared_tmp is not None and kernel_id:
        left_files += [
            f"{variant.shared_tmp.name}/{f.relative_to(variant.shared_tmp)}"
            for f in variant.shared_tmp.rglob(f"*{kernel_id}*")
            if not f.is_dir()
        ]
    result["leftover_files"] = left_files
    return result


def _kill_leftovers(pids: list[int], kernel_id: str) -> None:
    """Stop processes this bench started that outlived their shutdown (SIGTERM, then SIGKILL).

    Only pids whose command line still names the launch's kernel id are touched.
    """

    def ours(pid: int) -> bool:
        try:
            return kernel_id.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    for sig in (signal.SIGTERM, signal.SIGKILL):
        targets = [pid for pid in pids if kernel_id and ours(pid)]
        for pid in targets:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3.0
        while any(ours(pid) for pid in targets) and time.monotonic() < deadline:
            time.sleep(0.05)


def run_all(ctx: Context, variants: list[Variant]) -> dict[str, list[dict[str, Any]]]:
    runnable = [v for v in variants if not v.unavailable]
    results: dict[str, list[dict[str, Any]]] = {v.key: [] for v in variants}
    for variant in runnable:
        print(f"warm-up: {variant.label}", file=sys.stderr, flush=True)
        warm = launch_once(ctx, variant, "warmup")
        if not warm.get("ok"):
            print(f"  warm-up failed: {warm.get('error')}", file=sys.stderr)
    for round_no in range(ctx.args.runs):
        shift = round_no % max(1, len(runnable))
        for variant in runnable[shift:] + runnable[:shift]:
            runs = variant.runs or ctx.args.runs
            if round_no >= runs:  # rows with fewer runs take part in the first rounds
                continue
            result = launch_once(ctx, variant, f"run{round_no}")
            results[variant.key].append(result)
            status = (
                f"ready {result['ready_s']:.3f}s shutdown {result['shutdown_s']:.3f}s"
                if result.get("ok")
                else f"FAILED: {result.get('error')}"
            )
            print(f"run {round_no + 1}/{runs} {variant.label}: {status}", file=sys.stderr)
    return results


# -- report -----------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r.get("ok")]

    def med(key: str) -> float | None:
        values = [r[key] for r in ok if r.get(key) is not None]
        return statistics.median(values) if values else None

    return {
        "ok": len(ok),
        "total": len(runs),
        "ready_s": med("ready_s"),
        "start_kernel_s": med("start_kernel_s"),
        "shutdown_s": med("shutdown_s"),
        "launch_lag_ms": med("launch_lag_max_ms"),
        "launch_lag_worst_ms": max((r["launch_lag_max_ms"] for r in ok), default=None),
        "idle_lag_ms": med("idle_lag_median_ms"),
        "idle_lag_max_ms": med("idle_lag_max_ms"),
        "shutdown_lag_ms": med("shutdown_lag_max_ms"),
        "server_start_s": med("server_start_s"),
        "leftovers": sum(len(r.get("leftover_pids", [])) for r in runs),
        "leftover_files": sorted({f for r in runs for f in r.get("leftover_files", [])}),
        "runs_leaving_files": sum(1 for r in runs if r.get("leftover_files")),
        "errors": sorted({r.get("error", "") for r in runs if not r.get("ok")}),
    }


TARGETS: list[tuple[str, str, Callable[[float, float], tuple[str, bool]]]] = [
    ("ready <= 1.10x Local", "ready_s", lambda v, b: (f"{v / b:.2f}x", v <= 1.10 * b)),
    ("shutdown <= 1.5x Local", "shutdown_s", lambda v, b: (f"{v / b:.2f}x", v <= 1.5 * b)),
    (
        "launch lag <= Local + 5 ms",
        "launch_lag_ms",
        lambda v, b: (f"{v - b:+.2f} ms", v <= b + 5.0),
    ),
    ("idle lag <= Local + 1 ms", "idle_lag_ms", lambda v, b: (f"{v - b:+.2f} ms", v <= b + 1.0)),
]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.2f}x"


Summary = dict[str, Any]
COLUMNS: list[tuple[str, int, Callable[[Summary, Summary], str]]] = [
    ("ready s", 8, lambda s, b: _fmt(s["ready_s"], ".3f")),
    ("xLocal", 6, lambda s, b: _ratio(s["ready_s"], b.get("ready_s"))),
    ("start s", 7, lambda s, b: _fmt(s["start_kernel_s"], ".3f")),
    ("shutdn s", 8, lambda s, b: _fmt(s["shutdown_s"], ".3f")),
    ("xLocal", 7, lambda s, b: _ratio(s["shutdown_s"], b.get("shutdown_s"))),
    ("launch lag ms", 13, lambda s, b: _fmt(s["launch_lag_ms"], ".2f")),
    ("idle lag ms", 11, lambda s, b: _fmt(s["idle_lag_ms"], ".3f")),
    ("idle max ms", 11, lambda s, b: _fmt(s["idle_lag_max_ms"], ".2f")),
    ("shutdn lag ms", 13, lambda s, b: _fmt(s["shutdown_lag_ms"], ".1f")),
]
LEGEND = [
    "ready s: from the start of `await km.start_kernel()` to the first kernel_info_reply"
    " (start s: start_kernel alone).",
    "shutdn s: `await km.shutdown_kernel()` (graceful).",
    "Loop lag = overshoot of a 1 ms asyncio.sleep in a ticker task on the caller's loop.",
    "launch lag ms: worst tick while start_kernel + ready ran (per-run max, median across runs).",
    "idle lag ms: median tick over the idle period after ready (per-run median, median across"
    " runs); idle max ms: per-run max, median across runs.",
    "shutdn lag ms: worst tick during shutdown_kernel (per-run max, median across runs).",
]


def report(
    variants: list[Variant], results: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> str:
    summaries = {v.key: summarize(results[v.key]) for v in variants}
    base = summaries.get(BASELINE, {})
    label_width = max(len("variant"), *(len(v.label) for v in variants))
    header = f"{'variant':<{label_width}} {'ok':>5}" + "".join(
        f" {title:>{width}}" for title, width, _ in COLUMNS
    )
    fewer = [f"{v.runs} for {v.label}" for v in variants if 0 < v.runs < args.runs]
    per_row = f"{args.runs} run(s) per variant" + (f" ({', '.join(fewer)})" if fewer else "")
    lines = [
        f"Kernel launch benchmark: {per_row}, medians across runs; "
        + (
            "cold processes (first launch in each, imports included)"
            if args.cold
            else "each process warmed first (imports, entry points, interfaces; untimed)"
        ),
        "",
        header,
        "-" * len(header),
    ]
    for v in variants:
        s = summaries[v.key]
        row = f"{v.label:<{label_width}} "
        if v.unavailable:
            lines.append(row + f"unavailable: {v.unavailable.splitlines()[0]}")
        elif not s["ok"]:
            lines.append(row + f"{0:>2}/{s['total']:<2} failed: {'; '.join(s['errors'])}")
        else:
            cells = "".join(f" {cell(s, base):>{width}}" for _, width, cell in COLUMNS)
            lines.append(row + f"{s['ok']:>2}/{s['total']:<2}" + cells)
    lines += ["", *LEGEND]
    comparisons = [v for v in variants if v.key != BASELINE and summaries[v.key]["ok"]]
    if base.get("ok") and comparisons:
        lines += ["", f"{'target (vs LocalProvisioner)':<30}"]
        lines[-1] += "".join(f" {v.label:<40}" for v in comparisons)
        for title, key, judge in TARGETS:
            row = f"{title:<30}"
            for v in comparisons:
                value, reference = summaries[v.key][key], base[key]
                if value is None or reference is None:
                    row += f" {'-':<40}"
                    continue
                shown, met = judge(value, reference)
                row += f" {shown + (' met' if met else ' NOT met'):<40}"
            lines.append(row)
    notes = []
    for v in variants:
        s = summaries[v.key]
        if v.unavailable:
            if "\n" in v.unavailable:
                notes.append(
                    f"- {v.label} unavailable:\n    " + v.unavailable.replace("\n", "\n    ")
                )
            continue
        if v.note:
            started = s.get("server_start_s")
            took = "" if started is None else f" (median {started:.3f}s)"
            notes.append(f"- {v.label}: {v.note}{took}")
        if s.get("leftovers"):
            notes.append(
                f"- {v.label}: {s['leftovers']} process(es) naming the kernel id outlived "
                "shutdown by 2 s (stopped by the bench)"
            )
        if s.get("runs_leaving_files"):
            sample = ", ".join(s["leftover_files"][:2])
            notes.append(
                f"- {v.label}: {s['runs_leaving_files']}/{s['total']} run(s) left files in "
                f"TMPDIR after shutdown, e.g. {sample}"
            )
        failed = [r for r in results[v.key] if not r.get("ok")]
        if failed:
            notes.append(
                f"- {v.label}: {len(failed)} run(s) failed: {'; '.join(s['errors'])}; first "
                "failure's log tail:\n    "
                + failed[0].get("stderr_tail", "(none)").replace("\n", "\n    ")
            )
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed launches per variant")
    parser.add_argument(
        "--gp050-python",
        default=None,
        help="a Python with gateway_provisioners 0.5.0 and ipykernel (default: a cached venv)",
    )
    parser.add_argument(
        "--gp050-runs",
        type=int,
        default=0,
        help="fewer timed launches for the gateway_provisioners 0.5.0 localhost row, whose "
        "graceful shutdowns take ~29 s each (default 0: --runs)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated rows to run (default: {','.join(DEFAULT_VARIANTS)}; "
        f"also: {','.join(k for k in VARIANT_FACTORIES if k not in DEFAULT_VARIANTS)})",
    )
    parser.add_argument("--idle", type=float, default=2.0, help="idle seconds after ready")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="time each process's first launch, including one-off imports (no warm-up)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=setup_gp050.default_cache_dir().parent,
        help="where the gateway_provisioners venv is cached (default: <repo>/.cache/bench)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument(
        "--keep-tmp", action="store_true", help="keep the temporary folder (worker logs, specs)"
    )
    parser.add_argument("--debug", action="store_true", help="DEBUG logs in the worker logs")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANT_FACTORIES]
    if unknown or args.runs < 1 or args.gp050_runs < 0:
        parser.error(
            f"unknown variant(s) {unknown}"
            if unknown
            else "--runs must be >= 1 and --gp050-runs >= 0"
        )

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="gp-bench-")
    ctx = Context(root=Path(tmp), args=args)
    try:
        variants = []
        for key in keys:
            print(f"setting up: {key}", file=sys.stderr, flush=True)
            variants.append(VARIANT_FACTORIES[key](ctx))
        results = run_all(ctx, variants)
    finally:
        ctx.close()  # the sshd, if an ssh row started it
        if args.keep_tmp:
            print(f"kept {tmp} (worker logs: *.log)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(variants, results, args))
    print(f"\n(total bench time {time.monotonic() - started:.0f}s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"variants": [v.__dict__ for v in variants], "results": results},
                indent=2,
                default=str,  # paths
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
