"""Re-attaching to a running kernel from ``get_provisioner_info`` (in another process)."""

from __future__ import annotations

import json
from typing import Any, cast

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory


def serializable_provisioner_info(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with bytes (the session key) turned into text, ready for ``json.dumps``."""
    text = json.dumps(info, default=lambda v: v.decode() if isinstance(v, bytes) else str(v))
    return cast(dict[str, Any], json.loads(text))


async def attach_kernel_manager(
    kernel_name: str, provisioner_info: dict[str, Any], **manager_kwargs: Any
) -> AsyncKernelManager:
    """A KernelManager for a kernel another process started, ready for ``client()``,
    ``interrupt_kernel()`` and ``shutdown_kernel()``.

    ``provisioner_info`` is what the starting process's provisioner returned from
    ``get_provisioner_info`` (serialized with :func:`serializable_provisioner_info`).
    """
    manager = AsyncKernelManager(kernel_name=kernel_name, **manager_kwargs)
    manager.kernel_id = provisioner_info["kernel_id"]
    factory = KernelProvisionerFactory.instance(parent=manager.parent)
    provisioner = factory.create_provisioner_instance(
        manager.kernel_id, manager.kernel_spec, parent=manager
    )
    await provisioner.load_provisioner_info(provisioner_info)
    manager.provisioner = provisioner
    connection = dict(provisioner_info["connection_info"])
    if isinstance(connection.get("key"), str):
        connection["key"] = connection["key"].encode()
    manager.load_connection_info(cast(KernelConnectionInfo, connection))
    return manager
