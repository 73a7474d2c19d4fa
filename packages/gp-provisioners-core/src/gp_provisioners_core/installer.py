"""The base of every ``jupyter <x>-spec install`` command.

A backend subclasses :class:`KernelSpecInstaller`, names its provisioner and its default kernel
and display names per language, adds its own flags in ``add_backend_arguments`` and its settings
in ``backend_config``.  The flags are declared once, as argparse arguments; ``installer_app``
turns them into the Jupyter (traitlets) application that parses the command line, so config
files, ``--Class.trait=value``, ``--debug`` and repeatable list flags work as they did in
gateway_provisioners.  The base writes kernel.json as data (argv is a list, config a dict:
nothing is templated as text), copies the launcher into the spec's ``scripts/`` folder, and
installs the spec with jupyter_client's KernelSpecManager.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from jupyter_client.kernelspec import KernelSpecManager

from .config import parse_port_range
from .launchers import launcher_dir

# --language is case-insensitive; the spec's "language" field is spelled as on the right.
LANGUAGES = {"python": "python", "r": "R", "scala": "scala"}
DEFAULT_KERNEL_CLASS = "ipykernel.ipkernel.IPythonKernel"
# The Scala (Apache Toree) launcher: bin/run_toree.sh and lib/ in the spec folder for host
# backends (docs/operators/scala.md); container backends name the copy in their image.
TOREE_LAUNCHER = "{resource_dir}/bin/run_toree.sh"
TOREE_LAUNCHER_JAR = "gp-toree-launcher.jar"
SPARK_SUFFIX = "_spark"
SPARK_DISPLAY_SUFFIX = " (with Spark)"


def normalize_language(text: str) -> str:
    """``Python``/``python`` -> ``python``, ``r`` -> ``R``, ``SCALA`` -> ``scala``; raises
    ``InstallerError`` naming the value otherwise.  Called by ``KernelSpecInstaller.run``."""
    try:
        return LANGUAGES[str(text).strip().lower()]
    except KeyError:
        raise InstallerError(f"--language {text!r}: choose Python, R or Scala") from None


class InstallerError(SystemExit):
    """A flag value that cannot be installed; the message says which and why."""


class KernelSpecInstaller:
    """Builds and installs one kernelspec from command-line flags."""

    command: ClassVar[str] = "jupyter x-spec"
    provisioner_name: ClassVar[str] = ""
    # language -> (kernel name, display name), gateway_provisioners' defaults where it had them
    default_names: ClassVar[dict[str, tuple[str, str]]] = {}
    # Spark kernels get "_spark" / " (with Spark)" added to the default names (ssh, k8s)
    spark_renames: ClassVar[bool] = False
    description: ClassVar[str] = "Install a kernelspec for a Gateway Provisioners provisioner."
    # flags whose values are lists: repeatable (appending) and comma-separated
    list_options: ClassVar[frozenset[str]] = frozenset({"authorized_users", "unauthorized_users"})
    # (flag, dest, value): flags that set another flag's value (gateway_provisioners spellings)
    extra_flags: ClassVar[tuple[tuple[str, str, Any], ...]] = ()

    @property
    def default_kernel_name(self) -> str:
        return self.default_names.get("python", ("", ""))[0]

    @property
    def default_display_name(self) -> str:
        return self.default_names.get("python", ("", ""))[1]

    def install_parser(self) -> argparse.ArgumentParser:
        """The ``install`` subcommand's arguments: the single declaration of every flag, read
        by ``installer_app`` to build the traitlets application."""
        parser = argparse.ArgumentParser(prog=f"{self.command} install", add_help=False)
        self.add_common_arguments(parser)
        self.add_backend_arguments(parser)
        return parser

    def add_common_arguments(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--kernel-name", default=None, help="the kernelspec's folder name")
        add("--display-name", default=None, help="the name users see")
        add("--language", default="python", help="Python (default), R or Scala")
        add("--authorized-users", default="", help="users allowed (repeat or comma-separate)")
        add("--unauthorized-users", default="", help="users refused (repeat or comma-separate)")
        add("--port-range", default="", help="LOWER..UPPER ports for the kernel")
        add("--launch-timeout", type=float, default=None, help="seconds to start")
        add("--ipykernel-subclass-name", default="", help="a Kernel subclass to run")
        add("--python", default=sys.executable, help="the Python that runs the launcher")
        add("--spark", action="store_true", help="start a Spark context in the kernel")
        add("--spark-home", default="/opt/spark", help="SPARK_HOME for Spark kernels")
        add("--spark-master", default="", help="the Spark master URL")
        add(
            "--spark-init-mode",
            default=None,
            choices=("lazy", "eager", "none"),
            help="when the kernel starts its Spark context (default: lazy; none for R, whose "
            "Spark context the notebook starts with SparkR)",
        )
        add("--extra-spark-opts", default="", help="more spark-submit options")
        add("--user", action="store_true", help="install for this user")
        add("--prefix", default=None, help="install under this prefix")
        add("--sys-prefix", action="store_true", help=f"install in {sys.prefix}")
        add("--replace", action="store_true", help="replace an existing spec of that name")

    def add_backend_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the backend's own flags.  Called once by ``install_parser``."""

    def subcommand_apps(self) -> dict[str, Any]:
        """More subcommands than ``install`` (name -> (JupyterApp class, help)); none here."""
        return {}

    def backend_config(self, args: argparse.Namespace) -> dict[str, Any]:
        """The backend's entries of ``metadata.kernel_provisioner.config``."""
        return {}

    def backend_env(self, args: argparse.Namespace) -> dict[str, str]:
        """The backend's entries of the spec's ``env``."""
        return {}

    def add_resources(self, folder: Path, args: argparse.Namespace) -> None:
        """Add the backend's own files (e.g. ``bin/run.sh``) to the staged spec ``folder``.
        Called by ``install`` after the launcher was copied; the default adds nothing."""

    def names_for(self, args: argparse.Namespace) -> tuple[str, str]:
        """The default kernel and display names for ``args.language`` (and ``--spark``).
        Called by ``run`` for the names the user did not give."""
        names = self.default_names or {
            "python": (self.default_kernel_name, self.default_display_name)
        }
        kernel, display = names.get(args.language) or names["python"]
        if self.spark_renames and args.spark:
            kernel, display = kernel + SPARK_SUFFIX, display + SPARK_DISPLAY_SUFFIX
        return kernel, display

    def launcher_flags(self, args: argparse.Namespace, mode: str) -> list[str]:
        """The launcher's flags with the placeholders the provisioner fills at launch."""
        flags = [
            "--kernel-id",
            "{kernel_id}",
            "--port-range",
            "{port_range}",
            "--response-address",
            "{response_address}",
            "--public-key",
            "{public_key}",
        ]
        if args.language == "python":
            flags += ["--transport-encryption", "{transport_encryption}"]
        return [*flags, "--spark-context-initialization-mode", mode]

    def launcher_argv(self, args: argparse.Namespace) -> list[str]:
        """The spec's argv: the launcher, with placeholders the provisioner fills at launch."""
        default_mode = "none" if args.language == "R" else "lazy"
        mode = (args.spark_init_mode or default_mode) if args.spark else "none"
        if args.language == "scala":
            return [self.scala_launcher(args), *self.launcher_flags(args, scala_mode(args))]
        argv = [
            args.python,
            "{resource_dir}/scripts/launch_ipykernel.py",
            *self.launcher_flags(args, mode),
        ]
        if args.language == "R":
            if mode != "none":
                raise InstallerError(
                    f"--spark-init-mode {mode} with --language R: the launcher starts a Spark "
                    "context for Python kernels only; use --spark-init-mode none (and SparkR in "
                    "the notebook)"
                )
            argv += ["--kernel-language", "R"]
        if args.ipykernel_subclass_name and args.language != "python":
            raise InstallerError("--ipykernel-subclass-name applies to --language python only")
        if args.language == "python":
            argv += ["--kernel-class-name", args.ipykernel_subclass_name or DEFAULT_KERNEL_CLASS]
        return argv

    def scala_launcher(self, args: argparse.Namespace) -> str:
        """Where a Scala spec's launcher (Apache Toree behind the launcher protocol) is: in the
        spec folder for host backends; container backends override it with a path in the
        image."""
        return TOREE_LAUNCHER

    def scala_files_in_spec(self, args: argparse.Namespace) -> bool:
        """Whether the spec folder carries the Toree launcher (``bin/run_toree.sh``, ``lib/``):
        true when the launcher path is inside the spec; container backends keep it in the
        image.  Called by ``write_files``."""
        return self.scala_launcher(args).startswith("{resource_dir}/")

    @staticmethod
    def kernel_metadata(language: str) -> dict[str, Any]:
        """``supported_encryption`` and ``debugger`` as they are: ipykernel implements the
        debug protocol and runs CurveZMQ channels; IRkernel and Toree do neither."""
        if language == "python":
            return {"supported_encryption": ["curve"], "debugger": True}
        return {"debugger": False}

    def build_kernel_json(self, args: argparse.Namespace) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if args.authorized_users:
            config["authorized_users"] = _user_list(args.authorized_users)
        if args.unauthorized_users:
            config["unauthorized_users"] = _user_list(args.unauthorized_users)
        if args.port_range:
            try:
                parse_port_range(args.port_range)
            except ValueError as err:
                raise InstallerError(f"--port-range: {err}") from None
            config["port_range"] = args.port_range
        if args.launch_timeout is not None:
            if args.launch_timeout <= 0:
                raise InstallerError(f"--launch-timeout {args.launch_timeout:g} must be > 0")
            config["launch_timeout"] = args.launch_timeout
        config.update(self.backend_config(args))
        # settings an old spec chose that no flag expresses (set by the migrate command)
        config.update(getattr(args, "kept_config", None) or {})
        env = dict(self.backend_env(args))
        if args.spark:
            env.update(SPARK_HOME=args.spark_home, SPARK_OPTS=args.extra_spark_opts)
            if args.spark_master:
                env["SPARK_MASTER"] = args.spark_master
        if args.language == "scala":
            # Toree is a Spark driver with or without --spark: it always needs SPARK_HOME.
            env.setdefault("SPARK_HOME", args.spark_home)
            env.setdefault("__TOREE_OPTS__", "--alternate-sigint USR2")
            env.setdefault("__TOREE_SPARK_OPTS__", args.extra_spark_opts)
        return {
            "argv": self.launcher_argv(args),
            "display_name": args.display_name,
            "language": args.language,
            "interrupt_mode": "signal",
            "env": env,
            "metadata": {
                **self.kernel_metadata(args.language),
                "kernel_provisioner": {"provisioner_name": self.provisioner_name, "config": config},
            },
        }

    def install(self, args: argparse.Namespace) -> str:
        """Write the spec to a staging folder and install it; return the installed path."""
        spec = self.build_kernel_json(args)
        with tempfile.TemporaryDirectory() as staging:
            folder = Path(staging) / args.kernel_name
            self.write_files(folder, args, spec)
            prefix = sys.prefix if args.sys_prefix else args.prefix
            manager = KernelSpecManager()
            destination = Path(
                manager._get_destination_dir(args.kernel_name, user=args.user, prefix=prefix)
            )
            if destination.exists() and not args.replace:
                raise InstallerError(
                    f"Kernelspec {args.kernel_name!r} already exists in {destination}; "
                    "use --replace to overwrite it"
                )
            try:
                return manager.install_kernel_spec(
                    str(folder), args.kernel_name, user=args.user, prefix=prefix
                )
            except OSError as err:
                raise InstallerError(
                    f"Could not install kernelspec {args.kernel_name!r}: {err}. Use --replace to "
                    "overwrite an existing one, or --user / --prefix for another location"
                ) from err

    def write_files(self, folder: Path, args: argparse.Namespace, spec: dict[str, Any]) -> None:
        """Write ``spec`` as ``folder/kernel.json`` with the launchers in ``scripts/`` and the
        backend's resources.  Called by ``install`` (a staging folder) and by the migrate
        command (the spec's own folder, after its backup)."""
        (folder / "scripts").mkdir(parents=True, exist_ok=True)
        (folder / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        if args.language == "scala":
            if self.scala_files_in_spec(args):
                install_toree_launcher(folder)
            self.add_resources(folder, args)
            return
        languages = {"python", args.language}  # R uses the Python listener
        for language in sorted(languages):
            try:
                source = launcher_dir(language)
            except FileNotFoundError as err:
                raise InstallerError(f"--language {args.language}: {err}") from None
            for item in source.iterdir():
                if item.is_file() and not item.name.startswith("."):
                    shutil.copy2(item, folder / "scripts" / item.name)
        self.add_resources(folder, args)

    def migration_flags(self, spec: dict[str, Any]) -> list[str]:
        """Flags that reproduce what an old (gateway_provisioners) ``spec`` chose beyond
        language, names and Spark, e.g. ``--swarm``.  Called by the migrate command."""
        return []

    def prepare(self, args: argparse.Namespace) -> None:
        """Check the flags that concern every backend and fill the default names.  Called by
        ``run`` and by the migrate command."""
        if sum((bool(args.user), args.prefix is not None, bool(args.sys_prefix))) > 1:
            raise InstallerError("choose one of --user, --prefix and --sys-prefix")
        args.language = normalize_language(args.language)
        default_kernel, default_display = self.names_for(args)
        if args.kernel_name is None:
            args.kernel_name = default_kernel
        else:
            args.kernel_name = args.kernel_name.replace(" ", "_")  # as gateway_provisioners did
        if not args.kernel_name or any(c in args.kernel_name for c in "/\\"):
            raise InstallerError(f"--kernel-name {args.kernel_name!r} must be a plain folder name")
        if not args.display_name:
            args.display_name = default_display

    def run(self, args: argparse.Namespace) -> str:
        """Prepare, install, and say where.  Called by the ``install`` application's
        ``start``."""
        self.prepare(args)
        path = self.install(args)
        if (
            args.language == "scala"
            and self.scala_files_in_spec(args)
            and not list((Path(path) / "lib").glob("toree-assembly-*.jar"))
        ):
            print(
                f"Note: kernelspec {args.kernel_name} has no Apache Toree assembly: this Python "
                "has no 'apache-toree' package. pip install apache-toree and install again, or "
                "set GP_TOREE_JAR in the kernel's environment (docs/operators/scala.md).",
                file=sys.stderr,
            )
        print(f"Installed kernelspec {args.kernel_name} in {path}")
        return path

    def main(self, argv: list[str] | None = None) -> int:
        """``jupyter <x>-spec`` as a function: ``main(["install", "--user"])``.  Errors raise
        ``SystemExit`` (``InstallerError``) with a message naming the flag."""
        from .coexistence import shadowing_message
        from .installer_app import run_app

        clash = shadowing_message()
        if clash:
            print(f"Warning: {clash}", file=sys.stderr)
        return run_app(self, argv)


def scala_mode(args: argparse.Namespace) -> str:
    """A Scala kernel's Spark context mode: Toree always has a Spark context, so ``lazy`` unless
    ``--spark-init-mode eager``; ``none`` is refused."""
    mode = str(args.spark_init_mode or "lazy")
    if mode == "none":
        raise InstallerError(
            "--spark-init-mode none with --language Scala: Apache Toree kernels always have a "
            "Spark context; use lazy (the default) or eager"
        )
    return mode


def toree_assembly() -> Path | None:
    """The Toree assembly jar of the ``apache-toree`` package in this Python, if installed."""
    try:
        import toree  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    jars = sorted((Path(toree.__file__).parent / "lib").glob("toree-assembly-*.jar"))
    return jars[-1] if jars else None


@functools.cache
def built_toree_launcher() -> Path:
    """The launcher jar compiled from ``launchers/scala/src`` (once per process, into a
    temporary folder removed at exit).  Raises ``InstallerError`` without a JDK."""
    if not shutil.which("javac") or not shutil.which("jar"):
        raise InstallerError(
            "--language Scala: building the Toree launcher needs a JDK (javac and jar) on this "
            "host: apt-get install openjdk-17-jdk-headless (or any JDK 11+), then install again"
        )
    folder = Path(tempfile.mkdtemp(prefix="gp-toree-launcher-"))
    atexit.register(shutil.rmtree, folder, True)
    jar = folder / TOREE_LAUNCHER_JAR
    try:
        subprocess.run(
            ["sh", str(launcher_dir("scala") / "build_launcher.sh"), str(jar)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.CalledProcessError as err:
        raise InstallerError(
            f"--language Scala: building the Toree launcher failed: {err.stderr[-2000:]}"
        ) from None
    return jar


def install_toree_launcher(folder: Path) -> None:
    """Put the Toree launcher into a staged spec: ``bin/run_toree.sh``, ``lib/`` with the
    launcher jar built from its Java source (needs a JDK's javac) and the Toree assembly when
    the ``apache-toree`` package is installed.  Called by ``write_files`` for Scala specs."""
    source = launcher_dir("scala")
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    (folder / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "run_toree.sh", folder / "bin" / "run_toree.sh")
    (folder / "bin" / "run_toree.sh").chmod(0o755)
    shutil.copy2(built_toree_launcher(), folder / "lib" / TOREE_LAUNCHER_JAR)
    assembly = toree_assembly()
    if assembly is not None:
        shutil.copy2(assembly, folder / "lib" / assembly.name)


def _user_list(text: str) -> list[str]:
    return sorted({name.strip() for name in text.split(",") if name.strip()})
