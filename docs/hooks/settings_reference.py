"""MkDocs hook: fills reference/settings.md from the installed provisioners' traits.

Every class registered under the ``jupyter_client.kernel_provisioners`` entry point by a ``gp-*``
distribution gets a table of its configurable traits (name, type, default, environment
variable, help), plus those of the ResponseManager, Observability, KernelPools and SshWarmUp,
so the reference cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import entry_points
from typing import Any

MARKER = "<!-- settings-reference -->"
ENV_NAME = re.compile(r"\b((?:GP|KERNEL)_[A-Z0-9_]+)\b")


def _rows(cls: type) -> list[str]:
    rows = [
        "| setting | type | default | environment | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, trait in sorted(cls.class_traits(config=True).items()):
        help_text = " ".join(inspect.cleandoc(trait.help or "").split())
        envs = sorted(set(ENV_NAME.findall(help_text)))
        default = trait.default_value_repr()
        if "traitlets.Undefined" in default or "dynamic" in default.lower():
            default = "(computed)"
        cells = [
            f"`{name}`",
            type(trait).__name__,
            f"`{default}`".replace("|", "\\|"),
            ", ".join(f"`{e}`" for e in envs) or "",
            help_text.replace("|", "\\|"),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def render() -> str:
    from gp_provisioners_core.response_manager import ResponseManager

    parts: list[str] = []
    found = sorted(entry_points(group="jupyter_client.kernel_provisioners"), key=lambda e: e.name)
    for ep in found:
        if not ep.value.startswith("gp_"):
            continue
        cls = ep.load()
        parts += [f"## `{ep.name}`", "", f"`{cls.__module__}.{cls.__qualname__}`", ""]
        parts += [*_rows(cls), ""]
    parts += [
        "## Response manager",
        "",
        "`gp_provisioners_core.response_manager.ResponseManager`",
        "",
    ]
    parts += [*_rows(ResponseManager), ""]
    from gp_provisioners_core.settings import Observability

    parts += ["## Observability", "", "`gp_provisioners_core.settings.Observability`", ""]
    parts += [*_rows(Observability), ""]
    from gp_provisioners_core.pool import KernelPools

    parts += ["## Warm kernel pools", "", "`gp_provisioners_core.pool.KernelPools`", ""]
    parts += [*_rows(KernelPools), ""]
    from gp_distributed.warmup import SshWarmUp

    parts += ["## ssh warm-up at server start", "", "`gp_distributed.warmup.SshWarmUp`", ""]
    parts += [*_rows(SshWarmUp), ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown
