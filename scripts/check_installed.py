"""Run inside a venv holding one installed wheel: prove the distribution works alone.

Loads every ``jupyter_client.kernel_provisioners`` entry point the distribution declares,
runs each of its console scripts with ``--help``, and (for gp-core) finds the packaged
launcher.  Exits non-zero with a message naming what is missing.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path


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
    if name == "gp-core":
        from gp_core.launchers import python_launcher

        launcher = python_launcher()
        if not launcher.is_file() or "site-packages" not in str(launcher):
            print(f"gp-core: the packaged launcher is missing ({launcher})")
            return 1
        print(f"gp-core: launcher packaged at {launcher}")
    elif not provisioners:
        print(f"{name}: declares no kernel provisioner entry point")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
