"""gateway_provisioners 0.5.0 from PyPI, in a venv of its own (the two packages register the same
provisioner names and scripts, so they never share one), and its kernelspec installers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from setup_gp050 import Unavailable, default_cache_dir, ensure_venv  # noqa: E402

GP_APPS = {
    "ssh": "gateway_provisioners.cli.ssh_specapp:SshProvisionerApp",
    "k8s": "gateway_provisioners.cli.k8s_specapp:K8sProvisionerApp",
    "docker": "gateway_provisioners.cli.docker_specapp:DockerProvisionerApp",
    "yarn": "gateway_provisioners.cli.yarn_specapp:YarnProvisionerApp",
}

# Every kernelspec 0.5.0's installers can write: ssh, YARN, Kubernetes (pods and the Spark
# operator's custom resource), Docker and Swarm; Python, R and Scala; with and without Spark.
WRITABLE: list[tuple[str, list[str]]] = [
    ("ssh", []),
    ("ssh", ["--spark"]),
    ("ssh", ["--language", "Scala"]),
    ("ssh", ["--language", "Scala", "--spark"]),
    ("k8s", []),
    ("k8s", ["--spark"]),
    ("k8s", ["--language", "R"]),
    ("k8s", ["--language", "R", "--spark"]),
    ("k8s", ["--language", "Scala"]),
    ("k8s", ["--language", "Scala", "--spark"]),
    ("k8s", ["--crd", "--spark"]),
    ("docker", []),
    ("docker", ["--language", "R"]),
    ("docker", ["--language", "Scala"]),
    ("docker", ["--swarm", "--kernel-name", "python_swarm"]),
    ("yarn", []),
    ("yarn", ["--language", "Scala"]),
    ("yarn", ["--dask"]),
]
# 0.5.0 crashes on these (it looks for a kernel-launchers/r folder it does not ship).
GP_CRASHES: list[tuple[str, list[str]]] = [
    ("ssh", ["--language", "R"]),
    ("ssh", ["--language", "R", "--spark"]),
    ("yarn", ["--language", "R"]),
]


def gp050_python() -> Path:
    """The venv Python holding gateway_provisioners 0.5.0 (created once, cached)."""
    return Path(ensure_venv(default_cache_dir()))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "GP_"))}


def gp_install(
    python: Path, command: str, flags: list[str], prefix: Path
) -> subprocess.CompletedProcess[str]:
    """Run 0.5.0's ``jupyter <command>-spec install --prefix PREFIX FLAGS``."""
    module, app = GP_APPS[command].split(":")
    code = f"from {module} import {app} as A; A.launch_instance()"
    argv = [str(python), "-c", code, "install", f"--prefix={prefix}", *flags]
    return subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=120)


def kernels_in(prefix: Path) -> Path:
    return prefix / "share" / "jupyter" / "kernels"


def read_spec(folder: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((folder / "kernel.json").read_text())
    return spec


__all__ = [
    "GP_CRASHES",
    "WRITABLE",
    "Unavailable",
    "gp050_python",
    "gp_install",
    "kernels_in",
    "read_spec",
]
