"""Run inside a venv holding one installed wheel: prove the distribution works alone.

Loads every ``jupyter_client.kernel_provisioners`` entry point the distribution declares (for a
Jupyter Server extension such as gp-server: its extension points and the
``jupyter_server_config.d`` file that enables it),
runs each of its console scripts with ``--help``, (for gp-provisioners-core) finds the packaged
launcher, and compares the distribution's requirements with what its modules import: a required
distribution that nothing imports, or an imported third-party module that no requirement (or
extra) provides, is an error.  Exits non-zero with a message naming what is wrong.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import (
    Distribution,
    PackageNotFoundError,
    distribution,
    packages_distributions,
)
from pathlib import Path

BACKEND_SDKS = ("docker", "paramiko", "yarn-api-client", "kubernetes")
# Distributions that are Jupyter Server extensions (no provisioner): name -> import name.
SERVER_EXTENSIONS = {"gp-server": "gp_server"}


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


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def imported_top_levels(dist: Distribution) -> tuple[set[str], set[str]]:
    """The top-level modules the distribution's own Python files import, split into plain imports
    and guarded ones (inside ``try`` with an ``except ImportError``: optional by design).
    Launchers are left out: they run next to the kernel, not in the server."""
    plain: set[str] = set()
    guarded: set[str] = set()

    def names(node: ast.AST) -> set[str]:
        if isinstance(node, ast.Import):
            return {alias.name.split(".")[0] for alias in node.names}
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            return {node.module.split(".")[0]}
        return set()

    def catches_import_error(handler: ast.ExceptHandler) -> bool:
        caught = ast.unparse(handler.type) if handler.type else ""
        return "ImportError" in caught or "ModuleNotFoundError" in caught

    for file in dist.files or []:
        if file.suffix != ".py" or "/launchers/" in f"/{file}":
            continue
        tree = ast.parse(Path(str(file.locate())).read_text())
        for node in ast.walk(tree):
            plain |= names(node)
            if isinstance(node, ast.Try) and any(map(catches_import_error, node.handlers)):
                for statement in node.body:
                    for inner in ast.walk(statement):
                        guarded |= names(inner)
    return plain - guarded, guarded


def dependency_mismatches(dist: Distribution) -> list[str]:
    """Required distributions nothing imports, and imports no requirement provides."""
    requirements = dist.requires or []
    required = {requirement_name(r) for r in requirements if "extra ==" not in r}
    optional = {requirement_name(r) for r in requirements if "extra ==" in r}
    provided_by = packages_distributions()
    own = {
        str(f).split("/")[0] for f in dist.files or [] if str(f).endswith(".py") and "/" in str(f)
    }
    imported: dict[str, set[str]] = {}
    unknown = []
    plain, guarded = imported_top_levels(dist)
    for module in sorted((plain | guarded) - own):
        if module in sys.stdlib_module_names or module == "__future__":
            continue
        owners = {d.lower().replace("_", "-") for d in provided_by.get(module, [])}
        # An extra's distribution is not installed here: its import name must then match it.
        owners = owners or {module.lower().replace("_", "-")}
        if not owners & (required | optional) and module not in guarded:
            unknown.append(module)
        for owner in owners:
            imported.setdefault(owner, set()).add(module)
    problems = [f"imports {m}, which no requirement provides" for m in unknown]
    problems += [
        f"requires {r}, which none of its modules imports" for r in sorted(required - set(imported))
    ]
    return problems


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
    mismatches = dependency_mismatches(dist)
    if mismatches:
        print(f"{name}: " + "; ".join(mismatches))
        return 1
    print(f"{name}: requires exactly what it imports ({', '.join(sorted(dist.requires or []))})")
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
    elif name in SERVER_EXTENSIONS:
        return check_server_extension(name, SERVER_EXTENSIONS[name])
    elif not provisioners:
        print(f"{name}: declares no kernel provisioner entry point")
        return 1
    return 0


def check_server_extension(name: str, module: str) -> int:
    """A Jupyter Server extension's entry: the module's extension points load, and the wheel
    installed the ``jupyter_server_config.d`` file that enables it."""
    import importlib
    import json

    points = importlib.import_module(module)._jupyter_server_extension_points()
    if not any(point.get("module") == module for point in points):
        print(f"{name}: {module}._jupyter_server_extension_points() does not name {module}")
        return 1
    config = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / f"{module}.json"
    if not config.is_file():
        print(f"{name}: the wheel did not install {config}, so the extension is not enabled")
        return 1
    enabled = json.loads(config.read_text())["ServerApp"]["jpserver_extensions"].get(module)
    if enabled is not True:
        print(f"{name}: {config} does not enable {module}")
        return 1
    print(f"{name}: server extension {module} enabled by {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
