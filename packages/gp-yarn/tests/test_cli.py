"""``jupyter yarn-spec install``: every flag, installed into a temporary prefix; no ``${...}``
anywhere in kernel.json; run.sh reads only the documented variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gp_provisioners_core.installer import InstallerError
from gp_provisioners_core.testing import installed_spec, provisioner_config
from gp_yarn.cli import main
from gp_yarn.provisioner import LAUNCH_ENV_NAMES

# What run.sh may read: set by the provisioner at launch (gp-yarn's and gp-provisioners-core's), by
# kernel.json's env, or optional (documented in run.sh and the README).
RUN_SH_VARIABLES = {
    *LAUNCH_ENV_NAMES,
    "GP_LAUNCH_SECRET",
    "GP_TRANSPORT_ENCRYPTION",
    "SPARK_HOME",
    "SPARK_OPTS",
    "PYSPARK_PYTHON",
    "SPARK_CONF_DIR",
    "TMPDIR",
}


def install(prefix: Path, *flags: str, name: str = "yarn_t") -> tuple[dict[str, Any], Path]:
    assert main(["install", "--prefix", str(prefix), "--kernel-name", name, *flags]) == 0
    folder = prefix / "share" / "jupyter" / "kernels" / name
    spec = installed_spec(folder)
    assert (folder / "scripts" / "launch_ipykernel.py").is_file()
    run_sh = folder / "bin" / "run.sh"
    assert os.access(run_sh, os.X_OK)
    assert spec["argv"][0] == "{resource_dir}/bin/run.sh"
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "yarn-provisioner"
    return spec, folder


def test_defaults(tmp_path: Path) -> None:
    spec, _ = install(tmp_path)
    assert provisioner_config(spec) == {}
    assert spec["display_name"] == "yarn_t" or spec["display_name"]
    assert spec["env"] == {
        "SPARK_HOME": "/opt/spark",
        "SPARK_OPTS": "",
        "PYSPARK_PYTHON": sys.executable,
    }
    argv = spec["argv"]
    assert argv[argv.index("--spark-context-initialization-mode") + 1] == "lazy"


def test_the_default_kernel_name(tmp_path: Path) -> None:
    assert main(["install", "--prefix", str(tmp_path)]) == 0
    spec = json.loads(
        (tmp_path / "share/jupyter/kernels/yarn_spark_python/kernel.json").read_text()
    )
    assert spec["display_name"] == "Spark Python (YARN Cluster)"  # gateway_provisioners' name


def test_every_yarn_flag(tmp_path: Path) -> None:
    spec, _ = install(
        tmp_path,
        "--yarn-endpoint",
        "http://rm1.example.com:8088/ws/v1/cluster",
        "--alt-yarn-endpoint",
        "rm2.example.com:8088",
        "--yarn-endpoint-security-enabled",
        "--impersonation-enabled=false",
        "--spark-home",
        "/srv/spark",
        "--extra-spark-opts",
        "  --queue research   --conf spark.executor.memory=2g ",
        "--spark-init-mode",
        "eager",
        "--python-root",
        "/opt/conda",
        "--display-name",
        "Spark on YARN",
        "--authorized-users",
        "bob,alice",
        "--unauthorized-users",
        "root,eve",
        "--port-range",
        "40000..41000",
        "--launch-timeout",
        "90",
        "--ipykernel-subclass-name",
        "my.Kernel",
    )
    assert provisioner_config(spec) == {
        "yarn_endpoint": "http://rm1.example.com:8088/ws/v1/cluster",
        "alt_yarn_endpoint": "rm2.example.com:8088",
        "yarn_endpoint_security_enabled": True,
        "impersonation_enabled": False,
        "authorized_users": ["alice", "bob"],
        "unauthorized_users": ["eve", "root"],
        "port_range": "40000..41000",
        "launch_timeout": 90.0,
    }
    assert spec["env"] == {
        "SPARK_HOME": "/srv/spark",
        "SPARK_OPTS": "--queue research --conf spark.executor.memory=2g",
        "PYSPARK_PYTHON": "/opt/conda/bin/python",
    }
    assert spec["display_name"] == "Spark on YARN"
    argv = spec["argv"]
    assert argv[argv.index("--spark-context-initialization-mode") + 1] == "eager"
    assert argv[argv.index("--kernel-class-name") + 1] == "my.Kernel"


@pytest.mark.parametrize("mode", ["lazy", "eager", "none"])
def test_spark_init_modes(tmp_path: Path, mode: str) -> None:
    spec, _ = install(tmp_path, "--spark-init-mode", mode)
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == mode


def test_r_kernels(tmp_path: Path) -> None:
    spec, folder = install(tmp_path, "--language", "R", "--display-name", "Spark - R (YARN)")
    argv = spec["argv"]
    assert spec["language"] == "R"
    assert argv[argv.index("--kernel-language") + 1] == "R"
    assert argv[argv.index("--spark-context-initialization-mode") + 1] == "none"
    assert (folder / "scripts" / "launch_IRkernel.R").is_file()


def test_python_flag(tmp_path: Path) -> None:
    spec, _ = install(tmp_path, "--python", "/usr/bin/python3")
    assert spec["env"]["PYSPARK_PYTHON"] == "/usr/bin/python3"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--yarn-endpoint", "ftp://rm:1"], "--yarn-endpoint: YARN endpoint 'ftp://rm:1'"),
        (["--alt-yarn-endpoint", "rm2:8088"], "--alt-yarn-endpoint needs --yarn-endpoint"),
        (["--extra-spark-opts", "--conf a=${HOME}"], r"expands no \$\{\.\.\.\}"),
        (["--spark-master", "local[2]"], "always use --master yarn"),
        (["--port-range", "5..6"], "--port-range"),
        (["--launch-timeout", "0"], "--launch-timeout 0"),
        (["--language", "R", "--spark-init-mode", "lazy"], "--spark-init-mode lazy with"),
        (["--language", "R", "--ipykernel-subclass-name", "x.K"], "python only"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(InstallerError, match=message):
        install(tmp_path, *flags)


def test_bad_booleans_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        install(tmp_path, "--impersonation-enabled=maybe")


def test_replace_user_and_sys_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path)
    with pytest.raises(InstallerError, match="--replace"):
        install(tmp_path)
    spec, _ = install(tmp_path, "--replace", "--display-name", "again")
    assert spec["display_name"] == "again"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "user-data"))
    assert main(["install", "--user", "--kernel-name", "yarn_u"]) == 0
    assert (tmp_path / "user-data" / "kernels" / "yarn_u" / "bin" / "run.sh").is_file()
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    assert main(["install", "--sys-prefix", "--kernel-name", "yarn_s"]) == 0
    assert (tmp_path / "venv/share/jupyter/kernels/yarn_s/kernel.json").is_file()


def test_run_sh_reads_only_documented_variables(tmp_path: Path) -> None:
    _, folder = install(tmp_path)
    text = (folder / "bin" / "run.sh").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", code)) - {"BASH_SOURCE"}
    assert used <= RUN_SH_VARIABLES, used - RUN_SH_VARIABLES
    header = text.split("set -euo pipefail")[0]
    assert all(name in header for name in RUN_SH_VARIABLES)


def test_run_sh_passes_launch_values_to_spark_submit(tmp_path: Path) -> None:
    """run.sh with a recording spark-submit: the launch's values arrive as arguments, the
    secret only in the properties file, and the file is gone afterwards."""
    spark = tmp_path / "spark"
    (spark / "bin").mkdir(parents=True)
    record = tmp_path / "record.json"
    script = spark / "bin" / "spark-submit"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\nargs = sys.argv[1:]\n"
        "props = open(args[args.index('--properties-file') + 1]).read()\n"
        f"json.dump({{'args': args, 'props': props}}, open({str(record)!r}, 'w'))\n"
    )
    script.chmod(0o755)
    _, folder = install(
        tmp_path / "prefix", "--spark-home", str(spark), "--extra-spark-opts", "--queue q"
    )
    env = {
        "PATH": os.environ["PATH"],
        "TMPDIR": str(tmp_path),
        "KERNEL_ID": "kid-1",
        "KERNEL_USERNAME": "alice",
        "GP_LAUNCH_SECRET": "s3cr3t",
        "GP_TRANSPORT_ENCRYPTION": "none",
        "GP_IMPERSONATION_ENABLED": "true",
        "GP_YARN_APP_TAG": "gp-0123",
        "SPARK_HOME": str(spark),
        "SPARK_OPTS": "--queue q",
        "PYSPARK_PYTHON": "/usr/bin/python3",
    }
    run_sh = folder / "bin" / "run.sh"
    subprocess.run([str(run_sh), "--kernel-id", "kid-1"], env=env, check=True)
    seen = json.loads(record.read_text())
    args = seen["args"]
    assert args[args.index("--name") + 1] == "kid-1"
    assert args[args.index("--proxy-user") + 1] == "alice"
    assert "spark.yarn.tags=gp-0123" in args
    assert "spark.yarn.maxAppAttempts=1" in args
    assert "spark.yarn.appMasterEnv.KERNEL_USERNAME=alice" in args
    assert args[args.index("--queue") + 1] == "q"
    assert args[-3:] == [str(folder / "scripts" / "launch_ipykernel.py"), "--kernel-id", "kid-1"]
    assert not any("s3cr3t" in arg for arg in args)
    assert "spark.yarn.appMasterEnv.GP_LAUNCH_SECRET=s3cr3t" in seen["props"]
    assert list(tmp_path.glob("gp-yarn-*")) == []
    env["GP_IMPERSONATION_ENABLED"] = "false"
    subprocess.run([str(run_sh)], env=env, check=True)
    assert "--proxy-user" not in json.loads(record.read_text())["args"]
