"""Every default image of every installer is one docker-images/build.py builds.

The installers (``jupyter docker-spec``, ``k8s-spec``, ``crd-spec``) are run as a user runs
them, without ``--image-name``, for each language and mode, and each spec's image (and
executor image) is looked up in build.py's table of images.  No daemon is needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from backends.dockerd import _load_build_module

from gp_crd.cli import main as crd_spec
from gp_docker.cli import main as docker_spec
from gp_k8s.cli import main as k8s_spec

# Images a default may name before build.py builds them (none now: the Scala image is built).
PENDING: set[str] = set()

INSTALLS: list[tuple[str, Callable[[list[str]], int], list[str]]] = [
    ("docker python", docker_spec, []),
    ("docker R", docker_spec, ["--language", "R"]),
    ("docker scala", docker_spec, ["--language", "Scala"]),
    ("swarm python", docker_spec, ["--swarm"]),
    ("k8s python", k8s_spec, []),
    ("k8s R", k8s_spec, ["--language", "R"]),
    ("k8s python spark", k8s_spec, ["--spark"]),
    ("k8s scala", k8s_spec, ["--language", "Scala"]),
    ("crd spark operator", crd_spec, ["--spark-operator"]),
]


@pytest.fixture(autouse=True)
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GP_IMAGE_NAME", "GP_EXECUTOR_IMAGE_NAME", "GP_IMAGE_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def built_images() -> dict[str, str]:
    """build.py's images: tag -> flavor."""
    build = _load_build_module()
    return {flavor.default_tag: name for name, flavor in build.FLAVORS.items()}


def test_no_default_image_for_r_with_spark(tmp_path: Path) -> None:
    """No Spark-R image is built, so an R spec with Spark names none of ours by default: the
    installer refuses, naming --image-name, instead of the R image without Spark."""
    with pytest.raises(SystemExit, match="--language R --spark: no Spark-R kernel image"):
        k8s_spec(["install", "--prefix", str(tmp_path), "--language", "R", "--spark"])
    assert not (tmp_path / "share").exists()


@pytest.mark.parametrize(("what", "install", "flags"), INSTALLS, ids=[i[0] for i in INSTALLS])
def test_default_image_is_built_here(
    tmp_path: Path, what: str, install: Callable[[list[str]], int], flags: list[str]
) -> None:
    install(["install", "--prefix", str(tmp_path), "--kernel-name", "k", *flags])
    spec = json.loads((tmp_path / "share/jupyter/kernels/k/kernel.json").read_text())
    config = spec["metadata"]["kernel_provisioner"]["config"]
    images = {config["image_name"], config.get("executor_image_name", config["image_name"])}
    built = built_images()
    for image in images:
        assert not image.endswith(":latest"), f"{what}: {image} (defaults carry a version)"
        repository = image.rsplit(":", 1)[0].rsplit("/", 1)[1]
        if repository in PENDING:
            continue
        assert image in built, f"{what}: default {image} is not one of build.py's {sorted(built)}"


def test_pending_images_are_not_built_yet() -> None:
    """Once build.py builds a pending image, it must be checked like the others."""
    built = {tag.rsplit(":", 1)[0].rsplit("/", 1)[1] for tag in built_images()}
    assert not (PENDING & built), f"remove {PENDING & built} from PENDING: build.py builds it"
