"""The kernelspec-installer base: every common flag lands in kernel.json, and no placeholder the
provisioner does not fill is left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gp_provisioners_core.installer import InstallerError, KernelSpecInstaller
from gp_provisioners_core.remote_provisioner import RemoteProvisionerBase
from gp_provisioners_core.testing import installed_spec, provisioner_config


class DemoInstaller(KernelSpecInstaller):
    command = "jupyter demo-spec"
    provisioner_name = "demo-provisioner"
    default_kernel_name = "demo_python"
    default_display_name = "Demo Python"


def install(tmp_path: Path, *flags: str) -> dict[str, Any]:
    DemoInstaller().main(["install", "--prefix", str(tmp_path), *flags])
    name = flags[flags.index("--kernel-name") + 1] if "--kernel-name" in flags else "demo_python"
    folder = tmp_path / "share" / "jupyter" / "kernels" / name
    assert (folder / "scripts" / "launch_ipykernel.py").is_file()
    return installed_spec(folder)


def test_defaults(tmp_path: Path) -> None:
    spec = install(tmp_path)
    assert spec["display_name"] == "Demo Python"
    assert spec["language"] == "python"
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "demo-provisioner"
    assert provisioner_config(spec) == {}
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == "none"


@pytest.mark.parametrize(
    ("flags", "key", "value"),
    [
        (["--authorized-users", "bob, alice"], "authorized_users", ["alice", "bob"]),
        (["--unauthorized-users", "root,eve"], "unauthorized_users", ["eve", "root"]),
        (["--port-range", "40000..41000"], "port_range", "40000..41000"),
        (["--launch-timeout", "75"], "launch_timeout", 75.0),
    ],
)
def test_settings_flags_land_in_the_provisioner_config(
    tmp_path: Path, flags: list[str], key: str, value: object
) -> None:
    assert provisioner_config(install(tmp_path, *flags))[key] == value


def test_installed_config_is_accepted_by_the_provisioner_settings(tmp_path: Path) -> None:
    spec = install(tmp_path, "--port-range", "40000..41000", "--launch-timeout", "75")
    for key, value in provisioner_config(spec).items():
        assert key in RemoteProvisionerBase.class_trait_names(config=True)
        assert value is not None


def test_names_and_subclass(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--kernel-name",
        "mine",
        "--display-name",
        "My Kernel",
        "--ipykernel-subclass-name",
        "pkg.module.MyKernel",
    )
    assert spec["display_name"] == "My Kernel"
    assert spec["argv"][-2:] == ["--kernel-class-name", "pkg.module.MyKernel"]


def test_spark_flags(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--spark",
        "--spark-home",
        "/opt/sp",
        "--spark-master",
        "local[2]",
        "--spark-init-mode",
        "eager",
        "--extra-spark-opts",
        "--conf a=b",
    )
    assert spec["env"] == {
        "SPARK_HOME": "/opt/sp",
        "SPARK_OPTS": "--conf a=b",
        "SPARK_MASTER": "local[2]",
    }
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == "eager"


def test_python_flag_sets_argv0(tmp_path: Path) -> None:
    assert install(tmp_path, "--python", "/opt/py/bin/python3")["argv"][0] == "/opt/py/bin/python3"


def test_replace_is_needed_to_overwrite(tmp_path: Path) -> None:
    install(tmp_path)
    with pytest.raises(InstallerError, match="--replace"):
        install(tmp_path)
    assert install(tmp_path, "--replace", "--display-name", "Again")["display_name"] == "Again"


def test_user_and_sys_prefix_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "user-data"))
    DemoInstaller().main(["install", "--user"])
    assert (tmp_path / "user-data" / "kernels" / "demo_python" / "kernel.json").is_file()
    with pytest.raises(SystemExit):
        DemoInstaller().main(["install", "--user", "--sys-prefix"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--port-range", "9..3"], "--port-range"),
        (["--launch-timeout", "0"], "--launch-timeout"),
        (["--kernel-name", "a/b"], "--kernel-name"),
        (["--language", "R", "--spark", "--spark-init-mode", "eager"], "--spark-init-mode none"),
        (["--language", "R", "--ipykernel-subclass-name", "a.B"], "--language python only"),
    ],
)
def test_bad_flags_fail_with_the_flag_named(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as failure:
        DemoInstaller().main(["install", "--prefix", str(tmp_path), *flags])
    assert message in str(failure.value)


def test_language_r_runs_irkernel_through_the_python_listener(tmp_path: Path) -> None:
    spec = install(tmp_path, "--language", "R", "--kernel-name", "r_kernel")
    assert spec["language"] == "R"
    assert spec["argv"][1] == "{resource_dir}/scripts/launch_ipykernel.py"
    assert spec["argv"][-2:] == ["--kernel-language", "R"]
    scripts = tmp_path / "share" / "jupyter" / "kernels" / "r_kernel" / "scripts"
    assert (scripts / "launch_IRkernel.R").is_file()
