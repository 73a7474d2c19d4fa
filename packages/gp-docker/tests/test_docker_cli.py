"""``jupyter docker-spec install``: each flag, installed into a temporary prefix, read back."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gp_docker.cli import CONTAINER_LAUNCHER, DEFAULT_IMAGE, DEFAULT_R_IMAGE, main
from gp_docker.docker_provisioner import DockerProvisioner
from gp_provisioners_core.installer import InstallerError
from gp_provisioners_core.testing import installed_spec, provisioner_config
from gp_provisioners_core.testing.specs import PROVISIONER_FILLS

# The argv runs in the container, where the spec's folder ({resource_dir}) does not exist.
FILLED = PROVISIONER_FILLS - {"resource_dir"}


def install(tmp_path: Path, *flags: str, name: str = "docker_python") -> dict[str, Any]:
    assert main(["install", "--prefix", str(tmp_path), *flags]) == 0
    return read(tmp_path / "share" / "jupyter" / "kernels" / name)


def read(folder: Path) -> dict[str, Any]:
    return installed_spec(folder, fills=FILLED)


def test_defaults(tmp_path: Path) -> None:
    spec = install(tmp_path)
    assert spec["display_name"] == "Docker Python"
    assert spec["language"] == "python"
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "docker-provisioner"
    assert provisioner_config(spec) == {"image_name": DEFAULT_IMAGE}
    argv = spec["argv"]
    assert argv[:2] == ["python", CONTAINER_LAUNCHER]  # run inside the container
    assert argv[argv.index("--kernel-id") + 1] == "{kernel_id}"
    assert argv[argv.index("--response-address") + 1] == "{response_address}"
    assert argv[argv.index("--public-key") + 1] == "{public_key}"
    assert argv[argv.index("--port-range") + 1] == "{port_range}"
    assert argv[argv.index("--spark-context-initialization-mode") + 1] == "none"


def test_swarm(tmp_path: Path) -> None:
    spec = install(tmp_path, "--swarm")
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "docker-swarm-provisioner"
    assert spec["display_name"] == "Docker Python"  # gateway_provisioners' name, swarm or not


@pytest.mark.parametrize(
    ("flags", "key", "value"),
    [
        (["--image-name", "gp/kernel-py:2.0"], "image_name", "gp/kernel-py:2.0"),
        (["--executor-image-name", "gp/spark:3"], "executor_image_name", "gp/spark:3"),
        (["--network", "gp-net"], "docker_network", "gp-net"),
        (["--allowed-images", "gp/*, other/x:1"], "allowed_images", ["gp/*", "other/x:1"]),
        (["--authorized-users", "bob, alice"], "authorized_users", ["alice", "bob"]),
        (["--unauthorized-users", "root,eve"], "unauthorized_users", ["eve", "root"]),
        (["--port-range", "40000..41000"], "port_range", "40000..41000"),
        (["--launch-timeout", "75"], "launch_timeout", 75.0),
    ],
)
def test_settings_flags(tmp_path: Path, flags: list[str], key: str, value: object) -> None:
    assert provisioner_config(install(tmp_path, *flags))[key] == value


def test_installed_config_is_accepted_by_the_provisioner(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--image-name",
        "gp/kernel-py:2.0",
        "--executor-image-name",
        "gp/spark:3",
        "--network",
        "gp-net",
        "--allowed-images",
        "gp/*",
        "--port-range",
        "40000..41000",
        "--launch-timeout",
        "75",
        "--authorized-users",
        "alice",
        "--unauthorized-users",
        "root",
    )
    provisioner = DockerProvisioner(
        kernel_id="k1", kernel_spec=None, parent=None, **provisioner_config(spec)
    )
    assert provisioner.image_name == "gp/kernel-py:2.0"
    assert provisioner.docker_network == "gp-net"
    assert provisioner.allowed_images == {"gp/*"}
    assert provisioner.launch_timeout == 75.0


def test_names_language_and_subclass(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--kernel-name",
        "mine",
        "--display-name",
        "My Kernel",
        "--language",
        "python",
        "--ipykernel-subclass-name",
        "pkg.module.MyKernel",
        name="mine",
    )
    assert spec["display_name"] == "My Kernel"
    assert spec["language"] == "python"
    assert spec["argv"][-2:] == ["--kernel-class-name", "pkg.module.MyKernel"]


def test_language_r_defaults_to_the_r_image(tmp_path: Path) -> None:
    default = install(tmp_path, "--language", "r", name="docker_r")
    assert default["display_name"] == "Docker R"
    assert provisioner_config(default)["image_name"] == DEFAULT_R_IMAGE
    assert default["metadata"]["debugger"] is False
    assert "supported_encryption" not in default["metadata"]
    spec = install(
        tmp_path,
        *("--language", "R", "--image-name", "me/kernel-r:1", "--kernel-name", "r_docker"),
        name="r_docker",
    )
    assert spec["language"] == "R"
    assert spec["display_name"] == "Docker R"
    assert provisioner_config(spec)["image_name"] == "me/kernel-r:1"
    assert spec["argv"][:2] == ["python", CONTAINER_LAUNCHER]
    assert spec["argv"][spec["argv"].index("--kernel-language") + 1] == "R"


def test_python_and_launcher_path_inside_the_image(tmp_path: Path) -> None:
    spec = install(tmp_path, "--python", "/opt/conda/bin/python", "--launcher-path", "/l/gp.py")
    assert spec["argv"][:2] == ["/opt/conda/bin/python", "/l/gp.py"]
    with pytest.raises(InstallerError, match="must be absolute"):
        install(tmp_path, "--replace", "--launcher-path", "relative.py")


def test_spark_flags(tmp_path: Path) -> None:
    spec = install(tmp_path, "--spark", "--spark-home", "/opt/sp", "--spark-init-mode", "eager")
    assert spec["env"]["SPARK_HOME"] == "/opt/sp"
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == "eager"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--network", "a b"], "--network: docker network 'a b'"),
        (["--image-name", " "], "--image-name must name an image"),
        (["--port-range", "5..6"], "--port-range"),
        (["--launch-timeout", "0"], "--launch-timeout 0"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, flags: list[str], expected: str) -> None:
    with pytest.raises(InstallerError, match=re.escape(expected)):
        install(tmp_path, *flags)


def test_replace_is_needed_to_overwrite(tmp_path: Path) -> None:
    install(tmp_path)
    with pytest.raises(InstallerError, match="--replace"):
        install(tmp_path)
    assert install(tmp_path, "--replace", "--display-name", "Again")["display_name"] == "Again"


def test_user_and_sys_prefix_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "user-data"))
    assert main(["install", "--user", "--kernel-name", "u"]) == 0
    assert read(tmp_path / "user-data" / "kernels" / "u")["argv"][0] == "python"
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    assert main(["install", "--sys-prefix", "--kernel-name", "s"]) == 0
    assert read(tmp_path / "venv" / "share" / "jupyter" / "kernels" / "s")["language"] == "python"


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("jupyter-docker-spec")
    completed = subprocess.run(
        [str(script), "install", "--prefix", str(tmp_path), "--swarm", "--kernel-name", "sw"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Installed kernelspec sw" in completed.stdout
    spec = read(tmp_path / "share" / "jupyter" / "kernels" / "sw")
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "docker-swarm-provisioner"
