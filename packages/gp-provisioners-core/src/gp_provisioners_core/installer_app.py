"""The traitlets side of every ``jupyter <x>-spec`` command.

:class:`~gp_provisioners_core.installer.KernelSpecInstaller` declares its flags once, as argparse
arguments.  :func:`spec_app` turns those declarations into Jupyter applications with
gateway_provisioners 0.5.0's command-line semantics: ``jupyter ssh-spec install`` is a
``JupyterApp`` subcommand, so config files (``--config``, ``jupyter_ssh_spec_config.py``),
``--Class.trait=value``, ``--debug`` and ``--log-level`` work, list flags append when repeated
(``--remote-hosts=h1 --remote-hosts=h2``) and also take comma lists, and each flag is a trait of a
class named like gateway_provisioners' (``c.SshSpecInstaller.remote_hosts``,
``c.BaseSpecApp.kernel_name``).  After parsing, the traits become the ``argparse.Namespace`` the
installer's hooks read, each value converted and checked by its argument's ``type`` and
``choices``, so a bad value is refused with the flag's name.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from jupyter_core.application import JupyterApp, base_aliases, base_flags
from traitlets import Bool, List, Unicode

if TYPE_CHECKING:
    from .installer import KernelSpecInstaller

# gateway_provisioners' class names: config files written for it keep working.
BASE_CLASS = "BaseSpecApp"
SPARK_CLASS = "BaseSpecSparkApp"


class LastUnicode(Unicode):  # type: ignore[type-arg]
    """A text option given more than once on the command line takes the last value, as our
    argparse-based commands always did (callers repeat e.g. ``--spark-home`` to override)."""

    def from_string_list(self, s_list: list[str]) -> Any:
        return self.from_string(s_list[-1])


class BaseSpecApp(JupyterApp):
    """The common part of every ``install`` subcommand; :func:`spec_app` adds the traits."""

    installer: Any = None  # the KernelSpecInstaller whose flags these are

    def migrate_config(self) -> None:
        """Installing a kernelspec never migrates IPython configuration."""

    def start(self) -> None:
        """Called by ``JupyterApp.launch_instance`` and :func:`run_app`: install the spec."""
        from .installer import InstallerError

        # traitlets keeps what it could not parse (positional words, --unknown=value as a
        # lower-case config key) and only warns; a misspelled flag must not be ignored.
        unknown = [*self.extra_args, *(f"--{key}" for key in self.config if key[:1].islower())]
        if unknown:
            raise InstallerError(
                f"{self.name}: unrecognized arguments: {' '.join(unknown)} "
                "(see --help for the flags)"
            )
        self.installer.run(namespace_of(self, self.installer))


class BaseSpecSparkApp(BaseSpecApp):
    """Present so that ``c.BaseSpecSparkApp.spark_home = ...`` (gateway_provisioners) applies."""


class ProvisionerApp(JupyterApp):
    """``jupyter <x>-spec``: dispatches to a subcommand and says which when none is given."""

    def migrate_config(self) -> None:
        """Installing a kernelspec never migrates IPython configuration."""

    def start(self) -> None:
        """Called by :func:`run_app`: run the subcommand, or list them and fail."""
        if self.subapp is None:
            raise SystemExit(
                f"{self.name}: give a subcommand, one of: {', '.join(self.subcommands)} "
                f"(e.g. {self.name} install --help)"
            )
        self.subapp.start()


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
    ]


def _flag_name(action: argparse.Action) -> str:
    return next(o for o in action.option_strings if o.startswith("--"))[2:]


def install_app_class(installer: KernelSpecInstaller) -> type[BaseSpecApp]:
    """The ``install`` subcommand's application class for ``installer``, named like the
    installer's class (``SshSpecInstaller``).  Called by :func:`spec_app`."""
    parser = installer.install_parser()
    cls_name = type(installer).__name__
    traits: dict[str, Any] = {}
    aliases: dict[Any, Any] = {}
    flags: dict[Any, Any] = {"debug": base_flags["debug"]}
    for action in _actions(parser):
        dest, help_text = action.dest, action.help or ""
        default = parser.get_default(dest)
        if default not in (None, "", False) and "default" not in help_text:
            help_text += f" (default: {default})"  # the trait's own default is None: unset
        # --spark-init-mode and --spark_init_mode (gateway_provisioners' docs use both)
        dashed = _flag_name(action)
        name: Any = (dashed, dashed.replace("-", "_")) if "-" in dashed else dashed
        if isinstance(action, argparse._StoreTrueAction):
            traits[dest] = Bool(False, help=help_text).tag(config=True)
            flags[name] = ({cls_name: {dest: True}}, help_text)
            continue
        if dest in installer.list_options:
            traits[dest] = List(Unicode(), default_value=None, allow_none=True, help=help_text)
            traits[dest].tag(config=True)
        else:
            traits[dest] = LastUnicode(None, allow_none=True, help=help_text).tag(config=True)
        aliases[name] = f"{cls_name}.{dest}"
        if action.nargs == "?" and action.const is not None:  # a flag alone means const
            flags[name] = ({cls_name: {dest: str(action.const)}}, help_text)
    aliases.update(base_aliases)
    for flag in installer.extra_flags:  # gateway_provisioners' spellings of our flags
        flag_name, dest, value = flag
        flags[flag_name] = ({cls_name: {dest: value}}, f"same as --{dest.replace('_', '-')}")
    namespace: dict[str, Any] = {
        **traits,
        "name": f"{installer.command.replace(' ', '-')}-install",
        "description": installer.description,
        "aliases": aliases,
        "flags": flags,
        "installer": installer,
        "config_file_name": f"{installer.command.replace(' ', '_').replace('-', '_')}_config",
    }
    return type(cls_name, (BaseSpecSparkApp,), namespace)


def namespace_of(app: BaseSpecApp, installer: KernelSpecInstaller) -> argparse.Namespace:
    """The installer's argparse namespace from ``app``'s traits: an unset trait takes the
    argument's default, a set one goes through the argument's ``type`` and ``choices``.
    Raises ``InstallerError`` naming the flag and the bad value."""
    from .installer import InstallerError

    parser = installer.install_parser()
    args = argparse.Namespace(subcommand="install")
    for action in _actions(parser):
        dest = action.dest
        raw = getattr(app, dest)
        if isinstance(action, argparse._StoreTrueAction):
            setattr(args, dest, bool(raw))
            continue
        if raw is None:
            setattr(args, dest, parser.get_default(dest))
            continue
        if isinstance(raw, list):
            raw = ",".join(str(item) for item in raw)
        value: Any = raw
        if action.type is not None:
            convert: Any = action.type
            try:
                value = convert(raw)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
                raise InstallerError(f"--{_flag_name(action)} {raw!r}: {err}") from None
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(repr(c) for c in action.choices if c != "")
            raise InstallerError(f"--{_flag_name(action)} {raw!r}: choose one of {choices}")
        setattr(args, dest, value)
    return args


def spec_app(installer: KernelSpecInstaller) -> type[ProvisionerApp]:
    """The ``jupyter <x>-spec`` application of ``installer``, with its ``install`` subcommand
    and any others the installer names in ``subcommand_apps``.  Called by :func:`run_app` and
    by the console scripts (``launch_instance``)."""
    install = install_app_class(installer)
    subcommands: dict[str, Any] = {"install": (install, installer.description)}
    subcommands.update(installer.subcommand_apps())
    namespace = {
        "name": installer.command.replace(" ", "-"),
        "description": installer.description,
        "subcommands": subcommands,
        "aliases": {},
        "flags": {},
    }
    cls_name = type(installer).__name__.replace("SpecInstaller", "ProvisionerApp")
    return type(cls_name, (ProvisionerApp,), namespace)


def run_app(installer: KernelSpecInstaller, argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) as ``jupyter <x>-spec`` and run it; return 0.
    Called by each package's ``cli.main``.  Errors raise ``SystemExit`` with their message."""
    app_class = spec_app(installer)
    app = app_class()
    try:
        app.initialize(list(sys.argv[1:] if argv is None else argv))
        app.start()
    finally:
        # initialize_subcommand made the subcommand a singleton; the next call starts afresh
        if app.subapp is not None:
            type(app.subapp).clear_instance()
        app_class.clear_instance()
    return 0


class SubcommandApp(JupyterApp):
    """A non-install subcommand (e.g. ``k8s-spec schema``): its ``run`` receives the trait
    values as a dict."""

    kernel_name = Unicode("", help="the kernelspec's folder name").tag(config=True)
    aliases = {"kernel-name": "SubcommandApp.kernel_name", **base_aliases}

    def migrate_config(self) -> None:
        """Never migrates IPython configuration."""
