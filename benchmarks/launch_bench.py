"""Kernel launch benchmark: gp-distributed on localhost vs LocalProvisioner and gp 0.5.0.

Usage: ``python benchmarks/launch_bench.py [--runs N] [--gp050-python PATH]`` (see ``--help``)

Each launch runs in a fresh Python process (``_one_launch.py``) with the variant's own Python
and a private JUPYTER_DATA_DIR / JUPYTER_CONFIG_DIR / JUPYTER_RUNTIME_DIR / IPYTHONDIR under a
temporary folder, so nothing is read from or written to the user's Jupyter setup.  Runs
alternate between the variants (the order rotates every round) after one untimed warm-up
launch per variant.  Timings are printed, never judged by the exit code.

A variant is a row: a name, a Python, a kernelspec (installed by the variant's factory) and an
environment.  To add one (e.g. gp-distributed over ssh to 127.0.0.2), write another
``make_*`` function and list it in ``VARIANT_FACTORIES``.
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

import setup_gp050  # a sibling module of this script

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
    prestart: str = "none"  # "none", "gp_core" or "gateway_provisioners" (see _one_launch.py)
    note: str = ""
    unavailable: str = ""  # why the row cannot run; empty when it can


@dataclass
class Context:
    """What every variant factory gets: the private folders and the command-line options."""

    root: Path  # temporary; removed at the end
    args: argparse.Namespace

    def data_dir(self, key: str) -> Path:
        path = self.root / f"data-{key}"
        path.mkdir(parents=True, exist_ok=True)
        return path


# -- variants ---------------------------------------------------------------------------------


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


def make_gp_distributed(ctx: Context) -> Variant:
    """Our DistributedProvisioner with remote_hosts=localhost (launcher as a local process)."""
    data_dir = ctx.data_dir("gp")
    kernel_name = "bench_gp_distributed"
    env = {**os.environ, "JUPYTER_DATA_DIR": str(data_dir)}
    install = [
        sys.executable,
        "-m",
        "gp_distributed.cli",
        "install",
        "--user",
        "--replace",
        f"--kernel-name={kernel_name}",
        "--remote-hosts=localhost",
        f"--python={sys.executable}",
    ]
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
        prestart="gp_core",
        note="ResponseManager.instance().start() ran before timing: per-process server start-up "
        "(RSA key generation), not per-launch work",
    )
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        variant.unavailable = f"jupyter-ssh-spec install failed: {_tail(done.stderr)}"
    return variant


def make_gp050(ctx: Context) -> Variant:
    """gateway_provisioners 0.5.0's distributed-provisioner on localhost, in its own venv."""
    variant = Variant(
        key="gp050",
        label="gateway_provisioners 0.5.0 (localhost)",
        prestart="gateway_provisioners",
        note="ResponseManager.instance() was created before timing (normally the first launch "
        "creates it: RSA key, socket, 0.1 ms PeriodicCallback); GP_RESPONSE_PORT is a free "
        "port picked per launch, as it cannot use 0",
    )
    try:
        info = setup_gp050.setup(
            cache_dir=ctx.args.cache_dir / "gp050",
            python=ctx.args.gp050_python,
            data_dir=ctx.data_dir("gp050"),
        )
    except setup_gp050.Unavailable as err:
        variant.unavailable = str(err)
        return variant
    except (OSError, subprocess.SubprocessError) as err:
        variant.unavailable = f"setup failed: {err}"
        return variant
    logs = ctx.root / "gp050-kernel-logs"
    logs.mkdir(exist_ok=True)
    variant.python = info["python"]
    variant.kernel_name = info["kernel_name"]
    variant.env = {
        "JUPYTER_DATA_DIR": info["data_dir"],
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": FREE_PORT,  # with 0 it would announce port 0 to the launcher
        "GP_REMOTE_HOSTS": "localhost",
        "GP_KERNEL_LOG_DIR": str(logs),  # default /tmp/kernel-<id>.log
    }
    return variant


VARIANT_FACTORIES: dict[str, Callable[[Context], Variant]] = {
    "local": make_local,
    "gp": make_gp_distributed,
    "gp050": make_gp050,
}
BASELINE = "local"


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
        if not k.startswith(("JUPYTER_", "GP_", "KERNEL_", "IPYTHON"))
    }
    private = ctx.root / "home"
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        (private / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(private / sub)
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
            result = launch_once(ctx, variant, f"run{round_no}")
            results[variant.key].append(result)
            status = (
                f"ready {result['ready_s']:.3f}s shutdown {result['shutdown_s']:.3f}s"
                if result.get("ok")
                else f"FAILED: {result.get('error')}"
            )
            print(f"run {round_no + 1}/{ctx.args.runs} {variant.label}: {status}", file=sys.stderr)
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
    lines = [
        f"Kernel launch benchmark: {args.runs} run(s) per variant, medians across runs; "
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
        "--variants",
        default=",".join(VARIANT_FACTORIES),
        help=f"comma-separated rows to run (default: {','.join(VARIANT_FACTORIES)})",
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
    if unknown or args.runs < 1:
        parser.error(f"unknown variant(s) {unknown}" if unknown else "--runs must be >= 1")

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="gp-bench-")
    try:
        ctx = Context(root=Path(tmp), args=args)
        variants = []
        for key in keys:
            print(f"setting up: {key}", file=sys.stderr, flush=True)
            variants.append(VARIANT_FACTORIES[key](ctx))
        results = run_all(ctx, variants)
    finally:
        if args.keep_tmp:
            print(f"kept {tmp} (worker logs: *.log)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(variants, results, args))
    print(f"\n(total bench time {time.monotonic() - started:.0f}s)")
    if args.json:
        args.json.write_text(
            json.dumps({"variants": [v.__dict__ for v in variants], "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
