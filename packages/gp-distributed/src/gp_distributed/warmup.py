"""ssh warm-up: open the pooled connection and one idle remote shell per ssh host at start.

A server's first kernel on an ssh host otherwise pays the connection (key exchange and
authentication) and one login-shell start (``.bashrc``, profile) before its launcher runs.
:func:`warm_up` does that work ahead, in the background, for every host the installed
kernelspecs of this provisioner may use, so the first kernel finds them ready.

The hosts come from the kernelspecs exactly as a launch sees them: each kernelspec's
provisioner is constructed as jupyter_client constructs it (its
``metadata.kernel_provisioner.config`` over the operator's traitlets configuration), and its
``remote_hosts``, ``uses_ssh`` and ``ssh_settings()`` give the targets, resolved through
``~/.ssh/config`` by :func:`gp_distributed.ssh.resolve_target`.  The connections and shells are
those of :class:`gp_distributed.ssh.SshConnectionPool`, the pool every launch uses.

Called by the server extension (:mod:`gp_distributed.jupyter_extension`) once the server's
event loop runs, and by anything else that starts kernels and wants the same (a benchmark, an
embedding application).  It never raises for a host or a kernelspec: what cannot be warmed is
one WARNING naming the host (or the kernelspec) and the reason, and the first kernel there
simply connects as it would have without warm-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from traitlets import Bool, default
from traitlets.config import Configurable, LoggingConfigurable

from gp_provisioners_core.config import env_bool

from .provisioner import DistributedProvisioner
from .ssh import SshError, SshTarget, in_ssh_thread, resolve_target, run_script

PROVISIONER_GROUP = "jupyter_client.kernel_provisioners"
WARM_SCRIPT = ":\n"  # runs in the new shell: it proves the shell started and answers

log = logging.getLogger(__name__)


class SshWarmUp(LoggingConfigurable):
    """The server-wide setting of the warm-up (``c.SshWarmUp.enabled``)."""

    enabled = Bool(
        config=True,
        help="""At server start, open the ssh connection and one idle remote shell to every
        ssh host of the installed distributed-provisioner kernelspecs, in the background
        (GP_SSH_WARM_AT_START, true), so the first kernel on a host does not pay the ssh
        handshake and the login shell's start-up.  An unreachable host is one warning; the
        server starts either way.""",
    )

    @default("enabled")
    def _enabled_default(self) -> bool:
        return env_bool("GP_SSH_WARM_AT_START", True)


@dataclass
class WarmTarget:
    """One distinct ssh connection to warm and the kernelspecs that would use it."""

    target: SshTarget
    kernelspecs: list[str] = field(default_factory=list)
    command_timeout: float = 30.0

    @property
    def names(self) -> str:
        return ", ".join(self.kernelspecs)


@dataclass
class Discovery:
    """What :func:`discover_targets` found: the targets, and one line per kernelspec of this
    provisioner whose settings could not be read (it is not warmed; its launches will fail
    with the same error)."""

    targets: list[WarmTarget] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WarmResult:
    """One target after :func:`warm_up`: ``error`` is empty when its connection and shell are
    open."""

    target: WarmTarget
    seconds: float
    error: str = ""


def is_distributed_provisioner(name: str) -> bool:
    """Whether the provisioner entry point ``name`` is this package's provisioner (or a
    subclass of it in this package).  Entry points of other packages are not imported."""
    for point in entry_points(group=PROVISIONER_GROUP, name=name):
        if point.module.split(".", 1)[0] != __name__.split(".", 1)[0]:
            return False
        try:
            loaded = point.load()
        except Exception:  # noqa: BLE001 - a broken entry point is the launch's to report
            return False
        return isinstance(loaded, type) and issubclass(loaded, DistributedProvisioner)
    return False


def discover_targets(kernel_spec_manager: Any, parent: Configurable | None = None) -> Discovery:
    """The distinct ssh targets of the kernelspecs of ``kernel_spec_manager`` (a jupyter_client
    ``KernelSpecManager``: ``find_kernel_specs()`` and ``get_kernel_spec(name)``) whose
    provisioner is this package's.

    Blocking (reads kernel.json files and ~/.ssh/config): called in a worker thread by
    :func:`warm_up`.  ``parent`` is the configurable whose configuration the provisioners see
    (the server application); ``None`` reads the ``GP_*`` defaults only.
    """
    found = Discovery()
    by_key: dict[tuple[Any, ...], WarmTarget] = {}
    for name in sorted(kernel_spec_manager.find_kernel_specs()):
        try:
            spec = kernel_spec_manager.get_kernel_spec(name)
        except Exception as err:  # noqa: BLE001 - an unreadable spec: the kernel start reports it
            log.debug("ssh warm-up: kernelspec %s is not readable: %s", name, err)
            continue
        section = (getattr(spec, "metadata", None) or {}).get("kernel_provisioner") or {}
        provisioner_name = str(section.get("provisioner_name") or "")
        if not provisioner_name or not is_distributed_provisioner(provisioner_name):
            continue
        try:
            for target, timeout in _spec_targets(spec, dict(section.get("config") or {}), parent):
                warm = by_key.setdefault(target.pool_key, WarmTarget(target, [], timeout))
                warm.kernelspecs.append(name)
                warm.command_timeout = max(warm.command_timeout, timeout)
        except Exception as err:  # noqa: BLE001 - its message names the key, value and spec
            found.problems.append(f"kernelspec {name}: {err}")
    found.targets = list(by_key.values())
    return found


def _spec_targets(
    spec: Any, config: dict[str, Any], parent: Configurable | None
) -> Iterable[tuple[SshTarget, float]]:
    """The ssh targets of one kernelspec, as its provisioner would connect to them."""
    provisioner = DistributedProvisioner(kernel_id="", kernel_spec=spec, parent=parent, **config)
    settings = provisioner.ssh_settings()
    for host in provisioner.remote_hosts:
        if provisioner.uses_ssh(host):
            yield resolve_target(host, settings), provisioner.ssh_command_timeout


def warm_target(warm: WarmTarget) -> float:
    """Open ``warm``'s pooled connection and leave one idle remote shell on it (blocking: ssh
    worker threads only); the seconds it took.  A no-op command runs through the same code as
    a launch's commands, so with ``ssh_reuse_shells`` the shell it started stays in the pool
    (and an idle shell already there is reused, not doubled).  Raises :class:`SshError`."""
    started = time.monotonic()
    result = run_script(warm.target, WARM_SCRIPT, warm.command_timeout)
    if result.exit_status != 0:
        raise SshError(
            f"ssh to {warm.target.label}: the warm-up command exited with "
            f"{result.exit_status}: {result.stderr.strip()[:500]}"
        )
    return time.monotonic() - started


async def warm_up(
    kernel_spec_manager: Any,
    parent: Configurable | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> list[WarmResult]:
    """Warm every ssh target of ``kernel_spec_manager``'s kernelspecs, all hosts at once;
    return what happened to each.

    Called by the server extension as a background task, and by the launch benchmark.  Every
    blocking step (kernelspec files, ~/.ssh/config, paramiko) runs in the ssh worker threads;
    nothing here raises for a kernelspec or a host: each failure is logged as one WARNING on
    ``logger`` naming the host or kernelspec and the reason.
    """
    logger = logger or log
    found = await in_ssh_thread(discover_targets, kernel_spec_manager, parent)
    for problem in found.problems:
        logger.warning("ssh warm-up skips %s", problem)
    if not found.targets:
        logger.debug("ssh warm-up: no kernelspec uses an ssh host")
        return []
    results = await asyncio.gather(*(_warm_one(warm, logger) for warm in found.targets))
    return list(results)


async def _warm_one(
    warm: WarmTarget, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> WarmResult:
    started = time.monotonic()
    try:
        seconds = await in_ssh_thread(warm_target, warm)
    except Exception as err:  # noqa: BLE001 - SshError or other: the server starts regardless
        logger.warning(
            "ssh warm-up: host %s (kernelspec %s) could not be warmed, its first kernel will "
            "connect then: %s",
            warm.target.entry,
            warm.names,
            err,
        )
        return WarmResult(warm, time.monotonic() - started, str(err))
    logger.info(
        "ssh warm-up: connection%s ready on %s for kernelspec %s in %.3fs",
        " and an idle remote shell" if warm.target.reuse_shells else "",
        warm.target.label,
        warm.names,
        seconds,
    )
    return WarmResult(warm, seconds)
