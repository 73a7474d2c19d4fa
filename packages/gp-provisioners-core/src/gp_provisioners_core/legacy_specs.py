"""Recognize kernelspecs that cannot run as they are, before anything is submitted.

gateway_provisioners 0.5.0's installers wrote specs whose argv starts work from the *server*
(``launch_kubernetes.py``, ``launch_docker.py`` and ``launch_custom_resource.py`` created the pod
or container themselves; ``bin/run.sh`` wrapped spark-submit with its own options) or runs its v1
launcher.  Our container provisioners run argv *inside* the kernel image and our YARN provisioner
finds its application by a tag only our run.sh sets, so such a spec would fail late, after a
submission, with a launch timeout.  :func:`check_kernelspec` says what is wrong, naming the spec
and the command that rewrites it (:mod:`gp_provisioners_core.migrate`).  One job: inspection;
it reads the spec folder and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIGRATE_COMMAND = "jupyter gp-migrate-specs"

# gateway_provisioners' launchers that ran on the server and created the kernel's pod, container
# or custom resource themselves.
SERVER_SIDE_LAUNCHERS = {
    "launch_kubernetes.py": "creates the kernel pod from the server",
    "launch_docker.py": "creates the kernel container from the server",
    "launch_custom_resource.py": "creates the SparkApplication from the server",
}
CONTAINER_PROVISIONERS = {
    "kubernetes-provisioner",
    "spark-operator-provisioner",
    "docker-provisioner",
    "docker-swarm-provisioner",
}
# Files only gateway_provisioners' launchers came with.
LEGACY_LAUNCHER_MARKER = "scripts/server_listener.py"
LEGACY_RUN_SH_MARKER = "PROG_HOME="
TOREE_LAUNCHER_NAME = "run_toree.sh"
_TEMPLATE = re.compile(
    r"\$\{[a-z_]+\}"
)  # gateway_provisioners' ${install_dir} & co.  # where our Scala specs expect the Toree launcher


@dataclass(frozen=True)
class SpecProblem:
    """Why a spec cannot run here.  ``migratable`` is False when the rewrite cannot help (the
    spec is not from gateway_provisioners, or asks for what we do not run, e.g. Dask)."""

    reason: str
    migratable: bool = True
    legacy_launcher_only: bool = False  # runs unchanged when declared v1 and legacy is allowed
    fix: str = ""  # what to do instead, when the rewrite cannot help


def _local_path(arg: str, resource_dir: str) -> Path | None:
    """The server-side file an argv entry names: ``{resource_dir}/...`` or an absolute path."""
    if arg.startswith("{resource_dir}/"):
        return Path(resource_dir) / arg[len("{resource_dir}/") :] if resource_dir else None
    return Path(arg) if arg.startswith("/") else None


def _in_folder(path: Path, resource_dir: str) -> bool:
    return bool(resource_dir) and path.is_relative_to(Path(resource_dir))


def find_problem(
    argv: list[str], resource_dir: str, provisioner_name: str, env: dict[str, Any] | None = None
) -> SpecProblem | None:
    """The first reason the spec (its ``argv``, folder and provisioner) cannot run on our
    ``provisioner_name``, or None.  Called by :func:`check_kernelspec` and the migrate command."""
    container = provisioner_name in CONTAINER_PROVISIONERS
    unfilled = sorted({m for arg in argv for m in _TEMPLATE.findall(arg)})
    if unfilled:
        return SpecProblem(
            f"its argv still holds gateway_provisioners' template placeholders "
            f"{', '.join(unfilled)}: its installer failed while writing the spec (0.5.0's "
            "yarn-spec install --yarn-endpoint always does), so it never ran anywhere",
            migratable=False,
            fix="Install it again with this backend's jupyter <x>-spec install command",
        )
    for arg in argv[:3]:
        name = Path(arg).name
        if name in SERVER_SIDE_LAUNCHERS:
            where = (
                "inside the kernel image, where that server-side path does not exist"
                if container
                else "as the kernel's command"
            )
            return SpecProblem(
                f"its argv names gateway_provisioners' launcher {arg}, which "
                f"{SERVER_SIDE_LAUNCHERS[name]}; {provisioner_name} runs argv {where}"
            )
    for arg in argv[:2]:
        path = _local_path(arg, resource_dir)
        if path is None or path.name != "run.sh" or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if LEGACY_RUN_SH_MARKER in text:
            dask = "dask" in text.lower()
            return SpecProblem(
                f"its argv runs gateway_provisioners' {path} (spark-submit with the old launcher "
                "and options); our provisioners need the launcher protocol v2, our run.sh (which "
                "sets the YARN application tag) and, on containers, argv that runs in the image"
                + (
                    "; it is a Dask-on-YARN spec, which gp-yarn does not run: install a Spark "
                    "spec with jupyter yarn-spec install instead"
                    if dask
                    else ""
                ),
                migratable=not dask,
            )
    for arg in argv[:2]:
        path = _local_path(arg, resource_dir)
        if path is None:
            continue
        # (container argv may name the spec folder on purpose, e.g. when the node mounts it)
        if not container and (arg.startswith("{resource_dir}/") or _in_folder(path, resource_dir)):
            if not path.exists():
                why = (
                    "the Scala (Apache Toree) launcher: install the spec again with "
                    "--language Scala, which puts it there"
                    if path.name == TOREE_LAUNCHER_NAME
                    else "was the spec moved, or installed without its launcher?"
                )
                return SpecProblem(
                    f"its argv names {path}, which does not exist ({why})", migratable=False
                )
    folder = Path(resource_dir) if resource_dir else None
    if folder is not None and (folder / LEGACY_LAUNCHER_MARKER).is_file():
        if any(Path(arg).name in ("launch_ipykernel.py", "launch_IRkernel.R") for arg in argv[:2]):
            return SpecProblem(
                "its launcher is gateway_provisioners' (protocol v1), which this server accepts "
                "only from a kernelspec that declares it and with allow_legacy_launchers on",
                legacy_launcher_only=True,
            )
    return None


def check_kernelspec(
    kernel_spec: Any, provisioner_name: str, *, allow_legacy_launchers: bool, kernel_id: str
) -> None:
    """Refuse a kernelspec that cannot run on ``provisioner_name`` with an error naming the
    spec, the problem and the command that rewrites it.  Called first by
    ``RemoteProvisionerBase.pre_launch`` (so by every provisioner's), before anything is
    registered or submitted.  Raises ``KernelSpecConfigError``."""
    from .errors import KernelSpecConfigError

    if kernel_spec is None:
        return
    resource_dir = str(getattr(kernel_spec, "resource_dir", "") or "")
    problem = find_problem(
        list(kernel_spec.argv or []), resource_dir, provisioner_name, dict(kernel_spec.env or {})
    )
    section = (getattr(kernel_spec, "metadata", None) or {}).get("kernel_provisioner") or {}
    declares_v1 = isinstance(section, dict) and section.get("launcher_protocol_version") == 1
    if problem is None or (problem.legacy_launcher_only and allow_legacy_launchers and declares_v1):
        return
    name = Path(resource_dir).name if resource_dir else kernel_spec.display_name
    where = f" ({resource_dir})" if resource_dir else ""
    if problem.migratable:
        fix = f"Rewrite it (the old files are kept in a backup) with: {MIGRATE_COMMAND} {name}"
        if problem.legacy_launcher_only:
            fix += (
                ' (or, to keep its v1 launcher, add "launcher_protocol_version": 1 to its '
                "metadata.kernel_provisioner and set allow_legacy_launchers / "
                "GP_ALLOW_LEGACY_LAUNCHERS=true)"
            )
    else:
        fix = problem.fix or "The rewrite command cannot fix this"
    raise KernelSpecConfigError(
        f"Kernel {kernel_id}: kernelspec {name!r}{where} cannot run on {provisioner_name}: "
        f"{problem.reason}. {fix}.",
        kernel_id=kernel_id,
    )
