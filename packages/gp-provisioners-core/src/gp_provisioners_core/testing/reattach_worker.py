"""Second-process half of the re-attach conformance test.

Reads ``{"kernel_name", "provisioner_info", "code"}`` as JSON on stdin, re-attaches with
:func:`gp_provisioners_core.reattach.attach_kernel_manager`, runs ``code``, shuts the kernel down
when asked,
and prints ``{"stdout", "error_name", "alive_after"}`` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys

from gp_provisioners_core.reattach import attach_kernel_manager
from gp_provisioners_core.testing.kernels import execute


async def main() -> None:
    request = json.load(sys.stdin)
    manager = await attach_kernel_manager(request["kernel_name"], request["provisioner_info"])
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=30)
        result = await execute(client, request["code"])
    finally:
        client.stop_channels()
    if request.get("shutdown"):
        await manager.shutdown_kernel()
    alive = await manager.is_alive()
    print(
        json.dumps({"stdout": result.stdout, "error_name": result.error_name, "alive_after": alive})
    )


if __name__ == "__main__":
    asyncio.run(main())
