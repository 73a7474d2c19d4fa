"""After ``mkdocs build``: every configurable trait of every installed gp provisioner (and of
the response manager) must appear in the built settings reference.  Exits 1 naming the missing."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path


def main(page: str) -> int:
    html = Path(page).read_text()
    from gp_provisioners_core.response_manager import ResponseManager

    classes = [ResponseManager]
    for ep in entry_points(group="jupyter_client.kernel_provisioners"):
        if ep.value.startswith("gp_"):
            classes.append(ep.load())
    missing = [
        f"{cls.__name__}.{name}"
        for cls in classes
        for name in cls.class_trait_names(config=True)
        if f"<code>{name}</code>" not in html
    ]
    if missing:
        print("missing from the settings reference: " + ", ".join(sorted(missing)))
        return 1
    print(f"settings reference covers {len(classes)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
