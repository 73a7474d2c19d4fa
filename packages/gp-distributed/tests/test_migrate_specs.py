"""``jupyter gp-migrate-specs`` rewrites a gateway_provisioners ssh spec in place, keeps the old
files in a backup, keeps what the user chose, and leaves a spec that pre_launch accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gp_provisioners_core.legacy_specs import find_problem
from gp_provisioners_core.migrate import BACKUP_PREFIX, main


def gp_ssh_spec(root: Path) -> Path:
    folder = root / "ssh_python"
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "launch_ipykernel.py").write_text("# gateway_provisioners' v1\n")
    (folder / "scripts" / "server_listener.py").write_text("")
    (folder / "logo-64x64.png").write_bytes(b"png")
    spec = {
        "argv": [
            "python",
            f"{folder}/scripts/launch_ipykernel.py",
            *("--kernel-id", "{kernel_id}", "--port-range", "{port_range}"),
            *("--response-address", "{response_address}", "--public-key", "{public_key}"),
            *("--transport-encryption", "{transport_encryption}"),
            *("--kernel-class-name", "my.Kernel"),
        ],
        "display_name": "Python SSH",
        "language": "python",
        "metadata": {
            "supported_encryption": ["curve"],
            "debugger": True,
            "kernel_provisioner": {
                "provisioner_name": "distributed-provisioner",
                "config": {"remote_hosts": ["h1", "h2"], "launch_timeout": 50},
            },
        },
        "env": {},
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    return folder


def test_migrate_rewrites_in_place_with_a_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = gp_ssh_spec(tmp_path)
    old = (folder / "kernel.json").read_text()
    assert main([str(folder)]) == 0
    assert "ssh_python: rewritten" in capsys.readouterr().out
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["argv"][:2] == ["python", "{resource_dir}/scripts/launch_ipykernel.py"]
    assert spec["argv"][spec["argv"].index("--kernel-class-name") + 1] == "my.Kernel"
    assert spec["display_name"] == "Python SSH"
    assert spec["metadata"]["kernel_provisioner"]["config"] == {
        "remote_hosts": ["h1", "h2"],
        "launch_timeout": 50,
    }
    assert "--protocol-version" in (folder / "scripts" / "launch_ipykernel.py").read_text()  # ours
    assert not (folder / "scripts" / "server_listener.py").exists()
    assert (folder / "logo-64x64.png").read_bytes() == b"png"
    (backup,) = folder.glob(f"{BACKUP_PREFIX}*")
    assert (backup / "kernel.json").read_text() == old
    assert (backup / "scripts" / "server_listener.py").exists()
    assert find_problem(spec["argv"], str(folder), "distributed-provisioner") is None
    assert main([str(folder)]) == 0
    assert "runs as it is" in capsys.readouterr().out


def test_dry_run_changes_nothing_and_unknown_names_fail(tmp_path: Path) -> None:
    folder = gp_ssh_spec(tmp_path)
    old = (folder / "kernel.json").read_text()
    script = Path(sys.executable).with_name("jupyter-gp-migrate-specs")
    done = subprocess.run([str(script), str(folder), "--dry-run"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "would rewrite" in done.stdout
    assert (folder / "kernel.json").read_text() == old
    missing = subprocess.run([str(script), "no_such_spec"], capture_output=True, text=True)
    assert missing.returncode != 0
    assert "'no_such_spec' is neither an installed kernelspec" in missing.stderr


def test_migrate_keeps_the_toree_assembly_the_user_put_in_lib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gateway_provisioners' ssh_scala spec shipped no Toree: its run.sh wanted the user's copy of
    the assembly in lib/.  The rewrite (this Python has no apache-toree) keeps that copy."""
    import shutil

    import pytest

    if not shutil.which("javac"):
        pytest.skip("the rewrite builds the Toree launcher with javac")
    folder = tmp_path / "ssh_scala"
    (folder / "bin").mkdir(parents=True)
    (folder / "lib").mkdir()
    (folder / "bin" / "run.sh").write_text('#!/bin/sh\nPROG_HOME="$(dirname "$0")/.."\n')
    (folder / "lib" / "toree-launcher_2.12-0.5.0.jar").write_bytes(b"old launcher")
    (folder / "lib" / "toree-assembly-0.5.0-incubating.jar").write_bytes(b"the user's Toree")
    spec = {
        "argv": [f"{folder}/bin/run.sh", "--kernel-id", "{kernel_id}"],
        "display_name": "Scala SSH",
        "language": "scala",
        "metadata": {"kernel_provisioner": {"provisioner_name": "distributed-provisioner"}},
        "env": {"SPARK_HOME": "/opt/spark", "__TOREE_OPTS__": "--alternate-sigint USR2"},
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    assert main([str(folder)]) == 0
    assert "the Toree assembly lib/toree-assembly-0.5.0-incubating.jar" in capsys.readouterr().out
    kept = folder / "lib" / "toree-assembly-0.5.0-incubating.jar"
    assert kept.read_bytes() == b"the user's Toree"
    assert (folder / "lib" / "gp-toree-launcher.jar").is_file()
    assert not (folder / "lib" / "toree-launcher_2.12-0.5.0.jar").exists()
    argv = json.loads((folder / "kernel.json").read_text())["argv"]
    assert argv[0] == "{resource_dir}/bin/run_toree.sh"
    assert find_problem(argv, str(folder), "distributed-provisioner") is None
