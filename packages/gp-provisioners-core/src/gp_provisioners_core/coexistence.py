"""Say so when gateway_provisioners is installed next to gp-*.

Both register the same provisioner names (``distributed-provisioner``, ``kubernetes-provisioner``
...) and the same console scripts (``jupyter k8s-spec``...).  jupyter_client keeps one entry point
per name, so the other package's provisioner silently serves those kernelspecs, and pip lets the
last install win the scripts.  :func:`shadowed_provisioners` finds the clash through
importlib.metadata; :func:`warn_if_shadowed` reports it once per process.  Called by
``RemoteProvisionerBase.__init__`` (provisioner load) and by every ``jupyter <x>-spec`` command.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

PROVISIONER_GROUP = "jupyter_client.kernel_provisioners"
OTHER = "gateway_provisioners"

_reported = False


def shadowed_provisioners() -> dict[str, list[str]]:
    """Provisioner name -> the entry points (``module:Class``) registering it, for each name
    registered both by gateway_provisioners and by someone else."""
    by_name: dict[str, list[str]] = {}
    for point in entry_points(group=PROVISIONER_GROUP):
        by_name.setdefault(point.name, []).append(point.value)
    return {
        name: values
        for name, values in by_name.items()
        if len(values) > 1 and any(value.startswith(f"{OTHER}.") for value in values)
    }


def shadowing_message() -> str:
    """The warning for the clash, or '' when there is none."""
    clash = shadowed_provisioners()
    if not clash:
        return ""
    names = ", ".join(
        f"{name} ({' and '.join(values)}; jupyter_client takes "
        f"{next(iter(entry_points(group=PROVISIONER_GROUP, name=name))).value})"
        for name, values in sorted(clash.items())
    )
    return (
        f"gateway_provisioners is installed next to gp-*: both register the kernel provisioners "
        f"{names}. jupyter_client uses only one class per name, so kernelspecs naming them may "
        f"run on gateway_provisioners' instead of ours, and the jupyter *-spec commands are "
        f"whichever package was installed last. Uninstall it: pip uninstall {OTHER}"
    )


def warn_if_shadowed(log: logging.Logger | None = None) -> str:
    """Log the clash once per process; return the message ('' when none or already said)."""
    global _reported
    if _reported:
        return ""
    _reported = True
    message = shadowing_message()
    if message:
        (log or logging.getLogger("gp_provisioners_core")).warning(message)
    return message
