"""Set up gateway_provisioners 0.5.0 for the launch benchmark, in a venv of its own.

gateway_provisioners registers the same ``distributed-provisioner`` entry point as
gp-distributed, so the two cannot share an environment.  This script

1. creates (once, then reuses) ``<cache>/venv`` with ``gateway_provisioners==0.5.0`` from PyPI,
   plus the ipykernel / jupyter_client / pyzmq / tornado versions of the Python running this
   script, so that kernel and client code match the other benchmark rows;
2. installs a kernelspec for its ``distributed-provisioner`` on localhost (or other
   ``remote_hosts``, see ``setup``) via its own ``jupyter-ssh-spec install`` into a private
   JUPYTER_DATA_DIR.

Usage: ``python benchmarks/setup_gp050.py [--cache-dir DIR] [--python PY] [--data-dir DIR]``.
The last line on stdout is JSON: ``{"python", "data_dir", "kernel_name"}``.  The default cache
is ``<repo>/.cache/bench/gp050`` (git-ignored), or ``$GP_BENCH_CACHE/gp050``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

GP_REQUIREMENT = "gateway_provisioners==0.5.0"
KERNEL_NAME = "gp050_distributed"
MATCHED_PACKAGES = ("ipykernel", "jupyter_client", "pyzmq", "tornado")
STAMP = ".gp-bench-stamp"
REPO = Path(__file__).resolve().parents[1]


class Unavailable(RuntimeError):
    """gateway_provisioners 0.5.0 cannot be set up here; the message says why."""


def default_cache_dir() -> Path:
    root = os.environ.get("GP_BENCH_CACHE") or str(REPO / ".cache" / "bench")
    return Path(root) / "gp050"


def requirements() -> list[str]:
    """gateway_provisioners 0.5.0 and this Python's kernel/client versions, pinned."""
    reqs = [GP_REQUIREMENT]
    for name in MATCHED_PACKAGES:
        try:
            reqs.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def _log(message: str) -> None:
    print(f"[setup_gp050] {message}", file=sys.stderr, flush=True)


def _venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _works(python: Path) -> bool:
    probe = [str(python), "-c", "import gateway_provisioners.distributed, ipykernel"]
    return python.exists() and subprocess.run(probe, capture_output=True).returncode == 0


def ensure_venv(cache_dir: Path) -> Path:
    """Return the Python of a venv holding gateway_provisioners 0.5.0; create it if needed."""
    venv_dir = cache_dir / "venv"
    python = _venv_python(venv_dir)
    reqs = requirements()
    stamp = venv_dir / STAMP
    if stamp.exists() and stamp.read_text().split() == reqs and _works(python):
        return python
    if venv_dir.exists():
        _log(f"rebuilding {venv_dir} (missing, stale or broken)")
        shutil.rmtree(venv_dir)
    _log(f"creating {venv_dir} with {' '.join(reqs)}")
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *reqs], capture_output=True, text=True)
    if done.returncode != 0:
        _log("pinned install failed; retrying with gateway_provisioners' own dependency choice")
        done = subprocess.run([*pip, GP_REQUIREMENT, "ipykernel"], capture_output=True, text=True)
        reqs = [GP_REQUIREMENT, "ipykernel"]
    if done.returncode != 0 or not _works(python):
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise Unavailable(f"pip install {GP_REQUIREMENT} failed: {tail or 'no output'}")
    stamp.write_text("\n".join(reqs) + "\n")
    return python


def install_kernelspec(
    python: Path,
    data_dir: Path,
    kernel_name: str = KERNEL_NAME,
    remote_hosts: str = "localhost",
    spec_env: dict[str, str] | None = None,
) -> str:
    """Install the distributed-provisioner kernelspec for ``remote_hosts`` into ``data_dir``;
    ``spec_env`` is added to the spec's ``env`` (which it exports on ssh hosts)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "GP_"))}
    env["JUPYTER_DATA_DIR"] = str(data_dir)
    install = [
        str(python),
        "-c",
        "from gateway_provisioners.cli.ssh_specapp import SshProvisionerApp as A; "
        "A.launch_instance()",
        "install",
        "--user",
        "--replace",
        f"--kernel-name={kernel_name}",
        f"--display-name=gateway_provisioners 0.5.0 distributed ({remote_hosts})",
        f"--remote-hosts={remote_hosts}",
    ]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    spec_file = data_dir / "kernels" / kernel_name / "kernel.json"
    if done.returncode != 0 or not spec_file.exists():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise Unavailable(f"jupyter-ssh-spec install failed: {tail or 'no output'}")
    # Its argv starts with a bare "python" (found on PATH at launch, or on an ssh host's login
    # PATH); pin the venv's absolute path instead.
    spec = json.loads(spec_file.read_text())
    if spec["argv"] and spec["argv"][0] == "python":
        spec["argv"][0] = str(python)
    if spec_env:
        spec["env"] = {**spec.get("env", {}), **spec_env}
    spec_file.write_text(json.dumps(spec, indent=2) + "\n")
    return kernel_name


def setup(
    cache_dir: Path | None = None,
    python: str | None = None,
    data_dir: Path | None = None,
    kernel_name: str = KERNEL_NAME,
    remote_hosts: str = "localhost",
    spec_env: dict[str, str] | None = None,
) -> dict[str, str]:
    cache_dir = cache_dir or default_cache_dir()
    if python:
        py = Path(python)
        if not _works(py):
            raise Unavailable(f"{python} cannot import gateway_provisioners and ipykernel")
    else:
        py = ensure_venv(cache_dir)
    data_dir = data_dir or cache_dir / "jupyter-data"
    kernel_name = install_kernelspec(py, data_dir, kernel_name, remote_hosts, spec_env)
    return {"python": str(py), "data_dir": str(data_dir), "kernel_name": kernel_name}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the venv is kept")
    parser.add_argument("--python", default=None, help="use this Python instead of the venv")
    parser.add_argument("--data-dir", type=Path, default=None, help="JUPYTER_DATA_DIR for it")
    args = parser.parse_args()
    try:
        info = setup(args.cache_dir, args.python, args.data_dir)
    except Unavailable as err:
        print(f"gateway_provisioners 0.5.0 unavailable: {err}", file=sys.stderr)
        return 1
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
