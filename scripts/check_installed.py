"""Run inside a venv holding one installed wheel: prove the distribution works alone.

Loads every ``jupyter_client.kernel_provisioners`` entry point the distribution declares,
runs each of its console scripts with ``--help``, and (for gp-provisioners-core) finds the packaged
launcher.  Exits non-zero with a message naming what is missing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

BACKEND_SDKS = ("docker", "paramiko", "yarn-api-client", "kubernetes")


def stray_backend_sdks(dist: Distribution) -> list[str]:
    """Backend SDKs installed in this venv that the distribution does not itself require:
    ``pip install gp-k8s`` must not bring docker, paramiko or yarn-api-client."""
    declared = {
        re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0].lower().replace("_", "-")
        for req in dist.requires or []
        if "extra ==" not in req
    }
    stray = []
    for sdk in BACKEND_SDKS:
        if sdk in declared:
            continue
        try:
            distribution(sdk)
        except PackageNotFoundError:
            continue
        stray.append(sdk)
    return stray


def main(name: str) -> int:
    dist = distribution(name)
    provisioners = [
        ep for ep in dist.entry_points if ep.group == "jupyter_client.kernel_provisioners"
    ]
    scripts = [ep for ep in dist.entry_points if ep.group == "console_scripts"]
    for ep in provisioners:
        cls = ep.load()
        print(f"{name}: provisioner {ep.name} -> {cls.__module__}.{cls.__qualname__}")
    for ep in scripts:
        executable = Path(sys.executable).parent / ep.name
        subprocess.run([str(executable), "--help"], check=True, capture_output=True)
        print(f"{name}: {ep.name} --help works")
    stray = stray_backend_sdks(dist)
    if stray:
        print(f"{name}: pulled in backend SDKs it does not declare: {', '.join(stray)}")
        return 1
    if name == "gp-provisioners-core":
        from gp_provisioners_core.launchers import python_launcher

        launcher = python_launcher()
        if not launcher.is_file() or "site-packages" not in str(launcher):
            print(f"gp-provisioners-core: the packaged launcher is missing ({launcher})")
            return 1
        print(f"gp-provisioners-core: launcher packaged at {launcher}")
    elif not provisioners:
        print(f"{name}: declares no kernel provisioner entry point")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
