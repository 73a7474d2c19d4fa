"""The shared API client per kubeconfig: reused while the file is unchanged, made anew once
the file is rewritten (a rotated token), without a cluster."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from gp_k8s.client import get_api_client


def write_kubeconfig(path: Path, token: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )


def token_of(client: object) -> str:
    return str(client.configuration.api_key)  # type: ignore[attr-defined]


def test_a_rewritten_kubeconfig_gets_a_client_with_the_new_token(tmp_path: Path) -> None:
    path = tmp_path / "sa.kubeconfig"
    write_kubeconfig(path, "old-token")
    first = get_api_client(str(path))
    assert get_api_client(str(path)) is first  # unchanged file: one shared client
    write_kubeconfig(path, "new-token-after-rotation")
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    second = get_api_client(str(path))
    assert second is not first
    assert "new-token-after-rotation" in token_of(second)
    assert "old-token" in token_of(first)  # kernels already running keep theirs
