"""``pip install gp-k8s`` (and each other package) resolves to ours, next to the unrelated gp-core.

Run by ``nox -s build`` after the wheels are built into ``dist/``. It makes a PEP 503 simple index
in a temporary folder holding our wheels **and** every release of the unrelated ``gp-core``
project downloaded from PyPI, then, for each of our distributions, creates an empty venv and runs
``pip install <name>`` with that index first (PyPI behind it for third-party dependencies, as a
user's pip would see it once we publish). It checks that

- the installed ``gp-provisioners-core`` is the wheel we built (same file hash in RECORD terms:
  same version and the ``gp_provisioners_core`` package from our wheel),
- no ``gp-core`` distribution and no ``gp_core`` import package was installed,
- every ``jupyter_client.kernel_provisioners`` entry point in the venv belongs to our
  distributions or to jupyter_client itself, and loads (``scripts/check_installed.py``).

Exits non-zero naming the first package that fails.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/simple"
UNRELATED = "gp-core"

PROBE_UNRELATED = """
import importlib.metadata as md, importlib.util, json
print(json.dumps({"gp-core": md.version("gp-core"), "summary": md.metadata("gp-core")["Summary"],
                  "gp_core_importable": importlib.util.find_spec("gp_core") is not None}))
"""
PROBE = """
import importlib.metadata as md, importlib.util, json, sys
dists = {d.metadata["Name"].lower(): d.version for d in md.distributions()}
groups = md.entry_points(group="jupyter_client.kernel_provisioners")
owners = {ep.name: (ep.dist.metadata["Name"] if ep.dist else "?") for ep in groups}
print(json.dumps({
    "dists": dists,
    "gp_core_importable": importlib.util.find_spec("gp_core") is not None,
    "core_file": importlib.util.find_spec("gp_provisioners_core").origin,
    "provisioners": owners,
}))
"""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename: str) -> str:
    return normalise(filename.split("-", 1)[0])


def write_index(folder: Path, files: list[Path]) -> None:
    """A PEP 503 simple index: one page per project linking its files (with sha256 fragments)."""
    projects: dict[str, list[Path]] = {}
    for file in files:
        projects.setdefault(project_of(file.name), []).append(file)
    links = []
    for project, members in sorted(projects.items()):
        page = folder / project
        page.mkdir(parents=True)
        anchors = []
        for member in members:
            shutil.copy2(member, page / member.name)
            digest = hashlib.sha256(member.read_bytes()).hexdigest()
            anchors.append(
                f'<a href="{html.escape(member.name)}#sha256={digest}">{member.name}</a>'
            )
        (page / "index.html").write_text(
            "<html><body>\n" + "<br>\n".join(anchors) + "\n</body></html>\n"
        )
        links.append(f'<a href="{project}/">{project}</a>')
    (folder / "index.html").write_text(
        "<html><body>\n" + "<br>\n".join(links) + "\n</body></html>\n"
    )


def pip_environment() -> dict[str, str]:
    """The caller's environment less pip's index settings (the CA settings stay)."""
    dropped = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX")
    environment = {k: v for k, v in os.environ.items() if k not in dropped}
    environment["PIP_CONFIG_FILE"] = "/dev/null"
    return environment


def run(argv: list[str]) -> None:
    """Run pip quietly; on failure print what it said and stop."""
    done = subprocess.run(argv, capture_output=True, text=True, env=pip_environment(), check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")


def download_unrelated(target: Path) -> list[Path]:
    """Every release of the unrelated gp-core that PyPI has for this interpreter."""
    versions = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", UNRELATED, "--index-url", PYPI],
        capture_output=True,
        text=True,
        env=pip_environment(),
        check=True,
    ).stdout
    line = next(line for line in versions.splitlines() if "versions:" in line)
    for version in line.split(":", 1)[1].strip().split(", "):
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(target)]
        run([*pip, "--index-url", PYPI, f"{UNRELATED}=={version}"])
    files = sorted(target.iterdir())
    if not files:
        raise SystemExit(f"could not download any {UNRELATED} release from PyPI")
    return files


def check_one(name: str, index: Path, workdir: Path, core_wheel: Path, ours: set[str]) -> list[str]:
    """Install ``name`` into an empty venv from the index; return what is wrong ([] if nothing)."""
    target = workdir / f"venv-{name}"
    venv.create(target, with_pip=True)
    python = str(target / "bin" / "python")
    from_pypi = ("--extra-index-url", PYPI)
    run([python, "-m", "pip", "install", "-q", "--index-url", index.as_uri(), *from_pypi, name])
    probe = json.loads(
        subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    )
    problems = []
    core_version = core_wheel.name.split("-")[1]
    if probe["dists"].get("gp-provisioners-core") != core_version:
        problems.append(f"gp-provisioners-core is not ours: {probe['dists']}")
    if UNRELATED in probe["dists"] or probe["gp_core_importable"]:
        problems.append(f"the unrelated {UNRELATED} was installed")
    for entry, owner in probe["provisioners"].items():
        if normalise(owner) not in ours | {"jupyter-client"}:
            problems.append(f"provisioner {entry} comes from {owner}, not from us")
    checked = subprocess.run(
        [python, str(ROOT / "scripts" / "check_installed.py"), name],
        capture_output=True,
        text=True,
        check=False,
    )
    if checked.returncode != 0:
        problems.append(f"check_installed.py: {checked.stdout}{checked.stderr}")
    if not problems:
        print(
            f"{name}: resolved to ours (gp-provisioners-core {core_version} from "
            f"{probe['core_file']}); provisioners {sorted(probe['provisioners'])}; "
            f"no {UNRELATED}"
        )
    return problems


def control(index: Path, workdir: Path) -> bool:
    """The index really offers the unrelated gp-core: ``pip install gp-core`` from it installs it
    (the trap our old requirement fell into). Without this the check could pass vacuously."""
    target = workdir / "venv-control"
    venv.create(target, with_pip=True)
    python = str(target / "bin" / "python")
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--index-url",
            index.as_uri(),
            UNRELATED,
        ]
    )
    probe = json.loads(
        subprocess.run(
            [python, "-c", PROBE_UNRELATED], capture_output=True, text=True, check=True
        ).stdout
    )
    print(f"control: pip install {UNRELATED} from the index gives {probe}")
    return bool(probe["gp_core_importable"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="our built wheels")
    parser.add_argument("names", nargs="*", help="distributions to install (default: all)")
    args = parser.parse_args()
    wheels = sorted(args.dist.glob("*.whl"))
    core_wheel = next((w for w in wheels if project_of(w.name) == "gp-provisioners-core"), None)
    if core_wheel is None:
        print(f"no gp-provisioners-core wheel in {args.dist}: run nox -s build")
        return 2
    ours = {project_of(w.name) for w in wheels}
    names = args.names or sorted(ours)
    with tempfile.TemporaryDirectory(prefix="gp-local-index-") as tmp:
        workdir = Path(tmp)
        unrelated = download_unrelated(workdir / "unrelated")
        print(
            f"local index: {len(wheels)} wheels of ours and {UNRELATED}: "
            + ", ".join(f.name for f in unrelated)
        )
        index = workdir / "simple"
        write_index(index, [*wheels, *unrelated])
        if not control(index, workdir):
            print(f"control failed: the index does not offer the unrelated {UNRELATED}")
            return 2
        for name in names:
            problems = check_one(name, index, workdir, core_wheel, ours)
            if problems:
                print(f"{name}: " + "; ".join(problems))
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
