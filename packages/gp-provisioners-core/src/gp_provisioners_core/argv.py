"""Pure helpers that build a launch's argv and environment as data (never as shell text)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KERNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def substitute_argv(argv: Iterable[str], values: Mapping[str, str]) -> tuple[list[str], set[str]]:
    """Replace ``{name}`` in each argument with ``values[name]``.

    Each value lands inside the one argument that named it and stays a literal string whatever
    it contains.  Returns the new argv and the placeholder names that had no value (left as
    they were), so the caller can warn about them.
    """
    unknown: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        unknown.add(name)
        return match.group(0)

    return [_PLACEHOLDER.sub(replace, arg) for arg in argv], unknown


def is_valid_kernel_id(kernel_id: str) -> bool:
    """Kernel ids name files, labels and job names: letters, digits, ``.``, ``_`` and ``-``."""
    return isinstance(kernel_id, str) and _KERNEL_ID.fullmatch(kernel_id) is not None


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LAUNCH_ENV = frozenset({"GP_LAUNCH_SECRET", "GP_TRANSPORT_ENCRYPTION"})


def travelling_env(
    env: Mapping[str, str], allowlist: Iterable[str] = (), spec_env: Iterable[str] = ()
) -> dict[str, str]:
    """The variables a launch hands to a remote launcher: ``KERNEL_*``, the launch's own
    (``GP_LAUNCH_SECRET``, ``GP_TRANSPORT_ENCRYPTION``), the kernelspec's ``env`` names and the
    operator's ``allowlist``.

    For backends that pass them through a shell or a job system: raises ``ValueError`` naming a
    travelling variable whose name is not a shell variable name or whose value holds a NUL byte
    (neither can be passed as data).
    """
    allowed = set(allowlist) | set(spec_env) | LAUNCH_ENV
    chosen: dict[str, str] = {}
    for name, value in env.items():
        if not (name.startswith("KERNEL_") or name in allowed):
            continue
        if not ENV_NAME.fullmatch(name):
            raise ValueError(f"environment variable name {name!r} is not a valid variable name")
        if "\0" in value:
            raise ValueError(f"environment variable {name} holds a NUL byte")
        chosen[name] = value
    return chosen
