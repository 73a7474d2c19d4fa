"""Kernelspecs gateway_provisioners 0.5.0 wrote are refused in pre_launch, before anything is
registered or submitted, with the spec, the problem and the rewrite command named; our own
specs pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_provisioners_core.errors import KernelSpecConfigError
from gp_provisioners_core.legacy_specs import check_kernelspec, find_problem
from gp_provisioners_core.remote_provisioner import RemoteProvisionerBase

GP_FLAGS = ["--kernel-id", "{kernel_id}", "--response-address", "{response_address}"]


def old_spec(
    root: Path, name: str, argv: list[str], provisioner: str, files: dict[str, str]
) -> KernelSpec:
    """A spec folder shaped as gateway_provisioners 0.5.0 installed it (absolute paths)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    argv = [a.replace("${install_dir}", str(folder)) for a in argv]
    spec = {
        "argv": argv,
        "display_name": name,
        "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": provisioner, "config": {}}},
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    return KernelSpec(resource_dir=str(folder), **spec)


def gp_k8s(root: Path) -> KernelSpec:
    launcher = "${install_dir}/scripts/launch_kubernetes.py"
    return old_spec(
        root,
        "k8s_python",
        ["python", launcher, *GP_FLAGS],
        "kubernetes-provisioner",
        {"scripts/launch_kubernetes.py": "", "scripts/kernel-pod.yaml.j2": ""},
    )


def gp_ssh(root: Path) -> KernelSpec:
    return old_spec(
        root,
        "ssh_python",
        ["python", "${install_dir}/scripts/launch_ipykernel.py", *GP_FLAGS],
        "distributed-provisioner",
        {"scripts/launch_ipykernel.py": "", "scripts/server_listener.py": ""},
    )


def gp_yarn(
    root: Path, run_sh: str = 'PROG_HOME="$(dirname "$0")"\nexec spark-submit\n'
) -> KernelSpec:
    return old_spec(
        root,
        "yarn_spark_python",
        ["${install_dir}/bin/run.sh", *GP_FLAGS],
        "yarn-provisioner",
        {"bin/run.sh": run_sh, "scripts/launch_ipykernel.py": ""},
    )


def refusal(spec: KernelSpec, provisioner: str, allow_legacy: bool = False) -> str:
    with pytest.raises(KernelSpecConfigError) as refused:
        check_kernelspec(spec, provisioner, allow_legacy_launchers=allow_legacy, kernel_id="k1")
    return str(refused.value)


def test_a_server_side_launcher_is_refused_with_the_rewrite_command(tmp_path: Path) -> None:
    message = refusal(gp_k8s(tmp_path), "kubernetes-provisioner")
    assert "kernelspec 'k8s_python'" in message
    assert "scripts/launch_kubernetes.py" in message
    assert "inside the kernel image" in message
    assert "jupyter gp-migrate-specs k8s_python" in message


def test_the_v1_launcher_runs_only_when_declared_and_legacy_launchers_are_allowed(
    tmp_path: Path,
) -> None:
    spec = gp_ssh(tmp_path)
    message = refusal(spec, "distributed-provisioner")
    assert "protocol v1" in message
    assert "jupyter gp-migrate-specs ssh_python" in message
    assert "allow_legacy_launchers" in message
    assert '"launcher_protocol_version": 1' in message
    # The operator's opt-in alone does not open the v1 path: the spec must declare its launcher.
    assert "protocol v1" in refusal(spec, "distributed-provisioner", allow_legacy=True)
    spec.metadata["kernel_provisioner"]["launcher_protocol_version"] = 1
    assert "protocol v1" in refusal(spec, "distributed-provisioner", allow_legacy=False)
    check_kernelspec(
        spec, "distributed-provisioner", allow_legacy_launchers=True, kernel_id="k1"
    )  # runs with its own launcher


def test_the_old_run_sh_is_refused(tmp_path: Path) -> None:
    message = refusal(gp_yarn(tmp_path), "yarn-provisioner")
    assert "bin/run.sh" in message
    assert "jupyter gp-migrate-specs yarn_spark_python" in message


def test_a_dask_spec_is_refused_without_a_rewrite(tmp_path: Path) -> None:
    spec = gp_yarn(tmp_path, 'PROG_HOME=x\nexec python -m dask_yarn "$@"\n')
    message = refusal(spec, "yarn-provisioner")
    assert "Dask-on-YARN" in message
    assert "gp-migrate-specs" not in message


def test_our_specs_and_missing_files_of_ours(tmp_path: Path) -> None:
    folder = tmp_path / "ours"
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "launch_ipykernel.py").write_text("")
    ours = ["python", "{resource_dir}/scripts/launch_ipykernel.py", *GP_FLAGS]
    assert find_problem(ours, str(folder), "distributed-provisioner") is None
    image = ["python3", "/usr/local/bin/launch_ipykernel.py", *GP_FLAGS]
    assert find_problem(image, str(folder), "kubernetes-provisioner") is None
    scala = ["{resource_dir}/bin/run_toree.sh", *GP_FLAGS]
    problem = find_problem(scala, str(folder), "distributed-provisioner")
    assert problem is not None
    assert "Toree" in problem.reason
    assert not problem.migratable


class Probe(RemoteProvisionerBase):
    """Records whether anything was registered with the response manager."""

    registered = False

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None: ...
    async def confirm_remote_startup(self) -> None: ...
    async def poll(self) -> int | None: ...
    async def send_signal(self, signum: int) -> None: ...
    async def terminate(self, restart: bool = False) -> None: ...
    async def kill(self, restart: bool = False) -> None: ...
    def log_kernel_launch(self, cmd: list[str]) -> None: ...

    @property
    def has_process(self) -> bool:
        return False


@pytest.mark.asyncio
async def test_pre_launch_refuses_before_registering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[Any] = []
    monkeypatch.setattr(
        "gp_provisioners_core.response_manager.ResponseManager.register_event",
        lambda self, *a, **k: registered.append(a),
    )
    probe = Probe(kernel_id="k1", kernel_spec=gp_k8s(tmp_path), parent=None)
    with pytest.raises(KernelSpecConfigError, match="gp-migrate-specs k8s_python"):
        await probe.pre_launch(env={"KERNEL_USERNAME": "alice"})
    assert registered == []


def test_unfilled_template_placeholders_are_refused_with_what_to_do(tmp_path: Path) -> None:
    spec = old_spec(
        tmp_path,
        "yarn_spark_python",
        ["run.sh", *GP_FLAGS],
        "yarn-provisioner",
        {},
    )
    spec.argv[0] = "${install_dir}/bin/run.sh"  # 0.5.0 left it unfilled
    message = refusal(spec, "yarn-provisioner")
    assert "template placeholders ${install_dir}" in message
    assert "Install it again" in message
    assert "gp-migrate-specs" not in message


def test_container_argv_may_name_the_spec_folder(tmp_path: Path) -> None:
    """The k8s suite's node agent runs pods as local processes from the spec folder."""
    argv = ["python3", "{resource_dir}/scripts/launch_ipykernel.py", *GP_FLAGS]
    assert find_problem(argv, str(tmp_path), "kubernetes-provisioner") is None
