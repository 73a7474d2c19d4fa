"""Settings shared by every remote provisioner, and the per-kernel overrides of kernel.json.

Every setting is a traitlet (configurable in ``jupyter_server_config.py`` as
``RemoteProvisionerConfigMixin.launch_timeout = 60`` or on a concrete class), with a ``GP_*``
environment variable as its default.  A kernelspec may override settings for its kernels in
``metadata.kernel_provisioner.config``; :func:`apply_kernelspec_overrides` checks those.
"""

from __future__ import annotations

import os
import re
from typing import Any, ClassVar

from traitlets import (
    All,
    Bool,
    Float,
    HasTraits,
    Int,
    Set,
    TraitError,
    Unicode,
    default,
    observe,
    validate,
)
from traitlets.config import Configurable

from .deprecated_settings import ALIAS_METADATA, env_set_renamed, warn_once
from .errors import KernelSpecConfigError


def env_set(name: str, fallback: str) -> set[str]:
    """A comma-separated set from the environment (empty items dropped)."""
    return {item.strip() for item in os.getenv(name, fallback).split(",") if item.strip()}


def env_bool(name: str, fallback: bool) -> bool:
    """A boolean from the environment: true/1/yes/on and false/0/no/off, case-insensitive.

    Raises ``ValueError`` naming the variable for anything else, instead of guessing.
    """
    raw = os.getenv(name)
    if raw is None or raw.strip() == "":
        return fallback
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; use true or false")


def env_int(name: str, fallback: int) -> int:
    """An integer from the environment, ``fallback`` when unset or empty.

    Raises ``ValueError`` naming the variable and the accepted form for anything else, so a
    typo stops the server at start-up with a message that says what to fix.
    """
    raw = os.getenv(name)
    if raw is None or raw.strip() == "":
        return fallback
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{name}={raw!r} is not an integer; use a whole number such as {fallback}")
    return int(text)


def env_float(name: str, fallback: float) -> float:
    """A finite number from the environment, ``fallback`` when unset or empty.

    Raises ``ValueError`` naming the variable and the accepted form for anything else
    (``abc``, ``nan``, ``inf``).
    """
    raw = os.getenv(name)
    if raw is None or raw.strip() == "":
        return fallback
    text = raw.strip()
    if not _DECIMAL.fullmatch(text):
        raise ValueError(
            f"{name}={raw!r} is not a number; use a decimal number of seconds such as {fallback:g}"
        )
    return float(text)


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a plain ASCII decimal number (no ``nan``, ``inf``, exponent or
    non-ASCII digits, all of which ``float()`` accepts)."""
    return _DECIMAL.fullmatch(text.strip()) is not None


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?([0-9]{1,15}(\.[0-9]{0,9})?|\.[0-9]{1,9})")


def validate_settings(target: HasTraits, *names: str) -> None:
    """Run the validators of ``names`` on their current values, defaults included.

    traitlets does not run ``@validate`` on a dynamic default (one read from a ``GP_*``
    variable), so without this a bad variable would only fail at first use.  Called from
    ``__init__`` by the configurables that read variables; raises ``TraitError`` naming the
    setting and the variable.
    """
    for name in names:
        if not target.trait_has_value(name):
            setattr(target, name, getattr(target, name))


def parse_port_range(text: str) -> tuple[int, int]:
    """``"LOWER..UPPER"`` as two ints; ``"0..0"`` means any port.

    Raises ``ValueError`` naming the value when it is malformed or out of order.
    """
    parts = str(text).split("..")
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise ValueError(f"port range {text!r} is not of the form LOWER..UPPER (e.g. 40000..41000)")
    lower, upper = int(parts[0]), int(parts[1])
    if (lower, upper) == (0, 0):
        return lower, upper
    if not 1024 <= lower < upper <= 65535:
        raise ValueError(
            f"port range {text!r} must satisfy 1024 <= LOWER < UPPER <= 65535, or be 0..0"
        )
    return lower, upper


class RemoteProvisionerConfigMixin(Configurable):
    """The settings every remote provisioner shares."""

    authorized_users = Set(
        config=True,
        help="""Users allowed to start kernels (GP_AUTHORIZED_USERS, comma-separated).  Empty
        means everyone not in unauthorized_users.  The user is KERNEL_USERNAME from the start
        request, or the server's own user when the request names none.""",
    )

    @default("authorized_users")
    def _authorized_users_default(self) -> set[str]:
        return env_set("GP_AUTHORIZED_USERS", "")

    unauthorized_users = Set(
        config=True,
        help="""Users refused kernels (GP_UNAUTHORIZED_USERS, comma-separated, default root).
        A user in both lists is refused.""",
    )

    @default("unauthorized_users")
    def _unauthorized_users_default(self) -> set[str]:
        return env_set("GP_UNAUTHORIZED_USERS", "root")

    port_range = Unicode(
        config=True,
        help="""Ports the kernel may use on its host, as LOWER..UPPER (GP_PORT_RANGE); 0..0
        lets the launcher take any free port.""",
    )

    @default("port_range")
    def _port_range_default(self) -> str:
        return os.getenv("GP_PORT_RANGE", "0..0")

    min_port_range_size = Int(
        config=True,
        help="""The smallest port range accepted (GP_MIN_PORT_RANGE_SIZE, default 1000), so
        that concurrent kernels on one host do not run out of ports.""",
    )

    @default("min_port_range_size")
    def _min_port_range_size_default(self) -> int:
        return env_int("GP_MIN_PORT_RANGE_SIZE", 1000)

    @validate("port_range")
    def _validate_port_range(self, proposal: dict[str, Any]) -> str:
        try:
            lower, upper = parse_port_range(proposal["value"])
        except ValueError as err:
            raise TraitError(f"port_range (GP_PORT_RANGE): {err}") from None
        if upper and upper - lower < self.min_port_range_size:
            raise TraitError(
                f"port_range (GP_PORT_RANGE) {proposal['value']!r} spans {upper - lower} ports; "
                f"at least {self.min_port_range_size} are required (min_port_range_size, "
                "GP_MIN_PORT_RANGE_SIZE)"
            )
        return str(proposal["value"])

    launch_timeout = Float(
        config=True,
        help="""Seconds a kernel has to start and answer (GP_LAUNCH_TIMEOUT, default 30).  A
        request may lower or raise it with KERNEL_LAUNCH_TIMEOUT up to max_launch_timeout.""",
    )

    @default("launch_timeout")
    def _launch_timeout_default(self) -> float:
        return env_float("GP_LAUNCH_TIMEOUT", 30.0)

    max_launch_timeout = Float(
        config=True,
        help="The largest launch timeout a request may ask for (GP_MAX_LAUNCH_TIMEOUT, 600).",
    )

    @default("max_launch_timeout")
    def _max_launch_timeout_default(self) -> float:
        return env_float("GP_MAX_LAUNCH_TIMEOUT", 600.0)

    @validate("launch_timeout")
    def _validate_launch_timeout(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 < value <= self.max_launch_timeout:
            raise TraitError(
                f"launch_timeout (GP_LAUNCH_TIMEOUT) {proposal['value']!r} must be > 0 and <= "
                f"{self.max_launch_timeout:g} seconds (max_launch_timeout, GP_MAX_LAUNCH_TIMEOUT)"
            )
        return value

    allow_legacy_launchers = Bool(
        config=True,
        help="""Accept connection info from v1 (gateway_provisioners / Enterprise Gateway)
        launchers, which has no integrity or sender authentication
        (GP_ALLOW_LEGACY_LAUNCHERS, default false).  A warning is logged for each such kernel.""",
    )

    @default("allow_legacy_launchers")
    def _allow_legacy_launchers_default(self) -> bool:
        return env_bool("GP_ALLOW_LEGACY_LAUNCHERS", False)

    #: Environment variables that named the allow-list before ``GP_ENV_ALLOWLIST``, per
    #: backend (``GP_REMOTE_ENV_ALLOWLIST``, ...); read when ``GP_ENV_ALLOWLIST`` is unset.
    renamed_env_allowlist_variables: ClassVar[tuple[str, ...]] = ()

    env_allowlist = Set(
        Unicode(),
        config=True,
        help="""Names of the server's environment variables that travel to the kernel (ssh
        host, container, pod, job) besides KERNEL_*, the kernelspec's own env and what the
        launcher needs (GP_ENV_ALLOWLIST, comma-separated, default none).  Everything else of
        the server's environment stays on the server.  Replaces remote_env_allowlist
        (gp-distributed, gp-docker), kernel_env_allowlist (gp-k8s) and job_env_allowlist
        (gp-slurm), which still work and warn once.""",
    )

    @default("env_allowlist")
    def _env_allowlist_default(self) -> set[str]:
        return env_set_renamed("GP_ENV_ALLOWLIST", self.renamed_env_allowlist_variables)

    @observe(All)
    def _forward_deprecated_alias(self, change: Any) -> None:
        """Copy a value set under a deprecated name (see ``deprecated_settings``) to the new
        name, warning once.  Called by traitlets on every change of a trait of this object."""
        trait = self.traits().get(change["name"])
        new_name = trait.metadata.get(ALIAS_METADATA) if trait is not None else None
        if new_name:
            warn_once(type(self).__name__, change["name"], new_name, getattr(self, "log", None))
            setattr(self, new_name, change["new"])


def apply_kernelspec_overrides(
    target: HasTraits, overrides: dict[str, Any], spec_label: str
) -> None:
    """Set each ``metadata.kernel_provisioner.config`` entry on ``target``.

    Called by ``RemoteProvisionerBase.__init__``.  A key that names no configurable trait, or a
    value the trait refuses, raises :class:`KernelSpecConfigError` naming the key, the value
    and the kernelspec, before anything is launched.
    """
    for name, value in overrides.items():
        trait = target.traits(config=True).get(name)
        if trait is None:
            known = ", ".join(sorted(target.traits(config=True)))
            raise KernelSpecConfigError(
                f"Kernelspec {spec_label}: provisioner config key {name!r} (value {value!r}) is "
                f"not a setting of {type(target).__name__}. Fix metadata.kernel_provisioner.config "
                f"in its kernel.json; known settings: {known}"
            )
        try:
            setattr(target, name, value)
        except (TraitError, ValueError, TypeError) as err:
            raise KernelSpecConfigError(
                f"Kernelspec {spec_label}: provisioner config {name}={value!r} is invalid: {err}. "
                "Fix metadata.kernel_provisioner.config in its kernel.json"
            ) from err
