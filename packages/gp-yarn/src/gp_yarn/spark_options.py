"""A YARN kernel's queue and extra Spark options, chosen by the start request within the
operator's allow-lists.

- ``KERNEL_YARN_QUEUE``: one of ``allowed_yarn_queues`` (or the default ``yarn_queue``).
- ``KERNEL_EXTRA_SPARK_OPTS`` (gateway_provisioners 0.5.0's name, which passed it to
  spark-submit unchecked): here split on whitespace into options, each either
  ``--conf KEY=VALUE`` / ``--conf=KEY=VALUE`` with KEY matching ``allowed_spark_conf`` (fnmatch
  patterns such as ``spark.executor.*``) or ``--FLAG VALUE`` with FLAG in
  ``allowed_spark_flags`` (e.g. ``--executor-memory``).  Values are bounded, printable and
  hold no whitespace; nothing starting with ``-`` is taken as a value.

:func:`resolve_spark_options` refuses anything else with ``InvalidLaunchParameterError`` naming
the variable, the option and what is allowed, before anything is submitted.  The result
travels to ``run.sh`` as two variables (:data:`QUEUE_ENV`, :data:`OPTS_ENV`) of
whitespace-free tokens, which it expands as an argv array; no shell parses them.  Pure.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gp_provisioners_core.errors import InvalidLaunchParameterError

QUEUE_ENV = "GP_YARN_QUEUE"
OPTS_ENV = "GP_SPARK_EXTRA_OPTS"
MAX_OPTIONS = 32
MAX_VALUE = 512
_QUEUE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_FLAG = re.compile(r"^--[a-z][a-z-]{0,40}$")


@dataclass(frozen=True)
class SparkOptionLimits:
    """The operator's allow-lists (plain data from the provisioner's settings)."""

    queue: str = ""
    allowed_queues: frozenset[str] = frozenset()
    allowed_conf: tuple[str, ...] = ()
    allowed_flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SparkOptions:
    """The queue ("" for YARN's default) and spark-submit arguments of one launch."""

    queue: str = ""
    arguments: tuple[str, ...] = ()

    def launch_env(self) -> dict[str, str]:
        """The variables run.sh reads (always set, so a server's own value never leaks in)."""
        return {QUEUE_ENV: self.queue, OPTS_ENV: " ".join(self.arguments)}


_refuse = InvalidLaunchParameterError.for_value


def _value_ok(value: str) -> bool:
    return (
        0 < len(value) <= MAX_VALUE
        and value.isprintable()
        and not any(c.isspace() for c in value)
        and not value.startswith("-")
    )


def _patterns(patterns: Iterable[str]) -> str:
    return ", ".join(sorted(patterns)) or "none"


def resolve_spark_options(
    env: Mapping[str, str], limits: SparkOptionLimits, kernel_id: str
) -> SparkOptions:
    """The queue and extra options of a start request's ``env``; called by the provisioner's
    ``pre_launch`` before anything is registered or submitted."""
    queue = limits.queue
    requested_queue = env.get("KERNEL_YARN_QUEUE", "")
    if requested_queue:
        allowed = limits.allowed_queues | ({limits.queue} if limits.queue else set())
        if requested_queue not in allowed:
            raise _refuse(
                "KERNEL_YARN_QUEUE",
                requested_queue,
                f"the allowed queues are: {_patterns(allowed)} (allowed_yarn_queues)",
                kernel_id,
            )
        queue = requested_queue
    if queue and not _QUEUE.fullmatch(queue):
        raise _refuse("KERNEL_YARN_QUEUE", queue, "not a YARN queue name", kernel_id)
    raw = env.get("KERNEL_EXTRA_SPARK_OPTS", "")
    tokens = raw.split()
    if len(tokens) > 2 * MAX_OPTIONS:
        raise _refuse("KERNEL_EXTRA_SPARK_OPTS", raw, f"at most {MAX_OPTIONS} options", kernel_id)
    arguments: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        flag, eq, inline = token.partition("=")
        value = inline if eq else (tokens[i + 1] if i + 1 < len(tokens) else "")
        i += 1 if eq else 2
        if flag in ("--conf", "-c"):
            key, sep, conf_value = value.partition("=")
            if (
                not sep
                or not _KEY.fullmatch(key)
                or not any(fnmatch.fnmatchcase(key, p) for p in limits.allowed_conf)
            ):
                raise _refuse(
                    "KERNEL_EXTRA_SPARK_OPTS",
                    raw,
                    f"--conf {key!r} is not allowed; allowed keys: "
                    f"{_patterns(limits.allowed_conf)} (allowed_spark_conf)",
                    kernel_id,
                )
            if not _value_ok(conf_value):
                raise _refuse(
                    "KERNEL_EXTRA_SPARK_OPTS",
                    raw,
                    f"the value of --conf {key} must be printable, without whitespace, "
                    f"at most {MAX_VALUE} characters",
                    kernel_id,
                )
            arguments += ["--conf", f"{key}={conf_value}"]
            continue
        if not _FLAG.fullmatch(flag) or flag not in limits.allowed_flags:
            raise _refuse(
                "KERNEL_EXTRA_SPARK_OPTS",
                raw,
                f"option {flag[:50]!r} is not allowed; allowed: --conf KEY=VALUE and "
                f"{_patterns(limits.allowed_flags)} (allowed_spark_flags)",
                kernel_id,
            )
        if not _value_ok(value):
            raise _refuse(
                "KERNEL_EXTRA_SPARK_OPTS",
                raw,
                f"{flag} needs a value: printable, no whitespace, not starting with '-'",
                kernel_id,
            )
        arguments += [flag, value]
    return SparkOptions(queue=queue, arguments=tuple(arguments))


__all__ = [
    "OPTS_ENV",
    "QUEUE_ENV",
    "SparkOptionLimits",
    "SparkOptions",
    "resolve_spark_options",
]
