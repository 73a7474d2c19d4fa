"""The ``jupyter <x>-spec`` commands are traitlets applications with gateway_provisioners 0.5.0's
command-line semantics: config files, ``--Class.trait=value``, appending list flags,
case-insensitive ``--language`` with Scala, and kernel metadata that says what the kernel does."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gp_provisioners_core.installer import InstallerError, KernelSpecInstaller


class ListInstaller(KernelSpecInstaller):
    command = "jupyter demo-spec"
    provisioner_name = "demo-provisioner"
    default_names: ClassVar[dict[str, tuple[str, str]]] = {
        "python": ("demo_python", "Demo Python"),
        "R": ("demo_r", "Demo R"),
        "scala": ("demo_scala", "Demo Scala"),
    }
    spark_renames = True


def install(tmp_path: Path, *flags: str, name: str) -> dict[str, Any]:
    assert ListInstaller().main(["install", "--prefix", str(tmp_path), *flags]) == 0
    path = tmp_path / "share" / "jupyter" / "kernels" / name / "kernel.json"
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


def config_of(spec: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = spec["metadata"]["kernel_provisioner"]["config"]
    return config


def test_repeated_list_flags_append_and_take_commas(tmp_path: Path) -> None:
    spec = install(
        tmp_path,
        "--authorized-users=bob",
        "--authorized-users=carol,dave",
        "--authorized-users",
        "alice",
        name="demo_python",
    )
    assert config_of(spec)["authorized_users"] == ["alice", "bob", "carol", "dave"]


def test_config_file_and_class_trait_options(tmp_path: Path) -> None:
    config = tmp_path / "install_config.py"
    config.write_text(
        "c.BaseSpecApp.display_name = 'From the file'\n"
        "c.ListInstaller.launch_timeout = '90'\n"
        "c.ListInstaller.unauthorized_users = ['eve']\n"
    )
    spec = install(
        tmp_path,
        "--config",
        str(config),
        "--ListInstaller.port_range=40000..40100",
        "--debug",
        name="demo_python",
    )
    assert spec["display_name"] == "From the file"
    assert config_of(spec) == {
        "launch_timeout": 90.0,
        "unauthorized_users": ["eve"],
        "port_range": "40000..40100",
    }


@pytest.mark.parametrize(
    ("language", "name", "display", "field"),
    [
        ("Python", "demo_python", "Demo Python", "python"),
        ("r", "demo_r", "Demo R", "R"),
        ("SCALA", "demo_scala", "Demo Scala", "scala"),
    ],
)
def test_language_is_case_insensitive_and_names_follow_it(
    tmp_path: Path, language: str, name: str, display: str, field: str
) -> None:
    spec = install(tmp_path, "--language", language, name=name)
    assert (spec["display_name"], spec["language"]) == (display, field)


def test_spark_adds_the_spark_suffix_to_default_names_only(tmp_path: Path) -> None:
    spec = install(tmp_path, "--spark", "--language", "R", name="demo_r_spark")
    assert spec["display_name"] == "Demo R (with Spark)"
    # R kernels start their Spark context from the notebook (SparkR): none by default
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == "none"
    mine = install(tmp_path, "--spark", "--kernel-name", "my kernel", name="my_kernel")
    assert mine["display_name"] == "Demo Python (with Spark)"


def test_metadata_and_transport_encryption_say_what_the_kernel_supports(tmp_path: Path) -> None:
    python = install(tmp_path, name="demo_python")
    assert python["metadata"]["debugger"] is True
    assert python["metadata"]["supported_encryption"] == ["curve"]
    argv = python["argv"]
    assert argv[argv.index("--transport-encryption") + 1] == "{transport_encryption}"
    assert argv[argv.index("--kernel-class-name") + 1] == "ipykernel.ipkernel.IPythonKernel"
    for language, name in (("R", "demo_r"), ("Scala", "demo_scala")):
        spec = install(tmp_path, "--language", language, name=name)
        assert spec["metadata"]["debugger"] is False
        assert "supported_encryption" not in spec["metadata"]
        assert "--transport-encryption" not in spec["argv"]


needs_jdk = pytest.mark.skipif(
    not (shutil.which("javac") and shutil.which("jar")),
    reason="no JDK: apt-get install openjdk-17-jdk-headless (scala part)",
)


@needs_jdk
def test_scala_spec_carries_the_toree_launcher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = install(tmp_path, "--language", "scala", "--spark", name="demo_scala_spark")
    assert spec["argv"][0] == "{resource_dir}/bin/run_toree.sh"
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == "lazy"
    assert spec["env"]["__TOREE_OPTS__"] == "--alternate-sigint USR2"
    folder = tmp_path / "share" / "jupyter" / "kernels" / "demo_scala_spark"
    assert os.access(folder / "bin" / "run_toree.sh", os.X_OK)
    with zipfile.ZipFile(folder / "lib" / "gp-toree-launcher.jar") as jar:
        assert "gp/launcher/ToreeLauncher.class" in jar.namelist()
    assert not (folder / "scripts" / "launch_ipykernel.py").exists()
    # no apache-toree in this environment: the installer says how to get the assembly
    assert "pip install apache-toree" in capsys.readouterr().err


@needs_jdk
def test_scala_always_has_a_spark_context(tmp_path: Path) -> None:
    spec = install(tmp_path, "--language", "Scala", name="demo_scala")
    assert spec["argv"][spec["argv"].index("--spark-context-initialization-mode") + 1] == "lazy"
    assert spec["env"]["SPARK_HOME"] == "/opt/spark"
    flags = ("--language", "Scala", "--spark-init-mode", "eager", "--replace")
    eager = install(tmp_path, *flags, name="demo_scala")
    assert eager["argv"][eager["argv"].index("--spark-context-initialization-mode") + 1] == "eager"
    with pytest.raises(SystemExit, match="Toree kernels always have a Spark context"):
        install(tmp_path, "--language", "Scala", "--spark-init-mode", "none", "--replace", name="x")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--language", "cobol"], "--language 'cobol': choose Python, R or Scala"),
        (["--bogus=1"], "unrecognized arguments: --bogus"),
        (["--launch-timeout=soon"], "--launch-timeout 'soon'"),
        (["--spark-init-mode=later"], "--spark-init-mode 'later': choose one of"),
        (["--user", "--sys-prefix"], "choose one of --user, --prefix and --sys-prefix"),
    ],
)
def test_bad_values_are_refused_naming_them(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(InstallerError, match=message.replace("(", r"\(")):
        ListInstaller().main(["install", "--kernel-name", "x", *flags])


def test_no_subcommand_fails_and_names_install() -> None:
    with pytest.raises(SystemExit, match="give a subcommand, one of: install"):
        ListInstaller().main([])


def test_a_repeated_text_flag_takes_the_last_value(tmp_path: Path) -> None:
    spec = install(tmp_path, "--display-name", "First", "--display-name=Last", name="demo_python")
    assert spec["display_name"] == "Last"
