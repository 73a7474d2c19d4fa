"""The cpu, memory and GPU a kernel may ask for, and the operator's bounds of them.

One meaning for every backend that runs a kernel in a container (gp-docker, gp-k8s):

- :class:`ResourceSettings`, a traitlets mixin: ``default_cpus``, ``max_cpus``,
  ``default_memory``, ``max_memory`` and ``max_gpus``, with ``GP_DEFAULT_CPUS``,
  ``GP_MAX_CPUS``, ``GP_DEFAULT_MEMORY``, ``GP_MAX_MEMORY`` and ``GP_MAX_GPUS`` as defaults.
  :meth:`ResourceSettings.resource_bounds` turns them into :class:`ResourceBounds`, plain data
  that a backend's own limits extend (a frozen dataclass subclass, keyword-only fields).
- :func:`cpus_request`, :func:`memory_request` and :func:`gpus_request` parse one start-request
  value (``KERNEL_CPUS``: cores, ``0.5`` or ``500m``; ``KERNEL_MEMORY``: ``512Mi``, ``2G`` or
  bytes; ``KERNEL_GPUS``: a count) and bound it, or raise ``InvalidLaunchParameterError``
  naming the variable, the value, the kernel id and the bound (with the setting that sets it).
- :func:`parse_memory` and :func:`format_memory` for quantities in settings and messages.

Pure: no I/O.  What a value becomes (a pod's requests, a container's ``NanoCpus``) is the
backend's business.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from traitlets import Float, Int, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from .config import env_float, env_int, validate_settings
from .errors import InvalidLaunchParameterError

MEMORY_PATTERN = re.compile(r"^([0-9]{1,15}(?:\.[0-9]{1,6})?)(Ki|Mi|Gi|Ti|K|M|G|T|k)?$")
"""A memory quantity: a number (at most 15 digits, 6 decimals) and an optional unit."""

MEMORY_UNITS: dict[str | None, int] = {
    None: 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def parse_memory(text: str) -> int:
    """``512Mi``, ``2G`` or a number of bytes as bytes (``""``: 0).

    Raises ``ValueError`` naming the text and the accepted forms.
    """
    if not text:
        return 0
    match = MEMORY_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a memory quantity (e.g. 512Mi, 2Gi, 1G or bytes)")
    return int(Decimal(match.group(1)) * MEMORY_UNITS[match.group(2)])


def format_memory(number: int) -> str:
    """Bytes in the largest binary unit that divides them (``17179869184`` -> ``16Gi``)."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        size = MEMORY_UNITS[unit]
        if number >= size and number % size == 0:
            return f"{number // size}{unit}"
    return str(number)


@dataclass(frozen=True)
class ResourceBounds:
    """The operator's defaults and bounds of cpu (cores), memory (bytes) and GPUs (count)."""

    default_cpus: float = 0.0
    max_cpus: float = 4.0
    default_memory: int = 0
    max_memory: int = 16 * 1024**3
    max_gpus: int = 0


def cpus_request(
    name: str, raw: str, high: float, kernel_id: str, *, allow_zero: bool = True
) -> float:
    """Cores from ``raw`` (``0.5``, ``2`` or millicores ``500m``), at most ``high``
    (``max_cpus``); 0 only when ``allow_zero``.  Refuses anything else (``nan``, ``-1``)."""
    text = raw.strip()
    try:
        number = Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if (
        not number.is_finite()
        or number < 0
        or (number == 0 and not allow_zero)
        or number > Decimal(str(high))
    ):
        span = f"from 0 to {high:g}" if allow_zero else f"above 0 and at most {high:g}"
        raise InvalidLaunchParameterError.for_value(
            name, raw, f"it must be a number of cores {span} (max_cpus)", kernel_id
        )
    return float(number)


def memory_request(
    name: str, raw: str, high: int, kernel_id: str, *, least: int = 0, least_why: str = ""
) -> int:
    """Bytes from ``raw`` (``512Mi``, ``2G`` or bytes), at most ``high`` (``max_memory``) and
    at least ``least`` (a backend's own floor, explained by ``least_why``)."""
    try:
        number = parse_memory(raw)
    except ValueError:
        raise InvalidLaunchParameterError.for_value(
            name, raw, "it must be bytes or a quantity such as 512Mi, 2Gi or 1G", kernel_id
        ) from None
    if number > high:
        raise InvalidLaunchParameterError.for_value(
            name, raw, f"it exceeds the maximum of {format_memory(high)} (max_memory)", kernel_id
        )
    if number < least:
        raise InvalidLaunchParameterError.for_value(
            name, raw, f"it is below the minimum of {format_memory(least)} ({least_why})", kernel_id
        )
    return number


def gpus_request(name: str, raw: str, high: int, kernel_id: str) -> int:
    """A whole number of GPUs from ``raw``, from 0 to ``high`` (``max_gpus``).  The digits are
    bounded before they are converted (Python refuses to convert more than 4300 of them)."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 18) or int(text, 10) > high:
        raise InvalidLaunchParameterError.for_value(
            name, raw, f"it must be a whole number from 0 to {high} (max_gpus)", kernel_id
        )
    return int(text, 10)


class ResourceSettings(Configurable):
    """The operator's defaults and bounds of what a kernel may ask for (traitlets, ``GP_*``
    defaults).  Mixed into a backend's provisioner (or its settings class); the backend reads
    :meth:`resource_bounds` when it checks a start request."""

    default_cpus = Float(
        config=True,
        help="""Cores a kernel gets without KERNEL_CPUS (GP_DEFAULT_CPUS, default 0: none).""",
    )

    @default("default_cpus")
    def _default_cpus_default(self) -> float:
        return env_float("GP_DEFAULT_CPUS", 0.0)

    max_cpus = Float(
        config=True,
        help="""The most cores KERNEL_CPUS (and a backend's other cpu variables, such as
        KERNEL_CPUS_LIMIT) may ask for (GP_MAX_CPUS, default 4).""",
    )

    @default("max_cpus")
    def _max_cpus_default(self) -> float:
        return env_float("GP_MAX_CPUS", 4.0)

    default_memory = Unicode(
        config=True,
        help="""Memory a kernel gets without KERNEL_MEMORY, e.g. 2Gi (GP_DEFAULT_MEMORY,
        default none).""",
    )

    @default("default_memory")
    def _default_memory_default(self) -> str:
        return os.getenv("GP_DEFAULT_MEMORY", "")

    max_memory = Unicode(
        config=True,
        help="""The most memory KERNEL_MEMORY (and a backend's other memory variables, such
        as KERNEL_MEMORY_LIMIT) may ask for (GP_MAX_MEMORY, default 16Gi).""",
    )

    @default("max_memory")
    def _max_memory_default(self) -> str:
        return os.getenv("GP_MAX_MEMORY", "16Gi")

    @validate("default_memory", "max_memory")
    def _validate_memory(self, proposal: dict[str, Any]) -> str:
        try:
            parse_memory(str(proposal["value"]))
        except ValueError as err:
            name = proposal["trait"].name
            raise TraitError(f"{name} (GP_{name.upper()}): {err}") from None
        return str(proposal["value"])

    max_gpus = Int(
        config=True,
        help="""The most GPUs KERNEL_GPUS (and a backend's other GPU variables, such as
        KERNEL_GPUS_LIMIT) may ask for (GP_MAX_GPUS, default 0: none).""",
    )

    @default("max_gpus")
    def _max_gpus_default(self) -> int:
        return env_int("GP_MAX_GPUS", 0)

    def resource_bounds(self) -> ResourceBounds:
        """The settings as plain data.  Called by the backend when it checks a start request;
        a malformed ``GP_DEFAULT_MEMORY`` / ``GP_MAX_MEMORY`` raises ``TraitError`` naming the
        variable and its value (traitlets does not validate a default read from the
        environment until it is set)."""
        validate_settings(self, "default_memory", "max_memory")
        return ResourceBounds(
            default_cpus=self.default_cpus,
            max_cpus=self.max_cpus,
            default_memory=parse_memory(self.default_memory),
            max_memory=parse_memory(self.max_memory),
            max_gpus=self.max_gpus,
        )


__all__ = [
    "MEMORY_PATTERN",
    "MEMORY_UNITS",
    "ResourceBounds",
    "ResourceSettings",
    "cpus_request",
    "format_memory",
    "gpus_request",
    "memory_request",
    "parse_memory",
]
