"""``jupyter-slurm-spec install``: every flag lands in kernel.json (as typed values), bad
values are named, the spec starts our launcher, and the console script really runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gp_provisioners_core.installer import InstallerError
from gp_provisioners_core.testing import installed_spec
from gp_slurm.cli import main

KERNEL = "slurm_t"


def install(tmp_path: Path, *flags: str) -> dict[str, Any]:
    assert main(["install", "--prefix", str(tmp_path), "--kernel-name", KERNEL, *flags]) == 0
    return read_spec(tmp_path)


def read_spec(prefix: Path) -> dict[str, Any]:
    folder = prefix / "share" / "jupyter" / "kernels" / KERNEL
    assert (folder / "scripts" / "launch_ipykernel.py").is_file()
    spec = installed_spec(folder)
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "slurm-provisioner"
    return spec


def test_defaults_leave_everything_to_the_server(tmp_path: Path) -> None:
    spec = install(tmp_path)
    assert spec["metadata"]["kernel_provisioner"]["config"] == {}
    assert spec["display_name"] == "Python on Slurm"
    assert spec["argv"][:2] == [sys.executable, "{resource_dir}/scripts/launch_ipykernel.py"]
    assert "{kernel_id}" in spec["argv"]
    assert "{response_address}" in spec["argv"]


def test_every_slurm_flag(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--rest-url",
        "http://127.0.0.1:6820",
        "--rest-api-version",
        "v0.0.37",
        "--rest-user",
        "svc",
        "--rest-token-file",
        "/etc/gp/slurm.jwt",
        "--slurm-conf",
        "/etc/slurm-test/slurm.conf",
        "--slurm-bin-dir",
        "/opt/slurm/bin",
        "--partition",
        "debug",
        "--allowed-partitions",
        "gpu, short ,gpu",
        "--account",
        "lab",
        "--allowed-accounts",
        "lab2",
        "--qos",
        "normal",
        "--allowed-qos",
        "high,low",
        "--time-limit",
        "1:00:00",
        "--max-time-limit",
        "1-0",
        "--cpus",
        "2",
        "--max-cpus",
        "16",
        "--memory",
        "2G",
        "--max-memory",
        "64G",
        "--gpus",
        "1",
        "--gpu-type",
        "a100",
        "--max-gpus",
        "4",
        "--allowed-gpu-types",
        "a100,h100",
        "--working-dir",
        "/scratch",
        "--output-dir",
        "/scratch/logs",
        "--env-allowlist",
        "LANG,TZ",
        "--status-interval",
        "5",
    )
    assert spec["metadata"]["kernel_provisioner"]["config"] == {
        "rest_url": "http://127.0.0.1:6820",
        "rest_api_version": "v0.0.37",
        "rest_user": "svc",
        "rest_token_file": "/etc/gp/slurm.jwt",
        "slurm_conf": "/etc/slurm-test/slurm.conf",
        "slurm_bin_dir": "/opt/slurm/bin",
        "partition": "debug",
        "allowed_partitions": ["gpu", "short"],
        "account": "lab",
        "allowed_accounts": ["lab2"],
        "qos": "normal",
        "allowed_qos": ["high", "low"],
        "time_limit": 60,
        "max_time_limit": 1440,
        "cpus": 2,
        "max_cpus": 16,
        "memory": 2048,
        "max_memory": 65536,
        "gpus": 1,
        "gpu_type": "a100",
        "max_gpus": 4,
        "allowed_gpu_types": ["a100", "h100"],
        "job_working_dir": "/scratch",
        "job_output_dir": "/scratch/logs",
        "env_allowlist": ["LANG", "TZ"],
        "status_interval": 5.0,
    }


def test_installed_config_is_accepted_by_the_provisioner(tmp_path: Path) -> None:
    """Every key the installer writes is a setting the provisioner takes, with a valid value."""
    from jupyter_client.kernelspec import KernelSpec

    from gp_slurm import SlurmProvisioner

    spec = install(
        tmp_path,
        "--rest-url",
        "http://h:1",
        "--time-limit",
        "30",
        "--memory",
        "1G",
        "--allowed-qos",
        "a",
        "--env-allowlist",
        "LANG",
        "--status-interval",
        "2",
    )
    config = spec["metadata"]["kernel_provisioner"]["config"]
    provisioner = SlurmProvisioner(kernel_id="k", kernel_spec=KernelSpec(**spec), **config)
    assert (provisioner.time_limit, provisioner.memory) == (30, 1024)
    assert provisioner.allowed_qos == {"a"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--rest-url", "ftp://host"], "--rest-url 'ftp://host' must be http(s)://host:port"),
        (["--rest-api-version", "v0.0.40"], None),
        (["--time-limit", "soon"], "--time-limit: 'soon' is not a Slurm time"),
        (["--max-time-limit", "0"], "--max-time-limit: '0' is not a positive time"),
        (["--memory", "lots"], "--memory: 'lots' is not an amount of memory"),
        (["--max-memory", "1P"], "--max-memory: '1P' is not an amount of memory"),
        (["--cpus", "-1"], "--cpus -1 must be >= 0"),
        (["--cpus", "0"], "--cpus 0: a kernel needs at least one CPU"),
        (["--cpus", "8", "--max-cpus", "4"], "--cpus 8 exceeds --max-cpus 4"),
        (["--memory", "4G", "--max-memory", "1G"], "--memory 4096 exceeds --max-memory 1024"),
        (["--gpus", "2", "--max-gpus", "1"], "--gpus 2 exceeds --max-gpus 1"),
        (["--time-limit", "90", "--max-time-limit", "60"], "--time-limit 90 exceeds"),
        (["--max-gpus", "-2"], "--max-gpus -2 must be >= 0"),
        (["--partition", "a b"], "--partition 'a b' is not a plain name"),
        (["--env-allowlist", "SLURM_CONF"], "--env-allowlist: 'SLURM_CONF' cannot travel"),
        (["--status-interval", "0"], "--status-interval 0 must be > 0"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, flags: list[str], expected: str | None) -> None:
    with pytest.raises((InstallerError, SystemExit)) as refused:
        main(["install", "--prefix", str(tmp_path), "--kernel-name", KERNEL, *flags])
    if expected is not None:
        assert expected in str(refused.value)
    assert not (tmp_path / "share" / "jupyter" / "kernels" / KERNEL).exists()


def test_common_flags_and_replace(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--display-name",
        "Slurm Py",
        "--authorized-users",
        "bob,alice",
        "--launch-timeout",
        "90",
        "--port-range",
        "40000..41000",
    )
    config = spec["metadata"]["kernel_provisioner"]["config"]
    assert config == {
        "authorized_users": ["alice", "bob"],
        "launch_timeout": 90.0,
        "port_range": "40000..41000",
    }
    assert spec["display_name"] == "Slurm Py"
    with pytest.raises(InstallerError, match="use --replace"):
        main(["install", "--prefix", str(tmp_path), "--kernel-name", KERNEL])
    install(tmp_path, "--replace", "--partition", "short")
    assert read_spec(tmp_path)["metadata"]["kernel_provisioner"]["config"] == {"partition": "short"}


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("jupyter-slurm-spec")
    done = subprocess.run(
        [str(script), "install", "--prefix", str(tmp_path), "--kernel-name", KERNEL, "--cpus", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"Installed kernelspec {KERNEL}" in done.stdout
    assert read_spec(tmp_path)["metadata"]["kernel_provisioner"]["config"] == {"cpus": 2}
