"""Fail when a developer page names code that does not exist.

Called by ``nox -s docs`` (default: every page under ``docs/``; or the pages given).  Every
backticked dotted name ``gp_<package>.<module>[.<Name>[.<member>]]`` must resolve in the
source tree (``packages/*/src``) without importing anything: the module file or package must
exist, ``Name`` must be a top-level class, function or assignment in it, and ``member`` a
``def`` or assignment inside that class.  Every backticked repository path (``launchers/...``,
``docs/...``, ``packages/...``, ``scripts/...``) must exist.  Prints one line per broken name
with the page and line, and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
DOTTED = re.compile(r"`(gp_[a-z0-9_]+(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")
TOP_FOLDERS = "launchers|docs|packages|scripts|docker-images|tests-integration"
PATH = re.compile(rf"`((?:{TOP_FOLDERS})/[^`\s]+)`")


def package_roots() -> dict[str, Path]:
    """Top-level import name -> its source folder, for every package of the monorepo."""
    roots: dict[str, Path] = {}
    for src in sorted(ROOT.glob("packages/*/src")):
        for child in src.iterdir():
            if child.is_dir() and (child / "__init__.py").exists():
                roots[child.name] = child
    return roots


def entry_point_groups() -> set[str]:
    """Entry-point group names the packages declare (``gp_provisioners.spec_installers``):
    dotted like code, but names of groups, not of modules."""
    groups: set[str] = set()
    for pyproject in ROOT.glob("packages/*/pyproject.toml"):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        groups.update(project.get("entry-points", {}))
    return groups


def module_file(roots: dict[str, Path], parts: list[str]) -> tuple[Path, int] | None:
    """The file of the longest importable prefix of ``parts`` and how many parts it used."""
    base = roots.get(parts[0])
    if base is None:
        return None
    found: tuple[Path, int] = (base / "__init__.py", 1)
    current = base
    for index, part in enumerate(parts[1:], start=2):
        if (current / part / "__init__.py").exists():
            current = current / part
            found = (current / "__init__.py", index)
        elif (current / f"{part}.py").exists():
            found = (current / f"{part}.py", index)
            break
        else:
            break
    return found


def defined_names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Names bound at this level of a module or class body."""
    names: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def resolve(roots: dict[str, Path], dotted: str) -> str | None:
    """``None`` when ``dotted`` names real code, else why not."""
    parts = dotted.split(".")
    located = module_file(roots, parts)
    if located is None:
        return f"no package {parts[0]} under packages/*/src"
    path, used = located
    rest = parts[used:]
    if not rest:
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = defined_names(tree.body)
    if rest[0] not in names:
        return f"{rest[0]} is not defined in {path.relative_to(ROOT)}"
    if len(rest) == 1:
        return None
    owner = names[rest[0]]
    if not isinstance(owner, ast.ClassDef) or len(rest) > 2:
        return f"{'.'.join(rest)} is not a class member in {path.relative_to(ROOT)}"
    if rest[1] not in defined_names(owner.body):
        return f"{rest[0]} has no member {rest[1]} in {path.relative_to(ROOT)}"
    return None


def check(page: Path, roots: dict[str, Path], groups: set[str]) -> tuple[int, list[str]]:
    """How many names ``page`` holds, and one message per broken one."""
    problems: list[str] = []
    seen = 0
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        for match in DOTTED.finditer(line):
            if match.group(1) in groups:
                continue
            seen += 1
            reason = resolve(roots, match.group(1))
            if reason:
                problems.append(f"{page}:{number}: `{match.group(1)}`: {reason}")
        for match in PATH.finditer(line):
            seen += 1
            if not (ROOT / match.group(1)).exists():
                problems.append(f"{page}:{number}: `{match.group(1)}` does not exist")
    return seen, problems


def main(argv: list[str]) -> int:
    pages = [Path(arg) for arg in argv] or sorted((ROOT / "docs").rglob("*.md"))
    roots, groups = package_roots(), entry_point_groups()
    results = [check(page, roots, groups) for page in pages]
    problems = [problem for _, found in results for problem in found]
    names = sum(seen for seen, _ in results)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} name(s) on the docs pages do not exist: fix the page or the code")
        return 1
    print(f"checked {names} names on {len(pages)} page(s): every module, class and path exists")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
