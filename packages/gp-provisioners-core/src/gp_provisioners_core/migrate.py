"""``jupyter gp-migrate-specs``: rewrite kernelspecs gateway_provisioners 0.5.0 installed so that
they run on our provisioners.

For each spec that :func:`~gp_provisioners_core.legacy_specs.find_problem` flags, the command
finds our installer for the spec's provisioner (entry point group
``gp_provisioners.spec_installers``, one per backend package), derives that installer's flags
from the old spec (language, names, Spark, kernel class, ``--swarm``...), keeps the old
provisioner config (hosts, users, ports, timeouts, endpoints, images other than
gateway_provisioners' ``elyra/*`` defaults, which lack our launcher), moves the old files into
``.gp-migrate-backup-<time>/`` inside the spec folder and writes the new spec in place.

    jupyter gp-migrate-specs                 # every installed spec that needs it
    jupyter gp-migrate-specs k8s_python /path/to/spec --dry-run
    jupyter gp-migrate-specs k8s_r_spark --image-name registry.example/spark-r:1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .installer import (
    DEFAULT_KERNEL_CLASS,
    InstallerError,
    KernelSpecInstaller,
    normalize_language,
)
from .legacy_specs import MIGRATE_COMMAND, find_problem

INSTALLER_GROUP = "gp_provisioners.spec_installers"
BACKUP_PREFIX = ".gp-migrate-backup-"
OLD_IMAGE_PREFIX = "elyra/"  # gateway_provisioners' default kernel images (v1 launchers)
# ... of which these have no counterpart of ours: the user names their own image
NO_COUNTERPART = {
    "elyra/kernel-tf-py:": "TensorFlow image (no TensorFlow image is built)",
    "elyra/kernel-spark-r:": (
        "Spark-R image (no Spark-R image is built: SparkR ships only in Spark's own distribution)"
    ),
}
KEPT_FILES = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg", "kernel.js")
# gateway_provisioners' Scala specs did not ship Toree: users put its assembly into the spec's
# lib/ (its run.sh refused to start without one there), and ours looks for it there too.
TOREE_ASSEMBLY_GLOB = "toree-assembly-*.jar"
# gateway_provisioners' Jinja templates of the objects its server-side launchers created (users
# edited them for resources, volumes, sparkConf...): ours are never read, so each one found is
# said, with the manifest and config key of ours that replace it.
OLD_TEMPLATES = {
    "kernel-pod.yaml.j2": ("Pod", "pod_template_file", "--pod-template"),
    "sparkoperator.k8s.io-v1beta2.yaml.j2": (
        "SparkApplication",
        "custom_resource_template_file",
        "--spark-application-template",
    ),
}


class MigrateError(SystemExit):
    """A spec that cannot be rewritten; the message names it and why."""


def installer_for(provisioner_name: str) -> KernelSpecInstaller:
    """Our installer for ``provisioner_name``; raises ``MigrateError`` naming the package to
    install when no installed gp-* package provides it."""
    for point in entry_points(group=INSTALLER_GROUP):
        if point.name == provisioner_name:
            installer: KernelSpecInstaller = point.load()()
            return installer
    raise MigrateError(
        f"no installed gp-* package installs kernelspecs for {provisioner_name!r}; install the "
        "backend that provides it (gp-distributed, gp-docker, gp-k8s, gp-crd, gp-yarn, gp-slurm)"
    )


def _value_after(argv: list[str], flag: str) -> str | None:
    if flag in argv and argv.index(flag) + 1 < len(argv):
        return argv[argv.index(flag) + 1]
    return None


def no_counterpart(image: str) -> str:
    """What gateway_provisioners' ``image`` was when this project builds no counterpart of
    it (the user must name their own with ``--image-name``), else ``""``."""
    for prefix, what in NO_COUNTERPART.items():
        if image.startswith(prefix):
            return what
    return ""


def migration_args(
    installer: KernelSpecInstaller,
    spec: dict[str, Any],
    folder: Path,
    notes: list[str],
    image_name: str = "",
) -> argparse.Namespace:
    """The installer's arguments that reproduce the old ``spec`` (in ``folder``); what cannot
    be reproduced is said in ``notes``.  Called by :func:`migrate_spec`."""
    argv = [str(a) for a in spec.get("argv") or []]
    env = dict(spec.get("env") or {})
    provisioner = spec.get("metadata", {}).get("kernel_provisioner", {})
    language = normalize_language(spec.get("language") or "python")
    mode = _value_after(argv, "--spark-context-initialization-mode")
    spark = "SPARK_HOME" in env or mode in ("lazy", "eager")
    flags = ["--kernel-name", folder.name, "--language", language]
    flags += ["--display-name", str(spec.get("display_name") or folder.name)]
    if spark:
        flags.append("--spark")
        if env.get("SPARK_HOME"):
            flags += ["--spark-home", str(env["SPARK_HOME"])]
    if language == "R" and mode in ("lazy", "eager"):
        notes.append(f"Spark context initialization {mode} is for Python kernels only: none")
        mode = "none"
    if mode in ("lazy", "eager", "none"):
        flags += ["--spark-init-mode", mode]
    kernel_class = _value_after(argv, "--kernel-class-name")
    if language == "python" and kernel_class and kernel_class != DEFAULT_KERNEL_CLASS:
        flags += ["--ipykernel-subclass-name", kernel_class]
    name = provisioner.get("provisioner_name")
    if name == "distributed-provisioner" and len(argv) > 1:
        if Path(argv[1]).name == "launch_ipykernel.py":
            flags += ["--python", argv[0]]
    flags += installer.migration_flags(spec)
    parser = installer.install_parser()
    runs_an_image = not parser.parse_known_args(["--image-name", "i"])[1]  # a flag it knows
    if image_name and not runs_an_image:
        notes.append(f"--image-name not used: {name} runs no image")
        image_name = ""
    config = provisioner.get("config") or {}
    own_image = str(config.get("image_name") or "")  # the user's own image stays
    if own_image.startswith(OLD_IMAGE_PREFIX) or not runs_an_image:
        own_image = ""
    if image_name or own_image:
        flags += ["--image-name", image_name or own_image]
    args = parser.parse_args(flags)
    installer.prepare(args)
    # (container specs run the image's Spark, which the image's SPARK_HOME names)
    if language == "scala" and "SPARK_HOME" not in env and installer.scala_files_in_spec(args):
        notes.append(
            "the old spec set no SPARK_HOME (gateway_provisioners' run.sh took the host's); "
            f"Toree always needs one and the rewritten spec sets {args.spark_home}: change "
            "SPARK_HOME in its kernel.json env if Spark is elsewhere"
        )
    kept: dict[str, Any] = {}
    for key, value in config.items():
        if key not in ("image_name", "executor_image_name"):
            kept[key] = value
        elif image_name:
            notes.append(f"{key} {value} replaced by {image_name} (--image-name)")
        elif lacking := no_counterpart(str(value)):
            raise MigrateError(
                f"{folder}: {key} {value} is gateway_provisioners' {lacking}. Build one FROM "
                "such an image with 'jupyter image-bootstrap install' in its Dockerfile "
                f"(docs/operators/images.md), then run: {MIGRATE_COMMAND} {folder.name} "
                "--image-name <your image>"
            )
        elif str(value).startswith(OLD_IMAGE_PREFIX):
            notes.append(f"{key} {value} (gateway_provisioners' image) replaced by ours")
        else:
            kept[key] = value
    args.kept_config = kept
    notes += old_template_notes(folder)
    return args


def old_template_notes(folder: Path) -> list[str]:
    """What to do with each of gateway_provisioners' Jinja templates in ``folder`` (it is not
    read after the rewrite).  Called by :func:`migration_args`."""
    notes = []
    for name, (kind, key, flag) in OLD_TEMPLATES.items():
        if (folder / "scripts" / name).is_file():
            notes.append(
                f"gateway_provisioners' template scripts/{name} is not read by ours (it stays in "
                f"the backup): if you changed it, write those settings as a {kind} manifest in "
                f"the spec folder and name it in the spec's config as {key} (what {flag} FILE "
                "does at install)"
            )
    return notes


def migrate_spec(folder: Path, *, dry_run: bool = False, image_name: str = "") -> str:
    """Rewrite the kernelspec in ``folder`` in place (old files moved to a backup folder inside
    it) when it cannot run as it is; return what was done, for the user.  ``image_name``
    replaces the spec's kernel (and executor) image.  Raises ``MigrateError`` (or the
    installer's ``InstallerError``) before anything is moved."""
    path = folder / "kernel.json"
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MigrateError(f"{path}: cannot read the kernelspec: {err}") from None
    provisioner = spec.get("metadata", {}).get("kernel_provisioner", {}).get("provisioner_name")
    if not provisioner:
        return f"{folder.name}: not a provisioner kernelspec, left alone"
    problem = find_problem(
        [str(a) for a in spec.get("argv") or []], str(folder), provisioner, spec.get("env")
    )
    if problem is None:
        return f"{folder.name}: runs as it is, left alone"
    if not problem.migratable:
        raise MigrateError(f"{folder.name} ({folder}): {problem.reason}; it cannot be rewritten")
    installer = installer_for(provisioner)
    notes: list[str] = []
    args = migration_args(installer, spec, folder, notes, image_name)
    new_spec = installer.build_kernel_json(args)
    if dry_run:
        return f"{folder.name}: would rewrite ({problem.reason})\n" + json.dumps(new_spec, indent=2)
    backup = folder / f"{BACKUP_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    backup.mkdir()
    for item in list(folder.iterdir()):
        if not item.name.startswith(BACKUP_PREFIX):
            shutil.move(str(item), backup / item.name)
    for name in KEPT_FILES:
        if (backup / name).is_file():
            shutil.copy2(backup / name, folder / name)
    installer.write_files(folder, args, new_spec)
    notes += keep_toree_assembly(folder, backup)
    said = "; ".join(notes)
    return (
        f"{folder.name}: rewritten in {folder} ({problem.reason}); the old files are in "
        f"{backup}" + (f"; {said}" if said else "")
    )


def keep_toree_assembly(folder: Path, backup: Path) -> list[str]:
    """Copy the Toree assembly the user had put into the old spec's ``lib/`` (now in
    ``backup``) into the rewritten spec's ``lib/`` when the installer put none there (its
    Python has no ``apache-toree``); what was done, for the notes.  Called by
    :func:`migrate_spec` after the new files are written."""
    lib = folder / "lib"
    if not lib.is_dir() or list(lib.glob(TOREE_ASSEMBLY_GLOB)):
        return []
    old = sorted((backup / "lib").glob(TOREE_ASSEMBLY_GLOB))
    if not old:
        return []
    shutil.copy2(old[-1], lib / old[-1].name)
    return [f"the Toree assembly lib/{old[-1].name} you had put there is kept"]


def _folders(names: list[str]) -> list[Path]:
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().find_kernel_specs()
    if not names:
        return [Path(where) for _, where in sorted(installed.items())]
    folders = []
    for name in names:
        if name in installed:
            folders.append(Path(installed[name]))
        elif (Path(name) / "kernel.json").is_file():
            folders.append(Path(name))
        else:
            raise MigrateError(
                f"{name!r} is neither an installed kernelspec nor a folder with a kernel.json "
                "(jupyter kernelspec list shows the installed ones)"
            )
    return folders


def main(argv: list[str] | None = None) -> int:
    """``jupyter gp-migrate-specs [NAME_OR_FOLDER ...] [--dry-run]``; returns 0, or 1 when a
    spec could not be rewritten (each is reported)."""
    parser = argparse.ArgumentParser(
        prog=MIGRATE_COMMAND,
        description="Rewrite kernelspecs written by gateway_provisioners 0.5.0 so that gp-* "
        "provisioners run them; the old files are kept in a backup folder inside each spec.",
    )
    parser.add_argument("specs", nargs="*", help="kernelspec names or folders (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print the new kernel.json only")
    parser.add_argument(
        "--image-name",
        default="",
        help="the kernel image of the rewritten container specs (needed for gateway_provisioners' "
        "images that have no counterpart here: TensorFlow, Spark-R)",
    )
    args = parser.parse_args(argv)
    failed = 0
    for folder in _folders(args.specs):
        try:
            print(migrate_spec(folder, dry_run=args.dry_run, image_name=args.image_name))
        except (MigrateError, InstallerError) as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
