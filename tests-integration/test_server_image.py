"""The server image (docker-images/server), built offline from this checkout like the kernel
images, in the suite's private dockerd: it holds Jupyter Server with gp-k8s, gp-crd and
gp-server, runs as uid 1000, and its default command serves the REST API with the gp
extensions loaded."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from backends import dockerd
from backends.dockerd import DockerBackend

REPO = Path(__file__).resolve().parents[1]


def _builder() -> ModuleType:
    path = REPO / "docker-images" / "server" / "build_server.py"
    spec = importlib.util.spec_from_file_location("gp_server_image_build", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server_image(docker_backend: DockerBackend) -> str:
    builder = _builder()
    build = builder.load_build()
    settings = build.BuildSettings(
        cache_dir=Path(os.getenv("GP_IMAGE_CACHE_DIR", str(dockerd.CACHE_DIR / "docker-images"))),
        docker_host=docker_backend.base_url,
    )
    started = time.monotonic()
    outcome = builder.ensure_server_image(settings)
    print(f"server image: {outcome} in {time.monotonic() - started:.1f}s")
    return str(builder.SERVER_TAG)


def _client(backend: DockerBackend) -> Any:
    import docker

    return docker.DockerClient(base_url=backend.base_url, timeout=60)


def test_image_holds_the_server_and_our_packages_as_non_root(
    server_image: str, docker_backend: DockerBackend
) -> None:
    code = (
        "import os, jupyter_server, gp_k8s, gp_crd, gp_server, gp_provisioners_core;"
        "print(os.getuid(), os.getgid(), jupyter_server.__version__)"
    )
    out = _client(docker_backend).containers.run(
        server_image, ["python", "-c", code], network_mode="host", remove=True
    )
    uid, gid, version = out.decode().split()
    assert (uid, gid) == ("1000", "100")
    assert int(version.split(".")[0]) >= 2


def test_default_command_serves_the_api(server_image: str, docker_backend: DockerBackend) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = _client(docker_backend)
    image = client.images.get(server_image)
    command = [
        f"--ServerApp.port={port}" if arg.startswith("--ServerApp.port=") else arg
        for arg in image.attrs["Config"]["Cmd"]
    ]
    container = client.containers.run(
        server_image,
        command,
        network_mode="host",
        environment={"JUPYTER_TOKEN": "t0ken"},
        detach=True,
    )
    try:
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/kernelspecs",
                    headers={"Authorization": "token t0ken"},
                )
                with urllib.request.urlopen(request, timeout=5) as answer:
                    body = answer.read()
                break
            except OSError:
                time.sleep(0.5)
        assert body, container.logs().decode()[-2000:]
        logs = container.logs().decode()
        assert "gp_server" in logs or "gp_provisioners_core" in logs, logs[-2000:]
    finally:
        container.remove(force=True)
