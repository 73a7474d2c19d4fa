"""Build hook: put the launchers (the repository's ``launchers/`` folder) into the distributions.

Called by hatchling for both targets. A build from the repository finds them at
``../../launchers``; a build from the sdist finds the copy the sdist carries at ``launchers/``.
The wheel gets each language's folder as ``gp_provisioners_core/launchers/<language>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class LaunchersBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        candidates = (root / "launchers", root.parent.parent / "launchers")
        source = next((c for c in candidates if (c / "python").is_dir()), None)
        if source is None:
            raise FileNotFoundError(
                f"no launchers found (looked in {', '.join(str(c) for c in candidates)})"
            )
        force_include: dict[str, str] = build_data.setdefault("force_include", {})
        if self.target_name == "sdist":
            force_include[str(source)] = "launchers"
            return
        for language in sorted(p for p in source.iterdir() if p.is_dir()):
            if language.name == "__pycache__":
                continue
            force_include[str(language)] = f"gp_provisioners_core/launchers/{language.name}"
