"""Reading back a kernelspec an installer (``jupyter <backend>-spec install``) wrote.

Each package's installer tests install into a temporary prefix and read the spec with
:func:`installed_spec`, which checks what every spec must satisfy whatever its backend; the
tests then check their own backend's argv, env and settings (``provisioner_config``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

PROVISIONER_FILLS = frozenset(
    {
        "kernel_id",
        "response_address",
        "public_key",
        "port_range",
        "resource_dir",
        "transport_encryption",
    }
)
"""The argv placeholders an installer may write: ``RemoteProvisionerBase.argv_substitutions``
fills each of them at every launch."""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


def installed_spec(folder: Path, *, fills: Collection[str] = PROVISIONER_FILLS) -> dict[str, Any]:
    """``folder``'s kernel.json, after checking that nothing in it is left for a shell to
    expand (``${...}``) and that every ``{placeholder}`` of its argv is one of ``fills`` (a
    backend whose argv runs elsewhere, in a container, passes fewer)."""
    text = (folder / "kernel.json").read_text()
    assert "${" not in text, f"{folder}/kernel.json holds a shell-style ${{...}}"
    spec: dict[str, Any] = json.loads(text)
    unfilled = set(_PLACEHOLDER.findall(" ".join(spec["argv"]))) - set(fills)
    assert not unfilled, f"{folder}/kernel.json: no one fills {sorted(unfilled)} at launch"
    return spec


def provisioner_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The provisioner's settings in a kernelspec (``metadata.kernel_provisioner.config``)."""
    config: dict[str, Any] = spec["metadata"]["kernel_provisioner"]["config"]
    return config


__all__ = ["PROVISIONER_FILLS", "installed_spec", "provisioner_config"]
